"""Availability roll-up (issue 12): the monthly figures of the whole town from 90 days of status
history, in process, against a private redis-server on 127.0.0.1 (started and stopped here).

Setup, per size in `--cameras` (default 3,308 and 100,000; one table, a fresh redis-server
each): that many cameras (the inventory's mix of networks and categories, so of departments,
carriers and projects) written straight into the registry's keys as the catalog reads them, and
`--days` of status history generated for **every** camera and written into each network's
status stream (`<prefix>:history:status:<network>`) as upsert.lua writes it: ids `ms-seq` in
time order, fields id, from, to, at, error. Each camera is created at the start of the history,
online; most cameras are steady (`--outages-per-month` episodes each, four in five offline for
3 h on average, one in five degraded for 6 h), a share of them (`--flaky-share`: 10% up to
20,000 cameras, 1% above, which keeps each network's stream of 100,000 cameras within its
2,000,000-entry cap) flap all day (online 2 h, offline 24 min on average: ~20 changes a day).
Generated, never committed; the stream is fed by `redis-cli --pipe`.

Then, with the clock at the end of the history: the cold read of every stream into the
gateway's in-memory history (once per process: gateway/history.py), and `--runs` roll-ups of
each kind through `Accountability` (what the endpoints call: the refresh round trip to Redis,
the computation, the response model), median and p99 (nearest rank); `--runs` defaults to 20
up to 20,000 cameras and 5 above. For comparison, the naive design the in-memory history
replaces: reading the month's entries from Redis with XRANGE on every request (3 runs; 1 above
20,000 cameras, where each takes ~10 s).

    .venv/bin/python bench/availability.py                   # 3,308 and 100,000: ~5 minutes
    .venv/bin/python bench/availability.py --cameras 3308     # the town, ~1 minute
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from common import (
    BenchError,
    exit_on_sigterm,
    header_lines,
    markdown_table,
    percentile,
    proc_status_kib,
    progress,
)

from gateway.app import redis_client
from gateway.audit import AuditLog
from gateway.catalog import Catalog
from gateway.history import StatusHistory
from gateway.models import Role
from gateway.policy import Principal
from gateway.redis_server import RedisServer
from gateway.registry import Registry
from gateway.report_models import AvailabilityQuery, GroupBy, OutageQuery, Period
from gateway.reports import Accountability
from gateway.settings import DEFAULT_CONFIG, Settings, load_settings
from gateway.vault import CredentialVault

AIM_S = 1.0
DAY = 86_400.0
ERRORS = {
    "offline": "health: no answer within 5 s",
    "degraded": "auth: the stored credentials were refused",
}


# -- the fleet and its history --------------------------------------------------------------------


def fleet(settings: Settings, count: int) -> list[dict[str, Any]]:
    """`count` camera records in the inventory's mix (categories by planned count)."""
    cats = [c for c in settings.categories if c.network and c.planned]
    planned = sum(c.planned for c in cats)
    shares = [c.planned * count // planned for c in cats]
    shares[0] += count - sum(shares)
    out = []
    for cat, n in zip(cats, shares, strict=True):
        for i in range(n):
            out.append(
                {
                    "id": f"{cat.network}.bench-{cat.id}-{i:06d}",
                    "network": cat.network,
                    "name": f"{cat.name} {i + 1}",
                    "category": cat.id,
                    "department": cat.department,
                    "carrier": cat.carrier,
                    "project": cat.project,
                    "lifecycle": "in-service",
                    "address": None,
                    "source": "imported",
                    "tags": ["bench"],
                    "rev": 1,
                }
            )
    return out


def history(
    rng: random.Random, start: float, end: float, flaky: bool, per_month: float
) -> Iterator[tuple[float, str, str]]:
    """(time, from, to) of one camera from its creation at `start`, online."""
    yield start, "", "online"
    t = start
    if flaky:
        while True:
            t += rng.expovariate(1 / 7200)
            if t >= end:
                return
            yield t, "online", "offline"
            t += rng.expovariate(1 / 1440)
            if t >= end:
                return
            yield t, "offline", "online"
    rate = per_month / (30 * DAY)
    while True:
        t += rng.expovariate(rate)
        if t >= end:
            return
        kind = "offline" if rng.random() < 0.8 else "degraded"
        yield t, "online", kind
        t += rng.expovariate(1 / (3 * 3600 if kind == "offline" else 6 * 3600))
        if t >= end:
            return
        yield t, kind, "online"


def _resp(*args: bytes) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def _iso(t: float) -> bytes:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z").encode()


def generate(
    cams: list[dict[str, Any]], args: argparse.Namespace, prefix: str, now: float
) -> tuple[bytes, int]:
    """The RESP commands that write the records, the indexes the catalog reads and every
    stream entry; and how many entries."""
    rng = random.Random(args.seed)
    start = now - args.days * DAY
    created = datetime.fromtimestamp(start, UTC).isoformat().replace("+00:00", "Z")
    per_network: dict[str, list[tuple[int, bytes, bytes, bytes]]] = {}
    commands: list[bytes] = []
    for cam in cams:
        flaky = rng.random() < args.flaky_share
        last = ("", "online")
        entries = per_network.setdefault(cam["network"], [])
        cid = cam["id"].encode()
        for t, was, to in history(rng, start, now, flaky, args.outages_per_month):
            entries.append((int(t * 1000), cid, was.encode(), to.encode()))
            last = (was, to)
        status = last[1]
        record = {
            **cam,
            "status": status,
            "last_error": ERRORS.get(status),
            "created_at": created,
            "updated_at": created,
        }
        commands.append(_resp(b"SET", f"{prefix}:cam:{cam['id']}".encode(), orjson.dumps(record)))
        commands.append(_resp(b"SADD", f"{prefix}:idx:all".encode(), cid))
    total = 0
    for network, entries in per_network.items():
        entries.sort()
        key = f"{prefix}:history:status:{network}".encode()
        prev_ms, seq = -1, 0
        for ms, cid, was, to in entries:
            seq = seq + 1 if ms == prev_ms else 0
            prev_ms = ms
            err = ERRORS.get(to.decode(), "").encode()
            sid = b"%d-%d" % (ms, seq)
            fields = (b"id", cid, b"from", was, b"to", to, b"at", _iso(ms / 1000), b"error", err)
            commands.append(_resp(b"XADD", key, sid, *fields))
        total += len(entries)
        commands.append(_resp(b"HSET", f"{prefix}:netversion".encode(), network.encode(), b"1"))
    commands.append(_resp(b"SET", f"{prefix}:version".encode(), b"1"))
    return b"".join(commands), total


def load(server: RedisServer, payload: bytes) -> None:
    proc = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(server.port), "--pipe"],
        input=payload,
        capture_output=True,
        timeout=900,
        check=False,
    )
    if proc.returncode != 0 or b"errors: 0" not in proc.stdout:
        raise BenchError(f"redis-cli --pipe: {proc.stdout[-300:]!r} {proc.stderr[-300:]!r}")


