"""ONVIF enrichment through onvif-zeep-async, built for fleets.

`ONVIFCamera` opens one aiohttp session per service per camera and waits up to 90 s; for
thousands of cameras we keep what the library does well (its parsed WSDL documents, its
WS-Security token with clock-offset support, its retrying aiohttp transport) and share one
session per network, with short timeouts, a response size cap, no redirects, and zeep settings
that forbid DTDs, entities and external references (a camera's answer is hostile input).

Per camera the calls run in four rounds of round trips instead of nine sequential ones:
clock, capabilities, then device information + interfaces + services + profiles together,
then every stream URI and the snapshot URI together.

Whatever one camera answers, reading it either yields a `Discovered` or raises an
`AdapterError` naming the call ("GetProfiles: unusable answer (XMLSyntaxError: ...)"): no
exception of any other type leaves `enrich`, so one hostile camera is its own failure, never its
network's. Values that are merely impossible (a Month of 13, text where a structure belongs)
degrade to "unknown" with a note; only unusable required answers fail the camera.
"""

from __future__ import annotations

import asyncio
import calendar
import datetime as dt
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import aiohttp
import zeep.exceptions
from lxml import etree
from onvif.client import _WSDL_PATH as WSDL_DIR
from onvif.client import (
    AsyncTransportProtocolErrorHandler,
    UsernameDigestTokenDtDiff,
    ZeepAsyncClient,
    _cached_document,
)
from onvif.definition import SERVICES
from onvif.wsa import WsAddressingIfMissingPlugin
from zeep.proxy import AsyncServiceProxy
from zeep.settings import Settings

from .base import (
    AdapterError,
    CameraAuthError,
    CameraProtocolError,
    CameraUnreachable,
    Discovered,
    Profile,
    Target,
)
from .uris import UriCredentials, split_credentials

log = logging.getLogger(__name__)


# A camera's answer is hostile until parsed: no DTDs, no entities, no external fetches,
# libxml2's size limits on. (onvif-zeep-async's own defaults turn huge_tree *on*.)
SAFE_SETTINGS = Settings(
    strict=False,
    xml_huge_tree=False,
    forbid_dtd=True,
    forbid_entities=True,
    forbid_external=True,
)

_STREAM_SETUP = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}
_SKEW_IGNORED_S = 2.0

T = TypeVar("T")

# Failures that say the camera did not answer; every other exception while reading a camera is
# an unusable answer (HA's onvif integration names them per operation; here one rule serves
# every call).
_UNREACHABLE = (aiohttp.ClientConnectionError, TimeoutError, ConnectionError, OSError)
# Connections to one device at a time (an NVR's dozens of GetStreamUri calls queue for them).
PER_DEVICE_CONNECTIONS = 4
_MAX_DETAIL = 160  # characters of an exception's message kept in a reason or a note
_DOCTYPE_SCAN = 4096  # a DOCTYPE must come before the root element: look no further


class CallFailed(CameraProtocolError):
    """One ONVIF call answered unusably; `detail` says how, `cause` the underlying error."""

    def __init__(self, call: str, detail: str, cause: str | None = None) -> None:
        super().__init__(f"{call}: {detail}")
        self.call = call
        self.detail = detail
        self.cause = cause or detail


def describe_exception(exc: BaseException) -> str:
    """`Type: first line of the message`, short and printable: fit for a reason or a log line.
    (Messages of lxml and zeep never carry the document; zeep's TransportError does, after its
    first line.)"""
    name = type(exc).__name__
    message = str(exc)
    if isinstance(exc, etree.LxmlError):  # libxml2 ends some messages with a newline
        message = message.replace("\n,", ",")
    first = message.split("\n", 1)[0]
    first = re.sub(r" \(<string>, line \d+\)$", "", first)  # lxml's source suffix
    text = " ".join("".join(c for c in first if c.isprintable()).split())
    if not text or text.startswith(name):  # e.g. DTDForbidden(name=...)
        return name
    if len(text) > _MAX_DETAIL:
        text = text[: _MAX_DETAIL - 3] + "..."
    return f"{name}: {text}"


def redact(text: str, creds: UriCredentials | None) -> str:
    """`text` without the password, plain or percent-encoded (a camera may echo it back)."""
    if creds is None or len(creds.password) < 4:
        return text
    for secret in {creds.password, quote(creds.password, safe="")}:
        text = text.replace(secret, "***")
    return text


def _dtd_forbidden() -> zeep.exceptions.DTDForbidden:
    return zeep.exceptions.DTDForbidden("DOCTYPE", None, None)  # type: ignore[no-untyped-call]


