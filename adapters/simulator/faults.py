"""Picture faults a simulated camera can show, each at a strength (0 < strength <= 1).

What field cameras do when they are online but useless: a lens out of focus or misted (blur),
an iris or gain stuck low (dark) or high (bright, washed out), fog or a dirty dome (fog: low
contrast), a colour channel failing or a white balance stuck (colour cast), a failing sensor or
a bad cable (noise, snow), power or cable interference (stripes), an encoder stuck on one picture
(freeze), a bag, a branch or paint over the lens (occlusion), a camera knocked or turned
(displacement), a lost video input (blue screen, the "no signal" page encoders show).

`picture(spec, fault, frame_seed)` renders the camera's scene with the fault applied and the
sensor noise added after it, as in a camera (optics and exposure first, then the sensor). A
frozen camera is the one fault a single frame cannot show: it is the same bytes again
(`PictureFault.freeze` is served by the simulator from its last frame). Pure and deterministic:
the same arguments give the same pixels.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt

from .scene import SENSOR_NOISE, Image, SceneSpec, add_sensor_noise, render_clean

Floats = npt.NDArray[np.float32]


class Fault(StrEnum):
    blur = "blur"
    dark = "dark"
    bright = "bright"
    fog = "fog"
    colour_cast = "colour_cast"
    noise = "noise"
    stripes = "stripes"
    freeze = "freeze"
    occlusion = "occlusion"
    displacement = "displacement"
    blue_screen = "blue_screen"


@dataclass(frozen=True, slots=True)
class PictureFault:
    fault: Fault
    strength: float = 1.0
    seed: int = 0  # the fault's own variation (cast colour, stripe direction, occluder shape)

    def __post_init__(self) -> None:
        if not 0.0 < self.strength <= 1.0:
            raise ValueError("strength must be within (0, 1]")


def picture(spec: SceneSpec, fault: PictureFault | None, frame_seed: int) -> Image:
    """One frame of the camera's scene, with `fault` (None: a clean frame)."""
    sigma = SENSOR_NOISE[spec.period]
    if fault is None or fault.fault is Fault.freeze:
        return add_sensor_noise(render_clean(spec), sigma, frame_seed)
    s, rng = fault.strength, random.Random(fault.seed)
    kind = fault.fault
    if kind is Fault.displacement:
        pan = (0.06 + 0.18 * s) * rng.choice((-1, 1))
        return add_sensor_noise(render_clean(spec, pan), sigma, frame_seed)
    if kind is Fault.blue_screen:
        return blue_screen(spec.width, spec.height, s, rng)
    clean = render_clean(spec).astype(np.float32)
    faulty = _APPLY[kind](clean, s, rng)
    if kind is Fault.noise:  # the fault is the noise: no second draw of clean sensor noise
        return np.asarray(np.clip(faulty + _noise(faulty.shape, s, frame_seed), 0, 255), np.uint8)
    return add_sensor_noise(np.asarray(np.clip(faulty, 0, 255), np.uint8), sigma, frame_seed)


def _f32(values: npt.ArrayLike) -> Floats:
    return np.asarray(values, np.float32)


def _blur(img: Floats, s: float, rng: random.Random) -> Floats:
    sigma = (0.9 + 2.1 * s) * img.shape[1] / 640  # defocus, in 640-wide pixels
    return np.asarray(cv2.GaussianBlur(img, (0, 0), sigma), np.float32)


def _dark(img: Floats, s: float, rng: random.Random) -> Floats:
    return _f32(img * (0.3 - 0.22 * s))  # exposure stuck 1.7 to 3.6 stops low


def _bright(img: Floats, s: float, rng: random.Random) -> Floats:
    wash = 0.72 + 0.26 * s  # towards white: an iris stuck open, IR reflected by the dome
    return _f32(255 - (255 - img) * (1 - wash))


def _fog(img: Floats, s: float, rng: random.Random) -> Floats:
    keep = 0.3 - 0.22 * s  # of the contrast, around a light grey veil
    veil = float(img.mean()) * 0.5 + 90
    return _f32(veil + (img - img.mean()) * keep)


