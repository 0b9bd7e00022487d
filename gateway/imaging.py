"""JPEG work for snapshots: size probe, decodability check, downscale, watermark. Blocking
(OpenCV releases the GIL): callers run these in a worker pool, never on the event loop."""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import cv2
import numpy as np

_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_MIN_WIDTH = 16


class BadImage(ValueError):
    """Not a decodable JPEG."""


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the frame header, without decoding; BadImage if there is none."""
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


def check_decodable(data: bytes) -> tuple[int, int]:
    """Size from the header, then a real (1/8-scale, fast) decode of the whole scan."""
    width, height = jpeg_size(data)
    buf = np.frombuffer(data, np.uint8)
    if cv2.imdecode(buf, cv2.IMREAD_REDUCED_GRAYSCALE_8) is None:
        raise BadImage("does not decode")
    return width, height


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
    """Let libjpeg scale while decoding when a quarter or half is enough (much faster)."""
    mode = cv2.IMREAD_COLOR
    if width * 4 <= frame_width:
        mode = cv2.IMREAD_REDUCED_COLOR_4
    elif width * 2 <= frame_width:
        mode = cv2.IMREAD_REDUCED_COLOR_2
    img = cv2.imdecode(np.frombuffer(data, np.uint8), mode)
    if img is None:
        raise BadImage("does not decode")
    return img


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