def check_answer_xml(content: bytes) -> None:
    """Refuse an answer that is not well-formed XML within libxml2's limits, in the encoding it
    declares, without a DTD.

    zeep parses in recover mode (it ties recovery to `strict=False`, which cameras need for
    their schema slips): it silently cuts a document nested deeper than 256 elements and turns
    invalid bytes into U+FFFD, so a hostile or garbled answer would pass as a partial one.
    Raises lxml's XMLSyntaxError or zeep's DTDForbidden."""
    body = content.lstrip()  # some cameras send a newline before the XML declaration
    if not body:
        return  # zeep reports an empty answer itself
    if b"<!DOCTYPE" in body[:_DOCTYPE_SCAN]:
        raise _dtd_forbidden()
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        collect_ids=False,
        remove_comments=True,
        remove_pis=True,
    )
    root = etree.fromstring(body, parser)
    if root.getroottree().docinfo.doctype:
        raise _dtd_forbidden()


class _CappedTransport(AsyncTransportProtocolErrorHandler):  # type: ignore[misc]
    """onvif-zeep-async's transport, reading at most `max_bytes` and never following redirects."""

    def __init__(self, session: aiohttp.ClientSession, max_bytes: int) -> None:
        super().__init__(session=session, verify_ssl=False)
        self.max_bytes = max_bytes

    async def _post_internal(
        self, address: str, message: str | bytes, headers: dict[str, str]
    ) -> tuple[aiohttp.ClientResponse, bytes]:
        headers = dict(headers or {})
        headers.setdefault("Content-Type", 'application/soap+xml; charset="utf-8"')
        data = message.encode() if isinstance(message, str) else message
        response = await self.session.post(
            address, data=data, headers=headers, allow_redirects=False
        )
        try:
            if 300 <= response.status < 400:
                raise CameraProtocolError(f"redirect ({response.status}) refused")
            content = await read_capped(response, self.max_bytes)
        finally:
            response.release()
        if not response.headers.get("Content-Type", "").lower().startswith("multipart/"):
            check_answer_xml(content)
        return response, content


