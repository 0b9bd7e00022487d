"""Cameras near an incident (issue 12): the camera list's `near` query over the town's fleet,
in process, against a private redis-server on 127.0.0.1 (started and stopped here).

Setup, per size in `--cameras` (default 3,308 and 100,000; one table, a fresh redis-server
each): the demo fleet (the town's 3,308 cameras, spread over Dongjing, ~6.7 x 5.7 km, with the
inventory's mix of networks and categories; a smaller size takes that share of it) and, above
3,308, the rest generated as bench/scale.py imports them (its `filler`: the inventory's mix,
NVR and encoder channels), spread per `--areas` over the same town (100,000 cameras 30 times
as dense, ~1,900 within 500 m of a point) or over its district, Songjiang (~650 km^2, ~1.9
times the town's density: what a district registry of 100,000 cameras looks like), all
registered through `Registry.create_many` in chunks of 5,000, so the GEO indexes are written
by the registry's own script. Then `--runs` queries around points drawn at random inside the
area (the demo fleet's bounding box, or the district's; seeded), each through
`Catalog.camera_list` as the endpoint calls it (GEOSEARCH per granted network, the list's
filters, the page body), for an admin and for a viewer granted one network, median and p99
(nearest rank). For comparison in the same run, the naive design it replaces: distances
computed in Python over every camera of the catalog's snapshot on each request
(`--naive-runs` of them; 10 above 20,000 cameras, where each takes over a second).

    .venv/bin/python bench/near.py                    # 3,308, 100,000 twice: ~6 minutes
    .venv/bin/python bench/near.py --cameras 3308     # the town alone, well under a minute
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
from datetime import UTC, datetime
from pathlib import Path

import orjson
from common import exit_on_sigterm, header_lines, markdown_table, percentile, progress
from scale import DISTRICT_AREA, TOWN_AREA, Area, audited, filler

from adapters.simulator.fleet import FleetCamera
from gateway.app import redis_client
from gateway.audit import AuditLog
from gateway.catalog import Catalog, ListQuery
from gateway.demo import fleet_for, seed_registry
from gateway.models import Role
from gateway.policy import Principal
from gateway.redis_server import RedisServer
from gateway.registry import Registry
from gateway.settings import DEFAULT_CONFIG, Settings, load_settings
from gateway.vault import CredentialVault

AIM_P99_MS = 10.0
RADIUS_M = 500
LIMIT = 100
TOWN = 3_308  # gateway.demo.fleet_for(settings, 1.0)
CHUNK = 5_000  # records per Registry.create_many call
LARGE, NAIVE_RUNS_LARGE = 20_000, 10  # the naive scan of 100,000 cameras takes ~1 s a query


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


AREAS = {"town": TOWN_AREA, "district": DISTRICT_AREA}


async def _import(registry: Registry, settings: Settings, count: int, area: Area) -> None:
    """`count` cameras generated as bench/scale.py imports them, through Registry.create_many
    with an audit entry each; every one must be created."""
    cams = filler(settings, count, datetime.now(UTC), area=area)
    while chunk := [c for _, c in zip(range(CHUNK), cams, strict=False)]:
        results = await registry.create_many(audited(chunk, "near"))  # type: ignore[arg-type]
        refused = [r for r in results if not isinstance(r, int)]
        if refused:
            raise SystemExit(f"bench/near.py: import refused {len(refused)}: {refused[:3]}")


async def _register(
    registry: Registry, settings: Settings, cameras: int, area: Area
) -> list[FleetCamera]:
    """The demo fleet (or its share), then the generated rest over `area`; returns the demo
    fleet."""
    fleet = fleet_for(settings, min(1.0, cameras / TOWN))
    progress(f"{cameras:,}: registering the demo fleet's {len(fleet):,} cameras")
    await seed_registry(registry, settings, fleet)
    if cameras > len(fleet):
        progress(f"{cameras:,}: importing {cameras - len(fleet):,} generated cameras")
        started = time.perf_counter()
        await _import(registry, settings, cameras - len(fleet), area)
        progress(f"{cameras:,}: imported in {time.perf_counter() - started:,.0f} s")
    return fleet


async def measure(
    args: argparse.Namespace, tmp: Path, cameras: int, area: str
) -> tuple[list[list[str]], int]:
    settings = load_settings(DEFAULT_CONFIG, use_env=False)
    server = RedisServer(tmp / "redis", appendonly=False).start()
    client = redis_client(server.url)
    try:
        vault = CredentialVault(b"\x01" * 32)
        audit = AuditLog(client, settings.redis.prefix, vault, settings.audit)
        registry = Registry(client, settings, vault, audit)
        fleet = await _register(registry, settings, cameras, AREAS[area])
        catalog = Catalog(registry, settings)
        snap = await catalog.current()
        if len(snap.entries) != max(
            cameras, len(fleet)
        ):  # a share of the fleet rounds per category
            raise SystemExit(f"bench/near.py: {len(snap.entries):,} cameras, not {cameras:,}")
        cameras = len(snap.entries)
        lats, lons = _query_box(area, fleet)
        rng = random.Random(7)
        points = [(rng.uniform(*lats), rng.uniform(*lons)) for _ in range(args.runs)]
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

            progress(f"{cameras:,}: near, {label}: {args.runs} queries")
            times = await _timed(near, args.runs)
            rows.append(_row(cameras, area, f"near ({label})", times, found))
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

        runs = min(args.runs, args.naive_runs, NAIVE_RUNS_LARGE if cameras > LARGE else args.runs)
        progress(f"{cameras:,}: naive: {runs} queries")
        times = await _timed(naive, runs)
        case = "naive: distance to every camera per request"
        rows.append(_row(cameras, area, case, times, found_naive))
        return rows, len(snap.entries)
    finally:
        await client.aclose()
        server.stop()


def _query_box(
    area: str, fleet: list[FleetCamera]
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Where query points are drawn: the demo fleet's bounding box (the town), or the
    district's."""
    if area == "district":
        a = DISTRICT_AREA
        return (a.lat - a.half_lat, a.lat + a.half_lat), (a.lon - a.half_lon, a.lon + a.half_lon)
    lats = (min(c.lat for c in fleet), max(c.lat for c in fleet))
    return lats, (min(c.lon for c in fleet), max(c.lon for c in fleet))


