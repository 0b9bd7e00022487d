"""Pictures from a stream's GOP, decoded in memory by FFmpeg through PyAV: no file, no network
in FFmpeg, no OpenCV capture (whose open holds a process-wide lock), so a decode never waits
for anything but the CPU.

Blocking (FFmpeg releases the GIL while it decodes): callers run these in a thread
(`asyncio.to_thread` or an executor), never on the event loop. A 720p IDR decodes in ~3-6 ms;
a whole 1 s GOP of 720p25 in ~30-50 ms, so a warm stream keeps a `GopDecoder`, which decodes
each access unit once: a later picture of the same GOP costs only the units that came since.

Memory: a decoder allocates what the stream's parameter sets declare (16384x16384 is a valid
H.264 size: ~400 MB a picture, several kept as references). So the sequence parameter sets at
the head of a GOP (or a JPEG's frame header) are read first, and a stream of more than
`max_pixels` is refused (`FrameTooLarge`) before FFmpeg sees a byte; FFmpeg's own `max_pixels`
is set too (it refuses to allocate a larger picture), and the decoded picture is checked again.

MJPEG: every picture is a whole JPEG file (mjpeg.py rebuilds its headers), so `gop_to_jpeg`
returns it as it came, after the size check and a decode check (`imaging.check_decodable`).
"""

from __future__ import annotations

import threading

from ..config import DEFAULT_MAX_PIXELS

# isort: split
import av
import cv2
import numpy as np
import numpy.typing as npt

from .. import imaging
from . import h264, h265
from .errors import DecodeError, FrameTooLarge, GrabError
from .nal import split_annexb
from .rtp import Gop

Frame = npt.NDArray[np.uint8]

_AV_CODECS = {"H264": "h264", "H265": "hevc", "JPEG": "mjpeg"}
_NAMES = {"H264": "H.264", "H265": "H.265", "JPEG": "JPEG"}