async def read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    if response.content_length is not None and response.content_length > limit:
        raise CameraProtocolError(f"answer of {response.content_length} bytes exceeds {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise CameraProtocolError(f"answer exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class OnvifClient:
    """One per network: a shared connection pool and the parsed WSDLs, many cameras."""

    def __init__(
        self,
        *,
        timeout_s: float = 5.0,
        connect_timeout_s: float = 2.0,
        max_response_bytes: int = 1 << 20,
        pool_size: int = 256,
    ) -> None:
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.max_response_bytes = max_response_bytes
        self.pool_size = pool_size
        self._session: aiohttp.ClientSession | None = None
        self._transport: _CappedTransport | None = None

    async def __aenter__(self) -> OnvifClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        # sock_connect, not connect: aiohttp's `connect` also covers waiting for a free slot in
        # our own pool (up to `concurrency` cameras, up to 4 requests each), so under load healthy
        # cameras failed with ConnectionTimeoutError. The camera gets its TCP connect bounded;
        # a wait for the pool is bounded by `total` and the per-camera budget.
        timeout = aiohttp.ClientTimeout(
            total=self.timeout_s, sock_connect=self.connect_timeout_s, sock_read=self.timeout_s
        )
        connector = aiohttp.TCPConnector(
            limit=self.pool_size, limit_per_host=PER_DEVICE_CONNECTIONS, ssl=False
        )
        self._session = aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False)
        self._transport = _CappedTransport(self._session, self.max_response_bytes)
        for name in ("devicemgmt", "media"):  # parse once, before the first camera
            await _cached_document(_wsdl(name))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _service(
        self,
        name: str,
        xaddr: str,
        creds: UriCredentials | None,
        dt_diff: dt.timedelta | None,
    ) -> AsyncServiceProxy:
        assert self._transport is not None, "OnvifClient not started"
        wsse = (
            UsernameDigestTokenDtDiff(
                creds.username, creds.password, dt_diff=dt_diff, use_digest=True
            )
            if creds
            else None
        )
        client = ZeepAsyncClient(
            wsdl=await _cached_document(_wsdl(name)),
            wsse=wsse,
            transport=self._transport,
            settings=SAFE_SETTINGS,
            plugins=[WsAddressingIfMissingPlugin()],
        )
        binding = "{%s}%s" % (SERVICES[name]["ns"], SERVICES[name]["binding"])  # noqa: UP031
        proxy: AsyncServiceProxy = client.create_service(binding, xaddr)
        return proxy

    async def enrich(
        self,
        network: str,
        target: Target,
        creds: UriCredentials,
        budget: asyncio.Timeout | None = None,
    ) -> list[Discovered]:
        """Read one device: one camera per video source (an NVR's or encoder's channels), in
        the order the device lists them. Raises CameraUnreachable / CameraAuthError /
        CameraProtocolError naming the call that failed, and no other exception: anything else
        an answer provokes, while it is fetched or parsed, is that call's unusable answer.

        `budget`, the caller's deadline for the whole device, is extended once the device has
        said how many media calls it needs: see `extra_budget_s`."""
        stage = _Stage()
        try:
            return await self._enrich(network, target, creds, stage, budget)
        except AdapterError:
            raise
        except Exception as exc:
            what = describe_exception(exc)
            raise CallFailed(stage.call, f"unusable answer ({what})", what) from exc

    async def _enrich(
        self,
        network: str,
        target: Target,
        creds: UriCredentials,
        stage: _Stage,
        budget: asyncio.Timeout | None,
    ) -> list[Discovered]:
        address = target.address
        service_url = device_url(target)
        notes: list[str] = []

        stage.call = "GetSystemDateAndTime"
        anon = await self._service("devicemgmt", service_url, None, None)
        clock = await _step("GetSystemDateAndTime", anon.GetSystemDateAndTime())
        offset, clock_note = clock_offset(clock, dt.datetime.now(dt.UTC))
        if clock_note is not None:
            notes.append(clock_note)
        dt_diff = dt.timedelta(seconds=offset) if abs(offset) > _SKEW_IGNORED_S else None
        if dt_diff is not None:
            notes.append(f"clock skew {offset:+.0f} s compensated")

        stage.call = "GetCapabilities"
        device = await self._service("devicemgmt", service_url, creds, dt_diff)
        caps = await _step("GetCapabilities", device.GetCapabilities(Category="All"))
        media_url = _media_url(caps, service_url, address, notes)
        ptz, events = _xaddr(caps, "PTZ") is not None, _xaddr(caps, "Events") is not None
        media = await self._service("media", media_url, creds, dt_diff)

        stage.call = "GetProfiles"
        info, ifaces, services, answer = await _together(
            _optional("GetDeviceInformation", device.GetDeviceInformation(), notes),
            _optional(
                "GetNetworkInterfaces", device.GetNetworkInterfaces(), notes, note_faults=False
            ),
            _optional(
                "GetServices", device.GetServices(IncludeCapability=False), notes, note_faults=False
            ),
            _step("GetProfiles", media.GetProfiles()),
        )
        profiles = _profiles(answer, notes)
        if not profiles:
            raise CallFailed("GetProfiles", "the camera reports no media profile")
        tokens = [token for token, _ in profiles]
        parsed = [replace(_profile(token, p), source=_source_token(p)) for token, p in profiles]
        channels = _channels(parsed)
        audio = any(_attr(p, "AudioEncoderConfiguration") is not None for _, p in profiles)
        stage.call = "GetDeviceInformation"
        about = _salvage("GetDeviceInformation", lambda: _device_info(info), _NO_INFO, notes)

        stage.call = "GetStreamUri"
        _extend(budget, len(tokens) + len(channels), self.timeout_s)
        stream_uris, snapshots = await _media_uris(media, tokens, channels, notes)

        found_creds: UriCredentials | None = None
        out_profiles = []
        for profile, uri in zip(parsed, stream_uris, strict=True):
            clean, in_uri = _clean_uri(_scalar(uri, "Uri"), address, notes, "stream")
            found_creds = found_creds or in_uri
            out_profiles.append(replace(profile, stream_uri=clean))
        stage.call = "GetSnapshotUri"
        snapshot_uris: list[str | None] = []
        for snapshot in snapshots:
            uri, in_snap = _clean_uri(_scalar(snapshot, "Uri"), address, notes, "snapshot")
            found_creds = found_creds or in_snap
            snapshot_uris.append(uri)
        stage.call = "GetNetworkInterfaces"
        mac = _salvage("GetNetworkInterfaces", lambda: _mac(ifaces), None, notes)
        stage.call = "GetServices"
        service_map = _salvage(
            "GetServices", lambda: _services(services, address, notes), dict[str, str](), notes
        )
        scopes = _scopes(target.scopes)
        whole = Discovered(
            network=network,
            address=address,
            source=target.source,
            endpoint_reference=target.endpoint_reference,
            device_uri=service_url,
            name=scopes.get("name") or target.name,
            location=scopes.get("location"),
            hardware=scopes.get("hardware"),
            vendor=about["Manufacturer"],
            model=about["Model"],
            firmware=about["FirmwareVersion"],
            serial=about["SerialNumber"],
            hardware_id=about["HardwareId"],
            mac=mac,
            services=service_map,
            clock_offset_s=round(offset, 3),
            ptz=ptz,
            events=events,
            audio=audio,
            uri_credentials=found_creds if found_creds != creds else None,
        )
        return _per_channel(whole, channels, out_profiles, snapshot_uris, notes, creds)

    async def check(self, target: Target) -> float:
        """A cheap liveness probe: unauthenticated GetSystemDateAndTime; returns latency ms.
        Raises an AdapterError and nothing else."""
        try:
            anon = await self._service("devicemgmt", device_url(target), None, None)
            started = time.perf_counter()
            await _step("GetSystemDateAndTime", anon.GetSystemDateAndTime())
        except AdapterError:
            raise
        except Exception as exc:
            what = describe_exception(exc)
            raise CallFailed("GetSystemDateAndTime", f"unusable answer ({what})", what) from exc
        return (time.perf_counter() - started) * 1000


