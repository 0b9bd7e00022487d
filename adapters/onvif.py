"""ONVIF enrichment through onvif-zeep-async, built for fleets.

`ONVIFCamera` opens one aiohttp session per service per camera and waits up to 90 s; for
thousands of cameras we keep what the library does well (its parsed WSDL documents, its
WS-Security token with clock-offset support, its retrying aiohttp transport) and share one
session per network, with short timeouts, a response size cap, no redirects, and zeep settings
that forbid DTDs, entities and external references (a camera's answer is hostile input).

Per camera the calls run in four rounds of round trips instead of nine sequential ones:
clock, capabilities, then device information + interfaces + services + profiles together,
then every stream URI and the snapshot URI together.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

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

# Expected failures per kind, translated at this boundary (HA's onvif integration names them
# per operation; here one table serves every call).
_UNREACHABLE = (aiohttp.ClientConnectionError, TimeoutError, ConnectionError, OSError)
_PROTOCOL = (
    zeep.exceptions.XMLSyntaxError,
    zeep.exceptions.XMLParseError,
    zeep.exceptions.DTDForbidden,
    zeep.exceptions.EntitiesForbidden,
    zeep.exceptions.ValidationError,
    zeep.exceptions.TransportError,
    zeep.exceptions.LookupError,
    etree.LxmlError,
    aiohttp.ClientResponseError,
    ValueError,
    AttributeError,
    TypeError,
    KeyError,
    IndexError,
)


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
        connector = aiohttp.TCPConnector(limit=self.pool_size, limit_per_host=4, ssl=False)
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

    async def enrich(self, network: str, target: Target, creds: UriCredentials) -> Discovered:
        """Read one camera. Raises CameraUnreachable / CameraAuthError / CameraProtocolError
        naming the step that failed."""
        address = target.address
        device_url = _device_url(target)
        notes: list[str] = []

        anon = await self._service("devicemgmt", device_url, None, None)
        clock = await _step("GetSystemDateAndTime", anon.GetSystemDateAndTime())
        offset = _clock_offset(clock)
        dt_diff = dt.timedelta(seconds=offset) if abs(offset) > _SKEW_IGNORED_S else None
        if dt_diff is not None:
            notes.append(f"clock skew {offset:+.0f} s compensated")

        device = await self._service("devicemgmt", device_url, creds, dt_diff)
        caps = await _step("GetCapabilities", device.GetCapabilities(Category="All"))
        media_url = _same_host(_xaddr(caps, "Media") or device_url, address, notes, "media")
        media = await self._service("media", media_url, creds, dt_diff)

        info, ifaces, services, profiles = await asyncio.gather(
            _step("GetDeviceInformation", device.GetDeviceInformation()),
            _optional("GetNetworkInterfaces", device.GetNetworkInterfaces()),
            _optional("GetServices", device.GetServices(IncludeCapability=False)),
            _step("GetProfiles", media.GetProfiles()),
        )
        if not profiles:
            raise CameraProtocolError("GetProfiles: the camera reports no media profile")
        tokens = [str(p.token) for p in profiles]
        uris = await asyncio.gather(
            *(
                _optional(
                    "GetStreamUri", media.GetStreamUri(StreamSetup=_STREAM_SETUP, ProfileToken=t)
                )
                for t in tokens
            ),
            _optional("GetSnapshotUri", media.GetSnapshotUri(ProfileToken=tokens[0])),
        )
        stream_uris, snapshot = uris[:-1], uris[-1]

        found_creds: UriCredentials | None = None
        out_profiles = []
        for p, uri in zip(profiles, stream_uris, strict=True):
            clean, in_uri = _clean_uri(_attr(uri, "Uri"), address, notes, "stream")
            found_creds = found_creds or in_uri
            out_profiles.append(_profile(p, clean))
        snapshot_uri, in_snap = _clean_uri(_attr(snapshot, "Uri"), address, notes, "snapshot")
        found_creds = found_creds or in_snap
        if snapshot_uri is None:
            notes.append("no snapshot URI: snapshots use the RTSP stream")
        scopes = _scopes(target.scopes)
        return Discovered(
            network=network,
            address=address,
            source=target.source,
            endpoint_reference=target.endpoint_reference,
            device_uri=device_url,
            name=scopes.get("name") or target.name,
            location=scopes.get("location"),
            hardware=scopes.get("hardware"),
            vendor=_text(info, "Manufacturer"),
            model=_text(info, "Model"),
            firmware=_text(info, "FirmwareVersion"),
            serial=_text(info, "SerialNumber"),
            hardware_id=_text(info, "HardwareId"),
            mac=_mac(ifaces),
            services=_services(services, address, notes),
            clock_offset_s=round(offset, 3),
            profiles=tuple(out_profiles),
            snapshot_uri=snapshot_uri,
            ptz=_xaddr(caps, "PTZ") is not None,
            events=_xaddr(caps, "Events") is not None,
            audio=any(_attr(p, "AudioEncoderConfiguration") is not None for p in profiles),
            notes=tuple(notes),
            uri_credentials=found_creds if found_creds != creds else None,
        )

    async def check(self, target: Target) -> float:
        """A cheap liveness probe: unauthenticated GetSystemDateAndTime; returns latency ms."""
        anon = await self._service("devicemgmt", _device_url(target), None, None)
        started = time.perf_counter()
        await _step("GetSystemDateAndTime", anon.GetSystemDateAndTime())
        return (time.perf_counter() - started) * 1000


def _wsdl(name: str) -> str:
    return f"{WSDL_DIR}/{SERVICES[name]['wsdl']}"


def _device_url(target: Target) -> str:
    for xaddr in target.xaddrs:
        if urlsplit(xaddr).hostname == target.address:
            return xaddr
    host = f"[{target.address}]" if ":" in target.address else target.address
    return f"http://{host}:{target.port}/onvif/device_service"


async def _step(name: str, call: Awaitable[T]) -> T:
    """Run one ONVIF call, translating library errors into the adapter's error tree."""
    try:
        return await call
    except zeep.exceptions.Fault as exc:
        if _is_auth_fault(exc):
            raise CameraAuthError(f"{name}: credentials refused") from exc
        raise CameraProtocolError(f"{name}: SOAP fault {_fault_code(exc)}") from exc
    except CameraProtocolError as exc:
        raise CameraProtocolError(f"{name}: {exc}") from exc
    except _UNREACHABLE as exc:
        raise CameraUnreachable(f"{name}: {type(exc).__name__}") from exc
    except _PROTOCOL as exc:
        raise CameraProtocolError(f"{name}: unusable answer ({type(exc).__name__})") from exc


