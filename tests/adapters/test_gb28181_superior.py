"""The superior platform's rules without sockets: each message in, the exact answer out, and the
events the gateway would apply; time by the test's clock."""

from __future__ import annotations

import asyncio
import random

import pytest

from adapters.gb28181 import manscdp
from adapters.gb28181.config import LowerPlatform, SipServiceConfig
from adapters.gb28181.digest import authorization
from adapters.gb28181.sip import SipError, SipRequest, SipResponse, parse
from adapters.gb28181.superior import (
    CatalogDone,
    Notification,
    Offline,
    Peer,
    Refused,
    Registration,
    SuperiorPlatform,
)
from adapters.gb28181.transport import SipTransports
from adapters.simulator.gb28181 import mutate, mutate_body

PID = "31011700002000000002"
DOMAIN = "3101170000"


class Wire:
    def __init__(self, host: str = "127.0.0.1", transport: str = "udp") -> None:
        self.sent: list[SipRequest | SipResponse] = []
        self.peer = Peer(transport, host, 5070, self._send)

    def _send(self, data: bytes) -> None:
        try:
            self.sent.append(parse(data, stream=True))
        except SipError:  # an answer to garbage carries the garbage: read its status line
            _, status, reason = data.split(b"\r\n", 1)[0].decode().split(" ", 2)
            self.sent.append(SipResponse(status=int(status), reason=reason))

    def last(self) -> SipResponse:
        reply = self.sent[-1]
        assert isinstance(reply, SipResponse)
        return reply


@pytest.fixture
def platform(monkeypatch: pytest.MonkeyPatch) -> tuple[SuperiorPlatform, list[float]]:
    monkeypatch.setenv("GB_UNIT_PASSWORD", "pw")
    lower = LowerPlatform.model_validate(
        {
            "id": PID,
            "domain": DOMAIN,
            "network": "police",
            "password_env": "GB_UNIT_PASSWORD",
            "cidrs": ["127.0.0.0/8"],
        }
    )
    config = SipServiceConfig(platforms=(lower,), register_expires_s=(60, 7200))
    now = [2_000_000_000.0]
    return SuperiorPlatform(config, b"k" * 32, clock=lambda: now[0]), now


def _register(expires: str = "3600", auth: str | None = None, cseq: int = 1) -> SipRequest:
    headers = [
        ("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1"),
        ("From", f"<sip:{PID}@{DOMAIN}>;tag=1"),
        ("To", f"<sip:{PID}@{DOMAIN}>"),
        ("Call-ID", "reg-1"),
        ("CSeq", f"{cseq} REGISTER"),
        ("Expires", expires),
    ]
    if auth:
        headers.append(("Authorization", auth))
    return SipRequest(method="REGISTER", uri=f"sip:31011700002000000001@{DOMAIN}", headers=headers)


def _login(sp: SuperiorPlatform, wire: Wire, expires: str = "3600") -> SipResponse:
    sp.receive(_register(expires).encode(), wire.peer)
    challenge = wire.last().get("WWW-Authenticate") or ""
    auth = authorization(challenge, PID, "pw", "REGISTER", f"sip:31011700002000000001@{DOMAIN}")
    sp.receive(_register(expires, auth, 2).encode(), wire.peer)
    return next(m for m in wire.sent if isinstance(m, SipResponse) and m.cseq[0] == 2)


def _events(sp: SuperiorPlatform) -> list[object]:
    out: list[object] = []
    while not sp.events.empty():
        out.append(sp.events.get_nowait())
    return out


