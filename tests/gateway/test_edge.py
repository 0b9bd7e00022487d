"""The police network through its edge adapter, on loopback (docs/edge.md): discovery and
snapshots carried by Redis streams, the owner's export policy, liveness, restarts, and what the
gateway does with messages nobody should send. The same over network namespaces, where the
gateway cannot reach the cameras at all, is in tests/integration/.

The adapter runs here as a task of the test's event loop with its own config, key and state
directory; it talks to the suite's redis-server only (through its streams), never to the
gateway, and the gateway's config holds no police credentials.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import orjson
import pytest
from aiohttp.test_utils import TestClient

from adapters import tasks, wire
from adapters.audit_log import check as check_log
from adapters.base import (
    CameraFailed,
    CameraTimeout,
    Discovered,
    Failure,
    FailureKind,
    Profile,
    Target,
)
from adapters.config import CredentialRef, DiscoveryConfig
from adapters.export import ExportPolicy
from adapters.redis_link import RedisLink, connect
from adapters.remote import LOG_PURPOSE, REF_PURPOSE, EdgeRunner
from adapters.remote_config import AdapterConfig, ConfigError, load_adapter_config
from adapters.simulator.devices import Quirks, SimDevice
from adapters.simulator.fleet import FleetCamera
from adapters.simulator.server import Simulator, build_devices
from adapters.uris import UriCredentials, credentials_fingerprint
from adapters.vault import CredentialVault, create_key_file, load_key
from gateway.app import create_app
from gateway.edge import to_event
from gateway.keys import DISCOVERY, EDGE, REDIS, REGISTRY, TOKENS
from gateway.models import Role
from gateway.settings import Settings
from tests.conftest import Headers

Factory = Callable[..., Awaitable[TestClient]]  # type: ignore[type-arg]
Json = dict[str, Any]

N = 160 + os.getpid() % 20
POLICE = f"127.2.{N}"
PASSWORD = "pol-Edge-pw-4kd"
SERIAL_MARK = "SN"  # the simulator's serials begin so


def police_fleet(count: int = 3) -> list[SimDevice]:
    cameras = [
        FleetCamera(
            id=f"police.edge-{i}",
            network="police",
            category="public-security",
            name=f"edge-{i}",
            address=f"{POLICE}.{10 + i}",
            lat=31.08123,
            lon=121.30456,
            place="Test Rd, Dongjing",
        )
        for i in range(count)
    ]
    return build_devices(cameras, {"police": PASSWORD}, quirks_for=lambda c: Quirks())


@dataclass
class Edge:
    client: TestClient  # type: ignore[type-arg]
    admin: Headers
    config: AdapterConfig
    vault: CredentialVault
    devices: list[SimDevice]
    runner: asyncio.Task[None] | None = None
    runs: list[EdgeRunner] = field(default_factory=list)

    def start(self, config: AdapterConfig | None = None) -> None:
        cfg = config or self.config
        runner = EdgeRunner(cfg, connect(cfg.redis), self.vault)
        self.runs.append(runner)
        self.runner = asyncio.create_task(runner.run())

    async def stop(self) -> None:
        """As if the adapter's machine lost power: whatever it was doing stays pending."""
        assert self.runner is not None
        await tasks.stop(self.runner)
        await self.runs[-1].redis.aclose()
        self.runner = None

    async def connected(self) -> None:
        hub = self.client.app[EDGE]
        for _ in range(200):
            if hub.connected("police"):
                return
            await asyncio.sleep(0.02)
        raise AssertionError("the police adapter never said hello")

    async def token(self, role: str, networks: list[str] | None = None) -> Headers:
        secret, _ = await self.client.app[TOKENS].create(
            f"edge-{role}", Role(role), networks or ["*"], "tests"
        )
        return {"Authorization": f"Bearer {secret}"}

    async def discover(self) -> Json:
        resp = await self.client.post("/api/v1/networks/police/discover", headers=self.admin)
        assert resp.status == 202, await resp.text()
        url = resp.headers["Location"]
        for _ in range(600):
            job: Json = await (await self.client.get(url, headers=self.admin)).json()
            if job["state"] != "running":
                return job
            await asyncio.sleep(0.05)
        raise AssertionError(f"job still running: {job}")

    async def cameras(self, headers: Headers | None = None) -> list[Json]:
        resp = await self.client.get(
            "/api/v1/cameras?network=police", headers=headers or self.admin
        )
        items: list[Json] = (await resp.json())["items"]
        return items


