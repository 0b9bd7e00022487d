"""The deployment the networks' owners require, built from network namespaces this test creates
and removes (docs/edge.md, README "Deployment"):

    this test (the ops center) --10.254.N.0/30--> boundary: Redis (TLS, ACL users) + gateway
    police:     cameras 10.31.0.10-13, police adapter     --10.200.1.0/30--> boundary Redis
    governance: cameras 10.21.0.10-13, governance adapter --10.200.2.0/30--> boundary Redis

Nothing forwards between the links (a new namespace has ip_forward off), and the boundary has
no route to a camera range: the adapters' connections to Redis are the only way across. Every
part is the real thing: `camgw serve`, `camgw adapter`, redis-server, simulated ONVIF cameras.

It skips, saying why, where namespaces cannot be made (not root, no `ip`, no CAP_NET_ADMIN).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import cv2
import numpy as np
import orjson
import pytest
import redis.asyncio as aioredis

from adapters.simulator.devices import SimDevice
from adapters.simulator.fleet import FleetCamera
from adapters.simulator.server import build_devices
from gateway import acl
from gateway.auth import TokenStore
from gateway.models import Role
from gateway.redis_server import RedisServer, ServerTLS
from gateway.settings import load_settings
from tests.pki import TestCA

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
N = os.getpid() % 250 + 1
TAG = f"cgw{os.getpid() % 100_000}"
BOUNDARY, POLICE, GOVERNANCE = f"{TAG}b", f"{TAG}p", f"{TAG}g"
HARNESS = f"10.254.{N}.1"  # this test's end of its link to the boundary
GATEWAY = f"10.254.{N}.2"  # the boundary's end: the gateway's HTTP port, Redis for the test
REDIS_PORT, HTTP_PORT = 6399, 8080
PREFIX = "camgw"
LINKS = {"police": ("10.200.1.1", "10.200.1.2"), "governance": ("10.200.2.1", "10.200.2.2")}
RANGES = {"police": "10.31.0", "governance": "10.21.0"}
NAMESPACES = {"police": POLICE, "governance": GOVERNANCE}
PASSWORDS = {"police": "pol-NS-pw-71x", "governance": "gov-NS-pw-38q"}
DELAYS = {"police": 0.05, "governance": 0.4}  # governance slow: killed mid-discovery
CAMERAS = 4
Json = dict[str, Any]


# -- the namespaces ------------------------------------------------------------------------


def sh(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def why_no_namespaces() -> str | None:
    if os.geteuid() != 0:
        return "creating network namespaces needs root (run `make test` as root)"
    if shutil.which("ip") is None or shutil.which("ss") is None:
        return "needs iproute2 (`ip`, `ss`): `make test` installs it"
    probe = f"{TAG}x"
    try:
        sh("ip", "netns", "add", probe)
    except RuntimeError as exc:
        return f"cannot create a network namespace here: {exc}"
    sh("ip", "netns", "del", probe)
    return None


def build_namespaces() -> None:
    for ns in (BOUNDARY, POLICE, GOVERNANCE):
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    # This test's link to the boundary (the ops center's view of the gateway).
    sh("ip", "link", "add", f"{TAG}o", "type", "veth", "peer", "name", "ops", "netns", BOUNDARY)
    sh("ip", "addr", "add", f"{HARNESS}/30", "dev", f"{TAG}o")
    sh("ip", "link", "set", f"{TAG}o", "up")
    sh("ip", "-n", BOUNDARY, "addr", "add", f"{GATEWAY}/30", "dev", "ops")
    sh("ip", "-n", BOUNDARY, "link", "set", "ops", "up")
    for network, ns in NAMESPACES.items():
        inner, outer = LINKS[network]
        sh("ip", "-n", ns, "link", "add", "up0", "type", "veth", "peer", "name", network[:3],
           "netns", BOUNDARY)  # fmt: skip
        sh("ip", "-n", ns, "addr", "add", f"{outer}/30", "dev", "up0")
        sh("ip", "-n", ns, "link", "set", "up0", "up")
        sh("ip", "-n", BOUNDARY, "addr", "add", f"{inner}/30", "dev", network[:3])
        sh("ip", "-n", BOUNDARY, "link", "set", network[:3], "up")
        for i in range(CAMERAS):  # the cameras' addresses, the namespace's own
            sh("ip", "-n", ns, "addr", "add", f"{RANGES[network]}.{10 + i}/32", "dev", "lo")


def remove_namespaces() -> None:
    with contextlib.suppress(RuntimeError):
        sh("ip", "link", "del", f"{TAG}o")
    for ns in (BOUNDARY, POLICE, GOVERNANCE):
        with contextlib.suppress(RuntimeError):
            sh("ip", "netns", "del", ns)


# -- the town ------------------------------------------------------------------------------


def toml(data: dict[str, Any]) -> str:
    """A config as TOML: each top-level key as `key = <inline value>` (None left out)."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v, ensure_ascii=False)
        if isinstance(v, list | tuple):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            items = (f"{json.dumps(k)} = {value(x)}" for k, x in v.items() if x is not None)
            return "{" + ", ".join(items) + "}"
        raise TypeError(f"no TOML for {v!r}")

    return "".join(f"{json.dumps(k)} = {value(v)}\n" for k, v in data.items() if v is not None)


