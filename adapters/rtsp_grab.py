"""One frame from an RTSP stream: our asyncio RTSP client fetches the H.264, OpenCV only decodes.

The networking is `adapters.rtsp.RtspPlayer` (OPTIONS, DESCRIBE, SETUP, PLAY, RTP interleaved on
the RTSP connection): it checks every host against the network's ranges, follows no redirect,
honours asyncio timeouts and cancellation, and a camera that hangs holds up nobody else. OpenCV's
FFmpeg backend gets bytes only: the Annex-B H.264 of a GOP (parameter sets, IDR, the frames after
it) written to a temporary file in /dev/shm and read with FFmpeg's raw h264 demuxer.

Why not let OpenCV open rtsp:// itself: FFmpeg follows RTSP redirects to any host (an SSRF hole
in a gateway that must contact only addresses inside a network's CIDRs), and OpenCV opens one
capture at a time per process (`VideoCapture` open holds a process-wide lock): measured, four
decodes of a file waited ~2.7 s behind one network open that hung for 3 s. Since nothing in this
process opens a network URL with OpenCV any more, that lock is only ever held for the few
milliseconds a file open takes. Keep it so: never give OpenCV a network URL in the gateway.

`decode_annexb` blocks (a few ms for an IDR, ~10-40 ms for a 720p GOP): run it in an executor;
`grab_frame` / `grab_jpeg` do that for asyncio callers. Messages name neither host nor credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import Callable
from concurrent.futures import Executor

import cv2
import numpy as np
import numpy.typing as npt

from .base import AdapterError, CameraProtocolError, CameraUnreachable
from .rtp import MAX_GOP_BYTES, Gop
from .rtsp import RtspPlayer

SHM_DIR = "/dev/shm"  # memory-backed: the bytes never reach a disk

Frame = npt.NDArray[np.uint8]


class GrabError(AdapterError):
    """No frame could be taken from the stream."""


class GrabTimeout(GrabError, CameraUnreachable):
    """The stream did not deliver a keyframe within the timeout."""


class DecodeError(GrabError, CameraProtocolError):
    """The camera's H.264 did not decode."""


def _temp_dir() -> str | None:
    """/dev/shm when usable, else the platform's temporary directory (None)."""
    if os.path.isdir(SHM_DIR) and os.access(SHM_DIR, os.W_OK | os.X_OK):
        return SHM_DIR
    return None


def decode_annexb(data: bytes, frames: int = 1) -> Frame:
    """Decode Annex-B H.264 (parameter sets first, then an IDR) and return picture number
    `frames` (1: the first, the IDR; the number of pictures in `data`: the newest), or the last
    one that decoded before it, as a BGR array (height, width, 3). Blocking. Raises DecodeError.

    The bytes go to a private temporary file (0600, removed at once) that FFmpeg reads with its
    raw h264 demuxer: no network.
    """
    if not data:
        raise DecodeError("no H.264 data to decode")
    frames = max(1, frames)
    fd, path = tempfile.mkstemp(prefix="camgw-", suffix=".h264", dir=_temp_dir())
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        decoded, frame = _decode_file(path, frames)
        if frame is None and decoded > 0:  # a damaged picture: the one before it will do
            decoded, frame = _decode_file(path, decoded)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
    if frame is None:
        raise DecodeError("the stream's H.264 did not decode")
    if frame.ndim == 2:  # grey
        frame = np.asarray(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR), dtype=np.uint8)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise DecodeError(f"unexpected frame format {frame.shape} {frame.dtype}")
    return np.ascontiguousarray(frame)


def _decode_file(path: str, frames: int) -> tuple[int, Frame | None]:
    """Decode up to `frames` pictures (grab: no colour conversion) and convert only the last:
    (pictures decoded, that last one or None if fewer than `frames` decoded)."""
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    try:
        if not cap.isOpened():
            return 0, None
        decoded = 0
        while decoded < frames and cap.grab():
            decoded += 1
        if decoded < frames:
            return decoded, None
        ok, frame = cap.retrieve()
        if not ok or frame is None:
            return decoded, None
        return decoded, np.asarray(frame)
    finally:
        cap.release()


def encode_jpeg(frame: Frame, quality: int = 85) -> bytes:
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise GrabError("JPEG encoding failed")
    return bytes(buf.tobytes())


def annexb_to_jpeg(data: bytes, frames: int = 1, quality: int = 85) -> bytes:
    """decode_annexb + encode_jpeg in one call (one executor hop)."""
    return encode_jpeg(decode_annexb(data, frames), quality)


async def grab_frame(
    uri: str,
    username: str | None = None,
    password: str | None = None,
    *,
    allowed: Callable[[str], bool],
    timeout_s: float = 5.0,
    executor: Executor | None = None,
    max_gop_bytes: int = MAX_GOP_BYTES,
) -> Frame:
    """A cold grab: connect, wait for the first IDR access unit, hang up, decode it.

    `timeout_s` bounds the network part (handshake and keyframe); decoding one IDR in
    `executor` (None: the loop's default) takes milliseconds. Raises an RtspError (refused,
    unauthorised, redirected, not H.264, garbage), GrabTimeout or DecodeError.
    """
    gop = await first_keyframe(uri, username, password, allowed, timeout_s, max_gop_bytes)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, decode_annexb, gop.annexb, 1)


async def grab_jpeg(
    uri: str,
    username: str | None = None,
    password: str | None = None,
    *,
    allowed: Callable[[str], bool],
    timeout_s: float = 5.0,
    executor: Executor | None = None,
    quality: int = 85,
    max_gop_bytes: int = MAX_GOP_BYTES,
) -> bytes:
    """grab_frame, encoded to JPEG in the same executor job."""
    gop = await first_keyframe(uri, username, password, allowed, timeout_s, max_gop_bytes)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, annexb_to_jpeg, gop.annexb, 1, quality)


async def first_keyframe(
    uri: str,
    username: str | None,
    password: str | None,
    allowed: Callable[[str], bool],
    timeout_s: float,
    max_gop_bytes: int = MAX_GOP_BYTES,
) -> Gop:
    """Connect, wait for the first IDR access unit, hang up (TEARDOWN): its Annex-B bytes."""
    player = RtspPlayer(
        uri, username, password, allowed=allowed, timeout=timeout_s, max_gop_bytes=max_gop_bytes
    )
    try:
        async with asyncio.timeout(timeout_s):
            await player.start()
            gop = await player.keyframe()
    except TimeoutError:
        raise GrabTimeout(timeout_message(player.stage, timeout_s)) from None
    finally:
        await player.close()
    return gop


def timeout_message(stage: str, timeout_s: float) -> str:
    if stage in ("media", "first keyframe"):
        return f"no keyframe within {timeout_s:g}s"
    return f"no answer to {stage} within {timeout_s:g}s"
