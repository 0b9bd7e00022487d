"""RTSP inspection of a camera: OPTIONS and DESCRIBE (RTSP/1.0), with digest or basic auth, and
what the SDP says about the video (codec, resolution, frame rate).

Used for RTSP-only cameras (no ONVIF) and to check a stream URI. Pure asyncio streams, no media:
one TCP connection, at most a handful of requests, the whole exchange bounded by one timeout and
by MAX_RESPONSE_BYTES per response.

Credentials may come in the URI (rtsp://user:pass@host/...) or as arguments; they are never sent
in the request line, never logged, and never appear in an `RtspInfo` or an exception message.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
import time
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from .base import AdapterError, CameraAuthError, CameraProtocolError, CameraUnreachable
from .httpauth import Authenticator
from .uris import split_credentials

log = logging.getLogger(__name__)

RTSP_DEFAULT_PORT = 554
MAX_RESPONSE_BYTES = 64 * 1024  # status line + headers + body, per response
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
) -> RtspInfo:
    """OPTIONS then DESCRIBE `uri`; return what the SDP says about its video.

    Credentials in the URI are used when `username` is not given. Raises an `RtspError`.
    """
    clean_uri, uri_creds = split_credentials(uri)
    if username is None and uri_creds is not None:
        username, password = uri_creds.username, uri_creds.password
    parts = urlsplit(clean_uri)
    if parts.scheme.lower() != "rtsp":
        raise RtspError(f"{_safe(clean_uri)}: not an rtsp:// URI")
    host = parts.hostname
    if not host:
        raise RtspError(f"{_safe(clean_uri)}: no host")
    try:
        port = parts.port or RTSP_DEFAULT_PORT
    except ValueError:
        raise RtspError(f"{_safe(clean_uri)}: invalid port") from None
    session = _Session(clean_uri, host, port, username, password or "")
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            info = await session.run()
    except TimeoutError:
        raise RtspTimeout(
            f"{clean_uri}: no answer to {session.stage} within {timeout:g}s"
        ) from None
    finally:
        await session.close()
    return replace(info, elapsed_s=round(time.monotonic() - started, 4))


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
    def __init__(self, uri: str, host: str, port: int, username: str | None, password: str):
        self.uri = uri
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.stage = "connect"
        self.cseq = 0
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.auth: Authenticator | None = None
        self.sent_on_connection = 0

    # -- plumbing ---------------------------------------------------------------------------

    def _err(self, cls: type[RtspError], message: str) -> RtspError:
        text = f"{self.uri}: {message}"
        if len(self.password) >= 4 and self.password in text:  # defence in depth
            text = text.replace(self.password, "***")
        return cls(text)

    async def connect(self) -> None:
        self.stage = "connect"
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

    async def request(self, method: str, extra: dict[str, str] | None = None) -> _Response:
        """Send one request (authenticating if challenged) and return the final response."""
        response = await self._send(method, extra)
        if response.status == 401:
            response = await self._authenticate(method, extra, response)
        return response

    async def _authenticate(
        self, method: str, extra: dict[str, str] | None, challenge: _Response
    ) -> _Response:
        """Answer a 401: once with the challenge, once more only if the camera says our nonce
        went stale. A second plain 401 means the credentials are wrong."""
        if self.username is None:
            raise self._err(RtspAuthError, f"{method} needs authentication; no credentials set")
        for attempt in range(2):
            offered = challenge.all("www-authenticate")
            auth = Authenticator.from_challenges(offered, self.username, self.password)
            if auth is None:
                schemes = ", ".join(sorted({c.split(" ", 1)[0] for c in offered if c}))
                raise self._err(
                    RtspAuthError,
                    f"{method}: unsupported authentication scheme ({schemes or 'no challenge'})",
                )
            if attempt and not auth.stale:
                break
            self.auth = auth
            if (challenge.header("connection") or "").lower() == "close":
                await self.close()
            response = await self._send(method, extra)
            if response.status != 401:
                return response
            challenge = response
        scheme = self.auth.scheme if self.auth is not None else "?"
        raise self._err(RtspAuthError, f"{method}: credentials refused ({scheme})")

    async def _send(self, method: str, extra: dict[str, str] | None) -> _Response:
        """One request and its response; if the camera had closed a connection we already
        used (many close after a 401), reconnect and send it once more."""
        if self.writer is None or self.reader is None:
            await self.connect()
        try:
            return await self._exchange(method, extra)
        except _PeerClosed:
            if self.sent_on_connection <= 1:
                raise
        await self.close()
        await self.connect()
        return await self._exchange(method, extra)

    async def _exchange(self, method: str, extra: dict[str, str] | None) -> _Response:
        assert self.writer is not None and self.reader is not None
        self.sent_on_connection += 1
        self.stage = method
        self.cseq += 1
        lines = [f"{method} {self.uri} RTSP/1.0", f"CSeq: {self.cseq}", f"User-Agent: {USER_AGENT}"]
        for key, value in (extra or {}).items():
            lines.append(f"{key}: {value}")
        if self.auth is not None:
            lines.append(f"Authorization: {self.auth.header(method, self.uri)}")
        try:
            self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"))
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
            head = await self.reader.readexactly(5)
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

    async def run(self) -> RtspInfo:
        await self.connect()
        methods: tuple[str, ...] = ()
        server: str | None = None
        options = await self.request("OPTIONS")
        if options.status == 200:
            public = options.header("public") or ""
            methods = tuple(m.strip().upper() for m in public.split(",") if m.strip())[:32]
            server = options.header("server")
        elif 300 <= options.status < 400:
            raise self._err(RtspError, f"OPTIONS: redirected ({options.status}), not followed")
        # Some cameras answer OPTIONS badly (404/501) yet DESCRIBE fine: go on regardless.
        resp = await self.request("DESCRIBE", {"Accept": "application/sdp"})
        if resp.status != 200:
            if 300 <= resp.status < 400:
                raise self._err(RtspError, f"DESCRIBE: redirected ({resp.status}), not followed")
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
    if not text.lstrip().startswith("v="):
        raise ValueError("not an SDP document")
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
        elif kind == "a" and media:  # session-level attributes are not needed
            attr, _, rest = value.partition(":")
            media[-1].attrs.setdefault(attr.lower(), []).append(rest.strip())
    return media


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
