"""Where each check draws its lines: shipped defaults, overridable per network and by night.

Each limit has two levels: past `suspect` the check reports the camera as suspect, past `faulty`
as faulty. Whether "past" means below or above is the check's (`Limit.below`); a config that puts
`suspect` on the strict side of `faulty` is refused when it loads. The night set replaces the day
set's brightness, contrast and noise limits between `night_start` and `night_end` (local time of
the camera's network): a street at night is darker, flatter and noisier, and is not faulty for it.
"""

from __future__ import annotations

import datetime as dt
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Limit(_Strict):
    suspect: float = Field(description="past this the check says suspect")
    faulty: float = Field(description="past this the check says faulty")
    below: bool = Field(False, description="true: failing means under the limit")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        lenient_first = self.suspect >= self.faulty if self.below else self.suspect <= self.faulty
        if not lenient_first:
            side = "at or above" if self.below else "at or below"
            raise ValueError(f"suspect ({self.suspect}) must be {side} faulty ({self.faulty})")
        return self

    def level(self, value: float) -> int:
        """0 ok, 1 suspect, 2 faulty."""
        if self.below:
            return 2 if value < self.faulty else 1 if value < self.suspect else 0
        return 2 if value > self.faulty else 1 if value > self.suspect else 0


def _below(suspect: float, faulty: float) -> Limit:
    return Limit(suspect=suspect, faulty=faulty, below=True)


def _above(suspect: float, faulty: float) -> Limit:
    return Limit(suspect=suspect, faulty=faulty)


class Thresholds(_Strict):
    """One set of limits (day or night). Measures are described in docs/quality.md."""

    uniform_fraction: Limit = Field(
        default_factory=lambda: _above(0.9, 0.95),
        description="signal loss: share of the picture within a few levels of its median colour",
    )
    synthetic_noise: float = Field(
        0.1, ge=0, description="signal loss: a picture with less sensor noise than this is drawn"
    )
    dark_mean: Limit = Field(
        default_factory=lambda: _below(40, 32), description="too dark: mean luma (0..255)"
    )
    bright_mean: Limit = Field(
        default_factory=lambda: _above(195, 205), description="too bright: mean luma (0..255)"
    )
    contrast: Limit = Field(
        default_factory=lambda: _below(24, 20), description="low contrast: luma std (0..128)"
    )
    cast: Limit = Field(
        default_factory=lambda: _above(1.6, 2.0),
        description="colour cast: Lab chroma offset over chroma spread (D/M)",
    )
    cast_min_offset: float = Field(
        8.0, ge=0, description="colour cast: smallest chroma offset (Lab units) that counts"
    )
    noise: Limit = Field(
        default_factory=lambda: _above(10.0, 13.0), description="noise: sensor noise sigma (grey)"
    )
    stripes: Limit = Field(
        default_factory=lambda: _above(5.0, 6.0),
        description="stripes: amplitude (grey) of a band pattern across the whole picture",
    )
    sharpness: Limit = Field(
        default_factory=lambda: _below(0.55, 0.45),
        description="blur: edge sharpness against the reference (or the absolute scale)",
    )
    occluded: Limit = Field(
        default_factory=lambda: _above(0.12, 0.2),
        description="occlusion: share of the picture textured in the reference and flat now",
    )
    shift: Limit = Field(
        default_factory=lambda: _above(0.025, 0.04),
        description="displacement: shift against the reference (share of the width)",
    )


_NIGHT_DEFAULTS = {
    "dark_mean": _below(12, 9),
    "contrast": _below(9, 7),
    "noise": _above(12.0, 15.0),
    "cast": _above(0.55, 0.7),
    "cast_min_offset": 4.0,
}


class QualityConfig(_Strict):
    """A network's diagnosis settings (`[networks.quality]`); all optional."""

    enabled: bool = Field(True, description="false: this network's cameras are never diagnosed")
    interval_s: float = Field(
        3600.0, ge=60, le=7 * 86400, description="every camera is diagnosed once per interval"
    )
    max_per_minute: int = Field(
        300, ge=1, le=6000, description="pictures a minute a round may take from the network"
    )
    confirm_rounds: int = Field(
        2, ge=1, le=10, description="failing rounds in a row before a camera is faulty"
    )
    day: Thresholds = Field(default_factory=Thresholds)
    night: Thresholds = Field(
        default_factory=lambda: Thresholds.model_validate(_NIGHT_DEFAULTS),
        description="used between night_start and night_end",
    )
    night_start: dt.time = Field(dt.time(19, 0), description="local time night begins")
    night_end: dt.time = Field(dt.time(6, 0), description="local time night ends")
    utc_offset_h: float = Field(8.0, ge=-12, le=14, description="the network's local time")

    def is_night(self, when: dt.datetime) -> bool:
        local = (when.astimezone(dt.UTC) + dt.timedelta(hours=self.utc_offset_h)).time()
        if self.night_start <= self.night_end:
            return self.night_start <= local < self.night_end
        return local >= self.night_start or local < self.night_end

    def thresholds_at(self, when: dt.datetime) -> Thresholds:
        return self.night if self.is_night(when) else self.day
