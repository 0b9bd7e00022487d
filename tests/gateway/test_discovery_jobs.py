"""Discovery jobs under load: what a job reports and stores when Redis answers slowly.

Found by bench/discovery.py (3,308 simulated cameras): with the event loop busy, Redis commands
wait seconds for a pooled connection, so (1) a progress snapshot of a job could land after the
finished job and leave it "running" in Redis for a week, and (2) unbounded registry writes held
every pooled connection until others timed out, failing cameras with "registry unreachable".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest
from aiohttp.test_utils import TestClient

from adapters.base import (
    Discovered,
    Failure,
    Profile,
)
from gateway import discovery
from gateway.app import create_app
from gateway.discovery import DiscoveryService
from gateway.keys import TOKENS
from gateway.models import DiscoveryJob, Role
from gateway.settings import Settings
from gateway.vault import CredentialVault
from tests.doubles import DoubleAdapter

Factory = Callable[..., Awaitable[TestClient]]  # type: ignore[type-arg]


def _camera(n: int) -> Discovered:
    address = f"127.1.6.{n}"
    return Discovered(
        network="governance",
        address=address,
        source="ws-discovery",
        endpoint_reference=f"urn:uuid:jobs-{n}",
        device_uri=f"http://{address}:8000/onvif/device_service",
        serial=f"SN{n}",
        mac=f"02:00:00:00:01:{n:02x}",
        profiles=(Profile("main", "main", "H264", 1920, 1080, 25.0, f"rtsp://{address}:8554/s"),),
    )


async def _app(
    aiohttp_client: Factory, settings: Settings, vault: CredentialVault, adapter: DoubleAdapter
) -> tuple[TestClient, dict[str, str]]:  # type: ignore[type-arg]
    app = create_app(settings, vault, lambda app: {"governance": adapter})  # type: ignore[dict-item]
    client = await aiohttp_client(app)
    secret, _ = await client.app[TOKENS].create("admin", Role.admin, ["*"], "tests")
    return client, {"Authorization": f"Bearer {secret}"}


async def _finish(client: TestClient, auth: dict[str, str]) -> str:  # type: ignore[type-arg]
    resp = await client.post("/api/v1/networks/governance/discover", headers=auth)
    assert resp.status == 202, await resp.text()
    job_id: str = (await resp.json())["id"]
    for _ in range(500):
        job = await (await client.get(f"/api/v1/jobs/{job_id}", headers=auth)).json()
        if job["state"] != "running":
            return job_id
        await asyncio.sleep(0.01)
    raise AssertionError("job did not finish")


async def test_a_late_progress_save_never_overwrites_the_finished_job(
    aiohttp_client: Factory,
    settings: Settings,
    vault: CredentialVault,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_save = DiscoveryService._save

    async def slow_progress_save(self: DiscoveryService, job: DiscoveryJob) -> None:
        snapshot = job.model_copy(deep=True)  # taken now, written after a wait for Redis
        if snapshot.state == "running" and snapshot.progress.enriched:
            await asyncio.sleep(0.3)
        await real_save(self, snapshot)

    monkeypatch.setattr(DiscoveryService, "_save", slow_progress_save)
    client, auth = await _app(
        aiohttp_client, settings, vault, DoubleAdapter("governance", [_camera(1)])
    )
    job_id = await _finish(client, auth)
    await asyncio.sleep(0.5)  # any late snapshot has landed by now
    job = await (await client.get(f"/api/v1/jobs/{job_id}", headers=auth)).json()
    assert job["state"] == "done" and job["progress"]["enriched"] == 1


async def test_registry_writes_are_bounded_and_all_land(
    aiohttp_client: Factory,
    settings: Settings,
    vault: CredentialVault,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_apply = DiscoveryService.apply
    in_flight = peak = 0

    async def counting_apply(self: DiscoveryService, d: Discovered) -> Failure | None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            await asyncio.sleep(0.01)  # a slow Redis
            return await real_apply(self, d)
        finally:
            in_flight -= 1

    monkeypatch.setattr(DiscoveryService, "apply", counting_apply)
    found = [replace(_camera(n), name=f"Cam {n}") for n in range(1, 121)]
    client, auth = await _app(aiohttp_client, settings, vault, DoubleAdapter("governance", found))
    job_id = await _finish(client, auth)
    job = await (await client.get(f"/api/v1/jobs/{job_id}", headers=auth)).json()
    assert job["state"] == "done" and job["progress"] == {
        "found": 120,
        "enriched": 120,
        "failed": 0,
        "ignored": 0,
        "ignored_by_reason": {},
    }
    assert peak == discovery._WRITE_CONCURRENCY
    body = await (await client.get("/api/v1/cameras?limit=1000", headers=auth)).json()
    assert len(body["items"]) == 120