async def _optional(name: str, call: Awaitable[T]) -> T | None:
    """Optional capabilities: an unsupported call never aborts enrichment; auth and
    reachability failures still do (they say something about the whole camera)."""
    try:
        return await _step(name, call)
    except CameraProtocolError as exc:
        log.debug("optional call failed", extra={"call": name, "error": str(exc)})
        return None


def _is_auth_fault(exc: zeep.exceptions.Fault) -> bool:
    text = f"{exc.code} {exc.subcodes} {exc.message}".lower()
    return "notauthorized" in text or "not authorized" in text or "sender not authorized" in text


def _fault_code(exc: zeep.exceptions.Fault) -> str:
    subcodes = getattr(exc, "subcodes", None) or []
    names = [getattr(s, "localname", str(s)) for s in subcodes]
    return "/".join([str(exc.code or "?"), *names])[:120]


def _clock_offset(clock: Any) -> float:
    utc = _attr(clock, "UTCDateTime")
    if utc is None:
        return 0.0
    d, t = utc.Date, utc.Time
    cam = dt.datetime(d.Year, d.Month, d.Day, t.Hour, t.Minute, t.Second, tzinfo=dt.UTC)
    return (cam - dt.datetime.now(dt.UTC)).total_seconds()


def _attr(obj: Any, name: str) -> Any:
    return getattr(obj, name, None) if obj is not None else None


def _text(obj: Any, name: str) -> str | None:
    value = _attr(obj, name)
    text = str(value).strip()[:100] if value is not None else ""
    return text or None


def _xaddr(caps: Any, name: str) -> str | None:
    section = _attr(caps, name)
    xaddr = _attr(section, "XAddr")
    return str(xaddr) if xaddr else None


def _same_host(url: str, address: str, notes: list[str], what: str) -> str:
    """Cameras behind NAT or with a bad config advertise hosts we must not contact (0.0.0.0,
    another subnet). We only ever talk to the address that answered."""
    parts = urlsplit(url)
    if parts.hostname == address:
        return url
    host = f"[{address}]" if ":" in address else address
    netloc = f"{host}:{parts.port}" if parts.port else host
    notes.append(f"{what} host {parts.hostname or '?'} replaced by {address}")
    return urlunsplit(parts._replace(netloc=netloc))


def _clean_uri(
    uri: Any, address: str, notes: list[str], what: str
) -> tuple[str | None, UriCredentials | None]:
    if not uri:
        return None, None
    clean, creds = split_credentials(str(uri).strip())
    if creds is not None:
        notes.append(f"credentials removed from the {what} URI")
    scheme = urlsplit(clean).scheme
    if scheme not in {"rtsp", "rtsps", "http", "https"}:
        notes.append(f"{what} URI with scheme {scheme!r} ignored")
        return None, creds
    return _same_host(clean, address, notes, what), creds


def _profile(p: Any, stream_uri: str | None) -> Profile:
    venc = _attr(p, "VideoEncoderConfiguration")
    res = _attr(venc, "Resolution")
    rate = _attr(venc, "RateControl")
    fps = _attr(rate, "FrameRateLimit")
    return Profile(
        token=str(p.token)[:64],
        name=(_text(p, "Name") or "")[:100],
        codec=_text(venc, "Encoding"),
        width=_int(_attr(res, "Width")),
        height=_int(_attr(res, "Height")),
        fps=float(fps) if fps is not None else None,
        stream_uri=stream_uri,
    )


def _int(value: Any) -> int | None:
    try:
        n = int(value)
    except (TypeError, ValueError):
        return None
    return n if 0 < n <= 16384 else None


def _mac(ifaces: Any) -> str | None:
    for iface in ifaces or []:
        hw = _attr(_attr(iface, "Info"), "HwAddress")
        if hw:
            mac = str(hw).strip().lower().replace("-", ":")
            if len(mac) == 17:
                return mac
    return None


def _services(services: Any, address: str, notes: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for svc in services or []:
        ns, xaddr = _attr(svc, "Namespace"), _attr(svc, "XAddr")
        if ns and xaddr:
            out[str(ns)[:100]] = _same_host(str(xaddr), address, [], "service")
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
