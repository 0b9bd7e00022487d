"""Video quality diagnosis (issue 15): CPU per diagnosis of one camera's picture, 720p and 1080p.

In process, one thread (OpenCV told to use one), no network: what the diagnosis worker does for
each camera of a round once the snapshot has arrived. Pictures: the simulator's streets
(adapters/simulator/scene.py), day and night, clean and with a fault (blur, noise, occlusion,
displacement), JPEG at quality 85 as cameras send them. Each diagnosis runs with the camera's
reference frame and previous signature, so every check runs (nothing skipped for want of a
reference). CPU is `time.process_time()` around the call.

Columns, each min / median / max over `--runs` runs of the per-picture median of one run:
- **decode ms**: `cv2.imdecode` of the JPEG (the full picture);
- **diagnose ms**: `adapters.quality.diagnose` on the decoded picture (all eleven checks);
- **total ms**: both, per camera;
- **round of 3,308 s**: total x 3,308: the CPU of diagnosing the whole town once, on one core
  (derived from the median; the measured round follows).

Then a measured round (`--no-round` skips it): a private redis-server and `camgw serve` pinned
to core 0 (bench/common.py GatewayStack) on the shipped config with every network's quality
rounds on at `--per-minute` pictures a minute each; the town's cameras (`fleet_for`, 3,308;
`--quick`: 400) imported through the API with their snapshot URIs, served by the simulator
(adapters/simulator, a child process on core 1) as 1280x720 streets, day, one in ten with a
fault (blur, dark, noise, occlusion, stripes, colour cast, fog, bright, blue screen, freeze).
The diagnosis worker (the gateway's child process) is moved to core 1 when it appears, so it
does not take the event loop's core. Two dashboard pollers (threads here, core 1) send the
camera list's conditional GET (`If-None-Match`, gzip, as the dashboard) every 0.5 s each:
first `--baseline-s` without a round, then during the round, in the same run. The round is
started by making each network's schedule due (field `quality` of its schedule hash) and is
over when `camgw_quality_diagnoses_total` has counted every camera. Printed: the round's wall
time, whether the town fits in 10 minutes, the CPU seconds of the worker, of the gateway's
own process and of the simulator, the verdicts, and the poll latency p50 / p99 without and
during the round.

    .venv/bin/python bench/quality.py             # ~30 s + the round (~4-8 minutes)
    .venv/bin/python bench/quality.py --quick     # fewer pictures, 400 cameras
    .venv/bin/python bench/quality.py --no-round --runs 5 --pictures 60
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gzip
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import orjson
from common import (
    LOAD_CORE,
    ROOT,
    SERVER_CORE,
    BenchError,
    GatewayStack,
    can_pin,
    exit_on_sigterm,
    fmt_spread,
    header_lines,
    http_request,
    log_tail,
    markdown_table,
    percentile,
    progress,
    start_process,
    stop_process,
    toml_lines,
    tree_cpu_seconds,
)

from adapters.quality import checks
from adapters.quality.checks import Reference, Signature, make_reference
from adapters.quality.diagnose import diagnose
from adapters.quality.frame import Prepared, prepare
from adapters.quality.thresholds import QualityConfig, Thresholds
from adapters.simulator.devices import Picture
from adapters.simulator.faults import Fault, PictureFault, picture
from adapters.simulator.fleet import FleetCamera
from adapters.simulator.scene import Period, SceneSpec, render_clean

AIM_1080P_MS = 15.0
AIM_ROUND_S = 600.0  # the whole town within 10 minutes, on one core
TOWN = 3_308
QUICK_CAMERAS = 400
STREETS = 16
VARIANTS = 3  # frames drawn per (street, fault), each with its own sensor noise
BENCH_RANGE = 121  # the networks' address ranges: 127.121/16, 127.122/16, 127.123/16
LIST_PATH = "/api/v1/cameras?limit=10000"
PASSWORDS = {"governance": "q-bench-gov", "police": "q-bench-pol", "gov-affairs": "q-bench-ga"}
PASSWORD_ENV = {
    "governance": "CAMGW_GOVERNANCE_PASSWORD",
    "police": "CAMGW_POLICE_PASSWORD",
    "gov-affairs": "CAMGW_GOV_AFFAIRS_PASSWORD",
}
ROUND_FAULTS = (
    Fault.blur,
    Fault.dark,
    Fault.noise,
    Fault.occlusion,
    Fault.stripes,
    Fault.colour_cast,
    Fault.fog,
    Fault.bright,
    Fault.blue_screen,
    Fault.freeze,
)
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}
FAULTS = (None, Fault.blur, Fault.noise, Fault.occlusion, Fault.displacement)


def _jpeg(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return bytes(buf.tobytes())


def _decode(body: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise RuntimeError("JPEG decoding failed")
    return np.asarray(img, np.uint8)


def pictures(width: int, height: int, count: int) -> list[tuple[bytes, bytes, Period]]:
    """(picture, reference, period) triples: streets by day and night, clean and faulty."""
    out = []
    for k in range(count):
        period = Period.day if k % 2 == 0 else Period.night
        spec = SceneSpec(seed=500 + k % 4, period=period, width=width, height=height)
        fault = FAULTS[k % len(FAULTS)]
        injected = PictureFault(fault, 0.65, seed=k) if fault is not None else None
        frame = _jpeg(picture(spec, injected, frame_seed=k + 1))
        reference = _jpeg(picture(spec, None, frame_seed=10_000 + k))
        out.append((frame, reference, period))
    return out


def one_run(
    items: list[tuple[bytes, bytes, Period]], config: QualityConfig
) -> tuple[float, float, float]:
    """Per-picture medians (ms) of decode, diagnose and their sum over one pass."""
    decode_ms, diagnose_ms, total_ms = [], [], []
    for body, ref_body, period in items:
        reference = make_reference(prepare(_decode(ref_body)))  # cached per camera in a round
        thresholds = config.night if period is Period.night else config.day
        _, previous = diagnose(_decode(ref_body), thresholds, taken_at=0.0)
        t0 = time.process_time()
        frame = _decode(body)
        t1 = time.process_time()
        diagnose(frame, thresholds, reference=reference, previous=previous, taken_at=60.0)
        t2 = time.process_time()
        decode_ms.append((t1 - t0) * 1000)
        diagnose_ms.append((t2 - t1) * 1000)
        total_ms.append((t2 - t0) * 1000)
    return (
        statistics.median(decode_ms),
        statistics.median(diagnose_ms),
        statistics.median(total_ms),
    )


def _steps(p: Prepared, reference: Reference, t: Thresholds) -> dict[str, Callable[[], object]]:
    previous = Signature(b"", 0.0)
    return {
        "signal_loss": lambda: checks.signal_loss(p, t),
        "too_dark + too_bright": lambda: (checks.too_dark(p, t), checks.too_bright(p, t)),
        "low_contrast": lambda: checks.low_contrast(p, t),
        "colour_cast": lambda: checks.colour_cast(p, t),
        "noise": lambda: checks.noise(p, t),
        "stripes": lambda: checks.stripes(p, t),
        "blur": lambda: checks.blur(p, reference, t),
        "frozen": lambda: checks.frozen(p, 60.0, previous, 1.0),
        "occlusion": lambda: checks.occlusion(p, reference, t),
        "displacement": lambda: checks.displacement(p, reference, t),
    }


def breakdown(items: list[tuple[bytes, bytes, Period]], config: QualityConfig) -> list[list[str]]:
    """Where a 1080p diagnosis's CPU goes: the shared preparation, then each check (median ms
    over the pictures)."""
    parts: dict[str, list[float]] = {}
    for body, ref_body, _ in items:
        frame = _decode(body)
        reference: Reference = make_reference(prepare(_decode(ref_body)))
        t0 = time.process_time()
        p = prepare(frame)
        parts.setdefault("prepare (downscale, noise, tiles)", []).append(time.process_time() - t0)
        steps = _steps(p, reference, config.day)
        for name, step in steps.items():
            t0 = time.process_time()
            step()
            parts.setdefault(name, []).append(time.process_time() - t0)
    return [[name, f"{statistics.median(v) * 1000:.2f}"] for name, v in parts.items()]


# -- a measured round ----------------------------------------------------------------------------


def _fleet(config: Path, count: int) -> list[FleetCamera]:
    from gateway.demo import fleet_for  # noqa: PLC0415  (the CPU part needs no gateway)
    from gateway.settings import load_settings  # noqa: PLC0415

    fleet = fleet_for(load_settings(config, use_env=False), scale=1.0)
    if len(fleet) != TOWN:
        raise BenchError(f"fleet_for gave {len(fleet)} cameras, not {TOWN}")
    if count >= TOWN:
        return fleet
    step = TOWN / count  # every network in its share
    return [fleet[int(i * step)] for i in range(count)]


def _picture_of(index: int) -> Picture:
    if index % 10 != 3:
        return Picture(Period.day)
    which = (index // 10) % len(ROUND_FAULTS)
    return Picture(Period.day, PictureFault(ROUND_FAULTS[which], 0.65, seed=which))


def serve_simulator(config: Path, count: int) -> int:
    """The child process: the fleet's first `count` cameras serving streets until killed."""
    from adapters.simulator import snapshot  # noqa: PLC0415
    from adapters.simulator.devices import Quirks  # noqa: PLC0415
    from adapters.simulator.server import Simulator, build_devices  # noqa: PLC0415

    # The harness must not set the round's pace: drawing a street takes ~0.2 s and a noisy
    # 720p frame of it ~0.1 s, so 3,308 of each would be the slowest part of the round. The
    # cameras share 16 streets, and each (street, fault) is served from VARIANTS frames drawn
    # once, each with its own sensor noise (a frozen camera's: one, byte for byte), a camera's
    # next picture always another frame than its last (or it would rightly be found frozen).
    street_of = snapshot.camera_hash
    snapshot.camera_hash = lambda camera_id: street_of(camera_id) % STREETS
    for seed in range(STREETS):
        render_clean(SceneSpec(seed, Period.day, snapshot.WIDTH, snapshot.HEIGHT))
    draw = snapshot.render_street
    drawn: dict[tuple[object, ...], list[bytes]] = {}
    sent: dict[str, int] = {}  # pictures each camera has sent

    def served(camera_id: str, scene: Picture, when: dt.datetime) -> bytes:
        f = scene.fault
        key = (snapshot.camera_hash(camera_id), scene.period, f and (f.fault, f.strength, f.seed))
        frames = drawn.setdefault(key, [])
        sent[camera_id] = sent.get(camera_id, -1) + 1
        index = 0 if f and f.fault is Fault.freeze else sent[camera_id] % VARIANTS
        while len(frames) <= index:
            frames.append(draw(camera_id, scene, when + dt.timedelta(milliseconds=len(frames))))
        return frames[index]

    snapshot.render_street = served
    fleet = _fleet(config, count)
    faults = {c.id: _picture_of(i) for i, c in enumerate(fleet)}
    devices = build_devices(fleet, PASSWORDS, lambda c: Quirks(picture=faults[c.id]))

    async def serve() -> None:
        async with Simulator(devices, answer_delay_s=0.0, serve_rtsp=False):
            print(f"READY {len(devices)}", flush=True)
            await asyncio.Event().wait()

    asyncio.run(serve())
    return 0


