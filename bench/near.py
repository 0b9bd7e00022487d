"""Cameras near an incident (issue 12): the camera list's `near` query over the town's fleet,
in process, against a private redis-server on 127.0.0.1 (started and stopped here).

Setup: the demo fleet at `--scale` (1.0: the town's 3,308 cameras, spread over Dongjing with the
inventory's mix of networks and categories) registered through `Registry.create_many`, so the
GEO indexes are written by the registry's own script. Then `--runs` queries around points drawn
at random inside the fleet's bounding box (seeded), each through `Catalog.camera_list` as the
endpoint calls it (GEOSEARCH per granted network, the list's filters, the page body), for an
admin and for a viewer granted one network, median and p99 (nearest rank). For comparison in the
same run, the naive design it replaces: distances computed in Python over every camera of the
catalog's snapshot on each request.

    .venv/bin/python bench/near.py              # the town, well under a minute
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import orjson
from common import exit_on_sigterm, header_lines, markdown_table, percentile, progress

from gateway.app import redis_client
from gateway.audit import AuditLog
from gateway.catalog import Catalog, ListQuery
from gateway.demo import fleet_for, seed_registry
from gateway.models import Role
from gateway.policy import Principal
from gateway.redis_server import RedisServer
from gateway.registry import Registry
from gateway.settings import DEFAULT_CONFIG, load_settings
from gateway.vault import CredentialVault

AIM_P99_MS = 10.0
RADIUS_M = 500
LIMIT = 100


def _metres(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine metres (the naive baseline's arithmetic)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(math.sqrt(a))


async def _timed(call: Callable[[], Awaitable[object]], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        await call()
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def measure(args: argparse.Namespace, tmp: Path) -> tuple[list[list[str]], int]:
    settings = load_settings(DEFAULT_CONFIG, use_env=False)
    server = RedisServer(tmp / "redis", appendonly=False).start()
    client = redis_client(server.url)
    try:
        vault = CredentialVault(b"\x01" * 32)
        audit = AuditLog(client, settings.redis.prefix, vault, settings.audit)
        registry = Registry(client, settings, vault, audit)
        fleet = fleet_for(settings, args.scale)
        progress(f"registering {len(fleet):,} cameras")
        await seed_registry(registry, settings, fleet)
        catalog = Catalog(registry, settings)
        snap = await catalog.current()
        lats = [c.lat for c in fleet]
        lons = [c.lon for c in fleet]
        rng = random.Random(7)
        points = [
            (rng.uniform(min(lats), max(lats)), rng.uniform(min(lons), max(lons)))
            for _ in range(args.runs)
        ]
        admin = Principal("bench", "admin", Role.admin, None)
        viewer = Principal("bench", "viewer", Role.viewer, frozenset({"governance"}))
        rows = []
        for who, label in ((admin, "admin, every network"), (viewer, "viewer, governance")):
            found: list[int] = []
            it = iter(points)

            async def near(
                who: Principal = who,
                found: list[int] = found,
                it: Iterator[tuple[float, float]] = it,
            ) -> None:
                lat, lon = next(it)
                query = ListQuery(near=(lat, lon), radius_m=RADIUS_M, limit=LIMIT)
                body = await catalog.camera_list(who, query)
                found.append(orjson.loads(body.data)["total"])

            times = await _timed(near, args.runs)
            rows.append(_row(f"near, GEO indexes ({label})", times, found))
        it = iter(points)
        found_naive: list[int] = []

        async def naive() -> None:
            lat, lon = next(it)
            hits = []
            for e in snap.entries:
                loc = orjson.loads(e.full).get("location")
                if loc and _metres(lat, lon, loc["lat"], loc["lon"]) <= RADIUS_M:
                    hits.append(e)
            found_naive.append(len(hits))

        times = await _timed(naive, args.runs)
        rows.append(_row("naive: distance to every camera per request", times, found_naive))
        return rows, len(snap.entries)
    finally:
        await client.aclose()
        server.stop()


def _row(case: str, times: list[float], found: list[int]) -> list[str]:
    p99 = percentile(times, 99)
    met = "yes" if p99 < AIM_P99_MS else "no"
    return [
        case,
        f"{percentile(times, 50):.2f}",
        f"{p99:.2f}",
        f"{sum(found) / len(found):.1f}",
        f"< {AIM_P99_MS:g}" if case.startswith("near") else "baseline",
        met if case.startswith("near") else "",
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--scale", type=float, default=1.0, help="share of the town's fleet")
    p.add_argument("--runs", type=int, default=500, help="queries per case")
    args = p.parse_args(argv)
    exit_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="camgw-near-") as tmp:
        rows, cameras = asyncio.run(measure(args, Path(tmp)))
    print("\n".join(header_lines()))
    print(
        f"\n`near` queries, {cameras:,} cameras, radius {RADIUS_M} m, page of {LIMIT}, "
        f"{args.runs} random points in the fleet's area, in process (no HTTP):\n"
    )
    columns = ["case", "p50 ms", "p99 ms", "cameras found (mean)", "aim p99", "met"]
    print(markdown_table(columns, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
