"""Verdict history beside the status history (issue 15): each change of a camera's image status
is kept with its time, and availability and the outage report count "online but faulty" time
apart from online time and from outages, per camera and in every roll-up, with the history's
clock injected so that the figures are exact."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from openpyxl import load_workbook

from gateway.app import create_app
from gateway.availability import (
    IMAGE_FAULTY,
    IMAGE_OK,
    OFFLINE,
    ONLINE,
    faulty_online,
)
from gateway.history import HISTORY
from gateway.keys import REGISTRY, TOKENS
from gateway.models import CameraStatus, ImageFault, ImageQuality, ImageStatus, Role
from gateway.quality import QUALITY
from gateway.reports import COLUMNS
from gateway.settings import Settings
from gateway.vault import CredentialVault
from tests.conftest import Headers

Client = TestClient[web.Request, web.Application]
H = 3600.0


def test_online_but_faulty_is_the_overlap_of_online_and_faulty() -> None:
    # online 0..10 h, offline 10..12 h, online 12..; faulty 5..20 h; window 0..24 h
    statuses = [OFFLINE, ONLINE]
    times = [10 * H, 12 * H]
    images, image_times = [IMAGE_FAULTY, IMAGE_OK], [5 * H, 20 * H]
    got = faulty_online(
        ONLINE, times, statuses, 0, 2, IMAGE_OK, image_times, images, 0, 2, 0, 24 * H
    )
    assert got == 13 * H  # 5..10 and 12..20: the offline hours are an outage, not "faulty"
    # faulty already at the window's start, never cleared, camera offline throughout
    assert faulty_online(OFFLINE, (), (), 0, 0, IMAGE_FAULTY, (), (), 0, 0, 0, H) == 0.0
    assert faulty_online(ONLINE, (), (), 0, 0, IMAGE_FAULTY, (), (), 0, 0, 0, H) == H


@pytest.fixture
async def client(
    aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings, vault: CredentialVault
) -> AsyncIterator[Client]:
    yield await aiohttp_client(create_app(settings, vault))


async def _token(client: Client, role: str, networks: list[str]) -> Headers:
    secret, _ = await client.app[TOKENS].create(f"t-{role}", Role(role), networks, "tests")
    return {"Authorization": f"Bearer {secret}"}


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def _verdict(status: ImageStatus, since: datetime) -> ImageQuality:
    failing = (
        []
        if status is ImageStatus.ok
        else [ImageFault(check="blur", level=status, measures={"sharpness": 0.2})]
    )
    return ImageQuality(status=status, failing=failing, since=since, failing_rounds=2)


# Two governance cameras of one category (one department, carrier, project), hours after T0:
#   q-1: online at 1; picture faulty at 5; offline at 10; online at 12; picture ok at 20
#   q-2: online at 1; picture faulty at 30, still faulty at the end (T0 + 48 h)
SCRIPT: dict[str, list[tuple[int, str]]] = {
    "governance.q-1": [(1, "online"), (5, "faulty"), (10, "offline"), (12, "online"), (20, "ok")],
    "governance.q-2": [(1, "online"), (30, "faulty")],
}


async def _populate(client: Client) -> tuple[Headers, datetime, datetime]:
    t0 = datetime.now(UTC).replace(second=0, microsecond=0)
    admin = await _token(client, "admin", ["*"])
    registry, quality = client.app[REGISTRY], client.app[QUALITY]
    for n, (cam_id, script) in enumerate(SCRIPT.items()):
        body = {
            "id": cam_id,
            "network": "governance",
            "name": f"Camera {cam_id}",
            "category": "sharp-eyes",
            "address": f"127.1.242.{n + 1}",
        }
        resp = await client.post("/api/v1/cameras", json=body, headers=admin)
        assert resp.status == 201, await resp.text()
        for hours, what in script:
            at = t0 + timedelta(hours=hours)
            cam = await registry.get(cam_id)
            assert cam is not None
            if what in ("ok", "faulty"):  # as a round stores a changed verdict
                assert await quality._store(cam_id, _verdict(ImageStatus(what), at), None) == 1
            else:
                update = {"status": CameraStatus(what), "updated_at": at}
                await registry.replace(cam.model_copy(update=update), cam.rev)
    end = t0 + timedelta(days=2)
    client.app[HISTORY].clock = lambda: end
    return admin, t0, end


async def _get(client: Client, path: str, headers: Headers, **params: str) -> Any:
    resp = await client.get(path, params=params, headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


def _figures(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("online_s", "online_faulty_s", "outage_total_s", "degraded_s", "outages")
    return {k: row[k] for k in keys}


async def test_availability_counts_online_but_faulty_apart(client: Client) -> None:
    admin, _, end = await _populate(client)
    week = {"period": "week", "end": _iso(end)}
    path = "/api/v1/availability"

    rows = (await _get(client, path, admin, by="camera", **week))["rows"]
    by_id = {r["key"]: r for r in rows}
    assert _figures(by_id["governance.q-1"]) == {
        "online_s": (4 + 28) * H,  # 1..5 and 20..48
        "online_faulty_s": (5 + 8) * H,  # 5..10 and 12..20
        "outage_total_s": 2 * H,  # 10..12
        "degraded_s": 0.0,
        "outages": 1,
    }
    q1 = by_id["governance.q-1"]
    assert q1["observed_s"] == 47 * H
    assert q1["share_online"] == pytest.approx(32 / 47)
    assert _figures(by_id["governance.q-2"]) == {
        "online_s": 29 * H,  # 1..30
        "online_faulty_s": 18 * H,  # 30..48
        "outage_total_s": 0.0,
        "degraded_s": 0.0,
        "outages": 0,
    }

    # the same seconds in every roll-up: both cameras are one department, carrier, project
    # and network
    for by in ("department", "carrier", "project", "network"):
        rows = (await _get(client, path, admin, by=by, network="governance", **week))["rows"]
        assert len(rows) == 1, by
        assert _figures(rows[0]) == {
            "online_s": 61 * H,
            "online_faulty_s": 31 * H,
            "outage_total_s": 2 * H,
            "degraded_s": 0.0,
            "outages": 1,
        }, by
        assert rows[0]["share_online"] == pytest.approx(61 / 94)

    # a viewer: governance does not share `image`, so the picture's verdict is not theirs to
    # know and its time counts as online
    viewer = await _token(client, "viewer", ["governance"])
    total = (await _get(client, path, viewer, by="network", **week))["total"]
    assert (total["online_s"], total["online_faulty_s"]) == (92 * H, 0.0)


async def test_the_outage_report_lists_online_but_faulty_cameras(client: Client) -> None:
    admin, t0, _ = await _populate(client)
    path = "/api/v1/reports/outages"
    report = await _get(client, path, admin, min_minutes="60", network="governance")
    assert [(r["id"], r["status"], r["image"], r["failing"]) for r in report["items"]] == [
        ("governance.q-2", "online", "faulty", "blur")  # q-1's picture is fine again
    ]
    row = report["items"][0]
    assert row["down_s"] == 18 * H
    assert row["since"] == _iso(t0 + timedelta(hours=30))
    assert row["since_exact"] is True
    # longer than it has been faulty: not listed
    longer = await _get(client, path, admin, min_minutes=str(18 * 60 + 1), network="governance")
    assert longer["items"] == []

    resp = await client.get(path, params={"min_minutes": "60", "format": "csv"}, headers=admin)
    lines = list(csv.reader(io.StringIO((await resp.read()).decode("utf-8-sig"))))
    header, cells = lines[0], dict(zip(lines[0], lines[1], strict=False))
    assert header[-3:] == ["image", "failing", "history"]
    assert (cells["id"], cells["status"], cells["image"], cells["failing"]) == (
        "governance.q-2",
        "online",
        "faulty",
        "blur",
    )
    resp = await client.get(path, params={"min_minutes": "60", "format": "xlsx"}, headers=admin)
    sheet = load_workbook(io.BytesIO(await resp.read()))["outages"]
    values = list(sheet.iter_rows(values_only=True))
    xlsx = dict(zip(values[0], values[1], strict=True))
    assert (xlsx["image"], xlsx["failing"], xlsx["down_s"]) == ("faulty", "blur", 18 * H)
    assert list(values[0]) == [c if c != "since" else "since (UTC)" for c in COLUMNS]

    # a viewer, to whom governance does not show `image`: no picture verdict, no such row
    viewer = await _token(client, "viewer", ["governance"])
    seen = await _get(client, path, viewer, min_minutes="0")
    assert seen["items"] == []


async def test_each_change_of_verdict_is_one_history_entry(client: Client) -> None:
    _, t0, _ = await _populate(client)
    history = client.app[HISTORY]
    async with history.reading():
        log = history.image("governance", "governance.q-1")
        assert log is not None
        assert [(t - t0.timestamp()) / H for t in log.times] == [5.0, 20.0]
        assert list(log.to) == [IMAGE_FAULTY, IMAGE_OK]
    # the same verdict again (a camera that stays faulty) changes neither record nor history
    quality = client.app[QUALITY]
    again = _verdict(ImageStatus.faulty, t0 + timedelta(hours=30))
    assert await quality._store("governance.q-2", again, None) == 0
    async with history.reading():
        q2 = history.image("governance", "governance.q-2")
        assert q2 is not None and len(q2) == 1
