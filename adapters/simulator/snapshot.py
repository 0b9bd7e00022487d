"""Snapshot images of simulated cameras: real JPEGs drawn with OpenCV.

Each frame shows the camera id, its network, name and the capture time (UTC), on a background in
the network's colour. Three rows of black and white blocks at the top carry a machine-readable
marker, so that a test can identify the camera and the capture second without OCR, even after the
gateway has rescaled, watermarked and re-encoded the image: `read_marker()`.

Rendering and encoding are blocking (a few ms); call `render_snapshot` in a thread.

Not every camera answers its snapshot URL with a JPEG: `snapshot_answer` serves what a device's
`Quirks.snapshot_format` says (a PNG, a BMP, an HTML error page, garbage, a PNG bomb).

A device with `Quirks.picture` shows a street instead (scene.py), by day or night, with a
picture fault or none (faults.py): `render_street`, for the quality diagnosis. No marker there.
"""

from __future__ import annotations

import colorsys
import datetime as dt
import hashlib
import random
import struct
import zlib
from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt

from .devices import Picture, SnapshotFormat
from .faults import Fault, picture
from .scene import SceneSpec

WIDTH: Final = 1280
HEIGHT: Final = 720
JPEG_QUALITY: Final = 85
_BITS: Final = 32
_BLOCK_W: Final = WIDTH // _BITS  # 40 px
_BLOCK_H: Final = 24
_MARKER_ROWS: Final = 3  # camera hash, capture time (POSIX s), check word
_FONT: Final = cv2.FONT_HERSHEY_SIMPLEX

Image = npt.NDArray[np.uint8]


def camera_hash(camera_id: str) -> int:
    """The 32-bit value the marker carries for a camera (CRC-32 of its id)."""
    return zlib.crc32(camera_id.encode()) & 0xFFFFFFFF


def _check_word(camera: int, stamp: int) -> int:
    return zlib.crc32(camera.to_bytes(4, "big") + stamp.to_bytes(4, "big")) & 0xFFFFFFFF


def network_colour(network: str) -> tuple[int, int, int]:
    """A stable, saturated BGR colour for a network id (derived from its name, not hard-coded)."""
    hue = int.from_bytes(hashlib.sha1(network.encode()).digest()[:2], "big") / 65536
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.9)
    return int(b * 255), int(g * 255), int(r * 255)


def _draw_marker(img: Image, words: tuple[int, int, int]) -> None:
    for row, word in enumerate(words):
        y0 = row * _BLOCK_H
        for bit in range(_BITS):
            on = (word >> (_BITS - 1 - bit)) & 1
            x0 = bit * _BLOCK_W
            img[y0 : y0 + _BLOCK_H, x0 : x0 + _BLOCK_W] = 255 if on else 0


@dataclass(frozen=True, slots=True)
class Marker:
    camera_hash: int
    captured_at: int  # POSIX seconds, UTC


