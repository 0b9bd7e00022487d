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

Memory: a decoder allocates what the stream's sequence parameter set declares (16384x16384 is a
valid H.264 size: ~400 MB a picture, several kept as references). So the SPS at the head of the
bytes is read before FFmpeg sees them, and a stream of more than `max_pixels` is refused
(`FrameTooLarge`) without decoding anything; FFmpeg's own view of the size after opening, and
the decoded picture, are checked too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import Callable
from concurrent.futures import Executor

from .config import DEFAULT_MAX_PIXELS

# isort: split
import cv2
import numpy as np
import numpy.typing as npt

from .base import AdapterError, CameraProtocolError, CameraUnreachable
from .rtp import MAX_GOP_BYTES, NAL_SPS, START_CODE, Gop
from .rtsp import RtspPlayer, parse_h264_sps

SHM_DIR = "/dev/shm"  # memory-backed: the bytes never reach a disk

Frame = npt.NDArray[np.uint8]


class GrabError(AdapterError):
    """No frame could be taken from the stream."""


class GrabTimeout(GrabError, CameraUnreachable):
    """The stream did not deliver a keyframe within the timeout."""


class DecodeError(GrabError, CameraProtocolError):
    """The camera's H.264 did not decode."""


class FrameTooLarge(DecodeError):
    """The stream's pictures have more pixels than this gateway decodes; nothing was decoded."""

    def __init__(self, width: int, height: int, limit: int) -> None:
        self.width, self.height, self.limit = width, height, limit
        super().__init__(
            f"a stream of {width}x{height} pixels, over this gateway's limit of {limit:,}"
        )


def _temp_dir() -> str | None:
    """/dev/shm when usable, else the platform's temporary directory (None)."""
    if os.path.isdir(SHM_DIR) and os.access(SHM_DIR, os.W_OK | os.X_OK):
        return SHM_DIR
    return None


def decode_annexb(data: bytes, frames: int = 1, max_pixels: int = DEFAULT_MAX_PIXELS) -> Frame:
    """Decode Annex-B H.264 (parameter sets first, then an IDR) and return picture number
    `frames` (1: the first, the IDR; the number of pictures in `data`: the newest), or the last
    one that decoded before it, as a BGR array (height, width, 3). Blocking. Raises DecodeError,
    FrameTooLarge (a subclass) when the pictures have more than `max_pixels`.

    The bytes go to a private temporary file (0600, removed at once) that FFmpeg reads with its
    raw h264 demuxer: no network.
    """
    if not data:
        raise DecodeError("no H.264 data to decode")
    check_stream_size(data, max_pixels)  # before FFmpeg sees a byte
    frames = max(1, frames)
    fd, path = tempfile.mkstemp(prefix="camgw-", suffix=".h264", dir=_temp_dir())
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        decoded, frame = _decode_file(path, frames, max_pixels)
        if frame is None and decoded > 0:  # a damaged picture: the one before it will do
            decoded, frame = _decode_file(path, decoded, max_pixels)
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


def check_stream_size(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """Refuse Annex-B H.264 whose sequence parameter sets before its first picture (a GOP's
    head, as `adapters.rtp` assembles it) declare more than `max_pixels` (FrameTooLarge) or
    cannot be read (DecodeError: a size we cannot read is not handed to a decoder). Reads the
    NAL unit headers up to the first picture's: microseconds."""
    pos = data.find(START_CODE)
    while pos != -1 and pos + 4 < len(data):
        start = pos + len(START_CODE)
        kind = data[start] & 0x1F
        if 1 <= kind <= 5:
            return  # a picture (coded slice): the parameter sets came before it
        pos = data.find(START_CODE, start)
        if kind == NAL_SPS:
            try:
                sps = parse_h264_sps(data[start : pos if pos != -1 else len(data)])
            except ValueError as exc:
                raise DecodeError(
                    f"the stream's sequence parameter set is unusable ({exc})"
                ) from None
            _check_pixels(sps.width, sps.height, max_pixels)


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise FrameTooLarge(width, height, max_pixels)


def _decode_file(path: str, frames: int, max_pixels: int) -> tuple[int, Frame | None]:
    """Decode up to `frames` pictures (grab: no colour conversion) and convert only the last:
    (pictures decoded, that last one or None if fewer than `frames` decoded)."""
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    try:
        if not cap.isOpened():
            return 0, None
        # FFmpeg's view of the size, from its own SPS parse while opening: before any grab
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        _check_pixels(width, height, max_pixels)
        decoded = 0
        while decoded < frames and cap.grab():
            decoded += 1
        if decoded < frames:
            return decoded, None
        ok, frame = cap.retrieve()
        if not ok or frame is None:
            return decoded, None
        _check_pixels(frame.shape[1], frame.shape[0], max_pixels)
        return decoded, np.asarray(frame)
    finally:
        cap.release()


def encode_jpeg(frame: Frame, quality: int = 85) -> bytes:
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise GrabError("JPEG encoding failed")
    return bytes(buf.tobytes())


def annexb_to_jpeg(
    data: bytes, frames: int = 1, quality: int = 85, max_pixels: int = DEFAULT_MAX_PIXELS
) -> bytes:
    """decode_annexb + encode_jpeg in one call (one executor hop)."""
    return encode_jpeg(decode_annexb(data, frames, max_pixels), quality)


async def grab_frame(
    uri: str,
    username: str | None = None,
    password: str | None = None,
    *,
    allowed: Callable[[str], bool],
    timeout_s: float = 5.0,
    executor: Executor | None = None,
    max_gop_bytes: int = MAX_GOP_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Frame:
    """A cold grab: connect, wait for the first IDR access unit, hang up, decode it.

    `timeout_s` bounds the network part (handshake and keyframe); decoding one IDR in
    `executor` (None: the loop's default) takes milliseconds. Raises an RtspError (refused,
    unauthorised, redirected, not H.264, garbage), GrabTimeout, DecodeError or FrameTooLarge.
    """
    gop = await first_keyframe(uri, username, password, allowed, timeout_s, max_gop_bytes)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, decode_annexb, gop.annexb, 1, max_pixels)


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
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> bytes:
    """grab_frame, encoded to JPEG in the same executor job."""
    gop = await first_keyframe(uri, username, password, allowed, timeout_s, max_gop_bytes)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, annexb_to_jpeg, gop.annexb, 1, quality, max_pixels)


async def first_keyframe(
    uri: str,
    username: str | None,
    password: str | None,
    allowed: Callable[[str], bool],
    timeout_s: float,
    max_gop_bytes: int = MAX_GOP_BYTES,
    allow_basic: bool = False,
) -> Gop:
    """Connect, wait for the first IDR access unit, hang up (TEARDOWN): its Annex-B bytes.
    `allow_basic`: a Basic challenge over plain RTSP may be answered (the network opted in)."""
    player = RtspPlayer(
        uri,
        username,
        password,
        allowed=allowed,
        timeout=timeout_s,
        max_gop_bytes=max_gop_bytes,
        allow_basic=allow_basic,
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
