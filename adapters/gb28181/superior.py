"""camgw as a GB/T 28181 superior platform (上级平台): registrations, keepalives, catalogs.

Sans-I/O at its core: `receive(data, peer)` handles one message synchronously (answers through
`peer.send`, queues what the gateway must learn as events), and `tick()` judges time (expiry,
missed keepalives, a catalog that stopped halfway) by the injected clock. The transports
(`transport.py`) feed it; the gateway consumes `events` (adapters never import the gateway).

What a lower platform can do, and what it gets:
- REGISTER from an id not configured, or from outside its ranges: 403, audited. Without
  credentials: 401 with a nonce. Wrong password: 403. Stale nonce: 401 stale=true. Expires
  outside the allowed range: clamped, answered in Expires. Expires 0: unregistered.
- MESSAGE/NOTIFY from a platform not registered (or from elsewhere): 403, nothing read.
- NOTIFY outside our catalog subscription's dialog (RFC 6665: Call-ID, tags, Event id): 481;
  for another event package: 489. Catalog notifications by MESSAGE: 481.
- A message that is not SIP, too big, or has a body that is not MANSCDP: 400/413, no effect.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import manscdp
from .codes import Edition, edition_of, is_channel, valid
from .config import LowerPlatform, SipServiceConfig
from .digest import DigestError, NonceIssuer, parse_authorization
from .manscdp import CatalogItem, ManscdpError
from .media import open_receiver
from .sip import SipError, SipRequest, SipResponse, params, parse, response_to, uri_user
from .snapshot import UPLOAD_PATH, SnapSessions, snapshot_command

log = logging.getLogger(__name__)

MANSCDP = "Application/MANSCDP+xml"
_EVENT_QUEUE = 20_000
_REASONS = 64  # kinds of refusal counted apart (the rest: "<status> other")
_REFUSAL_EVERY_S = 60.0  # one audit event per (source, reason) and minute; the rest counted


@dataclass(frozen=True, slots=True)
class Peer:
    """Where a message came from, and how to answer there."""

    transport: str  # "udp" or "tcp"
    host: str
    port: int
    send: Callable[[bytes], None]


# -- events for the gateway ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Registration:
    platform: LowerPlatform
    outcome: str  # registered, refreshed, unregistered, refused, challenged
    status: int
    reason: str
    source: str  # host:port
    platform_id: str = ""  # as claimed (for refusals of unknown ids)


@dataclass(frozen=True, slots=True)
class Offline:
    platform: LowerPlatform
    reason: str


@dataclass(frozen=True, slots=True)
class CatalogPage:
    platform: LowerPlatform
    edition: Edition
    items: tuple[CatalogItem, ...]


@dataclass(frozen=True, slots=True)
class CatalogDone:
    platform: LowerPlatform
    received: int
    sum_num: int
    complete: bool
    reason: str = ""
    codes: frozenset[str] = frozenset()  # every channel code the catalog listed


@dataclass(frozen=True, slots=True)
class Notification:
    platform: LowerPlatform
    edition: Edition
    items: tuple[CatalogItem, ...]


@dataclass(frozen=True, slots=True)
class Refused:
    """A message refused (malformed, oversized, unauthorised): attributed, counted."""

    source: str
    status: int
    reason: str
    platform_id: str = ""


@dataclass(frozen=True, slots=True)
class SnapshotCommand:
    """A snapshot command sent to a platform, and how it ended (for the audit)."""

    platform: LowerPlatform
    code: str
    session_id: str
    outcome: str  # ok, error, timeout
    detail: str


class SnapshotError(Exception):
    """Why a platform's channel gave no picture: `kind` is unsupported, offline, refused or
    timeout (adapters/gb28181/adapter.py maps it to the seam's errors)."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


Event = (
    Registration | Offline | CatalogPage | CatalogDone | Notification | Refused | SnapshotCommand
)


# -- state ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class CatalogSession:
    sn: int
    started: float
    last_page: float
    sum_num: int | None = None
    codes: set[str] = field(default_factory=set)
    channels: int = 0  # of the codes, video channels (the rest: groups, devices)
    duplicates: int = 0


@dataclass(slots=True)
class Subscription:
    """Our catalog subscription's dialog (RFC 6665): a NOTIFY belongs to it when its Call-ID
    is ours, its To tag is our From tag and its From tag is the platform's (learnt from the
    200, or from the first NOTIFY when that arrives before the 200, as RFC 6665 allows)."""

    call_id: str
    our_tag: str
    event_id: str
    their_tag: str = ""


@dataclass(slots=True)
class PlatformState:
    config: LowerPlatform
    registered: bool = False
    online: bool = False
    expires_at: float = 0.0
    registered_at: float | None = None
    last_keepalive: float | None = None
    peer: Peer | None = None
    contact: str = ""
    edition: Edition = "2016"
    catalog: CatalogSession | None = None
    channels: int = 0  # video channels in the last catalog
    catalog_complete: bool | None = None
    catalog_at: float | None = None
    duplicates: int = 0
    offline_reason: str = ""
    subscribed_until: float = 0.0  # when our catalog subscription is renewed (or retried)
    subscription_ok: bool = False  # the platform accepted the last SUBSCRIBE
    subscription: Subscription | None = None  # its dialog, from the SUBSCRIBE on
    device_info: dict[str, str] = field(default_factory=dict)  # Manufacturer, Model, Firmware


@dataclass(frozen=True, slots=True)
class PlatformStatus:
    id: str
    name: str
    network: str
    edition: str
    registered: bool
    online: bool
    last_keepalive: float | None
    registered_at: float | None
    expires_at: float | None
    channels: int
    catalog_complete: bool | None
    offline_reason: str
    subscribed: bool
    device_info: dict[str, str]


class SuperiorPlatform:
    def __init__(
        self,
        config: SipServiceConfig,
        nonce_key: bytes,
        clock: Callable[[], float] = time.time,
        local: tuple[str, int] = ("127.0.0.1", 5060),
    ) -> None:
        self.config = config
        self.clock = clock
        self.local = local  # where requests we send say we are (Via, Contact)
        self.nonces = NonceIssuer(nonce_key, config.nonce_ttl_s)
        self.platforms = {p.id: PlatformState(p) for p in config.platforms}
        self.events: asyncio.Queue[Event] = asyncio.Queue(_EVENT_QUEUE)
        self.dropped_events = 0
        self.refusals: dict[str, int] = {}  # by status and reason: the metric
        self._refusal_seen: dict[tuple[str, str], float] = {}
        self._sn = secrets.randbelow(1 << 20)
        self._cseq = 1
        self.snaps = SnapSessions(config.max_snapshot_bytes, clock)
        self.upload_base = ""  # http://host:port of the upload server (set when it listens)
        # Channel code -> the platform that holds it: the gateway sets it from its claims in
        # Redis (first come; the same code from another platform is a conflict), so that a
        # channel is always pictured through the platform its record came from.
        self.holder: dict[str, str] = {}
        self._snap_sn: dict[int, str] = {}  # command SN -> its SessionID
        self._transactions: dict[str, asyncio.Future[SipResponse]] = {}  # our INVITE, BYE
        self._ssrc = secrets.randbelow(10_000)
        self._subscribing: dict[str, tuple[str, int]] = {}  # SUBSCRIBE sent -> platform, expiry

    # -- input ---------------------------------------------------------------------------------

    def receive(self, data: bytes, peer: Peer) -> None:
        """One whole message (a datagram, or one framed off a TCP stream)."""
        try:
            msg = parse(
                data,
                stream=peer.transport == "tcp",
                max_bytes=self.config.max_message_bytes,
                max_headers=self.config.max_headers,
            )
        except SipError as exc:
            self._refuse_raw(data, peer, exc)
            return
        if isinstance(msg, SipResponse):
            key = f"{msg.call_id}|{msg.get('CSeq')}"
            waiting = self._transactions.get(key)
            if waiting is not None and msg.status >= 200 and not waiting.done():
                waiting.set_result(msg)
            subscribed = self._subscribing.pop(key, None) if msg.status >= 200 else None
            if subscribed is not None and subscribed[0] in self.platforms:
                self._subscribed(self.platforms[subscribed[0]], msg, subscribed[1])
            if msg.status >= 300:
                log.info(
                    "lower platform refused a request",
                    extra={"source": _source(peer), "status": msg.status, "call_id": msg.call_id},
                )
            return
        try:
            self._request(msg, peer)
        except SipError as exc:
            self._answer(msg, peer, exc.status, exc.reason)
            self._refused(peer, exc.status, exc.reason, uri_user(msg.get("From") or "") or "")

    def _subscribed(self, state: PlatformState, msg: SipResponse, asked: int) -> None:
        """The final answer to our SUBSCRIBE (new or a refresh within its dialog)."""
        sub = state.subscription
        if sub is None or sub.call_id != msg.call_id:
            return  # (an answer for a dialog given up meanwhile: terminated, re-registered)
        granted = msg.get("Expires") or str(asked)
        life = int(granted) if granted.isdigit() and len(granted) < 7 else asked
        ok = 200 <= msg.status < 300
        state.subscription_ok = ok
        refresh = bool(sub.their_tag)
        if ok:
            sub.their_tag = sub.their_tag or params(msg.get("To") or "")[1].get("tag", "")[:64]
        else:
            state.subscription = None  # (the next SUBSCRIBE starts a new dialog)
        if ok:
            state.subscribed_until = self.clock() + max(60, life - 60)
        else:  # a refresh the platform lost (481) is made anew at once; other refusals wait
            state.subscribed_until = self.clock() + (1 if refresh and msg.status == 481 else 300)

    def _request(self, msg: SipRequest, peer: Peer) -> None:
        if msg.method == "REGISTER":
            self._register(msg, peer)
        elif msg.method in ("MESSAGE", "NOTIFY"):
            self._message(msg, peer)
        elif msg.method == "OPTIONS":
            self._answer(msg, peer, 200)
        elif msg.method == "ACK":
            return
        else:
            raise SipError(405, f"method {msg.method} not accepted here")

    # -- REGISTER ------------------------------------------------------------------------------

    def _register(self, msg: SipRequest, peer: Peer) -> None:
        claimed = uri_user(msg.get("From") or "") or ""
        state = self.platforms.get(claimed)
        if state is None:
            raise SipError(403, "not a configured lower platform")
        cfg = state.config
        if not cfg.allows(peer.host):
            raise SipError(403, "source address outside the platform's ranges")
        password = cfg.password()
        if password is None:
            log.error("lower platform has no password on file", extra={"platform": cfg.id})
            raise SipError(403, "platform password not configured")
        now = self.clock()
        if not self._authenticated(msg, peer, cfg, password, now):
            return
        expires = self._expires(msg)
        reply = response_to(msg, 200, to_tag=secrets.token_hex(4))
        reply.headers.append(("Date", datetime.fromtimestamp(now, UTC).strftime(_DATE)[:-3]))
        if expires == 0:
            reply.headers.append(("Expires", "0"))
            peer.send(reply.encode())
            was = state.registered
            self._drop(state, "unregistered (Expires: 0)")
            if was:
                self._emit(Registration(cfg, "unregistered", 200, "Expires: 0", _source(peer)))
            return
        reply.headers.append(("Expires", str(expires)))
        peer.send(reply.encode())
        fresh = not state.registered
        back = state.registered and not state.online  # offline by missed keepalives
        state.registered = state.online = True
        state.expires_at = now + expires
        state.registered_at = state.registered_at if not fresh else now
        state.last_keepalive = now
        state.peer = peer
        state.contact = msg.get("Contact") or ""
        state.edition = edition_of(msg.get("X-GB-Ver"), cfg.edition)
        state.offline_reason = ""
        outcome = "registered" if fresh else "online" if back else "refreshed"
        self._emit(Registration(cfg, outcome, 200, f"expires {expires}s", _source(peer)))
        if fresh or back:  # (back: statuses changed meanwhile)
            self.query_catalog(cfg.id)
        if fresh:
            self._query(state, "DeviceInfo")

    def _authenticated(
        self, msg: SipRequest, peer: Peer, cfg: LowerPlatform, password: str, now: float
    ) -> bool:
        """True when the REGISTER's digest is right; False when it was answered with a
        challenge (none given, or a stale nonce); raises SipError(403) when it is wrong."""
        auth = msg.get("Authorization")
        if auth is None:
            self._challenge(msg, peer, cfg, now, stale=False)
            return False
        try:
            creds = parse_authorization(auth)
            self.nonces.verify(
                creds,
                platform=cfg.id,
                realm=self.config.domain,
                password=password,
                method="REGISTER",
                now=now,
            )
        except DigestError as exc:
            if exc.stale:
                self._challenge(msg, peer, cfg, now, stale=True)
                return False
            raise SipError(403, f"digest refused: {exc.reason}") from None
        if creds.uri != msg.uri:  # (RFC 3261 section 22.4: the answer is for this request)
            raise SipError(403, "digest refused: uri is not the request's")
        return True

    def _challenge(
        self, msg: SipRequest, peer: Peer, cfg: LowerPlatform, now: float, stale: bool
    ) -> None:
        reply = response_to(msg, 401, to_tag=secrets.token_hex(4))
        challenge = self.nonces.challenge(cfg.id, self.config.domain, now, stale)
        reply.headers.append(("WWW-Authenticate", challenge))
        peer.send(reply.encode())

    def _expires(self, msg: SipRequest) -> int:
        raw = msg.get("Expires")
        if raw is None:
            raw = params(msg.get("Contact") or "")[1].get("expires")
        if raw is None:
            return 3600
        if not raw.isdigit() or len(raw) > 10:
            raise SipError(400, "Expires is not a number")
        value = int(raw)
        if value == 0:
            return 0
        low, high = self.config.register_expires_s
        return max(low, min(high, value))

    # -- MESSAGE / NOTIFY ----------------------------------------------------------------------

    def _message(self, msg: SipRequest, peer: Peer) -> None:
        claimed = uri_user(msg.get("From") or "") or ""
        state = self.platforms.get(claimed)
        if state is None or not state.config.allows(peer.host):
            raise SipError(403, "not a configured lower platform at this address")
        if not state.registered:
            raise SipError(403, "platform not registered")
        if msg.method == "NOTIFY":
            self._in_subscription(state, msg)
        content_type = (msg.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != MANSCDP.lower():
            raise SipError(415, "body is not Application/MANSCDP+xml")
        try:
            body = manscdp.parse(msg.body)
        except ManscdpError as exc:
            raise SipError(400, f"MANSCDP refused: {exc}") from None
        now = self.clock()
        if body.kind == "Notify" and body.cmd_type == "Keepalive":
            self._answer(msg, peer, 200)
            state.last_keepalive = now
            if not state.online:
                state.online = True
                state.offline_reason = ""
                self._emit(Registration(state.config, "online", 200, "keepalive", _source(peer)))
                self.query_catalog(state.config.id)  # statuses changed meanwhile: read again
            return
        if body.cmd_type == "Catalog" and body.kind == "Response":
            self._catalog_page(state, body, msg, peer, now)
            return
        if body.cmd_type == "Catalog" and body.kind == "Notify":
            if msg.method != "NOTIFY":  # (RFC 6665: notifications belong to a subscription)
                raise SipError(481, "catalog notifications come by NOTIFY within a subscription")
            self._answer(msg, peer, 200)
            items = tuple(i for i in body.items if valid(i.device_id))
            self._emit(Notification(state.config, state.edition, items))
            self._subscription_state(state, msg)
            return
        if body.kind == "Notify" and body.cmd_type == "UploadSnapShotFinished":
            if not self.snaps.finished(body.fields.get("SessionID", ""), state.config.id):
                raise SipError(481, "no snapshot session with this SessionID")
            self._answer(msg, peer, 200)
            return
        if body.kind == "Response" and body.cmd_type == "DeviceInfo":
            self._answer(msg, peer, 200)
            wanted = ("DeviceName", "Manufacturer", "Model", "Firmware", "Channel")
            state.device_info = {k: body.fields[k][:100] for k in wanted if k in body.fields}
            return
        if body.kind == "Response" and body.cmd_type == "DeviceConfig":
            self._answer(msg, peer, 200)
            session = self.snaps.by_session.get(self._snap_sn.get(body.sn, ""))
            result = body.fields.get("Result", "OK").upper()
            if session is not None and result != "OK" and not session.done.done():
                session.done.set_exception(
                    SnapshotError("refused", f"the platform answered Result {result[:16]}")
                )
            return
        # DeviceInfo, DeviceStatus and anything else answered: nothing more read (yet).
        self._answer(msg, peer, 200)

    def _in_subscription(self, state: PlatformState, msg: SipRequest) -> None:
        """A NOTIFY must belong to our catalog subscription's dialog (RFC 6665 section 4.4.1):
        its Event the subscription's package (and id, when it names one), its Call-ID ours,
        its To tag our From tag, its From tag the platform's. Otherwise 481, no effect."""
        event, event_params = params(msg.get("Event") or "")
        if event.strip().lower() != "catalog":
            raise SipError(489, "NOTIFY for an event package not subscribed to")
        sub = state.subscription
        their = params(msg.get("From") or "")[1].get("tag", "")
        ours = params(msg.get("To") or "")[1].get("tag", "")
        if (
            sub is None
            or msg.call_id != sub.call_id
            or ours != sub.our_tag
            or (sub.their_tag and their != sub.their_tag)
            or not their
            or event_params.get("id", sub.event_id) != sub.event_id
        ):
            raise SipError(481, "no subscription matches this NOTIFY's dialog")
        sub.their_tag = sub.their_tag or their[:64]

    def _subscription_state(self, state: PlatformState, msg: SipRequest) -> None:
        """`Subscription-State: terminated` ends the subscription: subscribe afresh soon."""
        value, _ = params(msg.get("Subscription-State") or "")
        if value.strip().lower() == "terminated":
            state.subscription = None
            state.subscription_ok = False
            state.subscribed_until = self.clock() + 5

    def _catalog_page(
        self,
        state: PlatformState,
        body: manscdp.Manscdp,
        msg: SipRequest,
        peer: Peer,
        now: float,
    ) -> None:
        session = state.catalog
        if session is None or body.sn != session.sn:
            raise SipError(481, "no catalog query with this SN")
        if body.sum_num is None:
            raise SipError(400, "catalog response without SumNum")
        if body.sum_num > self.config.catalog_max_channels:
            state.catalog = None
            self._done(state, session, complete=False, reason="SumNum above the limit")
            raise SipError(413, f"SumNum above {self.config.catalog_max_channels}")
        if session.sum_num is not None and body.sum_num != session.sum_num:
            raise SipError(400, "SumNum changed within one catalog")
        self._answer(msg, peer, 200)
        session.sum_num = body.sum_num
        session.last_page = now
        fresh: list[CatalogItem] = []
        for item in body.items:
            if not valid(item.device_id):
                continue  # named in the docs: a code that is not 20 digits is not a channel
            if item.device_id in session.codes:
                session.duplicates += 1
                continue
            if len(session.codes) >= body.sum_num:
                break
            session.codes.add(item.device_id)
            session.channels += is_channel(item.device_id, item.parental)
            fresh.append(item)
        if fresh:
            self._emit(CatalogPage(state.config, state.edition, tuple(fresh)))
        if len(session.codes) >= session.sum_num:
            state.catalog = None
            self._done(state, session, complete=True)

    def _done(
        self, state: PlatformState, session: CatalogSession, complete: bool, reason: str = ""
    ) -> None:
        state.channels = session.channels
        state.catalog_complete = complete
        state.catalog_at = self.clock()
        state.duplicates = session.duplicates
        if session.duplicates:
            reason = (reason + "; " if reason else "") + f"{session.duplicates} duplicate codes"
        done = CatalogDone(
            state.config,
            len(session.codes),
            session.sum_num or 0,
            complete,
            reason,
            frozenset(session.codes),
        )
        self._emit(done)
        if complete and state.subscribed_until <= self.clock():
            self.subscribe(state.config.id)

    # -- output --------------------------------------------------------------------------------

    def _query(self, state: PlatformState, cmd: str) -> None:
        self._sn += 1
        charset = "GB18030" if state.edition == "2022" else "GB2312"
        self._send_request(state, "MESSAGE", manscdp.query(cmd, self._sn, state.config.id, charset))

    def query_catalog(self, platform_id: str) -> int:
        """Send a catalog query to a registered platform; returns its SN."""
        state = self.platforms[platform_id]
        if not state.registered or state.peer is None:
            raise LookupError(f"platform {platform_id} is not registered")
        self._sn += 1
        now = self.clock()
        state.catalog = CatalogSession(sn=self._sn, started=now, last_page=now)
        charset = "GB18030" if state.edition == "2022" else "GB2312"
        body = manscdp.query("Catalog", self._sn, platform_id, charset)
        self._send_request(state, "MESSAGE", body)
        return self._sn

    def refresh_catalogs(self, network: str) -> list[str]:
        """Query again the catalog of each platform feeding `network` that is online and not
        already sending one (on demand: a discovery of the network); their ids."""
        queried = []
        for state in self.platforms.values():
            cfg = state.config
            if cfg.network == network and state.online and state.catalog is None:
                self.query_catalog(cfg.id)
                queried.append(cfg.id)
        return queried

    def subscribe(self, platform_id: str, expires: int = 3600) -> None:
        """Subscribe to the platform's catalog notifications (renewed by `tick` before expiry)."""
        state = self.platforms[platform_id]
        if not state.registered or state.peer is None:
            return
        self._sn += 1
        charset = "GB18030" if state.edition == "2022" else "GB2312"
        sub = state.subscription
        if sub is None or not sub.their_tag:  # a new subscription: a new dialog
            sub = Subscription(
                call_id=f"{secrets.token_hex(12)}@{self.local[0]}",
                our_tag=secrets.token_hex(4),
                event_id=str(self._sn),
            )
            state.subscription = sub
        cfg = state.config
        to = f"<sip:{cfg.id}@{cfg.domain}>" + (f";tag={sub.their_tag}" if sub.their_tag else "")
        req = self._send_request(  # (a refresh: the same dialog, the next CSeq)
            state,
            "SUBSCRIBE",
            manscdp.query("Catalog", self._sn, platform_id, charset),
            call_id=sub.call_id,
            from_tag=sub.our_tag,
            to=to,
            extra=(
                ("Event", f"Catalog;id={sub.event_id}"),
                ("Expires", str(expires)),
                ("Contact", f"<sip:{self.config.id}@{self.local[0]}:{self.local[1]}>"),
            ),
        )
        # Renewed a minute before it ends; until its 200 arrives, not before half a minute.
        state.subscribed_until = self.clock() + 30
        self._subscribing[f"{req.call_id}|{req.get('CSeq')}"] = (platform_id, expires)

    def _send_request(
        self,
        state: PlatformState,
        method: str,
        body: bytes,
        *,
        target: str | None = None,
        call_id: str | None = None,
        from_tag: str | None = None,
        to: str | None = None,
        cseq: int | None = None,
        content_type: str = MANSCDP,
        extra: tuple[tuple[str, str], ...] = (),
    ) -> SipRequest:
        assert state.peer is not None
        cfg, peer = state.config, state.peer
        if cseq is None:
            self._cseq += 1
            cseq = self._cseq
        host, port = self.local
        user = target or cfg.id
        headers = [
            (
                "Via",
                f"SIP/2.0/{peer.transport.upper()} {host}:{port};rport;"
                f"branch=z9hG4bK{secrets.token_hex(8)}",
            ),
            (
                "From",
                f"<sip:{self.config.id}@{self.config.domain}>"
                f";tag={from_tag or secrets.token_hex(4)}",
            ),
            ("To", to or f"<sip:{user}@{cfg.domain}>"),
            ("Call-ID", call_id or f"{secrets.token_hex(12)}@{host}"),
            ("CSeq", f"{cseq} {method}"),
            ("Max-Forwards", "70"),
            *extra,
        ]
        if body:
            headers.append(("Content-Type", content_type))
        req = SipRequest(
            method=method, uri=f"sip:{user}@{peer.host}:{peer.port}", body=body, headers=headers
        )
        peer.send(req.encode())
        return req

    async def _transact(self, state: PlatformState, wait_s: float, **kw: Any) -> SipResponse:
        """A request and its final response (raises TimeoutError)."""
        future: asyncio.Future[SipResponse] = asyncio.get_running_loop().create_future()
        req = self._send_request(state, **kw)
        key = f"{req.call_id}|{req.get('CSeq')}"
        self._transactions[key] = future
        try:
            async with asyncio.timeout(wait_s):
                return await future
        finally:
            self._transactions.pop(key, None)

    def _answer(self, msg: SipRequest, peer: Peer, status: int, reason: str | None = None) -> None:
        peer.send(response_to(msg, status, reason, to_tag=secrets.token_hex(4)).encode())

    async def snapshot(self, code: str, deadline: float | None = None) -> bytes:
        """One picture of channel `code` by the 2022 image snapshot; raises SnapshotError."""
        state = self._online_holder(code)
        if not self.upload_base:
            raise SnapshotError("unsupported", "the snapshot upload server is not listening")
        limit = self.config.snapshot_timeout_s
        # (`deadline` is wall-clock seconds, as the seam says; the clock judges the session)
        wait = max(0.1, min(limit, (deadline - time.time()) if deadline else limit))
        session = self.snaps.open(state.config, code, self.clock() + wait)
        self._sn += 1
        sn = self._sn
        self._snap_sn[sn] = session.session_id
        url = f"{self.upload_base}{UPLOAD_PATH}{session.token}"
        charset = "GB18030"
        self._send_request(
            state, "MESSAGE", snapshot_command(sn, code, url, session.session_id, charset)
        )
        outcome, detail = "ok", ""
        try:
            async with asyncio.timeout(wait):
                return await session.done
        except TimeoutError:
            got = "uploaded, no UploadSnapShotFinished" if session.jpeg else "no upload"
            outcome, detail = "timeout", f"no picture within {wait:.1f}s ({got})"
            raise SnapshotError("timeout", f"channel {code}: {detail}") from None
        except SnapshotError as exc:
            outcome, detail = "error", str(exc)
            raise
        finally:
            self._snap_sn.pop(sn, None)
            self.snaps.close(session)
            self._emit(SnapshotCommand(state.config, code, session.session_id, outcome, detail))

    async def live_frame(self, code: str, deadline: float | None = None) -> tuple[str, bytes]:
        """The first keyframe of a live INVITE of channel `code` (PS over RTP on UDP), then
        BYE: (codec, Annex-B unit). Raises SnapshotError."""
        state = self._online_holder(code)
        limit = self.config.snapshot_timeout_s
        wait = max(0.1, min(limit, (deadline - time.time()) if deadline else limit))
        cfg = state.config
        receiver = await open_receiver(self.config.media_host, cfg.allows, cfg.media_transport)
        self._ssrc = (self._ssrc + 1) % 10_000
        ssrc = f"0{self.config.domain[3:8]}{self._ssrc:04d}"
        host = self.config.media_host
        over_tcp = cfg.media_transport == "tcp"  # (RFC 4571; camgw listens: a=setup:passive)
        profile = "TCP/RTP/AVP" if over_tcp else "RTP/AVP"
        tcp = "a=setup:passive\r\na=connection:new\r\n" if over_tcp else ""
        sdp = (
            f"v=0\r\no={self.config.id} 0 0 IN IP4 {host}\r\ns=Play\r\nc=IN IP4 {host}\r\n"
            f"t=0 0\r\nm=video {receiver.port} {profile} 96\r\na=recvonly\r\n{tcp}"
            f"a=rtpmap:96 PS/90000\r\ny={ssrc}\r\n"
        ).encode()
        call_id, tag = f"{secrets.token_hex(12)}@{self.local[0]}", secrets.token_hex(4)
        self._cseq += 1
        first = self._cseq
        dialog: dict[str, Any] = {"target": code, "call_id": call_id, "from_tag": tag}
        outcome, detail, to = "ok", "", ""
        started = time.monotonic()
        try:
            try:
                answer = await self._transact(
                    state,
                    wait,
                    method="INVITE",
                    body=sdp,
                    cseq=first,
                    content_type="APPLICATION/SDP",
                    extra=(
                        ("Contact", f"<sip:{self.config.id}@{self.local[0]}:{self.local[1]}>"),
                        ("Subject", f"{code}:{ssrc},{self.config.id}:0"),
                    ),
                    **dialog,
                )
            except TimeoutError:
                raise SnapshotError("timeout", f"channel {code}: INVITE not answered") from None
            if answer.status != 200:
                raise SnapshotError(
                    "refused", f"channel {code}: INVITE answered {answer.status} {answer.reason}"
                )
            to = answer.get("To") or ""
            self._send_request(state, "ACK", b"", cseq=first, to=to, **dialog)
            left = max(0.1, wait - (time.monotonic() - started))
            try:
                async with asyncio.timeout(left):
                    return await receiver.keyframe
            except TimeoutError:
                got = f"{receiver.packets} RTP packets, no keyframe"
                raise SnapshotError(
                    "timeout", f"channel {code}: {got} within {wait:.1f}s"
                ) from None
        except SnapshotError as exc:
            outcome, detail = exc.kind, str(exc)
            raise
        finally:
            receiver.close()
            if to:
                self._cseq += 1
                self._send_request(state, "BYE", b"", cseq=self._cseq, to=to, **dialog)
            self._emit(SnapshotCommand(cfg, code, call_id, outcome, f"INVITE {detail}".strip()))

    def edition_for(self, code: str) -> Edition | None:
        """The edition of the platform whose catalog lists `code` (None: none does)."""
        state = self.platforms.get(self.holder.get(code) or "")
        return state.edition if state is not None else None

    def _online_holder(self, code: str) -> PlatformState:
        platform_id = self.holder.get(code)
        state = self.platforms.get(platform_id or "")
        if state is None:
            raise SnapshotError("offline", f"no registered lower platform lists channel {code}")
        if not (state.registered and state.online) or state.peer is None:
            why = state.offline_reason or "not registered"
            raise SnapshotError("offline", f"lower platform {state.config.id} is offline ({why})")
        return state

    # -- time ----------------------------------------------------------------------------------

    def tick(self) -> None:
        """Judge time: expired registrations, missed keepalives, stalled catalogs."""
        now = self.clock()
        limit = self.config.keepalive_interval_s * self.config.keepalive_misses
        for state in self.platforms.values():
            if not state.registered:
                continue
            if now >= state.expires_at:
                self._drop(state, "registration expired")
                self._emit(Offline(state.config, "registration expired"))
                continue
            last = state.last_keepalive or state.registered_at or now
            if state.online and now - last > limit:
                state.online = False
                missed = self.config.keepalive_misses
                state.offline_reason = f"{missed} keepalives missed"
                self._emit(Offline(state.config, state.offline_reason))
            if state.online and state.subscribed_until and now >= state.subscribed_until:
                self.subscribe(state.config.id)
            session = state.catalog
            if session and now - session.last_page > self.config.catalog_page_timeout_s:
                state.catalog = None
                got, want = len(session.codes), session.sum_num or 0
                self._done(state, session, False, f"stopped after {got} of {want} items")

    def _drop(self, state: PlatformState, reason: str) -> None:
        state.subscribed_until = 0.0
        state.subscription_ok = False
        state.subscription = None
        state.registered = state.online = False
        state.peer = None
        state.catalog = None
        state.offline_reason = reason

    # -- reporting -----------------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        try:
            self.events.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped_events += 1
            log.error("gb28181 event dropped: the gateway is not keeping up")

    def _refused(self, peer: Peer, status: int, reason: str, platform_id: str = "") -> None:
        """Counted always (at most `_REASONS` kinds: a reason naming a number or a method
        must not grow the metric's labels without end); logged and audited once per source,
        kind and minute, so a flood makes counts, not a flood of lines."""
        key = f"{status} {reason.split(':', maxsplit=1)[0]}"
        if key not in self.refusals and len(self.refusals) >= _REASONS:
            key = f"{status} other"
        self.refusals[key] = self.refusals.get(key, 0) + 1
        now = self.clock()
        seen = (peer.host + "|" + platform_id[:20], key)
        if now - self._refusal_seen.get(seen, -_REFUSAL_EVERY_S) < _REFUSAL_EVERY_S:
            return
        if len(self._refusal_seen) > 10_000:
            self._refusal_seen.clear()
        self._refusal_seen[seen] = now
        log.warning(
            "sip message refused",
            extra={
                "source": _source(peer),
                "status": status,
                "reason": reason[:200],
                "platform": platform_id[:20],
            },
        )
        self._emit(Refused(_source(peer), status, reason[:200], platform_id[:20]))

    def _refuse_raw(self, data: bytes, peer: Peer, exc: SipError) -> None:
        """Answer an unparsable request when its head names enough to answer (RFC 3261
        section 8.2: the response needs the request's Via, From, To, Call-ID and CSeq)."""
        reply = _bare_error(data[: self.config.max_message_bytes], exc)
        if reply is not None:
            peer.send(reply)
        self._refused(peer, exc.status, exc.reason)

    def status(self) -> list[PlatformStatus]:
        return [
            PlatformStatus(
                id=s.config.id,
                name=s.config.name,
                network=s.config.network,
                edition=s.edition if s.registered_at else (s.config.edition or ""),
                registered=s.registered,
                online=s.online,
                last_keepalive=s.last_keepalive,
                registered_at=s.registered_at,
                expires_at=s.expires_at if s.registered else None,
                channels=s.channels,
                catalog_complete=s.catalog_complete,
                offline_reason=s.offline_reason,
                subscribed=s.registered and s.subscription_ok,
                device_info=dict(s.device_info),
            )
            for s in self.platforms.values()
        ]


_DATE = "%Y-%m-%dT%H:%M:%S.%f"


def _source(peer: Peer) -> str:
    return f"{peer.transport}:{peer.host}:{peer.port}"


def _bare_error(data: bytes, exc: SipError) -> bytes | None:
    head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace").split("\r\n")
    if not head or head[0].startswith("SIP/"):
        return None  # never answer a response
    wanted = {
        "via": "Via",
        "v": "Via",
        "from": "From",
        "f": "From",
        "to": "To",
        "t": "To",
        "call-id": "Call-ID",
        "i": "Call-ID",
        "cseq": "CSeq",
    }
    found: list[tuple[str, str]] = []
    for line in head[1:64]:
        name, sep, value = line.partition(":")
        canon = wanted.get(name.strip().lower())
        if sep and canon and len(value) < 512 and "\x00" not in value:
            found.append((canon, value.strip()))
    names = {n for n, _ in found}
    if names != {"Via", "From", "To", "Call-ID", "CSeq"}:
        return None
    reply = SipResponse(status=exc.status, reason=exc.reason[:100].replace("\r", " "))
    reply.headers = found
    try:
        data = reply.encode()
        parse(data, stream=True)  # never answer with what we would refuse ourselves
    except (ValueError, SipError):
        return None  # (a garbled CSeq, say: dropped and counted, not echoed)
    return data
