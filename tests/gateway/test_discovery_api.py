"""Discovery end to end through the gateway: the real app (`create_app` with its default,
in-process adapters) discovering the real simulator on loopback, driven and observed the way an
operator does: POST /api/v1/networks/{id}/discover, GET /api/v1/jobs/{id}, /networks, /cameras,
and `camgw discover` as a subprocess.

The gateway's merge logic against a test double is in test_discovery_merge.py; the adapter on
its own against the simulator in tests/adapters/test_discovery_e2e.py. Each test serves its own
loopback /26 (127.1.210.0-127.1.216.255, 127.2.210.0-127.2.211.255).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from adapters.base import DiscoveryEvent
from adapters.config import CredentialRef, DiscoveryConfig
from adapters.simulator.devices import ONVIF_PORT, ClockQuirk, HostileXml, Quirks, SimDevice
from adapters.simulator.fleet import FleetCamera
from adapters.simulator.server import Simulator, build_devices
from gateway.app import create_app
from gateway.keys import DISCOVERY, REDIS, REGISTRY, TOKENS
from gateway.models import Role
from gateway.redis_server import RedisServer
from gateway.settings import Settings
from gateway.vault import CredentialVault, create_key_file

Factory = Callable[..., Awaitable[TestClient]]  # type: ignore[type-arg]
Json = dict[str, Any]

ENV = {
    "governance": "CAMGW_E2E_GOVERNANCE_PASSWORD",
    "police": "CAMGW_E2E_POLICE_PASSWORD",
    "gov-affairs": "CAMGW_E2E_GOV_AFFAIRS_PASSWORD",
}
PASSWORDS = {
    "governance": "gov-E2E-pw-5tq",
    "police": "pol-E2E-pw-9zr",
    "gov-affairs": "aff-E2E-pw-2hx",
}
CATEGORY = {"governance": "sharp-eyes", "police": "public-security", "gov-affairs": "unclassified"}
FAST = {"timeout_s": 1.0, "camera_budget_s": 3.0, "probe_wait_s": 0.5}


# --------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    for network, var in ENV.items():
        monkeypatch.setenv(var, PASSWORDS[network])


def fleet(network: str, base: str, roles: dict[str, Quirks], start: int = 1) -> list[SimDevice]:
    """One simulated camera per role at `base`.start, `base`.start+1, ...; id `<network>-<role>`."""
    cameras = [
        FleetCamera(
            id=f"{network}-{role}",
            network=network,
            category=CATEGORY[network],
            name=role,
            address=f"{base}.{start + i}",
            lat=31.08,
            lon=121.3,
            place="Test Rd, Dongjing",
        )
        for i, role in enumerate(roles)
    ]
    return build_devices(cameras, PASSWORDS, quirks_for=lambda c: replace(roles[c.name]))


def sim_settings(
    settings: Settings, targets: dict[str, str], tune: dict[str, dict[str, float]] | None = None
) -> Settings:
    """The shipped networks, their discovery pointed at the simulator's ranges (nothing else is
    probed), short timeouts, no background health; credentials from the test's env vars."""
    networks = []
    for n in settings.networks:
        cfg: dict[str, Any] = {
            "wsdiscovery_targets": (targets[n.id],) if n.id in targets else (),
            "onvif_port": ONVIF_PORT,
            "health_interval_s": 0,
            **FAST,
            **(tune or {}).get(n.id, {}),
        }
        networks.append(
            n.model_copy(
                update={
                    "discovery": DiscoveryConfig.model_validate(cfg),
                    "credentials": CredentialRef(username="admin", password_env=ENV[n.id]),
                }
            )
        )
    return settings.model_copy(update={"networks": tuple(networks)})


