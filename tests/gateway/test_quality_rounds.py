"""Scheduled quality diagnosis end to end: a real redis-server, the gateway app, simulated
cameras on loopback showing streets. A fault injected into a camera's picture shows on its
record (suspect, then faulty after the confirming round), in the audit trail as a picture read,
and in the Prometheus counts; switched off, the record is clean again. A network that opts out
is never diagnosed; the schedule follows an injected clock."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from adapters.config import CredentialRef
from adapters.simulator.devices import ONVIF_PORT, Picture, Quirks, SimDevice
from adapters.simulator.faults import Fault, PictureFault
from adapters.simulator.fleet import FleetCamera
from adapters.simulator.scene import Period
from adapters.simulator.server import Simulator
from gateway.app import create_app
from gateway.keys import AUDIT, CATALOG, DISCOVERY, REDIS, REGISTRY, SNAPSHOTS, TOKENS
from gateway.models import Role
from gateway.quality import QUALITY, QualityCounters, QualityService
from gateway.settings import Settings
from gateway.vault import CredentialVault

PASSWORD = "quality-pass"
ADDRESSES = {"governance.quality-a": "127.1.215.10", "governance.quality-b": "127.1.215.11"}
Factory = Callable[..., Awaitable[TestClient]]  # type: ignore[type-arg]
Headers = dict[str, str]


@pytest.fixture(scope="module")
async def sim() -> AsyncIterator[Simulator]:
    devices = [
        SimDevice(
            camera=FleetCamera(cid, "governance", "sharp-eyes", cid, address, 31.08, 121.3, "Rd"),
            password=PASSWORD,
            quirks=Quirks(picture=Picture(Period.day)),
        )
        for cid, address in ADDRESSES.items()
    ]
    async with Simulator(devices, answer_delay_s=0.0, serve_rtsp=False) as simulator:
        yield simulator


def _settings(
    settings: Settings, tmp_path: Path, diagnosed: bool = True, nights: bool = False
) -> Settings:
    secret = tmp_path / "governance.pw"
    secret.write_text(PASSWORD + "\n")
    networks = []
    for net in settings.networks:
        update: dict[str, Any] = {
            "discovery": net.discovery.model_copy(
                update={"wsdiscovery_targets": (), "health_interval_s": 0, "schedule_s": 0}
            ),
            # the police opt out; the others are diagnosed every minute
            # (night from 00:00 to 00:00: never, so the test means the same at any hour)
            "quality": net.quality.model_copy(
                update={
                    "enabled": diagnosed and net.id != "police",
                    "interval_s": 60.0,
                    "night_start": dt.time(19, 0) if nights else dt.time(0, 0),
                    "night_end": dt.time(6, 0) if nights else dt.time(0, 0),
                }
            ),
        }
        if net.id == "governance":
            update |= {
                "cidrs": (ipaddress.ip_network("127.1.215.0/24"),),
                "credentials": CredentialRef(username="admin", password_file=secret),
                # a fresh picture every round (a cached one would be the same picture again)
                "sharing": net.sharing.model_copy(
                    update={"cache_ttl_s": 0.0, "rate_limit_per_minute": 10_000}
                ),
            }
        networks.append(net.model_copy(update=update).model_dump())
    data = settings.model_dump()
    data["networks"] = networks
    data["snapshots"] = data["snapshots"] | {"min_interval_s": 0.0, "timeout_s": 5.0}
    return Settings.model_validate(data)


@pytest.fixture
async def gateway(
    request: pytest.FixtureRequest,
    aiohttp_client: Factory,
    settings: Settings,
    vault: CredentialVault,
    tmp_path: Path,
) -> tuple[TestClient, Headers]:  # type: ignore[type-arg]
    """The gateway with two cameras registered; its own rounds on unless the test's
    parameter says False (a test that schedules rounds with its own clock)."""
    own_rounds = getattr(request, "param", True)
    config = _settings(settings, tmp_path, diagnosed=own_rounds)
    client = await aiohttp_client(create_app(config, vault))
    secret, _ = await client.app[TOKENS].create("q-admin", Role.admin, ["*"], "tests")
    admin = {"Authorization": f"Bearer {secret}"}
    for cam_id, address in ADDRESSES.items():
        body = {
            "id": cam_id,
            "network": "governance",
            "name": cam_id,
            "category": "sharp-eyes",
            "address": address,
            "snapshot_uri": f"http://{address}:{ONVIF_PORT}/onvif/snapshot.jpg",
            "credentials": {"username": "admin", "password": PASSWORD},
        }
        resp = await client.post("/api/v1/cameras", json=body, headers=admin)
        assert resp.status == 201, await resp.text()
    return client, admin


def _service(
    app: Any, tmp_path: Path, clock: Callable[[], float], nights: bool = False
) -> QualityService:
    """A quality service of the app's gateway with its own clock (the app's own rounds are
    off in these tests)."""
    return QualityService(
        _settings(app[QUALITY].settings, tmp_path, nights=nights),
        app[REDIS],
        app[REGISTRY],
        app[CATALOG],
        app[SNAPSHOTS],
        app[AUDIT],
        app[DISCOVERY].leases,
        QualityCounters(CollectorRegistry()),
        clock=clock,
    )


async def _image(client: TestClient, admin: Headers, cam_id: str) -> dict[str, Any] | None:  # type: ignore[type-arg]
    resp = await client.get(f"/api/v1/cameras/{cam_id}", headers=admin)
    assert resp.status == 200
    image: dict[str, Any] | None = (await resp.json())["image"]
    return image


def _summary(image: dict[str, Any] | None) -> tuple[str, list[str], int] | None:
    if image is None:
        return None
    return image["status"], [f["check"] for f in image["failing"]], image["failing_rounds"]


async def test_an_injected_fault_shows_on_the_record_then_clears(
    sim: Simulator,
    gateway: tuple[TestClient, Headers],  # type: ignore[type-arg]
) -> None:
    client, admin = gateway
    service = client.app[QUALITY]
    a, b = sim.device("governance.quality-a"), sim.device("governance.quality-b")
    # the admin accepts camera a's picture today as its reference; an operator may not
    operator, _ = await client.app[TOKENS].create("q-op", Role.operator, ["*"], "tests")
    path = "/api/v1/cameras/governance.quality-a/reference"
    refused = await client.put(path, headers={"Authorization": f"Bearer {operator}"})
    assert refused.status == 403
    assert (await refused.json())["detail"] == "role operator may not change cameras"
    resp = await client.put(path, headers=admin)
    assert resp.status == 200, await resp.text()
    accepted = await resp.json()
    assert (accepted["id"], accepted["period"], accepted["width"], accepted["height"]) == (
        "governance.quality-a",
        "day",
        1280,
        720,
    )

    assert await service.run_round("governance") == 2
    first = await _image(client, admin, "governance.quality-a")
    assert _summary(first) == ("ok", [], 0)
    assert first is not None and first["reference"] is True
    assert (await _image(client, admin, "governance.quality-b") or {})["reference"] is False

    a.quirks.picture = Picture(Period.day, PictureFault(Fault.blur, 0.65))
    await service.run_round("governance")
    assert _summary(await _image(client, admin, "governance.quality-a")) == ("suspect", ["blur"], 1)
    await service.run_round("governance")
    faulty = await _image(client, admin, "governance.quality-a")
    assert _summary(faulty) == ("faulty", ["blur"], 2)
    assert faulty is not None and faulty["failing"][0]["measures"]["sharpness"] < 0.45
    assert _summary(await _image(client, admin, "governance.quality-b")) == ("ok", [], 0)

    # audited as picture reads, by the round as its own caller, with the verdict
    auditor, _ = await client.app[TOKENS].create("q-auditor", Role.auditor, ["*"], "tests")
    resp = await client.get(
        "/api/v1/audit",
        params={"camera": "governance.quality-a", "limit": "100"},
        headers={"Authorization": f"Bearer {auditor}"},
    )
    assert resp.status == 200
    reads = [e for e in (await resp.json())["items"] if e["action"] == "camera.snapshot"]
    assert len(reads) == 3
    newest = reads[0]
    assert (newest["actor"], newest["role"], newest["outcome"]) == (
        "quality#quality-governance",
        "system",
        "ok",
    )
    assert (newest["extra"]["reason"], newest["extra"]["image"], newest["extra"]["failing"]) == (
        "quality diagnosis",
        "faulty",
        "blur",
    )

    # counted per check, department and carrier
    resp = await client.get("/metrics", headers=admin)
    metrics = await resp.text()
    camera = await client.app[REGISTRY].get("governance.quality-a")
    assert camera is not None
    line = (
        f'camgw_quality_failing_checks_total{{carrier="{camera.carrier}",check="blur",'
        f'department="{camera.department}"}} 2.0'
    )
    assert line in metrics
    assert 'camgw_quality_diagnoses_total{network="governance",status="faulty"} 1.0' in metrics

    a.quirks.picture = Picture(Period.day)  # repaired
    await service.run_round("governance")
    assert _summary(await _image(client, admin, "governance.quality-a")) == ("ok", [], 0)

    a.quirks.picture = Picture(Period.day, PictureFault(Fault.displacement, 0.5, seed=1))
    b.quirks.picture = Picture(Period.day, PictureFault(Fault.displacement, 0.5, seed=1))
    await service.run_round("governance")
    # only the camera with a reference can be found turned
    assert _summary(await _image(client, admin, "governance.quality-a")) == (
        "suspect",
        ["displacement"],
        1,
    )
    assert _summary(await _image(client, admin, "governance.quality-b")) == ("ok", [], 0)
    a.quirks.picture = b.quirks.picture = Picture(Period.day)


async def test_a_camera_without_a_picture_gets_no_reference_and_the_admin_is_told_why(
    sim: Simulator,
    gateway: tuple[TestClient, Headers],  # type: ignore[type-arg]
) -> None:
    client, admin = gateway
    prefix = client.app[QUALITY].settings.redis.prefix
    await sim.set_offline("governance.quality-b", True)
    try:
        resp = await client.put("/api/v1/cameras/governance.quality-b/reference", headers=admin)
        problem = await resp.json()
        assert resp.status == 409
        assert problem["detail"] == (
            "camera governance.quality-b gave no picture to accept as its reference: camera "
            "governance.quality-b did not deliver a picture; the audit log and the gateway's log "
            "say why"
        )
        stored = await client.app[REDIS].keys(f"{prefix}:quality:ref:*")
        assert stored == []
        # and a round leaves its record as it was, the failed read audited
        await client.app[QUALITY].run_round("governance")
        assert await _image(client, admin, "governance.quality-b") is None
        assert _summary(await _image(client, admin, "governance.quality-a")) == ("ok", [], 0)
    finally:
        await sim.set_offline("governance.quality-b", False)


@pytest.mark.parametrize("gateway", [False], indirect=True)
async def test_rounds_follow_the_schedule_and_a_network_may_opt_out(
    sim: Simulator,
    gateway: tuple[TestClient, Headers],  # type: ignore[type-arg]
    tmp_path: Path,
) -> None:
    client, admin = gateway
    app = client.app
    now = [1_000_000.0]
    service = _service(app, tmp_path, lambda: now[0])
    try:
        assert await service.tick("governance") > 0  # first due one interval from now
        assert service.rounds == {}
        assert await _image(client, admin, "governance.quality-a") is None
        now[0] += 61
        await service.tick("governance")
        assert service.rounds == {"governance": 1}
        assert _summary(await _image(client, admin, "governance.quality-a")) == ("ok", [], 0)
        now[0] += 30
        await service.tick("governance")  # not due again yet
        assert service.rounds == {"governance": 1}
        # the police opted out: never due, never diagnosed
        assert await service.tick("police") == 3600.0
        assert await service.run_round("police") == 0
        assert "police" not in service.rounds
    finally:
        service.close()


@pytest.mark.parametrize("gateway", [False], indirect=True)
async def test_a_day_reference_is_not_used_at_night(
    sim: Simulator,
    gateway: tuple[TestClient, Headers],  # type: ignore[type-arg]
    tmp_path: Path,
) -> None:
    """A street at night is another picture than by day: compared with the day's reference it
    would look covered or turned. Each period has its own reference, accepted in that period."""
    client, admin = gateway
    app = client.app
    noon = dt.datetime(2026, 12, 1, 4, 0, tzinfo=dt.UTC).timestamp()  # 12:00 in Shanghai
    now = [noon]
    service = _service(app, tmp_path, lambda: now[0], nights=True)
    a = sim.device("governance.quality-a")
    camera = await app[REGISTRY].get("governance.quality-a")
    assert camera is not None
    try:
        _, night = await service.accept_current(camera)  # by day
        assert night is False
        now[0] = noon + 10 * 3600  # 22:00 in Shanghai
        a.quirks.picture = Picture(Period.night)
        await service.run_round("governance")
        image = await _image(client, admin, "governance.quality-a")
        assert image is not None
        assert (_summary(image), image["night"], image["reference"]) == (("ok", [], 0), True, False)
        _, night = await service.accept_current(camera)  # the night's own reference
        assert night is True
        await service.run_round("governance")
        image = await _image(client, admin, "governance.quality-a")
        assert image is not None
        assert (_summary(image), image["night"], image["reference"]) == (("ok", [], 0), True, True)
    finally:
        a.quirks.picture = Picture(Period.day)
        service.close()


async def test_a_dead_worker_costs_one_round_of_verdicts_not_the_service(
    sim: Simulator,
    gateway: tuple[TestClient, Headers],  # type: ignore[type-arg]
) -> None:
    """The worker killed (out of memory, by an operator): the pictures it was to judge are
    audited as not judged, the records keep their verdicts, and the next round has a new one."""
    client, admin = gateway
    service = client.app[QUALITY]
    await service.run_round("governance")
    before = await _image(client, admin, "governance.quality-a")
    pool = service._pool
    assert pool is not None
    for process in list(pool._processes.values()):  # (the executor's own table of its workers)
        process.kill()
        await asyncio.to_thread(process.join, 10)
    await service.run_round("governance")
    # whichever camera's picture reached the dead worker first was not judged, and said so
    # (the other may already have had the new worker: pictures arrive in any order)
    auditor, _ = await client.app[TOKENS].create("q-auditor2", Role.auditor, ["*"], "tests")
    resp = await client.get(
        "/api/v1/audit",
        params={"network": "governance", "limit": "2"},
        headers={"Authorization": f"Bearer {auditor}"},
    )
    last_round = (await resp.json())["items"]
    stopped = [e for e in last_round if e["detail"] == "diagnosis worker stopped"]
    assert stopped and all((e["outcome"], e["status"]) == ("error", 500) for e in stopped)
    assert await _image(client, admin, "governance.quality-a") == before
    await service.run_round("governance")  # a new worker
    assert service._pool is not None and service._pool is not pool
    after = await _image(client, admin, "governance.quality-a")
    assert _summary(after) == ("ok", [], 0)


class _Clock:
    """Wall time that moves `step` seconds at each reading."""

    def __init__(self, start: float, step: float = 0.0) -> None:
        self.now, self.step = start, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


@pytest.mark.parametrize("gateway", [False], indirect=True)
async def test_a_rounds_verdicts_reach_the_records_together(
    sim: Simulator,
    gateway: tuple[TestClient, Headers],  # type: ignore[type-arg]
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A town's first round changes every camera's record; written one by one, each would
    make every dashboard's next poll a new list. Verdicts within 5 s of each other are written
    together (at the latest when the round ends), later ones as they come."""
    client, admin = gateway
    app = client.app
    clock = _Clock(1_000_000.0)
    service = _service(app, tmp_path, clock)
    registry = app[REGISTRY]
    written: list[list[str]] = []
    replace_many = registry.replace_many

    async def spied(items: Any, *, fence: Any = None) -> Any:
        written.append(sorted(camera.id for camera, _ in items))
        return await replace_many(items, fence=fence)

    monkeypatch.setattr(registry, "replace_many", spied)
    version = await registry.version()
    devices = [sim.device(cam_id) for cam_id in ADDRESSES]
    try:
        assert await service.run_round("governance") == 2
        assert written == [sorted(ADDRESSES)]  # one pipeline, at the round's end
        assert await registry.version() == version + 2
        assert _summary(await _image(client, admin, "governance.quality-b")) == ("ok", [], 0)

        clock.step = 6.0  # now every verdict comes 5 s after the last write or later
        for device in devices:
            device.quirks.picture = Picture(Period.day, PictureFault(Fault.blur, 0.65))
        assert await service.run_round("governance") == 2
        assert sorted(written[1:]) == [[cam_id] for cam_id in sorted(ADDRESSES)]
        for cam_id in ADDRESSES:
            assert _summary(await _image(client, admin, cam_id)) == ("suspect", ["blur"], 1)
    finally:
        for device in devices:
            device.quirks.picture = Picture(Period.day)
        service.close()