async def test_register_clamps_expiry_refreshes_and_unregisters(
    platform: tuple[SuperiorPlatform, list[float]],
) -> None:
    sp, _ = platform
    wire = Wire()
    ok = _login(sp, wire, expires="99999")
    assert (ok.status, ok.get("Expires")) == (200, "7200")
    queries = [m.body for m in wire.sent if isinstance(m, SipRequest) and m.method == "MESSAGE"]
    assert [manscdp.parse(q).cmd_type for q in queries] == ["Catalog", "DeviceInfo"]
    _login(sp, wire, expires="10")
    assert wire.last().get("Expires") == "60"
    _login(sp, wire, expires="0")
    assert not sp.platforms[PID].registered
    outcomes = [e.outcome for e in _events(sp) if isinstance(e, Registration)]
    assert outcomes == ["registered", "refreshed", "unregistered"]


async def test_a_stale_nonce_is_challenged_again_not_refused(
    platform: tuple[SuperiorPlatform, list[float]],
) -> None:
    sp, now = platform
    wire = Wire()
    sp.receive(_register().encode(), wire.peer)
    challenge = wire.last().get("WWW-Authenticate") or ""
    now[0] += 400
    auth = authorization(challenge, PID, "pw", "REGISTER", f"sip:31011700002000000001@{DOMAIN}")
    sp.receive(_register(auth=auth, cseq=2).encode(), wire.peer)
    reply = wire.last()
    assert reply.status == 401 and "stale=true" in (reply.get("WWW-Authenticate") or "")
    assert not sp.platforms[PID].registered


async def test_expiry_takes_a_platform_offline(
    platform: tuple[SuperiorPlatform, list[float]],
) -> None:
    sp, now = platform
    _login(sp, Wire(), expires="60")
    _events(sp)
    now[0] += 59
    sp.tick()
    assert sp.platforms[PID].registered
    now[0] += 2
    sp.tick()
    assert [e.reason for e in _events(sp) if isinstance(e, Offline)] == ["registration expired"]


async def test_unknown_methods_and_unparsable_requests_are_answered(
    platform: tuple[SuperiorPlatform, list[float]],
) -> None:
    sp, _ = platform
    wire = Wire()
    invite = _register()
    invite.method = "INVITE"
    invite.set("CSeq", "1 INVITE")
    sp.receive(invite.encode(), wire.peer)
    assert (wire.last().status, wire.last().reason) == (405, "method INVITE not accepted here")
    garbage = _register().encode().replace(b"Expires: 3600", b"Max-Forwards: many")
    sp.receive(garbage, wire.peer)
    assert (wire.last().status, wire.last().reason) == (
        400,
        "Max-Forwards is not a number up to 255",
    )
    # A response must carry the request's CSeq: to a garbled one there is none that would
    # itself be well-formed, so the request is dropped (counted), as one with no head at all.
    garbled = _register().encode().replace(b"CSeq: 1 REGISTER", b"CSeq: one REGISTER")
    sp.receive(garbled, wire.peer)
    sp.receive(b"\x00" * 100, wire.peer)
    assert len(wire.sent) == 2
    assert sp.refusals == {
        "405 method INVITE not accepted here": 1,
        "400 Max-Forwards is not a number up to 255": 1,
        "400 CSeq number is not a number below 2**31": 1,
        "400 no blank line after the headers": 1,
    }
    refused = [e for e in _events(sp) if isinstance(e, Refused)]
    assert [r.status for r in refused] == [405, 400, 400, 400]


async def test_a_sum_num_above_the_bound_ends_the_catalog(
    platform: tuple[SuperiorPlatform, list[float]],
) -> None:
    sp, _ = platform
    wire = Wire()
    _login(sp, wire)
    query = next(m for m in wire.sent if isinstance(m, SipRequest) and b"Catalog" in m.body)
    sn = manscdp.parse(query.body).sn
    body = manscdp.catalog("Response", sn, PID, 200_000, [])
    msg = _register()
    msg.method = "MESSAGE"
    msg.set("CSeq", "5 MESSAGE")
    msg.set("Content-Type", "Application/MANSCDP+xml")
    msg.body = body
    sp.receive(msg.encode(), wire.peer)
    assert (wire.last().status, wire.last().reason) == (413, "SumNum above 100000")
    done = [e for e in _events(sp) if isinstance(e, CatalogDone)]
    assert [(d.complete, d.reason) for d in done] == [(False, "SumNum above the limit")]


