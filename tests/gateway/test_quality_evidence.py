"""Evidence of a verdict and the counts per check, department and carrier (issue 15), end to
end: simulated cameras on loopback showing streets, a real redis-server, rounds run by hand.

- the picture that made a verdict suspect is kept as a small JPEG (320 wide) with a TTL, made
  in the diagnosis worker; dropped when the picture is fine again;
- it is read by those who may take a snapshot of the camera, on the same terms (a reason where
  the network requires one, the reader's watermark), each read audited; refused otherwise with
  the exact reason; an edge network's pictures never leave it, so it keeps none;
- `camgw_quality_failing_checks_total` counts each failing check of each diagnosis under the
  camera's own department and carrier."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from aiohttp.test_utils import TestClient

from adapters.config import CredentialRef
from adapters.simulator.devices import ONVIF_PORT, Picture, Quirks, SimDevice
from adapters.simulator.faults import Fault, PictureFault
from adapters.simulator.fleet import FleetCamera
from adapters.simulator.scene import Period
from adapters.simulator.server import Simulator
from gateway.app import create_app
from gateway.keys import REDIS, TOKENS
from gateway.models import Role
from gateway.quality import EVIDENCE_WIDTH, QUALITY, QualityService, evidence_ttl
from gateway.settings import Settings
from gateway.vault import CredentialVault

PASSWORD = "evidence-pass"
# two categories: two departments and two carriers
CAMERAS = {
    "governance.ev-a": ("127.1.216.10", "sharp-eyes"),  # Political-Legal Committee, China Telecom
    "governance.ev-b": ("127.1.216.11", "road-blindspot"),  # Town Safety Office, China Unicom
}
Factory = Callable[..., Awaitable[TestClient]]  # type: ignore[type-arg]
Headers = dict[str, str]
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
async def sim() -> AsyncIterator[Simulator]:
    devices = [
        SimDevice(
            camera=FleetCamera(cid, "governance", cat, cid, address, 31.08, 121.3, "Rd"),
            password=PASSWORD,
            quirks=Quirks(picture=Picture(Period.day)),
        )
        for cid, (address, cat) in CAMERAS.items()
    ]
    async with Simulator(devices, answer_delay_s=0.0, serve_rtsp=False) as simulator:
        yield simulator


def _settings(settings: Settings, tmp_path: Path) -> Settings:
    """governance: in process, diagnosed (rounds by hand), a reason required for its pictures;
    police: an edge network."""
    secret = tmp_path / "governance.pw"
    secret.write_text(PASSWORD + "\n")
    data = settings.model_dump()
    for net in data["networks"]:
        net["discovery"] |= {"wsdiscovery_targets": [], "health_interval_s": 0, "schedule_s": 0}
        net["quality"] |= {
            "enabled": net["id"] == "governance",
            "interval_s": 3600.0,  # (the first round of its own an hour after start: never here)
            "night_start": dt.time(0, 0),
            "night_end": dt.time(0, 0),
        }
        if net["id"] == "governance":
            net["cidrs"] = [ipaddress.ip_network("127.1.216.0/24")]
            net["credentials"] = CredentialRef(username="admin", password_file=secret).model_dump()
            net["sharing"] |= {
                "cache_ttl_s": 0.0,
                "rate_limit_per_minute": 10_000,
                "reason_required": True,
                "watermark": True,
            }
        if net["id"] == "police":
            net.update(mode="edge", credentials=None)
    data["snapshots"] = data["snapshots"] | {"min_interval_s": 0.0, "timeout_s": 5.0}
    return Settings.model_validate(data)


@pytest.fixture
async def gateway(
    aiohttp_client: Factory, settings: Settings, vault: CredentialVault, tmp_path: Path
) -> tuple[TestClient, Headers]:  # type: ignore[type-arg]
    client = await aiohttp_client(create_app(_settings(settings, tmp_path), vault))
    admin = await _token(client, "admin", ["*"])
    for cam_id, (address, category) in CAMERAS.items():
        body = {
            "id": cam_id,
            "network": "governance",
            "name": cam_id,
            "category": category,
            "address": address,
            "snapshot_uri": f"http://{address}:{ONVIF_PORT}/onvif/snapshot.jpg",
            "credentials": {"username": "admin", "password": PASSWORD},
        }
        resp = await client.post("/api/v1/cameras", json=body, headers=admin)
        assert resp.status == 201, await resp.text()
    body = {
        "id": "police.ev-edge",
        "network": "police",
        "name": "edge camera",
        "category": "public-security",
        "address": "127.2.216.10",
    }
    resp = await client.post("/api/v1/cameras", json=body, headers=admin)
    assert resp.status == 201, await resp.text()
    return client, admin


async def _token(client: TestClient, role: str, networks: list[str]) -> Headers:  # type: ignore[type-arg]
    secret, _ = await client.app[TOKENS].create(f"ev-{role}", Role(role), networks, "tests")
    return {"Authorization": f"Bearer {secret}"}


async def _problem(resp: Any, status: int) -> str:
    assert resp.status == status, await resp.text()
    assert resp.content_type == PROBLEM
    detail: str = (await resp.json(content_type=PROBLEM))["detail"]
    return detail


EVIDENCE = "/api/v1/cameras/{}/quality/evidence"


async def _round_with_ev_a_blurred(sim: Simulator, service: QualityService) -> None:
    """A round in which camera ev-a's picture is blurred (suspect: its evidence kept)."""
    a = sim.device("governance.ev-a")
    a.quirks.picture = Picture(Period.day, PictureFault(Fault.blur, 0.65))
    try:
        await service.run_round("governance")
    finally:
        a.quirks.picture = Picture(Period.day)


