"""One frame from an RTSP stream with OpenCV's FFmpeg backend, and a JPEG of it off the event loop.

`grab_frame` blocks (opening the stream, waiting for a keyframe, decoding): run it in a thread or
process pool; `grab_jpeg` does that for asyncio callers. FFmpeg's stream probing is reduced
(`analyzeduration`, `probesize`) and RTSP goes over TCP, which brings a cold grab from ~1.5-2 s
to ~0.1-0.8 s (PERF-NOTES.md); the remaining wait is mostly for the next keyframe.

Error messages name the stream without its credentials.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from concurrent.futures import Executor
from urllib.parse import quote

import cv2
import numpy as np
import numpy.typing as npt

from .base import CameraUnreachable
from .uris import split_credentials

# Read by OpenCV's FFmpeg backend at every open. Keys and values are `;`-separated, pairs `|`.
FFMPEG_CAPTURE_OPTIONS = "rtsp_transport;tcp|analyzeduration;500000|probesize;32768"
_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_env_lock = threading.Lock()

Frame = npt.NDArray[np.uint8]


class GrabError(CameraUnreachable):
    """No frame could be taken from the stream (OpenCV cannot tell refused from unauthorised)."""


class GrabTimeout(GrabError):
    """The stream did not open or deliver a frame within the timeout."""


def _ensure_capture_options() -> None:
    """Set the FFmpeg options once per process, before any capture opens.

    setenv while another thread's getenv runs is not safe in C, so this happens under a lock
    and only when the value differs (normally once, at import).
    """
    if os.environ.get(_OPTIONS_ENV) == FFMPEG_CAPTURE_OPTIONS:
        return
    with _env_lock:
        if os.environ.get(_OPTIONS_ENV) != FFMPEG_CAPTURE_OPTIONS:
            os.environ[_OPTIONS_ENV] = FFMPEG_CAPTURE_OPTIONS


_ensure_capture_options()


def with_credentials(uri: str, username: str | None, password: str | None) -> str:
    """rtsp://host/path + credentials -> rtsp://user:pass@host/path (for OpenCV/FFmpeg only)."""
    clean, _ = split_credentials(uri)
    if not username:
        return clean
    scheme, sep, rest = clean.partition("://")
    if not sep:
        raise ValueError("not an absolute URI")
    userinfo = quote(username, safe="") + (":" + quote(password, safe="") if password else "")
    return f"{scheme}://{userinfo}@{rest}"


def grab_frame(uri_with_credentials: str, timeout_s: float = 5.0) -> Frame:
    """Open the stream, return its first decodable frame as a BGR array (height, width, 3).

    Blocking. The open and the read each get `timeout_s`; if the open used up the budget, the
    grab fails rather than waiting again. Raises GrabError / GrabTimeout.
    """
    _ensure_capture_options()
    safe_uri, _ = split_credentials(uri_with_credentials)
    timeout_ms = max(1, int(timeout_s * 1000))
    started = time.monotonic()
    cap = cv2.VideoCapture(
        uri_with_credentials,
        cv2.CAP_FFMPEG,
        [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms],
    )
    try:
        opened = cap.isOpened()
        elapsed = time.monotonic() - started
        if not opened:
            if elapsed >= timeout_s * 0.95:
                raise GrabTimeout(f"{safe_uri}: stream did not open within {timeout_s:g}s")
            raise GrabError(
                f"{safe_uri}: stream did not open after {elapsed:.2f}s "
                "(refused, unauthorised, not found or not a video stream)"
            )
        if elapsed >= timeout_s:
            raise GrabTimeout(f"{safe_uri}: opening took {elapsed:.2f}s of {timeout_s:g}s")
        ok, frame = cap.read()
        if not ok or frame is None:
            elapsed = time.monotonic() - started
            if elapsed >= timeout_s * 0.95:
                raise GrabTimeout(f"{safe_uri}: no frame within {timeout_s:g}s")
            raise GrabError(f"{safe_uri}: stream opened but no frame decoded")
    finally:
        cap.release()
    if frame.ndim == 2:  # grey
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise GrabError(f"{safe_uri}: unexpected frame format {frame.shape} {frame.dtype}")
    return np.ascontiguousarray(frame)


def encode_jpeg(frame: Frame, quality: int = 85) -> bytes:
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise GrabError("JPEG encoding failed")
    return bytes(buf.tobytes())


def grab_and_encode(uri_with_credentials: str, timeout_s: float, quality: int = 85) -> bytes:
    """grab_frame + encode_jpeg in one call (picklable, for process pools)."""
    return encode_jpeg(grab_frame(uri_with_credentials, timeout_s), quality)


async def grab_jpeg(
    uri_with_credentials: str,
    timeout_s: float,
    executor: Executor | None = None,
    quality: int = 85,
) -> bytes:
    """JPEG bytes of one frame, grabbed and encoded in `executor` (None: the loop's default).

    The executor bounds how many grabs run at once; the caller bounds how long it waits with
    its own timeout if it must (a blocked OpenCV call cannot be cancelled, only abandoned).
    """
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(
        executor, grab_and_encode, uri_with_credentials, timeout_s, quality
    )