def fleet(network: str) -> list[SimDevice]:
    cameras = [
        FleetCamera(
            id=f"{network}.ns-{i}",
            network=network,
            category="public-security" if network == "police" else "sharp-eyes",
            name=f"ns-{i}",
            address=f"{RANGES[network]}.{10 + i}",
            lat=31.08123 + i / 1e5,
            lon=121.30456,
            place="Test Rd, Dongjing",
        )
        for i in range(CAMERAS)
    ]
    return build_devices(cameras, {network: PASSWORDS[network]})


@dataclass
class Town:
    tmp: Path
    server: RedisServer
    devices: dict[str, list[SimDevice]]
    tokens: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{GATEWAY}:{HTTP_PORT}"

    def spawn(self, name: str, ns: str, *argv: str) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *argv],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")[-3000:]

    def adapter_config(self, network: str) -> Path:
        return self.tmp / network / "adapter.toml"

    def start_adapter(self, network: str) -> subprocess.Popen[bytes]:
        return self.spawn(
            f"{network}-adapter",
            NAMESPACES[network],
            str(BIN / "camgw"),
            "adapter",
            "--network",
            network,
            "--config",
            str(self.adapter_config(network)),
        )

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


def gateway_config(tmp: Path, pki: dict[str, Path]) -> Path:
    base = load_settings(ROOT / "config" / "camgw.toml", use_env=False)
    data = base.model_dump(mode="json", exclude_none=True)
    data["server"] |= {"host": GATEWAY, "port": HTTP_PORT, "access_log": False}
    data["redis"] = {
        "url": f"rediss://127.0.0.1:{REDIS_PORT}/0",
        "prefix": PREFIX,
        "username": acl.GATEWAY_USER,
        "password_file": str(tmp / "passwords" / f"{acl.GATEWAY_USER}.password"),
        "ca_file": str(pki["ca"]),
        "cert_file": str(pki["gateway.crt"]),
        "key_file": str(pki["gateway.key"]),
    }
    data["secrets"] = {"key_file": str(tmp / "gateway.key")}
    data["audit"] |= {"archive_dir": str(tmp / "audit")}
    for net in data["networks"]:
        net["discovery"] |= {"wsdiscovery_targets": [], "health_interval_s": 0}
        if net["id"] in NAMESPACES:  # the edge networks: no credentials, no sources here
            net.pop("credentials", None)
            net.update(mode="edge", cidrs=[f"{RANGES[net['id']]}.0/24"])
    data["edge"] = {"heartbeat_timeout_s": 3.0, "restart_grace_s": 30.0, "snapshot_timeout_s": 10}
    path = tmp / "gateway.toml"
    path.write_text(toml(data))
    return path