_CASTS: Final = (
    (1.0, 0.55, 0.5),  # blue (B, G, R gains)
    (0.55, 1.0, 0.55),  # green
    (0.5, 0.6, 1.0),  # red
    (1.0, 0.5, 1.0),  # magenta
    (0.45, 1.0, 1.0),  # yellow
)


def _colour_cast(img: Floats, s: float, rng: random.Random) -> Floats:
    gains = np.array(rng.choice(_CASTS), np.float32)
    gains = 1 - (1 - gains) * (0.55 + 0.45 * s)  # a weaker cast keeps more of the other channels
    return _f32(img * gains / gains.max() * 1.1)


def _noise(shape: tuple[int, ...], s: float, frame_seed: int) -> Floats:
    rng = np.random.default_rng(frame_seed ^ 0x5170)
    sigma = 9 + 26 * s
    noise = rng.normal(0.0, sigma, shape[:2]).astype(np.float32)[..., None]  # luma noise
    noise = noise + rng.normal(0.0, sigma / 3, shape).astype(np.float32)  # and some chroma
    snow = rng.random(shape[:2]) < 0.002 + 0.02 * s  # white specks
    noise[snow] = 255
    return noise


def _identity(img: Floats, s: float, rng: random.Random) -> Floats:
    return img


def _stripes(img: Floats, s: float, rng: random.Random) -> Floats:
    h, w = img.shape[:2]
    amplitude = 6 + 18 * s
    period = rng.uniform(6, 40) * w / 640  # interference bands, a few to dozens per picture
    phase = rng.uniform(0, 2 * np.pi)
    if rng.random() < 0.5:  # horizontal bands (rows), else vertical
        wave = amplitude * np.sin(2 * np.pi * np.arange(h) / period + phase)
        return _f32(img + wave.astype(np.float32)[:, None, None])
    wave = amplitude * np.sin(2 * np.pi * np.arange(w) / period + phase)
    return _f32(img + wave.astype(np.float32)[None, :, None])


def _occlusion(img: Floats, s: float, rng: random.Random) -> Floats:
    h, w = img.shape[:2]
    area = 0.3 + 0.4 * s  # of the picture
    mask = np.zeros((h, w), np.float32)
    corner = rng.choice(((0, 0), (w, 0), (0, h), (w, h), (w // 2, h)))
    # an ellipse at a corner or edge, grown until it covers `area` of the picture
    for k in range(1, 60):
        r = k / 30 * max(w, h)
        mask[:] = 0
        cv2.ellipse(mask, corner, (int(r * 1.2), int(r)), rng.uniform(0, 40), 0, 360, 1.0, -1)
        if mask.mean() >= area:
            break
    soft = cv2.GaussianBlur(mask, (0, 0), 0.02 * w)[
        ..., None
    ]  # out of focus: right in front of the lens
    tone = np.array([rng.uniform(25, 80)] * 3, np.float32) + np.array(
        [rng.uniform(-8, 8) for _ in range(3)], np.float32
    )
    return _f32(img * (1 - soft) + tone * soft)


def blue_screen(width: int, height: int, s: float, rng: random.Random) -> Image:
    """The page an encoder shows when its video input is lost: flat blue, text from s >= 0.5."""
    img = np.empty((height, width, 3), np.uint8)
    img[:] = (rng.randint(150, 255), rng.randint(0, 50), rng.randint(0, 30))
    if s >= 0.5:
        scale = height / 360
        text = "NO SIGNAL" if s < 0.9 else "VIDEO LOSS CH01"
        cv2.putText(
            img,
            text,
            (int(width * 0.3), height // 2),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (255, 255, 255),
            max(1, int(2 * scale)),
            cv2.LINE_AA,
        )
    return img


_APPLY: Final = {
    Fault.blur: _blur,
    Fault.dark: _dark,
    Fault.bright: _bright,
    Fault.fog: _fog,
    Fault.colour_cast: _colour_cast,
    Fault.noise: _identity,  # the noise is drawn per frame, in `picture`
    Fault.stripes: _stripes,
    Fault.occlusion: _occlusion,
}
