"""Networks kept apart (issue 7): ids scoped by network, discovery never merging across networks,
no oracle for another network's ids, hidden and missing cameras alike in time as in body,
versions per grant, and an allow-list of shared fields.

A governance-only admin is the attacker throughout: the town's document is about keeping the
police network's data with the police.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from ipaddress import ip_address
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient
from pydantic import ValidationError

from adapters.base import Discovered, Profile
from gateway.app import create_app
from gateway.errors import Conflict, Invalid
from gateway.keys import CATALOG, DISCOVERY, REGISTRY, TOKENS
from gateway.models import Camera, Role
from gateway.records import camera_from_discovered, discovered_id
from gateway.settings import Settings, SharingPolicy
from gateway.vault import CredentialVault
from tests.conftest import Headers, TokenFactory

Client = TestClient  # type: ignore[type-arg]
Factory = Callable[..., Awaitable[TestClient]]  # type: ignore[type-arg]


def camera(cam_id: str, network: str, address: str, **over: Any) -> dict[str, Any]:
    category = {"governance": "sharp-eyes", "police": "public-security"}[network]
    return {
        "id": cam_id,
        "network": network,
        "name": f"camera {cam_id}",
        "category": category,
        "address": address,
    } | over


@pytest.fixture
async def admins(client: Client, token: TokenFactory) -> tuple[Headers, Headers]:
    """(root admin of every network, an admin granted only governance)."""
    root = await token("admin", ["*"], name="root")
    for body in (
        camera("police.gate-1", "police", "127.2.0.1"),
        camera("governance.gate-1", "governance", "127.1.0.1"),
    ):
        resp = await client.post("/api/v1/cameras", json=body, headers=root)
        assert resp.status == 201, await resp.text()
    return root, await token("admin", ["governance"], name="gov-admin")


# -- ids scoped by network: no oracle ---------------------------------------------------------


async def test_an_admin_learns_nothing_about_another_networks_ids(
    client: Client, admins: tuple[Headers, Headers]
) -> None:
    """Before: a police id answered 409 "already exists" when it existed, 201 otherwise."""
    _, gov = admins
    answers = []
    for cam_id in ("police.gate-1", "police.gate-2"):  # one exists, one does not
        body = camera(cam_id, "governance", "127.1.0.9")
        resp = await client.post("/api/v1/cameras", json=body, headers=gov)
        answers.append((resp.status, (await resp.json())["errors"]))
    scoped = "must begin with 'governance.' (camera ids are scoped by network)"
    assert answers[0] == answers[1] == (422, [{"field": "id", "message": scoped}])

    rows = [camera(f"police.gate-{n}", "governance", f"127.1.1.{n}") for n in (1, 2, 3)]
    resp = await client.post("/api/v1/cameras/import", json=rows, headers=gov)
    result = await resp.json()
    assert (result["created"], result["failed"]) == (0, 3)
    assert [(e["field"], e["reason"]) for e in result["errors"]] == [
        ("id", f"id: 'police.gate-{n}' {scoped}")
        for n in (1, 2, 3)  # the existing one alike
    ]


async def test_a_records_network_never_changes(
    client: Client, admins: tuple[Headers, Headers]
) -> None:
    root, _ = admins
    resp = await client.patch(
        "/api/v1/cameras/governance.gate-1", json={"network": "police"}, headers=root
    )
    assert resp.status == 422 and (await resp.json())["field"] == "network"
    registry = client.app[REGISTRY]
    current = await registry.get("governance.gate-1")
    assert current is not None
    moved = current.model_copy(update={"network": "police", "category": "traffic"})
    with pytest.raises(Invalid, match=r"must begin with 'police\.'"):
        await registry.replace(moved, current.rev)
    # Below the checks, the write script itself refuses to move a record between networks:
    # a governance record that somehow holds a police-scoped id stays governance's.
    trap = current.model_copy(update={"id": "police.trap"})
    await registry.redis.set(registry.keys.cam("police.trap"), trap.model_dump_json())
    as_police = trap.model_copy(
        update={"network": "police", "category": "traffic", "address": ip_address("127.2.0.9")}
    )
    with pytest.raises(Conflict, match="is on another network"):
        await registry.replace(as_police, trap.rev)
    stored = await registry.get("police.trap")
    assert stored is not None and stored.network == "governance"


async def test_every_write_path_passes_the_config_checks(client: Client) -> None:
    """Health rounds and snapshot status updates write records too; none may store what the
    API would refuse."""
    registry = client.app[REGISTRY]
    now = datetime.now(UTC)
    bad = Camera(
        id="governance.x",
        network="governance",
        name="x",
        category="sharp-eyes",
        address="127.1.0.5",  # type: ignore[arg-type]
        snapshot_uri="http://127.1.0.6/snap.jpg",  # another host
        source="registered",  # type: ignore[arg-type]
        created_at=now,
        updated_at=now,
    )
    with pytest.raises(Exception, match="must name the camera's own address"):
        await registry.create(bad)
    assert await registry.get("governance.x") is None


# -- discovery never merges across networks ---------------------------------------------------


async def test_discovery_never_merges_into_another_networks_record(
    client: Client, admins: tuple[Headers, Headers], token: TokenFactory
) -> None:
    """Before: a governance admin pre-registered the id police discovery would give a police
    camera, and police discovery merged the police camera's details into it."""
    police_cam = Discovered(
        network="police",
        address="127.2.0.50",
        source="ws-discovery",
        endpoint_reference="urn:uuid:police-cam-50",
        device_uri="http://127.2.0.50:8000/onvif/device_service",
        vendor="Hik",
        serial="SN-P50",
        profiles=(Profile("main", stream_uri="rtsp://127.2.0.50:554/s"),),
    )
    registry = client.app[REGISTRY]
    future_id = discovered_id(police_cam, registry.id_key)
    assert future_id.startswith("police.")  # not even registrable on governance, but ...
    # ... say it got there anyway (someone with Redis access wrote it):
    trap = camera_from_discovered(
        Discovered(network="governance", address="127.1.0.50", source="static"),
        client.app[DISCOVERY].settings,
        datetime.now(UTC),
        future_id,
    ).model_copy(update={"network": "governance", "category": "sharp-eyes"})
    await registry.redis.set(registry.keys.cam(future_id), trap.model_dump_json())
    await registry.redis.sadd(registry.keys.all, future_id)

    failure = await client.app[DISCOVERY].apply(police_cam)
    assert failure is not None
    assert (failure.kind, failure.reason) == (
        "store",
        f"camera {future_id} is on another network; discovery of network police does not "
        "merge into it",
    )
    stored = await registry.get(future_id)
    assert stored is not None and stored.network == "governance"
    assert stored.serial is None and stored.vendor is None  # nothing of the police camera


