"""RTSP (RFC 2326, RTSP/1.0) in pure asyncio, with digest or basic auth.

`describe()`: OPTIONS and DESCRIBE, and what the SDP says about the video (codec, resolution,
frame rate). Used for RTSP-only cameras (no ONVIF) and to check a stream URI: one TCP connection,
at most a handful of requests, the whole exchange bounded by one timeout and by
MAX_RESPONSE_BYTES per response.

`open_h264()` / `RtspPlayer`: the media too, for frame grabs. OPTIONS, DESCRIBE, SETUP of the
first H.264 video track with RTP over the RTSP connection (RTP/AVP/TCP, interleaved), PLAY, then
interleaved RTP depacketized by `adapters.rtp` into the current GOP as Annex-B bytes, which
OpenCV decodes from a file (no network in FFmpeg). The gateway must contact only addresses inside
a network's CIDRs, so: `allowed(host)` is checked before every connection, redirects (3xx) are
never followed, and a Content-Base or control URL naming another host is refused. One host, one
TCP connection (two if the camera closes after a 401), every wait under an asyncio timeout, so a
hanging camera holds up nobody else and a grab can be cancelled.

Credentials may come in the URI (rtsp://user:pass@host/...) or as arguments; they are never sent
in the request line, never logged, and never appear in an `RtspInfo` or an exception message.
They answer the strongest Digest challenge offered (SHA-256 over MD5, `adapters.httpauth`);
Basic sends the password in clear over plain RTSP, so it is answered only when the caller passes
`allow_basic=True` (the network's `allow_basic_over_http`), never by default.
The player's messages name neither the host nor the stream URI.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import ipaddress
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

from .base import AdapterError, CameraAuthError, CameraProtocolError, CameraUnreachable
from .httpauth import Authenticator, offered_schemes, offers_basic
from .rtp import MAX_GOP_BYTES, Gop, H264Stream, RtpError, decode_sprop
from .uris import split_credentials

log = logging.getLogger(__name__)

RTSP_DEFAULT_PORT = 554
MAX_RESPONSE_BYTES = 64 * 1024  # status line + headers + body, per response
MAX_EARLY_MEDIA_BYTES = 4 << 20  # interleaved media arriving before the answer to PLAY
DESCRIBE_RETRY_S = 0.2  # wait before the one retry of a DESCRIBE answered 503
USER_AGENT = "camgw-rtsp/1.0"

# Static RTP payload types (RFC 3551) that cameras send without an rtpmap line.
_STATIC_PT = {0: "PCMU", 8: "PCMA", 14: "MPA", 26: "JPEG", 32: "MPV", 33: "MP2T", 34: "H263"}


# ---------------------------------------------------------------------------------------------
# errors


class RtspError(AdapterError):
    """Inspecting an RTSP stream failed. Messages name the URI without credentials."""


class RtspConnectionError(RtspError, CameraUnreachable):
    """The camera could not be reached (refused, unreachable, reset)."""


class _PeerClosed(RtspConnectionError):
    """The camera closed the connection before answering (idle keep-alive ends, or after a 401)."""


class RtspAuthError(RtspError, CameraAuthError):
    """The camera wants credentials we do not have, or refused the ones we sent."""


class RtspNoCredentials(RtspAuthError):
    """The camera asks for authentication and we were given no credentials for it."""


class RtspTimeout(RtspError, CameraUnreachable):
    """No complete answer within the timeout."""


class RtspProtocolError(RtspError, CameraProtocolError):
    """The peer does not speak RTSP properly (garbage, oversized or inconsistent answer)."""


# ---------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True, slots=True)
class RtspInfo:
    uri: str  # without credentials
    codec: str | None  # encoding name of the first video stream: H264, H265, JPEG, ...
    width: int | None
    height: int | None
    fps: float | None
    profile: str | None = None  # H.264 profile name from the SPS, e.g. "Baseline", "High"
    level: float | None = None  # H.264 level, e.g. 3.1
    audio_codec: str | None = None
    auth: str = "none"  # "digest", "basic" or "none": what the camera asked for
    server: str | None = None  # the Server header
    methods: tuple[str, ...] = ()  # from OPTIONS' Public header
    elapsed_s: float = field(default=0.0, compare=False)


@dataclass(frozen=True, slots=True)
class SdpVideo:
    codec: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    profile: str | None = None
    level: float | None = None
    audio_codec: str | None = None


# ---------------------------------------------------------------------------------------------
# public API


async def describe(
    uri: str,
    username: str | None = None,
    password: str | None = None,
    timeout: float = 5.0,  # noqa: ASYNC109  (one budget for the whole exchange, applied below)
    *,
    allow_basic: bool = False,
) -> RtspInfo:
    """OPTIONS then DESCRIBE `uri`; return what the SDP says about its video.

    Credentials in the URI are used when `username` is not given. `allow_basic`: answer a
    Basic challenge (the password in clear; the network's `allow_basic_over_http`). Raises an
    `RtspError`.
    """
    session = _new_session(uri, username, password, allow_basic=allow_basic)
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            info = await session.run()
    except TimeoutError:
        raise RtspTimeout(
            f"{session.uri}: no answer to {session.stage} within {timeout:g}s"
        ) from None
    finally:
        await session.close()
    return replace(info, elapsed_s=round(time.monotonic() - started, 4))


def _new_session(
    uri: str,
    username: str | None,
    password: str | None,
    allowed: Callable[[str], bool] | None = None,
    named: bool = True,
    *,
    allow_basic: bool = False,
) -> _Session:
    """Credentials in the URI are used when `username` is not given. `named`: error messages
    start with the (credential-free) URI. `allow_basic`: Basic may answer a challenge."""
    clean_uri, uri_creds = split_credentials(uri)
    if username is None and uri_creds is not None:
        username, password = uri_creds.username, uri_creds.password
    parts = urlsplit(clean_uri)
    prefix = f"{_safe(clean_uri)}: " if named else ""
    if parts.scheme.lower() != "rtsp":
        raise RtspError(f"{prefix}not an rtsp:// URI")
    host = parts.hostname
    if not host:
        raise RtspError(f"{prefix}no host")
    try:
        port = parts.port or RTSP_DEFAULT_PORT
    except ValueError:
        raise RtspError(f"{prefix}invalid port") from None
    if not _request_uri_ok(clean_uri):
        raise RtspError(f"{prefix}invalid URI")
    session = _Session(
        clean_uri, host, port, username, password or "", allowed, allow_basic=allow_basic
    )
    session.label = clean_uri if named else None
    return session


# ---------------------------------------------------------------------------------------------
# the exchange


@dataclass(slots=True)
class _Response:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def all(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self.headers if key == name]


class _Session:
    def __init__(
        self,
        uri: str,
        host: str,
        port: int,
        username: str | None,
        password: str,
        allowed: Callable[[str], bool] | None = None,
        *,
        allow_basic: bool = False,
    ):
        self.uri = uri
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.allowed = allowed
        self.allow_basic = allow_basic  # Basic sends the password in clear: only if opted in
        self.label: str | None = uri  # prefix of error messages; None: no URI in them
        self.stage = "connect"
        self.cseq = 0
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.auth: Authenticator | None = None
        self.sent_on_connection = 0
        self.reconnect = True  # after a SETUP the session lives on this connection: no
        self.interleaved = False  # after a SETUP: RTP may come before a response
        self.early: collections.deque[tuple[int, bytes]] = collections.deque()
        self.early_bytes = 0

    # -- plumbing ---------------------------------------------------------------------------

    def _err(self, cls: type[RtspError], message: str) -> RtspError:
        text = f"{self.label}: {message}" if self.label else message
        if len(self.password) >= 4 and self.password in text:  # defence in depth
            text = text.replace(self.password, "***")
        return cls(text)

    def refuse_redirect(self, method: str, response: _Response) -> None:
        """Redirects are never followed: the target could be any host, outside the network."""
        if 300 <= response.status < 400:
            raise self._err(
                RtspProtocolError, f"{method}: redirect refused ({response.status}, not followed)"
            )

    async def connect(self) -> None:
        self.stage = "connect"
        if self.allowed is not None and not self.allowed(self.host):
            raise self._err(RtspProtocolError, "host outside the allowed address ranges")
        try:
            self.reader, self.writer = await asyncio.open_connection(
                self.host, self.port, limit=MAX_RESPONSE_BYTES
            )
            self.sent_on_connection = 0
        except ConnectionRefusedError:
            raise self._err(RtspConnectionError, "connection refused") from None
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise self._err(RtspConnectionError, f"cannot connect ({reason})") from None

    async def close(self) -> None:
        writer, self.writer, self.reader = self.writer, None, None
        if writer is None:
            return
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def request(
        self, method: str, extra: dict[str, str] | None = None, url: str | None = None
    ) -> _Response:
        """Send one request (authenticating if challenged) and return the final response.
        `url`: the request URI (default: the stream's)."""
        url = url or self.uri
        response = await self._send(method, extra, url)
        if response.status == 401:
            response = await self._authenticate(method, extra, response, url)
        return response

    async def _authenticate(
        self, method: str, extra: dict[str, str] | None, challenge: _Response, url: str
    ) -> _Response:
        """Answer a 401: once with the challenge, once more only if the camera says our nonce
        went stale. A second plain 401 means the credentials are wrong."""
        if self.username is None:
            raise self._err(RtspNoCredentials, f"{method} needs authentication; no credentials set")
        for attempt in range(2):
            offered = challenge.all("www-authenticate")
            auth = Authenticator.from_challenges(
                offered, self.username, self.password, allow_basic=self.allow_basic
            )
            if auth is None:
                if not self.allow_basic and offers_basic(offered):
                    raise self._err(
                        RtspAuthError,
                        f"{method}: the camera asks for Basic authentication over plain RTSP, "
                        "which this network does not allow (allow_basic_over_http)",
                    )
                raise self._err(
                    RtspAuthError,
                    f"{method}: unsupported authentication scheme ({offered_schemes(offered)})",
                )
            if attempt and not auth.stale:
                break
            self.auth = auth
            if (challenge.header("connection") or "").lower() == "close" and self.reconnect:
                await self.close()
            response = await self._send(method, extra, url)
            if response.status != 401:
                return response
            challenge = response
        scheme = self.auth.scheme if self.auth is not None else "?"
        raise self._err(RtspAuthError, f"{method}: credentials refused ({scheme})")

    async def _send(self, method: str, extra: dict[str, str] | None, url: str) -> _Response:
        """One request and its response; if the camera had closed a connection we already
        used (many close after a 401), reconnect and send it once more."""
        if self.writer is None or self.reader is None:
            if not self.reconnect:
                raise self._err(RtspConnectionError, f"{method}: connection closed by the camera")
            await self.connect()
        try:
            return await self._exchange(method, extra, url)
        except _PeerClosed:
            if self.sent_on_connection <= 1 or not self.reconnect:
                raise
        await self.close()
        await self.connect()
        return await self._exchange(method, extra, url)

    def write_request(self, method: str, extra: dict[str, str] | None, url: str) -> None:
        """Queue one request on the connection (its answer is read by the caller)."""
        assert self.writer is not None
        self.cseq += 1
        lines = [f"{method} {url} RTSP/1.0", f"CSeq: {self.cseq}", f"User-Agent: {USER_AGENT}"]
        for key, value in (extra or {}).items():
            lines.append(f"{key}: {value}")
        if self.auth is not None:
            lines.append(f"Authorization: {self.auth.header(method, url)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"))

    async def _exchange(self, method: str, extra: dict[str, str] | None, url: str) -> _Response:
        assert self.writer is not None and self.reader is not None
        self.sent_on_connection += 1
        self.stage = method
        try:
            self.write_request(method, extra, url)
            await self.writer.drain()
        except OSError:
            raise self._err(_PeerClosed, f"{method}: connection lost while sending") from None
        response = await self._read_response(method)
        cseq = response.header("cseq")
        if cseq is not None and cseq.strip() != str(self.cseq):
            raise self._err(
                RtspProtocolError, f"{method}: answer for CSeq {cseq[:20]!r}, not {self.cseq}"
            )
        return response

    async def _read_response(self, method: str) -> _Response:
        assert self.reader is not None
        try:
            # Look at the first bytes before waiting for a whole header block: a peer that
            # sends something else is told apart at once, not after the timeout.
            head = await self.reader.readexactly(1)
            while head == b"$" and self.interleaved:  # media before the answer (to PLAY)
                await self._stash_interleaved(method)
                head = await self.reader.readexactly(1)
            head += await self.reader.readexactly(4)
            if head != b"RTSP/":
                kind = "an HTTP" if head == b"HTTP/" else "a non-RTSP"
                raise self._err(RtspProtocolError, f"{method}: {kind} answer")
            head += await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise self._err(
                RtspProtocolError, f"{method}: response headers exceed {MAX_RESPONSE_BYTES} bytes"
            ) from None
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                raise self._err(
                    _PeerClosed, f"{method}: connection closed without an answer"
                ) from None
            raise self._err(RtspProtocolError, f"{method}: truncated answer") from None
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise self._err(_PeerClosed, f"{method}: connection lost ({reason})") from None
        status, reason, headers = self._parse_head(method, head)
        body = b""
        length_text = next((v for k, v in headers if k == "content-length"), None)
        if length_text is not None:
            try:
                length = int(length_text)
            except ValueError:
                raise self._err(RtspProtocolError, f"{method}: bad Content-Length") from None
            if length < 0 or len(head) + length > MAX_RESPONSE_BYTES:
                raise self._err(
                    RtspProtocolError, f"{method}: response larger than {MAX_RESPONSE_BYTES} bytes"
                )
            try:
                body = await self.reader.readexactly(length)
            except asyncio.IncompleteReadError:
                raise self._err(RtspProtocolError, f"{method}: truncated body") from None
            except OSError as exc:
                raise self._err(RtspConnectionError, f"{method}: connection lost") from exc
        return _Response(status, reason, headers, body)

    async def _stash_interleaved(self, method: str) -> None:
        """An interleaved frame ($, channel, length) read while waiting for an answer: kept
        for the player, within bounds."""
        assert self.reader is not None
        channel, high, low = await self.reader.readexactly(3)
        data = await self.reader.readexactly((high << 8) | low)
        self.early_bytes += len(data)
        if self.early_bytes > MAX_EARLY_MEDIA_BYTES:
            raise self._err(RtspProtocolError, f"{method}: no answer among the media packets")
        self.early.append((channel, data))

    def _parse_head(self, method: str, head: bytes) -> tuple[int, str, list[tuple[str, str]]]:
        text = head.decode("latin-1")
        lines = text.split("\r\n")
        m = re.fullmatch(r"RTSP/1\.\d (\d{3})(?: (.*))?", lines[0])
        if m is None:
            kind = "an HTTP" if lines[0].startswith("HTTP/") else "a non-RTSP"
            raise self._err(RtspProtocolError, f"{method}: {kind} answer")
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            if not line:
                continue
            if line[0] in " \t" and headers:  # obsolete line folding
                key, value = headers[-1]
                headers[-1] = (key, f"{value} {line.strip()}")
                continue
            key, sep, value = line.partition(":")
            if not sep or not key.strip():
                raise self._err(RtspProtocolError, f"{method}: malformed header line")
            headers.append((key.strip().lower(), value.strip()))
        reason = _printable(m.group(2) or "")
        return int(m.group(1)), reason, headers

    # -- the two requests -------------------------------------------------------------------

    async def options(self) -> tuple[tuple[str, ...], str | None]:
        """OPTIONS: (the methods in Public, the Server header). Some cameras answer OPTIONS
        badly (404/501) yet DESCRIBE fine: only a redirect is an error."""
        response = await self.request("OPTIONS")
        self.refuse_redirect("OPTIONS", response)
        if response.status != 200:
            return (), None
        public = response.header("public") or ""
        methods = tuple(m.strip().upper() for m in public.split(",") if m.strip())[:32]
        return methods, response.header("server")

    async def describe(self) -> _Response:
        """DESCRIBE: a 200 answer with an SDP body, else an RtspError. A 503 is retried once
        after DESCRIBE_RETRY_S (within the caller's timeout): servers answer it while a shared
        stream is still being torn down after its last client (GStreamer's RTSP server does),
        or while the encoder starts."""
        resp = await self.request("DESCRIBE", {"Accept": "application/sdp"})
        if resp.status == 503:
            await asyncio.sleep(DESCRIBE_RETRY_S)
            resp = await self.request("DESCRIBE", {"Accept": "application/sdp"})
        self.refuse_redirect("DESCRIBE", resp)
        if resp.status != 200:
            if resp.status == 404:
                raise self._err(RtspError, "DESCRIBE: no such stream (404)")
            raise self._err(RtspError, f"DESCRIBE: {resp.status} {resp.reason[:60]}".rstrip())
        content_type = (resp.header("content-type") or "application/sdp").split(";")[0].strip()
        if content_type.lower() != "application/sdp":
            raise self._err(
                RtspProtocolError, f"DESCRIBE: content type {content_type[:40]!r}, not SDP"
            )
        if not resp.body:
            raise self._err(RtspProtocolError, "DESCRIBE: empty SDP")
        return resp

    async def run(self) -> RtspInfo:
        await self.connect()
        methods, server = await self.options()
        resp = await self.describe()
        try:
            sdp = parse_sdp(resp.body.decode("utf-8", errors="replace"))
        except ValueError as exc:
            raise self._err(RtspProtocolError, f"DESCRIBE: {exc}") from None
        return RtspInfo(
            uri=self.uri,
            codec=sdp.codec,
            width=sdp.width,
            height=sdp.height,
            fps=sdp.fps,
            profile=sdp.profile,
            level=sdp.level,
            audio_codec=sdp.audio_codec,
            auth=self.auth.scheme if self.auth is not None else "none",
            server=_printable(server or resp.header("server") or "")[:80] or None,
            methods=methods,
        )


def _printable(text: str) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def _safe(uri: str) -> str:
    """A (credential-free) URI for an error message: printable, bounded."""
    return _printable(uri)[:200]


# ---------------------------------------------------------------------------------------------
# SDP


@dataclass(slots=True)
class _SdpMedia:
    kind: str  # video, audio, application, ...
    payload_types: list[int]
    attrs: dict[str, list[str]]  # attribute name (lower case) -> values, in order

    @property
    def pt(self) -> int | None:
        return self.payload_types[0] if self.payload_types else None

    def encoding(self) -> str | None:
        """The encoding name of the first payload type (rtpmap, else the static table)."""
        for entry in self.attrs.get("rtpmap", []):
            map_pt, enc = _rtpmap(entry)
            if map_pt == self.pt and enc:
                return enc
        return _STATIC_PT.get(self.pt) if self.pt is not None else None


def _sdp_media(text: str) -> list[_SdpMedia]:
    return _sdp_parse(text)[1]


def _sdp_parse(text: str) -> tuple[dict[str, list[str]], list[_SdpMedia]]:
    """(session-level attributes, media descriptions)."""
    if not text.lstrip().startswith("v="):
        raise ValueError("not an SDP document")
    session: dict[str, list[str]] = {}
    media: list[_SdpMedia] = []
    for raw_line in text.splitlines()[:2000]:
        line = raw_line.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:]
        if kind == "m":
            fields = value.split()
            pts = [int(f) for f in fields[3:] if f.isdigit()]
            media.append(_SdpMedia(fields[0].lower() if fields else "", pts, {}))
        elif kind == "a":
            attr, _, rest = value.partition(":")
            attrs = media[-1].attrs if media else session
            attrs.setdefault(attr.lower(), []).append(rest.strip())
    return session, media


