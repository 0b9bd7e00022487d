"""The catalog under a stream of changes: a request waits for a cheap rebuild (a writer reads its
own write), is served the snapshot before an expensive one (dashboards keep their latency while a
100,000-row import writes), and never gets a snapshot older than the staleness bound.

The registry is a double whose `load_all` takes as long on the catalog's clock as the test says
and finishes when the test lets it: no sleeps against real deadlines.
"""

from __future__ import annotations

import asyncio
import gc
import random
import tracemalloc
from dataclasses import replace

import orjson
import pytest
from prometheus_client import generate_latest

import gateway.catalog
from gateway.catalog import (
    _MAX_STALE_S,
    _MAX_WAIT_S,
    REBUILD_BUCKETS,
    Catalog,
    ListQuery,
    Snapshot,
    _entries,
    _matches,
    decode_cursor,
    shared_view,
)
from gateway.metrics import Metrics
from gateway.models import Role
from gateway.policy import Principal
from gateway.registry import Loaded
from gateway.settings import DEFAULT_CONFIG, Settings, load_settings


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(DEFAULT_CONFIG, use_env=False)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class SlowRegistry:
    """`load_all` costs `cost` seconds of the clock and waits for `gate` (open by default)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.at = 1  # the registry's version
        self.cost = 0.001
        self.gate = asyncio.Event()
        self.gate.set()
        self.loads = 0
        self.police = 0  # police's own version (governance's moves with `at`)

    async def version(self) -> int:
        return self.at

    async def network_version(self, network: str) -> int:
        return {"governance": self.at, "police": self.police}.get(network, 0)

    async def changes_since(self, version: int, most: int = 0) -> None:
        return None  # (every rebuild a full load: what these tests time)

    async def load_all(self) -> Loaded:
        self.loads += 1
        at = self.at
        await self.gate.wait()
        self.clock.now += self.cost
        records = [
            orjson.dumps(
                {"id": f"governance.c{i}", "network": "governance", "name": "c", "status": "online",
                 "category": "sharp-eyes", "department": "", "carrier": ""}
            )
            for i in range(at)
        ]  # fmt: skip
        return Loaded(at, {"governance": at, "police": self.police}, records)


def catalog(settings: Settings) -> tuple[Catalog, SlowRegistry, Clock]:
    clock = Clock()
    registry = SlowRegistry(clock)
    cat = Catalog(registry, settings, clock=clock)  # type: ignore[arg-type]
    cat.set_live(registry.at)
    return cat, registry, clock


async def test_a_cheap_rebuild_is_waited_for(settings: Settings) -> None:
    cat, registry, clock = catalog(settings)
    assert (await cat.current()).version == 1
    clock.now += 1
    registry.at = 2
    cat.note_version(2)  # our own write
    assert (await cat.current()).version == 2  # read at once, in the next request


async def test_a_districts_cheap_rebuild_does_not_hold_requests(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a district's registry even a cheap rebuild lands for a later request: dashboards
    polling while cameras change keep their latency (a writer's read may trail its write by
    that rebuild)."""
    monkeypatch.setattr(gateway.catalog, "LARGE_REGISTRY", 3)
    cat, registry, clock = catalog(settings)
    registry.at = 3
    cat.set_live(3)
    assert len((await cat.current()).entries) == 3
    clock.now += 1
    registry.at = 4
    cat.note_version(4)  # our own write, and a rebuild that would take no time at all
    assert (await cat.current()).version == 3  # (a town's registry: 4, the rebuild waited for)
    rebuild = cat._rebuild
    assert rebuild is not None
    await rebuild
    assert (await cat.current()).version == 4


async def test_an_expensive_rebuild_does_not_hold_requests(settings: Settings) -> None:
    cat, registry, clock = catalog(settings)
    registry.cost = 1.0  # a 100,000-camera registry
    assert (await cat.current()).version == 1
    clock.now += 2.5  # past the rebuild interval (twice the rebuild)
    registry.at = 2
    registry.gate.clear()  # the rebuild runs on and on
    cat.set_live(2)
    served = await asyncio.wait_for(cat.current(), 1.0)  # at once, not after the rebuild
    assert served.version == 1
    registry.gate.set()
    rebuild = cat._rebuild  # the rebuild the request did not wait for
    assert rebuild is not None
    await rebuild  # it lands for the next request
    assert (await cat.current()).version == 2 and registry.loads == 2