async def test_the_event_queue_is_bounded(
    platform: tuple[SuperiorPlatform, list[float]],
) -> None:
    sp, _ = platform
    sp.events = asyncio.Queue(2)
    for i in range(5):  # refusals: one event per source and minute
        sp.receive(b"junk\r\n\r\n", Wire(host=f"127.0.0.{i + 1}").peer)
    _login(sp, Wire())
    assert sp.events.qsize() == 2 and sp.dropped_events >= 1


async def test_refusal_kinds_are_bounded_for_the_metric(
    platform: tuple[SuperiorPlatform, list[float]],
) -> None:
    sp, _ = platform
    wire = Wire()
    for n in range(100):  # a hundred methods an attacker made up: one label each, up to a bound
        req = _register()
        req.method = f"X{n}"
        req.set("CSeq", f"1 X{n}")
        sp.receive(req.encode(), wire.peer)
    assert len(sp.refusals) == 64 + 1
    assert sp.refusals["405 other"] == 100 - 64


async def test_tcp_connections_from_outside_every_platforms_ranges_are_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GB_UNIT_PASSWORD", "pw")
    fenced = LowerPlatform.model_validate(
        {
            "id": PID,
            "domain": DOMAIN,
            "network": "police",
            "password_env": "GB_UNIT_PASSWORD",
            "cidrs": ["127.9.0.0/16"],
        }
    )
    config = SipServiceConfig(tcp_port=0, transports=("tcp",), platforms=(fenced,))
    sp = SuperiorPlatform(config, b"k" * 32)
    transports = SipTransports(config, sp.receive)
    await transports.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", transports.ports["tcp"])
        async with asyncio.timeout(5):
            assert await reader.read() == b""  # closed before a byte is read or answered
        writer.close()
    finally:
        await transports.stop()
    assert transports.refused_connections == 1
    assert sp.refusals == {}  # nothing was read


async def test_a_digest_answer_for_another_uri_is_refused(
    platform: tuple[SuperiorPlatform, list[float]],
) -> None:
    sp, _ = platform
    wire = Wire()
    sp.receive(_register().encode(), wire.peer)
    challenge = wire.last().get("WWW-Authenticate") or ""
    auth = authorization(challenge, PID, "pw", "REGISTER", "sip:somewhere-else")
    sp.receive(_register(auth=auth, cseq=2).encode(), wire.peer)
    assert (wire.last().status, wire.last().reason) == (
        403,
        "digest refused: uri is not the request's",
    )
    assert not sp.platforms[PID].registered


async def test_a_refresh_after_missed_keepalives_brings_it_back_and_rereads(
    platform: tuple[SuperiorPlatform, list[float]],
) -> None:
    sp, now = platform
    wire = Wire()
    _login(sp, wire)
    now[0] += 181
    sp.tick()
    assert not sp.platforms[PID].online
    _events(sp)
    before = len(wire.sent)
    _login(sp, wire)
    assert sp.platforms[PID].online
    outcomes = [e.outcome for e in _events(sp) if isinstance(e, Registration)]
    assert outcomes == ["online"]
    sent = [m for m in wire.sent[before:] if isinstance(m, SipRequest)]
    assert [manscdp.parse(m.body).cmd_type for m in sent] == ["Catalog"]


