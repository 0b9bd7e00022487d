"""A labelled set of pictures for scoring the quality checks: every fault at several strengths,
over day and night streets, and clean frames. Generated from seeds each time (nothing stored):
the same arguments give the same pictures, byte for byte.

Each sample is what a diagnosis round would hold for one camera: the frame (through JPEG, as a
camera sends it), the camera's accepted reference frame (a clean frame of the same street, same
period, another moment), and the previous frame's picture for the frozen check (a frozen camera
sends the previous picture again; a live one a new frame of the same static street, differing
only by its sensor noise).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np

from .faults import Fault, PictureFault, picture
from .scene import Image, Period, SceneSpec

STRENGTHS: Final = (0.35, 0.65, 1.0)
JPEG_QUALITY: Final = 85
# The check each fault should be found by (the labels the scores are kept against).
EXPECTED: Final = {
    Fault.blur: "blur",
    Fault.dark: "too_dark",
    Fault.bright: "too_bright",
    Fault.fog: "low_contrast",
    Fault.colour_cast: "colour_cast",
    Fault.noise: "noise",
    Fault.stripes: "stripes",
    Fault.freeze: "frozen",
    Fault.occlusion: "occlusion",
    Fault.displacement: "displacement",
    Fault.blue_screen: "signal_loss",
}


@dataclass(frozen=True, slots=True)
class Sample:
    fault: Fault | None  # None: clean
    strength: float
    period: Period
    scene_seed: int
    frame: Image
    reference: Image
    previous: Image

    @property
    def label(self) -> str:
        return "clean" if self.fault is None else self.fault.value


def jpeg(img: Image, quality: int = JPEG_QUALITY) -> Image:
    """The picture as the diagnosis gets it: JPEG-encoded by the camera, decoded by us."""
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if decoded is None:
        raise RuntimeError("JPEG decoding failed")
    return np.asarray(decoded, np.uint8)


def samples(
    scenes: int = 4,
    clean_per_scene: int = 3,
    width: int = 640,
    height: int = 360,
    faults: tuple[Fault, ...] = tuple(Fault),
    strengths: tuple[float, ...] = STRENGTHS,
    first_seed: int = 1000,
) -> Iterator[Sample]:
    """scenes x periods x (faults x strengths + clean_per_scene) samples; street k is drawn
    from seed `first_seed + k`."""
    for period in Period:
        for k in range(scenes):
            seed = first_seed + k
            spec = SceneSpec(seed, period, width, height)
            reference = jpeg(picture(spec, None, frame_seed=seed * 7 + 1))
            previous = jpeg(picture(spec, None, frame_seed=seed * 7 + 2))
            for n in range(clean_per_scene):
                frame = jpeg(picture(spec, None, frame_seed=seed * 7 + 3 + n))
                yield Sample(None, 0.0, period, seed, frame, reference, previous)
            for f_index, fault in enumerate(faults):
                for strength in strengths:
                    if fault is Fault.freeze:  # the previous picture, again
                        yield Sample(fault, strength, period, seed, previous, reference, previous)
                        continue
                    injected = PictureFault(fault, strength, seed=seed * 31 + f_index)
                    frame = jpeg(picture(spec, injected, frame_seed=seed * 7 + 3))
                    yield Sample(fault, strength, period, seed, frame, reference, previous)