def _extend(budget: asyncio.Timeout | None, media_calls: int, timeout_s: float) -> None:
    when = budget.when() if budget is not None else None
    if budget is not None and when is not None:
        budget.reschedule(when + extra_budget_s(media_calls, timeout_s))


async def _media_uris(
    media: AsyncServiceProxy,
    tokens: list[str],
    channels: dict[str, list[Profile]],
    notes: list[str],
) -> tuple[list[Any], list[Any]]:
    """GetStreamUri of every profile and GetSnapshotUri of every video source's first profile;
    an answer that failed is None (noted). An NVR's dozens of calls go PER_DEVICE_CONNECTIONS
    at a time: a call's timeout starts when it is sent, not while it queues behind its
    siblings for a connection."""
    gate = asyncio.Semaphore(PER_DEVICE_CONNECTIONS)
    uris = await _together(
        *(
            _optional(
                "GetStreamUri",
                _gated(
                    gate, partial(media.GetStreamUri, StreamSetup=_STREAM_SETUP, ProfileToken=t)
                ),
                notes,
                note_faults=False,
            )
            for t in tokens
        ),
        *(
            _optional(
                "GetSnapshotUri",
                _gated(gate, partial(media.GetSnapshotUri, ProfileToken=group[0].token)),
                notes,
                note_faults=False,
            )
            for group in channels.values()
        ),
    )
    return uris[: len(tokens)], uris[len(tokens) :]