@dataclass
class Gateway:
    client: TestClient  # type: ignore[type-arg]
    auth: dict[str, str]

    async def get(self, path: str, status: int = 200) -> Any:
        resp = await self.client.get(path, headers=self.auth)
        assert resp.status == status, await resp.text()
        return await resp.json()

    async def start(self, network: str) -> Json:
        resp = await self.client.post(f"/api/v1/networks/{network}/discover", headers=self.auth)
        assert resp.status == 202, await resp.text()
        job: Json = await resp.json()
        assert resp.headers["Location"] == f"/api/v1/jobs/{job['id']}"
        return job

    async def finish(self, job_id: str, within_s: float = 15.0) -> Json:
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            job: Json = await self.get(f"/api/v1/jobs/{job_id}")
            if job["state"] != "running":
                return job
            await asyncio.sleep(0.05)
        raise AssertionError(f"job {job_id} still running after {within_s} s")

    async def discover(self, network: str) -> Json:
        return await self.finish((await self.start(network))["id"])

    async def cameras(self, network: str) -> dict[str, Json]:
        """By address."""
        body = await self.get(f"/api/v1/cameras?network={network}&limit=500")
        assert body.get("next_cursor") is None
        return {c["address"]: c for c in body["items"]}

    async def networks(self) -> dict[str, Json]:
        return {n["id"]: n for n in await self.get("/api/v1/networks")}


@asynccontextmanager
async def gateway(
    aiohttp_client: Factory, settings: Settings, vault: CredentialVault
) -> AsyncIterator[Gateway]:
    client = await aiohttp_client(create_app(settings, vault))
    secret, _ = await client.app[TOKENS].create("e2e-admin", Role.admin, ["*"], "tests")
    yield Gateway(client, {"Authorization": f"Bearer {secret}"})


def failures(job: Json) -> dict[str, tuple[str, str]]:
    return {f["address"]: (f["step"], f["reason"]) for f in job["failures"]}


async def redis_dump(redis: Redis, prefix: str) -> bytes:
    """Every value under the prefix, whatever its type: records, jobs, indexes, audit."""
    out: list[bytes | str | None] = []
    async for key in redis.scan_iter(f"{prefix}:*"):
        kind = _bytes(await redis.type(key))
        if kind == b"string":
            out.append(await redis.get(key))
        elif kind == b"hash":
            out.extend(x for kv in (await redis.hgetall(key)).items() for x in kv)
        elif kind == b"set":
            out.extend(await redis.smembers(key))
        elif kind == b"stream":
            for _, entry in await redis.xrange(key) or []:
                out.extend(x for kv in (entry or {}).items() for x in kv)
        out.append(key)
    return b"\n".join(_bytes(v) for v in out)


def _bytes(value: bytes | str | None) -> bytes:
    return value.encode() if isinstance(value, str) else value or b""


# --------------------------------------------------------------------------- quirks via the API

QUIRKS: dict[str, Quirks] = {
    "good": Quirks(),
    "skew": Quirks(clock_skew_s=-420.0),
    "snap-unspecified": Quirks(snapshot_host="0.0.0.0"),
    "snap-internal": Quirks(snapshot_host="10.27.99.3"),
    "no-snapshot": Quirks(no_snapshot_uri=True),
    "creds-in-uri": Quirks(rtsp_credentials_in_uri=True),
    "slow": Quirks(extra_delay_s=0.3),
    "wrong-password": Quirks(wrong_password=True),
    "hang": Quirks(hang=True),
    "offline": Quirks(offline=True),
    "hostile-malformed": Quirks(hostile_xml=HostileXml.malformed),
    "hostile-huge": Quirks(hostile_xml=HostileXml.huge),
}