def _config(workdir: Path, per_minute: int) -> Path:
    """The shipped config with every network's rounds on at `per_minute`, due in an hour (the
    benchmark makes them due when it wants the round)."""
    raw = tomllib.loads((ROOT / "config" / "camgw.toml").read_text())
    for i, net in enumerate(raw["networks"]):
        # ranges of their own: the shipped ones may be a demo's, running on this machine
        net["cidrs"] = [f"127.{BENCH_RANGE + i}.0.0/16"]
        net["discovery"]["wsdiscovery_targets"] = [f"127.{BENCH_RANGE + i}.0.0/20"]
        net["quality"] = net.get("quality", {}) | {
            "enabled": True,
            "interval_s": 3600.0,
            "max_per_minute": per_minute,
        }
    out: list[str] = []
    toml_lines(raw, [], out)
    path = workdir / "camgw-quality.toml"
    path.write_text("\n".join(out) + "\n")
    return path


def _import(gw: GatewayStack, admin: str, fleet: list[FleetCamera]) -> None:
    from adapters.simulator.devices import ONVIF_PORT, SIM_USERNAME  # noqa: PLC0415
    from gateway.demo import fleet_rows  # noqa: PLC0415

    rows = []
    for row in fleet_rows(fleet):
        item = row.model_dump(mode="json", exclude_none=True)
        item["snapshot_uri"] = f"http://{item['address']}:{ONVIF_PORT}/onvif/snapshot.jpg"
        # its own credentials (the network's go only to a device discovery read there)
        item["credentials"] = {"username": SIM_USERNAME, "password": PASSWORDS[row.network]}
        rows.append(item)
    reply = http_request(
        "POST",
        f"{gw.base}/api/v1/cameras/import",
        headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"},
        body=orjson.dumps(rows),
        timeout=120,
    )
    result = orjson.loads(reply.body) if reply.status == 200 else {}
    if result.get("created") != len(fleet):
        raise BenchError(f"import answered {reply.status}: {reply.body[:500]!r}")