def gateway_settings(settings: Settings) -> Settings:
    """The shipped config, police as an edge network: no police credentials, no discovery
    sources (the adapter has them), short timeouts."""
    data = settings.model_dump()
    for net in data["networks"]:
        if net["id"] == "police":
            net.update(mode="edge", credentials=None, cidrs=[f"{POLICE}.0/24"])
            net["discovery"] |= {"wsdiscovery_targets": (), "health_interval_s": 0}
            net["sharing"] |= {"rate_limit_per_minute": 10_000, "reason_required": True}
        else:
            net["discovery"] |= {"wsdiscovery_targets": (), "health_interval_s": 0}
    data["edge"] = {"heartbeat_timeout_s": 1.0, "restart_grace_s": 5.0, "snapshot_timeout_s": 5}
    return Settings.model_validate(data)


def inventory(tmp: Path, devices: list[SimDevice]) -> Path:
    """The owner's inventory, with where each camera is (exactly: the policy coarsens it)."""
    path = tmp / "police-inventory.csv"
    rows = [
        f"{d.address},8000,onvif,,{31.08123 + i / 1e5},{121.30456}" for i, d in enumerate(devices)
    ]
    path.write_text("address,port,kind,rtsp_uri,lat,lon\n" + "\n".join(rows) + "\n")
    return path


def adapter_config(
    settings: Settings, tmp: Path, devices: list[SimDevice], **export: Any
) -> AdapterConfig:
    secret = tmp / "police.pw"
    secret.write_text(PASSWORD + "\n")
    return AdapterConfig(
        network="police",
        cidrs=(ipaddress.ip_network(f"{POLICE}.0/24"),),
        redis=RedisLink(url=settings.redis.url, prefix=settings.redis.prefix),
        key_file=tmp / "police-adapter.key",
        state_dir=tmp / "state",
        credentials=CredentialRef(username="admin", password_file=secret),
        discovery=DiscoveryConfig(
            csv_inventory=inventory(tmp, devices),
            timeout_s=1.0,
            camera_budget_s=3.0,
        ),
        export=ExportPolicy(**export),
        heartbeat_s=0.2,
    )


@pytest.fixture
async def edge(
    aiohttp_client: Factory, settings: Settings, vault: CredentialVault, tmp_path: Path
) -> AsyncIterator[Edge]:
    cfg = gateway_settings(settings)
    client = await aiohttp_client(create_app(cfg, vault))
    secret, _ = await client.app[TOKENS].create("edge-admin", Role.admin, ["*"], "tests")
    devices = police_fleet()
    key = tmp_path / "police-adapter.key"
    create_key_file(key)
    adapter_vault = CredentialVault(load_key(key))
    adapter = adapter_config(
        cfg,
        tmp_path,
        devices,
        withhold=("address", "serial", "mac"),
        coordinate_decimals=2,
        max_width=640,
    )
    state = Edge(client, {"Authorization": f"Bearer {secret}"}, adapter, adapter_vault, devices)
    async with Simulator(devices, answer_delay_s=0.01, serve_rtsp=False):
        state.start()
        await state.connected()
        yield state
        if state.runner is not None:
            await state.stop()


def width_of(jpeg: bytes) -> int:
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return int(img.shape[1])


# --------------------------------------------------------------------------- discovery


async def test_discovery_through_the_edge_shares_only_what_the_owner_allows(edge: Edge) -> None:
    job = await edge.discover()
    assert (job["state"], job["progress"]["enriched"], job["failures"]) == ("done", 3, [])
    cams = await edge.cameras()
    assert len(cams) == 3
    for cam in cams:
        assert cam["address"] is None and cam["serial"] is None and cam["mac"] is None
        assert cam["device"]["ref"] and cam["snapshot_uri"] is None and cam["profiles"]
        assert all(p["stream_uri"] is None for p in cam["profiles"])
        assert cam["location"] == {"lat": 31.08, "lon": 121.3, "address": None}  # coarsened
        assert cam["vendor"] and cam["status"] == "online"
    # Withheld values are nowhere in Redis (every key, every value) nor in any API answer.
    redis = edge.client.app[REDIS]
    dump = b""
    async for key in redis.scan_iter("*"):
        kind = (await redis.type(key)).decode()
        if kind == "string":
            dump += await redis.get(key) or b""
        elif kind == "stream":
            for _, fields in await redis.xrange(key):
                dump += b"".join(fields.values())
        elif kind == "hash":
            dump += b"".join(k + v for k, v in (await redis.hgetall(key)).items())
        elif kind == "set":
            dump += b"".join(await redis.smembers(key))
    answers = (
        orjson.dumps(cams)
        + await (await edge.client.get("/api/v1/networks", headers=edge.admin)).read()
    )
    for device in edge.devices:
        for secret in (device.address, device.serial, device.mac, PASSWORD):
            assert secret.encode() not in dump, secret
            assert secret.encode() not in answers, secret
    # The adapter's own log says what it answered, and its chain is intact.
    verdict = check_log(edge.config.state_dir / "log", edge.vault.derive(LOG_PURPOSE))
    assert verdict.ok, verdict.sentence


