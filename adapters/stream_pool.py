"""Warm RTSP streams: a grab from an open stream takes tens of milliseconds, a cold one ~0.1-1.1 s
(the handshake, then the wait for the next keyframe).

Each warm stream is an `RtspPlayer` kept playing by an asyncio task that reads and depacketizes
the RTP (no decoding: a fraction of a percent of a core per stream) and holds the current GOP.
A snapshot decodes that GOP up to its newest frame off the event loop (~10-40 ms for 720p with
1 s GOPs), so the picture is at most one frame interval old. Streams close after `idle_s`
without a request; at most `max_streams` are warm at once, the least recently used one is closed
to make room. With `max_streams` 0 every grab is cold.

A camera that hangs costs its own requests their timeout and one slot while it is opening,
nothing more: every wait is an asyncio wait, cancellable, and nothing holds a lock meanwhile.

A stream whose pictures have more than `max_pixels` is refused before anything decodes it
(`rtsp_grab.FrameTooLarge`, from its SPS) and, if warm, closed at once.
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
from .rtp import MAX_GOP_BYTES, Gop
from .rtsp import RtspPlayer
from .rtsp_grab import (
    FrameTooLarge,
    GrabError,
    GrabTimeout,
    annexb_to_jpeg,
    first_keyframe,
    timeout_message,
)

log = logging.getLogger(__name__)

StreamKey = tuple[str, str | None, str | None]  # uri, username, password (memory only)


class WarmStream:
    """One camera's stream, kept playing by an asyncio task."""

    def __init__(self, player: RtspPlayer, idle_s: float) -> None:
        self.player = player
        self.idle_s = idle_s
        self.last_used = time.monotonic()
        self.error: AdapterError | None = None
        self._tick = asyncio.Event()
        self._encoded: tuple[int, bytes] | None = None  # (GOP serial, JPEG) of the last grab
        self.task = asyncio.create_task(self._run(), name="warm-rtsp")

    def __repr__(self) -> str:
        return f"WarmStream(alive={self.alive})"

    @property
    def alive(self) -> bool:
        return not self.task.done()

    @property
    def has_frame(self) -> bool:
        return self.alive and self.player.stream.has_gop

    async def _run(self) -> None:
        try:
            await self.player.start()
            self._notify()
            await self.player.run(self._notify, self._idle)
        except AdapterError as exc:
            self.error = exc
        except Exception:
            log.exception("warm RTSP stream failed")
            self.error = GrabError("the stream failed unexpectedly")
        finally:
            await self.player.close()
            self._notify()

    def _notify(self) -> None:
        self._tick.set()  # wakes every waiter
        self._tick.clear()

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
            if self.player.stream.dropped_gops:
                raise GrabTimeout(
                    f"no decodable frame within {timeout_s:g}s: GOPs over "
                    f"{self.player.max_gop_bytes} bytes or damaged, dropped"
                ) from None
            raise GrabTimeout(timeout_message(self.player.stage, timeout_s)) from None

    async def jpeg(
        self, gop: Gop, executor: Executor, quality: int, max_pixels: int = DEFAULT_MAX_PIXELS
    ) -> bytes:
        """The GOP's newest frame as JPEG (decoded once per frame, however many ask)."""
        cached = self._encoded
        if cached is not None and cached[0] == gop.serial:
            return cached[1]
        loop = asyncio.get_running_loop()
        data = await loop.run_in_executor(
            executor, annexb_to_jpeg, gop.annexb, gop.frames, quality, max_pixels
        )
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
            loop = asyncio.get_running_loop()
            data = await loop.run_in_executor(
                self.executor, annexb_to_jpeg, gop.annexb, 1, self.quality, self.max_pixels
            )
            return data, gop.taken_at, False
        key = (uri, username, password)
        stream = self._streams.get(key)
        warm = stream is not None and stream.has_frame
        if stream is None or not stream.alive:
            stream = self._open(key, allowed, timeout_s)
        self._streams.move_to_end(key)
        gop = await stream.gop(timeout_s, max_age_s)
        try:
            data = await stream.jpeg(gop, self.executor, self.quality, self.max_pixels)
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
        stream = WarmStream(player, self.idle_s)
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