async def test_discovery_job_reports_progress_and_normalised_records(
    aiohttp_client: Factory, settings: Settings, vault: CredentialVault
) -> None:
    devices = fleet("governance", "127.1.210", QUIRKS)
    dev = {d.camera.name: d for d in devices}
    s = sim_settings(settings, {"governance": "127.1.210.0/26"})
    async with (
        Simulator(devices, answer_delay_s=0.01, serve_rtsp=False),
        gateway(aiohttp_client, s, vault) as gw,
    ):
        started = await gw.start("governance")
        assert (started["state"], started["network"]) == ("running", "governance")
        job = await gw.finish(started["id"])
        cams = await gw.cameras("governance")
        nets = await gw.networks()
        raw = await redis_dump(gw.client.app[REDIS], s.redis.prefix)

    enriched = ["good", "skew", "snap-unspecified", "snap-internal", "no-snapshot",
                "creds-in-uri", "slow"]  # fmt: skip
    assert job["state"] == "done" and job["error"] is None and job["actor"].startswith("e2e-admin")
    assert job["progress"] == {
        "found": 11, "enriched": 7, "failed": 4, "ignored": 0, "ignored_by_reason": {}
    }  # fmt: skip
    assert 0.5 < job["elapsed_s"] < 5 and job["finished_at"]
    got = failures(job)
    assert {a: step for a, (step, _) in got.items()} == {
        dev["wrong-password"].address: "auth",
        dev["hang"].address: "timeout",
        dev["hostile-malformed"].address: "read",
        dev["hostile-huge"].address: "read",
    }
    assert "credentials refused" in got[dev["wrong-password"].address][1]
    assert "exceeds 1048576 bytes" in got[dev["hostile-huge"].address][1]

    # The registry holds the cameras read whole, online, with what they said about themselves.
    assert set(cams) == {dev[r].address for r in enriched}
    for role in enriched:
        cam, device = cams[dev[role].address], dev[role]
        assert cam["status"] == "online" and cam["last_seen"] and cam["last_error"] is None
        assert (cam["source"], cam["category"]) == ("discovered", "unclassified")
        assert cam["name"] == device.camera.id and cam["id"].startswith("governance.")
        assert (cam["vendor"], cam["serial"], cam["mac"]) == (
            device.vendor, device.serial, device.mac)  # fmt: skip
        assert cam["onvif"]["endpoint_reference"] == device.endpoint_reference
        assert cam["onvif"]["device_uri"] == device.device_uri
        assert cam["profiles"] and all(p["codec"] == "H264" for p in cam["profiles"])
        assert cam["has_credentials"] is False  # nothing beyond the network's credentials
    assert cams[dev["skew"].address]["onvif"]["clock_offset_s"] == pytest.approx(-420, abs=2)
    assert abs(cams[dev["good"].address]["onvif"]["clock_offset_s"]) < 2
    for role in ("snap-unspecified", "snap-internal"):
        address = dev[role].address
        assert cams[address]["snapshot_uri"] == f"http://{address}:{ONVIF_PORT}/onvif/snapshot.jpg"
    assert cams[dev["no-snapshot"].address]["snapshot_uri"] is None
    creds = cams[dev["creds-in-uri"].address]
    assert {p["stream_uri"] for p in creds["profiles"]} == {dev["creds-in-uri"].stream_uri}

    # /networks shows the adapter's last run and the counts.
    gov = nets["governance"]
    assert (gov["cameras"], gov["by_status"]) == (7, {"online": 7})
    assert gov["adapter"]["state"] == "idle" and gov["adapter"]["last_job"]["id"] == job["id"]
    assert nets["police"]["cameras"] == 0 and nets["police"]["adapter"]["last_job"] is None

    # No password anywhere: not in the API's answers, not in Redis (records, jobs, audit).
    password = PASSWORDS["governance"].encode()
    assert dev["creds-in-uri"].stream_uri.encode() in raw  # the dump does see the records
    assert password not in raw and b"@127.1.210" not in raw
    assert PASSWORDS["governance"] not in str(job) + str(cams) + str(nets)


# --------------------------------------------------------------------------- impossible answers

IMPOSSIBLE: dict[str, Quirks] = {
    "good-1": Quirks(),
    "good-2": Quirks(),
    "good-3": Quirks(),
    "month-13": Quirks(clock_quirk=ClockQuirk.month_13),
    "no-date": Quirks(clock_quirk=ClockQuirk.no_date_element),
    "string-date": Quirks(clock_quirk=ClockQuirk.string_for_date),
    "local-time": Quirks(clock_quirk=ClockQuirk.no_utc_datetime, clock_skew_s=600.0),
    "info-invalid-utf8": Quirks(device_info_invalid_utf8=True),
    "string-resolution": Quirks(string_for_structure=True),
    "deep-nesting": Quirks(deep_nesting=True),
}
DEEP_REASON = (
    "GetProfiles: unusable answer (XMLSyntaxError: Excessive depth in document: 256, "
    "use XML_PARSE_HUGE option, line 2, column 2148)"
)