def adapter_config(tmp: Path, network: str, pki: dict[str, Path], user: str) -> Path:
    home = tmp / network
    home.mkdir(parents=True, exist_ok=True)
    (home / "camera.password").write_text(PASSWORDS[network] + "\n")
    rows = [f"{RANGES[network]}.{10 + i},8000,onvif,,31.08123,121.30456" for i in range(CAMERAS)]
    (home / "inventory.csv").write_text("address,port,kind,rtsp_uri,lat,lon\n" + "\n".join(rows))
    data = {
        "network": network,
        "cidrs": [f"{RANGES[network]}.0/24"],
        "redis": {
            "url": f"rediss://{LINKS[network][0]}:{REDIS_PORT}/0",
            "prefix": PREFIX,
            "username": user,
            "password_file": str(tmp / "passwords" / f"{user}.password"),
            "ca_file": str(pki["ca"]),
            "cert_file": str(pki[f"{network}.crt"]),
            "key_file": str(pki[f"{network}.key"]),
        },
        "key_file": str(home / "adapter.key"),
        "state_dir": str(home / "state"),
        "credentials": {"username": "admin", "password_file": str(home / "camera.password")},
        "discovery": {
            "csv_inventory": str(home / "inventory.csv"),
            "timeout_s": 3.0,
            "camera_budget_s": 15.0,
        },
        "export": {
            "withhold": ["address", "serial", "mac", "stream_uris", "snapshot_uri"],
            "coordinate_decimals": 2,
        },
        "heartbeat_s": 0.5,
    }
    path = home / "adapter.toml"
    path.write_text(toml(data))
    return path


def make_pki(tmp: Path) -> dict[str, Path]:
    ca = TestCA(tmp / "pki", "camgw namespace test CA")
    server = ca.issue(
        "redis", server=True, ips=("127.0.0.1", GATEWAY, *(inner for inner, _ in LINKS.values()))
    )
    out = {"ca": ca.file, "redis.crt": server.cert, "redis.key": server.key}
    for name in ("gateway", "harness", *NAMESPACES):
        issued = ca.issue(name, server=False)
        out[f"{name}.crt"], out[f"{name}.key"] = issued.cert, issued.key
    return out


