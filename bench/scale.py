"""District scale: the gateway with 3,308, 33,000 and 100,000 cameras in its registry (issue 11).

Per scale a fresh private redis-server and `camgw serve` (the shipped config, its networks moved
to loopback ranges of their own; one core). The 3,308 cameras of the simulated fleet (`camgw
simulate --scale 1.0`, every camera ONVIF, 50 ms before every answer, its own process on the
other core) are in every scale, found by a discovery through the API; the rest of the scale is
imported first through `Registry.create_many` (the bulk path of `POST /api/v1/cameras/import` and
the demo seed): records generated in the inventory's mix of networks, categories and departments,
shaped as discovery writes them, with their ONVIF device service on a loopback address where a
clock responder answers the health probe (bench/_responders.py, 50 ms like the simulator; with
`--simulated-only` they have none and health rounds probe the 3,308 simulated cameras only).
Then: a discovery while a dashboard polls, the first health round after it and the next one
(when the gateway schedules it), the gateway's RSS,
the catalog's rebuild time after one change, a filtered page and the full list under 4 polling
dashboards (static, and with a camera changing every second), and 304s against nginx serving the
same bytes in the same run.
Everything on 127.0.0.1; every process started here is stopped here.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import ipaddress
import itertools
import math
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import redis
from _responders import PER_PROCESS
from common import (
    LOAD_CORE,
    ROOT,
    SERVER_CORE,
    BenchError,
    GatewayStack,
    PeakWatch,
    StaticNginx,
    WrkLoad,
    WrkResult,
    can_pin,
    discover_all,
    exit_on_sigterm,
    fmt_spread,
    header_lines,
    http_request,
    log_tail,
    loop_delay_counts,
    markdown_table,
    metric_value,
    metrics_text,
    percentile,
    proc_status_kib,
    progress,
    run_wrk,
    start_process,
    stop_process,
    toml_lines,
    tree_cpu_seconds,
    write_wrk_script,
)
from discovery import SimProcess, loop_delay_since, run_delay_s

from gateway.app import redis_client
from gateway.audit import AuditEvent, AuditLog
from gateway.demo import fleet_for
from gateway.models import (
    Camera,
    CameraSource,
    CameraStatus,
    Capabilities,
    Channel,
    DeviceInfo,
    Location,
    OnvifInfo,
    StreamProfile,
)
from gateway.registry import Registry
from gateway.settings import CategoryConfig, Settings, load_settings
from gateway.vault import CredentialVault, load_key

SCALES = (3_308, 33_000, 100_000)


@dataclass(frozen=True)
class Area:
    """Where generated cameras stand: uniformly inside lat/lon +- the half extents."""

    lat: float
    lon: float
    half_lat: float
    half_lon: float
    name: str


# Dongjing, the town of the demo fleet (~6.7 x 5.7 km), and Songjiang, its district (~24 x 27 km,
# about 650 km^2: 100,000 cameras there are ~1.9 times the town's density, 30 times in the town).
TOWN_AREA = Area(31.085, 121.300, 0.03, 0.03, "Dongjing")
DISTRICT_AREA = Area(31.030, 121.230, 0.11, 0.14, "Songjiang")
HERE = Path(__file__).resolve().parent
SIMULATED = 3_308  # gateway.demo.fleet_for(settings, 1.0)
AIM_AT = 100_000  # the aims are for this many cameras
AIM_RSS_MIB = 1024.0
AIM_PAGE_P99_MS = 50.0
AIM_LOOP_P99_MS = 20.0
PAGE_QUERY = "network=governance&status=online&limit=50"
PAGE_PATH = f"/api/v1/cameras?{PAGE_QUERY}"
FULL_LIMIT = 10_000  # the API's largest page: the full list is every page of it in turn
FULL_PATH = f"/api/v1/cameras?limit={FULL_LIMIT}"
STATIC_NAME = "page.json"
DASHBOARDS = 4  # wrk connections of the dashboard cases (list_poll's "4 dashboards")
CONNECTIONS_304 = 64  # as list_poll's 304 cases
CHANGE_EVERY_S = 1.0  # the "changing" case: one camera renamed this often
POLL_EVERY_S = 1.0  # the dashboard polling during discovery and the health round
BUDGET_S = 780.0  # the default run ends within 13 minutes: scales that would not fit are skipped
GW304_TRIES = 4  # runs of the gateway's 304 case until one sees no change of the list
CHANGING_MAX_S = 15  # the changing case's runs hold two catalog rebuilds, up to this long
WAIT_S = 60  # how long a dashboard request may take (wrk --timeout) before it is an error
DISCOVERY_TIMEOUT_S = 300.0
HEALTH_SOON_S = 6.0  # the first health round after discovery is brought forward to this
SIM_DELAY_S = 0.05
# Imported cameras: as the town's are, many behind recorders (bench/discovery.py's second fleet)
NVR_SHARE, NVR_CHANNELS = 0.3, 16
ENCODER_SHARE, ENCODER_CHANNELS = 0.1, 4
FILLER_FROM = 32 * 256  # imported addresses from x.y.32.0 (the simulated fleet is below x.y.16.0)
FILLER_CHUNK = 5_000
STATUS_MIX = (("online", 0.92), ("offline", 0.05), ("degraded", 0.02), ("unknown", 0.01))
DEVICES = (  # vendor, model, firmware: typical of a town's fleet
    ("Hikvision", "DS-2CD2347G2-LU", "V5.7.3 build 230601"),
    ("Dahua", "IPC-HFW2431S-S-S2", "V2.820.0000000.48.R"),
    ("Uniview", "IPC2124LB-SF40KM-G", "IPC_G6103-B5005P62D1905"),
)
CASES: list[tuple[str, str]] = [  # key, label
    ("page", f"filtered page ({PAGE_QUERY}), {DASHBOARDS} dashboards, p99 ms"),
    ("full", f"full list (pages of {FULL_LIMIT:,} in turn), {DASHBOARDS} dashboards, p99 ms"),
    ("gw304", f"gateway 304 req/s (first page, -c{CONNECTIONS_304})"),
    ("ng304", f"nginx 304 req/s (same bytes, -c{CONNECTIONS_304})"),
    ("page_chg", f"the filtered page while a camera changes every {CHANGE_EVERY_S:g} s, p99 ms"),
]
LABELS = dict(CASES)


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise BenchError(msg)


def scale_config(path: Path, range_base: int) -> Path:
    """The shipped config with every network (its CIDR and its WS-Discovery targets) moved to
    its own loopback /16 from 127.<range_base>.0.0: the tests, the demo and the other
    benchmarks run simulators on 127.1-3.x, 127.201-203.x and 127.211-213.x, and two simulators
    cannot share an address. Nothing else changes (health interval, concurrency, timeouts)."""
    raw: dict[str, Any] = tomllib.loads((ROOT / "config" / "camgw.toml").read_text())
    for i, net in enumerate(raw["networks"]):
        old = ipaddress.ip_network(net["cidrs"][0])
        second = range_base + i
        _check(second <= 255, f"--range-base {range_base} leaves no room for {net['id']}")
        net["cidrs"] = [f"127.{second}.0.0/16"]
        targets = []
        for target in net["discovery"].get("wsdiscovery_targets", []):
            _check(
                ipaddress.ip_network(target, strict=False).subnet_of(old),  # type: ignore[arg-type]
                f"{net['id']}: WS-Discovery target {target} outside {old}",
            )
            _, _, rest = target.split(".", 2)
            targets.append(f"127.{second}.{rest}")
        net["discovery"]["wsdiscovery_targets"] = targets
    out = [f"# camgw benchmark config (bench/scale.py), from {ROOT}/config: own address ranges"]
    toml_lines(raw, [], out)
    text = "\n".join(out) + "\n"
    _check(tomllib.loads(text) == raw, "bench config did not round-trip through TOML")
    path.write_text(text)
    return path


# -- the imported cameras -------------------------------------------------------------------------


def _allocate(total: int, weights: list[int]) -> list[int]:
    """`total` split in proportion to `weights` (largest remainders)."""
    exact = [total * w / sum(weights) for w in weights]
    out = [int(x) for x in exact]
    by_rest = sorted(range(len(weights)), key=lambda i: out[i] - exact[i])
    for i in by_rest[: total - sum(out)]:
        out[i] += 1
    return out


def _sites(first: int, count: int, limit: int) -> list[tuple[str, int, int]]:
    """(address, channel, channels) of `count` cameras from address `first`: the first
    NVR_SHARE on NVRs, the next ENCODER_SHARE on encoders, the rest one camera per address."""
    nvr = int(count * NVR_SHARE) // NVR_CHANNELS * NVR_CHANNELS
    enc = int(count * ENCODER_SHARE) // ENCODER_CHANNELS * ENCODER_CHANNELS
    out: list[tuple[str, int, int]] = []
    host = first
    for size, n in ((NVR_CHANNELS, nvr), (ENCODER_CHANNELS, enc), (1, count - nvr - enc)):
        for i in range(n):
            out.append((str(ipaddress.ip_address(host + i // size)), i % size + 1, size))
        host += -(-n // size)
    _check(host <= limit, f"{count:,} imported cameras do not fit the network's range")
    return out


def filler(
    settings: Settings,
    count: int,
    now: datetime,
    seed: int = 11,
    probe: bool = False,
    area: Area = TOWN_AREA,
) -> Iterator[Camera]:
    """`count` camera records in the inventory's mix (categories by their planned counts),
    deterministic for a seed; with `probe`, each with its device service (bench/_responders.py
    answers there), else with none (health rounds then leave it alone)."""
    rng = random.Random(seed)
    cats = [c for c in settings.categories if c.network is not None and c.planned]
    per_cat = _allocate(count, [c.planned for c in cats])
    for net in settings.networks:
        mine = [(c, n) for c, n in zip(cats, per_cat, strict=True) if c.network == net.id]
        total = sum(n for _, n in mine)
        if not total:
            continue
        cidr = net.cidrs[0]
        base = int(cidr.network_address)
        sites = iter(_sites(base + FILLER_FROM, total, base + cidr.num_addresses - 1))
        for cat, n in mine:
            for i in range(1, n + 1):
                address, ch, of = next(sites)
                cam = _camera(rng, now, net.id, cat, i, address, ch, of, probe, area)
                if i % 500 == 1:  # what validation makes of it is the same record
                    raw = cam.model_dump_json()
                    _check(
                        Camera.model_validate_json(raw).model_dump_json() == raw,
                        f"generated record {cam.id} does not survive validation: {raw}",
                    )
                yield cam


def audited(cams: list[Camera], bench: str) -> list[tuple[Camera, None, AuditEvent]]:
    """Registry.create_many's items for generated cameras: each with its audit entry, as the
    import API writes them (actor `bench-<bench>`)."""
    return [
        (
            c,
            None,
            AuditEvent(
                actor=f"bench-{bench}",
                role="admin",
                action="camera.create",
                target=c.id,
                network=c.network,
                outcome="ok",
                status=200,
                detail=f"bench/{bench}.py import",
            ),
        )
        for c in cams
    ]


def _camera(
    rng: random.Random,
    now: datetime,
    network: str,
    cat: CategoryConfig,
    i: int,
    address: str,
    ch: int,
    of: int,
    probe: bool = False,
    area: Area = TOWN_AREA,
) -> Camera:
    """One record, built without validation (about 5x faster: 100,000 of them); `filler`
    checks a sample through the model's validation."""
    cam_id = f"{network}.{cat.id}-i{i:06d}"
    dev = hashlib.blake2b(f"{network}|{address}".encode(), digest_size=16).hexdigest()  # device
    own = hashlib.blake2b(cam_id.encode(), digest_size=16).hexdigest()  # this channel
    vendor, model, firmware = DEVICES[int(dev[:2], 16) % len(DEVICES)]
    status = rng.choices(_STATUSES, cum_weights=_STATUS_CUM)[0]
    street = rng.choice(_STREETS)
    source = f"VideoSource_{ch}"
    base = f"http://{address}:8000/onvif"
    ip = ipaddress.ip_address(address)
    profiles = [
        StreamProfile.model_construct(
            token=f"Profile_{ch}_{k}",
            name=name,
            codec="H264",
            width=w,
            height=h,
            fps=fps,
            stream_uri=None,
            source=source,
        )
        for k, name, w, h, fps in _PROFILES
    ]
    return Camera.model_construct(
        id=cam_id,
        network=network,
        name=f"{street} #{i}",
        category=cat.id,
        department=cat.department,
        carrier=cat.carrier,
        project=cat.project,
        location=Location.model_construct(
            lat=round(area.lat + rng.uniform(-area.half_lat, area.half_lat), 6),
            lon=round(area.lon + rng.uniform(-area.half_lon, area.half_lon), 6),
            address=f"{street}, {area.name}",
        ),
        address=ip,
        vendor=vendor,
        model=model if of == 1 else f"{model}-NVR{of}",
        firmware=firmware,
        serial=f"SN{dev[:12].upper()}",
        mac=":".join(["02", *(dev[j : j + 2] for j in range(12, 22, 2))]),
        hardware_id=f"HW{dev[22:28].upper()}",
        onvif=OnvifInfo.model_construct(
            device_uri=f"{base}/device_service" if probe else None,
            endpoint_reference=f"urn:uuid:{uuid.UUID(dev)}",
            services={
                "http://www.onvif.org/ver10/device/wsdl": f"{base}/device_service",
                "http://www.onvif.org/ver10/media/wsdl": f"{base}/media_service",
            },
            clock_offset_s=round(rng.uniform(-0.5, 0.5), 3),
        ),
        device=DeviceInfo.model_construct(address=ip, ports=[8000, 8554], ref=own, port=8000),
        channel=Channel.model_construct(token=source, index=ch, of=of) if of > 1 else None,
        profiles=profiles,
        snapshot_uri=f"{base}/snapshot.jpg" + (f"?channel={ch}" if of > 1 else ""),
        capabilities=Capabilities.model_construct(ptz=False, audio=False, events=False),
        status=status,
        last_seen=now - timedelta(minutes=rng.randint(0, 4))
        if status is not CameraStatus.unknown
        else None,
        last_error="health: timeout" if status is CameraStatus.offline else None,
        notes=[],
        snapshot_note=None,
        source=CameraSource.discovered,
        has_credentials=False,
        tags=[cat.id],
        created_at=now,
        updated_at=now,
        rev=1,
    )


