"""The snapshot proxy's pure parts: JPEG probing and rendering (adapters.imaging), the byte-bounded
LRU and the circuit breakers (gateway.snapshots). No network, no Redis."""

from __future__ import annotations

import datetime as dt
import types
from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from adapters.imaging import (
    BadImage,
    check_decodable,
    jpeg_size,
    render,
    target_width,
    watermark_lines,
)
from adapters.simulator.snapshot import camera_hash, read_marker, render_snapshot
from gateway import snapshots
from gateway.snapshots import Breakers, ByteLru, Frame


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    return render_snapshot(
        "cam-7", "governance", "Gate 7", dt.datetime(2024, 5, 1, 8, tzinfo=dt.UTC)
    )


def decode(data: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return img


# --------------------------------------------------------------------------- imaging


def test_jpeg_size_reads_the_frame_header(jpeg: bytes) -> None:
    assert jpeg_size(jpeg) == (1280, 720)
    ok, buf = cv2.imencode(
        ".jpg", np.zeros((50, 70, 3), np.uint8), [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]
    )
    assert ok and jpeg_size(bytes(buf.tobytes())) == (70, 50)  # SOF2
    assert jpeg_size(jpeg[:2] + b"\xff" + jpeg[2:]) == (1280, 720)  # a fill byte


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"GIF89a....",
        b"\x89PNG\r\n\x1a\n",
        b"\xff\xd8",
        b"\xff\xd8garbage" * 10,
        b"\xff\xd8\xff\xda\x00\x08" + b"\0" * 20,
    ],  # start of scan before any frame header
)
def test_jpeg_size_refuses_what_is_not_a_jpeg(data: bytes) -> None:
    with pytest.raises(BadImage):
        jpeg_size(data)


