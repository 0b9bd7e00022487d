"""What discovery writes: identity, idempotence, admin fields kept, moves, failures, isolation.

The adapter here is a plain double plugged into the seam (adapters.base.NetworkAdapter): these
tests are about the gateway's side. Discovery against the simulator is in test_discovery_e2e.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace

from aiohttp.test_utils import TestClient

from adapters.base import (
    Discovered,
    Failure,
    FailureKind,
    Profile,
)
from gateway.app import create_app
from gateway.keys import DISCOVERY, REGISTRY, TOKENS
from gateway.models import Role
from gateway.settings import Settings
from gateway.vault import CredentialVault
from tests.doubles import DoubleAdapter

Factory = Callable[..., Awaitable[TestClient]]  # type: ignore[type-arg]

CAM = Discovered(
    network="governance",
    address="127.1.5.1",
    source="ws-discovery",
    endpoint_reference="urn:uuid:0000-1",
    device_uri="http://127.1.5.1:8000/onvif/device_service",
    name="Gate 7",
    vendor="Hik",
    model="DS-2CD",
    serial="SN1",
    mac="02:00:00:00:00:01",
    profiles=(Profile("main", "main", "H264", 1920, 1080, 25.0, "rtsp://127.1.5.1:8554/s"),),
    snapshot_uri="http://127.1.5.1:8000/snap.jpg",
)


async def _app(
    aiohttp_client: Factory,
    settings: Settings,
    vault: CredentialVault,
    adapters: dict[str, DoubleAdapter],
) -> tuple[TestClient, dict[str, str]]:  # type: ignore[type-arg]
    client = await aiohttp_client(create_app(settings, vault, lambda app: adapters))  # type: ignore[arg-type,return-value]
    secret, _ = await client.app[TOKENS].create("admin", Role.admin, ["*"], "tests")
    return client, {"Authorization": f"Bearer {secret}"}


async def _cameras(client: TestClient, auth: dict[str, str]) -> list[dict[str, object]]:  # type: ignore[type-arg]
    body = await (await client.get("/api/v1/cameras", headers=auth)).json()
    return body["items"]  # type: ignore[no-any-return]


async def _discover(client: TestClient, auth: dict[str, str], network: str) -> dict[str, object]:  # type: ignore[type-arg]
    resp = await client.post(f"/api/v1/networks/{network}/discover", headers=auth)
    assert resp.status == 202, await resp.text()
    job = await resp.json()
    for _ in range(200):
        job = await (await client.get(f"/api/v1/jobs/{job['id']}", headers=auth)).json()
        if job["state"] != "running":
            return job  # type: ignore[no-any-return]
        await asyncio.sleep(0.02)
    raise AssertionError("job did not finish")


async def test_rediscovery_is_idempotent_and_keeps_admin_edits(
    aiohttp_client: Factory, settings: Settings, vault: CredentialVault
) -> None:
    adapter = DoubleAdapter("governance", [CAM])
    client, auth = await _app(aiohttp_client, settings, vault, {"governance": adapter})
    job = await _discover(client, auth, "governance")
    assert job["state"] == "done" and job["progress"]["enriched"] == 1
    [cam] = await _cameras(client, auth)
    assert cam["category"] == "unclassified" and cam["status"] == "online"
    assert cam["name"] == "Gate 7" and cam["source"] == "discovered"

    patch = {"name": "North gate", "category": "sharp-eyes", "tags": ["checked"]}
    assert (
        await client.patch(f"/api/v1/cameras/{cam['id']}", json=patch, headers=auth)
    ).status == 200
    adapter.found = [replace(CAM, name="Camera-01", firmware="V6", vendor="Hikvision")]
    await _discover(client, auth, "governance")
    [again] = await _cameras(client, auth)
    assert again["id"] == cam["id"]
    assert (again["name"], again["category"], again["tags"]) == (
        "North gate",
        "sharp-eyes",
        ["checked"],
    )
    assert (again["vendor"], again["firmware"]) == ("Hikvision", "V6")
    # Classifying it filled who answers for it from the taxonomy (the inventory table).
    assert (again["department"], again["carrier"]) == ("Political-Legal Committee", "China Telecom")


async def test_address_change_updates_the_same_record(
    aiohttp_client: Factory, settings: Settings, vault: CredentialVault
) -> None:
    adapter = DoubleAdapter("governance", [CAM])
    client, auth = await _app(aiohttp_client, settings, vault, {"governance": adapter})
    await _discover(client, auth, "governance")
    moved = replace(
        CAM,
        address="127.1.5.99",
        device_uri="http://127.1.5.99:8000/onvif/device_service",
        profiles=(),
        snapshot_uri=None,
    )
    adapter.found = [moved]
    await _discover(client, auth, "governance")
    [cam] = await _cameras(client, auth)
    assert cam["address"] == "127.1.5.99"
    # The old address is free again: a new camera may take it.
    adapter.found = [
        replace(CAM, endpoint_reference="urn:uuid:other", serial="SN2", mac="02:00:00:00:00:02")
    ]
    await _discover(client, auth, "governance")
    assert sorted(c["address"] for c in await _cameras(client, auth)) == ["127.1.5.1", "127.1.5.99"]
    assert await client.app[REGISTRY].integrity_problems() == []


async def test_discovery_finds_registered_camera_by_address(
    aiohttp_client: Factory, settings: Settings, vault: CredentialVault
) -> None:
    adapter = DoubleAdapter("governance", [CAM])
    client, auth = await _app(aiohttp_client, settings, vault, {"governance": adapter})
    body = {
        "id": "governance.gate-7",
        "network": "governance",
        "name": "Gate 7 (registered)",
        "category": "smart-security",
        "address": "127.1.5.1",
    }
    assert (await client.post("/api/v1/cameras", json=body, headers=auth)).status == 201
    await _discover(client, auth, "governance")
    [cam] = await _cameras(client, auth)
    assert cam["id"] == "governance.gate-7" and cam["source"] == "registered"
    assert cam["name"] == "Gate 7 (registered)" and cam["vendor"] == "Hik"
    assert cam["onvif"]["endpoint_reference"] == "urn:uuid:0000-1"


async def test_a_broken_network_leaves_the_others_alone(
    aiohttp_client: Factory, settings: Settings, vault: CredentialVault
) -> None:
    adapters = {
        "governance": DoubleAdapter("governance", [CAM]),
        "police": DoubleAdapter("police", [], fail=True),
        "gov-affairs": DoubleAdapter("gov-affairs", [], hang=True),
    }
    client, auth = await _app(aiohttp_client, settings, vault, adapters)
    hung = await client.post("/api/v1/networks/gov-affairs/discover", headers=auth)
    police = await _discover(client, auth, "police")
    gov = await _discover(client, auth, "governance")
    assert police["state"] == "failed" and "crashed" in police["error"]
    assert gov["state"] == "done" and len(await _cameras(client, auth)) == 1
    assert (await hung.json())["state"] == "running"
    nets = {n["id"]: n for n in await (await client.get("/api/v1/networks", headers=auth)).json()}
    assert nets["gov-affairs"]["adapter"]["state"] == "running"
    assert nets["police"]["adapter"]["last_job"]["state"] == "failed"
    assert (await client.get("/api/v1/summary", headers=auth)).status == 200


async def test_failures_are_attributed_and_mark_known_cameras(
    aiohttp_client: Factory, settings: Settings, vault: CredentialVault
) -> None:
    adapter = DoubleAdapter("governance", [CAM])
    client, auth = await _app(aiohttp_client, settings, vault, {"governance": adapter})
    await _discover(client, auth, "governance")
    adapter.found = []
    adapter.failures = [
        Failure(
            "governance",
            "127.1.5.1",
            FailureKind.auth,
            "GetCapabilities: credentials refused",
            "urn:uuid:0000-1",
        ),
        Failure("governance", "127.1.9.9", FailureKind.timeout, "no complete answer within 20 s"),
    ]
    job = await _discover(client, auth, "governance")
    assert {(f["address"], f["step"]) for f in job["failures"]} == {
        ("127.1.5.1", "auth"),
        ("127.1.9.9", "timeout"),
    }
    [cam] = await _cameras(client, auth)
    assert cam["status"] == "degraded" and "credentials refused" in cam["last_error"]


async def test_health_hysteresis_and_vanished_cameras_stay(
    aiohttp_client: Factory, settings: Settings, vault: CredentialVault
) -> None:
    adapter = DoubleAdapter("governance", [CAM])
    client, auth = await _app(aiohttp_client, settings, vault, {"governance": adapter})
    await _discover(client, auth, "governance")
    service = client.app[DISCOVERY]

    async def status() -> str:
        [cam] = await _cameras(client, auth)
        return str(cam["status"])

    adapter.reachable["127.1.5.1"] = False
    await service.health_round("governance")
    assert await status() == "online"  # one lost probe is not an outage
    await service.health_round("governance")
    assert await status() == "offline"
    adapter.reachable["127.1.5.1"] = True
    await service.health_round("governance")
    assert await status() == "offline"  # one answer is not a recovery
    await service.health_round("governance")
    assert await status() == "online"
    adapter.reachable["127.1.5.1"] = False
    for _ in range(5):
        await service.health_round("governance")
    assert await status() == "offline"  # vanished: offline, never deleted