_STATUSES = [CameraStatus(s) for s, _ in STATUS_MIX]
_STATUS_CUM = list(itertools.accumulate(w for _, w in STATUS_MIX))
_PROFILES = ((1, "mainStream", 1920, 1080, 25.0), (2, "subStream", 640, 360, 15.0))
_STREETS = [
    "Dongjing Rd", "Changxi Rd", "Sijing Rd", "Dongxing Rd", "Jiuting Ave", "Baole Rd",
    "Yingxiang Rd", "Xinzhuan Rd", "Zhangjing Rd", "Jiushi Rd", "Minyi Rd", "Chenchun Rd",
]  # fmt: skip


@dataclass(frozen=True)
class Imported:
    cameras: int
    seconds: float
    mean_bytes: float  # of the stored JSON records
    addresses: tuple[str, ...] = ()  # where the probed ones answer (distinct; responders)
    per_network: dict[str, int] = field(default_factory=dict)


def import_filler(
    gw: GatewayStack, settings: Settings, count: int, probe: bool = False
) -> Imported:
    """`count` generated cameras through Registry.create_many, each with its audit entry (as an
    import writes them), in chunks, the next chunk generated in a worker thread while the last
    one is written; every one must be created. `seconds` is the whole import's wall time."""
    if count <= 0:
        return Imported(0, 0.0, 0.0)
    now = datetime.now(UTC)
    cams = filler(settings, count, now, probe=probe)
    Item = tuple[Camera, None, AuditEvent]
    addresses: dict[str, None] = {}
    per_network: Counter[str] = Counter()

    def next_chunk() -> tuple[list[Item], int]:
        chunk = list(itertools.islice(cams, FILLER_CHUNK))
        for c in chunk:
            per_network[c.network] += 1
            if probe:
                addresses[str(c.address)] = None
        return audited(chunk, "scale"), sum(len(c.model_dump_json()) for c in chunk)

    async def go() -> Imported:
        client = redis_client(gw.redis_url)
        started = time.perf_counter()
        try:
            vault = CredentialVault(load_key(gw.key_file))
            audit = AuditLog(client, settings.redis.prefix, vault)
            registry = Registry(client, settings, vault, audit)
            created, size = 0, 0
            items, n_bytes = await asyncio.to_thread(next_chunk)
            while items:
                following = asyncio.create_task(asyncio.to_thread(next_chunk))
                results = await registry.create_many(items)  # type: ignore[arg-type]
                bad = [
                    (c.id, r)
                    for (c, _, _), r in zip(items, results, strict=True)
                    if not isinstance(r, int)
                ]
                _check(not bad, f"import refused {len(bad)} cameras, e.g. {bad[:3]}")
                created, size = created + len(items), size + n_bytes
                items, n_bytes = await following
            took = time.perf_counter() - started
            return Imported(created, took, size / created, tuple(addresses), dict(per_network))
        finally:
            await client.aclose()

    result = asyncio.run(go())
    _check(result.cameras == count, f"generated {result.cameras:,} cameras, not {count:,}")
    return result