def wait_for(what: str, check: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            if check():
                return
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s")


async def http_ok(url: str) -> bool:
    try:
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            return resp.status == 200
    except aiohttp.ClientError:
        return False


@pytest.fixture(scope="module")
async def town(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Town]:
    reason = why_no_namespaces()
    if reason:
        pytest.skip(f"namespace test skipped: {reason}")
    tmp = tmp_path_factory.mktemp("town")
    remove_namespaces()  # a run killed before its teardown
    build_namespaces()
    try:
        async with _town(tmp) as town:
            yield town
    finally:
        remove_namespaces()


@contextlib.asynccontextmanager
async def _town(tmp: Path) -> AsyncIterator[Town]:
    pki = make_pki(tmp)
    base = load_settings(ROOT / "config" / "camgw.toml", use_env=False)
    users = acl.users_for(base.model_copy(update={"networks": _edge_networks(base)}))
    creds = acl.credentials(users, {}, tmp / "passwords")
    harness_pw = acl.new_password()
    lines = [
        "user default off resetkeys -@all",
        f"user harness on #{acl.password_hash(harness_pw)} ~* &* +@all",
        *(c.user.line(c.password_hash) for c in creds),
    ]
    tls = ServerTLS(
        pki["redis.crt"], pki["redis.key"], pki["ca"], "yes", pki["harness.crt"], pki["harness.key"]
    )
    server = RedisServer(
        tmp / "redis",
        port=REDIS_PORT,
        appendonly=False,
        host=GATEWAY,
        also_bind=("127.0.0.1", *(inner for inner, _ in LINKS.values())),
        acl=tuple(lines),
        tls=tls,
        auth=("harness", harness_pw),
        netns=BOUNDARY,
    ).start()
    town = Town(tmp, server, {n: fleet(n) for n in NAMESPACES})
    user_of = {c.user.name: c.user for c in creds}
    try:
        gw = gateway_config(tmp, pki)
        sh(str(BIN / "camgw"), "--config", str(gw), "keygen")
        async with harness_redis(server) as client:
            store = TokenStore(client, PREFIX)
            for role in ("admin", "operator", "auditor"):
                town.tokens[role], _ = await store.create(f"ns-{role}", Role(role), ["*"], "ns")
        town.spawn("gateway", BOUNDARY, str(BIN / "camgw"), "--config", str(gw), "serve")
        for network, ns in NAMESPACES.items():
            spec = tmp / f"{network}-cameras.json"
            spec.write_bytes(
                orjson.dumps(
                    {
                        "network": network,
                        "password": PASSWORDS[network],
                        "delay_s": DELAYS[network],
                        "cameras": [dataclasses.asdict(d.camera) for d in town.devices[network]],
                    }
                )
            )
            town.spawn(f"{network}-cameras", ns, sys.executable, "-m",
                       "tests.integration.cameras", str(spec))  # fmt: skip
            user = next(u for u in user_of if u.endswith(network))
            cfg = adapter_config(tmp, network, pki, user)
            sh(str(BIN / "camgw"), "adapter", "--network", network, "--config", str(cfg), "keygen")
        for network in NAMESPACES:
            wait_for(f"{network} cameras", lambda n=network: "READY" in town.log(f"{n}-cameras"))
            town.start_adapter(network)
        deadline = time.monotonic() + 30
        while not await http_ok(f"{town.url}/healthz"):
            assert time.monotonic() < deadline, town.log("gateway")
            await asyncio.sleep(0.1)
        for network in NAMESPACES:
            await connected(town, network)
        yield town
    finally:
        for name in list(town.procs):
            town.stop(name)
        server.stop()


def _edge_networks(base: Any) -> list[Any]:
    return [
        n.model_copy(update={"mode": "edge"}) if n.id in NAMESPACES else n for n in base.networks
    ]


@contextlib.asynccontextmanager
async def harness_redis(server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis(**server.client_kwargs())
    try:
        yield client
    finally:
        await client.aclose()


# -- the ops center's requests -------------------------------------------------------------


async def api(town: Town, method: str, path: str, role: str = "admin", **kw: Any) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, town.url + path, headers=town.headers(role), **kw) as resp,
    ):
        body = await resp.read()
        if resp.content_type == "application/json" or resp.content_type.endswith("+json"):
            return resp.status, orjson.loads(body)
        return resp.status, body


async def connected(town: Town, network: str) -> Json:
    deadline = time.monotonic() + 30
    while True:
        _, nets = await api(town, "GET", "/api/v1/networks")
        [net] = [n for n in nets if n["id"] == network]
        edge = net["adapter"]["edge"]
        if edge and edge["connected"]:
            return dict(net)
        assert time.monotonic() < deadline, town.log(f"{network}-adapter")
        await asyncio.sleep(0.1)


async def discover(town: Town, network: str) -> str:
    status, job = await api(town, "POST", f"/api/v1/networks/{network}/discover")
    assert status == 202, job
    return str(job["id"])


async def finished(town: Town, job: str) -> Json:
    deadline = time.monotonic() + 60
    while True:
        _, state = await api(town, "GET", f"/api/v1/jobs/{job}")
        if state["state"] != "running":
            return dict(state)
        assert time.monotonic() < deadline, state
        await asyncio.sleep(0.1)


async def cameras(town: Town, network: str, role: str = "admin") -> list[Json]:
    status, page = await api(town, "GET", f"/api/v1/cameras?network={network}", role)
    assert status == 200, page
    return list(page["items"])