async def test_one_hostile_camera_fails_only_itself_and_the_job_is_done(
    aiohttp_client: Factory, settings: Settings, vault: CredentialVault
) -> None:
    """Issue 7, finding 3: valid SOAP with impossible values (Month 13, no Date, text where a
    structure belongs, invalid UTF-8, 100,000-deep nesting) is each camera's own problem."""
    devices = fleet("governance", "127.1.214", IMPOSSIBLE)
    dev = {d.camera.name: d for d in devices}
    s = sim_settings(settings, {"governance": "127.1.214.0/26"})
    async with (
        Simulator(devices, answer_delay_s=0.01, serve_rtsp=False),
        gateway(aiohttp_client, s, vault) as gw,
    ):
        registered: dict[str, str] = {}  # role -> id: an admin registered these two already
        for role in ("deep-nesting", "month-13"):
            body = {
                "network": "governance",
                "name": f"Registered {role}",
                "category": "sharp-eyes",
                "address": dev[role].address,
            }
            resp = await gw.client.post("/api/v1/cameras", json=body, headers=gw.auth)
            assert resp.status == 201, await resp.text()
            registered[role] = (await resp.json())["id"]
        job = await gw.discover("governance")
        cams = await gw.cameras("governance")
        deep = await gw.get(f"/api/v1/cameras/{registered['deep-nesting']}")

    assert (job["state"], job["error"]) == ("done", None)
    assert job["progress"] == {
        "found": 10, "enriched": 9, "failed": 1, "ignored": 0, "ignored_by_reason": {}
    }  # fmt: skip
    assert failures(job) == {dev["deep-nesting"].address: ("read", DEEP_REASON)}
    assert job["elapsed_s"] < 3  # nothing waited for a timeout

    # The registered hostile camera: kept, degraded, and the dashboard says why.
    assert (deep["status"], deep["last_error"]) == ("degraded", f"read: {DEEP_REASON}")
    assert deep["name"] == "Registered deep-nesting" and deep["profiles"] == []

    # Every other camera is enriched and online.
    assert set(cams) == {d.address for d in devices}
    for role, device in dev.items():
        if role == "deep-nesting":
            continue
        cam = cams[device.address]
        assert (cam["status"], cam["last_error"]) == ("online", None), role
        assert cam["mac"] == device.mac and len(cam["profiles"]) == 2, role
        assert {p["stream_uri"] for p in cam["profiles"]} == {device.stream_uri}, role
        expected_vendor = None if role == "info-invalid-utf8" else device.vendor
        assert (cam["vendor"], cam["serial"] is not None) == (
            expected_vendor, role != "info-invalid-utf8")  # fmt: skip
    month_13 = cams[dev["month-13"].address]
    assert month_13["id"] == registered["month-13"] and month_13["name"] == "Registered month-13"
    for role in ("month-13", "no-date", "string-date"):  # only the clock is lost
        assert cams[dev[role].address]["onvif"]["clock_offset_s"] == 0.0, role
    local = cams[dev["local-time"].address]
    assert local["onvif"]["clock_offset_s"] == pytest.approx(600, abs=2)
    garbled = cams[dev["info-invalid-utf8"].address]
    assert (garbled["vendor"], garbled["serial"]) == (None, None)
    assert garbled["model"] == dev["info-invalid-utf8"].model  # from its WS-Discovery scope
    assert garbled["onvif"]["endpoint_reference"] == dev["info-invalid-utf8"].endpoint_reference
    sizes = [(p["width"], p["height"]) for p in cams[dev["string-resolution"].address]["profiles"]]
    assert sizes == [(None, None), (None, None)]
    for role in ("good-1", "good-2", "good-3"):
        cam = cams[dev[role].address]
        assert [(p["width"], p["height"]) for p in cam["profiles"]] == [(1920, 1080), (640, 360)]


# --------------------------------------------------------------------------- rediscovery