async def test_never_a_snapshot_older_than_the_bound(settings: Settings) -> None:
    cat, registry, clock = catalog(settings)
    registry.cost = 1.0
    assert (await cat.current()).version == 1
    clock.now += _MAX_STALE_S + 1  # the snapshot is too old to serve while rebuilding
    registry.at = 3
    registry.gate.clear()
    cat.set_live(3)
    request = asyncio.create_task(cat.current())
    await asyncio.sleep(_MAX_WAIT_S * 2)  # (a bound the test checks, not a deadline it waits on)
    assert not request.done()  # it waits for the rebuild instead
    registry.gate.set()
    assert (await request).version == 3


async def test_a_request_waits_for_the_rebuild_not_for_its_pause(settings: Settings) -> None:
    """Rebuilds are paced (one every twice a rebuild's time), but a request that must wait for
    a fresher snapshot waits for the rebuild alone: it starts once the snapshot is too old."""
    cat, registry, clock = catalog(settings)
    registry.cost = 30.0  # (a rebuild that long: a pause of 60 s after it)
    assert (await cat.current()).version == 1
    clock.now += _MAX_STALE_S + 1
    registry.at = 2
    cat.set_live(2)
    served = await asyncio.wait_for(cat.current(), 1.0)  # (not after the 54 s left of the pause)
    assert served.version == 2 and registry.loads == 2


async def test_a_health_round_waits_for_its_own_networks_changes_alone(
    settings: Settings,
) -> None:
    """A round decides from a snapshot holding every change of its network, however long its
    rebuild; another network's changes are not waited for (after a district's round of one
    network wrote 75,000 records, the next network's round waited 5-7 s for their rebuild)."""
    cat, registry, clock = catalog(settings)
    registry.cost = 1.0
    assert (await cat.fresh("governance")).version == 1
    clock.now += 2.5
    registry.at = 2  # governance changed
    registry.gate.clear()  # and its rebuild runs on and on
    cat.set_live(2)
    served = await asyncio.wait_for(cat.fresh("police"), 1.0)  # at once
    assert served.version == 1
    round_ = asyncio.create_task(cat.fresh("governance"))
    await asyncio.sleep(_MAX_WAIT_S * 2)  # (a bound the test checks, not a deadline it waits on)
    assert not round_.done()  # governance's round waits for its change
    registry.gate.set()
    assert (await round_).version == 2
    clock.now += 2.5
    registry.police, registry.at = 1, 3  # police changed (and the registry's version)
    cat.set_live(3)
    assert (await cat.fresh("police")).network_versions["police"] == 1


async def test_cached_bodies_are_bounded_by_their_bytes(settings: Settings) -> None:
    """A viewer varying `limit` makes a new body per value: the cache keeps the newest within
    `[server] body_cache_bytes` (gzip copies counted), and an evicted body is rebuilt alike."""
    bounded = settings.model_copy(
        update={"server": settings.server.model_copy(update={"body_cache_bytes": 1 << 20})}
    )
    cat, registry, _ = catalog(bounded)
    registry.at = 3000  # ~300 kB for a full page
    cat.set_live(registry.at)
    viewer = Principal("t1", "wall", Role.viewer, None)
    first = await cat.camera_list(viewer, ListQuery(limit=3000))
    await cat.gzipped(first)
    sizes = []
    for limit in range(2000, 3000, 50):
        body = await cat.camera_list(viewer, ListQuery(limit=limit))
        await cat.gzipped(body)
        sizes.append(len(body.data) + len(body.gz or b""))
        assert cat.bodies.bytes <= (1 << 20) + sizes[-1]
    assert sum(sizes) > 4 << 20  # without the bound, four times what it keeps
    assert cat.bodies.evicted > 0 and len(cat.bodies) < len(sizes)
    again = await cat.camera_list(viewer, ListQuery(limit=3000))
    assert again is not first and again.etag == first.etag  # rebuilt, the same representation