@dataclass
class Poller:
    """Dashboards polling the camera list with `If-None-Match`, as the dashboard does."""

    base: str
    token: str
    every_s: float = 0.5
    conditional: bool = True  # False: never sends If-None-Match (every answer a full 200)
    samples: list[tuple[float, float, int]] = field(default_factory=list)  # (at, ms, status)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self, count: int) -> None:
        for _ in range(count):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _run(self) -> None:
        host, port = self.base.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        etag = ""
        headers = {"Authorization": f"Bearer {self.token}", "Accept-Encoding": "gzip"}
        while not self._stop.is_set():
            t0 = time.perf_counter()
            try:
                conn.request("GET", LIST_PATH, headers=headers | {"If-None-Match": etag})
                resp = conn.getresponse()
                body = resp.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
                continue
            took = (time.perf_counter() - t0) * 1000
            self.samples.append((time.time(), took, resp.status))
            if resp.status == 200:
                etag = (resp.getheader("ETag") or "") if self.conditional else ""
                if resp.getheader("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
            self._stop.wait(max(0.0, self.every_s - took / 1000))
        conn.close()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=35)

    def between(self, t0: float, t1: float) -> list[tuple[float, int]]:
        return [(ms, status) for at, ms, status in self.samples if t0 <= at <= t1]