# -- the imported cameras' device services ---------------------------------------------------------


class Responders:
    """bench/_responders.py processes answering the clock probe on the imported cameras'
    addresses (PER_PROCESS each), on the load core; stopped by `stop`."""

    def __init__(self, workdir: Path, addresses: tuple[str, ...]) -> None:
        self.workdir = workdir
        self.addresses = addresses
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, timeout: float = 120.0) -> Responders:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for k in range(0, len(self.addresses), PER_PROCESS):
            listed = self.workdir / f"addresses-{k // PER_PROCESS}.txt"
            listed.write_text("\n".join(self.addresses[k : k + PER_PROCESS]))
            argv = [sys.executable, str(HERE / "_responders.py"), str(listed)]
            argv += ["--delay", str(SIM_DELAY_S)]
            log = self.workdir / f"responders-{k // PER_PROCESS}.log"
            self.procs.append(start_process(argv, core=LOAD_CORE, log=log, env=dict(os.environ)))
        deadline = time.monotonic() + timeout
        for i, proc in enumerate(self.procs):
            log = self.workdir / f"responders-{i}.log"
            while "READY" not in (log.read_text(errors="replace") if log.exists() else ""):
                if proc.poll() is not None:
                    raise BenchError(f"a clock responder exited:\n{log_tail(log)}")
                if time.monotonic() > deadline:
                    raise BenchError(f"clock responders not READY in {timeout:.0f} s")
                time.sleep(0.1)
        return self

    def stop(self) -> None:
        for proc in self.procs:
            stop_process(proc)
        self.procs = []


# -- background clients ---------------------------------------------------------------------------


class Repeater(threading.Thread):
    """Calls `action` every `every_s` seconds until stopped, timing each call (a dashboard
    polling, an operator renaming cameras). Failures are kept, never raised in the thread."""

    def __init__(self, name: str, every_s: float, action: Callable[[int], int]) -> None:
        super().__init__(name=name, daemon=True)
        self.every_s = every_s
        self.action = action
        self.latencies_ms: list[float] = []
        self.failures: list[str] = []
        self._halt = threading.Event()

    def run(self) -> None:
        n = 0
        while not self._halt.is_set():
            started = time.perf_counter()
            try:
                status = self.action(n)
                if status >= 400:
                    self.failures.append(f"HTTP {status}")
            except OSError as exc:
                self.failures.append(repr(exc))
            took = time.perf_counter() - started
            self.latencies_ms.append(took * 1000)
            n += 1
            self._halt.wait(max(0.0, self.every_s - took))

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=60)


def dashboard(gw: GatewayStack, viewer: str) -> Repeater:
    auth = {"Authorization": f"Bearer {viewer}"}
    return Repeater(
        "dashboard",
        POLL_EVERY_S,
        lambda _n: http_request("GET", gw.base + PAGE_PATH, headers=auth).status,
    )


def renamer(gw: GatewayStack, admin: str, ids: list[str], marker: str) -> Repeater:
    headers = {"Authorization": f"Bearer {admin}", "Content-Type": "application/json"}

    def rename(n: int) -> int:
        body = orjson.dumps({"name": f"{marker} {n}"})
        url = f"{gw.base}/api/v1/cameras/{ids[n % len(ids)]}"
        return http_request("PATCH", url, headers=headers, body=body).status

    return Repeater("renamer", CHANGE_EVERY_S, rename)


# -- health rounds -------------------------------------------------------------------------------


@dataclass(frozen=True)
class HealthRound:
    per_network: dict[str, float]  # network -> seconds, its first round after discovery
    probed: int  # cameras with something to probe (the simulated ones)
    gateway_cpu_s: float  # CPU of camgw serve from the first round's start to the last's end
    loop_p99_ms: float  # event-loop delay p99 over the wait (rounds and idle time between)
    ended: float = 0.0  # wall clock: when the last network's round ended

    @property
    def seconds(self) -> float:
        return max(self.per_network.values())


def health_round(
    gw: GatewayStack,
    auth: dict[str, str],
    settings: Settings,
    networks: dict[str, int],
    after: float,
    bring_forward: bool = True,
) -> HealthRound | str:
    """Each network's first health round that starts after `after` (wall clock), brought
    forward to start soon: its start is when it was due and its end when the gateway moved the
    next one on (`<prefix>:schedule:{network}`, read from Redis, so that watching costs the
    gateway nothing). A string says why there is no figure."""
    assert gw.proc is not None
    prefix = settings.redis.prefix
    every = {n: float(settings.network_by_id[n].discovery.health_interval_s) for n in networks}
    if not all(every.values()):
        return "health probes off in the config"
    client = redis.Redis.from_url(gw.redis_url)
    # Bring each network's next round forward to HEALTH_SOON_S from now, unless it is due sooner
    # anyway: the gateway reads its schedule at least every 5 s (a third of its lease TTL) and
    # sleeps until what is due, so the round starts on time and its start is its due time.
    soon = time.time() + HEALTH_SOON_S
    for net in networks if bring_forward else ():  # (else when the gateway schedules it)
        raw = client.hget(f"{prefix}:schedule:{net}", "health")
        if raw is not None and float(raw) > soon + 1:
            client.hset(f"{prefix}:schedule:{net}", "health", repr(soon))
    loop0 = loop_delay_counts(gw.base, auth)
    cpu: list[tuple[float, float]] = []
    found: dict[str, tuple[float, float]] = {}
    last: dict[str, float | None] = {}
    wait_s = 2 * max(every.values()) + 60
    deadline = time.monotonic() + wait_s
    try:
        while len(found) < len(networks):
            cpu.append((time.time(), tree_cpu_seconds(gw.proc.pid)))
            for net in networks:
                raw = client.hget(f"{prefix}:schedule:{net}", "health")
                due = float(raw) if raw is not None else None
                if net not in found and due is not None and last.get(net) is not None:
                    prev = last[net]
                    assert prev is not None
                    if due != prev and prev >= after:
                        found[net] = (prev, due - every[net])
                last[net] = due
            if not any(v is not None for v in last.values()):
                return f"no {prefix}:schedule:* hash in Redis (this gateway schedules otherwise)"
            _check(gw.alive(), "the gateway died:\n" + "\n".join(gw.problem_lines()[-20:]))
            if time.monotonic() > deadline:
                return f"no health round within {wait_s:.0f} s after discovery"
            time.sleep(0.2)
    finally:
        client.close()
    start, end = min(s for s, _ in found.values()), max(e for _, e in found.values())

    def cpu_at(t: float) -> float:
        return min(cpu, key=lambda s: abs(s[0] - t))[1]

    return HealthRound(
        per_network={n: e - s for n, (s, e) in found.items()},
        probed=sum(networks.values()),
        gateway_cpu_s=cpu_at(end) - cpu_at(start),
        loop_p99_ms=loop_delay_since(loop0, gw.base, auth)["loop_p99_ms"],
        ended=end,
    )


