"""The audit trail: every admin change and every refused attempt is recorded with who, what, which
camera and network, how it went and when; the API offers no way to change the trail, and reading
it is itself recorded. (The hash chain, archive and CLI: test_audit_chain.py.)"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import generate_latest
from redis.asyncio import Redis

from gateway.app import redis_client
from gateway.audit import AuditEvent, AuditLog, AuditQuery
from gateway.audit_index import lex, parse_id
from gateway.keys import AUDIT
from gateway.metrics import Metrics
from gateway.models import AuditPage
from gateway.registry import Registry
from gateway.settings import AuditConfig, Settings
from gateway.vault import CredentialVault
from tests.conftest import Headers, TokenFactory
from tests.gateway.test_audit_chain import camera, change

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


# -- reading: the indexes ------------------------------------------------------------------------

RARE_ACTOR = "cli:root@host-7"  # any text: index keys carry a digest of the value
RARE_CAMERA = "police.rare-1"


@pytest.fixture
async def raw(settings: Settings) -> AsyncIterator[Redis]:
    client = redis_client(settings.redis.url)
    yield client
    await client.aclose()


def common(n: int, **over: Any) -> AuditEvent:
    """The bulk of a busy trail: a few actors, cameras in runs of 100, two networks."""
    base = AuditEvent(
        actor=f"svc#{n % 7:08x}",
        role="operator",
        action="snapshot.get",
        target=f"governance.cam-{n // 100}",
        outcome="ok",
        status=200,
        network=("governance", "police")[n % 2],
        detail=f"entry {n}",
    )
    return dataclasses.replace(base, **over)


async def fill(audit: AuditLog, numbers: range, rare: dict[int, AuditEvent]) -> None:
    """Common entries, the rare ones at their numbers, appended 1,000 per script call."""
    events = [rare.get(n) or common(n) for n in numbers]
    for i in range(0, len(events), 1000):
        await audit.append_many(events[i : i + 1000])


async def answers(audit: AuditLog, q: AuditQuery) -> tuple[AuditPage, int, int]:
    """The page through the indexes, which must be the scan's; the entries each read."""
    start = audit.entries_read
    indexed = await audit.query(q)
    via_index = audit.entries_read - start
    scanned = await audit.query(q, use_index=False)
    assert indexed == scanned, q
    return indexed, via_index, audit.entries_read - start - via_index


async def pages(audit: AuditLog, q: AuditQuery, use_index: bool = True) -> list[list[str]]:
    out: list[list[str]] = []
    while True:
        page = await audit.query(q, use_index=use_index)
        out.append([e.id for e in page.items])
        if page.next_cursor is None:
            return out
        q = dataclasses.replace(q, cursor=page.next_cursor)


def at(entry_id: str) -> datetime:
    """A `since` that starts at this entry's millisecond."""
    ms, _ = parse_id(entry_id) or (0, 0)
    return datetime.fromtimestamp(ms / 1000, UTC)


