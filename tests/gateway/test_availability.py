"""Availability (issue 12): the pure figures of a window, then a camera that flaps through a
scripted sequence of status changes, written with chosen `updated_at` through the registry (as
the gateway's writers do) against the suite's real redis-server, and read back through the API
with an injected clock: every figure exact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise as pairs
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from gateway.availability import (
    ABSENT,
    DEGRADED,
    OFFLINE,
    ONLINE,
    UNKNOWN,
    Outage,
    camera_window,
    down_since,
    rollup,
    window,
)
from gateway.history import HISTORY, CameraLog, StatusHistory, stream_key
from gateway.keys import REGISTRY, SETTINGS
from gateway.models import CameraCreate, CameraSource, CameraStatus
from gateway.records import new_camera
from gateway.settings import Settings
from tests.conftest import Headers, TokenFactory

Client = TestClient[web.Request, web.Application]
H = 3600.0

# -- the pure functions ---------------------------------------------------------------------------


def test_a_camera_that_never_changes_is_in_one_status_the_whole_window() -> None:
    w = window("online", [], 0.0, 86_400.0)
    assert (w.online_s, w.observed_s, w.share_online, w.outages) == (86_400.0, 86_400.0, 1.0, 0)
    down = window("offline", [], 0.0, 100.0)
    assert down.spans == [Outage(0.0, 100.0, began_before=True, open=True)]
    assert (down.share_online, down.outage_longest_s) == (0.0, 100.0)


def test_unknown_time_and_time_before_creation_are_not_observed() -> None:
    w = window(None, [(10.0, "unknown"), (40.0, "online"), (70.0, "degraded")], 0.0, 100.0)
    assert (w.unknown_s, w.online_s, w.degraded_s, w.observed_s) == (30.0, 30.0, 30.0, 60.0)
    assert w.share_online == 0.5  # degraded is observed, and not online
    assert window("unknown", [], 0.0, 10.0).share_online is None  # nothing observed


def test_outages_are_offline_spans_clipped_to_the_window() -> None:
    changes = [(10.0, "online"), (20.0, "offline"), (25.0, "degraded"), (30.0, "offline")]
    w = window("offline", [*changes, (50.0, "online"), (90.0, "offline")], 0.0, 100.0)
    assert w.outages == 4
    assert w.spans == [
        Outage(0.0, 10.0, began_before=True, open=False),
        Outage(20.0, 25.0, began_before=False, open=False),  # degraded ends it
        Outage(30.0, 50.0, began_before=False, open=False),
        Outage(90.0, 100.0, began_before=False, open=True),
    ]
    assert (w.offline_s, w.outage_longest_s) == (45.0, 20.0)
    assert (w.online_s, w.degraded_s) == (50.0, 5.0)


def test_an_empty_or_inverted_window_has_nothing() -> None:
    w = camera_window(OFFLINE, [], [], 10.0, 10.0, spans=True)
    assert (w.observed_s, w.outages, w.spans) == (0.0, 0, [])


def test_index_bounds_select_the_changes_without_copying() -> None:
    times, statuses = [5.0, 15.0, 25.0, 35.0], [ONLINE, OFFLINE, ONLINE, OFFLINE]
    w = camera_window(ONLINE, times, statuses, 10.0, 30.0, lo=1, hi=3)
    assert (w.online_s, w.offline_s, w.outages, w.outage_longest_s) == (10.0, 10.0, 1, 10.0)
    assert w.spans == []  # not asked for


@settings(max_examples=300, deadline=None, database=None)
@given(
    st.sampled_from([ABSENT, ONLINE, DEGRADED, OFFLINE, UNKNOWN]),
    st.lists(
        st.tuples(st.integers(0, 1000), st.sampled_from([ONLINE, DEGRADED, OFFLINE, UNKNOWN])),
        max_size=30,
    ),
)
def test_the_figures_add_up_for_any_sequence(initial: int, raw: list[tuple[int, int]]) -> None:
    """Whatever the changes: the statuses' seconds fill the window from the camera's creation,
    the outages are as many as their spans, and their lengths add up to the offline time."""
    changes = sorted(raw, key=lambda c: c[0])
    times, statuses = [float(t) for t, _ in changes], [s for _, s in changes]
    w = camera_window(initial, times, statuses, 0.0, 1000.0, spans=True)
    existed_from = 0.0 if initial != ABSENT else (times[0] if times else 1000.0)
    assert sum(w.seconds) == pytest.approx(1000.0 - existed_from)
    assert w.outages == len(w.spans)
    assert sum(o.length for o in w.spans) == pytest.approx(w.offline_s)
    assert w.outage_longest_s == max((o.length for o in w.spans), default=0.0)
    assert all(a.end <= b.start for a, b in pairs(w.spans))  # apart, in order


def test_a_rollup_is_time_weighted() -> None:
    full = window("online", [], 0.0, 100.0)  # online the whole window
    half = window(None, [(50.0, "offline")], 0.0, 100.0)  # created half-way, then offline
    groups = rollup([("a", full), ("a", half), ("b", half)])
    a = groups["a"]
    assert (a.cameras, a.observed_s, a.seconds[ONLINE], a.outages) == (2, 150.0, 100.0, 1)
    assert a.share_online == pytest.approx(100 / 150)  # not the mean of 1.0 and 0.0
    assert (groups["b"].share_online, groups["b"].outage_longest_s) == (0.0, 50.0)


def test_down_since_finds_the_start_of_the_current_run() -> None:
    times = [1.0, 2.0, 3.0, 4.0]
    assert down_since(times, [OFFLINE, ONLINE, DEGRADED, OFFLINE], ABSENT) == (2, 3.0)
    assert down_since(times, [OFFLINE, ONLINE, ONLINE, ONLINE], ABSENT) == (4, None)  # up
    assert down_since(times, [OFFLINE] * 4, ONLINE) == (0, 1.0)
    assert down_since(times, [OFFLINE] * 4, DEGRADED) == (0, None)  # before the history held
    assert down_since([], [], OFFLINE) == (0, None)


def test_a_camera_log_keeps_time_from_running_backwards() -> None:
    log = CameraLog()
    log.append(stream_key("1000-0"), 100.0, ONLINE, ABSENT, 0)
    log.append(stream_key("2000-0"), 90.0, OFFLINE, ONLINE, 0)  # a writer whose clock lags
    assert list(log.times) == [100.0, 100.0]
    assert log.status_at(99.0, UNKNOWN) == ABSENT  # before its creation
    assert log.status_at(100.0, UNKNOWN) == OFFLINE
    log.drop_before(stream_key("1500-0"))
    assert (len(log), log.status_at(50.0, UNKNOWN)) == (1, ONLINE)  # what the dropped one left


# -- a flapping camera, written as the gateway writes, read through the API ----------------------

T0 = datetime(2026, 3, 1, tzinfo=UTC)
SCRIPT: list[tuple[timedelta, CameraStatus, str | None]] = [
    (timedelta(minutes=10), CameraStatus.online, None),
    (timedelta(hours=2), CameraStatus.offline, "health: no answer within 5 s"),
    (timedelta(hours=2, minutes=30), CameraStatus.online, None),
    (timedelta(hours=5), CameraStatus.degraded, "auth: the stored credentials were refused"),
    (timedelta(hours=6), CameraStatus.offline, "health: no answer within 5 s"),
    (timedelta(hours=8), CameraStatus.online, None),
    (timedelta(hours=20), CameraStatus.offline, "health: connection refused"),
]


async def _flapping_camera(client: Client, cam_id: str = "governance.flap-1") -> str:
    """Registered at T0 (status unknown), then the script: each change written with its own
    `updated_at` by `Registry.replace`, as health rounds and discovery write them."""
    registry = client.app[REGISTRY]
    body = CameraCreate(
        id=cam_id,
        network="governance",
        name="Flapping gate",
        category="sharp-eyes",
        address="127.1.240.1",  # type: ignore[arg-type]
    )
    await registry.create(new_camera(body, client.app[SETTINGS], T0, CameraSource.registered))
    for offset, status, error in SCRIPT:
        cam = await registry.get(cam_id)
        assert cam is not None
        update = {"status": status, "last_error": error, "updated_at": T0 + offset}
        await registry.replace(cam.model_copy(update=update), cam.rev)
    return cam_id


def _clock(client: Client, now: datetime) -> None:
    client.app[HISTORY].clock = lambda: now


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


async def _get(client: Client, path: str, headers: Headers, **params: Any) -> Any:
    resp = await client.get(path, params=params, headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


def _row(body: dict[str, Any], key: str) -> dict[str, Any]:
    found: dict[str, Any] = next(r for r in body["rows"] if r["key"] == key)
    return found


async def test_a_flapping_camera_s_day_is_counted_exactly(
    client: Client, token: TokenFactory
) -> None:
    cam_id = await _flapping_camera(client)
    _clock(client, T0 + timedelta(days=3))
    viewer = await token("viewer", ["governance"])
    day = {"period": "day", "end": _iso(T0 + timedelta(days=1)), "by": "camera"}
    body = await _get(client, "/api/v1/availability", viewer, **day)
    assert (body["start"], body["observed_until"]) == ("2026-03-01T00:00:00Z", day["end"])
    row = _row(body, cam_id)
    online = (2 * H - 600) + 2.5 * H + 12 * H  # 0:10-2:00, 2:30-5:00, 8:00-20:00
    offline = 0.5 * H + 2 * H + 4 * H  # 2:00-2:30, 6:00-8:00, 20:00-24:00
    assert row["online_s"] == online == 58_800
    assert row["degraded_s"] == H  # 5:00-6:00
    assert row["outage_total_s"] == offline == 23_400
    assert row["unknown_s"] == 600  # registered, not yet probed: not observed
    assert row["observed_s"] == online + H + offline == 85_800
    assert row["share_online"] == online / 85_800
    assert (row["outages"], row["outage_longest_s"]) == (3, 4 * H)
    assert (row["network"], row["department"], row["carrier"]) == (
        "governance",
        "Political-Legal Committee",
        "China Telecom",
    )

    # A window that begins before the camera existed counts it from its registration, and one
    # that ends after now counts up to now (the future is not observed).
    early = {"period": "day", "end": _iso(T0 + timedelta(hours=3)), "by": "camera"}
    row = _row(await _get(client, "/api/v1/availability", viewer, **early), cam_id)
    assert (row["unknown_s"], row["online_s"], row["outage_total_s"]) == (600, 6600 + 1800, 1800)
    _clock(client, T0 + timedelta(hours=22))
    later = {"period": "week", "end": _iso(T0 + timedelta(days=5)), "by": "camera"}
    body = await _get(client, "/api/v1/availability", viewer, **later)
    assert body["observed_until"] == "2026-03-01T22:00:00Z"
    row = _row(body, cam_id)
    assert (row["outage_total_s"], row["outages"]) == (0.5 * H + 2 * H + 2 * H, 3)
    assert row["outage_longest_s"] == 2 * H  # the one going on: 20:00 to now


async def test_the_flapping_camera_rolls_up_with_the_others(
    client: Client, token: TokenFactory
) -> None:
    cam_id = await _flapping_camera(client)
    admin = await token("admin")
    steady = {
        "id": "governance.steady-1",
        "network": "governance",
        "name": "Steady",
        "category": "road-blindspot",  # Town Safety Office, China Unicom
        "address": "127.1.240.2",
    }
    registry = client.app[REGISTRY]
    created = new_camera(CameraCreate(**steady), client.app[SETTINGS], T0, CameraSource.registered)
    await registry.create(created.model_copy(update={"status": CameraStatus.online}))
    _clock(client, T0 + timedelta(days=1))
    end = _iso(T0 + timedelta(days=1))
    by = await _get(client, "/api/v1/availability", admin, period="day", end=end, by="carrier")
    telecom, unicom = _row(by, "China Telecom"), _row(by, "China Unicom")
    assert (telecom["cameras"], telecom["online_s"], telecom["outages"]) == (1, 58_800, 3)
    assert (unicom["cameras"], unicom["share_online"], unicom["outages"]) == (1, 1.0, 0)
    assert [r["key"] for r in by["rows"]] == ["China Telecom", "China Unicom"]  # worst first
    total = by["total"]
    assert total["cameras"] == 2
    assert total["observed_s"] == 85_800 + 86_400
    assert total["share_online"] == (58_800 + 86_400) / (85_800 + 86_400)
    network = await _get(client, "/api/v1/availability", admin, period="day", end=end)
    assert [r["key"] for r in network["rows"]] == ["governance"]
    assert network["rows"][0]["observed_s"] == total["observed_s"]
    assert cam_id in {
        r["key"]
        for r in (
            await _get(client, "/api/v1/availability", admin, period="day", end=end, by="camera")
        )["rows"]
    }


async def test_the_flapping_camera_s_history_is_every_change_newest_first(
    client: Client, token: TokenFactory
) -> None:
    cam_id = await _flapping_camera(client)
    viewer = await token("viewer", ["governance"])
    path = f"/api/v1/cameras/{cam_id}/history"
    body = await _get(client, path, viewer)
    assert body["status"] == "offline"
    changes = [(c["at"], c["previous"], c["status"], c["error"]) for c in body["items"]]
    expected = [(_iso(T0), None, "unknown", "")]
    previous = "unknown"
    for offset, status, error in SCRIPT:
        expected.append((_iso(T0 + offset), previous, status.value, error or ""))
        previous = status.value
    assert changes == expected[::-1]
    assert body["next_cursor"] is None and body["retained_since"] == _iso(T0)

    pages: list[Any] = []
    cursor: str | None = None
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        page = await _get(client, path, viewer, **params)
        pages.append(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [3, 3, 2]
    assert [c for p in pages for c in p] == body["items"]


async def test_the_flapping_camera_is_in_the_outage_report_from_when_it_went_down(
    client: Client, token: TokenFactory
) -> None:
    cam_id = await _flapping_camera(client)
    viewer = await token("viewer", ["governance"])
    _clock(client, T0 + timedelta(hours=22))
    report = await _get(client, "/api/v1/reports/outages", viewer, min_minutes="120")
    assert report["generated_at"] == "2026-03-01T22:00:00Z"
    (row,) = report["items"]
    assert (row["id"], row["status"], row["since"], row["since_exact"]) == (
        cam_id,
        "offline",
        "2026-03-01T20:00:00Z",
        True,
    )
    assert (row["down_s"], row["outages_recent"]) == (2 * H, 3)
    assert row["last_error"] == "health: connection refused"
    assert len(row["history"]) == 8 and row["history"][0]["at"] == "2026-03-01T20:00:00Z"
    later = await _get(client, "/api/v1/reports/outages", viewer, min_minutes="121")
    assert later["items"] == []
    # Degraded then offline is one run of being down: it counts from the first.
    _clock(client, T0 + timedelta(hours=7))
    (row,) = (await _get(client, "/api/v1/reports/outages", viewer, min_minutes="60"))["items"]
    assert (row["since"], row["down_s"], row["status"]) == (
        "2026-03-01T05:00:00Z",
        2 * H,
        "offline",
    )
    one_day = await _get(client, "/api/v1/reports/outages", viewer, history_days="1")
    assert len(one_day["items"][0]["history"]) == 6  # the changes up to 06:00, within a day


# -- the in-memory history follows its streams ----------------------------------------------------


async def _add(redis: Redis, key: str, ms: int, cam: str, was: str, to: str) -> None:
    at = datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")
    fields = {"id": cam, "from": was, "to": to, "at": at, "error": ""}
    await redis.xadd(key, fields, id=f"{ms}-0")  # type: ignore[arg-type]


async def test_the_history_reads_only_what_was_added_and_forgets_what_was_trimmed(
    redis: Redis, settings: Settings
) -> None:
    history = StatusHistory(redis, settings, lambda n: f"h:{n}")
    key, hour = "h:governance", 3_600_000
    await _add(redis, key, 1 * hour, "governance.a", "", "online")
    await _add(redis, key, 2 * hour, "governance.b", "", "online")
    await history.refresh()
    generation = history.generation
    await history.refresh()  # nothing new: nothing read
    assert history.generation == generation
    await _add(redis, key, 3 * hour, "governance.a", "online", "offline")
    await history.refresh()
    a = history.camera("governance", "governance.a")
    assert a is not None and list(a.to) == [ONLINE, OFFLINE] and list(a.was) == [ABSENT, ONLINE]
    assert history.retained_since("governance") == 3600.0

    # The writer trims by age: once an hour's worth is gone, it is gone here too.
    await _add(redis, key, 5 * hour, "governance.b", "online", "degraded")
    await redis.xtrim(key, minid=f"{3 * hour}-0", approximate=False)
    await history.refresh()
    a = history.camera("governance", "governance.a")
    assert a is not None and list(a.to) == [OFFLINE] and a.status_at(0.0, UNKNOWN) == ONLINE
    b = history.camera("governance", "governance.b")
    assert b is not None and list(b.to) == [DEGRADED]
    assert history.retained_since("governance") == 3 * 3600.0

    # A stream deleted and written anew (a registry restored from elsewhere) is read afresh.
    await redis.delete(key)
    await _add(redis, key, 1 * hour, "governance.c", "", "offline")
    await history.refresh()
    assert set(history.networks["governance"].cameras) == {"governance.c"}
