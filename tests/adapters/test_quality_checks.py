"""The quality checks one behaviour at a time: levels, masks, night limits, frozen pictures,
references that do not fit, and the errors a caller gets for what is not a frame or a config."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from pydantic import ValidationError

from adapters.quality.checks import Check, Level, _channel_medians, make_reference
from adapters.quality.diagnose import diagnose, no_frame
from adapters.quality.frame import prepare
from adapters.quality.thresholds import Limit, QualityConfig
from adapters.simulator.faults import Fault, PictureFault, picture
from adapters.simulator.labelled import jpeg
from adapters.simulator.scene import Period, SceneSpec, render_clean

CONFIG = QualityConfig()
DAY = SceneSpec(seed=42, period=Period.day, width=640, height=360)
NIGHT = SceneSpec(seed=42, period=Period.night, width=640, height=360)


def test_a_lost_signal_masks_every_other_check() -> None:
    blue = jpeg(picture(DAY, PictureFault(Fault.blue_screen, 1.0), frame_seed=1))
    diagnosis, _ = diagnose(blue, CONFIG.day)
    assert diagnosis.status is Level.faulty
    assert diagnosis.failing == [Check.signal_loss]
    others = [r for r in diagnosis.results if r.check is not Check.signal_loss]
    assert {r.masked_by for r in others} == {Check.signal_loss}
    assert diagnosis.result(Check.signal_loss).measures["noise_sigma"] == 0.0


def test_no_frame_at_all_is_a_lost_signal() -> None:
    diagnosis = no_frame()
    assert (diagnosis.status, diagnosis.failing) == (Level.faulty, [Check.signal_loss])


def test_a_picture_just_past_the_suspect_limit_is_suspect_and_far_past_it_faulty() -> None:
    clean = render_clean(DAY).astype(np.float32)
    levels = {}
    for gain in (1.0, 0.3, 0.2):  # day mean luma ~117 -> ~35 (suspect: < 40) -> ~23 (< 32)
        dimmed = np.asarray(np.clip(clean * gain, 0, 255), np.uint8)
        diagnosis, _ = diagnose(jpeg(dimmed), CONFIG.day)
        levels[gain] = (diagnosis.status.value, [c.value for c in diagnosis.failing])
    assert levels == {
        1.0: ("ok", []),
        0.3: ("suspect", ["too_dark"]),
        0.2: ("faulty", ["too_dark"]),
    }


def test_a_clean_night_street_is_too_dark_by_day_limits_and_fine_by_night_ones() -> None:
    frame = jpeg(picture(NIGHT, None, frame_seed=5))
    by_day, _ = diagnose(frame, CONFIG.day)
    by_night, _ = diagnose(frame, CONFIG.night)
    assert Check.too_dark in by_day.failing
    assert by_night.failing == []


@pytest.mark.parametrize(
    ("utc", "night"),
    [
        ("2026-12-01T11:59:00+00:00", True),  # 19:59 local
        ("2026-12-01T12:00:00+00:00", True),
        ("2026-12-01T21:59:00+00:00", True),  # 05:59 local
        ("2026-12-01T22:00:00+00:00", False),  # 06:00 local
        ("2026-12-01T10:59:00+00:00", False),  # 18:59 local
        ("2026-12-01T04:00:00+00:00", False),
    ],
)
def test_night_limits_follow_the_networks_local_time(utc: str, night: bool) -> None:
    """Shanghai (UTC+8): night from 19:00 to 06:00 local, 11:00 to 22:00 UTC."""
    when = dt.datetime.fromisoformat(utc)
    assert CONFIG.is_night(when) is night
    assert CONFIG.thresholds_at(when) is (CONFIG.night if night else CONFIG.day)


def test_a_static_street_with_live_noise_is_not_frozen_the_same_picture_is() -> None:
    first = jpeg(picture(DAY, None, frame_seed=1))
    second = jpeg(picture(DAY, None, frame_seed=2))  # same street, new sensor noise
    _, sig = diagnose(first, CONFIG.day, taken_at=100.0)
    live, _ = diagnose(second, CONFIG.day, previous=sig, taken_at=160.0)
    again, _ = diagnose(first, CONFIG.day, previous=sig, taken_at=160.0)
    same_moment, _ = diagnose(first, CONFIG.day, previous=sig, taken_at=100.0)
    assert live.result(Check.frozen).level is Level.ok
    assert again.result(Check.frozen).level is Level.faulty
    assert again.result(Check.frozen).measures == {"compared": 1.0, "identical": 1.0, "gap_s": 60.0}
    # the same picture fetched twice at one moment is no evidence: time did not go on
    assert same_moment.result(Check.frozen).level is Level.ok


def test_a_reference_of_another_shape_is_not_used() -> None:
    """A camera whose stream changed aspect (4:3 now, 16:9 in its reference) is judged without
    its reference until an admin accepts a new one, rather than against the wrong picture."""
    reference = make_reference(prepare(jpeg(picture(DAY, None, frame_seed=1))))
    square = SceneSpec(seed=42, period=Period.day, width=480, height=360)
    diagnosis, _ = diagnose(
        jpeg(picture(square, None, frame_seed=2)), CONFIG.day, reference=reference
    )
    assert diagnosis.result(Check.displacement).measures == {"reference": 0.0}
    assert diagnosis.failing == []


@pytest.mark.parametrize("count", [1, 2, 14_399, 14_400])
def test_channel_medians_from_histograms_equal_numpys(count: int) -> None:
    """The signal-loss check's median colour, counted from histograms, is np.median's: the
    mean of the two middle values when the count is even."""
    rng = np.random.default_rng(count)
    for pixels in (
        rng.integers(0, 256, (count, 3), dtype=np.uint8),
        rng.integers(100, 103, (count, 3), dtype=np.uint8),  # ties across the middle
    ):
        assert _channel_medians(pixels).tolist() == np.median(pixels, axis=0).tolist()


@pytest.mark.parametrize("size", [(1920, 1080), (2560, 1440), (1280, 720), (704, 576), (400, 300)])
def test_every_frame_size_is_judged_on_the_same_work_picture(size: tuple[int, int]) -> None:
    """Whatever the camera's resolution, the checks see a 640-wide picture of the same scene:
    a clean street is clean at each (the downscale halves by area, then interpolates)."""
    width, height = size
    spec = SceneSpec(seed=7, period=Period.day, width=width, height=height)
    frame = jpeg(picture(spec, None, frame_seed=1))
    p = prepare(frame)
    assert p.grey.shape == (round(height * 640 / width), 640)
    assert diagnose(frame, CONFIG.day)[0].failing == []


def test_what_is_not_a_frame_is_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match=r"^a frame of 32x32 is too small to diagnose$"):
        diagnose(np.zeros((32, 32, 3), np.uint8), CONFIG.day)
    with pytest.raises(ValueError, match=r"^a frame of 64x2000 is narrower than 1:4 or wider"):
        diagnose(np.zeros((2000, 64, 3), np.uint8), CONFIG.day)
    with pytest.raises(ValueError, match=r"^a frame is an 8-bit BGR picture \(height, width, 3\)$"):
        diagnose(np.zeros((360, 640), np.uint8), CONFIG.day)


def test_a_limit_with_suspect_on_the_strict_side_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        QualityConfig.model_validate({"night": {"noise": {"suspect": 20, "faulty": 15}}})
    (error,) = caught.value.errors()
    assert error["loc"] == ("night", "noise")
    assert error["msg"] == "Value error, suspect (20.0) must be at or below faulty (15.0)"
    with pytest.raises(ValidationError) as caught:
        QualityConfig.model_validate({"day": {"nosie": {"suspect": 1, "faulty": 2}}})
    assert caught.value.errors()[0]["type"] == "extra_forbidden"


def test_a_networks_own_limits_replace_the_shipped_ones() -> None:
    """A network whose cameras are old and noisy raises its noise limit; others keep theirs."""
    noisy = jpeg(picture(DAY, PictureFault(Fault.noise, 0.35, seed=1), frame_seed=3))
    lenient = QualityConfig.model_validate({"day": {"noise": {"suspect": 30, "faulty": 40}}})
    shipped, _ = diagnose(noisy, CONFIG.day)
    own, _ = diagnose(noisy, lenient.day)
    assert Check.noise in shipped.failing
    assert own.failing == []
    assert lenient.night == CONFIG.night
    assert Limit(suspect=30, faulty=40).level(35) == 1