async def test_rediscovery_is_idempotent_and_keeps_admin_edits(
    aiohttp_client: Factory, settings: Settings, vault: CredentialVault
) -> None:
    devices = fleet("governance", "127.1.211", {f"cam-{i}": Quirks() for i in range(5)})
    s = sim_settings(settings, {"governance": "127.1.211.0/26"})
    async with (
        Simulator(devices, answer_delay_s=0.01, serve_rtsp=False) as sim,
        gateway(aiohttp_client, s, vault) as gw,
    ):
        registry = gw.client.app[REGISTRY]
        first = await gw.discover("governance")
        before = await gw.cameras("governance")
        assert first["progress"]["enriched"] == 5 and len(before) == 5
        edited = before[devices[0].address]
        patch = {"name": "North gate", "category": "sharp-eyes", "tags": ["checked"]}
        resp = await gw.client.patch(f"/api/v1/cameras/{edited['id']}", json=patch, headers=gw.auth)
        assert resp.status == 200, await resp.text()
        patched = await resp.json()
        version = await registry.version()

        # Two requests while one job runs share it; the rerun changes nothing but freshness.
        job_a, job_b = await gw.start("governance"), await gw.start("governance")
        assert job_a["id"] == job_b["id"]
        second = await gw.finish(job_a["id"])
        after = await gw.cameras("governance")
        assert second["progress"] == first["progress"] and not second["failures"]
        assert {c["id"] for c in after.values()} == {c["id"] for c in before.values()}
        assert len((await gw.get("/api/v1/cameras?limit=500"))["items"]) == 5  # no duplicate
        assert await registry.version() >= version
        again = after[devices[0].address]
        assert (again["name"], again["category"], again["tags"]) == (
            "North gate", "sharp-eyes", ["checked"])  # fmt: skip
        for admin_field in ("department", "carrier", "project", "location"):
            assert again[admin_field] == patched[admin_field], admin_field
        assert (again["vendor"], again["serial"]) == (edited["vendor"], edited["serial"])
        assert again["created_at"] == edited["created_at"]
        for address, cam in after.items():
            assert cam["status"] == "online"
            assert cam["created_at"] == before[address]["created_at"]
        assert await registry.integrity_problems() == []

        # A camera whose password changed answers but refuses: degraded, attributed, kept.
        refusing = sim.device("governance-cam-1")
        refusing.quirks.wrong_password = True
        third = await gw.discover("governance")
        assert failures(third) == {
            refusing.address: ("auth", "GetCapabilities: credentials refused")
        }
        cam = (await gw.cameras("governance"))[refusing.address]
        assert cam["status"] == "degraded"
        assert cam["last_error"] == "auth: GetCapabilities: credentials refused"
        refusing.quirks.wrong_password = False
        await gw.discover("governance")
        cam = (await gw.cameras("governance"))[refusing.address]
        assert (cam["status"], cam["last_error"]) == ("online", None)
        assert len(await gw.cameras("governance")) == 5


# --------------------------------------------------------------------------- health


async def test_offline_and_back_is_tracked_with_hysteresis(
    aiohttp_client: Factory, settings: Settings, vault: CredentialVault
) -> None:
    devices = fleet("governance", "127.1.212", {f"cam-{i}": Quirks() for i in range(3)})
    flapping, hanging, steady = devices
    s = sim_settings(settings, {"governance": "127.1.212.0/26"})
    async with (
        Simulator(devices, answer_delay_s=0.01, serve_rtsp=False) as sim,
        gateway(aiohttp_client, s, vault) as gw,
    ):
        service = gw.client.app[DISCOVERY]
        await gw.discover("governance")

        async def status(device: SimDevice) -> tuple[str, str | None]:
            cam = (await gw.cameras("governance"))[device.address]
            return cam["status"], cam["last_error"]

        async def health() -> None:
            await service.health_round("governance")

        assert await status(flapping) == ("online", None)
        await sim.set_offline(flapping.camera.id, True)
        await health()
        assert (await status(flapping))[0] == "online"  # one lost probe is not an outage
        await health()
        state, error = await status(flapping)
        assert state == "offline" and error is not None and error.startswith("health: ")
        assert await status(steady) == ("online", None)
        await sim.set_offline(flapping.camera.id, False)
        await health()
        assert (await status(flapping))[0] == "offline"  # one answer is not a recovery
        await health()
        assert await status(flapping) == ("online", None)

        # A camera that vanishes is offline and stays listed; rediscovery does not find it.
        await sim.set_offline(flapping.camera.id, True)
        job = await gw.discover("governance")
        assert job["progress"]["found"] == 2 and not job["failures"]
        await health()
        await health()
        assert (await status(flapping))[0] == "offline"
        cam_id = (await gw.cameras("governance"))[flapping.address]["id"]
        assert (await gw.get(f"/api/v1/cameras/{cam_id}"))["status"] == "offline"

        # A known camera that starts hanging is one failed observation, not a broken camera.
        hanging.quirks.hang = True
        job = await gw.discover("governance")
        assert failures(job)[hanging.address][0] == "timeout"
        assert (await status(hanging))[0] == "online"
        await health()
        assert (await status(hanging))[0] == "offline"
        assert await status(steady) == ("online", None)

        nets = await gw.networks()
        assert nets["governance"]["cameras"] == 3
        assert nets["governance"]["by_status"] == {"online": 1, "offline": 2}
        assert nets["governance"]["adapter"]["health_rounds"] == 7
        # What this replica did, for the share between replicas: 7 rounds of 3 cameras.
        resp = await gw.client.get("/metrics", headers=gw.auth)
        text = await resp.text()
        assert 'camgw_health_rounds_total{network="governance"} 7.0' in text
        assert 'camgw_health_probes_total{network="governance"} 21.0' in text