async def test_the_catalog_subscription_is_renewed_before_it_ends(
    platform: tuple[SuperiorPlatform, list[float]],
) -> None:
    sp, now = platform
    wire = Wire()
    _login(sp, wire)
    sp.subscribe(PID, expires=600)
    subscribe = wire.sent[-1]
    assert isinstance(subscribe, SipRequest) and subscribe.method == "SUBSCRIBE"
    assert (subscribe.get("Event") or "").startswith("Catalog;id=")
    kept = ("Via", "From", "To", "Call-ID", "CSeq")
    ok = SipResponse(
        status=200,
        reason="OK",
        headers=[*((n, v) for n, v in subscribe.headers if n in kept), ("Expires", "600")],
    )
    sp.receive(ok.encode(), wire.peer)
    assert sp.status()[0].subscribed
    for seconds in (500, 40):  # renewed a minute before the 600 s end, not before
        now[0] += seconds
        sp.receive(_keepalive(sp), wire.peer)
        sp.tick()
    renewals = [m for m in wire.sent if isinstance(m, SipRequest) and m.method == "SUBSCRIBE"]
    assert len(renewals) == 2


def _keepalive(sp: SuperiorPlatform) -> bytes:
    msg = _register()
    msg.method = "MESSAGE"
    msg.set("CSeq", "9 MESSAGE")
    msg.set("Content-Type", "Application/MANSCDP+xml")
    msg.body = manscdp.build(
        "Notify", [("CmdType", "Keepalive"), ("SN", "1"), ("DeviceID", PID), ("Status", "OK")]
    )
    return msg.encode()


def _subscribed(
    sp: SuperiorPlatform, wire: Wire, tag: str = "pl4t", status: int = 200
) -> SipRequest:
    """Log in, let the platform's catalog subscription be made and answered (To tag `tag`)."""
    if not sp.platforms[PID].registered:
        _login(sp, wire)
    sp.subscribe(PID, expires=600)
    subscribe = wire.sent[-1]
    assert isinstance(subscribe, SipRequest) and subscribe.method == "SUBSCRIBE"
    kept = [(n, v) for n, v in subscribe.headers if n in ("Via", "From", "Call-ID", "CSeq")]
    to = subscribe.get("To") or ""
    if "tag=" not in to:
        to += f";tag={tag}"
    answer = SipResponse(
        status=status, reason="OK", headers=[*kept, ("To", to), ("Expires", "600")]
    )
    sp.receive(answer.encode(), wire.peer)
    return subscribe


def _notify(
    subscribe: SipRequest,
    *,
    their_tag: str = "pl4t",
    call_id: str | None = None,
    our_tag: str | None = None,
    event: str | None = None,
    method: str = "NOTIFY",
    state: str = "active",
) -> bytes:
    """A catalog notification as the platform sends it within `subscribe`'s dialog (each
    keyword spoils one part of the match)."""
    sub_from = subscribe.get("From") or ""
    tag = our_tag if our_tag is not None else sub_from.rsplit("tag=", 1)[1]
    item = manscdp.CatalogItem(device_id="31011700001325000001", event="OFF")
    headers = [
        ("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKn1"),
        ("From", f"<sip:{PID}@{DOMAIN}>;tag={their_tag}"),
        ("To", f"<sip:31011700002000000001@{DOMAIN}>;tag={tag}"),
        ("Call-ID", call_id or subscribe.call_id),
        ("CSeq", f"7 {method}"),
        ("Event", event or (subscribe.get("Event") or "")),
        ("Subscription-State", state),
        ("Content-Type", "Application/MANSCDP+xml"),
    ]
    body = manscdp.catalog("Notify", 9, PID, 1, [item])
    return SipRequest(
        method=method, uri=f"sip:31011700002000000001@{DOMAIN}", headers=headers, body=body
    ).encode()