# -- hidden and missing answer alike, in time too (finding 7) ---------------------------------


async def _commands_during(
    redis_url: str, prefix: str, call: Callable[[], Awaitable[Any]]
) -> list[str]:
    """The Redis commands (names) that touched this test's keys while `call` ran."""
    seen: list[str] = []
    monitor_client = aioredis.from_url(redis_url)
    try:
        async with monitor_client.monitor() as monitor:
            stop = asyncio.Event()

            async def collect() -> None:
                async for cmd in monitor.listen():
                    text = str(cmd.get("command", ""))
                    if prefix in text:
                        seen.append(text.split(" ", 1)[0].upper())
                    if "camgw-monitor-stop" in text:
                        stop.set()
                        return

            task = asyncio.create_task(collect())
            await asyncio.sleep(0.05)
            await call()
            marker = aioredis.from_url(redis_url)
            await marker.get("camgw-monitor-stop")
            await marker.aclose()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 2)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        await monitor_client.aclose()
    return seen


@pytest.mark.parametrize("path", ["/api/v1/cameras/{id}", "/api/v1/cameras/{id}/snapshot"])
async def test_hidden_and_missing_cameras_do_the_same_work(
    client: Client, admins: tuple[Headers, Headers], token: TokenFactory, settings: Settings,
    path: str,
) -> None:  # fmt: skip
    """Before: a hidden camera's 404 waited for an audit write that a missing one did not,
    which a stopwatch could tell apart. Now both do the same Redis work (and both are audited,
    the hidden one under its network)."""
    viewer = await token("operator", ["governance"], name="prober")
    await client.get("/api/v1/cameras", headers=viewer)  # warm the token and catalog caches

    async def probe(cam_id: str) -> tuple[int, dict[str, Any]]:
        resp = await client.get(path.format(id=cam_id), headers=viewer)
        body = await resp.json()
        return resp.status, {k: str(v).replace(cam_id, "X") for k, v in body.items()}

    results: dict[str, tuple[int, dict[str, Any]]] = {}

    async def hidden() -> None:
        results["hidden"] = await probe("police.gate-1")

    async def missing() -> None:
        results["missing"] = await probe("police.gate-9")

    await hidden()  # once each first: lazily created state (caches, the audit chain's head)
    await missing()
    prefix = settings.redis.prefix
    work_hidden = await _commands_during(settings.redis.url, prefix, hidden)
    work_missing = await _commands_during(settings.redis.url, prefix, missing)
    assert results["hidden"] == results["missing"]
    assert results["hidden"][0] == 404
    assert work_hidden == work_missing, (work_hidden, work_missing)
    assert work_hidden  # the refusal is audited (a write), for both