def parse_sdp(text: str) -> SdpVideo:
    """Codec, resolution and frame rate of the first video stream; first audio codec."""
    media = _sdp_media(text)
    audio = next((m for m in media if m.kind == "audio"), None)
    audio_codec = audio.encoding() if audio is not None else None
    video = next((m for m in media if m.kind == "video"), None)
    if video is None:
        return SdpVideo(audio_codec=audio_codec)
    codec = video.encoding()
    width = height = None
    fps: float | None = None
    profile: str | None = None
    level: float | None = None
    if codec == "H264":
        fmtp = _fmtp(video.attrs.get("fmtp", []), video.pt)
        sps = _first_sps(fmtp.get("sprop-parameter-sets", ""))
        if sps is not None:
            width, height = sps.width, sps.height
            fps, profile, level = sps.fps, sps.profile, sps.level
    if width is None:
        width, height = _explicit_size(video.attrs, video.pt)
    fps = _explicit_fps(video.attrs) or fps
    return SdpVideo(codec, width, height, fps, profile, level, audio_codec)


def _rtpmap(entry: str) -> tuple[int | None, str | None]:
    """'96 H264/90000' -> (96, 'H264')"""
    pt_text, _, enc = entry.strip().partition(" ")
    name = enc.strip().split("/", 1)[0].upper() or None
    return (int(pt_text) if pt_text.isdigit() else None), name


