"""Full discovery of the simulated 3,308-camera fleet through the gateway's API, against a naive
ONVIF integration (one fresh ONVIFCamera per device, sequential) measured in the same run.

Setup: `camgw simulate --scale 1.0` (every camera ONVIF, no RTSP-only cameras, 50 ms per answer)
as its own process on one core; per run a fresh private redis-server and `camgw serve` (shipped
config: its wsdiscovery_targets cover the fleet) on the other core. The camera passwords are random
per invocation and reach both through the environment variables the config's `password_env` names.
A run POSTs /api/v1/networks/{id}/discover for every network with an admin token and polls
GET /api/v1/jobs/{id} until every job is done; then it reads the gateway's VmRSS and checks, through
GET /api/v1/cameras, that every camera of the fleet is in the registry with what ONVIF told.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import orjson
from common import (
    LOAD_CORE,
    ROOT,
    SERVER_CORE,
    BenchError,
    GatewayStack,
    camgw_binary,
    can_pin,
    discover_all,
    exit_on_sigterm,
    fmt_spread,
    header_lines,
    http_request,
    log_tail,
    loop_delay_counts,
    markdown_table,
    progress,
    spread,
    start_process,
    stop_process,
    tree_cpu_seconds,
)
from onvif import ONVIFCamera

from gateway.demo import fleet_for
from gateway.loop_monitor import quantile
from gateway.settings import Settings, load_settings

EXPECTED_CAMERAS = 3_308
CONFIG = ROOT / "config" / "camgw.toml"  # shipped; its WS-Discovery ranges cover the fleet
GATEWAY_CORE = SERVER_CORE  # camgw serve (and, during the baseline, the naive client)
SIM_CORE = LOAD_CORE  # camgw simulate
AIM_WALL_S = 60.0  # all 3,308 enriched
AIM_RATIO = 10.0  # gateway cameras/s over the naive baseline's
JOB_TIMEOUT_S = 240.0  # a run that takes longer is a failure, not a figure
POLL_S = 0.1
ONVIF_PORT = 8000
STREAM_SETUP = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}
LIST_PATH = "/api/v1/cameras?limit=10000"


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise BenchError(msg)


def _pkg(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


# -- the simulator ------------------------------------------------------------------------------


@dataclass
class SimProcess:
    """`camgw simulate` as a child pinned to its own core; READY on stdout means serving."""

    workdir: Path
    env: dict[str, str]
    delay_s: float
    core: int | None = SIM_CORE
    recorders: tuple[float, float] = (0.0, 0.0)  # shares behind NVRs, behind encoders
    proc: subprocess.Popen[bytes] | None = None
    devices: int = 0  # as the simulator says (an NVR is one device of 16 cameras)
    config: Path = CONFIG  # its networks' ranges are where the cameras listen

    @property
    def log(self) -> Path:
        return self.workdir / "simulator.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 90.0) -> SimProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [
            camgw_binary(),
            "--config",
            str(self.config),
            "simulate",
            "--scale",
            "1.0",
            "--delay",
            str(self.delay_s),
            "--no-rtsp",
            "--rtsp-only-every",
            "0",
            "--nvr-share",
            str(self.recorders[0]),
            "--encoder-share",
            str(self.recorders[1]),
        ]
        self.proc = start_process(argv, core=self.core, log=self.log, env=self.env)
        deadline = time.monotonic() + timeout
        while True:
            text = self.log.read_text(errors="replace") if self.log.exists() else ""
            m = re.search(r"^READY (\d+) cameras \((\d+) RTSP-only\) on (\d+) devices", text, re.M)
            if m:
                self.devices = int(m.group(3))
                _check(
                    int(m.group(1)) == EXPECTED_CAMERAS and int(m.group(2)) == 0,
                    f"simulator serves {m.group(1)} cameras ({m.group(2)} RTSP-only), "
                    f"expected {EXPECTED_CAMERAS} ONVIF",
                )
                return self
            if self.proc.poll() is not None:
                raise BenchError(f"simulator exited:\n{log_tail(self.log)}")
            if time.monotonic() > deadline:
                raise BenchError(f"simulator not READY in {timeout:.0f}s:\n{log_tail(self.log)}")
            time.sleep(0.1)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None


# -- one gateway run ----------------------------------------------------------------------------


@dataclass(frozen=True)
class GatewayRun:
    wall_s: float  # first POST -> last job finished (the gateway's finished_at)
    found: int
    enriched: int
    failed: int
    rss_mib: float  # VmRSS right after the last job finished
    hwm_mib: float  # VmHWM (peak RSS) at the same moment
    gateway_cpu_s: float  # CPU of camgw serve during the run
    sim_cpu_s: float  # CPU of the simulator during the run
    redis_cpu_s: float  # CPU of the private redis-server during the run
    gateway_wait_s: float  # the gateway runnable but waiting for its core (other processes)
    per_network: dict[str, tuple[int, float]]  # network -> (enriched, job elapsed_s)
    loop_p99_ms: float  # event-loop delay p99 during the run (camgw_event_loop_delay_seconds)
    loop_max_ms: float  # ... the bucket bound of its worst sample
    failure_kinds: dict[str, int]  # "step: reason" -> cameras (empty when all were enriched)
    devices: int = EXPECTED_CAMERAS  # what discovery should find (an NVR: one device)

    @property
    def complete(self) -> bool:
        return self.found == self.devices and self.enriched == EXPECTED_CAMERAS and not self.failed

    @property
    def rate(self) -> float:
        return self.enriched / self.wall_s


def loop_delay_since(before: list[int], base: str, auth: dict[str, str]) -> dict[str, float]:
    """The event loop's delay p99 and worst bucket since the `before` reading, in ms."""
    now = loop_delay_counts(base, auth)
    counts = [b - a for a, b in zip(before, now, strict=True)]
    return {
        "loop_p99_ms": quantile(counts, 0.99) * 1000,
        "loop_max_ms": quantile(counts, 1.0) * 1000,
    }