def _row(cameras: int, area: str, case: str, times: list[float], found: list[int]) -> list[str]:
    p99 = percentile(times, 99)
    met = "yes" if p99 < AIM_P99_MS else "no"
    return [
        f"{cameras:,}",
        area if cameras > TOWN else "town",
        case,
        str(len(times)),
        f"{percentile(times, 50):.2f}",
        f"{p99:.2f}",
        f"{sum(found) / len(found):.1f}",
        f"< {AIM_P99_MS:g}" if case.startswith("near") else "baseline",
        met if case.startswith("near") else "",
    ]


def _sizes(text: str) -> list[int]:
    sizes = [int(x.replace("_", "")) for x in text.split(",") if x.strip()]
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("camera counts separated by commas, e.g. 3308,100000")
    return sizes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument(
        "--cameras", type=_sizes, default=[TOWN, 100_000], help="sizes, e.g. 3308,100000"
    )
    p.add_argument(
        "--areas",
        default="town,district",
        help="where cameras beyond the town's 3,308 stand: town (Dongjing, 30x as dense at "
        "100,000), district (Songjiang, ~650 km^2), or both",
    )
    p.add_argument("--runs", type=int, default=500, help="queries per case")
    p.add_argument("--naive-runs", type=int, default=50, help="naive queries per size (<= runs)")
    args = p.parse_args(argv)
    exit_on_sigterm()
    rows: list[list[str]] = []
    areas = [a.strip() for a in args.areas.split(",") if a.strip()]
    if not areas or any(a not in AREAS for a in areas):
        p.error(f"--areas: one or more of {', '.join(AREAS)}")
    for cameras in args.cameras:
        for area in areas if cameras > TOWN else ["town"]:
            with tempfile.TemporaryDirectory(prefix="camgw-near-") as tmp:
                got, _ = asyncio.run(measure(args, Path(tmp), cameras, area))
            rows += got
    print("\n".join(header_lines()))
    print(
        f"\n`near` queries, radius {RADIUS_M} m, page of {LIMIT}, {args.runs} random points in "
        "the area (the town's 3,308 cameras in Dongjing; beyond them, generated cameras in the "
        "town, 30x as dense at 100,000, or over the Songjiang district), in process (no HTTP):\n"
    )
    columns = ["cameras", "area", "case", "runs", "p50 ms", "p99 ms", "cameras found (mean)",
               "aim p99", "met"]  # fmt: skip
    print(markdown_table(columns, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
