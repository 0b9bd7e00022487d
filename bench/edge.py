"""The edge against in-process, in one run, on the same simulated cameras: snapshot cache misses
(latency at one client, throughput at saturation) and discovery of the measured networks' whole
fleet, each through the network's edge adapter (Redis streams) and through the gateway itself.

Setup: `camgw simulate --scale 1.0 --delay 0.05 --no-rtsp` serving the measured networks' cameras
(police by default: 591 ONVIF cameras; each camera's textured JPEG rendered once) as its own
process on the load core. Per round and mode a fresh private redis-server and `camgw serve` on the
server core, with a temporary copy of the shipped config (see `gateway_config`); in edge mode the
measured networks are `mode = "edge"` and each gets `camgw adapter` (its own config file, key,
state directory and the cameras' password, none of which the gateway has), by default as its own
process pinned to the gateway's core (the edge gets no CPU the in-process gateway does not have).
Both modes discover from the same CSV inventory with the same discovery settings, then serve the
same cameras' snapshots with every cache off. Modes alternate (in-process first in odd rounds).
Every child runs a copy of gateway/ and adapters/ taken at start (the tree may change meanwhile).

Internal modes (run by the benchmark itself): `_serve ADAPTER.toml[,...] CAMGW-ARGS...` is
`camgw serve` (the same CLI code) with those edge adapters as tasks of the gateway's event loop
(`--adapter-in-gateway`); `_simulate once|fresh CAMGW-ARGS...` is `camgw simulate` with textured
frames rendered once per camera or for every request (`--fresh-frames`).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import orjson
from common import (
    LOAD_CORE,
    LOCALHOST,
    ROOT,
    SERVER_CORE,
    BenchError,
    GatewayStack,
    camgw_binary,
    can_pin,
    exit_on_sigterm,
    fmt_spread,
    free_port,
    header_lines,
    http_request,
    log_tail,
    markdown_table,
    progress,
    start_process,
    stop_process,
    toml_lines,
    tree_cpu_seconds,
    wait_http,
)
from snapshots import TEXTURE_SIGMA, GenResult, run_generator, tree_state

from adapters.redis_link import connect
from adapters.remote import EdgeRunner
from adapters.remote_config import load_adapter_config
from adapters.simulator import onvif_server, snapshot  # noqa: F401 - imported for the patch
from adapters.vault import CredentialVault, create_key_file, load_key
from gateway import cli
from gateway.app import create_app, redis_client
from gateway.demo import fleet_for
from gateway.redis_server import RedisServer
from gateway.settings import Settings
from gateway.vault import create_key_file as create_gateway_key

HERE = Path(__file__).resolve()
SCALE = 1.0  # the whole inventory of each measured network (police: 591 cameras)
DELAY_S = 0.05  # PERF-NOTES: simulated cameras answer after 50 ms
ONVIF_PORT = 8000
RATE_LIMIT = 10_000  # per operator and network and minute: the largest the config allows
REASON = "INC-bench-edge-0001"
GATEWAY_CORE = SERVER_CORE
SIM_CORE = LOAD_CORE  # the cameras and the load generator are "elsewhere"
MISS_AIM_MS = 5.0  # edge p50 minus in-process p50, snapshot miss
DISCOVERY_AIM = 0.90  # edge cameras/s over in-process cameras/s
JOB_TIMEOUT_S = 180.0
POLL_S = 0.1
MODES = ("in-process", "edge")
GEN_HEADERS = ["X-Snapshot-Cache", "X-Snapshot-Source", "X-Snapshot-Taken-At"]


def _check(cond: object, msg: str) -> None:
    if not cond:
        raise BenchError(msg)


# -- configs -------------------------------------------------------------------------------------


def _write_toml(path: Path, raw: dict[str, Any], what: str) -> Path:
    out = [f"# camgw benchmark {what} (bench/edge.py)"]
    toml_lines(raw, [], out)
    text = "\n".join(out) + "\n"
    _check(tomllib.loads(text) == raw, f"{what} did not round-trip through TOML")
    path.write_text(text)
    path.chmod(0o600)
    return path


@functools.cache
def _shipped_text() -> str:
    return (ROOT / "config" / "camgw.toml").read_text()  # read once: the file may change


def shipped() -> dict[str, Any]:
    """The shipped config as it was when the benchmark started (a fresh copy each call)."""
    return tomllib.loads(_shipped_text())


def place_networks(raw: dict[str, Any], range_base: int) -> None:
    """Every network on its own loopback /16 from 127.<range_base>.0.0 (tests, the demo and
    the other benchmarks use 127.1-3.x and 127.201-203.x: two simulators cannot share an
    address), no discovery sources, no health probes."""
    for i, net in enumerate(raw["networks"]):
        net["cidrs"] = [f"127.{range_base + i}.0.0/16"]
        net["discovery"]["wsdiscovery_targets"] = []
        net["discovery"]["health_interval_s"] = 0.0


def gateway_config(
    mode: str, measured: list[str], range_base: int, inventories: dict[str, Path]
) -> dict[str, Any]:
    """The shipped config, changed only where the benchmark needs it: own loopback ranges, no
    health probes; snapshots.min_interval_s 0; on the measured networks cache_ttl_s 0 and
    rate_limit_per_minute 10,000 (every request a miss, none refused) and discovery from the
    CSV inventory of the fleet (in edge mode: `mode = "edge"`, no credentials and no discovery
    sources, which the adapter has). Policies (watermark, reason, max_width), discovery
    concurrency and timeouts, workers and cache size as shipped."""
    raw = shipped()
    place_networks(raw, range_base)
    raw.setdefault("snapshots", {})["min_interval_s"] = 0.0
    for net in raw["networks"]:
        if net["id"] not in measured:
            continue
        net["sharing"]["cache_ttl_s"] = 0.0
        net["sharing"]["rate_limit_per_minute"] = RATE_LIMIT
        if mode == "edge":
            net["mode"] = "edge"
            del net["credentials"]
        else:
            net["discovery"]["csv_inventory"] = str(inventories[net["id"]])
    return raw


def simulator_config(measured: list[str], range_base: int) -> dict[str, Any]:
    """Only the measured networks and their categories: the simulator serves their cameras."""
    raw = shipped()
    place_networks(raw, range_base)
    raw["networks"] = [n for n in raw["networks"] if n["id"] in measured]
    raw["categories"] = [
        c for c in raw["categories"] if c.get("network", None) in (*measured, None)
    ]
    return raw


def adapter_config(
    net: dict[str, Any], redis_url: str, workdir: Path, password_file: Path, inventory: Path
) -> dict[str, Any]:
    """What the network's owner puts in the adapter's file: the same ranges, discovery settings
    and camera password as the in-process gateway has, the export policy's defaults (everything
    the camera said leaves, snapshots allowed, no limits) and no frame cache (cache_ttl_s 0).
    Everything else (concurrency 32, snapshot timeouts, heartbeat) as the adapter's defaults."""
    return {
        "network": net["id"],
        "cidrs": net["cidrs"],
        "key_file": str(workdir / "adapter.key"),
        "state_dir": str(workdir / "state"),
        "cache_ttl_s": 0.0,
        "redis": {"url": redis_url, "prefix": "camgw"},
        "credentials": {
            "username": net["credentials"]["username"],
            "password_file": str(password_file),
        },
        "discovery": dict(net["discovery"]) | {"csv_inventory": str(inventory)},
    }