def inside(ns: str, code: str, *args: str) -> str:
    """Python run inside a namespace (Debian's, or the venv's for camgw's modules)."""
    return sh("ip", "netns", "exec", ns, sys.executable, "-c", code, *args).strip()


CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()
    print("connected")
except OSError as exc:
    print(exc.errno, exc.strerror)
"""


# -- the tests -----------------------------------------------------------------------------


async def test_the_gateway_cannot_reach_a_police_camera_yet_gets_its_picture(town: Town) -> None:
    job = await finished(town, await discover(town, "police"))
    assert (job["state"], job["progress"]["enriched"], job["failures"]) == ("done", CAMERAS, [])
    camera = town.devices["police"][0]
    # From the boundary (where the gateway runs) the camera's address does not exist...
    assert inside(BOUNDARY, CONNECT, camera.address, "8000") == "101 Network is unreachable"
    # ...while from the police network it answers (the adapter's side).
    assert inside(POLICE, CONNECT, camera.address, "8000") == "connected"
    [first, *_] = await cameras(town, "police")
    status, jpeg = await api(
        town, "GET", f"/api/v1/cameras/{first['id']}/snapshot?reason=INC-NS-1", "operator"
    )
    assert status == 200, jpeg
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[1] > 0


async def test_withheld_fields_are_in_no_redis_key_and_no_answer(town: Town) -> None:
    job = await finished(town, await discover(town, "police"))
    assert job["state"] == "done"
    listed = await cameras(town, "police")
    assert len(listed) == CAMERAS
    answers = orjson.dumps(listed)
    for cam in listed:
        _, record = await api(town, "GET", f"/api/v1/cameras/{cam['id']}")
        answers += orjson.dumps(record)
        assert record["address"] is None and record["serial"] is None and record["mac"] is None
        assert record["location"]["lat"] == 31.08  # coarsened by the owner's policy
    answers += orjson.dumps((await api(town, "GET", "/api/v1/networks"))[1])
    dump = await every_value(town.server)
    for device in town.devices["police"]:
        for secret in (device.address, device.serial, device.mac, PASSWORDS["police"]):
            assert secret.encode() not in dump, f"{secret} is in Redis"
            assert secret.encode() not in answers, f"{secret} is in an API answer"


async def every_value(server: RedisServer) -> bytes:
    """Every key's name and value, whatever its type."""
    out = b""
    async with harness_redis(server) as client:
        async for key in client.scan_iter("*", count=1000):
            out += key
            kind = (await client.type(key)).decode()
            if kind == "string":
                out += await client.get(key) or b""
            elif kind == "hash":
                out += b"".join(k + v for k, v in (await client.hgetall(key)).items())
            elif kind == "set":
                out += b"".join(await client.smembers(key))
            elif kind == "zset":
                out += b"".join(m for m, _ in await client.zrange(key, 0, -1, withscores=True))
            elif kind == "list":
                out += b"".join(await client.lrange(key, 0, -1))
            elif kind == "stream":
                for _, fields in await client.xrange(key):
                    out += b"".join(k + v for k, v in fields.items())
    return out


async def test_an_adapter_killed_mid_discovery_loses_no_camera(town: Town) -> None:
    job = await discover(town, "governance")
    await asyncio.sleep(1.0)  # the adapter is reading cameras (each answer takes 0.4 s)
    _, state = await api(town, "GET", f"/api/v1/jobs/{job}")
    assert state["state"] == "running", state
    town.stop("governance-adapter", signal.SIGKILL)  # its machine loses power
    town.start_adapter("governance")  # back: it finds its pending request and runs it again
    done = await finished(town, job)
    assert (done["state"], done["progress"]["enriched"]) == ("done", CAMERAS), done
    assert len(await cameras(town, "governance")) == CAMERAS
    cfg = str(town.adapter_config("governance"))
    verdict = sh(
        str(BIN / "camgw"), "adapter", "--network", "governance", "--config", cfg, "audit", "verify"
    )
    assert verdict.startswith("adapter log intact"), verdict


