"""The audit trail: every admin change and every refused attempt is recorded with who, what, which
camera and network, how it went and when; the API offers no way to change the trail."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import Headers, TokenFactory

PROBLEM = "application/problem+json"


def cam(n: int, net: str = "governance", **extra: Any) -> dict[str, Any]:
    octet, category = {"governance": (1, "sharp-eyes"), "police": (2, "traffic")}[net]
    return {
        "id": f"aud-{net[:3]}-{n}",
        "network": net,
        "name": f"Audit camera {n}",
        "category": category,
        "address": f"127.{octet}.1.{n}",
    } | extra


def actor_of(headers: Headers, name: str) -> str:
    return f"{name}#{headers['Authorization'].split('_')[1]}"


class Trail:
    """Reads the trail as an all-network auditor."""

    def __init__(self, client: TestClient, headers: Headers) -> None:  # type: ignore[type-arg]
        self.client = client
        self.headers = headers

    async def page(self, **params: Any) -> dict[str, Any]:
        resp = await self.client.get("/api/v1/audit", params=params, headers=self.headers)
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body

    async def entries(self, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = (await self.page(limit=1000, **params))["items"]
        return items

    async def one(self, **match: Any) -> dict[str, Any]:
        found = [e for e in await self.entries() if match.items() <= e.items()]
        assert len(found) == 1, (match, found)
        return found[0]


@pytest.fixture
async def trail(client: TestClient, token: TokenFactory) -> Trail:  # type: ignore[type-arg]
    return Trail(client, await token("auditor", ["*"], name="auditor"))


def assert_recent(entry: dict[str, Any], since: datetime) -> None:
    when = datetime.fromisoformat(entry["time"])
    assert since - timedelta(seconds=1) <= when <= datetime.now(UTC) + timedelta(seconds=1)


# -- admin changes ------------------------------------------------------------------------------


async def test_every_admin_change_is_recorded(
    client: TestClient,  # type: ignore[type-arg]
    token: TokenFactory,
    trail: Trail,
) -> None:
    started = datetime.now(UTC)
    admin = await token("admin", ["*"], name="alice")
    alice = actor_of(admin, "alice")

    resp = await client.post("/api/v1/cameras", json=cam(1), headers=admin)
    assert resp.status == 201
    resp = await client.patch(
        "/api/v1/cameras/aud-gov-1", json={"name": "Renamed", "tags": ["x"]}, headers=admin
    )
    assert resp.status == 200
    resp = await client.post(
        "/api/v1/cameras/import", json=[cam(2), cam(3, "police")], headers=admin
    )
    assert (await resp.json())["created"] == 2
    resp = await client.delete("/api/v1/cameras/aud-gov-1", headers=admin)
    assert resp.status == 204

    expected = [
        ("camera.create", "aud-gov-1", "governance", {}),
        ("camera.update", "aud-gov-1", "governance", {"fields": "name,tags"}),
        ("camera.create", "aud-gov-2", "governance", {"via": "import"}),
        ("camera.create", "aud-pol-3", "police", {"via": "import"}),
        ("camera.delete", "aud-gov-1", "governance", {}),
    ]
    for action, target, network, extra in expected:
        entry = await trail.one(action=action, target=target)
        assert entry["actor"] == alice
        assert entry["role"] == "admin"
        assert entry["network"] == network
        assert entry["outcome"] == "ok"
        assert extra.items() <= entry["extra"].items()
        assert entry["request_id"]
        assert_recent(entry, started)

    summary = await trail.one(action="camera.import")
    assert summary["actor"] == alice
    assert summary["outcome"] == "ok"
    assert summary["detail"] == "created 2, failed 0"
    assert_recent(summary, started)

    # Newest first, in the order the changes happened.
    mine = [(e["action"], e["target"]) for e in await trail.entries(actor=alice)]
    assert mine == [
        ("camera.delete", "aud-gov-1"),
        ("camera.import", "2 rows"),
        ("camera.create", "aud-pol-3"),
        ("camera.create", "aud-gov-2"),
        ("camera.update", "aud-gov-1"),
        ("camera.create", "aud-gov-1"),
    ]


async def test_request_id_links_the_entry_to_the_response(
    client: TestClient,  # type: ignore[type-arg]
    token: TokenFactory,
    trail: Trail,
) -> None:
    admin = await token("admin")
    resp = await client.post(
        "/api/v1/cameras", json=cam(4), headers=admin | {"X-Request-Id": "ticket-4711"}
    )
    assert resp.status == 201
    assert resp.headers["X-Request-Id"] == "ticket-4711"
    entry = await trail.one(action="camera.create", target="aud-gov-4")
    assert entry["request_id"] == "ticket-4711"


# -- refusals -----------------------------------------------------------------------------------


async def test_refused_attempts_are_recorded_with_their_outcome(
    client: TestClient,  # type: ignore[type-arg]
    token: TokenFactory,
    trail: Trail,
) -> None:
    started = datetime.now(UTC)
    viewer = await token("viewer", ["*"], name="vic")
    admin = await token("admin", ["*"], name="alice")
    gov_admin = await token("admin", ["governance"], name="gina")

    attempts: list[tuple[Headers, str, str, dict[str, Any], int]] = [
        (viewer, "POST", "/api/v1/cameras", {"json": cam(1)}, 403),
        (gov_admin, "POST", "/api/v1/cameras", {"json": cam(2, "police")}, 403),
        (admin, "POST", "/api/v1/cameras", {"json": cam(3, address="10.0.0.1")}, 422),
        (admin, "POST", "/api/v1/cameras", {"json": cam(4)}, 201),
        (admin, "POST", "/api/v1/cameras", {"json": cam(4)}, 409),
        (admin, "POST", "/api/v1/cameras", {"json": cam(5, address="127.1.1.4")}, 409),
        (admin, "PATCH", "/api/v1/cameras/aud-gov-4", {"json": {"category": "traffic"}}, 422),
        (viewer, "DELETE", "/api/v1/cameras/aud-gov-4", {}, 403),
        (admin, "DELETE", "/api/v1/cameras/aud-gov-9", {}, 404),
        (viewer, "POST", "/api/v1/cameras/import", {"json": [cam(6)]}, 403),
        ({}, "POST", "/api/v1/cameras", {"json": cam(7)}, 401),
    ]
    for headers, method, path, kwargs, status in attempts:
        resp = await client.request(method, path, headers=headers, **kwargs)
        assert resp.status == status, (method, path, await resp.text())

    refusals = [e for e in await trail.entries() if e["outcome"] != "ok"]
    got = sorted((e["actor"].split("#")[0], e["action"], e["status"]) for e in refusals)
    assert got == sorted(
        [
            ("vic", "camera.create", 403),
            ("gina", "camera.create", 403),
            ("alice", "camera.create", 422),
            ("alice", "camera.create", 409),
            ("alice", "camera.create", 409),
            ("alice", "camera.update", 422),
            ("vic", "camera.delete", 403),
            ("alice", "camera.delete", 404),
            ("vic", "camera.import", 403),
            ("anonymous", "camera.create", 401),
        ]
    )
    outcomes = {403: "denied", 401: "denied", 404: "not_found", 409: "conflict", 422: "invalid"}
    for entry in refusals:
        assert entry["outcome"] == outcomes[entry["status"]], entry
        assert entry["detail"], entry
        assert entry["target"], entry
        assert_recent(entry, started)
    # A refused change left nothing behind: only the one good create is recorded as done.
    done = [(e["action"], e["target"]) for e in await trail.entries() if e["outcome"] == "ok"]
    assert done == [("camera.create", "aud-gov-4")]


async def test_probing_an_ungranted_camera_is_recorded_for_its_network(
    client: TestClient,  # type: ignore[type-arg]
    token: TokenFactory,
    trail: Trail,
) -> None:
    root = await token("admin", ["*"])
    assert (await client.post("/api/v1/cameras", json=cam(1, "police"), headers=root)).status == 201
    viewer = await token("viewer", ["governance"], name="peeker")
    assert (await client.get("/api/v1/cameras/aud-pol-1", headers=viewer)).status == 404
    entry = await trail.one(action="camera.get", target="aud-pol-1")
    assert entry["actor"] == actor_of(viewer, "peeker")
    assert entry["network"] == "police"
    assert entry["outcome"] == "denied"
    # The police network's own auditor sees who probed its camera.
    police_auditor = await token("auditor", ["police"])
    resp = await client.get("/api/v1/audit?camera=aud-pol-1", headers=police_auditor)
    assert "camera.get" in [e["action"] for e in (await resp.json())["items"]]


# -- the trail cannot be changed through the API -------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_the_api_cannot_change_the_trail(
    client: TestClient,  # type: ignore[type-arg]
    token: TokenFactory,
    trail: Trail,
    method: str,
) -> None:
    admin = await token("admin")
    for n in range(3):
        assert (await client.post("/api/v1/cameras", json=cam(n), headers=admin)).status == 201
    before = await trail.entries()
    assert len(before) == 3

    for who in (trail.headers, admin, {}):
        resp = await client.request(
            method, "/api/v1/audit", json={"items": [], "actor": "x"}, headers=who
        )
        assert resp.status == 405
        assert resp.content_type == PROBLEM
        assert (await resp.json())["status"] == 405
        assert "GET" in resp.headers["Allow"]
        one = await client.request(method, f"/api/v1/audit/{before[0]['id']}", headers=who)
        assert one.status in (404, 405)
        assert one.content_type == PROBLEM

    assert await trail.entries() == before
    doc = await (await client.get("/api/v1/openapi.json")).json()
    assert set(doc["paths"]["/api/v1/audit"]) == {"get"}
    assert not [p for p in doc["paths"] if p.startswith("/api/v1/audit/")]


# -- reading: filters and paging ------------------------------------------------------------------


async def test_filters_actor_camera_network_since(
    client: TestClient,  # type: ignore[type-arg]
    token: TokenFactory,
    trail: Trail,
) -> None:
    alice_h = await token("admin", ["*"], name="alice")
    bob_h = await token("admin", ["*"], name="bob")
    alice, bob = actor_of(alice_h, "alice"), actor_of(bob_h, "bob")
    await client.post("/api/v1/cameras", json=cam(1), headers=alice_h)
    await client.post("/api/v1/cameras", json=cam(2, "police"), headers=bob_h)
    await asyncio.sleep(0.02)
    since = datetime.now(UTC)
    await asyncio.sleep(0.02)
    await client.patch("/api/v1/cameras/aud-gov-1", json={"name": "B"}, headers=bob_h)
    await client.patch("/api/v1/cameras/aud-pol-2", json={"name": "A"}, headers=alice_h)

    def pairs(entries: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
        return [(e["actor"], e["action"], e["target"]) for e in entries]

    assert pairs(await trail.entries(actor=alice)) == [
        (alice, "camera.update", "aud-pol-2"),
        (alice, "camera.create", "aud-gov-1"),
    ]
    assert pairs(await trail.entries(camera="aud-gov-1")) == [
        (bob, "camera.update", "aud-gov-1"),
        (alice, "camera.create", "aud-gov-1"),
    ]
    assert pairs(await trail.entries(network="police")) == [
        (alice, "camera.update", "aud-pol-2"),
        (bob, "camera.create", "aud-pol-2"),
    ]
    stamp = since.isoformat().replace("+00:00", "Z")
    assert pairs(await trail.entries(since=stamp)) == [
        (alice, "camera.update", "aud-pol-2"),
        (bob, "camera.update", "aud-gov-1"),
    ]
    assert pairs(await trail.entries(since=stamp, actor=bob, network="governance")) == [
        (bob, "camera.update", "aud-gov-1"),
    ]
    assert await trail.entries(actor="nobody#00000000") == []
    for entry in await trail.entries(since=stamp):
        assert datetime.fromisoformat(entry["time"]) >= since - timedelta(milliseconds=5)


async def test_cursor_paging_walks_the_whole_trail_once(
    client: TestClient,  # type: ignore[type-arg]
    token: TokenFactory,
    trail: Trail,
) -> None:
    admin = await token("admin")
    for n in range(1, 8):
        assert (await client.post("/api/v1/cameras", json=cam(n), headers=admin)).status == 201
    everything = await trail.entries()
    assert len(everything) == 7
    ids = [e["id"] for e in everything]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))), reverse=True)

    pages: list[list[str]] = []
    cursor = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = await trail.page(**params)
        pages.append([e["id"] for e in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i for p in pages for i in p] == ids

    # Paging combines with a filter.
    page = await trail.page(limit=2, camera="aud-gov-3")
    assert [e["target"] for e in page["items"]] == ["aud-gov-3"]
    assert page["next_cursor"] is None


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("cursor", "not-a-cursor"),
        ("since", "yesterday"),
        ("limit", "0"),
        ("limit", "100000"),
        ("camera", "../etc"),
    ],
)
async def test_bad_audit_queries_are_422(trail: Trail, param: str, value: str) -> None:
    resp = await trail.client.get("/api/v1/audit", params={param: value}, headers=trail.headers)
    assert resp.status == 422
    assert resp.content_type == PROBLEM
    assert (await resp.json())["field"] == param
