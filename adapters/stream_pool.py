"""Warm RTSP streams: a grab from an open stream takes milliseconds, a cold one ~0.1-1.1 s (the
handshake, then the wait for the next keyframe).

Each warm stream is an `RtspPlayer` (H.264, H.265 or MJPEG) kept playing by an asyncio task that
reads and depacketizes the RTP (no decoding: a fraction of a percent of a core per stream) and
holds the current GOP. A snapshot decodes that GOP up to its newest frame in a thread, with the
stream's own `GopDecoder`, which decodes each access unit once: a request decodes only what came
since the previous one (the whole GOP after a new keyframe, ~30-50 ms for 720p with 1 s GOPs),
so the picture is at most one frame interval old. An MJPEG stream's newest picture is served as
the camera encoded it. Streams close after `idle_s` without a request; at most `max_streams` are
warm at once, the least recently used one is closed to make room. With `max_streams` 0 every
grab is cold.

A camera that hangs costs its own requests their timeout and one slot while it is opening,
nothing more: every wait is an asyncio wait, cancellable, and nothing holds a lock meanwhile.

A stream whose pictures have more than `max_pixels` is refused before anything decodes it
(`FrameTooLarge`, from its SPS or JPEG header) and, if warm, closed at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Executor

from .base import AdapterError
from .config import DEFAULT_MAX_PIXELS
from .rtsp import (
    MAX_GOP_BYTES,
    FrameTooLarge,
    Gop,
    GopDecoder,
    GrabError,
    GrabTimeout,
    RtspPlayer,
    first_keyframe,
    gop_to_jpeg,
    timeout_message,
)
from .rtsp.grab import in_thread

log = logging.getLogger(__name__)

StreamKey = tuple[str, str | None, str | None]  # uri, username, password (memory only)


DECODE_AHEAD_S = 2.0  # a stream asked for a frame within this long decodes as frames arrive


class WarmStream:
    """One camera's stream, kept playing by an asyncio task.

    While it is being asked for frames (the last request within DECODE_AHEAD_S), each new
    access unit is decoded as it arrives, in `executor`, so that a request finds its picture
    decoded and only converts and encodes it (~3 ms at 720p); that costs ~2-6% of a core per
    720p25 stream (H.264 ~1 ms, H.265 ~2-3 ms a picture). Unwatched, nothing is decoded, and
    the next request decodes what came since the last one (up to a GOP). MJPEG pictures are
    never decoded ahead: a request serves the camera's own JPEG.
    """

    def __init__(
        self,
        player: RtspPlayer,
        idle_s: float,
        executor: Executor,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.player = player
        self.idle_s = idle_s
        self.executor = executor
        self.max_pixels = max_pixels
        self.last_used = time.monotonic()
        self.error: AdapterError | None = None
        self._tick = asyncio.Event()
        self._decoder: GopDecoder | None = None  # once the first request names the codec
        self._ahead: asyncio.Task[None] | None = None  # the decode-ahead job, if running
        self._encoding = asyncio.Lock()  # one encode at a time; the others reuse its JPEG
        self._encoded: tuple[int, bytes] | None = None  # (GOP serial, JPEG) of the last grab
        self.task = asyncio.create_task(self._run(), name="warm-rtsp")

    def __repr__(self) -> str:
        return f"WarmStream(alive={self.alive})"

    @property
    def alive(self) -> bool:
        return not self.task.done()

    @property
    def has_frame(self) -> bool:
        return self.alive and self.player.has_gop

    async def _run(self) -> None:
        try:
            await self.player.start()
            self._notify()
            await self.player.run(self._on_frame, self._idle)
        except AdapterError as exc:
            self.error = exc
        except Exception:
            log.exception("warm RTSP stream failed")
            self.error = GrabError("the stream failed unexpectedly")
        finally:
            if self._ahead is not None:
                self._ahead.cancel()
            await self.player.close()
            self._notify()

    def _notify(self) -> None:
        self._tick.set()  # wakes every waiter
        self._tick.clear()

    def _on_frame(self) -> None:
        self._notify()
        decoder = self._decoder
        if (
            decoder is not None
            and decoder.codec != "JPEG"
            and time.monotonic() - self.last_used <= DECODE_AHEAD_S
            and (self._ahead is None or self._ahead.done())
        ):
            self._ahead = asyncio.create_task(self._decode_ahead(decoder))

    async def _decode_ahead(self, decoder: GopDecoder) -> None:
        """Decode the current GOP up to its newest unit, until caught up. Failures are left
        for the request that asks (it decodes again and raises them)."""
        done = 0
        while (gop := self.player.gop()) is not None and gop.serial != done:
            try:
                await in_thread(self.executor, decoder.decode, gop)
            except AdapterError:
                return
            except Exception:
                log.exception("decoding ahead failed")
                return
            done = gop.serial

    def _idle(self) -> bool:
        return time.monotonic() - self.last_used > self.idle_s

    async def gop(self, timeout_s: float, max_age_s: float) -> Gop:
        """The current GOP once its newest frame is at most `max_age_s` old; waits up to
        `timeout_s` for one. Raises the stream's error, or GrabTimeout."""
        self.last_used = time.monotonic()
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    gop = self.player.gop()
                    if gop is not None and time.time() - gop.taken_at <= max_age_s:
                        return gop
                    if self.task.done():
                        raise self.error or GrabError("the stream closed")
                    await self._tick.wait()
        except TimeoutError:
            if self.player.dropped_gops:
                raise GrabTimeout(
                    f"no decodable frame within {timeout_s:g}s: GOPs over "
                    f"{self.player.max_gop_bytes} bytes or damaged, dropped"
                ) from None
            raise GrabTimeout(timeout_message(self.player.stage, timeout_s)) from None

    async def jpeg(self, gop: Gop, quality: int) -> bytes:
        """The GOP's newest frame as JPEG (encoded once per frame, however many ask)."""
        async with self._encoding:
            cached = self._encoded
            if cached is not None and cached[0] == gop.serial:
                return cached[1]
            if self._decoder is None or self._decoder.codec != gop.codec:
                self._decoder = GopDecoder(gop.codec, self.max_pixels)
            data = await in_thread(self.executor, self._decoder.to_jpeg, gop, quality)
            self._encoded = (gop.serial, data)
            return data

    def close(self) -> None:
        self.task.cancel()