async def test_which_credentials_read_a_camera_crosses_the_edge(edge: Edge) -> None:
    """The adapter's fingerprint of the credentials that read each camera reaches the
    registry (keyed with the adapter's own secret); one of credentials refused is carried too."""
    await edge.discover()
    fp = credentials_fingerprint(edge.vault.derive(REF_PURPOSE), UriCredentials("admin", PASSWORD))
    registry = edge.client.app[REGISTRY]
    cams = await edge.cameras()
    assert len(cams) == 3
    for cam in cams:
        assert await registry.worked_credentials("police", cam["id"]) == fp
    refused = Failure("police", None, FailureKind.auth, "refused", ref="cd" * 16, credentials_fp=fp)
    out = edge.runs[-1]._outgoing("job-1", CameraFailed(refused))
    assert out is not None
    message, _ = wire.decode_from_adapter({k.encode(): v for k, v in out.items()})
    assert isinstance(message, wire.CameraFailed)
    event = to_event("police", message)
    assert isinstance(event, CameraFailed) and event.failure.credentials_fp == fp


async def test_an_adapter_killed_mid_discovery_loses_no_camera(edge: Edge) -> None:
    for device in edge.devices:
        device.quirks.extra_delay_s = 0.3
    resp = await edge.client.post("/api/v1/networks/police/discover", headers=edge.admin)
    url = resp.headers["Location"]
    await asyncio.sleep(0.2)  # the discovery is under way in the adapter
    await edge.stop()  # the adapter's host goes down; its inbox entry stays pending
    for device in edge.devices:
        device.quirks.extra_delay_s = 0.0
    edge.start()  # back: it claims its pending discovery and runs it again
    for _ in range(600):
        job = await (await edge.client.get(url, headers=edge.admin)).json()
        if job["state"] != "running":
            break
        await asyncio.sleep(0.05)
    assert job["state"] == "done", job
    assert len(await edge.cameras()) == 3


async def test_health_rounds_through_the_edge_follow_the_cameras(edge: Edge) -> None:
    await edge.discover()
    service = edge.client.app[DISCOVERY]
    offline = edge.devices[0]
    offline.quirks.offline = True

    async def statuses() -> list[str]:
        return sorted(c["status"] for c in await edge.cameras())

    await service.health_round("police")
    assert await statuses() == ["online", "online", "online"]  # one lost probe is no outage
    await service.health_round("police")
    assert await statuses() == ["offline", "online", "online"]
    [down] = [c for c in await edge.cameras() if c["status"] == "offline"]
    assert down["last_error"].startswith("health: ")
    assert offline.address not in down["last_error"]  # the owner withholds addresses
    offline.quirks.offline = False
    await service.health_round("police")
    assert await statuses() == ["offline", "online", "online"]  # one answer is no recovery
    await service.health_round("police")
    assert await statuses() == ["online", "online", "online"]


async def test_a_probe_of_many_cameras_goes_in_batches(edge: Edge) -> None:
    await edge.discover()
    known = [Target(address="", ref=c["device"]["ref"]) for c in await edge.cameras()]
    unknown = [Target(address="", ref=f"{i:016x}") for i in range(2 * wire.PROBE_BATCH + 1)]
    adapter = edge.client.app[EDGE].adapter("police")
    results = await adapter.probe(unknown + known)
    assert sorted(r.ok for r in results) == [True] * 3  # the adapter answers for its own only
    redis = edge.client.app[REDIS]
    probes = [
        orjson.loads(fields[b"m"])
        for _, fields in await redis.xrange(wire.inbox(edge.config.redis.prefix, "police"))
        if b'"type":"probe"' in fields[b"m"]
    ]
    assert [len(p["refs"]) for p in probes] == [wire.PROBE_BATCH, wire.PROBE_BATCH, 4]


def test_probe_results_are_split_to_fit_a_message() -> None:
    outcomes = [
        wire.ProbeOutcome(ref=f"{i:016x}", ok=False, error="x" * 500, latency_ms=1.0)
        for i in range(300)
    ]
    answers = wire.probe_results("probe-1", outcomes)
    assert len(answers) > 1 and [a.more for a in answers][-1] is False
    assert all(a.more for a in answers[:-1])
    assert [o for a in answers for o in a.results] == outcomes
    for answer in answers:
        assert len(wire.encode(answer)["m"]) <= wire.MAX_MESSAGE_BYTES
    assert [a.more for a in wire.probe_results("probe-2", [])] == [False]