async def test_a_notify_is_taken_only_within_the_subscriptions_dialog(
    platform: tuple[SuperiorPlatform, list[float]],
) -> None:
    sp, _ = platform
    wire = Wire()
    subscribe = _subscribed(sp, wire)
    _events(sp)
    spoiled = {
        "another Call-ID": _notify(subscribe, call_id="elsewhere@127.0.0.1"),
        "another To tag": _notify(subscribe, our_tag="0000"),
        "another From tag": _notify(subscribe, their_tag="intruder"),
        "no From tag": _notify(subscribe, their_tag=""),
        "another Event id": _notify(subscribe, event="Catalog;id=1"),
    }
    for why, data in spoiled.items():
        sp.receive(data, wire.peer)
        assert (wire.last().status, wire.last().reason) == (
            481,
            "no subscription matches this NOTIFY's dialog",
        ), why
    sp.receive(_notify(subscribe, event="Alarm"), wire.peer)
    assert (wire.last().status, wire.last().reason) == (
        489,
        "NOTIFY for an event package not subscribed to",
    )
    sp.receive(_notify(subscribe, method="MESSAGE"), wire.peer)
    assert (wire.last().status, wire.last().reason) == (
        481,
        "catalog notifications come by NOTIFY within a subscription",
    )
    events = _events(sp)
    assert [e.status for e in events if isinstance(e, Refused)] == [481, 489, 481]  # once a kind
    assert not [e for e in events if isinstance(e, Notification)]  # nothing reached the registry
    sp.receive(_notify(subscribe), wire.peer)
    assert wire.last().status == 200
    (notified,) = [e for e in _events(sp) if isinstance(e, Notification)]
    assert [i.event for i in notified.items] == ["OFF"]


async def test_a_notify_before_the_200_is_taken_and_fixes_the_platforms_tag(
    platform: tuple[SuperiorPlatform, list[float]],
) -> None:
    sp, _ = platform
    wire = Wire()
    _login(sp, wire)
    sp.subscribe(PID)
    subscribe = wire.sent[-1]
    assert isinstance(subscribe, SipRequest)
    sp.receive(_notify(subscribe, their_tag="early"), wire.peer)  # (RFC 6665 4.1.2.4)
    assert wire.last().status == 200
    sp.receive(_notify(subscribe, their_tag="other"), wire.peer)
    assert wire.last().status == 481


async def test_refreshes_stay_in_the_dialog_and_a_lost_one_starts_anew(
    platform: tuple[SuperiorPlatform, list[float]],
) -> None:
    sp, now = platform
    wire = Wire()
    first = _subscribed(sp, wire)
    now[0] += 541  # a minute before the 600 s end
    sp.receive(_keepalive(sp), wire.peer)
    sp.tick()
    refresh = wire.sent[-1]
    assert isinstance(refresh, SipRequest) and refresh.method == "SUBSCRIBE"
    assert refresh.call_id == first.call_id and refresh.get("From") == first.get("From")
    assert (refresh.get("To") or "").endswith(";tag=pl4t")
    assert refresh.cseq[0] > first.cseq[0]
    # The platform lost the subscription (restarted): 481 to the refresh; a new one follows.
    kept = [(n, v) for n, v in refresh.headers if n in ("Via", "From", "To", "Call-ID", "CSeq")]
    sp.receive(SipResponse(status=481, reason="Gone", headers=kept).encode(), wire.peer)
    assert not sp.status()[0].subscribed
    now[0] += 2
    sp.tick()
    fresh = wire.sent[-1]
    assert isinstance(fresh, SipRequest) and fresh.method == "SUBSCRIBE"
    assert fresh.call_id != first.call_id and "tag=" not in (fresh.get("To") or "")
    sp.receive(_notify(first), wire.peer)  # the old dialog is gone
    assert wire.last().status == 481


async def test_a_terminated_subscription_is_made_again(
    platform: tuple[SuperiorPlatform, list[float]],
) -> None:
    sp, now = platform
    wire = Wire()
    subscribe = _subscribed(sp, wire)
    sp.receive(_notify(subscribe, state="terminated;reason=deactivated"), wire.peer)
    assert wire.last().status == 200 and not sp.status()[0].subscribed
    now[0] += 6
    sp.tick()
    again = wire.sent[-1]
    assert isinstance(again, SipRequest) and again.method == "SUBSCRIBE"
    assert again.call_id != subscribe.call_id


