"""The checks: each a small pure function from prepared frames to a result with its measures.

A check reads `Prepared` frames (frame.py) and one `Thresholds` set; it never touches the
network, the clock or a store. Checks that need more than the frame take it as an argument:
the camera's reference frame (blur, occlusion, displacement) or the signature of its previous
frame (frozen). Which check's failure hides which other check's is `diagnose.py`'s business.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt

from .frame import Floats, Image, Prepared
from .thresholds import Limit, Thresholds


class Check(StrEnum):
    signal_loss = "signal_loss"
    too_dark = "too_dark"
    too_bright = "too_bright"
    low_contrast = "low_contrast"
    colour_cast = "colour_cast"
    noise = "noise"
    stripes = "stripes"
    blur = "blur"
    frozen = "frozen"
    occlusion = "occlusion"
    displacement = "displacement"


class Level(StrEnum):
    ok = "ok"
    suspect = "suspect"
    faulty = "faulty"


_LEVELS: Final = (Level.ok, Level.suspect, Level.faulty)


@dataclass(frozen=True, slots=True)
class Result:
    check: Check
    level: Level
    measures: dict[str, float]


def _judge(check: Check, limit: Limit, value: float, **measures: float) -> Result:
    return Result(check, _LEVELS[limit.level(value)], measures)


def _rounded(value: float, digits: int = 3) -> float:
    return round(float(value), digits)


# -- the picture on its own ----------------------------------------------------------------------

_UNIFORM_DISTANCE: Final = 12.0  # BGR distance from the median colour that still counts as it


def signal_loss(p: Prepared, t: Thresholds) -> Result:
    """A flat black or blue page with no sensor noise in it: what an encoder or a platform draws
    when the video input is lost. A dark but live picture keeps its noise and is `too_dark`."""
    pixels = p.small.reshape(-1, 3)
    median = _channel_medians(pixels)
    off = pixels - median
    uniform = float((np.einsum("ij,ij->i", off, off) <= _UNIFORM_DISTANCE**2).mean())
    b, g, r = (float(c) for c in median)
    black = max(b, g, r) < 40
    blue = b >= 100 and b - r >= 60 and b - g >= 60
    drawn = p.noise_sigma < t.synthetic_noise and (black or blue)
    level = _LEVELS[t.uniform_fraction.level(uniform)] if drawn else Level.ok
    measures = {"uniform_fraction": _rounded(uniform), "noise_sigma": _rounded(p.noise_sigma)}
    measures |= {"median_b": _rounded(b, 1), "median_g": _rounded(g, 1), "median_r": _rounded(r, 1)}
    return Result(Check.signal_loss, level, measures)


def _channel_medians(pixels: Image) -> Floats:
    """np.median(pixels, axis=0) of 8-bit pixels, from each channel's histogram (a quarter of
    the cost of the sort)."""
    n = pixels.shape[0]
    middle = ((n - 1) // 2 + 1, n // 2 + 1)  # the two middle ranks (equal when n is odd)
    out = np.empty(pixels.shape[1], np.float32)
    for c in range(pixels.shape[1]):
        cumulative = np.cumsum(np.bincount(pixels[:, c], minlength=256))
        low, high = np.searchsorted(cumulative, middle)
        out[c] = (int(low) + int(high)) / 2
    return out


def too_dark(p: Prepared, t: Thresholds) -> Result:
    mean = float(p.grey.mean())
    return _judge(Check.too_dark, t.dark_mean, mean, mean_luma=_rounded(mean, 1))


def too_bright(p: Prepared, t: Thresholds) -> Result:
    mean = float(p.grey.mean())
    return _judge(Check.too_bright, t.bright_mean, mean, mean_luma=_rounded(mean, 1))


def low_contrast(p: Prepared, t: Thresholds) -> Result:
    std = float(p.grey.std())
    return _judge(Check.low_contrast, t.contrast, std, luma_std=_rounded(std, 2))


def colour_cast(p: Prepared, t: Thresholds) -> Result:
    """The mean chroma offset D against the chroma spread M in Lab (the D/M 'cast factor'): a
    cast moves every colour the same way, a colourful scene spreads them."""
    lab = cv2.cvtColor(p.small, cv2.COLOR_BGR2LAB).reshape(-1, 3).astype(np.float32)
    a, b = lab[:, 1] - 128.0, lab[:, 2] - 128.0
    da, db = float(a.mean()), float(b.mean())
    offset = float(np.hypot(da, db))
    spread = float(np.hypot(np.abs(a - da).mean(), np.abs(b - db).mean()))
    factor = offset / max(spread, 1.0)
    value = factor if offset >= t.cast_min_offset else 0.0
    return _judge(
        Check.colour_cast,
        t.cast,
        value,
        cast_factor=_rounded(factor),
        chroma_offset=_rounded(offset, 2),
        chroma_spread=_rounded(spread, 2),
        hue_deg=_rounded(np.degrees(np.arctan2(db, da)) % 360, 1),
    )


def noise(p: Prepared, t: Thresholds) -> Result:
    return _judge(Check.noise, t.noise, p.noise_sigma, noise_sigma=_rounded(p.noise_sigma, 2))


_STRIPE_SLICES: Final = 4
_STRIPE_PERIODS: Final = (4.0, 80.0)  # in WORK_WIDTH pixels
# The scene's slow changes down the profile (sky to road) are taken out before the spectrum.
_TREND_KERNEL: Final = cv2.getGaussianKernel(73, 12.0).astype(np.float32)
_ONE: Final = np.ones((1, 1), np.float32)


def stripes(p: Prepared, t: Thresholds) -> Result:
    """Bands across the whole picture (interference): a periodic profile that every slice of
    the picture shares at the same frequency. Rows of windows repeat in one building, not in
    every slice at once."""
    rows = _band_amplitude(p.grey)  # horizontal bands: a profile down the rows
    cols = _band_amplitude(p.grey.T)  # vertical bands
    amplitude, period = max(rows, cols)
    return _judge(
        Check.stripes,
        t.stripes,
        amplitude,
        amplitude=_rounded(amplitude, 2),
        period_px=_rounded(period * p.width / p.grey.shape[1], 1),
        horizontal=1.0 if rows >= cols else 0.0,
    )


def _band_amplitude(grey: Floats) -> tuple[float, float]:
    """(amplitude, period in pixels) of the strongest frequency all slices share."""
    n = grey.shape[0]
    slices = np.array_split(grey, _STRIPE_SLICES, axis=1)
    profiles = np.stack([s.mean(axis=1) for s in slices])  # (slices, n)
    trend = cv2.sepFilter2D(
        profiles, cv2.CV_32F, _TREND_KERNEL, _ONE, borderType=cv2.BORDER_REFLECT
    )
    detrended = (profiles - trend) * np.hanning(n)[None, :]
    spectrum = np.abs(np.fft.rfft(detrended, axis=1)) * 4.0 / n  # Hann window: amplitude x2
    freqs = np.fft.rfftfreq(n)
    low, high = 1.0 / _STRIPE_PERIODS[1], 1.0 / _STRIPE_PERIODS[0]
    band = (freqs >= low) & (freqs <= high)
    if not band.any():
        return 0.0, 0.0
    shared = spectrum[:, band].min(axis=0)
    k = int(np.argmax(shared))
    return float(shared[k]), float(1.0 / freqs[band][k])


# -- against the previous frame ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Signature:
    """What the frozen check keeps of a frame: 16 bytes and when it was taken."""

    digest: bytes
    taken_at: float  # POSIX seconds of the camera's (else the fetcher's) clock


def frozen(p: Prepared, taken_at: float, previous: Signature | None, min_gap_s: float) -> Result:
    """The same picture again although time went on. A live sensor never repeats a picture:
    its noise alone changes the downscaled pixels, so a static scene is not frozen."""
    if previous is None:
        return Result(Check.frozen, Level.ok, {"compared": 0.0})
    gap = taken_at - previous.taken_at
    same = p.digest == previous.digest
    level = Level.faulty if same and gap >= min_gap_s else Level.ok
    return Result(Check.frozen, level, {"compared": 1.0, "identical": float(same), "gap_s": gap})


# -- against the camera's reference frame -------------------------------------------------------

_TEXTURED: Final = 6.0  # tile luma std above which a reference tile has something to lose
_OCCLUDED_RATIO: Final = 0.3  # a tile that kept less of its texture than this is covered
_SHARP_SCALE: Final = 2.4  # absolute sharpness of a clean street scene, so that clean ~ 1.0


@dataclass(frozen=True, slots=True)
class Reference:
    prepared: Prepared
    window: Floats  # the reference's grey, windowed, for phase correlation

    def fits(self, p: Prepared) -> bool:
        """Comparable with `p`: the same shape once downscaled (so the same aspect ratio)."""
        return self.prepared.grey.shape == p.grey.shape


def make_reference(p: Prepared) -> Reference:
    return Reference(p, _for_correlation(p.grey))


def _for_correlation(grey: Floats) -> Floats:
    size = (grey.shape[1] // 2, grey.shape[0] // 2)
    half = np.asarray(cv2.resize(grey, size, interpolation=cv2.INTER_AREA), np.float32)
    window = cv2.createHanningWindow(size, cv2.CV_32F)
    return np.asarray((half - half.mean()) * window, np.float32)


def _texture_kept(p: Prepared, ref: Prepared) -> tuple[Floats, npt.NDArray[np.bool_]]:
    """Per textured reference tile, the share of its shapes' contrast kept now, against what
    the whole picture kept (so a darker, flatter or noisier picture is not 'covered')."""
    mask = ref.tile_coarse >= _TEXTURED
    overall = p.coarse_std / max(ref.coarse_std, 1e-3)
    kept = p.tile_coarse[mask] / ref.tile_coarse[mask] / max(overall, 1e-3)
    return kept.astype(np.float32), mask


def occlusion(p: Prepared, ref: Reference | None, t: Thresholds) -> Result:
    """A large part of the picture textured in the reference and flat now (a bag, a branch,
    paint on the dome). Not judged without a reference: sky, walls and a road at night are
    large flat regions of a healthy picture, and only the reference tells them from a cover."""
    if ref is None:
        return Result(Check.occlusion, Level.ok, {"reference": 0.0})
    kept, _ = _texture_kept(p, ref.prepared)
    # of the textured part of the reference: a camera facing half sky loses only the other half
    share = float((kept < _OCCLUDED_RATIO).mean()) if kept.size else 0.0
    return _judge(Check.occlusion, t.occluded, share, occluded=_rounded(share), reference=1.0)


def blur(p: Prepared, ref: Reference | None, t: Thresholds) -> Result:
    """Edge sharpness (mean |Laplacian| per unit of contrast, tile by tile), against the
    reference's where there is one; covered tiles are left out."""
    own = p.tile_sharp / np.maximum(p.tile_std, 1.0)
    if ref is None:
        textured = p.tile_std >= _TEXTURED
        value = float(np.median(own[textured])) * _SHARP_SCALE if textured.any() else 1.0
        return _judge(Check.blur, t.sharpness, value, sharpness=_rounded(value), reference=0.0)
    r = ref.prepared
    kept, mask = _texture_kept(p, r)
    theirs = (r.tile_sharp / np.maximum(r.tile_std, 1.0))[mask]
    usable = kept >= _OCCLUDED_RATIO
    if not usable.any():
        return Result(Check.blur, Level.ok, {"sharpness": 1.0, "reference": 1.0})
    ratio = float(np.median(own[mask][usable] / np.maximum(theirs[usable], 1e-3)))
    return _judge(Check.blur, t.sharpness, ratio, sharpness=_rounded(ratio), reference=1.0)


def displacement(p: Prepared, ref: Reference | None, t: Thresholds) -> Result:
    """The shift of the picture against the reference by phase correlation (a camera knocked
    or turned); `response` near 0 means the scene no longer resembles the reference at all."""
    if ref is None:
        return Result(Check.displacement, Level.ok, {"reference": 0.0})
    current = _for_correlation(p.grey)
    (dx, dy), response = cv2.phaseCorrelate(ref.window, current)
    w, h = ref.window.shape[1], ref.window.shape[0]
    shift = float(np.hypot(dx / w, dy / h))
    return _judge(
        Check.displacement,
        t.shift,
        shift,
        shift=_rounded(shift, 4),
        dx=_rounded(dx / w, 4),
        dy=_rounded(dy / h, 4),
        response=_rounded(response),
        reference=1.0,
    )