# -- versions per grant (finding 8) -----------------------------------------------------------


async def test_a_viewers_version_and_etag_move_only_with_its_networks(
    client: Client, admins: tuple[Headers, Headers], token: TokenFactory
) -> None:
    root, _ = admins
    viewer = await token("viewer", ["governance"])

    async def seen() -> tuple[int, str, int, str]:
        listed = await client.get("/api/v1/cameras", headers=viewer)
        summary = await client.get("/api/v1/summary", headers=viewer)
        metrics = await (await client.get("/metrics", headers=viewer)).text()
        versions = [ln for ln in metrics.splitlines() if ln.startswith("camgw_registry_version")]
        return (
            (await listed.json())["version"],
            listed.headers["ETag"],
            (await summary.json())["version"],
            "\n".join(versions),
        )

    before = await seen()
    resp = await client.post(
        "/api/v1/cameras", json=camera("police.gate-2", "police", "127.2.0.2"), headers=root
    )
    assert resp.status == 201
    await client.app[CATALOG].current()
    assert await seen() == before  # a police change tells a governance viewer nothing
    assert 'network="police"' not in before[3] and 'network="governance"' in before[3]
    resp = await client.post(
        "/api/v1/cameras",
        json=camera("governance.gate-2", "governance", "127.1.0.2"),
        headers=root,
    )
    assert resp.status == 201
    after = await seen()
    assert after[0] == before[0] + 1 and after[1] != before[1] and after[2] == before[2] + 1


# -- shared fields: an allow-list checked at load (finding 9) ----------------------------------


def test_a_typo_in_the_shared_fields_is_a_config_error() -> None:
    with pytest.raises(ValidationError, match="unknown record field 'adress'"):
        SharingPolicy(share=("name", "adress"))
    assert SharingPolicy(share=("name",)).share == ("id", "network", "name")


async def test_fields_a_network_does_not_list_are_not_shared(
    aiohttp_client: Factory, settings: Settings, vault: CredentialVault, token: TokenFactory
) -> None:
    """Before: `redact` was a deny-list, so a field added to the record later was shared."""
    networks = [
        n.model_copy(update={"sharing": n.sharing.model_copy(update={"share": ("id", "network",
                                                                              "name")})})
        if n.id == "police" else n
        for n in settings.networks
    ]  # fmt: skip
    client = await aiohttp_client(create_app(settings.model_copy(update={"networks": networks}),
                                             vault))  # fmt: skip
    secret, _ = await client.app[TOKENS].create("root", Role.admin, ["*"], "tests")
    root = {"Authorization": f"Bearer {secret}"}
    body = camera(
        "police.gate-3", "police", "127.2.0.3", tags=["x"], department="Police", carrier="CT"
    )
    assert (await client.post("/api/v1/cameras", json=body, headers=root)).status == 201
    secret, _ = await client.app[TOKENS].create("v", Role.viewer, ["police"], "tests")
    viewer = {"Authorization": f"Bearer {secret}"}
    got = await (await client.get("/api/v1/cameras/police.gate-3", headers=viewer)).json()
    assert got == {"id": "police.gate-3", "network": "police", "name": "camera police.gate-3"}
    listed = await (await client.get("/api/v1/cameras", headers=viewer)).json()
    assert listed["items"] == [got]
    # Nor can a filter or a count on an unshared field tell what it holds.
    for query in ("?department=Police", "?carrier=CT", "?status=unknown",
                  "?category=public-security"):  # fmt: skip
        resp = await client.get(f"/api/v1/cameras{query}", headers=viewer)
        assert (await resp.json())["total"] == 0, query
    summary = await (await client.get("/api/v1/summary", headers=viewer)).json()
    assert summary["by_department"] == {"": 1}


