"""The superior platform's rules without sockets: each message in, the exact answer out, and the
events the gateway would apply; time by the test's clock."""

from __future__ import annotations

import asyncio

import pytest

from adapters.gb28181 import manscdp
from adapters.gb28181.config import LowerPlatform, SipServiceConfig
from adapters.gb28181.digest import authorization
from adapters.gb28181.sip import SipError, SipRequest, SipResponse, parse
from adapters.gb28181.superior import (
    CatalogDone,
    Offline,
    Peer,
    Refused,
    Registration,
    SuperiorPlatform,
)
from adapters.gb28181.transport import SipTransports

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
    garbage = _register().encode().replace(b"CSeq: 1 REGISTER", b"CSeq: one REGISTER")
    sp.receive(garbage, wire.peer)
    assert (wire.last().status, wire.last().reason) == (
        400,
        "CSeq number is not a number below 2**31",
    )
    sp.receive(b"\x00" * 100, wire.peer)  # nothing to answer to: dropped, counted
    assert len(wire.sent) == 2
    assert sp.refusals == {
        "405 method INVITE not accepted here": 1,
        "400 CSeq number is not a number below 2**31": 1,
        "400 no blank line after the headers": 1,
    }
    refused = [e for e in _events(sp) if isinstance(e, Refused)]
    assert [r.status for r in refused] == [405, 400, 400]


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