async def test_hostile_variants_are_answered_with_sip_errors_and_change_nothing(
    platform: tuple[SuperiorPlatform, list[float]],
) -> None:
    """Seeded, bounded fuzz of the whole receive path (SIP parser, dialog match, MANSCDP
    parser): 3,000 variants of a NOTIFY within the subscription, a keepalive and a catalog
    page, spoiled anywhere or only in their body. No exception escapes; every answer is a
    well-formed SIP response, an error unless the variant was itself a valid message; a
    refused variant leaves no event but its refusal and the platform's state as it was."""
    sp, _ = platform
    wire = Wire()
    subscribe = _subscribed(sp, wire)
    query = next(
        m
        for m in wire.sent
        if isinstance(m, SipRequest) and m.method == "MESSAGE" and b"Catalog" in m.body
    )
    page = parse(_keepalive(sp))
    assert isinstance(page, SipRequest)
    items = [manscdp.CatalogItem(device_id=f"310117000013250000{n:02d}") for n in range(4)]
    page.body = manscdp.catalog("Response", manscdp.parse(query.body).sn, PID, 1000, items)
    bases = [parse(_notify(subscribe)), parse(_keepalive(sp)), page]
    _events(sp)
    raw: list[bytes] = []
    peer = Peer("udp", "127.0.0.1", 5070, raw.append)
    state = sp.platforms[PID]
    assert state.subscription is not None
    dialog = (state.subscription.call_id, state.subscription.our_tag)
    rng = random.Random(28181)
    counts = {"refused": 0, "valid": 0, "dropped": 0}
    for n in range(3000):
        base = bases[n % len(bases)]
        assert isinstance(base, SipRequest)
        data = mutate(base.encode(), rng) if n % 2 else mutate_body(base, rng)
        raw.clear()
        sp.receive(data, peer)
        events = _events(sp)
        if not raw:  # (too broken to answer: RFC 3261 8.2 needs its five headers)
            counts["dropped"] += 1
            assert all(isinstance(e, Refused) for e in events)
            continue
        (answer,) = raw
        reply = parse(answer, stream=True)  # well-formed, or this raises
        assert isinstance(reply, SipResponse)
        if reply.status == 200:
            counts["valid"] += 1
            valid = parse(data)  # the variant was a valid message after all
            assert isinstance(valid, SipRequest)
            manscdp.parse(valid.body)
        else:
            counts["refused"] += 1
            assert 400 <= reply.status < 600, reply.status
            assert all(isinstance(e, Refused) for e in events), (data, events)
        assert state.registered and state.online
        assert state.subscription is not None
        assert (state.subscription.call_id, state.subscription.our_tag) == dialog
    assert counts["refused"] > 1500 and counts["valid"] + counts["dropped"] > 0, counts


async def test_an_answer_for_a_dialog_given_up_meanwhile_changes_nothing(
    platform: tuple[SuperiorPlatform, list[float]],
) -> None:
    sp, now = platform
    wire = Wire()
    _login(sp, wire)
    sp.subscribe(PID)
    subscribe = wire.sent[-1]
    assert isinstance(subscribe, SipRequest)
    # Terminated by a NOTIFY that overtook the 200 (RFC 6665 allows it to come first) ...
    sp.receive(_notify(subscribe, state="terminated;reason=rejected"), wire.peer)
    assert wire.last().status == 200
    # ... then the 200 arrives: the given-up dialog is not taken back.
    kept = [(n, v) for n, v in subscribe.headers if n in ("Via", "From", "Call-ID", "CSeq")]
    late = SipResponse(headers=[*kept, ("To", f"<sip:{PID}@{DOMAIN}>;tag=pl4t")])
    sp.receive(late.encode(), wire.peer)
    assert not sp.status()[0].subscribed and sp.platforms[PID].subscription is None
    now[0] += 6
    sp.tick()
    again = wire.sent[-1]
    assert isinstance(again, SipRequest) and again.method == "SUBSCRIBE"
    assert again.call_id != subscribe.call_id
