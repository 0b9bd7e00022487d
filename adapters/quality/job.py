"""One camera's diagnosis from JPEG bytes, as a worker process runs it (data in, data out).

The gateway's diagnosis worker is one process with OpenCV on one thread (`init_worker`), so
a round never takes more than one core whatever the size of the town. References are decoded
once and kept (by their digest, the newest `_REFERENCES` of them): a round judges each camera
against the same reference every time until an admin accepts another.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np

from .checks import Reference, Signature, make_reference
from .diagnose import Diagnosis, diagnose
from .frame import prepare
from .thresholds import Thresholds

_REFERENCES: Final = 512  # prepared references kept (~0.5 MB each)


class NotDecodable(ValueError):
    """The bytes are not a picture OpenCV decodes."""


@dataclass(frozen=True, slots=True)
class JobResult:
    diagnosis: Diagnosis
    signature: Signature


class _ReferenceCache:
    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[bytes, Reference] = OrderedDict()

    def get(self, jpeg: bytes) -> Reference:
        key = hashlib.blake2b(jpeg, digest_size=16).digest()
        found = self.items.get(key)
        if found is None:
            found = self.items[key] = make_reference(prepare(decode(jpeg)))
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        self.items.move_to_end(key)
        return found


_cache = _ReferenceCache(_REFERENCES)  # per worker process: decoded pictures, no connections


def init_worker() -> None:
    """The worker's one-core promise: OpenCV's own thread pool off."""
    cv2.setNumThreads(1)


def decode(jpeg: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise NotDecodable("the picture does not decode")
    return np.asarray(img, np.uint8)


def judge(
    jpeg: bytes,
    thresholds: Thresholds,
    reference: bytes | None,
    previous: Signature | None,
    taken_at: float,
    min_frozen_gap_s: float,
) -> JobResult:
    """Blocking: decode, diagnose. A reference that does not decode is left out (the camera is
    judged without one) rather than failing the camera's diagnosis."""
    ref = None
    if reference is not None:
        try:
            ref = _cache.get(reference)
        except ValueError:
            ref = None
    diagnosis, signature = diagnose(
        decode(jpeg),
        thresholds,
        reference=ref,
        previous=previous,
        taken_at=taken_at,
        min_frozen_gap_s=min_frozen_gap_s,
    )
    return JobResult(diagnosis, signature)


def check_reference(jpeg: bytes) -> tuple[int, int]:
    """Blocking: (width, height) of a picture an admin uploads as a reference, or ValueError
    saying why it cannot be one: not a JPEG, does not decode, or no camera view (smaller than
    64x36, a sliver beyond 4:1: what the diagnosis itself refuses to judge)."""
    if not jpeg.startswith(b"\xff\xd8\xff"):
        raise NotDecodable("the picture is not a JPEG (it does not begin with a JPEG marker)")
    picture = decode(jpeg)
    prepare(picture)  # the diagnosis's own rules for what a frame is
    height, width = picture.shape[:2]
    return width, height
