"""Warm RTSP streams: a grab from an open stream takes milliseconds, a cold one ~0.2-1.5 s.

An open capture that is not read keeps buffering (its "next" frame is seconds old), so each warm
stream has a thread that drains it and keeps only the newest frame. Streams close after
`idle_s` without a request; at most `max_streams` are warm at once (each costs ~8% of a core
to decode 720p), the least recently used one is closed to make room.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import Executor

import cv2
import numpy as np

from .rtsp_grab import Frame, GrabError, GrabTimeout, encode_jpeg
from .uris import split_credentials

log = logging.getLogger(__name__)


class WarmStream:
    def __init__(self, uri_with_credentials: str, timeout_s: float, idle_s: float) -> None:
        self.safe_uri, _ = split_credentials(uri_with_credentials)
        self._uri = uri_with_credentials
        self._timeout_ms = max(1, int(timeout_s * 1000))
        self._idle_s = idle_s
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._frame_at = 0.0  # wall clock of the newest frame
        self._error: str | None = None
        self._stop = threading.Event()
        self.last_used = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="warm-rtsp", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"WarmStream({self.safe_uri})"

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self) -> None:
        self._stop.set()

    def frame(self, timeout_s: float, max_age_s: float) -> tuple[Frame, float]:
        """The newest frame no older than `max_age_s`; blocks up to `timeout_s` for one."""
        self.last_used = time.monotonic()
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                if self._frame is not None and time.time() - self._frame_at <= max_age_s:
                    return self._frame, self._frame_at
                if self._error is not None:
                    raise GrabError(self._error)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise GrabTimeout(f"{self.safe_uri}: no frame within {timeout_s:g}s")
                self._cond.wait(remaining)

    def _run(self) -> None:
        cap = cv2.VideoCapture(
            self._uri,
            cv2.CAP_FFMPEG,
            [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                self._timeout_ms,
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                self._timeout_ms,
            ],
        )
        try:
            if not cap.isOpened():
                self._fail(f"{self.safe_uri}: stream did not open")
                return
            while not self._stop.is_set():
                if time.monotonic() - self.last_used > self._idle_s:
                    return
                ok, frame = cap.read()
                if not ok or frame is None:
                    self._fail(f"{self.safe_uri}: stream ended")
                    return
                with self._cond:
                    self._frame, self._frame_at = np.asarray(frame, dtype=np.uint8), time.time()
                    self._cond.notify_all()
        finally:
            cap.release()
            self._stop.set()

    def _fail(self, reason: str) -> None:
        with self._cond:
            self._error = reason
            self._cond.notify_all()


class StreamPool:
    def __init__(self, executor: Executor, max_streams: int = 4, idle_s: float = 30.0) -> None:
        self.executor = executor
        self.max_streams = max_streams
        self.idle_s = idle_s
        self._streams: OrderedDict[str, WarmStream] = OrderedDict()

    async def jpeg(
        self, uri_with_credentials: str, timeout_s: float, max_age_s: float = 1.0
    ) -> tuple[bytes, float, bool]:
        """(JPEG, frame wall-clock time, whether the stream was already warm)."""
        stream = self._streams.get(uri_with_credentials)
        warm = stream is not None and stream.alive
        if stream is None or not stream.alive:
            stream = self._open(uri_with_credentials, timeout_s)
        self._streams.move_to_end(uri_with_credentials)
        loop = asyncio.get_running_loop()
        frame, taken_at = await loop.run_in_executor(
            self.executor, stream.frame, timeout_s, max_age_s
        )
        data = await loop.run_in_executor(self.executor, encode_jpeg, frame)
        return data, taken_at, warm

    def _open(self, uri: str, timeout_s: float) -> WarmStream:
        for key in [k for k, s in self._streams.items() if not s.alive]:
            del self._streams[key]
        while len(self._streams) >= self.max_streams:
            _, oldest = self._streams.popitem(last=False)
            oldest.close()
        stream = WarmStream(uri, timeout_s, self.idle_s)
        self._streams[uri] = stream
        return stream

    def close(self) -> None:
        for stream in self._streams.values():
            stream.close()
        self._streams.clear()
