"""A frame made ready for the checks: the downscaled pictures and statistics they share.

Most measures are about the scene, not the pixel, and answer the same on a 640-wide copy as on
the 1080p original at a tenth of the cost; they run on `grey` (640 wide, area-averaged) and
`small` (160 wide, colour). Noise is about the pixel, so its estimate reads full-resolution rows
(a few bands of them, which is enough for a median). All of it is blocking CPU work: callers run
it in a worker thread or process.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]
Floats = npt.NDArray[np.float32]

WORK_WIDTH: Final = 640
SMALL_WIDTH: Final = 160
TILES: Final = (6, 8)  # rows, columns of the texture grid (occlusion, blur against a reference)
_NOISE_BANDS: Final = 8
_NOISE_BAND_ROWS: Final = 24
# Immerkaer's noise operator: the difference of two Laplacians, blind to flat and linear areas.
_NOISE_KERNEL: Final = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
_MAD_TO_SIGMA: Final = 1.4826 / 6.0  # the kernel's gain on white noise is sqrt(36)
_NOISE_MAX: Final = 16 * 255  # the operator's largest answer on 8-bit pixels
# Occlusion compares the shapes in a tile, not its grain: a blurred or noisy picture keeps them.
_COARSE_SIGMA: Final = 2.5


@dataclass(frozen=True, slots=True)
class Prepared:
    width: int  # of the original frame
    height: int
    grey: Floats  # WORK_WIDTH wide, luma 0..255
    small: Image  # SMALL_WIDTH wide, BGR
    noise_sigma: float  # grey levels at full resolution
    tile_std: Floats  # TILES: luma std per tile of `grey`
    tile_sharp: Floats  # TILES: mean |Laplacian| per tile of `grey`
    tile_coarse: Floats  # TILES: luma std per tile of a blurred half-size `grey` (shapes)
    coarse_std: float  # luma std of that whole blurred picture
    digest: bytes  # of the 320-wide grey picture: equal only for the same picture


def prepare(frame: Image) -> Prepared:
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError("a frame is an 8-bit BGR picture (height, width, 3)")
    h, w = frame.shape[:2]
    if w < 64 or h < 36:
        raise ValueError(f"a frame of {w}x{h} is too small to diagnose")
    if not 1 / 4 <= w / h <= 4:  # (a panorama strip or a sliver: no camera view to judge)
        raise ValueError(f"a frame of {w}x{h} is narrower than 1:4 or wider than 4:1")
    colour = _downscale(frame, WORK_WIDTH)  # the only pass over the full frame; the rest is small
    work = np.asarray(cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY), np.uint8)
    grey = work.astype(np.float32)
    small = _resize(colour, SMALL_WIDTH)
    half = _resize(work, WORK_WIDTH // 2)
    std, sharp = _tiles(grey)
    # (on the half-size picture, with half the sigma: the same shapes at a quarter of the cost)
    coarse = np.asarray(
        cv2.GaussianBlur(half.astype(np.float32), (0, 0), _COARSE_SIGMA / 2), np.float32
    )
    return Prepared(
        width=w,
        height=h,
        grey=grey,
        small=small,
        noise_sigma=noise_sigma(frame),
        tile_std=std,
        tile_sharp=sharp,
        tile_coarse=_tile_std(coarse),
        coarse_std=float(coarse.std()),
        digest=hashlib.blake2b(half.tobytes(), digest_size=16).digest(),
    )


def _downscale(frame: Image, width: int) -> Image:
    """`frame` scaled down to `width`: halved by area averaging while it is at least twice as
    wide (OpenCV's exact halving is vectorised: 0.7 ms for a 1080p frame), then the last step
    of less than 2x by linear interpolation, which at that ratio still weighs in (nearly) every
    source pixel. An area filter at 1.5x costs 2.8 ms, and 3x straight from 1080p 3.4 ms, for
    the same picture within a grey level on average."""
    while frame.shape[1] >= 2 * width:
        h, w = frame.shape[:2]
        frame = np.asarray(
            cv2.resize(frame, (w // 2, h // 2), interpolation=cv2.INTER_AREA), np.uint8
        )
    h, w = frame.shape[:2]
    if w == width:
        return frame
    size = (width, max(1, round(h * width / w)))
    return np.asarray(cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR), np.uint8)


def _resize(img: Image, width: int) -> Image:
    h, w = img.shape[:2]
    if w == width:
        return img
    height = max(1, round(h * width / w))
    interp = cv2.INTER_AREA if w > width else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(img, (width, height), interpolation=interp), np.uint8)


def noise_sigma(frame: Image) -> float:
    """Sensor noise (sigma, grey levels): the median of Immerkaer's operator over bands of full
    resolution rows. The median ignores edges, text and the odd speck; scene texture finer than
    a pixel still counts, as it does for an eye. The operator's answers are integers, so the
    median comes from their histogram (a sort of 300,000 values would cost more than the rest)."""
    h = frame.shape[0]
    rows = min(_NOISE_BAND_ROWS, h)
    starts = np.linspace(0, h - rows, _NOISE_BANDS).astype(int)
    counts = np.zeros(_NOISE_MAX + 1, np.int64)
    for y in sorted(set(starts.tolist())):
        band = frame[y : y + rows]
        grey = cv2.cvtColor(band, cv2.COLOR_BGR2GRAY) if band.ndim == 3 else band
        response = cv2.filter2D(grey, cv2.CV_16S, _NOISE_KERNEL, borderType=cv2.BORDER_REFLECT)
        counts += np.bincount(np.abs(response[1:-1, 1:-1]).ravel(), minlength=_NOISE_MAX + 1)
    median = int(np.searchsorted(np.cumsum(counts), (int(counts.sum()) + 1) / 2))
    return median * _MAD_TO_SIGMA


def _tile_view(img: Floats) -> Floats:
    rows, cols = TILES
    h, w = img.shape
    th, tw = h // rows, w // cols
    return np.asarray(img[: th * rows, : tw * cols].reshape(rows, th, cols, tw), np.float32)


def _tile_std(img: Floats) -> Floats:
    return np.asarray(_tile_view(img).std(axis=(1, 3)), np.float32)


def _tiles(grey: Floats) -> tuple[Floats, Floats]:
    # A light blur first: the sharpness of the scene's edges, not of the sensor's noise.
    lap = np.abs(cv2.Laplacian(cv2.GaussianBlur(grey, (0, 0), 0.8), cv2.CV_32F))
    sharp = _tile_view(lap).mean(axis=(1, 3)).astype(np.float32)
    return _tile_std(grey), sharp
