"""The accountability endpoints (issue 12) through the API, against cameras registered through the
API and statuses written as the gateway writes them: grants (a governance viewer's figures never
count police cameras; a police viewer does not learn that a governance camera exists), each
network's sharing policy, refused query values, and the outage report's CSV and XLSX holding
the same rows as its JSON."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from openpyxl import load_workbook

from gateway.app import create_app
from gateway.history import HISTORY
from gateway.keys import REGISTRY, TOKENS
from gateway.models import CameraStatus, Maintenance, Role
from gateway.report_models import StatusChange
from gateway.reports import COLUMNS, contact_text, excel_time, history_text
from gateway.settings import Settings
from gateway.vault import CredentialVault
from tests.conftest import Headers

Client = TestClient[web.Request, web.Application]
PROBLEM = "application/problem+json"

CAMERAS = [
    # id, network, category, address, [(hours after T0, status)]
    ("governance.rep-1", "governance", "sharp-eyes", "127.1.241.1", [(1, "online")]),
    (
        "governance.rep-2",
        "governance",
        "road-blindspot",
        "127.1.241.2",
        [(1, "online"), (30, "offline")],
    ),
    ("police.rep-1", "police", "public-security", "127.2.241.1", [(1, "online"), (3, "offline")]),
    ("gov-affairs.rep-1", "gov-affairs", "unclassified", "127.3.241.1", [(1, "degraded")]),
]


def _hidden_share(settings: Settings) -> Settings:
    """gov-affairs shares neither who answers for its cameras nor their errors; police keeps
    its status to itself."""
    networks = []
    for n in settings.networks:
        share = list(n.sharing.share)
        if n.id == "gov-affairs":
            share = [f for f in share if f not in ("department", "carrier", "last_error")]
        if n.id == "police":
            share = [f for f in share if f != "status"]
        sharing = n.sharing.model_copy(update={"share": share})
        networks.append(n.model_copy(update={"sharing": sharing}))
    return settings.model_copy(update={"networks": tuple(networks)})


@pytest.fixture
async def app_client(
    aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings, vault: CredentialVault
) -> AsyncIterator[Callable[[Settings], Awaitable[Client]]]:
    async def make(s: Settings) -> Client:
        return await aiohttp_client(create_app(s, vault))

    yield make


async def _token(client: Client, role: str, networks: list[str]) -> Headers:
    secret, _ = await client.app[TOKENS].create(f"t-{role}", Role(role), networks, "tests")
    return {"Authorization": f"Bearer {secret}"}


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


async def _populate(client: Client) -> tuple[Headers, dict[str, str]]:
    """The cameras above, registered through the API (now, by the wall clock: T0 is the
    minute it began), then their statuses written with chosen `updated_at` from T0 on, as
    health rounds write them; the history's clock set at T0 + 2 days. Returns an admin's
    headers and the query of the week that ends then."""
    t0 = datetime.now(UTC).replace(second=0, microsecond=0)
    admin = await _token(client, "admin", ["*"])
    registry = client.app[REGISTRY]
    for cam_id, network, category, address, script in CAMERAS:
        body = {
            "id": cam_id,
            "network": network,
            "name": f"Camera {cam_id}",
            "category": category,
            "address": address,
        }
        if category == "unclassified":
            body |= {"department": "Town Office", "carrier": "China Mobile", "project": "Video"}
            body["maintenance"] = CONTACT
        resp = await client.post("/api/v1/cameras", json=body, headers=admin)
        assert resp.status == 201, await resp.text()
        for hours, status in script:
            cam = await registry.get(cam_id)
            assert cam is not None
            update = {
                "status": CameraStatus(status),
                "last_error": "no answer" if status != "online" else None,
                "updated_at": t0 + timedelta(hours=hours),
            }
            await registry.replace(cam.model_copy(update=update), cam.rev)
    now = t0 + timedelta(days=2)
    client.app[HISTORY].clock = lambda: now
    return admin, {"period": "week", "end": _iso(now)}


async def _json(client: Client, path: str, headers: Headers, **params: str) -> Any:
    resp = await client.get(path, params=params, headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def _problem(resp: Any, status: int, field: str | None = None) -> dict[str, Any]:
    text = await resp.text()
    assert resp.status == status, text
    assert resp.content_type == PROBLEM
    body: dict[str, Any] = orjson.loads(text)
    if field is not None:
        assert body["field"] == field, body
    return body


async def test_a_governance_viewer_never_counts_police_cameras(
    app_client: Callable[[Settings], Awaitable[Client]], settings: Settings
) -> None:
    client = await app_client(settings)
    _, week = await _populate(client)
    viewer = await _token(client, "viewer", ["governance"])
    body = await _json(client, "/api/v1/availability", viewer, **week)
    assert body["networks"] == ["governance"]
    assert [r["key"] for r in body["rows"]] == ["governance"]
    assert body["total"]["cameras"] == 2
    for by in ("camera", "department", "carrier", "project"):
        rows = (await _json(client, "/api/v1/availability", viewer, by=by, **week))["rows"]
        assert sum(r["cameras"] for r in rows) == 2, by
        assert "police.rep-1" not in {r["key"] for r in rows}
        assert "Police" not in {r["key"] for r in rows}
    asked = await _json(client, "/api/v1/availability", viewer, network="police", **week)
    assert (asked["networks"], asked["total"]["cameras"], asked["rows"]) == ([], 0, [])
    report = await _json(client, "/api/v1/reports/outages", viewer, min_minutes="0")
    assert [r["id"] for r in report["items"]] == ["governance.rep-2"]  # not police.rep-1
    # An admin of every network counts all four, and sees the police camera's outage.
    admin = await _token(client, "admin", ["*"])
    everything = await _json(client, "/api/v1/availability", admin, **week)
    assert everything["total"]["cameras"] == 4
    police = next(r for r in everything["rows"] if r["key"] == "police")
    assert (police["outages"], police["outage_total_s"]) == (1, 45 * 3600)
    report = await _json(client, "/api/v1/reports/outages", admin, min_minutes="0")
    assert [(r["id"], r["status"], r["down_s"]) for r in report["items"]] == [
        ("gov-affairs.rep-1", "degraded", 47 * 3600),  # longest down first
        ("police.rep-1", "offline", 45 * 3600),
        ("governance.rep-2", "offline", 18 * 3600),
    ]


async def test_a_police_viewer_is_told_a_governance_camera_is_not_found(
    app_client: Callable[[Settings], Awaitable[Client]], settings: Settings
) -> None:
    client = await app_client(settings)
    await _populate(client)
    police = await _token(client, "viewer", ["police"])
    hidden = await client.get("/api/v1/cameras/governance.rep-2/history", headers=police)
    missing = await client.get("/api/v1/cameras/governance.nothing/history", headers=police)
    a, b = await _problem(hidden, 404), await _problem(missing, 404)
    assert a["title"] == b["title"] and a["status"] == b["status"]
    own = await _json(client, "/api/v1/cameras/police.rep-1/history", police)
    assert [c["status"] for c in own["items"]] == ["offline", "online", "unknown"]
    auditor = await _token(client, "auditor", ["*"])  # reads the trail, not the cameras
    await _problem(await client.get("/api/v1/availability", headers=auditor), 403)


async def test_each_network_s_sharing_policy_applies(
    app_client: Callable[[Settings], Awaitable[Client]], settings: Settings
) -> None:
    client = await app_client(_hidden_share(settings))
    admin, week = await _populate(client)
    viewer = await _token(client, "viewer", ["*"])

    rows = (await _json(client, "/api/v1/availability", viewer, by="camera", **week))["rows"]
    by_id = {r["key"]: r for r in rows}
    affairs = by_id["gov-affairs.rep-1"]
    assert (affairs["department"], affairs["carrier"]) == (None, None)  # not shared
    assert affairs["project"] is not None and affairs["degraded_s"] > 0
    police = by_id["police.rep-1"]
    assert (police["observed_s"], police["share_online"], police["outages"]) == (0, None, 0)
    depts = await _json(client, "/api/v1/availability", viewer, by="department", **week)
    assert "" in {r["key"] for r in depts["rows"]}  # gov-affairs' cameras, unattributed
    full = await _json(client, "/api/v1/availability", admin, by="camera", **week)
    admin_row = next(r for r in full["rows"] if r["key"] == "gov-affairs.rep-1")
    assert admin_row["department"] and admin_row["carrier"]  # admins see whole records

    history = await _json(client, "/api/v1/cameras/police.rep-1/history", viewer)
    assert (history["status"], history["items"]) == (None, [])  # status not shared
    history = await _json(client, "/api/v1/cameras/gov-affairs.rep-1/history", viewer)
    assert [c["error"] for c in history["items"]] == [None, None]  # last_error not shared

    report = await _json(client, "/api/v1/reports/outages", viewer, min_minutes="0")
    assert "police.rep-1" not in {r["id"] for r in report["items"]}
    row = next(r for r in report["items"] if r["id"] == "gov-affairs.rep-1")
    assert (row["department"], row["carrier"], row["last_error"]) == (None, None, None)
    csv_body = await (
        await client.get(
            "/api/v1/reports/outages", params={"format": "csv", "min_minutes": "0"}, headers=viewer
        )
    ).read()
    assert b"no answer" not in csv_body.split(b"gov-affairs.rep-1", 1)[1].split(b"\n", 1)[0]


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/v1/availability", {"period": "year"}, "period"),
        ("/api/v1/availability", {"end": "2026-03-01"}, "end"),
        ("/api/v1/availability", {"end": "2026-03-01T00:00:00"}, "end"),
        ("/api/v1/availability", {"by": "vendor"}, "by"),
        ("/api/v1/availability", {"network": "Police!"}, "network"),
        ("/api/v1/availability", {"limit": "0"}, "limit"),
        ("/api/v1/availability", {"colour": "red"}, "colour"),
        ("/api/v1/reports/outages", {"min_minutes": "-1"}, "min_minutes"),
        ("/api/v1/reports/outages", {"min_minutes": "1.5"}, "min_minutes"),
        ("/api/v1/reports/outages", {"format": "pdf"}, "format"),
        ("/api/v1/reports/outages", {"history_days": "0"}, "history_days"),
        ("/api/v1/cameras/governance.rep-1/history", {"cursor": "abc"}, "cursor"),
        ("/api/v1/cameras/governance.rep-1/history", {"limit": "1001"}, "limit"),
    ],
)
async def test_bad_query_values_are_refused_naming_the_field(
    app_client: Callable[[Settings], Awaitable[Client]],
    settings: Settings,
    path: str,
    params: dict[str, str],
    field: str,
) -> None:
    client = await app_client(settings)
    viewer = await _token(client, "viewer", ["*"])
    await _problem(await client.get(path, params=params, headers=viewer), 422, field)


def _json_cells(row: dict[str, Any]) -> list[Any]:
    cells = [row[c] for c in COLUMNS]
    contact = row["maintenance"]
    cells[COLUMNS.index("maintenance")] = (
        contact_text(Maintenance.model_validate(contact)) if contact else None
    )
    return cells


CONTACT = {"organisation": "China Mobile Songjiang", "phone": "021-5764-0002"}


async def test_the_report_names_who_fixes_each_camera(
    app_client: Callable[[Settings], Awaitable[Client]], settings: Settings
) -> None:
    defaults = [{"category": "road-blindspot", "organisation": "Blind-spot integrator"}]
    with_defaults = Settings.model_validate(settings.model_dump() | {"maintenance": defaults})
    client = await app_client(with_defaults)
    admin, _ = await _populate(client)
    report = await _json(client, "/api/v1/reports/outages", admin, min_minutes="0")
    assert {r["id"]: r["maintenance"] for r in report["items"]} == {
        "gov-affairs.rep-1": {"contact": "", "confirmed_on": None} | CONTACT,  # its own
        "governance.rep-2": {  # its category's, from the config
            "organisation": "Blind-spot integrator",
            "contact": "",
            "phone": None,
            "confirmed_on": None,
        },
        "police.rep-1": None,  # none set anywhere
    }


async def test_csv_and_xlsx_hold_the_json_rows(
    app_client: Callable[[Settings], Awaitable[Client]], settings: Settings
) -> None:
    client = await app_client(settings)
    admin, _ = await _populate(client)
    params = {"min_minutes": "0"}
    report = await _json(client, "/api/v1/reports/outages", admin, **params)
    assert len(report["items"]) == 3

    resp = await client.get(
        "/api/v1/reports/outages", params={**params, "format": "csv"}, headers=admin
    )
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert resp.headers["Content-Disposition"].endswith('.csv"')
    raw = await resp.read()
    assert raw.startswith(b"\xef\xbb\xbf")  # the BOM: Excel reads it as UTF-8
    lines = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert lines[0] == [*COLUMNS, "history"]
    for line, row in zip(lines[1:], report["items"], strict=True):
        expected = [
            "" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
            for v in _json_cells(row)
        ]
        assert line[: len(COLUMNS)] == expected
        assert line[-1] == history_text_of(row)

    resp = await client.get(
        "/api/v1/reports/outages", params={**params, "format": "xlsx"}, headers=admin
    )
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("application/vnd.openxmlformats")
    book = load_workbook(io.BytesIO(await resp.read()))
    sheet = book["outages"]
    values = list(sheet.iter_rows(values_only=True))
    assert [c for c in values[0]] == [c if c != "since" else "since (UTC)" for c in COLUMNS]
    for cells, row in zip(values[1:], report["items"], strict=True):
        expected = _json_cells(row)
        since = excel_time(datetime.fromisoformat(row["since"]))
        expected[COLUMNS.index("since")] = since  # a typed date-time cell, in UTC
        assert list(cells) == expected
        assert isinstance(cells[COLUMNS.index("down_s")], float | int)
    changes = list(book["history"].iter_rows(values_only=True))
    assert changes[0] == ("id", "at (UTC)", "previous", "status", "error")
    flat = [
        (r["id"], excel_time(datetime.fromisoformat(c["at"])), c["previous"], c["status"])
        for r in report["items"]
        for c in r["history"]
    ]
    assert [c[:4] for c in changes[1:]] == flat


def history_text_of(row: dict[str, Any]) -> str:
    return history_text(StatusChange.model_validate(c) for c in row["history"])


async def test_outage_metrics_per_department_and_carrier_respect_grants(
    app_client: Callable[[Settings], Awaitable[Client]], settings: Settings
) -> None:
    client = await app_client(settings)
    await _populate(client)
    await client.app[HISTORY].refresh()
    admin = await _token(client, "admin", ["*"])
    text = await (await client.get("/metrics", headers=admin)).text()
    assert (
        'camgw_outages_current{carrier="China Unicom",department="Town Safety Office",'
        'network="governance"} 1.0' in text
    )
    assert 'camgw_outages_current{carrier="China Telecom",department="Police"' in text
    assert (
        'camgw_cameras_by_owner{carrier="China Telecom",department="Political-Legal Committee",'
        'network="governance",status="online"} 1.0' in text
    )
    # governance.rep-2 went offline at T0 + 30 h; the clock says T0 + 48 h.
    assert (
        'camgw_outage_current_longest_seconds{carrier="China Unicom",'
        'department="Town Safety Office",network="governance"} 64800.0' in text
    )
    viewer = await _token(client, "viewer", ["governance"])
    text = await (await client.get("/metrics", headers=viewer)).text()
    assert 'network="police"' not in text
    assert 'camgw_outages_current{carrier="China Unicom"' in text
