"""The audit trail: every admin change and every refused attempt is recorded with who, what, which
camera and network, how it went and when; the API offers no way to change the trail, and reading
it is itself recorded. (The hash chain, archive and CLI: test_audit_chain.py.)"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from gateway.keys import AUDIT
from tests.conftest import Headers, TokenFactory

PROBLEM = "application/problem+json"


def cam(n: int, net: str = "governance", **extra: Any) -> dict[str, Any]:
    octet, category = {"governance": (1, "sharp-eyes"), "police": (2, "traffic")}[net]
    return {
        "id": f"{net}.aud-{n}",
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

    async def entries(self, reads: bool = False, **params: Any) -> list[dict[str, Any]]:
        """The entries, without the `audit.read` entries of earlier reads unless `reads`."""
        items: list[dict[str, Any]] = (await self.page(limit=1000, **params))["items"]
        return [e for e in items if reads or e["action"] != "audit.read"]

    async def one(self, **match: Any) -> dict[str, Any]:
        found = [e for e in await self.entries() if match.items() <= e.items()]
        assert len(found) == 1, (match, found)
        return found[0]


@pytest.fixture
async def trail(client: TestClient, token: TokenFactory) -> Trail:  # type: ignore[type-arg]
    return Trail(client, await token("auditor", ["*"], name="auditor"))


class FakeClock:
    """The refusal counter's clock: tests move time instead of waiting for a minute to end."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0 - 1_700_000_000 % 60 + 1  # a second into a minute

    def __call__(self) -> float:
        return self.now


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
        "/api/v1/cameras/governance.aud-1", json={"name": "Renamed", "tags": ["x"]}, headers=admin
    )
    assert resp.status == 200
    resp = await client.post(
        "/api/v1/cameras/import", json=[cam(2), cam(3, "police")], headers=admin
    )
    assert (await resp.json())["created"] == 2
    resp = await client.delete("/api/v1/cameras/governance.aud-1", headers=admin)
    assert resp.status == 204

    expected = [
        ("camera.create", "governance.aud-1", "governance", {}),
        ("camera.update", "governance.aud-1", "governance", {"fields": "name,tags"}),
        ("camera.create", "governance.aud-2", "governance", {"via": "import"}),
        ("camera.create", "police.aud-3", "police", {"via": "import"}),
        ("camera.delete", "governance.aud-1", "governance", {}),
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

    # The import: one summary per network its rows name, so each network's auditor sees it.
    imports = [e for e in await trail.entries() if e["action"] == "camera.import"]
    summaries = {e["network"]: e for e in imports}
    assert set(summaries) == {"governance", "police"}
    for summary in summaries.values():
        assert summary["actor"] == alice
        assert summary["outcome"] == "ok"
        assert summary["detail"] == "created 1, failed 0"
        assert_recent(summary, started)

    # Newest first, in the order the changes happened.
    mine = [(e["action"], e["target"]) for e in await trail.entries(actor=alice)]
    assert mine == [
        ("camera.delete", "governance.aud-1"),
        ("camera.import", "2 rows"),
        ("camera.import", "2 rows"),
        ("camera.create", "police.aud-3"),
        ("camera.create", "governance.aud-2"),
        ("camera.update", "governance.aud-1"),
        ("camera.create", "governance.aud-1"),
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
    entry = await trail.one(action="camera.create", target="governance.aud-4")
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
        (
            admin,
            "PATCH",
            "/api/v1/cameras/governance.aud-4",
            {"json": {"category": "traffic"}},
            422,
        ),
        (viewer, "DELETE", "/api/v1/cameras/governance.aud-4", {}, 403),
        (admin, "DELETE", "/api/v1/cameras/governance.aud-9", {}, 404),
        (viewer, "POST", "/api/v1/cameras/import", {"json": [cam(6)]}, 403),
        ({}, "POST", "/api/v1/cameras", {"json": cam(7)}, 401),
    ]
    clock = FakeClock()
    client.app[AUDIT].refusals.clock = clock
    for headers, method, path, kwargs, status in attempts:
        resp = await client.request(method, path, headers=headers, **kwargs)
        assert resp.status == status, (method, path, await resp.text())
    clock.now += 60  # the minute is over: the unauthenticated attempt is written, as a count
    assert await client.app[AUDIT].flush_refusals() == 1

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
            ("anonymous", "auth.refused", 401),
        ]
    )
    outcomes = {403: "denied", 401: "denied", 404: "not_found", 409: "conflict", 422: "invalid"}
    for entry in refusals:
        assert entry["outcome"] == outcomes[entry["status"]], entry
        assert entry["detail"], entry
        assert entry["target"], entry
        if entry["status"] != 401:
            assert_recent(entry, started)
    anonymous = next(e for e in refusals if e["status"] == 401)
    assert anonymous["target"] == "127.0.0.1"  # the source, counted
    assert anonymous["extra"]["count"] == "1"
    assert anonymous["extra"]["paths"] == '["/api/v1/cameras"]'
    # A refused change left nothing behind: only the one good create is recorded as done.
    done = [(e["action"], e["target"]) for e in await trail.entries() if e["outcome"] == "ok"]
    assert done == [("camera.create", "governance.aud-4")]