def extra_budget_s(media_calls: int, timeout_s: float) -> float:
    """Time a device earns beyond the one-camera budget for its media calls (GetStreamUri per
    profile, GetSnapshotUri per video source): they go PER_DEVICE_CONNECTIONS at a time, and
    every wave past the first may take one request timeout. A camera (one wave) earns nothing;
    a 16-channel NVR with two profiles per channel (48 calls, 12 waves) earns 11 timeouts."""
    waves = -(-media_calls // PER_DEVICE_CONNECTIONS)
    return max(0, waves - 1) * timeout_s


@dataclass(slots=True)
class _Stage:
    """The call whose answer `enrich` is working on: an unexpected error is attributed to it."""

    call: str = "GetSystemDateAndTime"


def _wsdl(name: str) -> str:
    return f"{WSDL_DIR}/{SERVICES[name]['wsdl']}"


def device_url(target: Target) -> str:
    """The device service of `target`: an XAddr on its own address, else the ONVIF default."""
    for xaddr in target.xaddrs:
        if urlsplit(xaddr).hostname == target.address:
            return xaddr
    host = f"[{target.address}]" if ":" in target.address else target.address
    return f"http://{host}:{target.port}/onvif/device_service"


async def _step(name: str, call: Awaitable[T]) -> T:
    """Run one ONVIF call, translating every error into the adapter's error tree: a fault or
    an answer that cannot be used (any exception while it is fetched or parsed) is a CallFailed
    naming the call; no answer is CameraUnreachable; a refusal is CameraAuthError."""
    try:
        return await call
    except zeep.exceptions.Fault as exc:
        if _is_auth_fault(exc):
            raise CameraAuthError(f"{name}: credentials refused") from exc
        raise CallFailed(name, f"SOAP fault {_fault_code(exc)}") from exc
    except CameraProtocolError as exc:  # our transport: redirect, size cap
        raise CallFailed(name, str(exc)) from exc
    except _UNREACHABLE as exc:
        raise CameraUnreachable(f"{name}: {type(exc).__name__}") from exc
    except Exception as exc:  # whatever the answer provoked: lxml, zeep, ValueError, ...
        what = describe_exception(exc)
        raise CallFailed(name, f"unusable answer ({what})", what) from exc


async def _optional(
    name: str, call: Awaitable[T], notes: list[str], *, note_faults: bool = True
) -> T | None:
    """Optional capabilities: an unsupported or unusable call never aborts enrichment, and an
    unusable answer (malformed XML, hostile, too large) is noted naming the call, so that it
    shows on the camera's record; a SOAP fault (the call is not supported) is noted only with
    `note_faults`. Auth and reachability failures still abort (they concern the camera)."""
    try:
        return await _step(name, call)
    except CameraProtocolError as exc:
        log.debug("optional call failed", extra={"call": name, "error": str(exc)})
        fault = isinstance(exc, CallFailed) and exc.detail.startswith("SOAP fault")
        if note_faults or not fault:
            cause = exc.cause if isinstance(exc, CallFailed) else str(exc)
            notes.append(f"{name} unusable: {cause}")
        return None


async def _gated(gate: asyncio.Semaphore, call: Callable[[], Awaitable[T]]) -> T:
    """`call()` made (and its answer awaited) only once `gate` lets it through."""
    async with gate:
        return await call()


async def _together(*calls: Awaitable[Any]) -> list[Any]:
    """The calls' results, run concurrently; the first failure cancels the calls still
    running (the camera has failed: their answers are moot and must not outlive it)."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()  # no-op for the finished ones


def _salvage(call: str, parse: Callable[[], T], default: T, notes: list[str]) -> T:
    """Parse an optional answer; if that fails in any way the value is unknown, noted."""
    try:
        return parse()
    except Exception as exc:
        notes.append(f"{call} unusable: {describe_exception(exc)}")
        return default


def _is_auth_fault(exc: zeep.exceptions.Fault) -> bool:
    text = f"{exc.code} {exc.subcodes} {exc.message}".lower()
    return "notauthorized" in text or "not authorized" in text or "sender not authorized" in text


def _fault_code(exc: zeep.exceptions.Fault) -> str:
    subcodes = getattr(exc, "subcodes", None) or []
    names = [getattr(s, "localname", str(s)) for s in subcodes]
    return "/".join([str(exc.code or "?"), *names])[:120]


# -- the camera's clock -----------------------------------------------------------------

_POSIX_NAME = r"[A-Za-z]{3,}|<[A-Za-z0-9+-]+>"
_POSIX_OFFSET = r"[+-]?\d{1,2}(?::\d{1,2}){0,2}"
_POSIX_TZ = re.compile(
    rf"(?P<std>{_POSIX_NAME})(?P<std_offset>{_POSIX_OFFSET})"
    rf"(?:(?P<dst>{_POSIX_NAME})(?P<dst_offset>{_POSIX_OFFSET})?)?(?:,(?P<rules>\S*))?"
)
_MAX_TZ = 64
# A transition "Mm.w.d[/time]": month, week (5: the last), weekday (0: Sunday), local time.
_POSIX_RULE = re.compile(r"M(\d{1,2})\.([1-5])\.([0-6])(?:/([+-]?\d{1,3}(?::\d{1,2}){0,2}))?")


def posix_tz_offset(
    tz: str, dst: bool = False, at: dt.datetime | None = None
) -> dt.timedelta | None:
    """Local time minus UTC for a POSIX TZ string (ONVIF's TimeZone/TZ), or None when `tz` is
    not one. POSIX counts west of Greenwich: "CST-8" is UTC+08:00, "GMT+05:30" UTC-05:30.
    Whether daylight saving time is on (which selects the DST offset, one hour east of the
    standard one unless given): at local time `at`, by the zone's transition rules when it has
    "Mm.w.d" ones; else `dst`, the camera's DaylightSavings (which cameras also set in winter
    when DST is merely enabled: Axis, Hikvision, Uniview)."""
    text = tz.strip()
    match = _POSIX_TZ.fullmatch(text) if len(text) <= _MAX_TZ else None
    if match is None:
        return None
    west = _posix_seconds(match["std_offset"])
    on = _dst_by_rules(match["rules"], at) if at is not None else None
    if west is not None and (dst if on is None else on) and match["dst"]:
        west = _posix_seconds(match["dst_offset"]) if match["dst_offset"] else west - 3600
    return None if west is None else dt.timedelta(seconds=-west)


def _dst_by_rules(rules: str | None, at: dt.datetime) -> bool | None:
    """Whether local time `at` falls between a POSIX TZ's DST start and end ("M3.2.0,M11.1.0";
    start and end in their year of `at`), or None without such rules."""
    found = [_POSIX_RULE.fullmatch(r) for r in (rules or "").split(",")]
    parts = [m for m in found if m is not None]
    if len(found) != 2 or len(parts) != 2:
        return None
    start, end = (_transition(m, at.year) for m in parts)
    if start is None or end is None:
        return None
    wall = at.replace(tzinfo=None)
    return start <= wall < end if start < end else not end <= wall < start


def _transition(rule: re.Match[str], year: int) -> dt.datetime | None:
    month, week, weekday = int(rule[1]), int(rule[2]), int(rule[3])
    seconds = _posix_seconds(rule[4]) if rule[4] else 7200  # 02:00 unless given
    if not 1 <= month <= 12 or seconds is None:
        return None
    first = dt.date(year, month, 1)
    day = 1 + (weekday - (first.weekday() + 1)) % 7 + 7 * (week - 1)  # weekday(): Monday 0
    while day > calendar.monthrange(year, month)[1]:  # week 5: the last one
        day -= 7
    return dt.datetime(year, month, day) + dt.timedelta(seconds=seconds)


def _posix_seconds(text: str) -> int | None:
    sign = -1 if text.startswith("-") else 1
    hours, minutes, seconds = ([int(x) for x in text.lstrip("+-").split(":")] + [0, 0])[:3]
    if hours > 24 or minutes > 59 or seconds > 59:
        return None
    return sign * (hours * 3600 + minutes * 60 + seconds)


def _utc_label(offset: dt.timedelta) -> str:
    total = int(offset.total_seconds())
    sign = "-" if total < 0 else "+"
    total = abs(total)
    return f"UTC{sign}{total // 3600:02d}:{total % 3600 // 60:02d}"


def clock_offset(answer: Any, now: dt.datetime) -> tuple[float, str | None]:
    """The camera's clock minus `now` in seconds, from a GetSystemDateAndTime answer, and a
    note when it is not a plain UTC reading.

    UTCDateTime first; without it, LocalDateTime in the answer's POSIX TimeZone, or taken as
    UTC when there is no zone we understand. An impossible or incomplete date (Month 13, no
    Date, text where the Date structure belongs) loses the clock and nothing else: offset 0,
    no skew compensation, and a note saying why."""
    try:
        utc = _attr(answer, "UTCDateTime")
        if utc is not None:
            return (_datetime(utc, "UTCDateTime") - now).total_seconds(), None
        local = _attr(answer, "LocalDateTime")
        if local is None:
            raise ValueError("neither UTCDateTime nor LocalDateTime")
        wall = _datetime(local, "LocalDateTime")
        tz = _scalar(_attr(answer, "TimeZone"), "TZ")
        daylight = _attr(answer, "DaylightSavings") is True
        zone = posix_tz_offset(tz, daylight, at=wall) if tz else None
        if zone is None:
            why = f"time zone {tz[:_MAX_TZ]!r} not understood" if tz else "no time zone"
            note = f"camera clock: no UTCDateTime, LocalDateTime taken as UTC ({why})"
            return (wall - now).total_seconds(), note
        note = f"camera clock: no UTCDateTime, LocalDateTime read in {tz} ({_utc_label(zone)})"
        return (wall - zone - now).total_seconds(), note
    except Exception as exc:
        return 0.0, f"camera clock unusable ({describe_exception(exc)})"


_DATE_FIELDS = (("Date", "Year"), ("Date", "Month"), ("Date", "Day"))
_TIME_FIELDS = (("Time", "Hour"), ("Time", "Minute"), ("Time", "Second"))


def _datetime(value: Any, what: str) -> dt.datetime:
    """An ONVIF DateTime (Date: Year, Month, Day; Time: Hour, Minute, Second) as a datetime
    labelled UTC. Raises ValueError or TypeError for anything missing or impossible."""
    parts: list[int] = []
    for part, field in (*_DATE_FIELDS, *_TIME_FIELDS):
        section = _attr(value, part)
        if section is None:
            raise ValueError(f"{what} has no {part}")
        number = _attr(section, field)
        if number is None:
            raise ValueError(f"{what} has no {part}/{field}")
        if isinstance(number, bool) or not isinstance(number, int | str):
            raise TypeError(f"{what} {part}/{field} is not a number")
        parts.append(int(number))
    year, month, day, hour, minute, second = parts
    second = min(second, 59)  # a leap second
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)


# -- reading values out of answers: any value may be missing or of the wrong kind ----------


def _attr(obj: Any, name: str) -> Any:
    """obj.name, or None when it is missing or obj is not a structure at all (a string where
    a structure belongs)."""
    if obj is None or isinstance(obj, str | bytes | int | float | Decimal):
        return None
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def _scalar(obj: Any, name: str) -> str | None:
    """obj.name as stripped text, or None when missing, empty or a structure."""
    value = _attr(obj, name)
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        return None
    return str(value).strip() or None


def _text(obj: Any, name: str) -> str | None:
    text = _scalar(obj, name)
    return text[:100] if text else None


def _items(value: Any) -> list[Any]:
    """A repeated element as a list: zeep gives lists; anything else is one item or none."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def _xaddr(caps: Any, name: str) -> str | None:
    return _scalar(_attr(caps, name), "XAddr")


