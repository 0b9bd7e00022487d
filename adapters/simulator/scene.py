"""Street scenes for picture-quality work: what a town camera sees, by day and by night.

The stock snapshot (`snapshot.render_frame`) is flat colour and text, made to carry a marker; no
quality check can say anything true about it. These scenes have what a street camera's picture
has: sky, buildings with rows of windows, a road with lane markings, trees, lamps, cars, surface
texture and live sensor noise (a new draw each frame, stronger at night), so that a static scene
is never two identical frames.

Deterministic: the layout comes from `seed` (one per camera), the sensor noise from `frame_seed`.
`pan` renders the same street seen from a camera turned sideways (a fraction of the width), which
is how `faults.displace` moves a picture without wrapping it around. Blocking (a few ms at 720p,
tens at 1080p): call it in a thread.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]

# The street is drawn on a canvas wider than the view, so that a panned view is still street.
_OVERSCAN: Final = 1.6
SENSOR_NOISE: Final = {"day": 1.5, "night": 3.5}  # grey levels (sigma), per pixel


class Period(StrEnum):
    day = "day"
    night = "night"


@dataclass(frozen=True, slots=True)
class SceneSpec:
    seed: int
    period: Period = Period.day
    width: int = 1280
    height: int = 720


def render_scene(spec: SceneSpec, frame_seed: int = 0, pan: float = 0.0) -> Image:
    """One frame (BGR) of the camera's street; `pan` in fractions of the width (-0.3..0.3)."""
    clean = render_clean(spec, pan)
    return add_sensor_noise(clean, SENSOR_NOISE[spec.period], frame_seed)


def add_sensor_noise(img: Image, sigma: float, frame_seed: int) -> Image:
    rng = np.random.default_rng(frame_seed)
    noise = rng.normal(0.0, sigma, img.shape).astype(np.float32)
    return np.asarray(np.clip(img.astype(np.float32) + noise, 0, 255), np.uint8)


def render_clean(spec: SceneSpec, pan: float = 0.0) -> Image:
    """The street without sensor noise (faults apply to this, then the noise is added)."""
    if not -0.3 <= pan <= 0.3:
        raise ValueError("pan must be within -0.3..0.3 of the width")
    canvas = _street(spec)  # cached: read-only, cropped and copied
    w, h = spec.width, spec.height
    x0 = round((canvas.shape[1] - w) / 2 + pan * w)
    return np.ascontiguousarray(canvas[:, x0 : x0 + w])[:h]


@lru_cache(maxsize=32)
def _street(spec: SceneSpec) -> Image:
    img = _draw_street(spec)
    img.flags.writeable = False
    return img


def _draw_street(spec: SceneSpec) -> Image:
    rng = random.Random(spec.seed)
    night = spec.period is Period.night
    w, h = int(spec.width * _OVERSCAN), spec.height
    u = h / 720  # drawing unit: sizes are given for 720 lines
    img = np.empty((h, w, 3), np.uint8)
    horizon = int(h * rng.uniform(0.38, 0.48))
    _sky(img, horizon, night, rng)
    _buildings(img, horizon, night, rng, u)
    _road(img, horizon, night, rng, u)
    _trees(img, horizon, night, rng, u)
    _cars(img, horizon, night, rng, u)
    _lamps(img, horizon, night, rng, u)
    _texture(img, spec.seed, u)
    return img