async def test_probing_an_ungranted_camera_is_recorded_for_its_network(
    client: TestClient,  # type: ignore[type-arg]
    token: TokenFactory,
    trail: Trail,
) -> None:
    root = await token("admin", ["*"])
    assert (await client.post("/api/v1/cameras", json=cam(1, "police"), headers=root)).status == 201
    viewer = await token("viewer", ["governance"], name="peeker")
    assert (await client.get("/api/v1/cameras/police.aud-1", headers=viewer)).status == 404
    entry = await trail.one(action="camera.get", target="police.aud-1")
    assert entry["actor"] == actor_of(viewer, "peeker")
    assert entry["network"] == "police"
    assert entry["outcome"] == "denied"
    # The police network's own auditor sees who probed its camera.
    police_auditor = await token("auditor", ["police"])
    resp = await client.get("/api/v1/audit?camera=police.aud-1", headers=police_auditor)
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
    await client.patch("/api/v1/cameras/governance.aud-1", json={"name": "B"}, headers=bob_h)
    await client.patch("/api/v1/cameras/police.aud-2", json={"name": "A"}, headers=alice_h)

    def pairs(entries: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
        return [(e["actor"], e["action"], e["target"]) for e in entries]

    assert pairs(await trail.entries(actor=alice)) == [
        (alice, "camera.update", "police.aud-2"),
        (alice, "camera.create", "governance.aud-1"),
    ]
    assert pairs(await trail.entries(camera="governance.aud-1")) == [
        (bob, "camera.update", "governance.aud-1"),
        (alice, "camera.create", "governance.aud-1"),
    ]
    assert pairs(await trail.entries(network="police")) == [
        (alice, "camera.update", "police.aud-2"),
        (bob, "camera.create", "police.aud-2"),
    ]
    stamp = since.isoformat().replace("+00:00", "Z")
    assert pairs(await trail.entries(since=stamp)) == [
        (alice, "camera.update", "police.aud-2"),
        (bob, "camera.update", "governance.aud-1"),
    ]
    assert pairs(await trail.entries(since=stamp, actor=bob, network="governance")) == [
        (bob, "camera.update", "governance.aud-1"),
    ]
    assert await trail.entries(actor="nobody#00000000") == []
    for entry in await trail.entries(since=stamp):
        assert datetime.fromisoformat(entry["time"]) >= since - timedelta(milliseconds=5)


async def test_cursor_paging_walks_the_whole_trail_once(
    client: TestClient,  # type: ignore[type-arg]
    token: TokenFactory,
    trail: Trail,
) -> None:
    admin = await token("admin", name="paging")
    paging = actor_of(admin, "paging")
    for n in range(1, 8):
        assert (await client.post("/api/v1/cameras", json=cam(n), headers=admin)).status == 201
    everything = await trail.entries()
    assert len(everything) == 7
    ids = [e["id"] for e in everything]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))), reverse=True)

    pages: list[list[str]] = []
    cursor = None
    for _ in range(10):  # (by actor: each read adds an `audit.read` entry of the auditor's)
        params: dict[str, Any] = {"limit": 3, "actor": paging} | (
            {"cursor": cursor} if cursor else {}
        )
        page = await trail.page(**params)
        pages.append([e["id"] for e in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i for p in pages for i in p] == ids

    # Paging combines with a filter.
    page = await trail.page(limit=2, camera="governance.aud-3")
    assert [e["target"] for e in page["items"]] == ["governance.aud-3"]
    assert page["next_cursor"] is None


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("cursor", "not-a-cursor"),
        ("cursor", "0-0"),  # was 503 "registry unreachable" (Redis refused the range)
        ("cursor", "18446744073709551616-0"),  # 2^64
        ("cursor", "0-18446744073709551616"),
        ("since", "yesterday"),
        ("since", "1969-12-31T00:00:00Z"),  # was 503: a negative stream id
        ("since", "0.5"),  # was taken as a Unix timestamp; OpenAPI says date-time
        ("since", "1700000000"),
        ("since", "2024-05-01"),  # a date, not a date-time
        ("since", "2024-05-01T08:00:00"),  # no time zone
        ("since", "3024-05-01T08:00:00Z"),
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


async def test_good_edge_queries_are_answered(trail: Trail) -> None:
    for params in (
        {"cursor": "18446744073709551615-18446744073709551615"},
        {"cursor": "0-1"},
        {"since": "1970-01-01T00:00:00Z"},
        {"since": "2024-05-01T08:00:00+08:00"},
    ):
        resp = await trail.client.get("/api/v1/audit", params=params, headers=trail.headers)
        assert resp.status == 200, (params, await resp.text())


async def test_the_since_parameter_is_an_iso_date_time_in_the_openapi_document(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    doc = await (await client.get("/api/v1/openapi.json")).json()
    params = {p["name"]: p for p in doc["paths"]["/api/v1/audit"]["get"]["parameters"]}
    since = params["since"]["schema"]
    # A date-time (not a number), with the years the server takes as a pattern beside it.
    assert (since["type"], since["format"]) == ("string", "date-time")
    assert "anyOf" not in since  # a query value is never JSON null


# -- reading is recorded --------------------------------------------------------------------------


async def test_every_read_of_the_trail_is_itself_recorded(
    client: TestClient,  # type: ignore[type-arg]
    token: TokenFactory,
) -> None:
    admin = await token("admin")
    for n in (1, 2):
        assert (await client.post("/api/v1/cameras", json=cam(n), headers=admin)).status == 201
    inspector = await token("auditor", ["*"], name="inspector")
    police = await token("auditor", ["police"], name="pol-auditor")

    resp = await client.get(
        "/api/v1/audit", params={"camera": "governance.aud-1", "limit": 5}, headers=inspector
    )
    assert [e["action"] for e in (await resp.json())["items"]] == ["camera.create"]
    resp = await client.get("/api/v1/audit", params={"network": "police"}, headers=police)
    assert (await resp.json())["items"] == []

    resp = await client.get("/api/v1/audit", params={"limit": 1000}, headers=inspector)
    reads = [e for e in (await resp.json())["items"] if e["action"] == "audit.read"]
    assert [e["actor"] for e in reads] == [
        actor_of(police, "pol-auditor"),
        actor_of(inspector, "inspector"),
    ]
    police_read, first = reads
    assert first["role"] == "auditor"
    assert first["outcome"] == "ok"
    assert first["request_id"]
    assert first["network"] == ""
    assert first["extra"]["returned"] == "1"
    assert orjson.loads(first["extra"]["filters"]) == {"camera": "governance.aud-1", "limit": 5}
    # A read of one network's trail is that network's business: its auditors see it.
    assert police_read["network"] == "police"
    assert police_read["extra"]["returned"] == "0"
    resp = await client.get("/api/v1/audit", params={"limit": 1000}, headers=police)
    assert [e["actor"] for e in (await resp.json())["items"] if e["action"] == "audit.read"] == [
        actor_of(police, "pol-auditor")
    ]
    # The read just made is there for the next reader.
    resp = await client.get("/api/v1/audit", params={"limit": 1}, headers=inspector)
    latest = (await resp.json())["items"][0]
    assert (latest["action"], latest["actor"], latest["extra"]["returned"]) == (
        "audit.read",
        actor_of(police, "pol-auditor"),
        "1",
    )
