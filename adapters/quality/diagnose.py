"""One diagnosis: every check over a frame, the failures that hide others, and the verdict.

Some failures make other measures meaningless, and reporting them would send a maintainer after
the wrong fault: a lost signal hides everything; a picture far too dark or too bright has no
contrast, colour or sharpness worth judging; a displaced camera cannot be compared tile by tile
with its reference; a covered lens has no contrast, colour or sharpness of its own; a veil (low
contrast) or interference bands change the contrast that sharpness is measured against. Those
checks are reported as `masked_by` the failure instead of failing (`MASKS`).

Pure and blocking: run `diagnose` in a worker thread or process, never on an event loop.
"""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel, ConfigDict, Field

from . import checks
from .checks import Check, Level, Reference, Signature
from .frame import Image, prepare
from .thresholds import Thresholds

MASKS: Final[dict[Check, frozenset[Check]]] = {
    Check.signal_loss: frozenset(Check) - {Check.signal_loss},
    Check.too_dark: frozenset(
        {Check.low_contrast, Check.colour_cast, Check.blur, Check.occlusion, Check.displacement}
    ),
    Check.too_bright: frozenset(
        {Check.low_contrast, Check.colour_cast, Check.blur, Check.occlusion, Check.displacement}
    ),
    Check.displacement: frozenset({Check.occlusion, Check.blur}),
    Check.occlusion: frozenset({Check.blur, Check.low_contrast, Check.colour_cast}),
    # sharpness is edge strength per unit of contrast: a veil or bands change the unit
    Check.low_contrast: frozenset({Check.blur}),
    Check.stripes: frozenset({Check.blur}),
}
# Masks apply in this order, so that a masked check masks nothing.
_MASK_ORDER: Final = (
    Check.signal_loss,
    Check.too_dark,
    Check.too_bright,
    Check.displacement,
    Check.occlusion,
    Check.low_contrast,
    Check.stripes,
)


class CheckResult(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    check: Check
    level: Level
    measures: dict[str, float] = Field(default_factory=dict)
    masked_by: Check | None = Field(None, description="not judged: this failure hides it")


class Diagnosis(BaseModel):
    """What one frame says about a camera's picture."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: Level
    failing: list[Check] = Field(description="checks past their suspect or faulty limit")
    results: list[CheckResult]
    width: int = 0
    height: int = 0

    def result(self, check: Check) -> CheckResult:
        return next(r for r in self.results if r.check is check)


def no_frame() -> Diagnosis:
    """A camera that answered with no picture at all: signal lost."""
    result = CheckResult(check=Check.signal_loss, level=Level.faulty, measures={"frame": 0.0})
    return Diagnosis(status=Level.faulty, failing=[Check.signal_loss], results=[result])


def diagnose(
    frame: Image,
    thresholds: Thresholds,
    *,
    reference: Reference | None = None,
    previous: Signature | None = None,
    taken_at: float = 0.0,
    min_frozen_gap_s: float = 1.0,
) -> tuple[Diagnosis, Signature]:
    """Diagnose one frame; returns the diagnosis and the signature to pass as `previous` next
    time. Raises ValueError for what is not a frame (not 8-bit BGR, smaller than 64x36)."""
    p = prepare(frame)
    t = thresholds
    if reference is not None and not reference.fits(p):
        reference = None  # another aspect ratio: a new camera or stream; judged as without one
    found = [
        checks.signal_loss(p, t),
        checks.too_dark(p, t),
        checks.too_bright(p, t),
        checks.low_contrast(p, t),
        checks.colour_cast(p, t),
        checks.noise(p, t),
        checks.stripes(p, t),
        checks.blur(p, reference, t),
        checks.frozen(p, taken_at, previous, min_frozen_gap_s),
        checks.occlusion(p, reference, t),
        checks.displacement(p, reference, t),
    ]
    by_check = {r.check: r for r in found}
    masked: dict[Check, Check] = {}
    for masker in _MASK_ORDER:
        if masker in masked or by_check[masker].level is Level.ok:
            continue
        for hidden in MASKS[masker]:
            masked.setdefault(hidden, masker)
    results = [
        CheckResult(
            check=r.check,
            level=Level.ok if r.check in masked else r.level,
            measures=r.measures,
            masked_by=masked.get(r.check),
        )
        for r in found
    ]
    failing = [r.check for r in results if r.level is not Level.ok]
    status = max((r.level for r in results), key=_SEVERITY.__getitem__)
    diagnosis = Diagnosis(
        status=status, failing=failing, results=results, width=p.width, height=p.height
    )
    return diagnosis, Signature(p.digest, taken_at)


_SEVERITY: Final = {Level.ok: 0, Level.suspect: 1, Level.faulty: 2}