async def test_rebuild_durations_are_exported(settings: Settings) -> None:
    cat, registry, _ = catalog(settings)
    registry.cost = 0.3  # seconds of the catalog's clock
    await cat.current()
    assert cat.rebuilds.last_s == pytest.approx(0.3)
    assert cat.rebuilds.counts[REBUILD_BUCKETS.index(0.5)] == 1 and sum(cat.rebuilds.counts) == 1
    metrics = Metrics()
    metrics.watch_catalog(cat)
    text = generate_latest(metrics.registry).decode()
    assert 'camgw_catalog_rebuild_seconds_bucket{le="0.25"} 0.0' in text
    assert 'camgw_catalog_rebuild_seconds_bucket{le="0.5"} 1.0' in text
    assert "camgw_catalog_rebuild_seconds_count 1.0" in text
    sums = [ln for ln in text.splitlines() if ln.startswith("camgw_catalog_rebuild_seconds_sum")]
    assert len(sums) == 1 and float(sums[0].split()[1]) == pytest.approx(0.3)


def test_a_shared_view_holds_its_own_size_in_memory() -> None:
    """The catalog keeps one shared view per camera: each must cost about its length (orjson's
    result keeps a ~16 KiB buffer; 100,000 cameras held 1.4 GB through it, not 150 MB)."""
    record = {"id": "police.x", "network": "police", "name": "Gate", "secret": "s" * 500}
    record |= {f"field{i}": "v" * 20 for i in range(40)}
    raw = orjson.dumps(record)
    allowed = frozenset(k for k in record if k != "secret")
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        views = [shared_view(raw, record, allowed) for _ in range(500)]
        held = (tracemalloc.get_traced_memory()[0] - before) / len(views)
    finally:
        tracemalloc.stop()
    assert b"secret" not in views[0] and orjson.loads(views[0])["name"] == "Gate"
    assert held < 1.5 * len(views[0]) + 100, f"{held:.0f} bytes held for {len(views[0])}"