def _media_url(caps: Any, device_url: str, address: str, notes: list[str]) -> str:
    """The media service on the address that answered; the device service's URL when the
    camera advertises none we can use."""
    xaddr = _xaddr(caps, "Media")
    if xaddr is None:
        return device_url
    try:
        if urlsplit(xaddr).scheme.lower() not in {"http", "https"}:
            raise ValueError("not an http(s) URL")
        return _same_host(xaddr, address, notes, "media")
    except ValueError as exc:
        notes.append(f"GetCapabilities: media XAddr unusable ({describe_exception(exc)})")
        return device_url


def _same_host(url: str, address: str, notes: list[str], what: str) -> str:
    """Cameras behind NAT or with a bad config advertise hosts we must not contact (0.0.0.0,
    another subnet). We only ever talk to the address that answered. Raises ValueError for a
    URL that does not parse."""
    parts = urlsplit(url)
    port = parts.port  # raises ValueError for a port that is not one
    if parts.hostname == address:
        return url
    host = f"[{address}]" if ":" in address else address
    netloc = f"{host}:{port}" if port else host
    notes.append(f"{what} host {parts.hostname or '?'} replaced by {address}")
    return urlunsplit(parts._replace(netloc=netloc))


def _clean_uri(
    uri: str | None, address: str, notes: list[str], what: str
) -> tuple[str | None, UriCredentials | None]:
    if not uri:
        return None, None
    try:
        clean, creds = split_credentials(uri)
        clean, in_query = _query_credentials(clean)
        creds = creds or in_query
        scheme = urlsplit(clean).scheme
        if scheme not in {"rtsp", "rtsps", "http", "https"}:
            if creds is not None:
                notes.append(f"credentials removed from the {what} URI")
            notes.append(f"{what} URI with scheme {scheme[:20]!r} ignored")
            return None, creds
        same = _same_host(clean, address, notes, what)
    except Exception as exc:
        notes.append(f"{what} URI unusable ({describe_exception(exc)})")
        return None, None
    if creds is not None:
        notes.append(f"credentials removed from the {what} URI")
    return same, creds


