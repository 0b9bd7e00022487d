"""What a diagnosis becomes on the record: suspect before faulty, when the verdict began, when
the record is written at all, and that discovery keeps the verdict."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from adapters.quality.checks import Check, Level
from adapters.quality.diagnose import CheckResult, Diagnosis
from gateway.models import Camera, ImageQuality, ImageStatus
from gateway.quality import verdict
from gateway.records import merge_discovered

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def _diagnosis(level: Level, check: Check = Check.blur) -> Diagnosis:
    results = [
        CheckResult(
            check=c,
            level=level if c is check else Level.ok,
            measures={"sharpness": 0.2, "reference": 1.0} if c is check else {"reference": 1.0},
        )
        for c in Check
    ]
    failing = [check] if level is not Level.ok else []
    return Diagnosis(status=level, failing=failing, results=results)


def test_faulty_only_after_the_confirming_round_and_ok_at_once() -> None:
    first = verdict(_diagnosis(Level.faulty), None, confirm=2, night=False, now=T0)
    second = verdict(_diagnosis(Level.faulty), first, 2, False, T0 + timedelta(hours=1))
    third = verdict(_diagnosis(Level.faulty), second, 2, False, T0 + timedelta(hours=2))
    repaired = verdict(_diagnosis(Level.ok), third, 2, False, T0 + timedelta(hours=3))
    assert [(v.status, v.failing_rounds) for v in (first, second, third, repaired)] == [
        (ImageStatus.suspect, 1),
        (ImageStatus.faulty, 2),
        (ImageStatus.faulty, 2),  # (counted up to confirm: a steady fault is not rewritten)
        (ImageStatus.ok, 0),
    ]
    # `since`: when the current verdict began
    assert [v.since for v in (first, second, third, repaired)] == [
        T0,
        T0 + timedelta(hours=1),
        T0 + timedelta(hours=1),
        T0 + timedelta(hours=3),
    ]
    assert second.failing[0].check == "blur"
    assert second.failing[0].measures == {"sharpness": 0.2, "reference": 1.0}
    assert second.reference is True


def test_one_round_is_enough_where_the_network_says_so() -> None:
    only = verdict(_diagnosis(Level.faulty, Check.signal_loss), None, 1, True, T0)
    assert (only.status, only.night, [f.check for f in only.failing]) == (
        ImageStatus.faulty,
        True,
        ["signal_loss"],
    )


def test_discovery_keeps_the_verdict() -> None:
    image = ImageQuality(status=ImageStatus.faulty, since=T0, failing_rounds=2)
    common = {
        "id": "governance.abc",
        "network": "governance",
        "name": "abc",
        "category": "sharp-eyes",
        "address": "127.1.0.1",
        "created_at": T0,
        "updated_at": T0,
    }
    existing = Camera.model_validate(common | {"source": "registered", "image": image})
    found = Camera.model_validate(common | {"source": "discovered", "vendor": "Hikvision"})
    merged = merge_discovered(existing, found, T0 + timedelta(minutes=5))
    assert (merged.vendor, merged.image) == ("Hikvision", image)