# --------------------------------------------------------------------------- snapshots


async def test_snapshots_through_the_edge_on_both_policies(edge: Edge) -> None:
    await edge.discover()
    [cam, *_] = await edge.cameras()
    op = await edge.token("operator")
    url = f"/api/v1/cameras/{cam['id']}/snapshot"
    resp = await edge.client.get(url, params={"reason": "INC-1"}, headers=op)
    assert resp.status == 200, await resp.text()
    assert width_of(await resp.read()) == 640  # the owner's max width, applied in the adapter
    # Applied messages leave the outbox: the picture's bytes do not stay in Redis.
    redis, outbox = edge.client.app[REDIS], wire.outbox(edge.config.redis.prefix, "police")
    for _ in range(50):
        if await redis.xlen(outbox) <= 1:  # (at most a heartbeat on its way)
            break
        await asyncio.sleep(0.02)
    assert await redis.xlen(outbox) <= 1
    # The gateway's own policy on top: the police require a reason here too.
    resp = await edge.client.get(url, headers=op)
    assert resp.status == 422 and (await resp.json())["field"] == "reason"


async def test_the_owners_refusal_reaches_the_operator(edge: Edge, tmp_path: Path) -> None:
    await edge.discover()
    await edge.stop()
    edge.start(edge.config.model_copy(update={"export": ExportPolicy(snapshots=False)}))
    await edge.connected()
    [cam, *_] = await edge.cameras()
    op = await edge.token("operator")
    resp = await edge.client.get(
        f"/api/v1/cameras/{cam['id']}/snapshot", params={"reason": "INC-2"}, headers=op
    )
    assert resp.status == 403
    assert (await resp.json())["detail"] == (
        f"camera {cam['id']}: the police network shares no snapshots"
    )


async def test_an_adapter_that_is_gone_fails_fast_and_shows(edge: Edge) -> None:
    await edge.discover()
    [cam, *_] = await edge.cameras()
    await edge.stop()
    hub = edge.client.app[EDGE]
    heard = hub.status["police"].last_heard
    assert heard is not None
    hub.clock = lambda: heard + 1.5  # past heartbeat_timeout_s (1 s) since the last message
    op = await edge.token("operator")
    resp = await edge.client.get(
        f"/api/v1/cameras/{cam['id']}/snapshot", params={"reason": "INC-3"}, headers=op
    )
    assert resp.status == 503
    assert (await resp.json())["detail"].startswith(
        "the police network's adapter is not connected (last heard from"
    )
    nets = {
        n["id"]: n
        for n in await (await edge.client.get("/api/v1/networks", headers=edge.admin)).json()
    }
    adapter = nets["police"]["adapter"]
    assert (adapter["mode"], adapter["state"], adapter["edge"]["connected"]) == (
        "edge",
        "unreachable",
        False,
    )
    assert nets["police"]["cameras"] == 3  # still listed
    metrics = await (await edge.client.get("/metrics", headers=edge.admin)).text()
    assert 'camgw_edge_connected{network="police"} 0.0' in metrics
    age = float(metrics.split('camgw_edge_heartbeat_age_seconds{network="police"} ')[1].split()[0])
    assert age == 1.5


async def test_a_request_past_its_deadline_is_dropped_by_the_adapter(edge: Edge) -> None:
    await edge.discover()
    [cam, *_] = await edge.cameras()
    hub = edge.client.app[EDGE]
    late = wire.Snapshot(
        request="snap-late", ref=cam["device"]["ref"], requester="op", role="operator",
        reason="INC-4", deadline=1.0,
    )  # fmt: skip
    answer = hub.open_snapshot("snap-late", deadline=time.time() + 5)
    await hub.send("police", late)
    with pytest.raises(CameraTimeout, match="the request expired"):
        await asyncio.wait_for(answer, 5)
    hub.close_snapshot("snap-late")
    lines = (edge.config.state_dir / "log").glob("*.jsonl")
    logged = [orjson.loads(line) for f in lines for line in f.read_bytes().splitlines()]
    assert any(e.get("request") == "snap-late" and e.get("outcome") == "expired" for e in logged)