# -- measuring ------------------------------------------------------------------------------------


async def timed(fn: Callable[[], Awaitable[object]], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - started)
    return out


async def measure(settings: Settings, args: argparse.Namespace, now: float) -> dict[str, Any]:
    client = redis_client(settings.redis)
    vault = CredentialVault(os.urandom(32))
    registry = Registry(
        client, settings, vault, AuditLog(client, settings.redis.prefix, vault, settings.audit)
    )
    catalog = Catalog(registry, settings)
    clock = datetime.fromtimestamp(now, UTC)
    history_ = StatusHistory(client, settings, registry.keys.status_history, lambda: clock)
    service = Accountability(catalog, history_, settings)
    admin = Principal("bench", "bench", Role.admin, None)
    out: dict[str, Any] = {}
    try:
        started = time.perf_counter()
        snap = await catalog.current()
        out["catalog_s"] = time.perf_counter() - started
        out["cameras"] = len(snap.entries)
        rss = proc_status_kib(os.getpid(), "VmRSS")
        started = time.perf_counter()
        await history_.refresh()
        out["cold_s"] = time.perf_counter() - started
        out["held"] = sum(n for _, _, n in history_.sizes())
        out["rss_mib"] = (proc_status_kib(os.getpid(), "VmRSS") - rss) / 1024
        month = AvailabilityQuery(period=Period.month, by=GroupBy.network)
        started = time.perf_counter()
        first = await service.availability(admin, month)
        out["first_s"] = time.perf_counter() - started  # includes parsing each record once
        window = history_.now() - 30 * DAY
        out["in_window"] = sum(
            sum(1 for t in cam.times if t >= window)
            for net in history_.networks.values()
            for cam in net.cameras.values()
        )
        out["share"] = first.total.share_online
        out["outages"] = first.total.outages
        out["cases"] = []
        for label, fn, aimed in cases(service, admin):
            progress(f"{label}: {args.runs} runs")
            out["cases"].append((label, await timed(fn, args.runs), aimed))
        progress("naive: XRANGE of the month from Redis, per request")
        naive = naive_read(client, settings, registry, int(window * 1000) - 3_600_000)
        out["naive"] = await timed(naive, args.naive_runs)
    finally:
        await client.aclose()
    return out