# -- the list -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pages:
    paths: list[str]  # every page of the full list, in order
    first: bytes  # the first page's body (nginx serves these bytes)
    etag: str
    walk_s: float  # one client reading every page in turn
    total_bytes: int
    total: int  # cameras


def full_list(gw: GatewayStack, viewer: str, tries: int = 3) -> Pages:
    """Every page of the list in turn, then the first again with its ETag (a 304); read again
    when the registry moved meanwhile (health rounds write statuses and last_seen)."""
    for _ in range(tries - 1):
        try:
            return _full_list(gw, viewer)
        except BenchError as exc:
            progress(f"  the list moved while it was read ({exc}): again")
    return _full_list(gw, viewer)


def _full_list(gw: GatewayStack, viewer: str) -> Pages:
    auth = {"Authorization": f"Bearer {viewer}"}
    paths, bodies, seen, total = [FULL_PATH], [], 0, None
    started = time.perf_counter()
    while True:
        reply = http_request("GET", gw.base + paths[-1], headers=auth, timeout=120)
        _check(reply.status == 200, f"list answered {reply.status}: {reply.body[:300]!r}")
        bodies.append(reply)
        page = orjson.loads(reply.body)
        seen += len(page["items"])
        total = page["total"] if total is None else total
        _check(page["total"] == total, f"list total moved from {total:,} to {page['total']:,}")
        if page["next_cursor"] is None:
            break
        paths.append(f"{FULL_PATH}&cursor={page['next_cursor']}")
    walk = time.perf_counter() - started
    _check(seen == total, f"the pages hold {seen:,} cameras, the list says {total:,}")
    first = bodies[0]
    etag = first.headers.get("etag", "")
    _check(bool(etag), "list has no ETag")
    again = http_request("GET", gw.base + FULL_PATH, headers=auth | {"If-None-Match": etag})
    _check(again.status == 304, f"gateway If-None-Match answered {again.status}, not 304")
    return Pages(paths, first.body, etag, walk, sum(len(b.body) for b in bodies), seen)


def check_nginx(nginx: StaticNginx, name: str, body: bytes) -> str:
    url = f"{nginx.base}/{name}"
    reply = http_request("GET", url)
    _check(reply.status == 200 and reply.body == body, "nginx serves other bytes than the gateway")
    etag = reply.headers.get("etag", "")
    _check(bool(etag), "nginx sent no ETag")
    again = http_request("GET", url, headers={"If-None-Match": etag})
    _check(again.status == 304, f"nginx If-None-Match answered {again.status}, not 304")
    return etag


def _verify(key: str, result: WrkResult) -> None:
    """wrk counts a 200 where a 304 was meant as a success; bytes per response tell them apart."""
    per = result.bytes_per_response
    if key.endswith("304"):
        _check(per < 1024, f"{key}: {per:.0f} bytes per response: not 304s")
    elif result.requests:
        _check(per > 1024, f"{key}: {per:.0f} bytes per response: not list pages")


# -- catalog rebuilds -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Rebuild:
    seconds: float  # camgw_catalog_rebuild_seconds: mean of the rebuilds since the change
    rebuilds: int  # how many (more than 1: another write came in meanwhile)
    visible_s: float  # from the PATCH's answer to the first list that shows the change


def rebuilds(gw: GatewayStack, admin: str, ids: list[str], count: int) -> list[Rebuild]:
    """Rename one camera (PATCH), then search for the new name every 10 ms until the list finds
    it; the gateway's rebuild histogram says how long the rebuild took."""
    auth = {"Authorization": f"Bearer {admin}"}
    out: list[Rebuild] = []
    for k in range(count):
        text = metrics_text(gw.base, auth)
        sum0 = metric_value(text, "camgw_catalog_rebuild_seconds_sum")
        n0 = metric_value(text, "camgw_catalog_rebuild_seconds_count")
        _check(sum0 is not None and n0 is not None, "/metrics has no catalog rebuild histogram")
        assert sum0 is not None and n0 is not None
        marker = f"scalemark{k}x{secrets.token_hex(4)}"
        cam = ids[(k * 7919) % len(ids)]
        reply = http_request(
            "PATCH",
            f"{gw.base}/api/v1/cameras/{cam}",
            headers=auth | {"Content-Type": "application/json"},
            body=orjson.dumps({"name": marker}),
        )
        _check(reply.status == 200, f"PATCH {cam} answered {reply.status}: {reply.body[:300]!r}")
        changed = time.perf_counter()
        deadline = changed + 60
        while True:
            found = http_request(
                "GET", f"{gw.base}/api/v1/cameras?q={marker}&limit=1", headers=auth, timeout=60
            )
            _check(found.status == 200, f"search answered {found.status}")
            if orjson.loads(found.body)["total"] == 1:
                break
            _check(time.perf_counter() < deadline, f"{marker} not listed within 60 s")
            time.sleep(0.01)
        visible = time.perf_counter() - changed
        text = metrics_text(gw.base, auth)
        sum1 = metric_value(text, "camgw_catalog_rebuild_seconds_sum") or 0.0
        n1 = metric_value(text, "camgw_catalog_rebuild_seconds_count") or 0.0
        n = int(n1 - n0)
        _check(n >= 1, "the change was listed without a catalog rebuild")
        out.append(Rebuild((sum1 - sum0) / n, n, visible))
        progress(
            f"  change {k + 1}/{count}: rebuild {out[-1].seconds:.3f} s ({n} rebuild(s)), "
            f"listed after {visible:.3f} s"
        )
        time.sleep(2 * out[-1].seconds + 0.2)  # the catalog rebuilds at most every 2x its time
    return out


# -- one scale ------------------------------------------------------------------------------------


@dataclass
class ScaleRun:
    cameras: int
    imported: Imported
    discovery_wall_s: float = 0.0
    discovery_cpu_s: float = 0.0
    discovery_wait_s: float = 0.0  # gateway runnable, waiting for its core (other processes)
    discovery_loop_p99_ms: float = 0.0
    discovery_loop_max_ms: float = 0.0
    found: int = 0  # devices discovery found, of the simulated fleet's SIMULATED
    enriched: int = 0
    failed: int = 0
    failure_kinds: dict[str, int] = field(default_factory=dict)  # "step: reason" -> cameras
    listed: int = 0  # cameras the list holds afterwards
    changing_s: int = 0  # length of the changing case's runs
    poll_during_discovery_ms: list[float] = field(default_factory=list)
    health: HealthRound | str = "not run"
    # The round after it: what every round costs once the import's and discovery's status
    # changes are written (last_seen then moves for a tenth of the cameras a round).
    health_next: HealthRound | str = "not run"
    rss_mib: dict[str, float] = field(default_factory=dict)  # when -> VmRSS (peak: VmHWM)
    peak_step: str = ""  # the progress line printed last when VmHWM last rose
    pages: Pages | None = None
    wrk: dict[str, list[WrkResult]] = field(default_factory=dict)
    builds_during: dict[str, int] = field(default_factory=dict)  # catalog builds per case
    loop_p99_changing_ms: float = 0.0
    gw304_retries: int = 0  # gateway 304 runs repeated: the list changed during them
    rebuilds: list[Rebuild] = field(default_factory=list)
    other_ms: dict[str, float] = field(default_factory=dict)  # endpoint -> median ms
    redis_mib: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.found == SIMULATED == self.enriched and not self.failed