# Query parameters cameras carry credentials in (XiongMai's webcapture.jpg?...&user=&password=,
# Foscam's ?usr=&pwd=, Reolink's ?user=&password=).
_QUERY_USERS = frozenset({"user", "username", "usr", "loginuse"})
_QUERY_PASSWORDS = frozenset({"password", "passwd", "pwd", "pass", "loginpas"})


def _query_credentials(uri: str) -> tuple[str, UriCredentials | None]:
    """The URI without the user and password parameters of its query when it has a password
    one (the rest of the query kept as it was), and those credentials (None when the password
    is empty)."""
    parts = urlsplit(uri)
    fields = parts.query.split("&") if parts.query else []
    pairs = [(unquote(k).lower(), unquote(v)) for k, _, v in (f.partition("=") for f in fields)]
    if not any(name in _QUERY_PASSWORDS for name, _ in pairs):
        return uri, None
    password = next(value for name, value in pairs if name in _QUERY_PASSWORDS)
    user = next((value for name, value in pairs if name in _QUERY_USERS), "")
    secret = _QUERY_USERS | _QUERY_PASSWORDS
    kept = [f for f, (name, _) in zip(fields, pairs, strict=True) if name not in secret]
    clean = urlunsplit(parts._replace(query="&".join(kept)))
    return clean, UriCredentials(user, password) if password else None


def _profiles(answer: Any, notes: list[str]) -> list[tuple[str, Any]]:
    """(token, profile) for every profile that has a token (nothing can be asked about one
    without)."""
    out: list[tuple[str, Any]] = []
    for p in _items(answer):
        token = _scalar(p, "token")
        if token is None or len(token) > 64:
            notes.append("GetProfiles: a profile without a usable token ignored")
            continue
        out.append((token, p))
    return out