# --------------------------------------------------------------------------- isolation


async def test_a_hanging_police_network_leaves_governance_and_the_api_alone(
    aiohttp_client: Factory, settings: Settings, vault: CredentialVault
) -> None:
    gov = fleet("governance", "127.1.213", {f"cam-{i}": Quirks() for i in range(4)})
    police = fleet("police", "127.2.210", {f"hang-{i}": Quirks(hang=True) for i in range(3)})
    s = sim_settings(
        settings,
        {"governance": "127.1.213.0/26", "police": "127.2.210.0/26"},
        {"police": {"timeout_s": 3.0, "camera_budget_s": 3.0}},
    )
    async with (
        Simulator([*gov, *police], answer_delay_s=0.01, serve_rtsp=False),
        gateway(aiohttp_client, s, vault) as gw,
    ):
        police_job = await gw.start("police")
        gov_job = await gw.discover("governance")
        assert gov_job["state"] == "done" and gov_job["progress"]["enriched"] == 4
        # While the police job still waits on its cameras, the API answers at once.
        for path in ("/api/v1/cameras", "/api/v1/summary", "/api/v1/networks"):
            started = time.perf_counter()
            await gw.get(path)
            assert time.perf_counter() - started < 1.0, path
        nets = await gw.networks()
        assert nets["police"]["adapter"]["state"] == "running"
        assert nets["police"]["adapter"]["running_job"] == police_job["id"]
        assert (await gw.get(f"/api/v1/jobs/{police_job['id']}"))["state"] == "running"
        assert nets["governance"]["cameras"] == 4

        done = await gw.finish(police_job["id"])
        assert done["state"] == "done" and done["elapsed_s"] >= 3.0
        assert {step for step, _ in failures(done).values()} == {"timeout"}
        assert set(failures(done)) == {d.address for d in police}
        assert len(await gw.cameras("governance")) == 4