def _call(
    fn: Callable[[Principal, Any], Awaitable[object]], who: Principal, q: Any
) -> Callable[[], Awaitable[object]]:
    return lambda: fn(who, q)


Case = tuple[str, Callable[[], Awaitable[object]], bool]  # label, call, held to the aim


def cases(service: Accountability, admin: Principal) -> list[Case]:
    out: list[Case] = []
    for by in (GroupBy.network, GroupBy.department, GroupBy.carrier, GroupBy.project):
        q = AvailabilityQuery(period=Period.month, by=by)
        out.append((f"month by {by.value}", _call(service.availability, admin, q), True))
    q = AvailabilityQuery(period=Period.month, by=GroupBy.camera, limit=100_000)
    out.append(("month by camera (every row)", _call(service.availability, admin, q), True))
    for period in (Period.week, Period.day):
        q = AvailabilityQuery(period=period, by=GroupBy.network)
        out.append((f"{period.value} by network", _call(service.availability, admin, q), False))
    report = _call(service.outages, admin, OutageQuery())
    out.append(("outage report (json, >= 60 min)", report, False))
    return out


def naive_read(
    client: Any, settings: Settings, registry: Registry, since_ms: int
) -> Callable[[], Awaitable[int]]:
    """What the in-memory history replaces: each network's entries since `since_ms` read with
    XRANGE (redis-py's parsing), in pages of 10,000 (one reply of a million entries outlasts
    the socket timeout)."""

    async def read() -> int:
        n = 0
        for network in settings.network_by_id:
            key, lo = registry.keys.status_history(network), str(since_ms)
            while True:
                page = await client.xrange(key, min=lo, count=10_000)
                n += len(page)
                if len(page) < 10_000:
                    break
                lo = "(" + page[-1][0].decode()
        return n

    return read


def report_rows(out: dict[str, Any]) -> list[list[str]]:
    size = f"{out['cameras']:,}"

    def ms(v: float) -> str:
        return f"{v * 1000:,.0f}"

    rows = [
        [size, "catalog load (once per registry change; not part of a roll-up)", "1",
         ms(out["catalog_s"]), "", "", ""],
        [size, "cold: first read of every status stream (once per process)", "1",
         ms(out["cold_s"]), "", "", ""],
        [size, "first monthly roll-up (each record parsed once)", "1", ms(out["first_s"]), "",
         "", ""],
    ]  # fmt: skip
    for label, times, aimed in out["cases"]:
        med, p99 = statistics.median(times), percentile(times, 99)
        aim = f"< {AIM_S * 1000:,.0f}" if aimed else ""
        met = ("met" if p99 < AIM_S else "missed") if aimed else ""
        rows.append([size, label, str(len(times)), ms(med), ms(p99), aim, met])
    naive = out["naive"]
    rows.append(
        [
            size,
            "naive, for comparison: XRANGE of the month per request (redis-py)",
            str(len(naive)),
            ms(statistics.median(naive)),
            ms(percentile(naive, 99)),
            "",
            "",
        ]
    )
    return rows