def _fmtp(entries: list[str], pt: int | None) -> dict[str, str]:
    for entry in entries:
        pt_text, _, params = entry.partition(" ")
        if pt is not None and pt_text.strip() != str(pt):
            continue
        out: dict[str, str] = {}
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key:
                out[key.strip().lower()] = value.strip()
        return out
    return {}


def _explicit_size(attrs: dict[str, list[str]], pt: int | None) -> tuple[int | None, int | None]:
    for entry in attrs.get("framesize", []):  # a=framesize:96 1280-720
        m = re.fullmatch(r"(\d+)\s+(\d+)-(\d+)", entry)
        if m and (pt is None or int(m.group(1)) == pt):
            return _sane(int(m.group(2)), int(m.group(3)))
    for entry in attrs.get("x-dimensions", []):  # a=x-dimensions:1280,720
        m = re.fullmatch(r"(\d+)\s*,\s*(\d+)", entry)
        if m:
            return _sane(int(m.group(1)), int(m.group(2)))
    return None, None


def _explicit_fps(attrs: dict[str, list[str]]) -> float | None:
    for entry in attrs.get("framerate", []) + attrs.get("x-framerate", []):
        try:
            value = float(entry)
        except ValueError:
            continue
        if 0 < value <= 1000:
            return value
    return None


