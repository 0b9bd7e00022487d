"""Availability over a camera's lifecycle (issue 12): time a camera spent planned, under
construction or decommissioned is neither online nor an outage, by its lifecycle at each moment
of the window (its lifecycle history), not by its lifecycle now; time under repair counts (its
carrier answers for it). Statuses and lifecycle changes are written with chosen `updated_at`
through the registry, as the gateway's writers write them, and read back through the API with
an injected clock: every figure exact."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from gateway.history import HISTORY
from gateway.keys import CATALOG, REGISTRY, SETTINGS
from gateway.lifecycle_log import LifecycleLog, Timeline, counted_spans, timeline
from gateway.models import CameraCreate, CameraSource, CameraStatus, Lifecycle
from gateway.records import new_camera
from gateway.reports import ACCOUNTABILITY
from tests.conftest import Headers, TokenFactory

Client = TestClient[web.Request, web.Application]
H = 3600.0
T0 = datetime(2026, 3, 1, tzinfo=UTC)


# -- the pure part --------------------------------------------------------------------------------


def _entry(was: str, to: str, hours: float) -> bytes:
    at = (T0 + timedelta(hours=hours)).isoformat().replace("+00:00", "Z")
    return orjson.dumps({"from": was, "to": to, "at": at, "actor": "admin#t1"})


def test_counted_spans_leave_out_planned_construction_and_decommissioned_time() -> None:
    t = T0.timestamp()
    newest_first = [
        _entry("decommissioned", "in-service", 10),
        _entry("under-repair", "decommissioned", 4),
        _entry("in-service", "under-repair", 3),
        _entry("under-construction", "in-service", 1),
        _entry("", "under-construction", 0),
    ]
    line = timeline(newest_first)
    assert line.before is None and line.states[0] == "under-construction"
    day = counted_spans(line, t, t + 24 * H)
    assert day == [(t + 1 * H, t + 4 * H), (t + 10 * H, t + 24 * H)]  # under repair counts
    assert counted_spans(line, t + 5 * H, t + 9 * H) == []  # decommissioned throughout
    assert counted_spans(line, t + 2 * H, t + 2 * H) == []
    # A window that begins in a counted state counts from its start.
    both = [(t + 2 * H, t + 4 * H), (t + 10 * H, t + 11 * H)]
    assert counted_spans(line, t + 2 * H, t + 11 * H) == both


def test_a_writer_whose_clock_lags_cannot_make_a_lifecycle_run_backwards() -> None:
    line = timeline([_entry("in-service", "decommissioned", 1), _entry("", "in-service", 2)])
    t = T0.timestamp()
    assert line.times == (t + 2 * H, t + 2 * H)  # the later change is taken at the earlier's time
    assert counted_spans(line, t, t + 3 * H) == [(t, t + 2 * H)]
    kept = Timeline("decommissioned", (), ())  # before anything held: the oldest entry's `from`
    assert counted_spans(kept, t, t + H) == []


async def test_a_record_whose_history_is_missing_counts_by_its_state_since_then(
    redis: Redis,
) -> None:
    """Written before lifecycle histories were kept (or the list lost): the record's own
    `lifecycle_since` is the one change known; before it, the camera counts."""
    log = LifecycleLog(redis, lambda cam_id: f"lc-test:lifecycle:{cam_id}")
    t = T0.timestamp()
    stamp = ("decommissioned", t + 5 * H)
    await log.read([("governance.old", stamp)])
    assert log.reads == 1
    assert log.spans("governance.old", stamp, None, t, t + 24 * H) == [(t, t + 5 * H)]
    key = "lc-test:lifecycle:governance.new"  # newest first, as upsert.lua pushes them
    await redis.lpush(key, _entry("", "under-construction", 0))
    await redis.lpush(key, _entry("under-construction", "in-service", 2))
    await redis.lpush(key, _entry("in-service", "decommissioned", 8))
    later = ("decommissioned", t + 8 * H)
    await log.read([("governance.new", later), ("governance.old", stamp)])  # old: held
    assert log.reads == 2
    assert log.spans("governance.new", later, t, t, t + 24 * H) == [(t + 2 * H, t + 8 * H)]


# -- through the API ------------------------------------------------------------------------------

# (hours after T0, what changes): a status, or a lifecycle state.
SCRIPT: list[tuple[float, CameraStatus | Lifecycle]] = [
    (1 / 6, CameraStatus.online),  # 00:10
    (2, CameraStatus.offline),
    (3, Lifecycle.under_repair),  # still offline: an outage its carrier answers for
    (4, Lifecycle.decommissioned),  # still "offline" in the record: not probed any more
    (10, Lifecycle.in_service),  # back in service, still offline
    (11, CameraStatus.online),
    (20, CameraStatus.offline),
]


async def _camera(
    client: Client,
    cam_id: str,
    address: str,
    script: list[tuple[float, CameraStatus | Lifecycle]],
    lifecycle: Lifecycle = Lifecycle.in_service,
) -> str:
    """Registered at T0 (status unknown), then the script, each change with its own time."""
    registry = client.app[REGISTRY]
    body = CameraCreate(
        id=cam_id,
        network="governance",
        name=cam_id,
        category="sharp-eyes",
        address=address,  # type: ignore[arg-type]
        lifecycle=lifecycle,
    )
    await registry.create(new_camera(body, client.app[SETTINGS], T0, CameraSource.registered))
    for hours, change in script:
        cam = await registry.get(cam_id)
        assert cam is not None
        at = T0 + timedelta(hours=hours)
        update: dict[str, Any] = {"updated_at": at}
        if isinstance(change, CameraStatus):
            update |= {"status": change, "last_error": None if change == "online" else "down"}
        else:
            update |= {"lifecycle": change, "lifecycle_since": at}
        await registry.replace(cam.model_copy(update=update), cam.rev)
    return cam_id


async def caught_up(app: web.Application) -> None:
    """Until the catalog holds the registry's newest version: under load it may serve the one
    before while a rebuild runs (up to 5 s: gateway/catalog.py), and these writes went around
    the API (which would have told it). A wait for the rebuild, not for a time."""
    catalog, registry = app[CATALOG], app[REGISTRY]
    version = await registry.version()
    catalog.note_version(version)
    for _ in range(1000):
        if (await catalog.current()).version >= version:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the catalog never reached version {version}")


async def _get(client: Client, path: str, headers: Headers, **params: Any) -> Any:
    await caught_up(client.app)
    resp = await client.get(path, params=params, headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def _rows(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["key"]: r for r in body["rows"]}


async def _by_camera(client: Client, viewer: Headers, end: str) -> dict[str, dict[str, Any]]:
    query = {"period": "day", "end": end, "by": "camera"}
    return _rows(await _get(client, "/api/v1/availability", viewer, **query))


async def test_time_out_of_service_is_neither_online_nor_an_outage(
    client: Client, token: TokenFactory
) -> None:
    cam = await _camera(client, "governance.lc-1", "127.1.242.1", SCRIPT)
    client.app[HISTORY].clock = lambda: T0 + timedelta(days=3)
    viewer = await token("viewer", ["governance"])
    day = {"period": "day", "end": _iso(T0 + timedelta(days=1)), "by": "camera"}
    row = _rows(await _get(client, "/api/v1/availability", viewer, **day))[cam]
    # Counted: 00:00-04:00 (in service, then under repair) and 10:00-24:00 (in service again).
    assert row["unknown_s"] == 600  # registered, not yet probed
    assert row["online_s"] == (2 * H - 600) + 9 * H == 39_000  # 00:10-02:00, 11:00-20:00
    assert row["outage_total_s"] == 2 * H + 1 * H + 4 * H == 25_200  # 02-04, 10-11, 20-24
    assert row["observed_s"] == 64_200  # not the 6 h decommissioned
    assert row["share_online"] == 39_000 / 64_200
    # The outage from 02:00 is cut by the decommissioned time: one before it, one after.
    assert (row["outages"], row["outage_longest_s"]) == (3, 4 * H)


async def test_a_camera_decommissioned_now_counts_for_the_time_it_was_in_service(
    client: Client, token: TokenFactory
) -> None:
    """By its lifecycle at each moment, not now: decommissioned at 12:00 after a day online
    that ended in an outage at 08:00; built (under construction until 06:00) and online since;
    planned all along (never counted)."""
    gone = await _camera(
        client,
        "governance.lc-gone",
        "127.1.242.2",
        [(0, CameraStatus.online), (8, CameraStatus.offline), (12, Lifecycle.decommissioned)],
    )
    built = await _camera(
        client,
        "governance.lc-built",
        "127.1.242.3",
        [(6, Lifecycle.in_service), (6, CameraStatus.online)],
        lifecycle=Lifecycle.under_construction,
    )
    planned = await _camera(
        client, "governance.lc-planned", "127.1.242.4", [], lifecycle=Lifecycle.planned
    )
    client.app[HISTORY].clock = lambda: T0 + timedelta(days=1)
    viewer = await token("viewer", ["governance"])
    end = _iso(T0 + timedelta(days=1))
    rows = await _by_camera(client, viewer, end)
    assert set(rows) == {gone, built}  # the planned camera is in no figure
    assert (rows[gone]["online_s"], rows[gone]["outage_total_s"]) == (8 * H, 4 * H)
    assert (rows[gone]["outages"], rows[gone]["observed_s"]) == (1, 12 * H)
    assert (rows[built]["online_s"], rows[built]["observed_s"]) == (18 * H, 18 * H)
    assert rows[built]["unknown_s"] == 0  # under construction: not even unknown time
    total = (await _get(client, "/api/v1/availability", viewer, period="day", end=end))["total"]
    assert (total["cameras"], total["observed_s"], total["online_s"]) == (2, 30 * H, 26 * H)
    # Nothing to report for a camera that is decommissioned now, nor one still planned.
    report = await _get(client, "/api/v1/reports/outages", viewer, min_minutes="1")
    assert report["items"] == [] and planned

    # The next day it was decommissioned throughout: it is not counted at all.
    client.app[HISTORY].clock = lambda: T0 + timedelta(days=2)
    end = _iso(T0 + timedelta(days=2))
    rows = await _by_camera(client, viewer, end)
    assert set(rows) == {built} and rows[built]["share_online"] == 1.0


async def test_a_camera_back_in_service_while_down_is_down_from_then(
    client: Client, token: TokenFactory
) -> None:
    cam = await _camera(client, "governance.lc-2", "127.1.242.5", SCRIPT[:5])
    client.app[HISTORY].clock = lambda: T0 + timedelta(hours=10, minutes=30)
    viewer = await token("viewer", ["governance"])
    (row,) = (await _get(client, "/api/v1/reports/outages", viewer, min_minutes="30"))["items"]
    assert (row["id"], row["status"]) == (cam, "offline")
    # Offline since 02:00 by its status, but decommissioned 04:00-10:00: down since 10:00.
    assert (row["since"], row["since_exact"], row["down_s"]) == ("2026-03-01T10:00:00Z", True, 1800)
    assert row["outages_recent"] == 2  # 02:00-04:00, and the one going on


async def test_lifecycle_histories_are_read_once_per_change(
    client: Client, token: TokenFactory
) -> None:
    cam = await _camera(client, "governance.lc-3", "127.1.242.6", SCRIPT[:5])
    steady = await _camera(client, "governance.lc-4", "127.1.242.7", [(1, CameraStatus.online)])
    client.app[HISTORY].clock = lambda: T0 + timedelta(days=1)
    viewer = await token("viewer", ["governance"])
    service = client.app[ACCOUNTABILITY]
    query = {"period": "day", "end": _iso(T0 + timedelta(days=1)), "by": "camera"}
    first = _rows(await _get(client, "/api/v1/availability", viewer, **query))
    assert service.lifecycle.reads == 1  # the camera whose lifecycle changed; not the steady one
    assert first[cam]["observed_s"] == 4 * H + 14 * H - 600 and steady in first
    await _get(client, "/api/v1/availability", viewer, **query)
    assert service.lifecycle.reads == 1
    # A change of lifecycle is read with the record that says so.
    registry = client.app[REGISTRY]
    rec = await registry.get(cam)
    assert rec is not None
    at = T0 + timedelta(hours=12)
    update = {"lifecycle": Lifecycle.decommissioned, "lifecycle_since": at, "updated_at": at}
    await registry.replace(rec.model_copy(update=update), rec.rev)
    again = _rows(await _get(client, "/api/v1/availability", viewer, **query))
    assert service.lifecycle.reads == 2
    assert again[cam]["observed_s"] == 4 * H + 2 * H - 600  # 00:10-04:00, 10:00-12:00