def _rss(gw: GatewayStack, key: str = "VmRSS") -> float:
    assert gw.proc is not None
    return proc_status_kib(gw.proc.pid, key) / 1024


def run_scale(
    n: int,
    workdir: Path,
    settings: Settings,
    sim: SimProcess,
    passwords: dict[str, str],
    nginx: StaticNginx,
    args: argparse.Namespace,
) -> ScaleRun:
    gw = GatewayStack(workdir, log_level=args.log_level, config=args.config, extra_env=passwords)
    responders: Responders | None = None
    try:
        gw.start()
        assert gw.proc is not None
        with PeakWatch(gw.proc.pid) as watch:
            admin = gw.token("bench-admin", "admin", ["*"])
            viewer = gw.token("bench-viewer", "viewer", ["*"])
            progress(f"{n:,}: importing {n - SIMULATED:,} cameras through Registry.create_many")
            imported = import_filler(gw, settings, n - SIMULATED, probe=args.probe_all)
            run = ScaleRun(n, imported)
            if imported.addresses:
                progress(f"  clock responders on {len(imported.addresses):,} imported addresses")
                responders = Responders(workdir / "responders", imported.addresses).start()
            run.rss_mib["imported"] = _rss(gw)
            if imported.cameras:
                progress(
                    f"  {imported.cameras:,} in {imported.seconds:.1f} s "
                    f"({imported.cameras / imported.seconds:,.0f}/s), "
                    f"{imported.mean_bytes:,.0f} bytes per record"
                )
            discover_and_probe(run, gw, settings, sim, admin, viewer, poll=not args.quiet_discovery)

            pages = full_list(gw, viewer)
            run.pages = pages
            run.listed = pages.total
            _check(pages.total >= imported.cameras, f"the list holds {pages.total:,} cameras")
            run.rss_mib["built"] = _rss(gw)
            (nginx.root / f"{n}-{STATIC_NAME}").write_bytes(pages.first)
            ng_etag = check_nginx(nginx, f"{n}-{STATIC_NAME}", pages.first)
            progress(f"{n:,}: catalog rebuild after one change ({args.changes} changes)")
            ids = [p["id"] for p in orjson.loads(pages.first)["items"]]
            run.rebuilds = rebuilds(gw, admin, ids, args.changes)
            run.other_ms = single_requests(gw, admin)
            measure_lists(run, gw, nginx, viewer, admin, ng_etag, workdir, args)
            run.rss_mib["polled"] = _rss(gw)
            run.rss_mib["end"] = _rss(gw)
            run.rss_mib["peak"] = _rss(gw, "VmHWM")
            assert gw.redis is not None and gw.redis.proc is not None
            run.redis_mib = proc_status_kib(gw.redis.proc.pid, "VmRSS") / 1024
            run.problems += gw.problem_lines()
            progress(
                f"  RSS MiB: {', '.join(f'{k} {v:,.0f}' for k, v in run.rss_mib.items())}; "
                f"redis-server {run.redis_mib:,.0f}"
            )
        run.peak_step = watch.step
        return run
    finally:
        gw.stop()
        if responders is not None:
            responders.stop()


def discover_and_probe(
    run: ScaleRun,
    gw: GatewayStack,
    settings: Settings,
    sim: SimProcess,
    admin: str,
    viewer: str,
    *,
    poll: bool,
) -> None:
    """Discovery of the simulated cameras, then the first health round after it, while a
    dashboard polls the filtered page (with `poll`)."""
    assert gw.proc is not None
    auth = {"Authorization": f"Bearer {admin}"}
    progress(
        f"{run.cameras:,}: discovery of the {SIMULATED:,} simulated cameras, a dashboard polling"
    )
    poller = dashboard(gw, viewer)
    loop0 = loop_delay_counts(gw.base, auth)
    cpu0, wait0 = tree_cpu_seconds(gw.proc.pid), run_delay_s(gw.proc.pid)
    if poll:
        poller.start()
    try:
        t0, jobs = discover_all(
            gw,
            auth,
            [net.id for net in settings.networks],
            timeout_s=DISCOVERY_TIMEOUT_S,
            poll_s=0.2,
            check=lambda: _check(sim.alive(), f"the simulator died:\n{log_tail(sim.log)}"),
        )
        _check(all(j.get("finished_at") for j in jobs.values()), f"a job has no end: {jobs}")
        ended = max(datetime.fromisoformat(j["finished_at"]).timestamp() for j in jobs.values())
        loop = loop_delay_since(loop0, gw.base, auth)
        run.discovery_wall_s = ended - t0
        run.discovery_cpu_s = tree_cpu_seconds(gw.proc.pid) - cpu0
        run.discovery_wait_s = run_delay_s(gw.proc.pid) - wait0
        run.discovery_loop_p99_ms = loop["loop_p99_ms"]
        run.discovery_loop_max_ms = loop["loop_max_ms"]
        run.poll_during_discovery_ms = list(poller.latencies_ms)
        enriched = {net: j["progress"]["enriched"] for net, j in jobs.items()}
        run.found = sum(j["progress"]["found"] for j in jobs.values())
        run.enriched = sum(enriched.values())
        run.failed = sum(j["progress"]["failed"] for j in jobs.values())
        run.failure_kinds = dict(
            Counter(
                f"{f['step']}: {f['reason']}"[:120] for j in jobs.values() for f in j["failures"]
            )
        )
        progress(
            f"  {run.discovery_wall_s:.1f} s, found {run.found:,}, enriched {run.enriched:,}, "
            f"failed {run.failed}; loop delay p99 <= {run.discovery_loop_p99_ms:g} ms; gateway "
            f"CPU {run.discovery_cpu_s:.1f} s, waited {run.discovery_wait_s:.1f} s for its core"
            + ("" if run.complete else f"; INCOMPLETE: {run.failure_kinds}")
        )
        run.rss_mib["discovered"] = _rss(gw)
        progress(f"{run.cameras:,}: waiting for the first health round after discovery")
        probed = Counter(enriched)
        if run.imported.addresses:  # (the imported cameras answer too)
            probed.update(run.imported.per_network)
        run.health = health_round(
            gw, auth, settings, {k: v for k, v in probed.items() if v}, after=ended
        )
        progress(f"  {run.health}")
        if not isinstance(run.health, str):
            progress(f"{run.cameras:,}: the health round after that one")
            run.health_next = health_round(
                gw,
                auth,
                settings,
                {k: v for k, v in probed.items() if v},
                after=run.health.ended,
                bring_forward=False,
            )
            progress(f"  {run.health_next}")
    finally:
        if poll:
            poller.stop()
    run.problems += [f"dashboard poll: {f}" for f in poller.failures[:5]]