async def test_a_rare_actor_or_camera_is_read_from_the_index_not_the_stream(
    raw: Redis, settings: Settings, vault: CredentialVault
) -> None:
    audit = AuditLog(raw, settings.redis.prefix, vault)
    rare = {
        3: common(3, actor=RARE_ACTOR, network="town-hall"),
        10: common(10, target=RARE_CAMERA, network="police"),
        5_000: common(5_000, actor=RARE_ACTOR),
        10_000: common(10_000, target=RARE_CAMERA, network="governance"),
        12_345: common(12_345, actor=RARE_ACTOR, target=RARE_CAMERA, network="police"),
        19_990: common(19_990, actor=RARE_ACTOR, network="police"),
        19_999: common(19_999, target=RARE_CAMERA, network="police"),
    }
    await fill(audit, range(20_000), rare)
    assert await raw.xlen(audit.key) == 20_000

    page, via_index, via_scan = await answers(audit, AuditQuery(actor=RARE_ACTOR))
    assert [e.detail for e in page.items] == [f"entry {n}" for n in (19_990, 12_345, 5_000, 3)]
    assert page.next_cursor is None
    # Before: the scan read the whole stream. After: the four entries, nothing else.
    assert (via_index, via_scan) == (4, 20_000)

    page, via_index, via_scan = await answers(audit, AuditQuery(camera=RARE_CAMERA))
    assert [e.detail for e in page.items] == [f"entry {n}" for n in (19_999, 12_345, 10_000, 10)]
    assert (via_index, via_scan) == (4, 20_000)

    # Several filters: the smallest index is read, the others checked on its entries; a
    # reader of some networks sees only theirs.
    both = AuditQuery(actor=RARE_ACTOR, camera=RARE_CAMERA)
    page, via_index, _ = await answers(audit, both)
    assert [e.detail for e in page.items] == ["entry 12345"] and via_index == 4
    police = AuditQuery(camera=RARE_CAMERA, networks=frozenset({"police", "town-hall"}))
    page, via_index, _ = await answers(audit, police)
    assert [e.detail for e in page.items] == ["entry 19999", "entry 12345", "entry 10"]
    page, via_index, _ = await answers(audit, AuditQuery(network="town-hall"))
    assert [e.detail for e in page.items] == ["entry 3"] and via_index == 1
    # A reader of one network reads that network's index (half the trail here: as the scan).
    page, via_index, _ = await answers(
        audit, AuditQuery(networks=frozenset({"town-hall"}), limit=10)
    )
    assert [e.detail for e in page.items] == ["entry 3"] and via_index == 1
    page, via_index, _ = await answers(audit, AuditQuery(networks=frozenset()))
    assert page.items == [] and via_index == 0
    # Common values and no filter at all answer as the scan does.
    for q in (
        AuditQuery(actor="svc#00000003", limit=50),
        AuditQuery(camera="governance.cam-7", network="police", limit=30),
        AuditQuery(limit=20),
        AuditQuery(actor="nobody"),
    ):
        await answers(audit, q)

    # Paging by cursor and since: the scan's pages, each from a few entries.
    for q in (
        AuditQuery(actor=RARE_ACTOR, limit=1),
        AuditQuery(camera=RARE_CAMERA, limit=3),
        AuditQuery(actor=RARE_ACTOR, camera=RARE_CAMERA, limit=1),
    ):
        start = audit.entries_read
        walked = await pages(audit, q)
        assert audit.entries_read - start <= 8
        assert walked == await pages(audit, q, use_index=False)
    ids = [e.id for e in (await audit.query(AuditQuery(actor=RARE_ACTOR))).items]
    assert (await pages(audit, AuditQuery(actor=RARE_ACTOR, limit=1)))[:4] == [[i] for i in ids]
    for q in (
        AuditQuery(actor=RARE_ACTOR, since=at(ids[2])),
        AuditQuery(actor=RARE_ACTOR, since=at(ids[2]), cursor=ids[0], limit=1),
        AuditQuery(camera=RARE_CAMERA, since=at(ids[1]), limit=2),
        AuditQuery(camera=RARE_CAMERA, cursor=ids[1]),
    ):
        page, via_index, _ = await answers(audit, q)
        assert page.items and via_index <= 4
    page, _, _ = await answers(audit, AuditQuery(actor=RARE_ACTOR, since=at(ids[2])))
    assert [e.id for e in page.items] == ids[:3]


async def test_archived_entries_leave_the_index_and_empty_keys_go(
    raw: Redis, settings: Settings, vault: CredentialVault, tmp_path: Path
) -> None:
    config = AuditConfig(max_entries=1_000, segment_entries=500, archive_dir=tmp_path / "a")
    audit = AuditLog(raw, settings.redis.prefix, vault, config)
    rare = {n: common(n, actor=RARE_ACTOR) for n in (0, 1, 1_500, 2_999)}
    await fill(audit, range(3_000), rare)
    index = audit.index
    keys_before = await raw.scard(index.keys_key)
    early = index.key("camera", "governance.cam-0")  # entries 0-99 only
    assert await raw.zcard(early) == 100 and await raw.zcard(index.key("actor", RARE_ACTOR)) == 4

    async def members() -> int:
        return sum([await raw.zcard(k) for k in await raw.smembers(index.keys_key)])

    assert await members() == 3 * 3_000  # actor, camera (target), network: each entry in three

    assert await audit.archive() == 4  # 3,000 -> 1,000: entries 0-1,999 in files
    assert await raw.xlen(audit.key) == 1_000
    page, via_index, _ = await answers(audit, AuditQuery(actor=RARE_ACTOR))
    assert [e.detail for e in page.items] == ["entry 2999"] and via_index == 1
    assert await raw.zcard(index.key("actor", RARE_ACTOR)) == 1
    assert not await raw.exists(early)
    assert not await raw.sismember(index.keys_key, early)
    # Cameras 0-19 were in the archived entries only: 20 keys fewer.
    assert await raw.scard(index.keys_key) == keys_before - 20
    assert await members() == 3 * 1_000
    first = parse_id((await raw.xrange(audit.key, count=1))[0][0]) or (0, 0)
    for key in await raw.smembers(index.keys_key):  # nothing below the stream's first entry
        assert not await raw.zrangebylex(key, "-", f"({lex(first)}")
    # The index is no part of the chain.
    assert "intact" in await audit.verify(config.archive_dir)  # type: ignore[operator]


