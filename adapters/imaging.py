"""Picture work for snapshots: what an answer is, size probe, decodability check, conversion of
PNG and BMP to JPEG, downscale, watermark. Blocking (OpenCV releases the GIL): callers run these
in a worker pool, never on the event loop; `identify` alone is cheap (it reads a few bytes).

Memory: a JPEG or PNG of a few MB can declare 65535x65535 pixels, and a decoder allocates what
the header declares. So the size is read from the header first (JPEG frame header, PNG IHDR,
BMP info header) and a picture of more than `max_pixels` is refused before anything decodes it
(`ImageTooLarge`); the JPEG check decodes at 1/8 scale, and `render` lets libjpeg scale while
decoding whenever the output is half the size or less. Behind that, OpenCV's own fence
(OPENCV_IO_MAX_IMAGE_PIXELS, set by the adapters package).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
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


class NotAPicture(BadImage):
    """An answer that is no picture this gateway serves: an HTML page, text, unrecognised bytes,
    an image format it does not convert, or a picture that does not decode (`detail` says how).
    `kind` is what `identify` made of it; `what` says it for people, the same every time (notes
    and memories use it); `declared`, the Content-Type it came with, is added when it differs."""

    def __init__(self, kind: str, detail: str = "", declared: str = "") -> None:
        self.kind, self.detail = kind, detail
        if detail:
            self.what = f"{describe(kind)} that does not decode"
        elif kind.startswith("image/"):
            self.what = f"{describe(kind)}, a format this gateway does not convert"
        else:
            self.what = f"{describe(kind)}, not a picture"
        text = self.what
        if detail and detail != "does not decode":
            text += f" ({detail})"
        if declared and declared != kind:
            text += f" (sent as {declared})"
        super().__init__(text)


# -- what an answer is ---------------------------------------------------------------------------

JPEG, PNG, BMP = "image/jpeg", "image/png", "image/bmp"
CONVERTIBLE = (PNG, BMP)  # what some firmware's snapshot CGI sends instead of a JPEG
EMPTY, HTML, XML, TEXT, UNKNOWN = (
    "empty",
    "text/html",
    "text/xml",
    "text/plain",
    "application/octet-stream",
)
_DESCRIBED = {
    JPEG: "a JPEG",
    PNG: "a PNG",
    BMP: "a BMP",
    "image/gif": "a GIF",
    "image/tiff": "a TIFF",
    "image/webp": "a WebP image",
    EMPTY: "an empty answer",
    HTML: "an HTML page",
    XML: "an XML document",
    TEXT: "text",
    UNKNOWN: "unrecognised bytes",
}
_MARKUP = (b"<!doctype html", b"<html", b"<head", b"<body", b"<title")


def identify(data: bytes) -> str:
    """What an answer is, from its first bytes: a media type (`JPEG`, `PNG`, `BMP`, other
    images, `HTML`, `XML`, `TEXT`), `UNKNOWN` or `EMPTY`. Never from the Content-Type the camera
    declared: cameras send HTML error pages as image/jpeg, and PNGs as image/jpeg too."""
    if not data:
        return EMPTY
    if data.startswith(b"\xff\xd8"):
        return JPEG
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if data.startswith(b"BM") and len(data) >= 26:
        return BMP
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] in (b"II*\0", b"MM\0*"):
        return "image/tiff"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<") and any(tag in head for tag in _MARKUP):
        return HTML
    if head.startswith(b"<"):
        return XML
    sample = data[:1024]
    if not sample.translate(None, _TEXT_BYTES) and _utf8(sample):
        return TEXT
    return UNKNOWN


_TEXT_BYTES = b"\t\n\r" + bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100))


def _utf8(sample: bytes) -> bool:
    """Valid UTF-8, but for a character the sample cut in two at its end."""
    try:
        sample.decode()
    except UnicodeDecodeError as exc:
        return exc.reason == "unexpected end of data" and exc.start >= len(sample) - 3
    return True


def describe(kind: str) -> str:
    """`identify`'s answer for people: 'an HTML page', 'a PNG', 'unrecognised bytes'."""
    return _DESCRIBED.get(kind, kind)


def picture_size(
    data: bytes, kind: str, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> tuple[int, int]:
    """(width, height) of a JPEG, PNG or BMP from its header, without decoding; BadImage if
    the header is not there, ImageTooLarge if it declares more than `max_pixels`."""
    if kind == JPEG:
        return jpeg_size(data, max_pixels)
    if kind == PNG:
        width, height = _png_header(data)
    elif kind == BMP:
        width, height = _bmp_header(data)
    else:
        raise NotAPicture(kind)
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLarge(width, height, max_pixels)
    return width, height


def _png_header(data: bytes) -> tuple[int, int]:
    """The IHDR chunk, which PNG requires first: length 13, then width and height."""
    if len(data) < 24 or data[8:16] != b"\x00\x00\x00\x0dIHDR":
        raise BadImage("a PNG without its header (IHDR)")
    width, height = struct.unpack(">II", data[16:24])
    if not (0 < width < 1 << 31 and 0 < height < 1 << 31):
        raise BadImage(f"a PNG header declaring {width}x{height} pixels")
    return width, height


_BMP_INFO_SIZES = {40, 52, 56, 64, 108, 124}  # BITMAPINFOHEADER and its successors


def _bmp_header(data: bytes) -> tuple[int, int]:
    """The DIB header after the 14-byte file header: BITMAPCOREHEADER (12 bytes, 16-bit
    sizes) or BITMAPINFOHEADER and later (signed 32-bit; a negative height is top-down)."""
    if len(data) < 26:
        raise BadImage("a BMP without its header")
    (size,) = struct.unpack("<I", data[14:18])
    if size == 12:
        width, height = struct.unpack("<HH", data[18:22])
    elif size in _BMP_INFO_SIZES:
        width, height = struct.unpack("<ii", data[18:26])
        height = abs(height)
    else:
        raise BadImage(f"a BMP with an unknown header ({size} bytes)")
    if width <= 0 or height <= 0:
        raise BadImage(f"a BMP header declaring {width}x{height} pixels")
    return width, height


@dataclass(frozen=True, slots=True)
class Picture:
    """A checked JPEG: the camera's own, or converted from `converted_from` (PNG, BMP)."""

    jpeg: bytes
    width: int
    height: int
    converted_from: str | None = None


def usable_jpeg(
    data: bytes, kind: str, max_pixels: int | None = DEFAULT_MAX_PIXELS, quality: int = 90
) -> Picture:
    """`data` (of `identify`'s `kind`) as a JPEG fit to serve. A JPEG as it is, checked like
    `check_decodable`; a PNG or BMP sized from its header (refused over `max_pixels` before any
    decode), decoded whole, checked against its header and encoded as JPEG. NotAPicture for
    anything else and for a picture that does not decode."""
    if kind != JPEG and kind not in CONVERTIBLE:
        raise NotAPicture(kind)
    try:
        if kind == JPEG:
            return Picture(data, *check_decodable(data, max_pixels))
        width, height = picture_size(data, kind, max_pixels)
        img = _imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    except ImageTooLarge:
        raise
    except BadImage as exc:
        raise NotAPicture(kind, str(exc)) from exc
    if img.shape[:2] != (height, width):
        size = f"{img.shape[1]}x{img.shape[0]}"
        raise NotAPicture(kind, f"its header says {width}x{height} pixels, it decodes to {size}")
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise BadImage("could not encode")
    return Picture(bytes(buf.tobytes()), width, height, kind)


# -- JPEG ----------------------------------------------------------------------------------------


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