def write_inventory(path: Path, addresses: list[str]) -> Path:
    """The owner's inventory: every camera of the network, ONVIF on its port."""
    rows = [f"{a},{ONVIF_PORT},onvif" for a in addresses]
    path.write_text("address,port,kind\n" + "\n".join(rows) + "\n")
    return path


# -- processes -----------------------------------------------------------------------------------


def clean_env(extra: dict[str, str], log_level: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAMGW_", "REDIS_"))}
    return env | extra | {"CAMGW_LOG_LEVEL": log_level}


@dataclass
class SimProcess:
    """`camgw simulate` pinned to the load core, through this script's `_simulate`: each
    camera's textured frame rendered once, then served as is, or (`fresh`) rendered for every
    request; READY in its log means serving."""

    workdir: Path
    config: Path
    env: dict[str, str]
    fresh: bool
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.workdir / "simulator.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, expected: int, timeout: float = 90.0) -> SimProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = ["--config", str(self.config), "simulate", "--scale", str(SCALE)]
        args += ["--delay", str(DELAY_S), "--no-rtsp", "--rtsp-only-every", "0"]
        frames = "fresh" if self.fresh else "once"
        argv = [sys.executable, str(HERE), "_simulate", frames, *args]
        self.proc = start_process(argv, core=SIM_CORE, log=self.log, env=self.env)
        deadline = time.monotonic() + timeout
        while True:
            text = self.log.read_text(errors="replace") if self.log.exists() else ""
            if f"READY {expected} cameras (0 RTSP-only)" in text:
                return self
            _check(self.proc.poll() is None, f"simulator exited:\n{log_tail(self.log)}")
            _check(time.monotonic() < deadline, f"simulator not READY:\n{log_tail(self.log)}")
            time.sleep(0.1)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None


@dataclass
class Gateway(GatewayStack):
    """GatewayStack with its command replaceable: `camgw serve`, or this script's `_serve`
    (the same, with the edge adapters inside), optionally under cProfile."""

    adapters_inside: list[Path] = field(default_factory=list)
    profile: Path | None = None

    def argv(self) -> list[str]:
        listen = ["serve", "--host", LOCALHOST, "--port", str(self.port)]
        if self.adapters_inside:
            paths = ",".join(str(p) for p in self.adapters_inside)
            cmd = [str(HERE), "_serve", paths, *listen]
        else:
            cmd = [camgw_binary(), *listen]
        if self.profile is not None:
            return [sys.executable, "-m", "cProfile", "-o", str(self.profile), *cmd]
        return [sys.executable, *cmd] if self.adapters_inside else cmd

    def start_redis(self) -> Gateway:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.redis = RedisServer(self.workdir / "redis", appendonly=False).start()
        return self

    def start(self) -> Gateway:
        """As GatewayStack.start, with `argv()` (and the redis-server maybe started before)."""
        if self.redis is None:
            self.start_redis()
        key_file = self.workdir / "camgw.key"
        create_gateway_key(key_file)
        self.port = free_port()
        env = clean_env(self.extra_env, self.log_level) | {
            "REDIS_URL": self.redis_url,
            "CAMGW_KEY_FILE": str(key_file),
            "CAMGW_CONFIG": str(self.config),
        }
        self.proc = start_process(
            self.argv(), core=self.core, log=self.log, env=env, cwd=self.workdir
        )
        wait_http(f"{self.base}/readyz", self.proc, self.log, "camgw serve", timeout=30)
        return self


@dataclass
class AdapterProcess:
    """`camgw adapter --network N --config FILE`, pinned to `core`."""

    network: str
    config: Path
    workdir: Path
    core: int | None
    log_level: str
    profile: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.workdir / "adapter.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> AdapterProcess:
        argv = [camgw_binary(), "adapter", "--network", self.network, "--config", str(self.config)]
        if self.profile is not None:
            argv = [sys.executable, "-m", "cProfile", "-o", str(self.profile), *argv]
        env = clean_env({}, self.log_level)
        self.proc = start_process(argv, core=self.core, log=self.log, env=env, cwd=self.workdir)
        deadline = time.monotonic() + timeout
        while "outbound to the registry" not in self.log.read_text(errors="replace"):
            _check(self.proc.poll() is None, f"adapter exited:\n{log_tail(self.log)}")
            _check(time.monotonic() < deadline, f"adapter not up:\n{log_tail(self.log)}")
            time.sleep(0.05)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None


def problem_lines(path: Path) -> list[str]:
    """What a camgw process logged at WARNING or above (JSON lines; anything else counts)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    out = []
    for ln in text.splitlines():
        if not ln.strip() or "outbound to the registry" in ln:
            continue
        try:
            level = str(orjson.loads(ln).get("level", ""))
        except (orjson.JSONDecodeError, AttributeError):
            level = "?"
        if level not in ("debug", "info"):
            out.append(ln)
    return out


# -- one mode, one round -------------------------------------------------------------------------


@dataclass(frozen=True)
class Discovery:
    wall_s: float  # first POST -> last job's finished_at
    enriched: int
    failed: int
    cpu_s: float  # gateway + adapters
    redis_cpu_s: float
    by_process: dict[str, float]  # gateway, redis, adapter-<network>, sim; served

    def ms_per_camera(self, process: str) -> float:
        return self.by_process[process] / self.enriched * 1e3

    @property
    def rate(self) -> float:
        return self.enriched / self.wall_s


@dataclass(frozen=True)
class Load:
    gen: GenResult
    cpu_s: float  # gateway + adapters, whole generator run (warm-up included)
    redis_cpu_s: float
    by_process: dict[str, float]  # gateway, redis, adapter-<network>, sim; served

    def us(self, process: str) -> float:
        return self.by_process[process] / self.gen.total_requests * 1e6

    @property
    def us_per_request(self) -> float:
        return self.cpu_s / self.gen.total_requests * 1e6

    @property
    def distinct_frames(self) -> int:
        return len(self.gen.headers.get("X-Snapshot-Taken-At", {}))


@dataclass(frozen=True)
class ModeRun:
    mode: str
    discovery: Discovery
    latency: Load
    throughput: Load
    rss_mib: float  # gateway VmRSS at the end
    adapter_rss_mib: float | None
    redis_mib: float  # redis-server used_memory at the end
    outbox_entries: int  # XLEN of the edge outboxes at the end
    problems: list[str]


@dataclass
class Plan:
    """What every mode run of this invocation shares."""

    args: argparse.Namespace
    tmp: Path
    measured: list[str]
    configs: dict[str, Path]  # mode -> gateway config
    raw_edge: dict[str, Any]  # the edge gateway config (the networks' discovery blocks)
    fleet: dict[str, list[str]]  # network -> camera addresses, fleet order
    inventories: dict[str, Path]
    passwords: dict[str, str]  # env var -> password (every network)
    net_password: dict[str, str]  # network -> password
    sim: SimProcess


def run_mode(plan: Plan, mode: str, rnd: int) -> ModeRun:
    args, workdir = plan.args, plan.tmp / f"round{rnd}-{mode}"
    with ExitStack() as stack:
        gw = Gateway(
            workdir / "gateway",
            core=GATEWAY_CORE,
            log_level=args.log_level,
            config=plan.configs[mode],
            extra_env=plan.passwords if mode == "in-process" else {},
            profile=args.profile / f"gateway-{mode}-{rnd}.prof" if args.profile else None,
        )
        stack.callback(gw.stop)
        progress(f"round {rnd}: {mode}: starting redis-server, the gateway, adapters")
        gw.start_redis()
        adapters = edge_adapters(plan, workdir, gw.redis_url, rnd) if mode == "edge" else []
        if args.adapter_in_gateway:
            gw.adapters_inside, adapters = [a.config for a in adapters], []
        gw.start()
        for a in adapters:
            stack.callback(a.stop)
            a.start()
        admin = {"Authorization": f"Bearer {gw.token('bench-admin', 'admin', ['*'])}"}
        if mode == "edge":
            wait_connected(gw, admin, plan.measured)
        pids = cpu_pids(gw, adapters, plan.sim)
        disc = discover(plan, gw, admin, pids)
        ids = camera_ids(plan, gw, admin, mode)
        loads = {}
        cases = (
            ("latency", args.clients, args.latency_seconds),
            ("throughput", args.throughput_clients, args.seconds),
        )
        for case, n, seconds in cases:
            token = gw.token(f"bench-{case}", "operator", plan.measured)
            urls = [snapshot_url(gw, ids[a]) for a in plan.fleet[plan.measured[0]][:n]]
            progress(f"round {rnd}: {mode}: snapshot misses, {n} clients, {seconds}s")
            loads[case] = measure_load(urls, token, seconds, args.warmup, pids, plan.sim, mode)
        _check(gw.alive() and all(a.alive() for a in adapters), f"{mode}: a process died")
        assert gw.proc is not None
        redis_mib, outbox = redis_state(gw, plan.measured)
        return ModeRun(
            mode,
            disc,
            loads["latency"],
            loads["throughput"],
            rss_mib(gw.proc.pid),
            rss_mib(adapters[0].pid) if adapters else None,
            redis_mib,
            outbox,
            gw.problem_lines() + [ln for a in adapters for ln in problem_lines(a.log)],
        )


def edge_adapters(plan: Plan, workdir: Path, redis_url: str, rnd: int) -> list[AdapterProcess]:
    """Each measured network's adapter: its own key, camera password file and config."""
    out = []
    nets = {n["id"]: n for n in plan.raw_edge["networks"]}
    shipped_nets = {n["id"]: n for n in shipped()["networks"]}
    for network in plan.measured:
        home = workdir / f"adapter-{network}"
        home.mkdir(parents=True, exist_ok=True)
        create_key_file(home / "adapter.key")
        secret = home / "camera.password"
        secret.touch(mode=0o600)
        secret.write_text(plan.net_password[network] + "\n")
        net = nets[network] | {"credentials": shipped_nets[network]["credentials"]}
        raw = adapter_config(net, redis_url, home, secret, plan.inventories[network])
        path = _write_toml(home / "adapter.toml", raw, f"{network} adapter config")
        profile = plan.args.profile / f"adapter-{network}-{rnd}.prof" if plan.args.profile else None
        out.append(
            AdapterProcess(
                network, path, home, plan.args.adapter_core, plan.args.log_level, profile
            )
        )
    return out


def wait_connected(gw: Gateway, auth: dict[str, str], networks: list[str]) -> None:
    deadline = time.monotonic() + 30
    while True:
        reply = http_request("GET", f"{gw.base}/api/v1/networks", headers=auth)
        _check(reply.status == 200, f"networks answered {reply.status}")
        nets = {n["id"]: n for n in orjson.loads(reply.body)}
        up = [
            n
            for n in networks
            if ((nets[n].get("adapter") or {}).get("edge") or {}).get("connected")
        ]
        if len(up) == len(networks):
            return
        _check(time.monotonic() < deadline, f"edge adapters not connected: {networks} vs {up}")
        time.sleep(0.1)


def cpu_pids(gw: Gateway, adapters: list[AdapterProcess], sim: SimProcess) -> dict[str, int]:
    assert gw.proc is not None and gw.redis is not None and gw.redis.proc is not None
    pids = {"gateway": gw.proc.pid, "redis": gw.redis.proc.pid, "sim": sim.pid}
    pids |= {f"adapter-{a.network}": a.pid for a in adapters}
    return pids


def _served(process: str) -> bool:
    return process == "gateway" or process.startswith("adapter-")


def cpu_now(pids: dict[str, int]) -> dict[str, float]:
    return {k: tree_cpu_seconds(p) for k, p in pids.items()}


def served_cpu(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds of each process between two readings, and "served": gateway + adapters."""
    used = {k: after[k] - before[k] for k in before}
    return used | {"served": sum(v for k, v in used.items() if _served(k))}


def redis_state(gw: Gateway, networks: list[str]) -> tuple[float, int]:
    """(used_memory MiB, entries in the networks' edge outboxes) of the gateway's Redis."""

    async def read() -> tuple[float, int]:
        client = redis_client(gw.redis_url)
        try:
            used = int((await client.info("memory"))["used_memory"])
            entries = [await client.xlen(f"camgw:edge:{n}:outbox") for n in networks]
            return used / 2**20, sum(entries)
        finally:
            await client.aclose()

    return asyncio.run(read())


def rss_mib(pid: int) -> float:
    try:
        for ln in Path(f"/proc/{pid}/status").read_text().splitlines():
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def discover(plan: Plan, gw: Gateway, auth: dict[str, str], pids: dict[str, int]) -> Discovery:
    cpu0 = cpu_now(pids)
    t0 = time.time()
    jobs: dict[str, dict[str, Any]] = {}
    for net in plan.measured:
        reply = http_request("POST", f"{gw.base}/api/v1/networks/{net}/discover", headers=auth)
        _check(reply.status == 202, f"discover {net} answered {reply.status}: {reply.body!r}")
        jobs[net] = orjson.loads(reply.body)
    deadline = time.monotonic() + JOB_TIMEOUT_S
    pending = set(jobs)
    while pending:
        time.sleep(POLL_S)
        for net in sorted(pending):
            reply = http_request("GET", f"{gw.base}/api/v1/jobs/{jobs[net]['id']}", headers=auth)
            _check(reply.status == 200, f"job {net} answered {reply.status}")
            jobs[net] = orjson.loads(reply.body)
            if jobs[net]["state"] != "running":
                pending.discard(net)
        _check(time.monotonic() < deadline, f"discovery not done in {JOB_TIMEOUT_S:.0f}s")
    cpu = served_cpu(cpu0, cpu_now(pids))
    for net, job in jobs.items():
        expected = len(plan.fleet[net])
        ok = job["state"] == "done" and job["progress"]["enriched"] == expected
        _check(
            ok and not job["progress"]["failed"],
            f"{net}: job {job['state']}, enriched {job['progress']['enriched']} of {expected}, "
            f"failed {job['progress']['failed']}: {job.get('error')} {job['failures'][:3]}",
        )
    finished = max(datetime.fromisoformat(j["finished_at"]).timestamp() for j in jobs.values())
    d = Discovery(
        wall_s=finished - t0,
        enriched=sum(j["progress"]["enriched"] for j in jobs.values()),
        failed=sum(j["progress"]["failed"] for j in jobs.values()),
        cpu_s=cpu["served"],
        redis_cpu_s=cpu["redis"],
        by_process=cpu,
    )
    progress(
        f"  discovery: {d.enriched} cameras in {d.wall_s:.2f} s ({d.rate:.0f}/s), "
        f"CPU {d.cpu_s:.1f} s (+ redis {d.redis_cpu_s:.2f} s)"
    )
    return d


def camera_ids(plan: Plan, gw: Gateway, auth: dict[str, str], mode: str) -> dict[str, str]:
    """address -> camera id, after checking every fleet camera is a discovered, enriched record
    (with its adapter ref in edge mode)."""
    out: dict[str, str] = {}
    for net in plan.measured:
        url = f"{gw.base}/api/v1/cameras?network={net}&limit=10000"
        reply = http_request("GET", url, headers=auth, timeout=60)
        _check(reply.status == 200, f"list answered {reply.status}")
        items = orjson.loads(reply.body)["items"]
        for c in items:
            ok = (
                c.get("source") == "discovered"
                and c.get("serial")
                and c.get("profiles")
                and c.get("snapshot_uri")
                and (mode == "in-process" or (c.get("device") or {}).get("ref"))
            )
            _check(ok, f"{mode}: camera {c.get('id')} not fully enriched: {str(c)[:300]}")
            out[str(c["address"])] = str(c["id"])
        missing = set(plan.fleet[net]) - set(out)
        _check(not missing and len(items) == len(plan.fleet[net]), f"{net}: {len(missing)} missing")
    return out


def snapshot_url(gw: Gateway, cam_id: str) -> str:
    return f"{gw.base}/api/v1/cameras/{cam_id}/snapshot?reason={REASON}"


def measure_load(
    urls: list[str],
    token: str,
    seconds: float,
    warmup: float,
    pids: dict[str, int],
    sim: SimProcess,
    mode: str,
) -> Load:
    targets = [{"url": u, "headers": {"Authorization": f"Bearer {token}"}} for u in urls]
    cpu0 = cpu_now(pids)
    gen = run_generator(targets, seconds, warmup, GEN_HEADERS)
    cpu = served_cpu(cpu0, cpu_now(pids))
    caches = gen.headers.get("X-Snapshot-Cache", {})
    sources = gen.headers.get("X-Snapshot-Source", {})
    _check(set(caches) == {"miss"}, f"{mode}: not every answer a miss: {caches}")
    _check(set(sources) == {"camera-http"}, f"{mode}: sources {sources}")
    # A picture that did not come from the camera would be faster than the camera's delay.
    fastest = min(gen.latencies_ms)
    _check(fastest >= DELAY_S * 1000, f"{mode}: an answer in {fastest:.1f} ms: not from the camera")
    _check(sim.alive(), f"the simulator died:\n{log_tail(sim.log)}")
    load = Load(gen, cpu["served"], cpu["redis"], cpu)
    _check(
        sim.fresh or load.us("sim") < 5000,
        f"the simulator used {load.us('sim'):,.0f} us per request: it renders every frame, "
        "its frames-rendered-once patch did not apply",
    )
    progress(
        f"  {gen.rps:.1f} req/s, p50 {gen.pct(50):.1f} p95 {gen.pct(95):.1f} p99 "
        f"{gen.pct(99):.1f} ms, {load.us_per_request:,.0f} us CPU/request"
    )
    return load


# -- the simulator with frames rendered once (`_simulate`) ----------------------------------------


def simulate_main(frames_mode: str, argv: list[str]) -> int:
    """`camgw simulate` (the same CLI code path), each camera's snapshot a textured frame as
    bench/snapshots.py draws it (~95 KB at 1280x720 q85): `once`, rendered at the camera's
    first request and then served as is (still after the answer delay and the digest check);
    `fresh`, rendered for every request."""
    noise = np.random.default_rng(2023).normal(0.0, TEXTURE_SIGMA, (720, 1280, 3))
    plus = np.clip(noise, 0, 255).astype(np.uint8)
    minus = np.clip(-noise, 0, 255).astype(np.uint8)
    frames: dict[str, bytes] = {}

    def once(camera_id: str, network: str, name: str, when: Any) -> bytes:
        jpeg = frames.get(camera_id) if frames_mode == "once" else None
        if jpeg is None:
            frame = snapshot.render_frame(camera_id, network, name, when)
            noisy = cv2.subtract(cv2.add(frame, plus), minus)
            quality = [cv2.IMWRITE_JPEG_QUALITY, snapshot.JPEG_QUALITY]
            ok, buf = cv2.imencode(".jpg", noisy, quality)
            _check(ok, "JPEG encoding failed")
            jpeg = frames[camera_id] = bytes(buf.tobytes())
        return jpeg

    original = snapshot.render_snapshot
    patched = [
        module
        for name, module in list(sys.modules.items())
        if name.startswith("adapters.simulator")
        and getattr(module, "render_snapshot", None) is original
    ]
    for module in patched:  # where the simulator looks it up (its module, or an import of it)
        setattr(module, "render_snapshot", once)  # noqa: B010 - a bench-side patch
    _check(snapshot in patched, "the simulator's render_snapshot moved: frames would be fresh")
    return int(cli.main(argv))


# -- in-gateway adapters (`_serve`) --------------------------------------------------------------


def serve_main(argv: list[str]) -> int:
    """`camgw serve` (the same CLI code path) with each named adapter config's EdgeRunner as a
    task of the gateway's event loop, started after every service and stopped before them."""
    configs = [load_adapter_config(Path(p)) for p in argv[0].split(",")]

    async def adapters(app: Any) -> AsyncIterator[None]:
        runs = []
        for cfg in configs:
            redis = connect(cfg.redis)
            runner = EdgeRunner(cfg, redis, CredentialVault(load_key(cfg.key_file)))
            runs.append((asyncio.create_task(runner.run(), name=f"adapter-{cfg.network}"), redis))
        yield
        for task, _ in runs:
            task.cancel()
        await asyncio.gather(*(t for t, _ in runs), return_exceptions=True)
        for _, redis in runs:
            await redis.aclose()

    def with_adapters(*a: Any, **kw: Any) -> Any:
        app = create_app(*a, **kw)
        app.cleanup_ctx.append(adapters)
        return app

    setattr(cli, "create_app", with_adapters)  # noqa: B010 - a bench-side patch
    return int(cli.main(argv[1:]))


# -- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=3, help="rounds, each mode once (>= 3)")
    p.add_argument("--latency-seconds", type=int, default=10, help="each measured latency run")
    p.add_argument("--seconds", type=int, default=6, help="each measured throughput run")
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured start of each run, s")
    p.add_argument("--clients", type=int, default=1, help="latency case: clients, one camera each")
    p.add_argument("--throughput-clients", type=int, default=32, help="throughput case: clients")
    p.add_argument("--networks", default="police", help="measured networks, comma-separated")
    p.add_argument("--adapter-core", type=int, default=GATEWAY_CORE, help="adapter processes' core")
    p.add_argument("--adapter-in-gateway", action="store_true", help="adapters as gateway tasks")
    p.add_argument("--range-base", type=int, default=211, help="cameras on 127.N.0.0/16, N+1..")
    p.add_argument("--fresh-frames", action="store_true", help="simulator renders every frame")
    p.add_argument("--profile", type=Path, help="cProfile gateway and adapters into this dir")
    p.add_argument("--log-level", default="WARNING", help="CAMGW_LOG_LEVEL of gateway, adapters")
    args = p.parse_args(argv)
    if args.runs < 3:
        p.error("--runs must be at least 3 (min / median / max)")
    if args.profile:
        args.profile = args.profile.resolve()
        args.profile.mkdir(parents=True, exist_ok=True)
    exit_on_sigterm()
    started, load_avg = time.monotonic(), os.getloadavg()
    args.measured = [n for n in args.networks.split(",") if n]
    with tempfile.TemporaryDirectory(prefix="camgw-bench-edge-") as tmp_name, ExitStack() as stack:
        plan = prepare(args, Path(tmp_name), stack)
        runs: dict[str, list[ModeRun]] = {m: [] for m in MODES}
        for rnd in range(1, args.runs + 1):
            order = MODES if rnd % 2 else MODES[::-1]  # drift hits both alike
            for mode in order:
                runs[mode].append(run_mode(plan, mode, rnd))
        elapsed = time.monotonic() - started
        print(report(plan, runs, elapsed, load_avg), flush=True)
    return 0


def freeze_code(tmp: Path) -> str:
    """Copies of gateway/ and adapters/ as they are now, first on every child's PYTHONPATH (the
    editable install's finder comes after it): all rounds run the same code even while the
    working tree is being edited. Returns what was copied (commit and changed files)."""
    state = tree_state()
    src = tmp / "src"
    for pkg in ("gateway", "adapters"):
        shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(src), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    return state


def prepare(args: argparse.Namespace, tmp: Path, stack: ExitStack) -> Plan:
    measured = args.measured
    args.code = freeze_code(tmp)
    known = [n["id"] for n in shipped()["networks"]]
    _check(set(measured) <= set(known), f"--networks: the networks are {known}")
    sim_raw = simulator_config(measured, args.range_base)
    sim_cfg = _write_toml(tmp / "simulator.toml", sim_raw, "simulator config")
    fleet: dict[str, list[str]] = {n: [] for n in measured}
    for cam in fleet_for(Settings.model_validate(sim_raw), SCALE):
        fleet[cam.network].append(cam.address)
    _check(
        len(fleet[measured[0]]) >= args.throughput_clients >= args.clients,
        "more clients than cameras",
    )
    inventories = {n: write_inventory(tmp / f"{n}-inventory.csv", fleet[n]) for n in measured}
    configs = {}
    for mode in MODES:
        raw = gateway_config(mode, measured, args.range_base, inventories)
        configs[mode] = _write_toml(tmp / f"gateway-{mode}.toml", raw, f"{mode} gateway config")
    raw_edge = gateway_config("edge", measured, args.range_base, inventories)
    creds = {n["id"]: n["credentials"]["password_env"] for n in shipped()["networks"]}
    net_password = {n: secrets.token_urlsafe(12) for n in creds}
    passwords = {creds[n]: pw for n, pw in net_password.items()}
    total = sum(len(v) for v in fleet.values())
    progress(f"starting the simulator: {total} cameras ({', '.join(measured)}), core {SIM_CORE}")
    sim = SimProcess(tmp / "sim", sim_cfg, clean_env(passwords, "WARNING"), args.fresh_frames)
    stack.callback(sim.stop)
    sim.start(total)
    return Plan(
        args, tmp, measured, configs, raw_edge, fleet, inventories, passwords, net_password, sim
    )


# -- the report ----------------------------------------------------------------------------------


def clients(n: int) -> str:
    return f"{n} client" + ("" if n == 1 else "s")


def _pairs(runs: dict[str, list[ModeRun]]) -> Iterable[tuple[ModeRun, ModeRun]]:
    return zip(runs["in-process"], runs["edge"], strict=True)


Getter = Callable[[ModeRun], float]


def _latency_pct(pct: int) -> Getter:
    return lambda r: r.latency.gen.pct(pct)


def _rows(args: argparse.Namespace, n_cams: int) -> list[tuple[str, Getter, str, str]]:
    """(label, value of a run, format, how edge compares: 'ms', 's' difference or 'ratio')."""
    lat, thr = clients(args.clients), clients(args.throughput_clients)
    out: list[tuple[str, Getter, str, str]] = [
        (f"snapshot miss p{p} ms ({lat})", _latency_pct(p), ".1f", "ms") for p in (50, 95, 99)
    ]
    out += [
        (f"snapshot miss req/s ({lat})", lambda r: r.latency.gen.rps, ".1f", "ratio"),
        (f"CPU us/request ({lat})", lambda r: r.latency.us_per_request, ",.0f", "ratio"),
        (f"snapshot miss req/s ({thr})", lambda r: r.throughput.gen.rps, ".1f", "ratio"),
        (f"snapshot miss p50 ms ({thr})", lambda r: r.throughput.gen.pct(50), ".1f", "ms"),
        (f"snapshot miss p99 ms ({thr})", lambda r: r.throughput.gen.pct(99), ".1f", "ms"),
        (f"CPU us/request ({thr})", lambda r: r.throughput.us_per_request, ",.0f", "ratio"),
        (f"discovery of {n_cams:,} cameras, wall s", lambda r: r.discovery.wall_s, ".2f", "s"),
        ("discovery cameras/s", lambda r: r.discovery.rate, ",.1f", "ratio"),
        (
            "discovery CPU ms/camera",
            lambda r: r.discovery.cpu_s / r.discovery.enriched * 1000,
            ".1f",
            "ratio",
        ),
        ("discovery redis-server CPU s", lambda r: r.discovery.redis_cpu_s, ".2f", "s"),
    ]
    return out


def report(
    plan: Plan, runs: dict[str, list[ModeRun]], elapsed: float, load_avg: tuple[float, ...]
) -> str:
    args = plan.args
    n_cams = sum(len(v) for v in plan.fleet.values())
    nets = ", ".join(f"{n} ({len(plan.fleet[n])})" for n in plan.measured)
    rows = []
    for label, get, fmt, kind in _rows(args, n_cams):
        if kind == "ratio":
            vs = fmt_spread((get(e) / get(i) for i, e in _pairs(runs)), ".0%")
        else:
            f = "+.1f" if kind == "ms" else "+.2f"
            vs = fmt_spread((get(e) - get(i) for i, e in _pairs(runs)), f) + f" {kind}"
        rows.append([label, *(fmt_spread((get(r) for r in runs[m]), fmt) for m in MODES), vs])
    table = markdown_table(["measure", *MODES, "edge vs in-process"], rows)
    miss_add = statistics.median(
        e.latency.gen.pct(50) - i.latency.gen.pct(50) for i, e in _pairs(runs)
    )
    disc = statistics.median(e.discovery.rate / i.discovery.rate for i, e in _pairs(runs))
    aims = markdown_table(
        ["aim", "measured (median of rounds)", "target", "met"],
        [
            [
                f"edge adds to a snapshot miss at p50 ({clients(args.clients)})",
                f"{miss_add:+.1f} ms",
                f"< {MISS_AIM_MS:g} ms",
                "yes" if miss_add < MISS_AIM_MS else "no",
            ],
            [
                f"discovery cameras/s, edge over in-process ({n_cams:,} cameras)",
                f"{disc:.0%}",
                f">= {DISCOVERY_AIM:.0%}",
                "yes" if disc >= DISCOVERY_AIM else "no",
            ],
        ],
    )
    notes = _notes(plan, runs, elapsed)
    return "\n".join([*_head(plan, nets, load_avg), "", table, "", aims, "", *notes])


def _head(plan: Plan, nets: str, load_avg: tuple[float, ...]) -> list[str]:
    args = plan.args
    where = (
        "as tasks of the gateway's event loop (`--adapter-in-gateway`: one process, one core)"
        if args.adapter_in_gateway
        else f"as its own process (`camgw adapter`), pinned to core {args.adapter_core}"
        + (" (the gateway's)" if args.adapter_core == GATEWAY_CORE else "")
    )
    frames = (
        "a textured frame (as bench/snapshots.py draws it) rendered for every request "
        "(`--fresh-frames`: ~13 ms of the simulator's core each)"
        if args.fresh_frames
        else "each camera's textured frame (as bench/snapshots.py draws it) rendered once and "
        "then served as is: a camera encodes on its own chip, so the simulator's one core "
        "must not be what bounds the throughput runs"
    )
    pin = (
        f"gateway on core {GATEWAY_CORE}; simulator and load generator on core {SIM_CORE}; "
        "redis-server unpinned"
        if can_pin()
        else "NOT pinned"
    )
    return [
        "",
        "## edge: snapshot misses and discovery through an edge adapter vs in-process",
        "",
        *header_lines(),
        f"code: {args.code}; copied at start, every child process runs that copy",
        "load average at start: " + " ".join(f"{x:.2f}" for x in load_avg),
        f"cameras: `camgw simulate --scale {SCALE:g} --delay {DELAY_S:g} --no-rtsp` serving "
        f"{nets}: every camera ONVIF, {DELAY_S * 1000:.0f} ms before every answer; {frames}",
        f"modes: in-process = the gateway reaches the cameras; edge = the network is "
        f'`mode = "edge"` and its adapter runs {where}, talking to the gateway only through '
        "the registry Redis's streams; a fresh redis-server and gateway per mode and round, "
        f"modes alternating; {pin}",
        "same in both: ranges, discovery settings (the shipped network's: concurrency, "
        "timeouts) and source (a CSV inventory of every camera: no WS-Discovery wait), camera "
        "password, the gateway's sharing policy (watermark, reason, max_width as shipped), "
        "snapshot cache off (gateway cache_ttl_s 0 and min_interval_s 0; adapter cache_ttl_s "
        "0); the adapter's export policy is its default (everything leaves, no limits)",
    ]


def _notes(plan: Plan, runs: dict[str, list[ModeRun]], elapsed: float) -> list[str]:
    args = plan.args
    lat, thr = args.clients, args.throughput_clients
    frames = {
        m: (
            sum(r.latency.distinct_frames for r in runs[m]),
            sum(len(r.latency.gen.latencies_ms) for r in runs[m]),
        )
        for m in MODES
    }
    problems = [ln for m in MODES for r in runs[m] for ln in r.problems]
    procs = {m: [k for k in runs[m][0].throughput.by_process if k != "served"] for m in MODES}
    busy = {
        m: fmt_spread((r.discovery.cpu_s / r.discovery.wall_s for r in runs[m]), ".0%")
        for m in MODES
    }
    redis_mem = {m: fmt_spread((r.redis_mib for r in runs[m]), ",.0f") for m in MODES}
    outbox = fmt_spread((r.outbox_entries for r in runs["edge"]), ",.0f")
    per_request = {
        m: ", ".join(
            f"{k} {statistics.median(r.throughput.us(k) for r in runs[m]):,.0f}" for k in procs[m]
        )
        for m in MODES
    }
    per_camera = {
        m: ", ".join(
            f"{k} {statistics.median(r.discovery.ms_per_camera(k) for r in runs[m]):.1f}"
            for k in procs[m]
        )
        for m in MODES
    }
    rss = {m: fmt_spread((r.rss_mib for r in runs[m]), ",.0f") for m in MODES}
    kb = {
        m: statistics.median(x for r in runs[m] for x in r.latency.gen.sizes) / 1000 for m in MODES
    }
    adapter_rss = [r.adapter_rss_mib for r in runs["edge"] if r.adapter_rss_mib is not None]
    out = [
        f"snapshots: this script's load generator (bench/snapshots.py `_load`), own process on "
        f"core {LOAD_CORE}: N clients, each on its own camera (the same cameras in both modes), "
        f"one keep-alive connection each, closed loop, {args.latency_seconds}s ({clients(lat)}) "
        f"or {args.seconds}s ({clients(thr)}) measured after {args.warmup:g}s; "
        "GET /api/v1/cameras/{id}/snapshot?reason=... with an operator "
        f"token. {clients(lat)}: latency, the gateway's core mostly idle (req/s there is "
        f"clients / latency); {thr} clients: throughput, the gateway's core saturated in both "
        "modes (32: the adapter's default concurrency); CPU us/request is the cost that bounds "
        "throughput on any machine",
        "checks: every answer 200, X-Snapshot-Cache miss, source camera-http, none faster than "
        f"the camera's {DELAY_S * 1000:.0f} ms (a picture not fetched from the camera would be); "
        f"distinct X-Snapshot-Taken-At (ms) over answers, {lat}-client runs: "
        + ", ".join(f"{m} {frames[m][0]:,} / {frames[m][1]:,}" for m in MODES)
        + "; answers (watermarked by the gateway in both modes), median KB: "
        + ", ".join(f"{m} {kb[m]:.0f}" for m in MODES)
        + "; discovery: every job done, every camera enriched, none failed, each a discovered "
        "record with serial, profiles and snapshot URI (edge: and its adapter ref)",
        "CPU in the table: of the gateway process plus, in edge mode, the adapter process(es) "
        "(/proc; snapshot runs: whole run incl. warm-up, per request); by process (median): "
        f"{thr}-client snapshot runs, us/request: "
        + "; ".join(f"{m}: {per_request[m]}" for m in MODES)
        + "; discovery, ms/camera: "
        + "; ".join(f"{m}: {per_camera[m]}" for m in MODES),
        f"discovery CPU (gateway + adapter) over wall time, i.e. how busy it kept core "
        f"{GATEWAY_CORE}: "
        + ", ".join(f"{m} {busy[m]}" for m in MODES)
        + " (below ~95%: other processes took the core, or the run waited on something else)",
        "redis-server used_memory at the end of a run (after discovery and every snapshot run), "
        "MiB: "
        + ", ".join(f"{m} {redis_mem[m]}" for m in MODES)
        + f"; edge outbox entries then: {outbox} (the gateway deletes what it applied, "
        "snapshot chunks included)",
        "discovery wall: first POST /api/v1/networks/{id}/discover to the last job's "
        f"finished_at (GET /api/v1/jobs/{{id}} polled every {POLL_S:g} s)",
        f"gateway RSS at the end of a run, MiB: {rss['in-process']} (in-process), {rss['edge']} "
        "(edge)" + (f"; adapter {fmt_spread(adapter_rss, ',.0f')} MiB" if adapter_rss else ""),
        f"{args.runs} rounds; cells are min / median / max over rounds; 'edge vs in-process' per "
        f"round (difference or ratio), then min / median / max; whole benchmark {elapsed:.0f}s; "
        f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        f"warnings/errors logged by gateways and adapters: {len(problems)}",
    ]
    out += [f"  {ln[:300]}" for ln in problems[:10]]
    if args.profile:
        out.append(f"PROFILED (cProfile): figures not comparable; profiles in {args.profile}")
    return out


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_serve":
        sys.exit(serve_main(sys.argv[2:]))
    if len(sys.argv) > 1 and sys.argv[1] == "_simulate":
        sys.exit(simulate_main(sys.argv[2], sys.argv[3:]))
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"edge: FAILED: {exc}", file=sys.stderr)
        sys.exit(1)