async def forget_the_indexes(raw: Redis, audit: AuditLog) -> None:
    """The trail as a gateway from before the indexes left it: no index key at all."""
    keys = await raw.smembers(audit.index.keys_key)
    await raw.delete(audit.index.meta_key, audit.index.keys_key, *keys)


async def test_entries_from_before_the_indexes_are_scanned_until_the_backfill(
    raw: Redis, settings: Settings, vault: CredentialVault
) -> None:
    audit = AuditLog(raw, settings.redis.prefix, vault)
    rare = {n: common(n, actor=RARE_ACTOR) for n in (5, 2_500)}
    await fill(audit, range(3_000), rare)
    await forget_the_indexes(raw, audit)
    old = [e.id for e in (await audit.query(AuditQuery(actor=RARE_ACTOR), use_index=False)).items]
    assert len(old) == 2
    # No coverage yet: the scan answers.
    assert await audit.index.coverage() is None
    page, via_index, via_scan = await answers(audit, AuditQuery(actor=RARE_ACTOR))
    assert [e.id for e in page.items] == old and via_index == via_scan == 3_000

    # The first append after the upgrade starts the coverage at the end of the stream: the
    # entries after it come from the index, the older ones are still scanned, none missing.
    await fill(audit, range(3_000, 4_000), {3_500: common(3_500, actor=RARE_ACTOR)})
    coverage = await audit.index.coverage()
    assert coverage is not None and coverage[0] == parse_id(
        (await raw.xrange(audit.key, "-", "+"))[2_999][0]
    )
    page, via_index, via_scan = await answers(audit, AuditQuery(actor=RARE_ACTOR))
    assert [e.detail for e in page.items] == ["entry 3500", "entry 2500", "entry 5"]
    assert (via_index, via_scan) == (1 + 3_000, 4_000)  # the new one, then the old part scanned
    page, via_index, _ = await answers(audit, AuditQuery(actor=RARE_ACTOR, limit=1))
    assert via_index == 1

    # The gateway's upkeep indexes the older entries, newest first, and moves the coverage's
    # start back to the beginning: then nothing is scanned.
    assert await audit.index_upkeep() == (0, 3_000)
    assert await audit.index.coverage() == ((0, 0), coverage[1])
    page, via_index, _ = await answers(audit, AuditQuery(actor=RARE_ACTOR))
    assert [e.detail for e in page.items] == ["entry 3500", "entry 2500", "entry 5"]
    assert via_index == 3
    assert await audit.index_upkeep() == (0, 0)  # nothing left to do
    metrics = Metrics()
    metrics.watch_audit(audit)
    text = generate_latest(metrics.registry).decode()
    assert f"camgw_audit_query_entries_read_total {float(audit.entries_read)}" in text


async def test_entries_the_registry_scripts_append_are_indexed_after_them(
    raw: Redis, settings: Settings, vault: CredentialVault
) -> None:
    """upsert.lua and delete.lua append a change's entry without indexing it: queries scan the
    stream after the coverage until the next batch append or the upkeep indexes them."""
    audit = AuditLog(raw, settings.redis.prefix, vault)
    registry = Registry(raw, settings, vault, audit)
    await fill(audit, range(1_000), {})
    cam = camera(1, settings)
    await registry.create(cam, audit=change("alice#00000001", "camera.create", cam))
    await registry.delete(cam.id, change("alice#00000001", "camera.delete", cam))
    last = parse_id((await raw.xrevrange(audit.key, count=1))[0][0])
    coverage = await audit.index.coverage()
    assert coverage is not None and coverage[1] < (last or (0, 0))
    q = AuditQuery(camera=cam.id)
    page, via_index, _ = await answers(audit, q)
    assert [e.action for e in page.items] == ["camera.delete", "camera.create"]
    assert via_index == 2  # the two entries after the coverage, scanned

    await audit.append(common(1_000))  # indexes what came before it
    assert (await audit.index.coverage() or ((0, 0), (0, 0)))[1] > (last or (0, 0))
    page, via_index, _ = await answers(audit, q)
    assert [e.action for e in page.items] == ["camera.delete", "camera.create"]
    assert via_index == 2

    cam2 = camera(2, settings)
    await registry.create(cam2, audit=change("alice#00000001", "camera.create", cam2))
    assert await audit.index_upkeep() == (1, 0)
    page, via_index, _ = await answers(audit, AuditQuery(actor="alice#00000001"))
    assert [e.target for e in page.items] == [cam2.id, cam.id, cam.id] and via_index == 3