async def test_a_broken_police_adapter_fails_only_its_own_job(
    aiohttp_client: Factory,
    settings: Settings,
    vault: CredentialVault,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gov = fleet("governance", "127.1.215", {f"cam-{i}": Quirks() for i in range(2)})
    police = fleet("police", "127.2.211", {f"cam-{i}": Quirks() for i in range(2)})
    monkeypatch.delenv(ENV["police"])  # the police password is not on this host
    s = sim_settings(settings, {"governance": "127.1.215.0/26", "police": "127.2.211.0/26"})
    async with (
        Simulator([*gov, *police], answer_delay_s=0.01, serve_rtsp=False),
        gateway(aiohttp_client, s, vault) as gw,
    ):
        job = await gw.discover("police")
        assert job["state"] == "done" and job["progress"]["enriched"] == 0
        assert failures(job) == {
            d.address: ("credentials", "no credentials configured") for d in police
        }
        assert (await gw.discover("governance"))["progress"]["enriched"] == 2

        async def crash(*args: object) -> AsyncIterator[DiscoveryEvent]:
            raise RuntimeError("adapter process crashed")
            yield  # an async generator, as the seam's discover is

        monkeypatch.setattr(gw.client.app[DISCOVERY].adapters["police"], "discover", crash)
        job = await gw.discover("police")
        assert job["state"] == "failed" and "adapter process crashed" in job["error"]
        gov_job = await gw.discover("governance")
        assert gov_job["state"] == "done" and gov_job["progress"]["enriched"] == 2
        nets = await gw.networks()
        assert nets["police"]["adapter"]["last_job"]["state"] == "failed"
        assert "adapter process crashed" in nets["police"]["adapter"]["last_error"]
        assert nets["governance"]["adapter"]["last_job"]["state"] == "done"
        assert (nets["governance"]["cameras"], nets["police"]["cameras"]) == (2, 0)
        assert (await gw.client.get("/healthz")).status == 200


# --------------------------------------------------------------------------- the CLI

CLI_CONFIG = """
[redis]
prefix = "{prefix}"

[[networks]]
id = "governance"
name = "Comprehensive-governance network"
cidrs = ["127.1.0.0/16"]
  [networks.discovery]
  wsdiscovery_targets = ["127.1.216.0/26"]
  onvif_port = {port}
  timeout_s = 1.0
  camera_budget_s = 3.0
  probe_wait_s = 0.5
  health_interval_s = 0
  [networks.credentials]
  username = "admin"
  password_env = "{env}"

[[categories]]
id = "unclassified"
name = "Unclassified (discovered)"
"""


@pytest.fixture
def cli_env(tmp_path: Path, redis_server: RedisServer) -> Iterator[tuple[dict[str, str], str]]:
    prefix = f"cli-e2e-{os.getpid()}"
    config = tmp_path / "camgw.toml"
    config.write_text(CLI_CONFIG.format(prefix=prefix, port=ONVIF_PORT, env=ENV["governance"]))
    key = tmp_path / "camgw.key"
    create_key_file(key)
    env = {
        **os.environ,
        "REDIS_URL": redis_server.url,
        "CAMGW_CONFIG": str(config),
        "CAMGW_KEY_FILE": str(key),
        ENV["governance"]: PASSWORDS["governance"],
    }
    yield env, prefix


async def test_cli_discover_prints_a_summary_table(
    cli_env: tuple[dict[str, str], str], redis_server: RedisServer
) -> None:
    env, prefix = cli_env
    roles = {f"cam-{i}": Quirks() for i in range(4)}
    roles["wrong-password"] = Quirks(wrong_password=True)
    devices = fleet("governance", "127.1.216", roles)
    async with Simulator(devices, answer_delay_s=0.01, serve_rtsp=False):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "discover", "--network", "governance",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        async with asyncio.timeout(30):
            out, err = await proc.communicate()
    stdout, stderr = out.decode(), err.decode()
    assert proc.returncode == 0, stderr[-2000:]
    rows = {}
    for line in stdout.splitlines():
        key, _, value = line.partition("  ")
        rows[key.strip()] = value.strip()
    assert (rows["network"], rows["state"]) == ("governance", "done")
    assert (rows["found"], rows["enriched"], rows["failed"]) == ("5", "4", "1")
    assert float(rows["cameras/s"]) > 0 and rows["elapsed"].endswith(" s")
    wrong = devices[-1].address
    assert rows["failed x1"] == f"auth: GetCapabilities: credentials refused [{wrong}]"
    assert "enriched 4" in stderr  # the progress bar
    assert PASSWORDS["governance"] not in stdout + stderr

    redis = Redis.from_url(redis_server.url)
    try:
        assert await redis.scard(f"{prefix}:idx:all") == 4
        async for key in redis.scan_iter(f"{prefix}:*"):
            await redis.delete(key)
    finally:
        await redis.aclose()


# --------------------------------------------------------------------------- configuration


def test_settings_copies_see_their_own_networks(settings: Settings) -> None:
    """`sim_settings` (and the CLI) copy Settings with new networks; lookups must follow."""
    assert settings.network_by_id["governance"].discovery.health_interval_s == 30
    copied = sim_settings(settings, {"governance": "127.1.210.0/26"})
    assert copied.network_by_id["governance"].discovery.health_interval_s == 0
    assert copied.network_by_id["governance"].discovery.wsdiscovery_targets == ("127.1.210.0/26",)