def read_marker(img: Image) -> Marker | None:
    """Read the marker from a decoded (BGR or grey) snapshot, at any scale; None if absent."""
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img
    scaled = cv2.resize(grey, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
    words: list[int] = []
    for row in range(_MARKER_ROWS):
        y = row * _BLOCK_H + _BLOCK_H // 2
        word = 0
        for bit in range(_BITS):
            x = bit * _BLOCK_W + _BLOCK_W // 2
            patch = scaled[y - 4 : y + 4, x - 8 : x + 8]
            word = (word << 1) | (1 if float(patch.mean()) >= 128 else 0)
        words.append(word)
    camera, stamp, check = words
    if check != _check_word(camera, stamp):
        return None
    return Marker(camera, stamp)


def render_frame(camera_id: str, network: str, name: str, when: dt.datetime) -> Image:
    """Draw one frame (BGR, 1280x720)."""
    colour = network_colour(network)
    img = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    img[:] = tuple(c // 4 for c in colour)  # dark background in the network's hue
    stamp = int(when.timestamp())
    cam = camera_hash(camera_id)
    _draw_marker(img, (cam, stamp, _check_word(cam, stamp)))
    top = _MARKER_ROWS * _BLOCK_H
    cv2.rectangle(img, (0, top), (WIDTH - 1, top + 90), colour, -1)  # the network band
    cv2.putText(img, network, (24, top + 66), _FONT, 2.0, (255, 255, 255), 4, cv2.LINE_AA)
    cv2.putText(img, camera_id, (24, 300), _FONT, 1.6, (255, 255, 255), 3, cv2.LINE_AA)
    cv2.putText(img, name, (24, 380), _FONT, 1.3, (220, 220, 220), 2, cv2.LINE_AA)
    text_time = when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"
    cv2.putText(img, text_time, (24, 470), _FONT, 1.3, (255, 255, 255), 2, cv2.LINE_AA)
    # a dot that moves with the seconds, so consecutive frames differ visibly
    angle = (when.second + when.microsecond / 1e6) / 60 * 2 * np.pi
    centre = (1040 + int(120 * np.sin(angle)), 520 - int(120 * np.cos(angle)))
    cv2.circle(img, (1040, 520), 130, colour, 3, cv2.LINE_AA)
    cv2.circle(img, centre, 18, (255, 255, 255), -1, cv2.LINE_AA)
    return img


def render_snapshot(camera_id: str, network: str, name: str, when: dt.datetime) -> bytes:
    """A JPEG of one frame. Blocking: run it in a thread, never on the event loop."""
    ok, buf = cv2.imencode(
        ".jpg",
        render_frame(camera_id, network, name, when),
        [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY],
    )
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return bytes(buf.tobytes())


def render_street(camera_id: str, scene: Picture, when: dt.datetime) -> bytes:
    """A JPEG of the camera's street (`Quirks.picture`), its sensor noise drawn anew for each
    millisecond; a frozen camera sends the same picture, byte for byte, every time."""
    spec = SceneSpec(camera_hash(camera_id), scene.period, WIDTH, HEIGHT)
    frozen = scene.fault is not None and scene.fault.fault is Fault.freeze
    frame_seed = 0 if frozen else int(when.timestamp() * 1000)
    ok, buf = cv2.imencode(
        ".jpg", picture(spec, scene.fault, frame_seed), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    )
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return bytes(buf.tobytes())


HTML_ERROR_PAGE: Final = (
    b"<!DOCTYPE html>\n<html><head><title>Error</title></head><body>"
    b"<h1>Snapshot unavailable</h1><p>The snapshot function is disabled. Enable it under "
    b"Configuration &gt; Image &gt; Snapshot.</p></body></html>\n"
)
BOMB_SIZE: Final = (100_000, 100_000)


def snapshot_answer(
    fmt: SnapshotFormat,
    camera_id: str,
    network: str,
    name: str,
    when: dt.datetime,
    scene: Picture | None = None,
) -> tuple[bytes, str]:
    """(body, Content-Type) of the snapshot URL's answer in `fmt`. Blocking: in a thread."""
    if scene is not None and fmt is SnapshotFormat.jpeg:
        return render_street(camera_id, scene, when), "image/jpeg"
    if fmt is SnapshotFormat.html_error:
        return HTML_ERROR_PAGE, "text/html"
    if fmt is SnapshotFormat.garbage:  # the same bytes every time, for one camera
        noise = random.Random(camera_hash(camera_id)).randbytes(4096)
        return b"\x00\x17" + noise, "image/jpeg"
    if fmt is SnapshotFormat.png_bomb:
        return png_bomb(*BOMB_SIZE), "image/png"
    if fmt is SnapshotFormat.jpeg:
        return render_snapshot(camera_id, network, name, when), "image/jpeg"
    ext = ".png" if fmt is SnapshotFormat.png else ".bmp"
    ok, buf = cv2.imencode(ext, render_frame(camera_id, network, name, when))
    if not ok:
        raise RuntimeError(f"{ext} encoding failed")
    return bytes(buf.tobytes()), f"image/{ext[1:]}"


def png_bomb(width: int, height: int) -> bytes:
    """A well-formed PNG of a few hundred bytes whose header (IHDR) declares width x height
    pixels of 8-bit RGB: a decoder believing it would allocate width x height x 3 bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 4096, 9)  # the first rows' worth; the rest never comes
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