def _sane(width: int, height: int) -> tuple[int | None, int | None]:
    if 0 < width <= 16384 and 0 < height <= 16384:
        return width, height
    return None, None


# ---------------------------------------------------------------------------------------------
# H.264 sequence parameter set (ITU-T H.264 section 7.3.2.1.1), just enough for size and rate

_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}
_PROFILE_NAMES = {
    66: "Baseline",
    77: "Main",
    88: "Extended",
    100: "High",
    110: "High 10",
    122: "High 4:2:2",
    244: "High 4:4:4 Predictive",
    44: "CAVLC 4:4:4 Intra",
}


@dataclass(frozen=True, slots=True)
class H264Sps:
    profile_idc: int
    level_idc: int
    width: int
    height: int
    fps: float | None

    @property
    def profile(self) -> str:
        name = _PROFILE_NAMES.get(self.profile_idc, f"profile {self.profile_idc}")
        return name

    @property
    def level(self) -> float:
        return self.level_idc / 10


class _Bits:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0  # in bits

    def u(self, n: int) -> int:
        if self.pos + n > len(self.data) * 8:
            raise ValueError("SPS truncated")
        value = 0
        for _ in range(n):
            byte = self.data[self.pos >> 3]
            value = (value << 1) | ((byte >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return value

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("SPS exp-Golomb code too long")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


def _unescape_rbsp(nal: bytes) -> bytes:
    """Drop emulation-prevention bytes (00 00 03 -> 00 00)."""
    return re.sub(rb"\x00\x00\x03", b"\x00\x00", nal)


def _first_sps(sprop: str) -> H264Sps | None:
    for item in sprop.split(","):
        try:
            nal = base64.b64decode(item.strip() + "=" * (-len(item.strip()) % 4), validate=True)
        except ValueError:
            continue
        if nal and nal[0] & 0x1F == 7:
            try:
                return parse_h264_sps(nal)
            except ValueError:
                log.debug("unparseable H.264 SPS in SDP")
                return None
    return None


def parse_h264_sps(nal: bytes) -> H264Sps:
    """Parse an SPS NAL unit (with its one-byte NAL header). Raises ValueError if malformed."""
    if len(nal) < 4 or nal[0] & 0x1F != 7:
        raise ValueError("not an SPS NAL unit")
    if len(nal) > 1024:
        raise ValueError("SPS too long")
    b = _Bits(_unescape_rbsp(nal[1:]))
    profile_idc = b.u(8)
    b.u(8)  # constraint_set flags + reserved
    level_idc = b.u(8)
    b.ue()  # seq_parameter_set_id
    chroma_format_idc, separate_colour_plane = 1, 0
    if profile_idc in _HIGH_PROFILES:
        chroma_format_idc, separate_colour_plane = _high_profile_fields(b)
    b.ue()  # log2_max_frame_num_minus4
    _skip_pic_order_cnt(b)
    b.ue()  # max_num_ref_frames
    b.u(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs = b.ue() + 1
    height_map_units = b.ue() + 1
    frame_mbs_only = b.u(1)
    if not frame_mbs_only:
        b.u(1)  # mb_adaptive_frame_field_flag
    b.u(1)  # direct_8x8_inference_flag
    crop_left = crop_right = crop_top = crop_bottom = 0
    if b.u(1):  # frame_cropping_flag
        crop_left, crop_right, crop_top, crop_bottom = b.ue(), b.ue(), b.ue(), b.ue()

    chroma_array_type = 0 if separate_colour_plane else chroma_format_idc
    if chroma_array_type == 0:
        crop_x, crop_y = 1, 2 - frame_mbs_only
    else:
        sub_w = 1 if chroma_array_type == 3 else 2
        sub_h = 2 if chroma_array_type == 1 else 1
        crop_x, crop_y = sub_w, sub_h * (2 - frame_mbs_only)
    width = width_mbs * 16 - crop_x * (crop_left + crop_right)
    height = (2 - frame_mbs_only) * height_map_units * 16 - crop_y * (crop_top + crop_bottom)
    if not (0 < width <= 16384 and 0 < height <= 16384):
        raise ValueError("implausible SPS dimensions")

    fps: float | None = None
    try:
        if b.u(1):  # vui_parameters_present_flag
            fps = _vui_fps(b)
    except ValueError:
        fps = None  # a truncated VUI still leaves the size known
    return H264Sps(profile_idc, level_idc, width, height, fps)


def _high_profile_fields(b: _Bits) -> tuple[int, int]:
    """chroma_format_idc and separate_colour_plane_flag; skips the rest of the high-profile part."""
    chroma_format_idc = b.ue()
    if chroma_format_idc > 3:
        raise ValueError("bad chroma_format_idc")
    separate_colour_plane = b.u(1) if chroma_format_idc == 3 else 0
    b.ue()  # bit_depth_luma_minus8
    b.ue()  # bit_depth_chroma_minus8
    b.u(1)  # qpprime_y_zero_transform_bypass_flag
    if b.u(1):  # seq_scaling_matrix_present_flag
        for i in range(8 if chroma_format_idc != 3 else 12):
            if b.u(1):  # seq_scaling_list_present_flag[i]
                _skip_scaling_list(b, 16 if i < 6 else 64)
    return chroma_format_idc, separate_colour_plane


def _skip_pic_order_cnt(b: _Bits) -> None:
    poc_type = b.ue()
    if poc_type == 0:
        b.ue()  # log2_max_pic_order_cnt_lsb_minus4
    elif poc_type == 1:
        b.u(1)  # delta_pic_order_always_zero_flag
        b.se()  # offset_for_non_ref_pic
        b.se()  # offset_for_top_to_bottom_field
        cycle = b.ue()
        if cycle > 255:
            raise ValueError("bad num_ref_frames_in_pic_order_cnt_cycle")
        for _ in range(cycle):
            b.se()
    elif poc_type != 2:
        raise ValueError("bad pic_order_cnt_type")


def _skip_scaling_list(b: _Bits, size: int) -> None:
    last = nxt = 8
    for _ in range(size):
        if nxt != 0:
            nxt = (last + b.se() + 256) % 256
        last = nxt if nxt != 0 else last


def _vui_fps(b: _Bits) -> float | None:
    if b.u(1) and b.u(8) == 255:  # aspect_ratio_info_present_flag, aspect_ratio_idc Extended_SAR
        b.u(32)  # sar_width, sar_height
    if b.u(1):  # overscan_info_present_flag
        b.u(1)
    if b.u(1):  # video_signal_type_present_flag
        b.u(3)
        b.u(1)
        if b.u(1):  # colour_description_present_flag
            b.u(24)
    if b.u(1):  # chroma_loc_info_present_flag
        b.ue()
        b.ue()
    if b.u(1):  # timing_info_present_flag
        num_units_in_tick = b.u(32)
        time_scale = b.u(32)
        if num_units_in_tick > 0 and time_scale > 0:
            fps = time_scale / (2 * num_units_in_tick)
            if 0 < fps <= 1000:
                return round(fps, 3)
    return None


# ---------------------------------------------------------------------------------------------
# media: SETUP, PLAY and interleaved RTP for one H.264 track

RTSP_TRANSPORT = "RTP/AVP/TCP;unicast;interleaved=0-1"
_SESSION_ID_RE = re.compile(r"[A-Za-z0-9$\-_.+]{1,128}")
_METHOD_START = re.compile(rb"[A-Z_]{4}")  # a request from the camera: SET_PARAMETER, ANNOUNCE


def _request_uri_ok(uri: str) -> bool:
    """Safe to put in a request line: printable ASCII, no spaces, bounded."""
    return 0 < len(uri) <= 1024 and all(0x21 <= ord(ch) < 0x7F for ch in uri)


@dataclass(frozen=True, slots=True)
class H264Track:
    payload_type: int | None
    setup_url: str  # the track's control URL
    play_url: str  # the aggregate control URL (PLAY, TEARDOWN)
    parameter_sets: tuple[bytes, ...]  # from sprop-parameter-sets


class RtspPlayer:
    """One H.264 stream over RTSP with RTP interleaved on the RTSP connection.

        async with await open_h264(uri, user, pw, allowed=allowed, timeout=4) as player:
            gop = await player.keyframe()  # parameter sets + the first IDR, Annex-B

    or `await player.run(on_frame, stop)` to keep reading (warm streams); `player.gop()` is then
    the current GOP up to its newest frame. `start()` is bounded by `timeout`; while reading, no
    media for `read_timeout` is an `RtspTimeout`. Messages name neither host nor credentials.
    `allow_basic`: answer a Basic challenge (the password in clear over plain RTSP).
    """

    def __init__(
        self,
        uri: str,
        username: str | None = None,
        password: str | None = None,
        *,
        allowed: Callable[[str], bool],
        timeout: float = 5.0,  # bounds start()
        read_timeout: float | None = None,
        max_gop_bytes: int = MAX_GOP_BYTES,
        allow_basic: bool = False,
    ) -> None:
        self._session = _new_session(
            uri, username, password, allowed, named=False, allow_basic=allow_basic
        )
        self.timeout = timeout
        self.read_timeout = read_timeout if read_timeout is not None else max(timeout, 2.0)
        self.max_gop_bytes = max_gop_bytes
        self.stream = H264Stream(max_gop_bytes=max_gop_bytes)
        self.track: H264Track | None = None
        self.methods: tuple[str, ...] = ()
        self.session_id: str | None = None
        self.session_timeout_s = 60.0
        self._rtp_channel = 0
        self._next_keepalive = 0.0
        self._playing = False
        self._closed = False

    def __repr__(self) -> str:
        return "RtspPlayer(H.264)"

    @property
    def stage(self) -> str:
        return self._session.stage

    def _err(self, cls: type[RtspError], message: str) -> RtspError:
        return self._session._err(cls, message)

    # -- opening ------------------------------------------------------------------------------

    async def start(self) -> None:
        """OPTIONS, DESCRIBE, SETUP, PLAY within `timeout`. Raises an RtspError."""
        s = self._session
        try:
            async with asyncio.timeout(self.timeout):
                await s.connect()
                self.methods, _ = await s.options()
                described = await s.describe()
                self.track = self._h264_track(described)
                await self._setup(self.track)
                await self._play(self.track)
        except TimeoutError:
            raise self._err(
                RtspTimeout, f"no answer to {s.stage} within {self.timeout:g}s"
            ) from None
        s.stage = "media"

    def _h264_track(self, described: _Response) -> H264Track:
        try:
            session_attrs, media = _sdp_parse(described.body.decode("utf-8", errors="replace"))
        except ValueError as exc:
            raise self._err(RtspProtocolError, f"DESCRIBE: {exc}") from None
        videos = [m for m in media if m.kind == "video"]
        video = next((m for m in videos if m.encoding() == "H264"), None)
        if video is None:
            codecs = ", ".join(sorted({m.encoding() or "unknown" for m in videos})) or "none"
            raise self._err(RtspProtocolError, f"DESCRIBE: no H.264 video track (video: {codecs})")
        fmtp = _fmtp(video.attrs.get("fmtp", []), video.pt)
        mode = fmtp.get("packetization-mode", "0").strip() or "0"
        if mode not in ("0", "1"):
            raise self._err(
                RtspProtocolError, f"DESCRIBE: H.264 packetization-mode {mode[:8]} not supported"
            )
        base = (
            described.header("content-base")
            or described.header("content-location")
            or self._session.uri
        )
        base = self._same_host_url("DESCRIBE: Content-Base", base)
        control = (video.attrs.get("control") or [""])[0]
        setup_url = self._same_host_url("DESCRIBE: control URL", _resolve_control(base, control))
        aggregate = (session_attrs.get("control") or [""])[0]
        play_url = self._same_host_url("DESCRIBE: control URL", _resolve_control(base, aggregate))
        sprop = tuple(decode_sprop(fmtp.get("sprop-parameter-sets", "")))
        return H264Track(video.pt, setup_url, play_url, sprop)

    def _same_host_url(self, what: str, url: str) -> str:
        """`url` without userinfo, if it names the stream's own host; else refused."""
        clean, _ = split_credentials(url.strip())
        try:
            parts = urlsplit(clean)
            host = parts.hostname or ""
            _ = parts.port
        except ValueError:
            raise self._err(RtspProtocolError, f"{what} is not a valid URL") from None
        if parts.scheme.lower() != "rtsp" or not _request_uri_ok(clean):
            raise self._err(RtspProtocolError, f"{what} is not a valid rtsp:// URL")
        allowed = self._session.allowed
        if not _same_host(host, self._session.host) or (allowed is not None and not allowed(host)):
            raise self._err(RtspProtocolError, f"{what} names another host: refused")
        return clean

    async def _setup(self, track: H264Track) -> None:
        s = self._session
        resp = await s.request("SETUP", {"Transport": RTSP_TRANSPORT}, track.setup_url)
        s.refuse_redirect("SETUP", resp)
        if resp.status == 461:
            raise self._err(RtspProtocolError, "SETUP: the camera refuses RTP over TCP (461)")
        if resp.status != 200:
            raise self._err(RtspError, f"SETUP: {resp.status} {resp.reason[:60]}".rstrip())
        transport = (resp.header("transport") or "").lower()
        m = re.search(r"interleaved=(\d+)(?:-(\d+))?", transport)
        if "tcp" not in transport or m is None or int(m.group(1)) > 255:
            raise self._err(RtspProtocolError, "SETUP: the camera did not agree to RTP over TCP")
        self._rtp_channel = int(m.group(1))
        session = resp.header("session") or ""
        session_id, _, params = session.partition(";")
        session_id = session_id.strip()
        if not _SESSION_ID_RE.fullmatch(session_id):
            raise self._err(RtspProtocolError, "SETUP: no valid Session header")
        self.session_id = session_id
        t = re.search(r"timeout\s*=\s*(\d+)", params)
        if t is not None and 5 <= int(t.group(1)) <= 3600:
            self.session_timeout_s = float(t.group(1))
        s.reconnect = False  # the session lives on this connection now
        s.interleaved = True
        self.stream = H264Stream(track.payload_type, list(track.parameter_sets), self.max_gop_bytes)

    async def _play(self, track: H264Track) -> None:
        s = self._session
        assert self.session_id is not None
        extra = {"Session": self.session_id, "Range": "npt=0.000-"}
        resp = await s.request("PLAY", extra, track.play_url)
        s.refuse_redirect("PLAY", resp)
        if resp.status != 200:
            raise self._err(RtspError, f"PLAY: {resp.status} {resp.reason[:60]}".rstrip())
        self._playing = True
        self._next_keepalive = time.monotonic() + self.session_timeout_s / 2

    # -- reading ------------------------------------------------------------------------------

    async def keyframe(self) -> Gop:
        """The parameter sets and the first IDR access unit (waits for it; bounded by the
        caller's timeout and by `read_timeout` between packets)."""
        self._session.stage = "first keyframe"
        while not self.stream.has_gop:
            await self._advance()
        gop = self.stream.keyframe()
        assert gop is not None
        return gop

    def gop(self) -> Gop | None:
        """The current GOP up to its newest access unit (None before the first IDR)."""
        return self.stream.gop()

    async def run(self, on_frame: Callable[[], None], stop: Callable[[], bool]) -> None:
        """Read until `stop()` (checked after every frame); `on_frame()` after each one."""
        self._session.stage = "media"
        while not stop():
            await self._advance()
            on_frame()

    async def _advance(self) -> None:
        """Read packets until one access unit joins the current GOP."""
        while True:
            if self._playing and time.monotonic() >= self._next_keepalive:
                self._keepalive()
            channel, data = await self._next_packet()
            if channel != self._rtp_channel:
                continue  # RTCP, or another track
            try:
                if self.stream.feed(data):
                    return
            except RtpError as exc:
                raise self._err(RtspProtocolError, f"media: {exc}") from None

    async def _next_packet(self) -> tuple[int, bytes]:
        s = self._session
        while True:
            if s.early:
                return s.early.popleft()
            try:
                async with asyncio.timeout(self.read_timeout):
                    item = await self._read_interleaved()
            except TimeoutError:
                raise self._err(
                    RtspTimeout, f"no media within {self.read_timeout:g}s ({s.stage})"
                ) from None
            if item is not None:
                return item

    async def _read_interleaved(self) -> tuple[int, bytes] | None:
        """One interleaved frame (channel, data); None for an RTSP message (an answer to a
        keep-alive, or a request from the camera), which is read and ignored."""
        reader = self._session.reader
        if reader is None:
            raise self._err(RtspConnectionError, "stream: connection closed")
        try:
            head = await reader.readexactly(4)
            if head[0] == 0x24:  # '$', channel, 16-bit length
                return head[1], await reader.readexactly((head[2] << 8) | head[3])
            if head == b"RTSP" or _METHOD_START.fullmatch(head):
                await self._skip_message(reader)
                return None
        except asyncio.IncompleteReadError:
            raise self._err(
                RtspConnectionError, "stream: connection closed by the camera"
            ) from None
        except asyncio.LimitOverrunError:
            raise self._err(
                RtspProtocolError, f"stream: message headers exceed {MAX_RESPONSE_BYTES} bytes"
            ) from None
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise self._err(RtspConnectionError, f"stream: connection lost ({reason})") from None
        raise self._err(RtspProtocolError, "stream: garbage among the interleaved media")

    async def _skip_message(self, reader: asyncio.StreamReader) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        m = re.search(rb"(?im)^content-length[ \t]*:[ \t]*(\d{1,9})[ \t]*\r?$", head)
        length = int(m.group(1)) if m else 0
        if length > MAX_RESPONSE_BYTES:
            raise self._err(RtspProtocolError, "stream: oversized RTSP message among the media")
        if length:
            await reader.readexactly(length)

    def _keepalive(self) -> None:
        """GET_PARAMETER (or OPTIONS) within the session timeout; its answer is skipped by
        the reader. Best effort: a failed write shows up as a closed stream."""
        self._next_keepalive = time.monotonic() + self.session_timeout_s / 2
        s = self._session
        if s.writer is None or self.session_id is None or self.track is None:
            return
        method = "GET_PARAMETER" if "GET_PARAMETER" in self.methods else "OPTIONS"
        with contextlib.suppress(OSError, RuntimeError):
            s.write_request(method, {"Session": self.session_id}, self.track.play_url)

    # -- closing ------------------------------------------------------------------------------

    async def close(self) -> None:
        """TEARDOWN (not waiting for its answer) and close the connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        s = self._session
        if self._playing or self.session_id is not None:
            self._playing = False
            if s.writer is not None and self.track is not None and self.session_id is not None:
                with contextlib.suppress(OSError, RuntimeError, TimeoutError):
                    s.write_request("TEARDOWN", {"Session": self.session_id}, self.track.play_url)
                    async with asyncio.timeout(0.5):
                        await s.writer.drain()
        await s.close()

    async def __aenter__(self) -> RtspPlayer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def open_h264(
    uri: str,
    username: str | None = None,
    password: str | None = None,
    *,
    allowed: Callable[[str], bool],
    timeout: float = 5.0,  # noqa: ASYNC109  (bounds the handshake, applied in start())
    max_gop_bytes: int = MAX_GOP_BYTES,
    allow_basic: bool = False,
) -> RtspPlayer:
    """An `RtspPlayer` playing `uri` (closed again if the handshake fails)."""
    player = RtspPlayer(
        uri,
        username,
        password,
        allowed=allowed,
        timeout=timeout,
        max_gop_bytes=max_gop_bytes,
        allow_basic=allow_basic,
    )
    try:
        await player.start()
    except BaseException:
        await player.close()
        raise
    return player


def _resolve_control(base: str, control: str) -> str:
    """RFC 2326 C.1.1: an absolute control URL, "*" (the base), or one relative to the base."""
    control = control.strip()
    if not control or control == "*":
        return base
    if re.match(r"(?i)^[a-z][a-z0-9+.-]*://", control):
        return control
    if control.startswith("/"):
        parts = urlsplit(base)
        return urlunsplit((parts.scheme, parts.netloc, control, "", ""))
    return base + ("" if base.endswith("/") else "/") + control


def _same_host(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a.lower().rstrip(".") == b.lower().rstrip(".")