def test_check_decodable(jpeg: bytes) -> None:
    assert check_decodable(jpeg) == (1280, 720)
    with pytest.raises(BadImage, match="does not decode"):
        check_decodable(jpeg[: len(jpeg) // 2])  # header intact, scan cut short
    with pytest.raises(BadImage):
        check_decodable(b"\xff\xd8\xff\xe0junk")


@pytest.mark.parametrize(
    ("frame", "asked", "max_width", "expected"),
    [
        (1280, None, 1920, 1280),  # as it is
        (1280, 320, 1920, 320),  # downscaled
        (1280, 4000, 1920, 1280),  # never upscaled
        (1920, None, 1280, 1280),  # the policy's cap, asked or not
        (1920, 1600, 1280, 1280),
        (1280, 16, 1920, 16),
        (8, None, 1920, 8),  # a tiny frame stays as it is
    ],
)
def test_target_width(frame: int, asked: int | None, max_width: int, expected: int) -> None:
    assert target_width(frame, asked, max_width) == expected


def test_render_passes_the_original_through_when_nothing_changes(jpeg: bytes) -> None:
    assert render(jpeg, 1280, 1280, None) is jpeg


@pytest.mark.parametrize("width", [1000, 640, 320, 100])
def test_render_downscales_keeping_the_aspect_and_the_picture(jpeg: bytes, width: int) -> None:
    img = decode(render(jpeg, 1280, width, None))
    assert img.shape[:2] == (round(720 * width / 1280), width)
    if width >= 320:
        marker = read_marker(img)
        assert marker is not None and marker.camera_hash == camera_hash("cam-7")


def test_render_burns_the_watermark_into_the_bottom_strip_only(jpeg: bytes) -> None:
    lines = watermark_lines("alice#ab12", "cam-7", 1714550400.0)
    marked = decode(render(jpeg, 1280, 1280, lines)).astype(int)
    original = decode(jpeg).astype(int)
    assert np.abs(marked[-50:] - original[-50:]).mean() > 15
    assert np.abs(marked[:400] - original[:400]).mean() < 2
    other = decode(render(jpeg, 1280, 1280, watermark_lines("bob#cd34", "cam-7", 1714550400.0)))
    assert np.abs(other.astype(int)[-50:] - marked[-50:]).mean() > 0.5  # the name shows
    small = decode(render(jpeg, 1280, 320, lines))
    assert small.shape[:2] == (180, 320)


def test_render_quality_changes_the_size(jpeg: bytes) -> None:
    assert len(render(jpeg, 1280, 640, None, quality=40)) < len(render(jpeg, 1280, 640, None, 95))


def test_render_refuses_an_undecodable_image(jpeg: bytes) -> None:
    with pytest.raises(BadImage):
        render(jpeg[: len(jpeg) // 2], 1280, 640, None)


def test_watermark_lines_name_operator_camera_and_time() -> None:
    lines = watermark_lines("alice#ab12", "cam-7", 1714550400.5)
    assert lines == ["alice#ab12  cam-7", "2024-05-01 08:00:00 UTC"]
    lines = watermark_lines("张三#ab12", "cam-7", 0)
    assert lines[0] == "??#ab12  cam-7"  # the fonts draw ASCII; the token id still identifies
    assert len(watermark_lines("x" * 500, "cam", 0)[0]) == 80


# --------------------------------------------------------------------------- ByteLru


def test_byte_lru_is_bounded_by_bytes_not_entries() -> None:
    lru = ByteLru(100)
    for i in range(10):
        lru.put(i, f"v{i}", 30)
        assert lru.size <= 100
    assert len(lru) == 3 and lru.size == 90
    assert [lru.get(i) for i in (7, 8, 9)] == ["v7", "v8", "v9"]
    assert lru.get(0) is None


def test_byte_lru_evicts_the_least_recently_used() -> None:
    lru = ByteLru(100)
    lru.put("a", 1, 40)
    lru.put("b", 2, 40)
    assert lru.get("a") == 1  # now "b" is the oldest
    lru.put("c", 3, 40)
    assert (lru.get("a"), lru.get("b"), lru.get("c")) == (1, None, 3)
    assert lru.size == 80


def test_byte_lru_replacing_and_popping_keep_the_count() -> None:
    lru = ByteLru(100)
    lru.put("a", 1, 60)
    lru.put("a", 2, 10)
    assert (lru.get("a"), lru.size, len(lru)) == (2, 10, 1)
    lru.pop("a")
    lru.pop("missing")
    assert (lru.size, len(lru)) == (0, 0)


def test_byte_lru_never_holds_an_item_larger_than_itself() -> None:
    lru = ByteLru(100)
    lru.put("small", 1, 50)
    lru.put("huge", 2, 101)
    assert lru.get("huge") is None and lru.get("small") == 1 and lru.size == 50
    lru.put("exact", 3, 100)
    assert lru.get("exact") == 3 and lru.get("small") is None and lru.size == 100


# --------------------------------------------------------------------------- Breakers


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """The breakers' monotonic clock, moved by hand (only gateway.snapshots sees it)."""
    now = [1000.0]
    fake = types.SimpleNamespace(monotonic=lambda: now[0], time=lambda: now[0])
    monkeypatch.setattr(snapshots, "time", fake)
    yield now


def test_breaker_opens_after_the_threshold(clock: list[float]) -> None:
    b = Breakers(threshold=3, backoff_s=5.0, max_backoff_s=60.0)
    assert b.retry_after("cam") == 0
    assert b.failure("cam") is False
    assert b.failure("cam") is False
    assert b.retry_after("cam") == 0  # still closed
    assert b.failure("cam") is True  # the third opens it
    assert b.retry_after("cam") == pytest.approx(5.0)
    assert b.retry_after("other") == 0  # per camera
    clock[0] += 4.0
    assert b.retry_after("cam") == pytest.approx(1.0)
    clock[0] += 1.5
    assert b.retry_after("cam") == 0  # half open: one attempt may go


def test_breaker_backoff_grows_to_its_maximum(clock: list[float]) -> None:
    b = Breakers(threshold=2, backoff_s=5.0, max_backoff_s=30.0)
    b.failure("cam")
    opened = []
    for _ in range(5):
        assert b.failure("cam") is True  # each failed trial re-opens it
        opened.append(b.retry_after("cam"))
        clock[0] += 100
    assert opened == [pytest.approx(x) for x in (5, 10, 20, 30, 30)]


def test_breaker_success_closes_and_says_whether_it_had_opened(clock: list[float]) -> None:
    b = Breakers(threshold=2, backoff_s=5.0, max_backoff_s=30.0)
    assert b.success("cam") is False  # nothing to recover from
    b.failure("cam")
    assert b.success("cam") is False  # one failure never opened it, and is forgotten
    assert b.failure("cam") is False
    assert b.failure("cam") is True
    assert b.retry_after("cam") > 0
    assert b.success("cam") is True  # recovered: the status may go back to online
    assert b.retry_after("cam") == 0
    assert b.failure("cam") is False  # counting starts over, with the first backoff
    assert b.failure("cam") is True and b.retry_after("cam") == pytest.approx(5.0)


# --------------------------------------------------------------------------- Frame


def test_frame_survives_the_trip_through_redis(jpeg: bytes) -> None:
    frame = Frame(jpeg, "rtsp-grab", 1714550400.123, 1280, 720)
    back = Frame.unpack(frame.pack())
    assert (back.jpeg, back.source, back.taken_at, back.width, back.height) == (
        jpeg,
        "rtsp-grab",
        1714550400.123,
        1280,
        720,
    )