async def test_liveness_in_metrics_while_connected(edge: Edge) -> None:
    await edge.discover()
    await edge.client.app[EDGE].inbox_depth("police")
    metrics = await (await edge.client.get("/metrics", headers=edge.admin)).text()
    assert 'camgw_edge_connected{network="police"} 1.0' in metrics
    assert 'camgw_edge_inbox_depth{network="police"} 0.0' in metrics
    assert 'camgw_edge_adapter{network="police",version="' in metrics
    for _ in range(50):  # the heartbeat after the discovery carries its count
        if 'camgw_edge_cameras_known{network="police"} 3.0' in metrics:
            break
        await asyncio.sleep(0.05)
        metrics = await (await edge.client.get("/metrics", headers=edge.admin)).text()
    assert 'camgw_edge_cameras_known{network="police"} 3.0' in metrics
    assert 'camgw_edge_last_discovery_timestamp_seconds{network="police"}' in metrics


# --------------------------------------------------------------------------- hostile messages


@pytest.mark.parametrize(
    ("fields", "reason", "kind"),
    [
        ({b"m": orjson.dumps({"v": 1, "type": "hello", "network": "governance",
                              "adapter_version": "x", "started_at": 1.0})},
         "names network 'governance', not 'police'", "wrong-network"),
        ({b"m": orjson.dumps({"v": 1, "type": "camera.read", "job": "j", "camera": {"ref": "zz"}})},
         "invalid camera.read.camera.ref", "invalid"),
        ({b"m": orjson.dumps({"v": 2, "type": "hello"})}, "schema version", "schema"),
        ({b"m": b"{" + b" " * (70 << 10) + b"}"}, "over the 65536-byte limit", "oversized"),
        ({b"m": b"not json"}, "not JSON", "malformed"),
        ({b"x": b"1"}, "no message field", "malformed"),
    ],
)  # fmt: skip
async def test_forged_outbox_messages_are_refused_and_audited(
    edge: Edge, fields: dict[bytes, bytes], reason: str, kind: str
) -> None:
    redis = edge.client.app[REDIS]
    prefix = edge.config.redis.prefix
    before = len(await edge.cameras())
    await redis.xadd(wire.outbox(prefix, "police"), fields)  # type: ignore[arg-type]
    auditor = await edge.token("auditor")
    for _ in range(100):
        items = (
            await (await edge.client.get("/api/v1/audit?network=police", headers=auditor)).json()
        )["items"]
        refused = [e for e in items if e["action"] == "edge.refused"]
        if refused:
            break
        await asyncio.sleep(0.05)
    assert refused and reason in refused[0]["detail"], refused
    assert refused[0]["network"] == "police"
    assert len(await edge.cameras()) == before  # never applied
    # Counted by kind (never by the sender's own words) where an operator looks.
    nets = await (await edge.client.get("/api/v1/networks", headers=edge.admin)).json()
    [police] = [n for n in nets if n["id"] == "police"]
    assert police["adapter"]["edge"]["refused"] == {kind: 1}
    metrics = await (await edge.client.get("/metrics", headers=edge.admin)).text()
    assert f'camgw_edge_refused_messages_total{{network="police",reason="{kind}"}} 1.0' in metrics


async def test_the_gateway_holds_no_credentials_of_an_edge_network(edge: Edge) -> None:
    body = {
        "network": "police", "name": "x", "category": "traffic", "address": f"{POLICE}.99",
        "credentials": {"username": "admin", "password": "secret-1"},
    }  # fmt: skip
    resp = await edge.client.post("/api/v1/cameras", json=body, headers=edge.admin)
    assert resp.status == 422
    assert (await resp.json())["errors"][0] == {
        "field": "credentials",
        "message": "network 'police' keeps its cameras' credentials in its adapter",
    }


def test_the_shipped_adapter_example_loads_and_names_its_mistakes(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "config" / "police-adapter.example.toml"
    cfg = load_adapter_config(example, "police")
    assert cfg.export.reason_required and "address" in cfg.export.withhold
    with pytest.raises(ConfigError, match="configures network 'police', not 'governance'"):
        load_adapter_config(example, "governance")
    bad = tmp_path / "bad.toml"
    bad.write_text(
        example.read_text().replace("coordinate_decimals = 3", "coordinate_decimals = 9")
    )
    with pytest.raises(ConfigError, match=r"bad\.toml: export\.coordinate_decimals: Input should"):
        load_adapter_config(bad, "police")


def test_a_channel_of_an_nvr_crosses_the_edge_whole() -> None:
    camera = Discovered(
        network="police",
        address=f"{POLICE}.40",
        source="csv",
        ref="ab" * 16,
        port=8000,
        channel="VideoSource_5",
        channel_index=5,
        channels=16,
        profiles=(Profile("Profile_501", source="VideoSource_5"),),
    )
    back = wire.from_info("police", wire.CameraInfo.model_validate_json(
        wire.to_info(camera).model_dump_json()
    ))  # fmt: skip
    assert back == camera