FORGE = """
import asyncio, sys
from pathlib import Path
import orjson
from redis.exceptions import NoPermissionError
from adapters import wire
from adapters.redis_link import connect
from adapters.remote_config import load_adapter_config

async def main():
    cfg = load_adapter_config(Path(sys.argv[1]))
    r, p = connect(cfg.redis), cfg.redis.prefix
    mine = wire.outbox(p, cfg.network)
    forged = [
        {"v": 1, "type": "hello", "network": "governance", "adapter_version": "x",
         "started_at": 1.0},
        {"v": 2, "type": "hello"},
    ]
    for message in forged:
        await r.xadd(mine, {"m": orjson.dumps(message)})
    await r.xadd(mine, {"m": b"{" + b" " * (70 << 10) + b"}"})
    tries = {
        "governance outbox": lambda: r.xadd(wire.outbox(p, "governance"), {"m": b"{}"}),
        "governance inbox": lambda: r.xrange(wire.inbox(p, "governance")),
        "registry keys": lambda: r.scan(0, match="*"),
        "a camera record": lambda: r.hgetall(f"{p}:camera:police.x"),
        "the audit stream": lambda: r.xrange(f"{p}:audit"),
        "its own outbox, read": lambda: r.xrange(mine),
    }
    out = {}
    for name, call in tries.items():
        try:
            await call()
            out[name] = "allowed"
        except NoPermissionError:
            out[name] = "refused"
    print(orjson.dumps(out).decode())
    await r.aclose()

asyncio.run(main())
"""


async def test_forged_outbox_messages_are_refused_and_audited(town: Town) -> None:
    out = orjson.loads(inside(POLICE, FORGE, str(town.adapter_config("police"))))
    assert set(out.values()) == {"refused"}, out  # the police adapter's ACL user
    expected = [
        "names network 'governance', not 'police'",
        "schema version '2', this gateway speaks 1",
        "over the 65536-byte limit",
    ]
    deadline = time.monotonic() + 10
    while True:
        _, page = await api(town, "GET", "/api/v1/audit?network=police&limit=200", "auditor")
        details = [e["detail"] for e in page["items"] if e["action"] == "edge.refused"]
        if all(any(x in d for d in details) for x in expected):
            break
        assert time.monotonic() < deadline, details
        await asyncio.sleep(0.1)
    assert len(await cameras(town, "governance")) in (0, CAMERAS)  # nothing applied elsewhere
    net = await connected(town, "police")
    assert net["adapter"]["edge"]["refused"]["wrong-network"] >= 1


def sockets(ns: str, pid: int) -> list[list[str]]:
    """The TCP sockets of one process in a namespace: [state, local, peer]."""
    lines = sh("ip", "netns", "exec", ns, "ss", "-Htanp").splitlines()
    return [line.split()[:1] + line.split()[3:5] for line in lines if f"pid={pid}," in line]


async def test_the_adapter_listens_on_no_port_and_connects_only_out(town: Town) -> None:
    await finished(town, await discover(town, "police"))
    pid = town.procs["police-adapter"].pid
    mine = sockets(POLICE, pid)
    assert mine, "the adapter holds no connection at all"
    assert not [s for s in mine if s[0] == "LISTEN"], mine
    peers = {s[2].rsplit(":", 1)[0] for s in mine if s[0] == "ESTAB"}
    redis_side = LINKS["police"][0]
    assert peers <= {redis_side} | {d.address for d in town.devices["police"]}, peers
    assert redis_side in peers
    # And the gateway holds no socket to any camera network's address.
    gateway = sockets(BOUNDARY, town.procs["gateway"].pid)
    assert not [s for s in gateway if s[2].startswith(("10.31.", "10.21."))], gateway