def single_requests(gw: GatewayStack, admin: str) -> dict[str, float]:
    """What one request to endpoints that count every camera takes (median of 5, ms)."""
    auth = {"Authorization": f"Bearer {admin}"}
    out = {}
    for name, path in (
        ("metrics", "/metrics"),
        ("networks", "/api/v1/networks"),
        ("summary", "/api/v1/summary"),
    ):
        took = []
        for _ in range(5):
            started = time.perf_counter()
            reply = http_request("GET", gw.base + path, headers=auth, timeout=60)
            took.append((time.perf_counter() - started) * 1000)
            _check(reply.status == 200, f"{path} answered {reply.status}")
        out[name] = statistics.median(took)
    return out


def measure_lists(
    run: ScaleRun,
    gw: GatewayStack,
    nginx: StaticNginx,
    viewer: str,
    admin: str,
    ng_etag: str,
    workdir: Path,
    args: argparse.Namespace,
) -> None:
    assert run.pages is not None and gw.proc is not None and nginx.proc is not None
    auth = {"Authorization": f"Bearer {viewer}"}
    static = f"{nginx.base}/{run.cameras}-{STATIC_NAME}"
    targets: dict[str, tuple[str, dict[str, str], list[str] | None]] = {
        "page": (gw.base + PAGE_PATH, auth, None),
        "page_chg": (gw.base + PAGE_PATH, auth, None),
        "full": (gw.base + FULL_PATH, auth, run.pages.paths),
        "gw304": (gw.base + FULL_PATH, auth | {"If-None-Match": run.pages.etag}, None),
        "ng304": (static, auth | {"If-None-Match": ng_etag}, None),
    }
    scripts = {
        k: write_wrk_script(workdir / f"{k}.lua", h, paths) for k, (_, h, paths) in targets.items()
    }
    # Dashboards wait as long as the gateway makes them (wrk's own 2 s timeout would turn a slow
    # answer into an error); the changing case runs long enough to hold a few rebuilds.
    quiet = WrkLoad(2, DASHBOARDS, args.seconds, timeout_s=WAIT_S)
    rebuild_s = statistics.median(b.seconds for b in run.rebuilds) if run.rebuilds else 0.0
    # two rebuild intervals (the catalog rebuilds at most every twice its rebuild time)
    run.changing_s = max(args.seconds, min(CHANGING_MAX_S, math.ceil(2 * 2 * rebuild_s)))
    changing = WrkLoad(2, DASHBOARDS, run.changing_s, timeout_s=WAIT_S)
    busy = WrkLoad(threads=2, connections=CONNECTIONS_304, seconds=args.seconds)
    pids = {False: gw.proc.pid, True: nginx.proc.pid}  # by: is it nginx's case
    admin_auth = {"Authorization": f"Bearer {admin}"}
    ids = [p["id"] for p in orjson.loads(run.pages.first)["items"]][:200]
    if args.warmup > 0:
        for key in ("page", "full", "ng304"):
            run_wrk(targets[key][0], scripts[key], WrkLoad(2, DASHBOARDS, args.warmup))
    run.wrk = {k: [] for k, _ in CASES}
    run.builds_during = dict.fromkeys(run.wrk, 0)
    # The unchanging cases interleaved round by round, then the changing case's runs back to
    # back: each of those leaves rebuilds behind, which the others must not see.
    order = [(rnd, key) for rnd in range(1, args.runs + 1) for key, _ in CASES if key != "page_chg"]
    order += [(rnd, "page_chg") for rnd in range(1, args.runs + 1)]
    for rnd, key in order:
        label = LABELS[key]
        length = run.changing_s if key == "page_chg" else args.seconds
        progress(f"{run.cameras:,} round {rnd}/{args.runs}: {label} ({length}s)")
        builds0 = metric_value(metrics_text(gw.base, admin_auth), "camgw_catalog_builds")
        loop0 = loop_delay_counts(gw.base, admin_auth)
        load = busy if key.endswith("304") else changing if key == "page_chg" else quiet
        changer = renamer(gw, admin, ids, f"scale change {rnd}") if key == "page_chg" else None
        for attempt in range(1, GW304_TRIES + 1):
            if key == "gw304":  # the list's current ETag (changes since the first read move it)
                reply = http_request("GET", gw.base + FULL_PATH, headers=auth, timeout=120)
                _check(reply.status == 200, f"list answered {reply.status}")
                write_wrk_script(scripts[key], auth | {"If-None-Match": reply.headers["etag"]})
            server = pids[key[:2] == "ng"]
            result = wrk_case(run, targets[key][0], scripts[key], load, server, changer)
            if key != "gw304" or result.bytes_per_response < 1024 or attempt == GW304_TRIES:
                break
            # A health round wrote a status change during the run (the first rounds after the
            # import bring its offline and unknown cameras online): every later poll was a 200.
            # This case measures unchanged polls, so it runs again with the new ETag.
            run.gw304_retries += 1
            progress("  the list changed during the run (a health round's writes); again")
        _verify(key, result)
        run.wrk[key].append(result)
        builds1 = metric_value(metrics_text(gw.base, admin_auth), "camgw_catalog_builds")
        run.builds_during[key] += int((builds1 or 0) - (builds0 or 0))
        if key == "page_chg":
            p99 = loop_delay_since(loop0, gw.base, admin_auth)["loop_p99_ms"]
            run.loop_p99_changing_ms = max(run.loop_p99_changing_ms, p99)
        _check(gw.alive(), "the gateway died:\n" + "\n".join(gw.problem_lines()[-20:]))
        _check(nginx.alive(), "nginx died")


def wrk_case(
    run: ScaleRun,
    url: str,
    script: Path,
    load: WrkLoad,
    server_pid: int,
    changer: Repeater | None,
) -> WrkResult:
    """One wrk run, with `changer` changing cameras meanwhile; a run in which not one answer
    came has p99 beyond its length (inf)."""
    if changer is not None:
        changer.start()
    try:
        result = run_wrk(url, script, load, server_pid=server_pid)
    finally:
        if changer is not None:
            changer.stop()
            run.problems += [f"renamer: {f}" for f in changer.failures[:5]]
    if not result.requests:
        result = dataclasses.replace(result, latency_ms=dict.fromkeys(result.latency_ms, math.inf))
    return result


# -- main -----------------------------------------------------------------------------------------


def expected_s(n: int, args: argparse.Namespace) -> float:
    """A scale's expected seconds on the 2-core machine this was written on (discovery and the
    health round ~90 s, import and rebuilds growing with n, the wrk runs)."""
    wrk = args.runs * (len(CASES) * (args.seconds + 1) + CHANGING_MAX_S * n / 100_000)
    return 90 + 2.5e-3 * n + wrk