# -- refusals filed under the network they concern (finding 6) --------------------------------


async def test_refusals_are_filed_under_the_network_they_concern(
    client: Client, admins: tuple[Headers, Headers], token: TokenFactory
) -> None:
    """Before: role refusals, refused writes and discovery 404s were filed under no network,
    so the police's own auditor never saw attempts against the police network."""
    root, gov = admins
    viewer = await token("viewer", ["*"], name="nosy-viewer")
    police_body = camera("police.gate-7", "police", "127.2.0.7")
    attempts: list[tuple[str, str, dict[str, Any], Headers, int]] = [
        ("GET", "/api/v1/cameras/police.gate-1/snapshot", {}, viewer, 403),  # role
        ("POST", "/api/v1/cameras", {"json": police_body}, viewer, 403),  # role, body unread
        ("DELETE", "/api/v1/cameras/police.gate-1", {}, viewer, 403),  # role
        ("POST", "/api/v1/cameras", {"json": police_body}, gov, 403),  # grant
        ("POST", "/api/v1/cameras", {"json": police_body | {"category": "drone"}}, root, 422),
        ("POST", "/api/v1/cameras", {"json": police_body | {"id": "police.gate-1"}}, root, 409),
        ("PATCH", "/api/v1/cameras/police.gate-1", {"json": {"name": ""}}, root, 422),
        ("PATCH", "/api/v1/cameras/police.gate-1", {"json": {"network": "governance"}}, root, 422),
        ("POST", "/api/v1/networks/police/discover", {}, gov, 404),  # not granted
        ("DELETE", "/api/v1/cameras/police.gate-1", {}, gov, 404),  # hidden
    ]
    for method, path, kwargs, headers, status in attempts:
        rid = f"scope-{len(path)}-{method}-{status}-{id(headers)}"
        resp = await client.request(method, path, headers=headers | {"X-Request-Id": rid}, **kwargs)
        assert resp.status == status, (method, path, await resp.text())

    police_auditor = await token("auditor", ["police"], name="police-auditor")
    resp = await client.get("/api/v1/audit?limit=1000", headers=police_auditor)
    seen = Counter(
        (e["action"], e["status"])
        for e in (await resp.json())["items"]
        if e["request_id"].startswith("scope-")
    )
    assert seen == {
        ("camera.snapshot", 403): 1,
        ("camera.create", 403): 2,
        ("camera.delete", 403): 2,  # the role refusal, and the hidden camera (a 404 outside)
        ("camera.create", 422): 1,
        ("camera.create", 409): 1,
        ("camera.update", 422): 2,
        ("discovery.start", 404): 1,
    }
    governance_auditor = await token("auditor", ["governance"], name="gov-auditor")
    resp = await client.get("/api/v1/audit?limit=1000", headers=governance_auditor)
    leaked = [e for e in (await resp.json())["items"] if e["request_id"].startswith("scope-")]
    assert leaked == []  # a body naming another network does not file a police camera's refusal


async def test_an_import_is_audited_under_each_network_it_touches(
    client: Client, admins: tuple[Headers, Headers], token: TokenFactory
) -> None:
    root, _ = admins
    rows = [
        camera("governance.imp-1", "governance", "127.1.3.1"),
        camera("governance.imp-2", "governance", "127.1.3.2"),
        camera("police.imp-1", "police", "127.2.3.1"),
        camera("police.imp-2", "police", "10.0.0.1"),  # outside the police ranges
    ]
    resp = await client.post(
        "/api/v1/cameras/import", json=rows, headers=root | {"X-Request-Id": "imp-mixed"}
    )
    assert (await resp.json())["failed"] == 1
    for network, detail in (
        ("police", "created 1, failed 1"),
        ("governance", "created 2, failed 0"),
    ):
        auditor = await token("auditor", [network], name=f"{network}-imp-auditor")
        items = (await (await client.get("/api/v1/audit", headers=auditor)).json())["items"]
        mine = [
            e for e in items if e["request_id"] == "imp-mixed" and e["action"] == "camera.import"
        ]
        assert [(e["action"], e["network"], e["detail"]) for e in mine] == [
            ("camera.import", network, detail)
        ], mine
