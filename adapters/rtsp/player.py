"""Playing one video track of an RTSP stream: OPTIONS, DESCRIBE, SETUP of the first video track
in a codec we decode (H.264, H.265, MJPEG) with RTP interleaved on the RTSP connection
(RTP/AVP/TCP), PLAY, then each RTP packet into the codec's stream (h264.py, h265.py, mjpeg.py),
which keeps the current GOP; keep-alives within the session timeout; TEARDOWN.

    async with await open_stream(uri, user, pw, allowed=allowed, timeout=4) as player:
        gop = await player.keyframe()  # the first keyframe (parameter sets in front)

or `await player.run(on_frame, stop)` to keep reading (warm streams); `player.gop()` is then the
current GOP up to its newest frame. Messages name neither host nor credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from .errors import RtpError, RtspConnectionError, RtspError, RtspProtocolError, RtspTimeout
from .h264 import H264Stream
from .h265 import H265Stream
from .mjpeg import JpegStream
from .rtp import MAX_GOP_BYTES, Gop, MediaStream
from .sdp import SdpMedia
from .sdp import parse as parse_sdp_document
from .transport import Response, new_connection, resolve_control

RTSP_TRANSPORT = "RTP/AVP/TCP;unicast;interleaved=0-1"
_SESSION_ID_RE = re.compile(r"[A-Za-z0-9$\-_.+]{1,128}")

StreamFactory = Callable[[SdpMedia, int], MediaStream]

# The codecs we play, by SDP encoding name: each builds its stream from the media description.
STREAMS: dict[str, StreamFactory] = {
    "H264": lambda media, cap: H264Stream.from_sdp(media.pt, media.fmtp(), cap),
    "H265": lambda media, cap: H265Stream.from_sdp(media.pt, media.fmtp(), cap),
    "JPEG": lambda media, cap: JpegStream.from_sdp(
        media.pt, media.fmtp(), cap, media.explicit_size()
    ),
}


@dataclass(frozen=True, slots=True)
class Track:
    codec: str  # SDP encoding name: H264, H265, JPEG
    media: SdpMedia
    setup_url: str  # the track's control URL
    play_url: str  # the aggregate control URL (PLAY, TEARDOWN)


class RtspPlayer:
    """One video track over RTSP with RTP interleaved on the RTSP connection.

    `start()` is bounded by `timeout`; while reading, no media for `read_timeout` is an
    `RtspTimeout`. `max_gop_bytes` bounds the GOP (one picture for MJPEG) kept in memory.
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
        self._conn = new_connection(
            uri, username, password, allowed, named=False, allow_basic=allow_basic
        )
        self.timeout = timeout
        self.read_timeout = read_timeout if read_timeout is not None else max(timeout, 2.0)
        self.max_gop_bytes = max_gop_bytes
        self.stream: MediaStream | None = None  # after SETUP
        self.track: Track | None = None
        self.methods: tuple[str, ...] = ()
        self.session_id: str | None = None
        self.session_timeout_s = 60.0
        self._rtp_channel = 0
        self._next_keepalive = 0.0
        self._playing = False
        self._closed = False

    def __repr__(self) -> str:
        return f"RtspPlayer({self.codec or 'not started'})"

    @property
    def stage(self) -> str:
        return self._conn.stage

    @property
    def codec(self) -> str | None:
        return self.track.codec if self.track is not None else None

    @property
    def has_gop(self) -> bool:
        return self.stream is not None and self.stream.has_gop

    @property
    def dropped_gops(self) -> int:
        return self.stream.dropped_gops if self.stream is not None else 0

    def _err(self, cls: type[RtspError], message: str) -> RtspError:
        return self._conn.error(cls, message)

    # -- opening ------------------------------------------------------------------------------

    async def start(self) -> None:
        """OPTIONS, DESCRIBE, SETUP, PLAY within `timeout`. Raises an RtspError."""
        conn = self._conn
        try:
            async with asyncio.timeout(self.timeout):
                await conn.connect()
                self.methods, _ = await conn.options()
                described = await conn.describe()
                self.track = self._video_track(described)
                await self._setup(self.track)
                await self._play(self.track)
        except TimeoutError:
            raise self._err(
                RtspTimeout, f"no answer to {conn.stage} within {self.timeout:g}s"
            ) from None
        conn.stage = "media"

    def _video_track(self, described: Response) -> Track:
        try:
            sdp = parse_sdp_document(described.body.decode("utf-8", errors="replace"))
        except ValueError as exc:
            raise self._err(RtspProtocolError, f"DESCRIBE: {exc}") from None
        videos = sdp.videos()
        video = next((m for m in videos if m.encoding() in STREAMS), None)
        if video is None:
            codecs = ", ".join(sorted({m.encoding() or "unknown" for m in videos})) or "none"
            raise self._err(
                RtspProtocolError,
                f"DESCRIBE: no H.264, H.265 or MJPEG video track (video: {codecs[:80]})",
            )
        codec = video.encoding()
        assert codec is not None
        try:  # refuse what we cannot depacketize before any SETUP
            STREAMS[codec](video, self.max_gop_bytes)
        except RtpError as exc:
            raise self._err(RtspProtocolError, f"DESCRIBE: {exc}") from None
        conn = self._conn
        base = described.header("content-base") or described.header("content-location") or conn.uri
        base = conn.same_host_url("DESCRIBE: Content-Base", base)
        setup = resolve_control(base, video.control())
        play = resolve_control(base, sdp.control())
        return Track(
            codec,
            video,
            conn.same_host_url("DESCRIBE: control URL", setup),
            conn.same_host_url("DESCRIBE: control URL", play),
        )

    async def _setup(self, track: Track) -> None:
        conn = self._conn
        resp = await conn.request("SETUP", {"Transport": RTSP_TRANSPORT}, track.setup_url)
        conn.refuse_redirect("SETUP", resp)
        if resp.status == 461:
            raise self._err(RtspProtocolError, "SETUP: the camera refuses RTP over TCP (461)")
        if resp.status != 200:
            raise self._err(RtspError, f"SETUP: {resp.status} {resp.reason[:60]}".rstrip())
        transport = (resp.header("transport") or "").lower()
        m = re.search(r"interleaved=(\d{1,3})(?:-(\d{1,3}))?", transport)
        if "tcp" not in transport or m is None or int(m.group(1)) > 255:
            raise self._err(RtspProtocolError, "SETUP: the camera did not agree to RTP over TCP")
        self._rtp_channel = int(m.group(1))
        session = resp.header("session") or ""
        session_id, _, params = session.partition(";")
        session_id = session_id.strip()
        if not _SESSION_ID_RE.fullmatch(session_id):
            raise self._err(RtspProtocolError, "SETUP: no valid Session header")
        self.session_id = session_id
        t = re.search(r"timeout\s*=\s*(\d{1,6})", params)
        if t is not None and 5 <= int(t.group(1)) <= 3600:
            self.session_timeout_s = float(t.group(1))
        conn.reconnect = False  # the session lives on this connection now
        conn.interleaved = True
        self.stream = STREAMS[track.codec](track.media, self.max_gop_bytes)

    async def _play(self, track: Track) -> None:
        conn = self._conn
        assert self.session_id is not None
        # No Range: a live stream plays from now (RFC 2326 10.5). "Range: npt=0.000-" makes
        # GStreamer's RTSP server seek a shared live stream, and every other client of the
        # camera loses packets and its GOP (measured: 7 gaps in 8 joins; none without it).
        resp = await conn.request("PLAY", {"Session": self.session_id}, track.play_url)
        conn.refuse_redirect("PLAY", resp)
        if resp.status != 200:
            raise self._err(RtspError, f"PLAY: {resp.status} {resp.reason[:60]}".rstrip())
        self._playing = True
        self._next_keepalive = time.monotonic() + self.session_timeout_s / 2

    # -- reading ------------------------------------------------------------------------------

    async def keyframe(self) -> Gop:
        """The first keyframe (waits for it; bounded by the caller's timeout and by
        `read_timeout` between packets)."""
        self._conn.stage = "first keyframe"
        while self.stream is None or not self.stream.has_gop:
            await self._advance()
        assert self.stream is not None
        gop = self.stream.keyframe()
        assert gop is not None
        return gop

    def gop(self) -> Gop | None:
        """The current GOP up to its newest unit (None before the first keyframe)."""
        return self.stream.gop() if self.stream is not None else None

    async def run(self, on_frame: Callable[[], None], stop: Callable[[], bool]) -> None:
        """Read until `stop()` (checked after every frame); `on_frame()` after each one."""
        self._conn.stage = "media"
        while not stop():
            await self._advance()
            on_frame()

    async def _advance(self) -> None:
        """Read packets until one unit (an access unit, a picture) joins the current GOP."""
        stream = self.stream
        if stream is None:
            raise self._err(RtspConnectionError, "stream: not playing")
        while True:
            if self._playing and time.monotonic() >= self._next_keepalive:
                self._keepalive()
            try:
                async with asyncio.timeout(self.read_timeout):
                    channel, data = await self._conn.next_interleaved()
            except TimeoutError:
                raise self._err(
                    RtspTimeout, f"no media within {self.read_timeout:g}s ({self.stage})"
                ) from None
            if channel != self._rtp_channel:
                continue  # RTCP, or another track
            try:
                if stream.feed(data):
                    return
            except RtpError as exc:
                raise self._err(RtspProtocolError, f"media: {exc}") from None

    def _keepalive(self) -> None:
        """GET_PARAMETER (or OPTIONS) within the session timeout; its answer is skipped by
        the reader. Best effort: a failed write shows up as a closed stream."""
        self._next_keepalive = time.monotonic() + self.session_timeout_s / 2
        conn = self._conn
        if conn.writer is None or self.session_id is None or self.track is None:
            return
        method = "GET_PARAMETER" if "GET_PARAMETER" in self.methods else "OPTIONS"
        with contextlib.suppress(OSError, RuntimeError):
            conn.write_request(method, {"Session": self.session_id}, self.track.play_url)

    # -- closing ------------------------------------------------------------------------------

    async def close(self) -> None:
        """TEARDOWN (not waiting for its answer) and close the connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        conn = self._conn
        if self._playing or self.session_id is not None:
            self._playing = False
            if conn.writer is not None and self.track is not None and self.session_id is not None:
                with contextlib.suppress(OSError, RuntimeError, TimeoutError):
                    conn.write_request(
                        "TEARDOWN", {"Session": self.session_id}, self.track.play_url
                    )
                    async with asyncio.timeout(0.5):
                        await conn.writer.drain()
        await conn.close()

    async def __aenter__(self) -> RtspPlayer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def open_stream(
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