def parse_scales(text: str) -> list[int]:
    try:
        scales = sorted({int(x.replace("_", "")) for x in text.split(",") if x.strip()})
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of counts: {text}") from exc
    if not scales or scales[0] < SIMULATED:
        raise argparse.ArgumentTypeError(f"every scale holds the {SIMULATED:,} simulated cameras")
    return scales


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument(
        "--scales",
        type=parse_scales,
        default=list(SCALES),
        help="camera counts, comma-separated (default 3308,33000,100000)",
    )
    p.add_argument("--quick", action="store_true", help="1 run of 2 s per case, 2 changes")
    p.add_argument("--runs", type=int, default=3, help="wrk runs per case and scale (>= 3)")
    p.add_argument("--seconds", type=int, default=3, help="wrk duration per run")
    p.add_argument("--warmup", type=int, default=1, help="wrk warm-up seconds per scale")
    p.add_argument("--changes", type=int, default=3, help="single changes timed per scale")
    p.add_argument("--log-level", default="WARNING", help="CAMGW_LOG_LEVEL of the gateway")
    p.add_argument("--range-base", type=int, default=221, help="cameras on 127.N.0.0/16, N+1..")
    p.add_argument(
        "--budget-s",
        type=float,
        default=BUDGET_S,
        help="a scale whose expected time would end the run later than this is skipped",
    )
    p.add_argument(
        "--simulated-only",
        dest="probe_all",
        action="store_false",
        help="imported cameras without a device service: health rounds probe the 3,308 "
        "simulated ones only (no clock responders)",
    )
    p.add_argument(
        "--quiet-discovery",
        action="store_true",
        help="no dashboard polling during discovery and the health round (to tell apart what "
        "the catalog's rebuilds cost them)",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.runs, args.seconds, args.warmup, args.changes = 1, 2, 0, 2
    elif args.runs < 3:
        p.error("--runs must be at least 3 (min / median / max); --quick runs 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    exit_on_sigterm()
    started = time.monotonic()
    args.load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    runs: list[ScaleRun] = []
    with (
        tempfile.TemporaryDirectory(prefix="camgw-bench-scale-") as tmp_name,
        ExitStack() as stack,
    ):
        tmp = Path(tmp_name)
        args.config = scale_config(tmp / "camgw.toml", args.range_base)
        settings = load_settings(args.config, use_env=False)
        _check(len(fleet_for(settings, 1.0)) == SIMULATED, "the simulated fleet is not 3,308")
        passwords = {
            n.credentials.password_env: secrets.token_urlsafe(12)
            for n in settings.networks
            if n.credentials is not None and n.credentials.password_env
        }
        _check(len(passwords) == len(settings.networks), "a network has no password_env")
        sim_env = {
            k: v for k, v in os.environ.items() if not k.startswith(("CAMGW_", "REDIS_"))
        } | {**passwords, "CAMGW_LOG_LEVEL": "WARNING"}
        progress(f"starting the simulator ({SIMULATED:,} ONVIF cameras, core {LOAD_CORE})")
        sim = SimProcess(tmp / "sim", sim_env, SIM_DELAY_S, config=args.config)
        stack.callback(sim.stop)
        sim.start()
        www = tmp / "www"
        www.mkdir()
        nginx = StaticNginx(tmp / "nginx", www)
        stack.callback(nginx.stop)
        nginx.start()
        args.skipped = []
        # The smallest scale (cheap), then the largest (the aims are judged there), then the rest:
        # what the time budget leaves out is in between.
        for n in dict.fromkeys([args.scales[0], args.scales[-1], *args.scales[1:-1]]):
            spent = time.monotonic() - started
            if spent + expected_s(n, args) > args.budget_s:
                progress(f"{n:,} skipped: {spent:.0f} s spent, ~{expected_s(n, args):.0f} s more")
                args.skipped.append(n)
                continue
            runs.append(run_scale(n, tmp / f"gw-{n}", settings, sim, passwords, nginx, args))
            progress(f"{n:,} done; {time.monotonic() - started:.0f} s so far")
    args.took_s = time.monotonic() - started
    runs.sort(key=lambda r: r.cameras)
    print(report(runs, settings, args), flush=True)
    incomplete = [f"{r.cameras:,}" for r in runs if not r.complete]
    if incomplete:
        raise BenchError(f"discovery did not enrich every simulated camera at {incomplete}")
    return 0


# -- the table ------------------------------------------------------------------------------------


def _cell(values: list[float], fmt: str) -> str:
    """One value, or min / median / max; `none` for a run with no answer at all."""
    if not values:
        return "n/a"
    text = f"{values[0]:{fmt}}" if len(values) == 1 else fmt_spread(values, fmt)
    return text.replace("inf", "none")


def _met(ok: bool | None, why: str = "") -> str:
    return ("yes" if ok else "no" if ok is not None else "not judged") + (
        f" ({why})" if why else ""
    )


def report(runs: list[ScaleRun], settings: Settings, args: argparse.Namespace) -> str:
    def row(label: str, cell: Callable[[ScaleRun], str], aim: str = "", met: str = "") -> list[str]:
        return [label, *(cell(r) for r in runs), aim, met]

    at = next((r for r in runs if r.cameras == AIM_AT), None)
    at_name = f"{AIM_AT:,}"

    def judged(test: Callable[[ScaleRun], bool | None]) -> str:
        if at is None:
            return f"not judged ({at_name} not run)"
        return _met(test(at), f"at {at_name}")

    def p99s(r: ScaleRun, key: str) -> list[float]:
        return [w.latency_ms[99] for w in r.wrk.get(key, [])]

    def ratio304(r: ScaleRun) -> list[float]:
        gw, ng = r.wrk.get("gw304", []), r.wrk.get("ng304", [])
        return [g.rps / n.rps for g, n in zip(gw, ng, strict=True)]

    def health_cell(r: ScaleRun, which: str = "health") -> str:
        hr: HealthRound | str = getattr(r, which)
        if isinstance(hr, str):
            return f"n/a: {hr}"
        per = ", ".join(f"{k} {v:.1f}" for k, v in sorted(hr.per_network.items()))
        return f"{hr.seconds:.1f} ({per}; {hr.probed:,} of {r.cameras:,} probed)"

    def in_interval(hr: HealthRound | str, cameras: int) -> bool | None:
        if isinstance(hr, str) or hr.probed < cameras:
            return None
        return hr.seconds <= interval

    interval = max(n.discovery.health_interval_s for n in settings.networks)
    rows = [
        row(
            "cameras listed (simulated, discovered + imported)",
            lambda r: f"{r.listed:,} ({r.enriched:,} + {r.imported.cameras:,})",
        ),
        row(
            f"discovery of the {SIMULATED:,} simulated: wall s; found / enriched / failed",
            lambda r: (
                f"{r.discovery_wall_s:.1f}; {r.found:,} / {r.enriched:,} / {r.failed:,}"
                + ("" if r.complete else " INCOMPLETE")
            ),
            f"all {SIMULATED:,} enriched (a check)",
            "yes"
            if all(r.complete for r in runs)
            else "no at " + ", ".join(f"{r.cameras:,}" for r in runs if not r.complete),
        ),
        row(
            "gateway RSS MiB: catalog built (after discovery, health round, first list)",
            lambda r: f"{r.rss_mib['built']:,.0f}",
            f"< {AIM_RSS_MIB:,.0f} at {at_name}",
            judged(lambda r: r.rss_mib["built"] < AIM_RSS_MIB),
        ),
        row(
            "gateway RSS MiB: after polling / peak (VmHWM)",
            lambda r: f"{r.rss_mib['polled']:,.0f} / {r.rss_mib['peak']:,.0f}",
            f"< {AIM_RSS_MIB:,.0f} at {at_name}",
            judged(lambda r: max(r.rss_mib["polled"], r.rss_mib["peak"]) < AIM_RSS_MIB),
        ),
        row(
            "catalog rebuild after one change, s (camgw_catalog_rebuild_seconds)",
            lambda r: _cell([b.seconds for b in r.rebuilds], ".3f"),
        ),
        row(
            "the change listed after, s (from the PATCH's answer)",
            lambda r: _cell([b.visible_s for b in r.rebuilds], ".3f"),
        ),
        row(
            LABELS["page"],
            lambda r: _cell(p99s(r, "page"), ".1f"),
            f"< {AIM_PAGE_P99_MS:.0f} at {at_name}",
            judged(lambda r: statistics.median(p99s(r, "page")) < AIM_PAGE_P99_MS),
        ),
        row(
            LABELS["page_chg"],
            lambda r: _cell(p99s(r, "page_chg"), ".1f"),
            f"< {AIM_PAGE_P99_MS:.0f} at {at_name}",
            judged(lambda r: statistics.median(p99s(r, "page_chg")) < AIM_PAGE_P99_MS),
        ),
        row(LABELS["full"], lambda r: _cell(p99s(r, "full"), ".1f")),
        row(
            "full list: one client reading every page, s",
            lambda r: f"{r.pages.walk_s:.2f}" if r.pages else "n/a",
        ),
        row(
            f"304 req/s gateway / nginx (-c{CONNECTIONS_304}, medians) = per-round ratio",
            lambda r: (
                f"{statistics.median(w.rps for w in r.wrk['gw304']):,.0f} / "
                f"{statistics.median(w.rps for w in r.wrk['ng304']):,.0f} = "
                + _cell(ratio304(r), ".0%")
            ),
        ),
        row(
            f"health round s (shipped interval {interval:g} s, per network)",
            health_cell,
            f"<= {interval:g} s, every camera, at {at_name}",
            judged(lambda r: in_interval(r.health, r.cameras)),
        ),
        row(
            "the next health round s (steady: the first one's status changes written)",
            lambda r: health_cell(r, "health_next"),
            f"<= {interval:g} s, every camera, at {at_name}",
            judged(lambda r: in_interval(r.health_next, r.cameras)),
        ),
        row(
            "event-loop delay p99 during discovery, ms (bucket bound)",
            lambda r: f"{r.discovery_loop_p99_ms:g}",
            f"< {AIM_LOOP_P99_MS:g} at {at_name}",
            judged(lambda r: r.discovery_loop_p99_ms < AIM_LOOP_P99_MS),
        ),
        row(
            "event-loop delay p99 while waiting for and during the health round, ms",
            lambda r: "n/a" if isinstance(r.health, str) else f"{r.health.loop_p99_ms:g}",
        ),
    ]
    table = markdown_table(
        ["measure", *(f"{r.cameras:,}" for r in runs), "aim", "met"],
        rows,
    )
    pin = (
        f"gateway and nginx on core {SERVER_CORE}, wrk and the simulator on core {LOAD_CORE}, "
        "redis-server and this script unpinned"
        if can_pin()
        else "NOT pinned"
    )
    out = [
        "",
        "## scale: the gateway at district scale (3,308 / 33,000 / 100,000 cameras)",
        "",
        *header_lines(),
        f"cameras: every scale holds the {SIMULATED:,} simulated cameras (`camgw simulate "
        f"--scale 1.0 --delay {SIM_DELAY_S:g} --no-rtsp`, all ONVIF, found by a discovery through "
        "the API, health-probed) plus imported ones (Registry.create_many with an audit entry "
        "each): the inventory's mix of networks, categories and departments, "
        f"{NVR_SHARE:.0%} behind {NVR_CHANNELS}-channel NVRs and {ENCODER_SHARE:.0%} behind "
        f"{ENCODER_CHANNELS}-channel encoders, shaped as discovery writes them, "
        + (
            "their ONVIF device service on loopback addresses of their own where clock "
            f"responders (bench/_responders.py) answer the health probe after {SIM_DELAY_S:g} s: "
            "the health rounds probe every camera (one probe per device)"
            if args.probe_all
            else "with no device URI (--simulated-only): the health rounds probe the simulated "
            "cameras only"
        ),
        "gateway: `camgw serve`, shipped config, fresh private redis-server per scale, "
        f"CAMGW_LOG_LEVEL={args.log_level}; {pin}",
        f"load: dashboards `wrk -t2 -c{DASHBOARDS} -d{args.seconds}s --timeout {WAIT_S}s`, "
        f"304s `wrk -t2 -c{CONNECTIONS_304} -d{args.seconds}s`, viewer token granted '*', "
        "identity encoding; "
        f"{args.runs} run(s) per case and scale (the unchanging cases interleaved, then the "
        "changing case's runs); cells are min / median / max"
        + (" (--quick: single runs, figures less trustworthy)" if args.quick else ""),
        (
            "no dashboard polls during discovery and the health round (--quiet-discovery)"
            if args.quiet_discovery
            else "during discovery and the health round one dashboard polls the filtered page "
            f"every {POLL_EVERY_S:g} s"
        )
        + f"; in the 'changing' case an admin renames a camera every "
        f"{CHANGE_EVERY_S:g} s (PATCH); single changes: {args.changes} per scale, each waited "
        "for (the list searched every 10 ms for the new name)",
        "",
        table,
        "",
    ]
    for r in runs:
        polls = r.poll_during_discovery_ms
        notes: list[str] = [
            f"import {r.imported.cameras:,} in {r.imported.seconds:.1f} s"
            + (
                f" ({r.imported.cameras / r.imported.seconds:,.0f}/s, "
                f"{r.imported.mean_bytes:,.0f} bytes per record)"
                if r.imported.cameras
                else ""
            ),
            f"discovery {r.discovery_wall_s:.1f} s (gateway CPU {r.discovery_cpu_s:.1f} s, "
            f"waited {r.discovery_wait_s:.1f} s for its core), loop delay worst <= "
            f"{r.discovery_loop_max_ms:g} ms",
            "dashboard poll during discovery p50 / p99 / max "
            + (
                f"{percentile(polls, 50):.0f} / {percentile(polls, 99):.0f} / {max(polls):.0f} ms"
                if polls
                else "n/a"
            ),
        ]
        if not r.complete:
            kinds = sorted(r.failure_kinds.items(), key=lambda kv: -kv[1])[:5]
            notes.append(
                f"discovery INCOMPLETE: found {r.found:,} of {SIMULATED:,} devices, enriched "
                f"{r.enriched:,}, failed {r.failed:,}"
                + (": " + "; ".join(f"{k} x{n}" for k, n in kinds) if kinds else "")
            )
        if r.gw304_retries:
            notes.append(
                f"gateway 304 case run again {r.gw304_retries} time(s): a health round changed "
                "the list during the run"
            )
        for label, hr in (("first health round", r.health), ("next round", r.health_next)):
            if not isinstance(hr, str):
                notes.append(
                    f"{label}: gateway CPU {hr.gateway_cpu_s:.1f} s for {hr.probed:,} probes "
                    f"({hr.gateway_cpu_s / hr.probed * 1000:.2f} ms each; adapters' processes "
                    f"included), loop delay p99 over the wait {hr.loop_p99_ms:g} ms"
                )
        notes += [
            "RSS MiB: after import "
            + f"{r.rss_mib['imported']:,.0f}, after discovery {r.rss_mib['discovered']:,.0f}, "
            f"at the end {r.rss_mib['end']:,.0f}; redis-server {r.redis_mib:,.0f}; "
            f"the peak came after: {r.peak_step or '?'}",
            f"the changing case ran {r.changing_s} s per run (two rebuild intervals, at least "
            f"--seconds; a request still waiting at the end is not counted); "
            f"full list {len(r.pages.paths) if r.pages else 0} page(s), "
            f"{(r.pages.total_bytes if r.pages else 0) / 2**20:,.1f} MiB; catalog rebuilds "
            "during the runs: " + ", ".join(f"{k} {v}" for k, v in r.builds_during.items()),
            f"loop delay p99 during the 'changing' case (worst run) {r.loop_p99_changing_ms:g} "
            "ms; one request (median of 5): "
            + ", ".join(f"{k} {v:.0f} ms" for k, v in r.other_ms.items()),
            f"gateway warnings/errors logged: {len(r.problems)}",
            *(f"  {ln[:300]}" for ln in r.problems[:5]),
        ]
        out.append(f"{r.cameras:,}: " + "; ".join(notes[:3]))
        out += [f"  {ln}" for ln in notes[3:]]
    if args.skipped:
        out.append(
            "NOT RUN for the time budget (--budget-s "
            f"{args.budget_s:.0f}): " + ", ".join(f"{n:,}" for n in args.skipped)
        )
    out.append(
        f"run took {args.took_s:.0f} s; load average at start / end: {args.load_before} / "
        + " ".join(f"{x:.2f}" for x in os.getloadavg())
        + " (a shared machine: compare within a run, not across runs)"
    )
    return "\n".join(out)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"scale: FAILED: {exc}", file=sys.stderr)
        sys.exit(1)