def proc_status_mib(pid: int, key: str) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    m = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
    if m is None:
        raise BenchError(f"/proc/{pid}/status has no {key}")
    return int(m.group(1)) / 1024


def run_delay_s(pid: int) -> float:
    """Seconds the process's threads spent runnable but waiting for a CPU (/proc schedstat):
    the share of a run lost to other processes on the same core."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with suppress(OSError, IndexError, ValueError):  # a thread may end meanwhile
            total += int((task / "schedstat").read_text().split()[1])
    return total / 1e9


def run_gateway(
    workdir: Path,
    settings: Settings,
    sim: SimProcess,
    passwords: dict[str, str],
    log_level: str,
    config: Path = CONFIG,
) -> tuple[GatewayRun, list[str]]:
    gw = GatewayStack(
        workdir, core=GATEWAY_CORE, log_level=log_level, config=config, extra_env=passwords
    )
    try:
        gw.start()
        assert gw.proc is not None and gw.redis is not None and gw.redis.proc is not None
        admin = gw.token("bench-admin", "admin", ["*"])
        auth = {"Authorization": f"Bearer {admin}"}
        networks = [n.id for n in settings.networks]
        pids = {"gw": gw.proc.pid, "sim": sim.pid, "redis": gw.redis.proc.pid}
        cpu0 = {k: tree_cpu_seconds(p) for k, p in pids.items()}
        wait0 = run_delay_s(pids["gw"])
        loop0 = loop_delay_counts(gw.base, auth)

        t0, jobs = discover_all(
            gw,
            auth,
            networks,
            timeout_s=JOB_TIMEOUT_S,
            poll_s=POLL_S,
            check=lambda: _check(sim.alive(), f"the simulator died:\n{log_tail(sim.log)}"),
        )
        observed = time.time()
        rss = proc_status_mib(pids["gw"], "VmRSS")
        hwm = proc_status_mib(pids["gw"], "VmHWM")
        cpu1 = {k: tree_cpu_seconds(p) for k, p in pids.items()}
        wait1 = run_delay_s(pids["gw"])

        finished = [
            datetime.fromisoformat(j["finished_at"]).timestamp()
            for j in jobs.values()
            if j.get("finished_at")
        ]
        _check(len(finished) == len(jobs), "a finished job has no finished_at")
        wall = max(finished) - t0
        _check(0 < wall <= observed - t0 + 0.01, f"finished_at {wall:.2f}s vs observed")
        run = GatewayRun(
            wall_s=wall,
            found=sum(j["progress"]["found"] for j in jobs.values()),
            enriched=sum(j["progress"]["enriched"] for j in jobs.values()),
            failed=sum(j["progress"]["failed"] for j in jobs.values()),
            rss_mib=rss,
            hwm_mib=hwm,
            gateway_cpu_s=cpu1["gw"] - cpu0["gw"],
            sim_cpu_s=cpu1["sim"] - cpu0["sim"],
            redis_cpu_s=cpu1["redis"] - cpu0["redis"],
            gateway_wait_s=wait1 - wait0,
            per_network={
                n: (j["progress"]["enriched"], float(j["elapsed_s"])) for n, j in jobs.items()
            },
            **loop_delay_since(loop0, gw.base, auth),
            failure_kinds=dict(
                Counter(
                    f"{f['step']}: {f['reason']}"[:120]
                    for j in jobs.values()
                    for f in j["failures"]
                )
            ),
            devices=sim.devices,
        )
        progress(
            f"  {run.wall_s:.1f} s, found {run.found}, enriched {run.enriched}, failed "
            f"{run.failed}; RSS {run.rss_mib:.0f} MiB; loop delay p99 <= {run.loop_p99_ms:g} ms "
            f"(worst <= {run.loop_max_ms:g} ms); CPU s: gateway {run.gateway_cpu_s:.1f}, "
            f"simulator {run.sim_cpu_s:.1f}, redis {run.redis_cpu_s:.1f}; gateway waited "
            f"{run.gateway_wait_s:.1f} s for its core"
        )
        for net, job in jobs.items():
            _check(
                job["state"] == "done",
                f"{net}: job {job['state']}: {job.get('error')} {job['failures'][:3]}",
            )
        # A job counts a camera enriched once ONVIF answered, even when storing it failed
        # afterwards (that lands in failed): all must be enriched *and* nothing failed. An
        # incomplete run is reported (table and failure kinds) and fails the benchmark at the end.
        if run.complete:
            check_registry(gw, auth, settings, grouped=sim.devices != EXPECTED_CAMERAS)
        else:
            progress(f"  INCOMPLETE: {run.failure_kinds}")
        return run, gw.problem_lines()
    finally:
        gw.stop()


def check_registry(
    gw: GatewayStack, auth: dict[str, str], settings: Settings, grouped: bool = False
) -> None:
    """Every fleet camera is in the registry, discovered, with what ONVIF told about it (a
    fleet `grouped` behind NVRs: as many cameras, on fewer addresses, channels saying so)."""
    # The list may serve a snapshot up to 5 s old while a rebuild runs (docs/registry.md): a
    # list read the moment the jobs end is read again until it has caught up, 10 s at most.
    deadline = time.monotonic() + 10.0
    while True:
        reply = http_request("GET", gw.base + LIST_PATH, headers=auth, timeout=60)
        _check(reply.status == 200, f"list answered {reply.status}")
        items = orjson.loads(reply.body)["items"]
        if len(items) == EXPECTED_CAMERAS or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    _check(len(items) == EXPECTED_CAMERAS, f"registry holds {len(items)} cameras")
    want = {c.address for c in fleet_for(settings, 1.0)}
    have = {str(c["address"]) for c in items}
    if grouped:
        _check(have < want, "a grouped fleet's cameras are on fewer addresses than the fleet's")
        channels = Counter(c["address"] for c in items if c.get("channel"))
        _check(set(channels.values()) == {4, 16}, f"channels per device: {set(channels.values())}")
    else:
        _check(have == want, f"registry addresses differ: {len(want ^ have)} differ")
    for c in items:
        ok = (
            c.get("source") == "discovered"
            and c.get("serial")
            and c.get("mac")
            and (c.get("onvif") or {}).get("device_uri")
            and c.get("profiles")
            and all(p.get("stream_uri") for p in c["profiles"])
            and c.get("snapshot_uri")
        )
        _check(bool(ok), f"camera {c.get('id')} not fully enriched: {str(c)[:400]}")


# -- the naive baseline -------------------------------------------------------------------------


async def naive_camera(host: str, user: str, password: str) -> None:
    """What a simple integration does per camera (the library's README flow)."""
    cam = ONVIFCamera(host, ONVIF_PORT, user, password)
    try:
        await cam.update_xaddrs()
        devicemgmt = await cam.create_devicemgmt_service()
        info = await devicemgmt.GetDeviceInformation()
        media = await cam.create_media_service()
        profiles = await media.GetProfiles()
        _check(bool(profiles), f"{host}: no profiles")
        for p in profiles:
            stream = await media.GetStreamUri(
                {"StreamSetup": STREAM_SETUP, "ProfileToken": p.token}
            )
            snap = await media.GetSnapshotUri({"ProfileToken": p.token})
            _check(bool(stream.Uri) and bool(snap.Uri), f"{host}: profile {p.token} without URIs")
        _check(bool(info.SerialNumber), f"{host}: no serial number")
    finally:
        await cam.close()


@dataclass(frozen=True)
class BaselineRun:
    cameras: int
    seconds: float
    client_cpu_s: float

    @property
    def per_camera_s(self) -> float:
        return self.seconds / self.cameras

    @property
    def rate(self) -> float:
        return self.cameras / self.seconds

    @property
    def extrapolated_s(self) -> float:
        return self.per_camera_s * EXPECTED_CAMERAS


def run_baseline(sample: list[tuple[str, str, str]]) -> BaselineRun:
    """Sequential, in this process, pinned to the gateway's core (the simulator keeps its own)."""

    async def go() -> tuple[float, float]:
        await naive_camera(*sample[0])  # warm-up: the library parses its WSDLs once per process
        cpu0 = time.process_time()
        started = time.perf_counter()
        for host, user, password in sample:
            await naive_camera(host, user, password)
        return time.perf_counter() - started, time.process_time() - cpu0

    before = os.sched_getaffinity(0)
    if can_pin():
        os.sched_setaffinity(0, {GATEWAY_CORE})
    try:
        seconds, cpu = asyncio.run(go())
    finally:
        os.sched_setaffinity(0, before)
    return BaselineRun(len(sample), seconds, cpu)


def baseline_sample(
    settings: Settings, passwords: dict[str, str], n: int
) -> list[tuple[str, str, str]]:
    """n cameras spread evenly over the fleet (so over the networks in their proportions)."""
    fleet = fleet_for(settings, 1.0)
    creds = {net.id: net.credentials for net in settings.networks}
    step = len(fleet) / n
    out = []
    for i in range(n):
        cam = fleet[int(i * step)]
        ref = creds[cam.network]
        assert ref is not None and ref.password_env is not None
        out.append((cam.address, ref.username, passwords[ref.password_env]))
    return out


# -- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=3, help="gateway runs and baseline runs (>= 3)")
    p.add_argument("--sample", type=int, default=100, help="baseline cameras per run (>= 100)")
    p.add_argument("--delay", type=float, default=0.05, help="simulated answer delay, seconds")
    p.add_argument("--log-level", default="WARNING", help="CAMGW_LOG_LEVEL of the gateway")
    p.add_argument("--nvr-share", type=float, default=0.3, help="second fleet: behind NVRs")
    p.add_argument("--encoder-share", type=float, default=0.1, help="... behind encoders")
    args = p.parse_args(argv)
    if args.runs < 3:
        p.error("--runs must be at least 3 (min / median / max)")
    if args.sample < 100:
        p.error("--sample must be at least 100 cameras (PERF-NOTES)")
    exit_on_sigterm()
    args.load_before = _load()
    settings = load_settings(CONFIG, use_env=False)
    args.concurrency = ", ".join(f"{n.id} {n.discovery.concurrency}" for n in settings.networks)
    fleet = fleet_for(settings, 1.0)
    _check(len(fleet) == EXPECTED_CAMERAS, f"fleet_for gave {len(fleet)} cameras")

    # Fresh random camera passwords, one per network, through the variables the config names.
    passwords = {
        n.credentials.password_env: secrets.token_urlsafe(12)
        for n in settings.networks
        if n.credentials is not None and n.credentials.password_env
    }
    _check(len(passwords) == len(settings.networks), "a network has no password_env")
    os.environ.update(passwords)  # the naive baseline reads them here
    sim_env = {k: v for k, v in os.environ.items() if not k.startswith(("CAMGW_", "REDIS_"))} | {
        **passwords,
        "CAMGW_LOG_LEVEL": "WARNING",
    }

    gw_runs: list[GatewayRun] = []
    base_runs: list[BaselineRun] = []
    problems: list[str] = []
    sample = baseline_sample(settings, passwords, args.sample)
    with (
        tempfile.TemporaryDirectory(prefix="camgw-bench-discovery-") as tmp_name,
        ExitStack() as stack,
    ):
        tmp = Path(tmp_name)
        progress(f"starting the simulator ({EXPECTED_CAMERAS} ONVIF cameras, core {SIM_CORE})")
        sim = SimProcess(tmp / "sim", sim_env, args.delay)
        stack.callback(sim.stop)
        sim.start()
        # Interleaved: a gateway run, then a baseline run, so drift hits both alike.
        for rnd in range(1, args.runs + 1):
            progress(f"round {rnd}/{args.runs}: gateway discovery of {EXPECTED_CAMERAS} cameras")
            run, logged = run_gateway(tmp / f"gw-{rnd}", settings, sim, passwords, args.log_level)
            gw_runs.append(run)
            problems += logged
            progress(f"round {rnd}/{args.runs}: naive baseline on {len(sample)} cameras")
            base = run_baseline(sample)
            base_runs.append(base)
            progress(f"  {base.seconds:.1f} s, {base.per_camera_s * 1000:.0f} ms per camera")
            _check(sim.alive(), f"the simulator died:\n{log_tail(sim.log)}")
        sim.stop()
        nvr_runs = grouped_runs(tmp, stack, sim_env, args, settings, passwords, problems)
    print(report(gw_runs, base_runs, args, problems, nvr_runs), flush=True)
    incomplete = [i for i, g in enumerate(gw_runs + nvr_runs, 1) if not g.complete]
    if incomplete:
        raise BenchError(f"gateway run(s) {incomplete} did not enrich every camera (see the table)")
    return 0


def grouped_runs(
    tmp: Path,
    stack: ExitStack,
    sim_env: dict[str, str],
    args: argparse.Namespace,
    settings: Settings,
    passwords: dict[str, str],
    problems: list[str],
) -> list[GatewayRun]:
    """The same cameras as a town has them: many behind NVRs and encoders."""
    shares = (args.nvr_share, args.encoder_share)
    progress(f"restarting the simulator: {shares[0]:.0%} behind NVRs, {shares[1]:.0%} encoders")
    sim = SimProcess(tmp / "sim-nvr", sim_env, args.delay, recorders=shares)
    stack.callback(sim.stop)
    sim.start()
    runs: list[GatewayRun] = []
    for rnd in range(1, args.runs + 1):
        progress(f"round {rnd}/{args.runs}: gateway discovery, {sim.devices:,} devices")
        run, logged = run_gateway(tmp / f"nvr-{rnd}", settings, sim, passwords, args.log_level)
        runs.append(run)
        problems += logged
    return runs


def _counts(gw: list[GatewayRun]) -> str:
    """'3,308 / 0 (each run)', or every run's enriched / failed when they differ."""
    pairs = {(g.enriched, g.failed) for g in gw}
    if len(pairs) == 1:
        enriched, failed = pairs.pop()
        return f"{enriched:,} / {failed:,} (each run)"
    return ", ".join(f"{g.enriched:,} / {g.failed:,}" for g in gw)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def report(
    gw: list[GatewayRun],
    base: list[BaselineRun],
    args: argparse.Namespace,
    problems: list[str],
    nvr: list[GatewayRun],
) -> str:
    ratios = [g.rate / b.rate for g, b in zip(gw, base, strict=True)]
    nets = sorted({n for g in gw for n in g.per_network})
    per_net = ", ".join(
        f"{n} {gw[0].per_network[n][0]:,} cameras in "
        + fmt_spread((g.per_network[n][1] for g in gw), ".1f")
        + " s"
        for n in nets
    )
    rows = [
        [
            "gateway: camgw serve, discovery API",
            f"{EXPECTED_CAMERAS:,} (all)",
            fmt_spread((g.wall_s for g in gw), ".1f"),
            fmt_spread((g.rate for g in gw), ",.1f"),
            _counts(gw),
            fmt_spread((g.rss_mib for g in gw), ",.0f"),
            fmt_spread((g.gateway_cpu_s / g.enriched * 1000 for g in gw), ".1f"),
            fmt_spread((g.loop_p99_ms for g in gw), "g"),
            fmt_spread(ratios, ".1f") + "x",
        ],
        [
            f"gateway: the same cameras, {args.nvr_share:.0%} behind 16-channel NVRs and "
            f"{args.encoder_share:.0%} behind 4-channel encoders ({nvr[0].devices:,} devices)",
            f"{EXPECTED_CAMERAS:,} (all)",
            fmt_spread((g.wall_s for g in nvr), ".1f"),
            fmt_spread((g.rate for g in nvr), ",.1f"),
            _counts(nvr),
            fmt_spread((g.rss_mib for g in nvr), ",.0f"),
            fmt_spread((g.gateway_cpu_s / g.enriched * 1000 for g in nvr), ".1f"),
            fmt_spread((g.loop_p99_ms for g in nvr), "g"),
            fmt_spread((g.rate / b.rate for g, b in zip(nvr, base, strict=True)), ".1f") + "x",
        ],
        [
            f"naive: fresh ONVIFCamera per camera, sequential ({base[0].cameras} sampled)",
            f"{EXPECTED_CAMERAS:,} (extrapolated)",
            fmt_spread((b.extrapolated_s for b in base), ",.0f"),
            fmt_spread((b.rate for b in base), ".2f"),
            f"{base[0].cameras} / 0 (sample)",
            "n/a",
            fmt_spread((b.client_cpu_s / b.cameras * 1000 for b in base), ".1f"),
            "n/a",
            "baseline",
        ],
    ]
    table = markdown_table(
        [
            "case",
            "cameras",
            "wall s",
            "cameras/s",
            "enriched / failed",
            "gateway RSS MiB",
            "CPU ms/camera (gateway / naive client)",
            "loop delay p99 ms (bucket bound)",
            "vs naive (cameras/s)",
        ],
        rows,
    )
    wall = spread(g.wall_s for g in gw)[1]
    ratio = statistics.median(ratios)
    nvr_ratio = statistics.median(g.rate for g in nvr) / statistics.median(g.rate for g in gw)
    all_enriched = all(g.complete for g in gw)
    pin = (
        f"gateway (and the naive client) on core {GATEWAY_CORE}, simulator on core {SIM_CORE}, "
        "redis-server unpinned"
        if can_pin()
        else "NOT pinned"
    )
    out = [
        "",
        f"## discovery: full inventory of {EXPECTED_CAMERAS:,} simulated cameras",
        "",
        *header_lines(),
        f"versions (ONVIF client): onvif-zeep-async {_pkg('onvif-zeep-async')}, "
        f"zeep {_pkg('zeep')}, lxml {_pkg('lxml')}",
        f"fleet: gateway.demo.fleet_for(settings, 1.0), all networks; `camgw simulate --scale 1.0 "
        f"--delay {args.delay:g} --no-rtsp --rtsp-only-every 0`: every camera ONVIF (no RTSP-only "
        f"cameras), no quirks, {args.delay * 1000:g} ms before every SOAP answer",
        "gateway: `camgw serve`, shipped config (WS-Discovery unicast probes over the configured "
        f"ranges, concurrency per network: {args.concurrency}), fresh private redis-server "
        "per run, "
        f"CAMGW_LOG_LEVEL={args.log_level}; POST /api/v1/networks/{{id}}/discover for every "
        "network, GET /api/v1/jobs/{id} polled every "
        f"{POLL_S:g} s; wall = first POST to the last job's finished_at",
        f"naive: per camera ONVIFCamera(host, {ONVIF_PORT}, user, password), update_xaddrs, "
        "GetDeviceInformation, create_media_service, GetProfiles, GetStreamUri + GetSnapshotUri "
        f"per profile, close; sequential; {base[0].cameras} cameras spread over the fleet, after "
        "one warm-up camera (WSDLs parsed once per process); extrapolated linearly to "
        f"{EXPECTED_CAMERAS:,}",
        f"pinning: {pin}; {len(gw)} gateway runs and {len(base)} baseline runs, interleaved; "
        "cells are min / median / max",
        "",
        table,
        "",
        f"aim: all {EXPECTED_CAMERAS:,} enriched in under {AIM_WALL_S:.0f} s (median "
        f"{wall:.1f} s"
        + ("" if all_enriched else f"; {sum(not g.complete for g in gw)} run(s) incomplete")
        + "): "
        + ("aim met" if wall < AIM_WALL_S and all_enriched else "aim missed"),
        f"aim: {AIM_RATIO:.0f}x the naive baseline or better (median {ratio:.1f}x): "
        + ("aim met" if ratio >= AIM_RATIO else "aim missed"),
        f"aim: the fleet behind NVRs and encoders no slower per camera than the fleet of single "
        f"cameras in the same run (median {nvr_ratio:.2f}x the cameras/s): "
        + ("aim met" if nvr_ratio >= 1.0 else "aim missed"),
        f"per network (job elapsed_s): {per_net}",
        "CPU during a gateway run (min / median / max s): gateway "
        + fmt_spread((g.gateway_cpu_s for g in gw), ".1f")
        + ", simulator "
        + fmt_spread((g.sim_cpu_s for g in gw), ".1f")
        + ", redis-server "
        + fmt_spread((g.redis_cpu_s for g in gw), ".1f")
        + "; gateway peak RSS (VmHWM) "
        + fmt_spread((g.hwm_mib for g in gw), ",.0f")
        + " MiB",
        "gateway runnable but waiting for core "
        f"{GATEWAY_CORE} (other processes; /proc schedstat), s per run: "
        + fmt_spread((g.gateway_wait_s for g in gw), ".1f")
        + f"; load average at start / end: {args.load_before} / {_load()}",
        "checks: every job done, found = enriched = "
        f"{EXPECTED_CAMERAS:,}, failed 0; the registry lists every fleet address as a discovered "
        "camera with serial, MAC, device URI, profiles with stream URIs and a snapshot URI"
        + ("" if all_enriched else " -- FAILED:"),
        f"gateway warnings/errors logged: {len(problems)}",
    ]
    for i, g in enumerate(gw, 1):
        if not g.complete:
            kinds = sorted(g.failure_kinds.items(), key=lambda kv: -kv[1])[:5]
            out.insert(
                out.index(f"gateway warnings/errors logged: {len(problems)}"),
                f"  run {i}: found {g.found:,}, enriched {g.enriched:,}, failed {g.failed:,}: "
                + "; ".join(f"{k} x{n}" for k, n in kinds),
            )
    out += [f"  {ln[:300]}" for ln in problems[:10]]
    return "\n".join(out)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"discovery: FAILED: {exc}", file=sys.stderr)
        sys.exit(1)
