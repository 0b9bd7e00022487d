"""JPEG work for snapshots: size probe, decodability check, downscale, watermark. Blocking
(OpenCV releases the GIL): callers run these in a worker pool, never on the event loop.

Memory: a JPEG of a few MB can declare 65535x65535 pixels, and a decoder allocates what the
header declares. So the size is read from the frame header first and a picture of more than
`max_pixels` is refused before anything decodes it (`ImageTooLarge`); the check decodes at 1/8
scale, and `render` lets libjpeg scale while decoding whenever the output is half the size or
less. Behind that, OpenCV's own fence (OPENCV_IO_MAX_IMAGE_PIXELS, set by the adapters package).
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime

from .config import DEFAULT_MAX_PIXELS  # (importing adapters sets OpenCV's fence)

# isort: split
import cv2
import numpy as np

_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_MIN_WIDTH = 16
# The decodability check: 1/8 scale, grey, the frame header's orientation (no EXIF rotation, so
# the decoded size can be compared with the header's).
_CHECK_MODE = cv2.IMREAD_REDUCED_GRAYSCALE_8 | cv2.IMREAD_IGNORE_ORIENTATION


class BadImage(ValueError):
    """Not a decodable JPEG."""


class ImageTooLarge(BadImage):
    """More pixels than this gateway decodes (`snapshots.max_pixels`); nothing was decoded."""

    def __init__(self, width: int, height: int, limit: int, what: str = "picture") -> None:
        self.width, self.height, self.limit = width, height, limit
        super().__init__(
            f"a {what} of {width}x{height} pixels, over this gateway's limit of {limit:,}"
        )


def jpeg_size(data: bytes, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(width, height) from the frame header, without decoding; BadImage if there is none,
    ImageTooLarge if it declares more than `max_pixels` (None: no limit)."""
    width, height = _frame_header(data)
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLarge(width, height, max_pixels)
    return width, height


def _frame_header(data: bytes) -> tuple[int, int]:
    if not data.startswith(b"\xff\xd8"):
        raise BadImage("does not start like a JPEG")
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise BadImage("corrupt marker structure")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _SOF and pos + 9 <= len(data):
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            if width and height:
                return width, height
            break
        if marker == 0xDA:  # start of scan before any frame header
            break
        pos += 2 + length
    raise BadImage("no frame header")


def check_decodable(data: bytes, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """Size from the header (refused above `max_pixels` before any decode), then a real
    (1/8-scale, fast) decode of the whole scan, which must agree with the header's size."""
    width, height = jpeg_size(data, max_pixels)
    img = _imdecode(data, _CHECK_MODE)
    expected = (-(-height // 8), -(-width // 8))  # libjpeg rounds a scaled size up
    if img.shape[:2] != expected:
        raise BadImage(
            f"its frame header says {width}x{height} pixels but the picture decodes to "
            f"{img.shape[1]}x{img.shape[0]} at 1/8 scale"
        )
    return width, height


def _imdecode(data: bytes, mode: int) -> np.ndarray:
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), mode)
    except cv2.error:  # OpenCV's own checks (its pixel fence among them) raise, not return
        img = None
    if img is None:
        raise BadImage("does not decode")
    return img


def target_width(frame_width: int, asked: int | None, max_width: int) -> int:
    """The width to serve: what was asked (never upscaled), capped by the network's policy."""
    width = min(asked or frame_width, frame_width, max_width)
    return max(width, min(_MIN_WIDTH, frame_width))


def render(
    data: bytes,
    frame_width: int,
    width: int,
    watermark: list[str] | None,
    quality: int = 85,
) -> bytes:
    """Downscale to `width` and burn in the watermark lines; the input when neither is needed."""
    if width >= frame_width and not watermark:
        return data
    img = _decode_for(data, frame_width, width)
    if img.shape[1] != width:
        height = max(1, round(img.shape[0] * width / img.shape[1]))
        img = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
    if watermark:
        _burn(img, watermark)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise BadImage("could not encode")
    return bytes(buf.tobytes())


def _decode_for(data: bytes, frame_width: int, width: int) -> np.ndarray:
    """Let libjpeg scale while decoding when an eighth, a quarter or a half is enough: much
    faster, and the decoded picture takes 64, 16 or 4 times less memory."""
    mode = cv2.IMREAD_COLOR
    if width * 8 <= frame_width:
        mode = cv2.IMREAD_REDUCED_COLOR_8
    elif width * 4 <= frame_width:
        mode = cv2.IMREAD_REDUCED_COLOR_4
    elif width * 2 <= frame_width:
        mode = cv2.IMREAD_REDUCED_COLOR_2
    return _imdecode(data, mode)


def watermark_lines(operator: str, camera_id: str, taken_at: float) -> list[str]:
    """Who looked, at which camera, at which moment: enough to trace a leaked picture.
    OpenCV's fonts draw ASCII only, so other characters become '?' (the token id stays)."""
    when = datetime.fromtimestamp(taken_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return [_ascii(f"{operator}  {camera_id}"), when]


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode()[:80]


def _burn(img: np.ndarray, lines: list[str]) -> None:
    h, w = img.shape[:2]
    scale = max(0.35, w / 1600)
    thickness = max(1, round(scale * 2))
    line_h = int(28 * scale) + 6
    top = h - line_h * len(lines) - 8
    strip = img[max(0, top - 4) :, :]
    strip[:] = cv2.convertScaleAbs(strip, alpha=0.45)  # darken the strip so text reads anywhere
    for i, text in enumerate(lines):
        y = top + line_h * (i + 1) - 6
        cv2.putText(
            img,
            text,
            (8, y),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (255, 255, 255),
            thickness,
            cv2.LINE_AA,
        )