def _diagnosed(gw: GatewayStack, admin: str) -> dict[str, float]:
    """camgw_quality_diagnoses_total summed per status over the networks."""
    reply = http_request("GET", f"{gw.base}/metrics", headers={"Authorization": f"Bearer {admin}"})
    out: dict[str, float] = {}
    for line in reply.body.decode().splitlines():
        if line.startswith("camgw_quality_diagnoses_total{"):
            labels, value = line.rsplit(" ", 1)
            status = labels.split('status="', 1)[1].split('"', 1)[0]
            out[status] = out.get(status, 0.0) + float(value)
    return out


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                text = Path(f"/proc/{entry.name}/stat").read_text()
            except OSError:
                continue
            if int(text[text.rindex(")") + 2 :].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _worker_pid(gateway_pid: int) -> int | None:
    """The diagnosis worker: the gateway's spawned child process (`spawn_main`)."""
    for child in _children(gateway_pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            return child
    return None


def _cpu(pid: int | None) -> float:
    return tree_cpu_seconds(pid) if pid is not None else 0.0


def _own_cpu(pid: int) -> float:
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _latency(samples: list[tuple[float, int]], status: int | None = None) -> list[str]:
    ms = [m for m, st in samples if status is None or st == status]
    if not ms:
        return ["-", "-", "0"]
    return [f"{percentile(ms, 50):.1f}", f"{percentile(ms, 99):.1f}", str(len(ms))]


@dataclass
class RoundRun:
    """What one measured round saw."""

    count: int
    per_minute: int
    t_due: float = 0.0
    t_first: float = 0.0
    t_end: float = 0.0
    limit_s: float = 0.0
    counts: dict[str, float] = field(default_factory=dict)
    worker_cpu: float = 0.0
    gateway_cpu: float = 0.0
    simulator_cpu: float = 0.0
    base: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    during: dict[str, list[tuple[float, int]]] = field(default_factory=dict)

    @property
    def wall(self) -> float | None:
        return self.t_end - self.t_due if self.t_end else None

    @property
    def done(self) -> int:
        return int(sum(self.counts.values()))


def _start_simulator(workdir: Path, config: Path, count: int) -> subprocess.Popen[bytes]:
    log = workdir / "simulator.log"
    argv = [sys.executable, str(Path(__file__)), "--serve-simulator", str(count)]
    sim = start_process(
        [*argv, "--config", str(config)],
        core=LOAD_CORE if can_pin() else None,
        log=log,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 120
    while "READY" not in (log.read_text() if log.exists() else ""):
        if sim.poll() is not None or time.monotonic() > deadline:
            stop_process(sim)
            raise BenchError(f"simulator not ready:\n{log_tail(log)}")
        time.sleep(0.2)
    return sim


def _make_due(gw: GatewayStack) -> None:
    """Every network's round due now (the schedule hash's `quality` field)."""

    async def due() -> None:
        from gateway.app import redis_client  # noqa: PLC0415

        client = redis_client(gw.redis_url)
        try:
            prefix = gw.settings().redis.prefix
            for net in PASSWORDS:
                await client.hset(f"{prefix}:schedule:{net}", "quality", "0")
        finally:
            await client.aclose()

    asyncio.run(due())


def _wait_round(
    gw: GatewayStack, admin: str, run: RoundRun, before: dict[str, float]
) -> int | None:
    """Until every camera is counted (or the time is up); returns the worker's pid."""
    assert gw.proc is not None
    worker: int | None = None
    said = time.monotonic()
    while True:
        counts = _diagnosed(gw, admin)
        run.counts = {k: v - before.get(k, 0.0) for k, v in counts.items() if v > before.get(k, 0)}
        now = time.time()
        if time.monotonic() - said > 60:
            said = time.monotonic()
            progress(f"quality round: {run.done} of {run.count} diagnosed")
        if run.done and not run.t_first:
            run.t_first = now
        if worker is None and (worker := _worker_pid(gw.proc.pid)) is not None and can_pin():
            os.sched_setaffinity(worker, {LOAD_CORE})  # not the event loop's core
        if run.done >= run.count:
            run.t_end = now
            return worker
        if now - run.t_due > run.limit_s:
            return worker
        if not gw.alive():
            raise BenchError("the gateway died:\n" + "\n".join(gw.problem_lines()[-20:]))
        if run.counts.get("unreachable", 0) > run.count / 20:
            problems = "\n".join(gw.problem_lines()[-5:])
            raise BenchError(f"pictures unreachable in the round: {run.counts}\n{problems}")
        time.sleep(0.5)


def _start_pollers(gw: GatewayStack, pollers: dict[str, Poller]) -> None:
    """Two dashboards polling conditionally every 0.5 s, one unconditionally every 1 s."""
    if can_pin():
        os.sched_setaffinity(0, {LOAD_CORE})  # the pollers: the load generator's core
    viewer = gw.token("q-bench-viewer", "viewer", ["*"])
    for poller in pollers.values():
        poller.base, poller.token = gw.base, viewer  # (its port is known now)
    pollers["full"].conditional = False
    pollers["conditional"].start(2)
    pollers["full"].start(1)


def measured_rounds(
    count: int, per_minute: int, baseline_s: float, budget_s: float, rounds: int
) -> list[RoundRun]:
    """`rounds` rounds one after the other, after `baseline_s` of polls without one."""
    started = time.monotonic()
    runs: list[RoundRun] = []
    with tempfile.TemporaryDirectory(prefix="camgw-quality-") as tmp:
        workdir = Path(tmp)
        env = {PASSWORD_ENV[n]: pw for n, pw in PASSWORDS.items()}
        config = _config(workdir, per_minute)
        gw = GatewayStack(workdir / "gw", config=config, extra_env=env)
        sim = None
        pollers = {"conditional": Poller(gw.base, "", 0.5), "full": Poller(gw.base, "", 1.0)}
        try:
            progress(f"quality round: gateway on core {SERVER_CORE}, {count} cameras")
            gw.start()
            admin = gw.token("q-bench-admin", "admin", ["*"])
            _import(gw, admin, _fleet(config, count))
            progress(f"quality round: simulator on core {LOAD_CORE} (streets, 1280x720)")
            sim = _start_simulator(workdir, config, count)
            _start_pollers(gw, pollers)
            progress(f"quality round: {baseline_s:.0f} s of polls without a round")
            t_base = time.time()
            time.sleep(baseline_s)
            t_base_end = time.time()
            assert gw.proc is not None
            worker: int | None = None
            worker_cpu = 0.0
            for number in range(1, rounds + 1):
                run = RoundRun(count, per_minute)
                runs.append(run)
                before = _diagnosed(gw, admin)
                gw_cpu0, sim_cpu0 = _own_cpu(gw.proc.pid), _cpu(sim.pid)
                _make_due(gw)
                run.t_due = time.time()
                # (a round not done in 10 minutes has missed the aim: no point waiting longer)
                run.limit_s = min(budget_s - (time.monotonic() - started), AIM_ROUND_S + 5)
                progress(f"quality round {number}: due; waiting for every camera's diagnosis")
                worker = _wait_round(gw, admin, run, before) or worker
                run.worker_cpu = _cpu(worker) - worker_cpu
                worker_cpu += run.worker_cpu
                run.gateway_cpu = _own_cpu(gw.proc.pid) - gw_cpu0
                run.simulator_cpu = _cpu(sim.pid) - sim_cpu0
                t_stop = run.t_end or time.time()
                for name, poller in pollers.items():
                    run.base[name] = poller.between(t_base, t_base_end)
                    run.during[name] = poller.between(run.t_first or run.t_due, t_stop)
                if not run.t_end or time.monotonic() - started > budget_s - 60:
                    break  # (not done, or no time left for another)
        finally:
            for poller in pollers.values():
                poller.stop()
            stop_process(sim)
            gw.stop()
    return runs


def round_lines(run: RoundRun, number: int) -> list[str]:
    wall = run.wall
    verdicts = ", ".join(f"{k} {int(v)}" for k, v in sorted(run.counts.items()))
    first = run.t_first - run.t_due if run.t_first else None
    rows = [
        ["cameras diagnosed", f"{run.done} of {run.count} ({verdicts})"],
        ["round wall s (due -> last verdict)", f"{wall:.1f}" if wall else "not done"],
        ["first verdict after s (the loop's next look)", f"{first:.1f}" if first else "-"],
        ["diagnosis worker CPU s (from its start)", f"{run.worker_cpu:.1f}"],
        ["worker CPU per camera ms", f"{run.worker_cpu * 1000 / max(1, run.done):.1f}"],
        ["gateway process CPU s (event loop and threads)", f"{run.gateway_cpu:.1f}"],
        ["simulator CPU s (harness)", f"{run.simulator_cpu:.1f}"],
    ]
    polls = []
    for phase, samples in (("without a round", run.base), ("during the round", run.during)):
        cond = samples.get("conditional", [])
        polls.append([phase, "conditional (all)", *_latency(cond)])
        polls.append([phase, "conditional, 304", *_latency(cond, 304)])
        polls.append([phase, "conditional, 200", *_latency(cond, 200)])
        polls.append([phase, "full list (no ETag), 200", *_latency(samples.get("full", []))])
    lines = [
        f"quality round {number}: {run.count} simulated cameras (1280x720 streets, 1 in 10 "
        f"faulty), 3 networks at {run.per_minute} pictures a minute each, one diagnosis worker",
        markdown_table(["measure", "value"], rows),
        "",
        "dashboard polls of the camera list, same run: 2 conditional pollers every 0.5 s, "
        "1 unconditional every 1 s",
        markdown_table(["phase", "request", "p50 ms", "p99 ms", "polls"], polls),
    ]
    if run.count < TOWN and wall:
        lines.append(
            f"scaled to the town: {wall * TOWN / run.count:.0f} s wall, "
            f"{run.worker_cpu * TOWN / max(1, run.done):.0f} s of worker CPU (linear in cameras)"
        )
    fits = wall is not None and wall <= AIM_ROUND_S and run.count >= TOWN
    verdict = "fits" if fits else ("not measured at full size" if run.count < TOWN else "MISSED")
    lines.append(f"the whole town within {AIM_ROUND_S / 60:.0f} minutes on one core: {verdict}")
    return lines


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pictures", type=int, default=40, help="per size and run")
    parser.add_argument("--quick", action="store_true", help="fewer pictures, 400 cameras")
    parser.add_argument("--no-round", action="store_true", help="CPU per picture only")
    parser.add_argument("--round-only", action="store_true", help="the measured round only")
    parser.add_argument("--cameras", type=int, default=None, help="in the round (default 3,308)")
    parser.add_argument(
        "--per-minute", type=int, default=1200, help="max_per_minute of each network's round"
    )
    parser.add_argument("--baseline-s", type=float, default=None)
    parser.add_argument(
        "--rounds", type=int, default=None, help="one after the other (default 1; --quick 3)"
    )
    parser.add_argument("--serve-simulator", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_simulator:
        return serve_simulator(args.config, args.serve_simulator)
    if args.quick:
        args.runs, args.pictures = 1, 10
    cameras = args.cameras or (QUICK_CAMERAS if args.quick else TOWN)
    baseline_s = args.baseline_s or (15.0 if args.quick else 20.0)
    if args.runs < 1 or not 1 <= args.pictures <= 500 or not 10 <= cameras <= TOWN:
        parser.error("--runs >= 1, 1 <= --pictures <= 500, 10 <= --cameras <= 3308")
    exit_on_sigterm()
    if not args.round_only:
        cpu_per_picture(args)
    if args.no_round:
        return 0
    rounds = args.rounds or (3 if args.quick else 1)
    runs = measured_rounds(cameras, args.per_minute, baseline_s, 11 * 60, rounds)
    for number, run in enumerate(runs, 1):
        print()
        print("\n".join(round_lines(run, number)))
    return 0


def cpu_per_picture(args: argparse.Namespace) -> None:
    cv2.setNumThreads(1)  # the diagnosis worker's setting: one core
    config = QualityConfig()
    rows, medians = [], {}
    for label, (width, height) in SIZES.items():
        progress(f"quality: drawing {args.pictures} {label} pictures")
        items = pictures(width, height, args.pictures)
        one_run(items[:3], config)  # warm-up: imports, allocations
        runs = []
        for run in range(args.runs):
            progress(f"quality: {label} run {run + 1}/{args.runs}")
            runs.append(one_run(items, config))
        decode, diag, total = (list(column) for column in zip(*runs, strict=True))
        medians[label] = statistics.median(diag)
        rows.append(
            [
                label,
                fmt_spread(decode, ".1f"),
                fmt_spread(diag, ".1f"),
                fmt_spread(total, ".1f"),
                fmt_spread((t * TOWN / 1000 for t in total), ".0f"),
            ]
        )
    print("\n".join(header_lines()))
    print(
        f"quality diagnosis: CPU per camera, one thread, {args.pictures} pictures per size "
        f"(day/night, clean and faulty), min / median / max over {args.runs} runs"
    )
    columns = ["picture", "decode ms", "diagnose ms", "total ms", "round of 3,308 s"]
    print(markdown_table(columns, rows))
    met = "aim met" if medians["1080p"] < AIM_1080P_MS else "aim missed"
    print(f"1080p diagnose median {medians['1080p']:.1f} ms against {AIM_1080P_MS:.0f} ms: {met}")
    print()
    print("where a 1080p diagnosis's CPU goes (median ms over the pictures)")
    width, height = SIZES["1080p"]
    print(markdown_table(["step", "ms"], breakdown(pictures(width, height, 10), config)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