def check_size(codec: str, unit: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """Refuse a keyframe unit whose sequence parameter sets (before its first picture) or JPEG
    frame header declare more than `max_pixels` (FrameTooLarge), or cannot be read (DecodeError:
    a size we cannot read is not handed to a decoder). Microseconds: headers only."""
    if codec == "JPEG":
        try:
            width, height = imaging.jpeg_size(unit, None)
        except imaging.BadImage as exc:
            raise DecodeError(f"the stream's JPEG is unusable ({exc})") from None
        _check_pixels(width, height, max_pixels)
        return
    if codec not in ("H264", "H265"):
        raise DecodeError(f"no decoder for {codec[:20]}")
    spec = h264 if codec == "H264" else h265
    for nal in split_annexb(unit):
        kind = spec.nal_type(nal)
        if kind in spec.CODEC.vcl:
            return  # a picture: the parameter sets came before it
        if kind == spec.NAL_SPS:
            try:
                sps = h264.parse_h264_sps(nal) if spec is h264 else h265.parse_h265_sps(nal)
            except ValueError as exc:
                raise DecodeError(
                    f"the stream's sequence parameter set is unusable ({exc})"
                ) from None
            _check_pixels(sps.width, sps.height, max_pixels)


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise FrameTooLarge(width, height, max_pixels)


class GopDecoder:
    """One stream's decoder, kept between calls: `decode(gop)` feeds FFmpeg only the units of
    `gop` it has not decoded yet (all of them when `gop` starts a new GOP) and returns the
    newest picture. Thread-safe: one decode at a time (a second caller waits)."""

    def __init__(self, codec: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        if codec not in _AV_CODECS:
            raise DecodeError(f"no decoder for {codec[:20]}")
        self.codec = codec
        self.max_pixels = max_pixels
        self._lock = threading.Lock()
        self._ctx: av.VideoCodecContext | None = None
        self._key = 0  # key_serial of the GOP being decoded
        self._fed = 0  # its units fed to the decoder
        self._frame: av.VideoFrame | None = None  # its newest decoded picture
        self._failed = False  # a unit after a picture did not decode: the rest cannot

    def _open(self) -> av.VideoCodecContext:
        ctx = av.CodecContext.create(_AV_CODECS[self.codec], "r")
        assert isinstance(ctx, av.VideoCodecContext)
        # Slice threads on one thread: a picture comes out for each unit fed in (frame
        # threading holds pictures back, one per thread); a camera's GOP decodes in well
        # under a frame interval.
        ctx.thread_type = "SLICE"
        ctx.thread_count = 1
        ctx.options = {"max_pixels": str(self.max_pixels)}  # FFmpeg's own fence
        return ctx

    def decode(self, gop: Gop, drain: bool = False) -> av.VideoFrame:
        """The newest picture of `gop` that decodes. `drain`: also take the pictures a decoder
        with a reorder delay (B-frames) holds back; the next call then starts afresh.
        Raises DecodeError, FrameTooLarge."""
        if gop.codec != self.codec:
            raise DecodeError(f"a {gop.codec[:20]} GOP for a {self.codec} decoder")
        with self._lock:
            if self._ctx is None or gop.key_serial != self._key or gop.frames < self._fed:
                check_size(self.codec, gop.units[0], self.max_pixels)
                self._ctx, self._key, self._fed = self._open(), gop.key_serial, 0
                self._frame, self._failed = None, False
            ctx = self._ctx
            for unit in gop.units[self._fed :] if not self._failed else ():
                try:
                    pictures = ctx.decode(av.Packet(unit))
                except av.FFmpegError:
                    if self._frame is not None:
                        self._failed = True  # a damaged picture: the one before it will do
                        break
                    continue  # none yet: leading junk, or the decoder's refusal (below)
                if pictures:
                    self._frame = pictures[-1]
            self._fed = gop.frames
            if drain or (self._frame is None and not self._failed):
                self._drain(ctx)
            frame = self._frame
            if frame is None:
                _check_pixels(ctx.width, ctx.height, self.max_pixels)  # FFmpeg refused it?
                raise DecodeError(f"the stream's {_NAMES[self.codec]} did not decode")
            _check_pixels(frame.width, frame.height, self.max_pixels)
            return frame

    def _drain(self, ctx: av.VideoCodecContext) -> None:
        try:
            pictures = ctx.decode(None)
        except av.FFmpegError:
            pictures = []
        if pictures:
            self._frame = pictures[-1]
        self._ctx = None  # drained: it takes no more input

    def to_bgr(self, gop: Gop) -> Frame:
        """`decode(gop)` as a BGR array (height, width, 3)."""
        return to_bgr(self.decode(gop))

    def to_jpeg(self, gop: Gop, quality: int = 85) -> bytes:
        """The newest picture of `gop` as JPEG: an MJPEG picture as it came (checked), any
        other decoded and encoded."""
        if self.codec == "JPEG":
            return checked_jpeg(gop.units[-1], self.max_pixels)
        return encode_jpeg(self.to_bgr(gop), quality)


def to_bgr(frame: av.VideoFrame) -> Frame:
    try:
        array = frame.to_ndarray(format="bgr24")
    except (av.FFmpegError, ValueError) as exc:
        raise DecodeError(f"unexpected picture format ({type(exc).__name__})") from None
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise DecodeError(f"unexpected picture format {array.shape} {array.dtype}")
    return np.ascontiguousarray(array)


def checked_jpeg(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> bytes:
    """An MJPEG picture, once its frame header is within `max_pixels` and it decodes."""
    check_size("JPEG", data, max_pixels)
    try:
        imaging.check_decodable(data, max_pixels)
    except imaging.BadImage as exc:
        raise DecodeError(f"the stream's JPEG did not decode ({exc})") from None
    return data


def encode_jpeg(frame: Frame, quality: int = 85) -> bytes:
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise GrabError("JPEG encoding failed")
    return bytes(buf.tobytes())


def decode_gop(gop: Gop, max_pixels: int = DEFAULT_MAX_PIXELS) -> Frame:
    """The newest picture of `gop` as a BGR array, with a decoder of its own. Blocking."""
    return to_bgr(GopDecoder(gop.codec, max_pixels).decode(gop, drain=True))


def gop_to_jpeg(gop: Gop, quality: int = 85, max_pixels: int = DEFAULT_MAX_PIXELS) -> bytes:
    """The newest picture of `gop` as JPEG, with a decoder of its own. Blocking."""
    if gop.codec == "JPEG":
        return checked_jpeg(gop.units[-1], max_pixels)
    return encode_jpeg(decode_gop(gop, max_pixels), quality)