class StreamPool:
    def __init__(
        self,
        executor: Executor,
        max_streams: int = 4,
        idle_s: float = 30.0,
        *,
        max_gop_bytes: int = MAX_GOP_BYTES,
        quality: int = 85,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        allow_basic: bool = False,
    ) -> None:
        self.executor = executor
        self.allow_basic = allow_basic  # the network's allow_basic_over_http
        self.max_streams = max_streams
        self.idle_s = idle_s
        self.max_gop_bytes = max_gop_bytes
        self.quality = quality
        self.max_pixels = max_pixels  # larger pictures are refused from the SPS, undecoded
        self._streams: OrderedDict[StreamKey, WarmStream] = OrderedDict()
        self._closing: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return sum(1 for s in self._streams.values() if s.alive)

    def is_warm(self, uri: str, username: str | None = None, password: str | None = None) -> bool:
        stream = self._streams.get((uri, username, password))
        return stream is not None and stream.has_frame

    async def jpeg(
        self,
        uri: str,
        username: str | None = None,
        password: str | None = None,
        *,
        allowed: Callable[[str], bool],
        timeout_s: float,
        max_age_s: float = 1.0,
    ) -> tuple[bytes, float, bool]:
        """(JPEG, frame wall-clock time, whether the stream already had a frame).

        Raises an RtspError (refused, unauthorised, redirected, garbage), GrabTimeout,
        DecodeError or FrameTooLarge; messages name neither host nor credentials."""
        if self.max_streams <= 0:  # cold grabs only
            gop = await first_keyframe(
                uri, username, password, allowed, timeout_s, self.max_gop_bytes, self.allow_basic
            )
            data = await in_thread(self.executor, gop_to_jpeg, gop, self.quality, self.max_pixels)
            return data, gop.taken_at, False
        key = (uri, username, password)
        stream = self._streams.get(key)
        warm = stream is not None and stream.has_frame
        if stream is None or not stream.alive:
            stream = self._open(key, allowed, timeout_s)
        self._streams.move_to_end(key)
        gop = await stream.gop(timeout_s, max_age_s)
        try:
            data = await stream.jpeg(gop, self.quality)
        except FrameTooLarge:
            if self._streams.get(key) is stream:  # no point keeping it playing
                del self._streams[key]
                self._retire(stream)
            raise
        return data, gop.taken_at, warm

    def _open(self, key: StreamKey, allowed: Callable[[str], bool], timeout_s: float) -> WarmStream:
        for dead in [k for k, s in self._streams.items() if not s.alive]:
            del self._streams[dead]
        while len(self._streams) >= self.max_streams:
            _, oldest = self._streams.popitem(last=False)
            self._retire(oldest)
        uri, username, password = key
        player = RtspPlayer(
            uri,
            username,
            password,
            allowed=allowed,
            timeout=timeout_s,
            read_timeout=max(timeout_s, 2.0),
            max_gop_bytes=self.max_gop_bytes,
            allow_basic=self.allow_basic,
        )
        stream = WarmStream(player, self.idle_s, self.executor, self.max_pixels)
        self._streams[key] = stream
        return stream

    def _retire(self, stream: WarmStream) -> None:
        """Close in the background (TEARDOWN); keep the task referenced until it is done."""
        stream.close()
        self._closing.add(stream.task)
        stream.task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """Close every stream (TEARDOWN each) and wait for them to finish."""
        for stream in self._streams.values():
            self._retire(stream)
        self._streams.clear()
        tasks = list(self._closing)
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