async def test_dashboards_asking_for_one_new_page_share_one_build(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four dashboards poll the same filtered page just after a change, on a registry large
    enough that pages are built in a worker thread: the page is built once, all four get it."""
    monkeypatch.setattr(gateway.catalog, "LARGE_REGISTRY", 1)  # (20,000 cameras are slow here)
    cat, _, _ = catalog(settings)
    viewer = Principal("t", "viewer", Role.viewer, None)
    query = ListQuery(network="governance", limit=50)
    built = 0
    real = gateway.catalog._list_body

    def counting(*args: object) -> bytes:
        nonlocal built
        built += 1
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(gateway.catalog, "_list_body", counting)
    bodies = await asyncio.gather(*(cat.camera_list(viewer, query) for _ in range(4)))
    assert built == 1
    assert len({b.etag for b in bodies}) == 1 and orjson.loads(bodies[0].data)["total"] == 1


def test_filtered_pages_match_every_camera_the_filters_name_once(settings: Settings) -> None:
    """The list's narrowed and held selections give what a plain pass over every camera gives,
    for every filter combination, role and page size, and paging by cursor walks each match
    exactly once (the selections are held per snapshot: a second asking agrees with the first)."""
    rng = random.Random(7)
    records = [
        orjson.dumps(
            {"id": f"{net}.c{i:05d}", "network": net, "name": f"cam {i}", "status": status,
             "category": rng.choice(["sharp-eyes", "xueliang"]), "department": "d",
             "carrier": rng.choice(["telecom", "mobile"]), "lifecycle": lifecycle}
        )
        for i in range(600)
        for net in [rng.choice(["governance", "police", "gov-affairs"])]
        for status in [rng.choice(["online", "offline", "unknown"])]
        for lifecycle in [rng.choice(["in-service", "in-service", "decommissioned"])]
    ]  # fmt: skip
    shares = {n.id: frozenset(n.sharing.share) for n in settings.networks}
    shares["police"] -= {"status", "lifecycle"}  # (a filter by them leaves police out)
    entries, by_id = _entries(records, shares, frozenset())
    snap = Snapshot(7, entries, by_id, {"governance": 1, "police": 1, "gov-affairs": 1})
    admin = Principal("a", "admin", Role.admin, None)
    viewer = Principal("v", "viewer", Role.viewer, ("governance", "gov-affairs"))
    queries = [
        ListQuery(network=net, status=status, carrier=carrier, lifecycle=life, limit=limit)
        for net in (None, "governance", "police")
        for status in (None, "online", "offline")
        for carrier in (None, "telecom")
        for life in (None, "decommissioned")
        for limit in (7, 1000)
    ]
    everywhere = Principal("w", "viewer", Role.viewer, None)
    for who in (admin, viewer, everywhere):
        visible = who.visible(settings)
        for q in queries:
            plain = [e.id for e in entries if _matches(e, q, visible, who.full_records)]
            walked: list[str] = []
            cursor = None
            for _ in range(1000):
                page = orjson.loads(
                    gateway.catalog._list_body(snap, who, settings, replace(q, cursor=cursor))
                )
                assert page["total"] == len(plain)
                walked += [item["id"] for item in page["items"]]
                cursor = page["next_cursor"]
                if cursor is None:
                    break
                assert decode_cursor(cursor) == walked[-1]
            assert walked == plain, (who.role, q)
    assert snap.matching(queries[1], admin.visible(settings), True) is snap.matching(
        queries[1], admin.visible(settings), True
    )


def test_a_district_cuts_the_shared_view_per_page_and_serves_the_same_bytes(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Below LARGE_REGISTRY each entry holds its shared view; above it, none is held and each
    page cuts its own: the bytes a viewer gets are the same either way."""
    records = [
        orjson.dumps(
            {"id": f"governance.c{i:03d}", "network": "governance", "name": f"cam {i}",
             "status": "online", "category": "sharp-eyes", "department": "d", "carrier": "c",
             "image": {"status": "secret"}, "lifecycle": "in-service"}
        )
        for i in range(40)
    ]  # fmt: skip
    shares = {n.id: frozenset(n.sharing.share) for n in settings.networks}
    town = Snapshot(1, *_entries(records, shares, frozenset()))
    monkeypatch.setattr(gateway.catalog, "LARGE_REGISTRY", 10)
    district = Snapshot(1, *_entries(records, shares, frozenset()))
    assert all(e.shared is not None for e in town.entries)
    assert all(e.shared is None for e in district.entries)
    viewer = Principal("v", "viewer", Role.viewer, None)
    query = ListQuery(limit=15)
    page = gateway.catalog._list_body(town, viewer, settings, query)
    assert gateway.catalog._list_body(district, viewer, settings, query) == page
    assert b"secret" not in page and b"cam 3" in page


def test_filtered_lists_carried_over_a_change_are_what_a_fresh_pass_finds(
    settings: Settings,
) -> None:
    """A rebuild of a few changes carries the held filtered lists over (a district's
    dashboards poll the same pages): cameras that changed status, network, lifecycle or name,
    and cameras added and deleted, land exactly where a pass over the new snapshot puts them,
    for every role, and in their network's group; a list nobody asks for is carried a bounded
    number of times."""
    rng = random.Random(11)

    def record(i: int) -> bytes:
        return orjson.dumps(
            {"id": f"c{i:05d}", "network": rng.choice(["governance", "police", "gov-affairs"]),
             "name": rng.choice(["gate", "market", "school"]), "category": "sharp-eyes",
             "status": rng.choice(["online", "offline"]), "department": "d",
             "carrier": rng.choice(["telecom", "mobile"]),
             "lifecycle": rng.choice(["in-service", "in-service", "decommissioned"])}
        )  # fmt: skip

    shares = {n.id: frozenset(n.sharing.share) for n in settings.networks}
    shares["police"] -= {"status"}
    snap = Snapshot(1, *_entries([record(i) for i in range(400)], shares, frozenset()))
    who = [
        Principal("a", "admin", Role.admin, None),
        Principal("v", "viewer", Role.viewer, ("governance", "police")),
    ]
    queries = [
        ListQuery(network=net, status=status, lifecycle=life, q=text)
        for net in (None, "governance")
        for status in (None, "online")
        for life in (None, "decommissioned")
        for text in (None, "market")
    ]
    asked = [(q, p.visible(settings), p.full_records) for q in queries[:8] for p in who]
    for version in range(2, 8):
        for q, visible, full in asked:
            snap.matching(q, visible, full)
        changed: dict[str, bytes | None] = {
            f"c{rng.randrange(440):05d}": record(0) for _ in range(9)
        }
        changed |= {f"c{rng.randrange(400):05d}": None for _ in range(3)}
        changed = {k: (v if v is None else v.replace(b'"c00000"', f'"{k}"'.encode()))
                   for k, v in changed.items()}  # fmt: skip
        snap.groups()  # (a district's snapshot is grouped as it is built)
        entries, by_id, groups = gateway.catalog._applied(
            snap, changed, shares, frozenset(), grouped=True
        )
        assert groups == gateway.catalog._grouped(entries)  # changed where the records did
        new = Snapshot(version, entries, by_id, by_network=groups)
        gateway.catalog._carried_matches(snap, new, changed)
        fresh = Snapshot(version, entries, by_id)
        assert len(new._matched) == len(asked)
        for q, visible, full in asked:
            carried = [e.id for e in new.matching(q, visible, full)]
            assert carried == [e.id for e in fresh.matching(q, visible, full)], (q, full)
        snap = new
    # Lists no longer asked for are carried _CARRIED_REBUILDS more times, then dropped.
    for version in range(8, 8 + gateway.catalog._CARRIED_REBUILDS + 1):
        new = Snapshot(version, snap.entries, snap.by_id)
        gateway.catalog._carried_matches(snap, new, [])
        snap = new
    assert not snap._matched


def test_a_districts_rebuild_keeps_its_copies_out_of_the_young_collections_way(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A district's rebuild copies the snapshot's 100,000 entries by id and in order: each young
    collection while it ran walked the copies, with the GIL held (adapters/gil.settled)."""
    records = [
        orjson.dumps({"id": f"c{i:03d}", "network": "governance", "name": "c", "status": "online",
                      "category": "sharp-eyes", "department": "", "carrier": ""})
        for i in range(40)
    ]  # fmt: skip
    shares = {n.id: frozenset(n.sharing.share) for n in settings.networks}
    changed: dict[str, bytes | None] = {"c007": records[7].replace(b"online", b"offline")}
    town = Snapshot(1, *_entries(records, shares, frozenset()))
    _, by_id, _ = gateway.catalog._applied(town, changed, shares, frozenset())
    assert id(by_id) in {id(o) for g in (0, 1, 2) for o in gc.get_objects(g)}  # (a town's: kept)
    monkeypatch.setattr(gateway.catalog, "LARGE_REGISTRY", 10)
    district = Snapshot(1, *_entries(records, shares, frozenset()))
    try:
        _, by_id, _ = gateway.catalog._applied(district, changed, shares, frozenset())
        young = {id(o) for g in (0, 1, 2) for o in gc.get_objects(g)}
        assert id(by_id) not in young
    finally:
        gc.unfreeze()


def test_full_collections_come_when_quiet_and_at_least_hourly() -> None:
    """The thaw-and-collect pass holds the loop up to a second at 100,000 cameras: only when
    the registry is quiet, at most every ten minutes there; but at least once an hour, quiet
    or not, so that cyclic garbage frozen between two passes stays bounded."""
    clock = Clock()
    passes = gateway.catalog.FullCollections(clock, clock())
    district = gateway.catalog.LARGE_REGISTRY
    clock.now += 60
    assert passes.due(quiet=True, cameras=10)  # a town's: once a minute when quiet
    clock.now += 300
    assert not passes.due(quiet=True, cameras=district)  # a district's: every ten minutes
    clock.now += 300
    assert passes.due(quiet=True, cameras=district)
    for _ in range(59):  # never quiet
        clock.now += 60
        assert not passes.due(quiet=False, cameras=district)
    clock.now += 60
    assert passes.due(quiet=False, cameras=district)  # overdue after an hour