def _per_channel(
    whole: Discovered,
    channels: dict[str, list[Profile]],
    profiles: list[Profile],
    snapshot_uris: list[str | None],
    notes: list[str],
    creds: UriCredentials,
) -> list[Discovered]:
    """The device as its cameras: one per video source, each with its own profiles, snapshot
    URI and (for a device of several) a name saying which channel it is."""
    by_token = {p.token: p for p in profiles}
    cameras = []
    pairs = zip(channels.items(), snapshot_uris, strict=True)
    for index, ((source, group), snapshot_uri) in enumerate(pairs, start=1):
        own = list(notes)
        if snapshot_uri is None:
            own.append("no snapshot URI: snapshots use the RTSP stream")
        name = whole.name
        if len(channels) > 1:
            name = f"{name or ' '.join(x for x in (whole.vendor, whole.model) if x)} {source}"
        cameras.append(
            replace(
                whole,
                name=name.strip() if name else None,
                profiles=tuple(by_token[p.token] for p in group),
                snapshot_uri=snapshot_uri,
                channel=source or None,
                channel_index=index,
                channels=len(channels),
                notes=tuple(redact(n, creds) for n in own),
            )
        )
    return cameras


def _source_token(p: Any) -> str | None:
    """The video source a profile encodes (VideoSourceConfiguration/SourceToken)."""
    token = _text(_attr(p, "VideoSourceConfiguration"), "SourceToken")
    return token if token and len(token) <= 64 else None


def _channels(profiles: list[Profile]) -> dict[str, list[Profile]]:
    """Profiles by video source, in the device's order ('' for profiles naming none: a
    device that names no source, or only one, is one camera)."""
    groups: dict[str, list[Profile]] = {}
    for p in profiles:
        groups.setdefault(p.source or "", []).append(p)
    if "" in groups and len(groups) > 1:  # a profile without a source joins the first one
        loose = groups.pop("")
        next(iter(groups.values())).extend(loose)
    return groups


def _profile(token: str, p: Any) -> Profile:
    venc = _attr(p, "VideoEncoderConfiguration")
    res = _attr(venc, "Resolution")
    rate = _attr(venc, "RateControl")
    return Profile(
        token=token,
        name=_text(p, "Name") or "",
        codec=_text(venc, "Encoding"),
        width=_int(_attr(res, "Width")),
        height=_int(_attr(res, "Height")),
        fps=_fps(_attr(rate, "FrameRateLimit")),
    )


_INFO_FIELDS = ("Manufacturer", "Model", "FirmwareVersion", "SerialNumber", "HardwareId")
_NO_INFO: dict[str, str | None] = dict.fromkeys(_INFO_FIELDS)


def _device_info(info: Any) -> dict[str, str | None]:
    """What GetDeviceInformation says (all None without a usable answer)."""
    return {name: _text(info, name) for name in _INFO_FIELDS}


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        n = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return n if 0 < n <= 16384 else None


def _fps(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        fps = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return fps if math.isfinite(fps) and 0 < fps <= 1000 else None


_MAC = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")


def _mac(ifaces: Any) -> str | None:
    for iface in _items(ifaces):
        hw = _scalar(_attr(iface, "Info"), "HwAddress")
        if hw:
            mac = hw.lower().replace("-", ":")
            if _MAC.fullmatch(mac):
                return mac
    return None


def _services(services: Any, address: str, notes: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for svc in _items(services):
        ns, xaddr = _scalar(svc, "Namespace"), _scalar(svc, "XAddr")
        if ns and xaddr:
            try:
                out[ns[:100]] = _same_host(xaddr, address, [], "service")
            except ValueError:
                continue  # one unusable service address; the others stand
    if len(out) > 32:
        notes.append("more than 32 services; extra ones dropped")
        out = dict(list(out.items())[:32])
    return out


def _scopes(scopes: tuple[str, ...]) -> dict[str, str]:
    """onvif://www.onvif.org/name/Gate_3 -> {"name": "Gate 3"} (ONVIF Core 7.3.2.2)."""
    out: dict[str, str] = {}
    for scope in scopes:
        parts = urlsplit(scope)
        if parts.netloc != "www.onvif.org":
            continue
        segments = [s for s in parts.path.split("/") if s]
        if len(segments) >= 2 and segments[0] in {"name", "hardware"}:
            out.setdefault(segments[0], unquote("/".join(segments[1:])).replace("_", " ")[:100])
        elif len(segments) >= 2 and segments[0] == "location":
            out.setdefault("location", unquote("/".join(segments[1:]))[:200])
    return out