async def test_the_evidence_is_kept_and_shown_to_those_who_may_take_a_snapshot(
    sim: Simulator,
    gateway: tuple[TestClient, Headers],  # type: ignore[type-arg]
) -> None:
    client, admin = gateway
    service = client.app[QUALITY]
    await _round_with_ev_a_blurred(sim, service)

    operator = await _token(client, "operator", ["governance"])
    path = EVIDENCE.format("governance.ev-a")
    resp = await client.get(path, params={"reason": "ticket 42"}, headers=operator)
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "image/jpeg"
    assert (resp.headers["X-Quality-Verdict"], resp.headers["X-Quality-Failing"]) == (
        "suspect",
        "blur",
    )
    picture = cv2.imdecode(np.frombuffer(await resp.read(), np.uint8), cv2.IMREAD_COLOR)
    assert picture.shape[:2] == (180, EVIDENCE_WIDTH)  # 1280x720 as 320 wide
    # kept in Redis with a time to live, as made in the worker (the watermark is the reader's)
    redis = client.app[REDIS]
    key = service.evidence_key("governance.ev-a")
    assert 0 < await redis.ttl(key) <= evidence_ttl(3600.0) == 86_400
    kept = await service.evidence("governance.ev-a")
    assert kept is not None and kept.width == EVIDENCE_WIDTH and len(kept.jpeg) < 40_000
    # nothing kept for the camera whose picture is fine
    assert await redis.exists(service.evidence_key("governance.ev-b")) == 0

    # refusals, each with its reason
    no_reason = await client.get(path, headers=operator)
    assert await _problem(no_reason, 422) == (
        "`reason`: network governance requires an incident or ticket reference"
    )
    viewer = await _token(client, "viewer", ["*"])
    resp = await client.get(path, params={"reason": "t"}, headers=viewer)
    assert await _problem(resp, 403) == "role viewer may not request snapshots"
    police_operator = await _token(client, "operator", ["police"])
    resp = await client.get(path, params={"reason": "t"}, headers=police_operator)
    assert await _problem(resp, 404) == "camera governance.ev-a not found"
    resp = await client.get(
        EVIDENCE.format("governance.ev-b"), params={"reason": "t"}, headers=operator
    )
    assert await _problem(resp, 404) == (
        "camera governance.ev-b has no quality evidence: its picture is not judged suspect or "
        "faulty, or the evidence has expired"
    )
    resp = await client.get(EVIDENCE.format("police.ev-edge"), headers=admin)
    assert await _problem(resp, 403) == (
        "camera police.ev-edge: the police network's pictures are judged in its own adapter "
        "and do not leave the network; no quality evidence is kept"
    )

    # every read audited, granted or refused
    auditor = await _token(client, "auditor", ["*"])
    resp = await client.get(
        "/api/v1/audit", params={"camera": "governance.ev-a", "limit": "100"}, headers=auditor
    )
    reads = [e for e in (await resp.json())["items"] if e["action"] == "camera.evidence"]
    assert [(e["outcome"], e["status"]) for e in reads] == [
        ("not_found", 404),
        ("denied", 403),
        ("invalid", 422),
        ("ok", 200),
    ]
    granted = reads[-1]
    assert (granted["extra"]["reason"], granted["extra"]["image"], granted["extra"]["source"]) == (
        "ticket 42",
        "suspect",
        "quality-evidence",
    )

    # repaired: the next round drops it
    await service.run_round("governance")
    assert await redis.exists(key) == 0
    resp = await client.get(path, params={"reason": "t"}, headers=operator)
    assert resp.status == 404


async def test_failing_checks_are_counted_per_check_department_and_carrier(
    sim: Simulator,
    gateway: tuple[TestClient, Headers],  # type: ignore[type-arg]
) -> None:
    client, admin = gateway
    service = client.app[QUALITY]
    a, b = sim.device("governance.ev-a"), sim.device("governance.ev-b")
    a.quirks.picture = Picture(Period.day, PictureFault(Fault.blur, 0.65))
    b.quirks.picture = Picture(Period.day, PictureFault(Fault.dark, 0.65))
    try:
        await service.run_round("governance")
        await service.run_round("governance")
    finally:
        a.quirks.picture = b.quirks.picture = Picture(Period.day)
    await service.run_round("governance")  # both fine again: nothing more counted

    resp = await client.get("/metrics", headers=admin)
    lines = [
        line
        for line in (await resp.text()).splitlines()
        if line.startswith("camgw_quality_failing_checks_total{")
    ]
    assert sorted(lines) == [
        'camgw_quality_failing_checks_total{carrier="China Telecom",check="blur",'
        'department="Political-Legal Committee"} 2.0',
        'camgw_quality_failing_checks_total{carrier="China Unicom",check="too_dark",'
        'department="Town Safety Office"} 2.0',
    ]


async def test_a_deleted_camera_takes_its_evidence_with_it(
    sim: Simulator,
    gateway: tuple[TestClient, Headers],  # type: ignore[type-arg]
) -> None:
    """The thumbnail would otherwise outlive the camera by up to a day (its time to live):
    a picture from the network kept for no camera."""
    client, admin = gateway
    service = client.app[QUALITY]
    await _round_with_ev_a_blurred(sim, service)
    redis = client.app[REDIS]
    assert await redis.exists(service.evidence_key("governance.ev-a")) == 1

    resp = await client.delete("/api/v1/cameras/governance.ev-a", headers=admin)
    assert resp.status == 204
    assert await redis.exists(service.evidence_key("governance.ev-a")) == 0
    assert await service.evidence("governance.ev-a") is None