def _sky(img: Image, horizon: int, night: bool, rng: random.Random) -> None:
    top = np.array((40, 22, 14) if night else (235, 200, 150), np.float32)
    low = np.array((70, 48, 38) if night else (245, 230, 215), np.float32)
    t = np.linspace(0.0, 1.0, horizon, dtype=np.float32)[:, None]
    img[:horizon] = (top * (1 - t) + low * t)[:, None, :].astype(np.uint8)
    if not night:  # a few soft clouds
        for _ in range(rng.randint(2, 5)):
            centre = (rng.randrange(img.shape[1]), rng.randrange(max(1, horizon * 2 // 3)))
            axes = (rng.randint(60, 200), rng.randint(15, 45))
            cv2.ellipse(img, centre, axes, 0, 0, 360, (250, 248, 246), -1, cv2.LINE_AA)
        img[:horizon] = cv2.GaussianBlur(img[:horizon], (0, 0), 9)


def _buildings(img: Image, horizon: int, night: bool, rng: random.Random, u: float) -> None:
    x = 0
    width = img.shape[1]
    while x < width:
        bw = int(rng.uniform(90, 260) * u)
        top = int(horizon - rng.uniform(60, horizon * 0.85))
        tone = rng.randint(90, 200)
        tint = (rng.randint(-20, 20), rng.randint(-15, 15))
        face = (
            _bgr(tone + tint[0], tone, tone + tint[1]) if not night else _bgr(*(tone // 6 + 8,) * 3)
        )
        cv2.rectangle(img, (x, top), (x + bw, horizon + int(12 * u)), face, -1)
        cv2.rectangle(img, (x, top), (x + bw, horizon + int(12 * u)), (30, 30, 30), max(1, int(u)))
        ww, wh = int(rng.uniform(10, 18) * u), int(rng.uniform(12, 20) * u)
        gx, gy = ww + int(rng.uniform(8, 16) * u), wh + int(rng.uniform(10, 18) * u)
        for wy in range(top + gy // 2, horizon - wh, gy):
            for wx in range(x + gx // 2, x + bw - ww, gx):
                if night:
                    lit = rng.random() < 0.45
                    lum = rng.uniform(0.6, 1.0)
                    colour = _bgr(90 * lum, 190 * lum, 240 * lum) if lit else _bgr(14, 12, 12)
                else:
                    shade = rng.randint(40, 90)
                    colour = _bgr(shade + 25, shade + 10, shade)
                cv2.rectangle(img, (wx, wy), (wx + ww, wy + wh), colour, -1)
        x += bw + int(rng.uniform(0, 40) * u)


def _bgr(b: float, g: float, r: float) -> tuple[int, int, int]:
    return int(np.clip(b, 0, 255)), int(np.clip(g, 0, 255)), int(np.clip(r, 0, 255))


def _road(img: Image, horizon: int, night: bool, rng: random.Random, u: float) -> None:
    h, w = img.shape[:2]
    ground = (28, 30, 30) if night else (96, 104, 104)
    asphalt = (20, 20, 22) if night else (70, 70, 74)
    img[horizon + int(12 * u) :] = ground
    vanish = (w // 2 + rng.randint(-w // 6, w // 6), horizon)
    road = np.array([[vanish[0] - 8, horizon], [vanish[0] + 8, horizon], [w, h], [0, h]])
    cv2.fillPoly(img, [road.astype(np.int32)], asphalt)
    lane = (150, 150, 150) if night else (225, 225, 225)
    for k in range(14):  # dashed centre line in perspective
        t0, t1 = (k / 14) ** 2, ((k + 0.5) / 14) ** 2
        p0 = (int(vanish[0]), int(horizon + (h - horizon) * t0))
        p1 = (int(vanish[0]), int(horizon + (h - horizon) * t1))
        cv2.line(img, p0, p1, lane, max(1, int(6 * u * (0.2 + t1))), cv2.LINE_AA)
    for side in (-1, 1):  # kerbs
        cv2.line(img, vanish, (w // 2 + side * w, h), lane, max(1, int(3 * u)), cv2.LINE_AA)


def _trees(img: Image, horizon: int, night: bool, rng: random.Random, u: float) -> None:
    w = img.shape[1]
    for _ in range(rng.randint(4, 9)):
        x = rng.randrange(w)
        base = horizon + int(rng.uniform(20, 90) * u)
        r = int(rng.uniform(30, 70) * u)
        trunk = (20, 30, 45) if not night else (8, 10, 12)
        cv2.rectangle(img, (x - int(5 * u), base - r), (x + int(5 * u), base + r), trunk, -1)
        leaf = (40, 110 + rng.randint(-20, 30), 50) if not night else (14, 26, 16)
        for _ in range(6):
            c = (x + rng.randint(-r, r) // 2, base - r - rng.randint(0, r))
            cv2.circle(img, c, int(r * rng.uniform(0.5, 0.8)), leaf, -1, cv2.LINE_AA)


def _cars(img: Image, horizon: int, night: bool, rng: random.Random, u: float) -> None:
    h, w = img.shape[:2]
    for _ in range(rng.randint(2, 5)):
        y = int(horizon + (h - horizon) * rng.uniform(0.25, 0.8))
        scale = (y - horizon) / (h - horizon)
        cw, ch = int(160 * scale * u + 20), int(70 * scale * u + 10)
        x = rng.randrange(w - cw)
        b, g, r = rng.choice([(40, 40, 200), (200, 200, 200), (30, 30, 30), (160, 90, 30)])
        body = _bgr(b / 5, g / 5, r / 5) if night else _bgr(b, g, r)
        cv2.rectangle(img, (x, y - ch), (x + cw, y), body, -1)
        cv2.rectangle(img, (x + cw // 6, y - ch), (x + cw * 5 // 6, y - ch * 3 // 5), (60, 50, 40))
        lights = (200, 240, 255) if night else (180, 200, 210)
        for lx in (x + cw // 8, x + cw * 7 // 8):
            cv2.circle(img, (lx, y - ch // 3), max(2, int(6 * u * scale)), lights, -1)


def _lamps(img: Image, horizon: int, night: bool, rng: random.Random, u: float) -> None:
    h, w = img.shape[:2]
    glow = np.zeros(img.shape[:2], np.float32)
    for k in range(rng.randint(5, 9)):
        x = int((k + rng.uniform(0.2, 0.8)) * w / 8)
        top = horizon - int(rng.uniform(40, 110) * u)
        base = horizon + int(rng.uniform(30, 70) * u)
        cv2.line(img, (x, top), (x, base), (60, 60, 60), max(1, int(3 * u)))
        cv2.circle(img, (x, top), max(2, int(7 * u)), (200, 235, 255), -1, cv2.LINE_AA)
        if night:
            cv2.circle(glow, (x, top), int(45 * u), 1.0, -1)
            pool = (x, min(h - 1, base + int(40 * u)))
            cv2.ellipse(glow, pool, (int(90 * u), int(25 * u)), 0, 0, 360, 0.5, -1)
    if night:
        soft = cv2.GaussianBlur(glow, (0, 0), 20 * u)
        warm = np.array((60, 150, 230), np.float32) * 0.6
        lit = img.astype(np.float32) + soft[..., None] * warm
        img[:] = np.clip(lit, 0, 255).astype(np.uint8)


def _texture(img: Image, seed: int, u: float) -> None:
    """Surface grain (render, plaster, asphalt): blurred noise, fixed for the camera."""
    rng = np.random.default_rng(seed ^ 0x5CE7E)
    raw = rng.normal(0.0, 1.0, img.shape[:2]).astype(np.float32)
    grain = np.asarray(cv2.GaussianBlur(raw, (0, 0), 1.2 * u), np.float32)
    grain *= 6.0 / max(float(grain.std()), 1e-6)
    lum = img.astype(np.float32)
    img[:] = np.clip(lum * (1 + grain[..., None] / 100) + grain[..., None], 0, 255).astype(np.uint8)