def report_head(out: dict[str, Any], args: argparse.Namespace) -> str:
    return (
        f"- {out['cameras']:,} cameras, {args.days} days of history for every one: "
        f"{out['changes']:,} status changes ({out['in_window']:,} in the last 30 days); "
        f"{out['flaky_share']:.0%} of cameras flapping, the others {args.outages_per_month} "
        f"episodes a month; in-memory history {out['held']:,} changes, RSS "
        f"+{out['rss_mib']:,.0f} MiB; town share online over the month {out['share']:.1%}, "
        f"{out['outages']:,} outages"
    )


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    columns = ["cameras", "case", "runs", "median ms", "p99 ms", "aim ms", "aim"]
    table = markdown_table(columns, [r for out in results for r in report_rows(out)])
    head = [
        "## Availability roll-up (bench/availability.py)",
        "",
        *header_lines(),
        *(report_head(out, args) for out in results),
        "",
    ]
    return "\n".join(head) + table + "\n"


LARGE = 20_000  # from this many cameras: fewer runs, 1% flapping (module docstring)


def run_size(base: Settings, args: argparse.Namespace, cameras: int) -> dict[str, Any]:
    """One size: its own redis-server, fleet, history and measurements."""
    large = cameras > LARGE
    sized = argparse.Namespace(**vars(args))
    sized.cameras = cameras
    sized.flaky_share = (
        args.flaky_share if args.flaky_share is not None else (0.01 if large else 0.1)
    )
    sized.runs = args.runs or (5 if large else 20)
    sized.naive_runs = args.naive_runs or (1 if large else 3)
    with tempfile.TemporaryDirectory(prefix="camgw-bench-availability-") as tmp:
        server = RedisServer(Path(tmp) / "redis", appendonly=False).start()
        try:
            settings = base.model_copy(
                update={
                    "redis": base.redis.model_copy(update={"url": server.url, "prefix": "bench"})
                }
            )
            now = time.time()
            progress(f"{cameras:,}: generating the cameras and {args.days} days of history")
            cams = fleet(settings, cameras)
            payload, changes = generate(cams, sized, "bench", now)
            progress(
                f"{cameras:,}: writing {changes:,} stream entries "
                f"({len(payload) / 2**20:,.0f} MiB of commands)"
            )
            load(server, payload)
            del payload, cams
            out = asyncio.run(measure(settings, sized, now))
        finally:
            server.stop()
    out.update(changes=changes, flaky_share=sized.flaky_share)
    return out


def _sizes(text: str) -> list[int]:
    sizes = [int(x.replace("_", "")) for x in text.split(",") if x.strip()]
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("camera counts separated by commas, e.g. 3308,100000")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cameras", type=_sizes, default=[3308, 100_000], help="e.g. 3308,100000")
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--flaky-share", type=float, default=None, help="0.1; 0.01 above 20,000")
    parser.add_argument("--outages-per-month", type=float, default=2.5)
    parser.add_argument("--runs", type=int, default=0, help="20; 5 above 20,000 cameras")
    parser.add_argument("--naive-runs", type=int, default=0, help="3; 1 above 20,000 cameras")
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args(argv)
    if args.runs and args.runs < 3:
        parser.error("--runs: at least 3")
    exit_on_sigterm()
    base = load_settings(DEFAULT_CONFIG, use_env=False)
    results = [run_size(base, args, n) for n in args.cameras]
    print(report(results, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
