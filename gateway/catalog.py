"""What the dashboard polls: the registry held in memory per version, and response bodies cached
per (version, view, filters) with a strong ETag and a gzip copy.

An unchanged poll costs no Redis round trip: the current version is pushed by the `events`
channel (each write publishes it), and the body for that version is already built. When the
channel is down, each request reads the version key instead (one GET, never one per camera).
"""

from __future__ import annotations

import asyncio
import base64
import gc
import gzip
import hashlib
import logging
import time
from bisect import bisect_left, bisect_right
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from functools import partial
from sys import intern
from typing import Any
from urllib.parse import urlsplit

import orjson

from adapters.base import Target
from adapters.gil import off_the_loop

from . import memory
from .models import (
    NOT_PROBED_VALUES,
    AdapterState,
    Camera,
    CameraStatus,
    InventoryRow,
    Lifecycle,
    NetworkInfo,
    Summary,
    SummaryCell,
)
from .policy import Permission, Principal
from .registry import CHANGES_KEPT, MAX_CHANGES, Registry
from .settings import BODY_CACHE_BYTES, Settings

log = logging.getLogger(__name__)

_MIN_REBUILD_S = 0.02
# A request waits at most this long for a newer snapshot, and only when rebuilds are cheap and
# the registry is a town's: it rebuilds within it, so a writer reads its own write in the next
# request. From LARGE_REGISTRY cameras on a rebuild takes 0.05 s (one change) to seconds (a
# discovery's writes): requests are served the snapshot before it, so dashboards keep their
# latency while cameras change (waiting for each rebuild made a filtered page's p99 110 ms at
# 100,000 cameras with a change a second, bench/scale.py).
_MAX_WAIT_S = 0.1
_MAX_STALE_S = 5.0  # ... but never a snapshot older than this: then the rebuild is waited for
LARGE_REGISTRY = 20_000  # cameras from which a response body is built off the event loop
_MEMO_MAX = 256  # figures derived from one snapshot and held with it
_MATCHING_HELD = 16  # filtered lists held per snapshot (100,000 cameras: 0.8 MB each at most)
_CARRIED_CHANGES = 1000  # changes up to which a snapshot's filtered lists are carried over
_CARRIED_REBUILDS = 64  # ... while asked for within this many rebuilds
_APPLY_IN_THREAD = 200  # changed records from which they are parsed off the event loop
_QUIET_S = 5.0  # no registry change for this long: a full garbage collection may run
_TRIM_EVERY_S = 10.0  # freed memory returned to the system at most this often (gateway/memory.py)
_GZIP_MIN_BYTES = 1024
# Bounds of the rebuild-duration histogram (camgw_catalog_rebuild_seconds): ~1 s at 100,000.
REBUILD_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True, slots=True)
class Entry:
    """One camera as the list serves it: filter fields plus prebuilt JSON bytes."""

    id: str
    network: str
    status: str
    category: str
    department: str
    carrier: str
    lifecycle: str
    precision_m: float | None  # None: no location; else how exactly its coordinates place it
    haystack: str  # lower-cased text that `q` searches (admins)
    shared_haystack: str  # the same from the shared record: no match on an unshared field
    full: bytes  # the stored record (admins; everyone else sees `shown(False)`)
    shared: bytes | None  # what the owner shares, made ahead below LARGE_REGISTRY cameras
    shared_fields: frozenset[str] = frozenset()
    # What a health round needs, read once per change of the record rather than once per round
    # (parsing 100,000 records every 30 s was seconds of CPU and a gigabyte of models).
    rev: int = 1
    last_seen: str | None = None  # ISO 8601, as stored
    target: Target | None = None  # where to probe it (None: nowhere, or not probed)
    image: str = ""  # the quality verdict's status ('': none), for the list's `image` filter

    def shown(self, full: bool) -> bytes:
        """The record as a caller sees it: whole for admins, else only what the network's
        owner shares. In a district's registry the shared view is made as a page is built,
        not held per camera (at 100,000 cameras a second copy of every record was 150 MB of
        the gateway's memory); below LARGE_REGISTRY it is made once per change (a town's
        full list, rebuilt at each change, would cut 3,308 views each time)."""
        if full:
            return self.full
        if self.shared is not None:
            return self.shared
        return shared_view(self.full, orjson.loads(self.full), self.shared_fields)

    def sees(self, field: str, full: bool) -> bool:
        """Whether a caller may filter or count by `field` (an unshared field must not be
        learnt through filters or counts either)."""
        return full or field in self.shared_fields


@dataclass(frozen=True, slots=True)
class Snapshot:
    version: int
    entries: tuple[Entry, ...]  # sorted by id
    by_id: dict[str, Entry] = field(default_factory=dict)
    network_versions: dict[str, int] = field(default_factory=dict)
    _memo: dict[Any, Any] = field(default_factory=dict)  # derived once per snapshot
    by_network: dict[str, tuple[Entry, ...]] = field(default_factory=dict)  # Snapshot.groups
    _matched: dict[Any, Sequence[Entry]] = field(default_factory=dict)  # Snapshot.matching
    # Rebuilds since each held filtered list was last asked for (carried, `_carried_matches`).
    _unasked: dict[Any, int] = field(default_factory=dict)

    def status_counts(self) -> Counter[tuple[str, str]]:
        """Cameras per (network, status), counted once per snapshot (metrics, /networks)."""
        counts = self._memo.get("status")
        if counts is None:
            counts = self._memo["status"] = Counter((e.network, e.status) for e in self.entries)
        return counts

    def probed(self, network: str) -> list[Entry]:
        """The network's cameras a health round probes (once per snapshot and network)."""
        key = "probed:" + network
        found = self._memo.get(key)
        if found is None:
            found = self._memo[key] = [
                e for e in self.entries if e.network == network and e.target is not None
            ]
        return found

    def unplaced(
        self, q: ListQuery, visible: tuple[str, ...], full: bool, placed: frozenset[str]
    ) -> Counter[str]:
        """Cameras the list's filters match that a `near` query cannot place (no location, or
        their network's location unshared), per network: a pass over every camera, so held
        per snapshot and filters (not per point: 100,000 cameras made it 76% of a query)."""
        filters = replace(q, limit=0, cursor=None, near=None, radius_m=0)
        key = ("unplaced", filters, visible, full, placed)
        counts = self._memo.get(key)
        if counts is None:
            counts = Counter(
                e.network
                for e in self.matching(q, visible, full)
                if e.network not in placed or e.precision_m is None
            )
            if len(self._memo) < _MEMO_MAX:  # (searches vary: held for the first ones only)
                self._memo[key] = counts
        return counts

    def matching(self, q: ListQuery, visible: tuple[str, ...], full: bool) -> Sequence[Entry]:
        """The cameras the list's filters match, in id order: the entries of the networks
        asked for, narrowed by status and lifecycle (held per snapshot), then, when the query
        names any other filter, each checked by `_matches`. Held for the first few filter sets,
        so that the pages after the first, another `limit` and the `near` counts cost no pass
        over 100,000 cameras."""
        filters = replace(q, limit=0, cursor=None, near=None, radius_m=0)
        key = ("matching", filters, visible, full)
        found = self._matched.get(key)
        if found is not None:
            self._unasked[key] = 0
        else:
            networks = tuple(n for n in visible if q.network is None or n == q.network)
            found = self._narrowed(networks, q.status, q.lifecycle, full)
            if any(getattr(q, f) is not None for f in _OTHER_FILTERS):
                found = [e for e in found if _matches(e, q, visible, full)]
            if len(self._matched) < _MATCHING_HELD:
                self._matched[key] = found
                self._unasked[key] = 0
        return found

    def _narrowed(
        self, networks: tuple[str, ...], status: str | None, lifecycle: str | None, full: bool
    ) -> Sequence[Entry]:
        """The entries of `networks` with `status` and in `lifecycle` (None: any status; every
        state but decommissioned), in id order, exactly as `_matches` would choose them: a
        filter on a field a network does not share leaves that network out for all but
        admins. One network's page passes over its own entries only (grouped when the
        snapshot is built)."""
        key = ("narrowed", frozenset(networks), status, lifecycle, full)
        found: Sequence[Entry] | None = self._memo.get(key)
        if found is not None:
            return found
        groups = self.groups()
        chosen = [
            n
            for n in dict.fromkeys(networks)
            if full
            or (
                # (filtered by a field a network does not share: none of its cameras)
                (status is None or "status" in _shares_of(groups.get(n, ())))
                and (lifecycle is None or "lifecycle" in _shares_of(groups.get(n, ())))
            )
        ]
        # One network: its own entries; several: one pass over all (already in id order).
        among: Sequence[Entry] = (
            () if not chosen else groups.get(chosen[0], ()) if len(chosen) == 1 else self.entries
        )
        wanted = frozenset(chosen)
        if len(chosen) > 1 and wanted.issuperset(groups):
            wanted = frozenset()  # (every network: no check)
        found = [
            e
            for e in among
            if (not wanted or e.network in wanted)
            and (status is None or e.status == status)
            and (e.lifecycle != _RETIRED if lifecycle is None else e.lifecycle == lifecycle)
        ]
        self._memo[key] = found
        return found

    def groups(self) -> dict[str, tuple[Entry, ...]]:
        """Each network's entries in id order (built with the snapshot in the rebuild's
        thread; made here for a snapshot built without them)."""
        if not self.by_network:
            self.by_network.update(_grouped(self.entries))
        return self.by_network

    def version_of(self, networks: Iterable[str]) -> int:
        """The version a caller granted `networks` sees: it moves only when one of them changes
        (the registry-wide version would tell a viewer when other networks change)."""
        return sum(self.network_versions.get(n, 0) for n in networks)


@dataclass(slots=True)
class Body:
    etag: str
    data: bytes
    gz: bytes | None = None
    etag_gz: str = ""  # the gzip representation's own strong ETag

    def __post_init__(self) -> None:
        self.etag_gz = self.etag[:-1] + '-gz"'


class BodyCache:
    """Bodies by key, least recently used out first, holding at most `max_bytes` of them
    (plus the newest body, whatever its size: it is being served)."""

    def __init__(self, max_bytes: int = BODY_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.evicted = 0
        self._items: OrderedDict[tuple[Any, ...], Body] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: tuple[Any, ...]) -> Body | None:
        body = self._items.get(key)
        if body is not None:
            self._items.move_to_end(key)
        return body

    def put(self, key: tuple[Any, ...], body: Body) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self.bytes -= _size(old)
        self._items[key] = body
        self.bytes += _size(body)
        self._trim()

    def gzipped(self, body: Body, gz: bytes) -> None:
        """`body` got its gzip copy: count it while the body is held here."""
        held = body.gz is None and any(b is body for b in self._items.values())
        body.gz = gz
        if held:
            self.bytes += len(gz)
            self._trim()

    def _trim(self) -> None:
        while self.bytes > self.max_bytes and len(self._items) > 1:
            _, gone = self._items.popitem(last=False)
            self.bytes -= _size(gone)
            self.evicted += 1


def _size(body: Body) -> int:
    return len(body.data) + (len(body.gz) if body.gz is not None else 0)


@dataclass(slots=True)
class RebuildStats:
    """How long catalog rebuilds took (load every record, build the entries): counts per
    REBUILD_BUCKETS bound (then +Inf), their sum, and the last one."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(REBUILD_BUCKETS) + 1))
    total_s: float = 0.0
    last_s: float = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(REBUILD_BUCKETS, seconds)] += 1
        self.total_s += seconds
        self.last_s = seconds


@dataclass(frozen=True, slots=True)
class ListQuery:
    network: str | None = None
    status: str | None = None
    category: str | None = None
    department: str | None = None
    carrier: str | None = None
    lifecycle: str | None = None  # None: every state but decommissioned
    image: str | None = None  # the quality verdict's status (ok, suspect, faulty)
    q: str | None = None
    limit: int = 1000
    cursor: str | None = None
    near: tuple[float, float] | None = None  # (lat, lon): within radius_m, nearest first
    radius_m: int = 500


# ListQuery's fields that Snapshot._narrowed does not decide (`_matches` checks them).
_OTHER_FILTERS = tuple(
    f.name
    for f in fields(ListQuery)
    if f.name not in {"network", "status", "lifecycle", "limit", "cursor", "near", "radius_m"}
)


_FULL_GC_EVERY_S = 60.0
_FULL_GC_EVERY_LARGE_S = 600.0  # from LARGE_REGISTRY cameras on: that pass holds the loop ~0.5 s
_FULL_GC_OVERDUE_S = 3600.0  # quiet or not: what was frozen as garbage is bounded


@dataclass(slots=True)
class FullCollections:
    """When the catalog thaws what it froze and collects fully (`_freeze_long_lived`): when
    the registry has been quiet for a while, at most once a minute, and at most every ten
    minutes in a district's registry (at 100,000 cameras that pass holds the loop for 0.3 to
    1.2 s: not while an import or a discovery writes, and rarely in between); and after an
    hour without one, quiet or not, so that cyclic garbage frozen meanwhile stays bounded
    under a registry that never rests."""

    clock: Callable[[], float] = time.monotonic
    last: float = 0.0  # (set to the catalog's start)

    def due(self, quiet: bool, cameras: int) -> bool:
        now = self.clock()
        every = _FULL_GC_EVERY_LARGE_S if cameras >= LARGE_REGISTRY else _FULL_GC_EVERY_S
        since = now - self.last
        if (quiet and since >= every) or since >= _FULL_GC_OVERDUE_S:
            self.last = now
            return True
        return False


@dataclass(slots=True)
class Catalog:
    registry: Registry
    settings: Settings
    snapshot: Snapshot = field(default_factory=lambda: Snapshot(-1, ()))
    live_version: int | None = None  # pushed by the events channel; None while it is down
    _bodies: BodyCache = field(default_factory=BodyCache)
    _rebuild: asyncio.Task[None] | None = None
    _built_at: float = -1e9
    _rebuild_s: float = 0.0  # how long the last rebuild took
    _changed_at: float = -1e9  # when the registry last changed
    clock: Callable[[], float] = time.monotonic  # injectable, for tests
    _parsed: dict[str, Camera] = field(default_factory=dict)
    _building: dict[tuple[Any, ...], asyncio.Future[Body]] = field(default_factory=dict)
    _trimmed_at: float = -1e9
    builds: int = 0
    full_loads: int = 0  # rebuilds that read every record (the rest read what changed)
    rebuilds: RebuildStats = field(default_factory=RebuildStats)
    # (on the process's own clock: a full pass costs real time, whatever clock a test injects)
    full_collections: FullCollections = field(
        default_factory=lambda: FullCollections(time.monotonic, time.monotonic())
    )

    def __post_init__(self) -> None:
        self._bodies = BodyCache(self.settings.server.body_cache_bytes)

    @property
    def bodies(self) -> BodyCache:
        """The current version's cached bodies (metrics)."""
        return self._bodies

    # -- version and snapshot -------------------------------------------------------------

    def set_live(self, version: int | None) -> None:
        """From the events listener: the newest version, or None while the channel is down."""
        if version is not None and version != self.live_version:
            self._changed_at = self.clock()
        self.live_version = version

    def note_version(self, version: int) -> None:
        """After our own writes, so the writer reads its write even before the event arrives."""
        if self.live_version is not None and version > self.live_version:
            self.live_version = version
            self._changed_at = self.clock()

    @property
    def quiet(self) -> bool:
        """No change for a while: the moment for work that holds the loop (a full collection)."""
        return self.clock() - self._changed_at >= _QUIET_S

    async def current(self) -> Snapshot:
        version = self.live_version
        if version is None:
            version = await self.registry.version()
        if self.snapshot.version >= version:
            return self.snapshot
        deadline = self.clock() + _MAX_WAIT_S
        while self.snapshot.version < version:
            task = self._rebuilding()
            now = self.clock()
            if self.snapshot.version < 0 or now - self._built_at > _MAX_STALE_S:
                await asyncio.shield(task)  # nothing to serve, or nothing fresh enough
                continue
            large = len(self.snapshot.entries) >= LARGE_REGISTRY
            if large or self._rebuild_s >= _MAX_WAIT_S or now >= deadline:
                break  # an expensive rebuild lands for a later request: serve this snapshot
            try:  # a cheap one is waited for (a writer reads its own write)
                await asyncio.wait_for(asyncio.shield(task), deadline - now)
            except TimeoutError:
                break
        return self.snapshot

    async def fresh(self, network: str) -> Snapshot:
        """A snapshot holding every change of `network` made so far, however long its rebuild
        takes: for background work that decides from what the records say (a health round
        keeps a camera's status as its snapshot has it). `current` may serve an older one, and
        a replica whose catalog had not yet seen the other's write kept a camera offline after
        its two good answers (tests/gateway/test_shared_work.py). Other networks' changes are
        not waited for: after a district's round wrote 75,000 records of one network, the next
        network's round waited 5-7 s for their rebuild."""
        wanted = await self.registry.network_version(network)
        while self.snapshot.version < 0 or self.snapshot.network_versions.get(network, 0) < wanted:
            await asyncio.shield(self._rebuilding())
        return self.snapshot

    def _rebuilding(self) -> asyncio.Task[None]:
        """The rebuild under way, or a new one: one, however many requests wait for it."""
        task = self._rebuild
        if task is None or task.done():
            task = self._rebuild = asyncio.create_task(self._rebuild_now(), name="catalog")
            task.add_done_callback(_retrieve)
        return task

    async def _rebuild_now(self) -> None:
        # Under a stream of changes, rebuild at most every twice as long as a rebuild takes: the
        # catalog spends at most a third of the time rebuilding, whatever the registry's size.
        # But never later than when the snapshot grows too old to serve: requests then wait for
        # this rebuild, and at 100,000 cameras under a discovery's writes (rebuilds of 2-3 s)
        # they waited out the pause too (dashboard polls of 7 to 9 s, bench/scale.py).
        interval = max(_MIN_REBUILD_S, 2 * self._rebuild_s)
        wait = self._built_at + min(interval, _MAX_STALE_S) - self.clock()
        if wait > 0:
            await asyncio.sleep(wait)
        started = self.clock()
        old = [self.snapshot, self._bodies]
        self.snapshot = await self._load()
        self._bodies = BodyCache(self.settings.server.body_cache_bytes)
        self._built_at = self.clock()
        self._rebuild_s = self._built_at - started
        self.rebuilds.observe(self._rebuild_s)
        # Freeing 100,000 old entries takes tens of milliseconds: not on the event loop; after
        # a large rebuild the freed pages go back to the system, at most every _TRIM_EVERY_S.
        due = len(self.snapshot.entries) >= LARGE_REGISTRY and (
            self._built_at - self._trimmed_at >= _TRIM_EVERY_S
        )
        if due:
            self._trimmed_at = self._built_at
        await asyncio.to_thread(_release, old, due)

    async def _load(self) -> Snapshot:
        """The records changed since the snapshot, applied to it (a rebuild after a change
        costs that change, not the registry's size); everything when that cannot be told."""
        old = self.snapshot
        most = _changes_worth_applying(len(old.entries))
        changed = await self.registry.changes_since(old.version, most) if old.version >= 0 else None
        shares = self._shared_fields()
        edges = frozenset(n.id for n in self.settings.networks if n.mode == "edge")
        if changed is not None:
            big = len(changed.records) >= _APPLY_IN_THREAD or len(old.entries) >= LARGE_REGISTRY
            # In a worker thread, each network's entries grouped there too (on the loop, they
            # are grouped when a page asks).
            apply = partial(_applied, old, changed.records, shares, edges, big)
            entries, by_id, groups = await off_the_loop(big, apply)
            self._parsed = {k: v for k, v in self._parsed.items() if k not in changed.records}
            version, networks = changed.version, changed.network_versions
        else:
            loaded = await self.registry.load_all()
            build = partial(_entries, loaded.records, shares, edges)
            entries, by_id, groups = await asyncio.to_thread(_with_groups, build)
            self._parsed = {}
            version, networks = loaded.version, loaded.network_versions
            self.full_loads += 1
            log.info("catalog loaded", extra={"version": version, "cameras": len(entries)})
        self.builds += 1
        snap = Snapshot(version, entries, by_id, networks, by_network=groups)
        if changed is not None and len(changed.records) <= _CARRIED_CHANGES:
            carry = partial(_carried_matches, old, snap, changed.records)
            await off_the_loop(len(entries) >= LARGE_REGISTRY, carry)
        _freeze_long_lived(self.full_collections.due(self.quiet, len(entries)))
        return snap

    def _shared_fields(self) -> dict[str, frozenset[str]]:
        return {n.id: frozenset(n.sharing.share) for n in self.settings.networks}

    async def camera(self, cam_id: str) -> Camera | None:
        """One camera as of the current version, parsed once per version (snapshot hot path)."""
        snap = await self.current()
        entry = snap.by_id.get(cam_id)
        return self._parse(entry) if entry is not None else None

    async def probed(self, network: str) -> list[Entry]:
        """A network's cameras that a health round probes, with every change of the network
        made so far (`fresh`): their entries, nothing parsed."""
        snap = await self.fresh(network)
        if len(snap.entries) >= LARGE_REGISTRY:
            return await asyncio.to_thread(snap.probed, network)
        return snap.probed(network)

    @staticmethod
    def parsed(entry: Entry) -> Camera:
        """`entry`'s record as a model of its own (not kept: a health round parses the
        records it writes, up to every camera, and they change at once)."""
        return Camera.model_validate_json(entry.full)

    def _parse(self, entry: Entry) -> Camera:
        """Parsed once per version and shared: callers copy (model_copy), never mutate."""
        cam = self._parsed.get(entry.id)
        if cam is None:
            cam = self._parsed[entry.id] = Camera.model_validate_json(entry.full)
        return cam

    # -- cached bodies --------------------------------------------------------------------

    async def cached(
        self, key: tuple[Any, ...], build: Callable[[Snapshot], bytes]
    ) -> tuple[Snapshot, Body]:
        snap = await self.current()
        full_key = (snap.version, *key)
        body = self._bodies.get(full_key)
        if body is not None:
            return snap, body
        # One build per body, however many requests ask for it: at 100,000 cameras four
        # dashboards polling the same page after a change each filtered every camera.
        pending = self._building.get(full_key)
        if pending is not None:
            await asyncio.wait([pending])
            if not pending.cancelled() and pending.exception() is None:
                return snap, pending.result()
        done: asyncio.Future[Body] = asyncio.get_running_loop().create_future()
        self._building[full_key] = done
        try:
            big = len(snap.entries) >= LARGE_REGISTRY
            data = await off_the_loop(big, build, snap)
            body = Body(_etag(data), data)
            self._bodies.put(full_key, body)
            done.set_result(body)
        finally:
            if not done.done():
                done.cancel()  # (waiters build it themselves)
            if self._building.get(full_key) is done:
                del self._building[full_key]
        return snap, body

    async def gzipped(self, body: Body) -> bytes:
        if body.gz is None:
            gz = await asyncio.to_thread(gzip.compress, body.data, 6, mtime=0)
            if body.gz is None:  # (another request may have compressed it meanwhile)
                self._bodies.gzipped(body, gz)
        assert body.gz is not None
        return body.gz

    async def camera_list(self, who: Principal, query: ListQuery) -> Body:
        if query.near is not None:
            return await self._near(who, query)
        key = ("list", who.full_records, who.networks, query)
        live = self.live_version
        if live is not None and self.snapshot.version >= live:  # the unchanged poll, no awaits
            full_key = (self.snapshot.version, *key)
            body = self._bodies.get(full_key)
            if body is not None:
                return body
        _, body = await self.cached(key, lambda s: _list_body(s, who, self.settings, query))
        return body

    async def _near(self, who: Principal, query: ListQuery) -> Body:
        """Cameras around a point: the GEO indexes of the networks whose locations the caller
        sees (nobody learns where an unshared camera is, not even by distance), then the list's
        filters, nearest first; one page, not cached (points vary)."""
        assert query.near is not None
        lat, lon = query.near
        placed = [n for n in who.visible(self.settings) if self._shows_location(who, n)]
        hits = await self.registry.near(placed, lat, lon, query.radius_m, _NEAR_SCAN)
        snap = await self.current()
        data = _near_body(snap, who, self.settings, query, hits, frozenset(placed))
        return Body(_etag(data), data)

    def _shows_location(self, who: Principal, network: str) -> bool:
        share = self.settings.network_by_id[network].sharing.share
        return who.full_records or "location" in share

    async def summary(self, who: Principal) -> Body:
        visible, full = who.visible(self.settings), who.full_records
        _, body = await self.cached(
            ("summary", visible, full),
            lambda s: summarize(s, self.settings, visible, full).model_dump_json().encode(),
        )
        return body

    async def networks(
        self, who: Principal, adapter_state: Callable[[str], AdapterState] | None = None
    ) -> list[NetworkInfo]:
        snap = await self.current()
        counts: dict[str, Counter[str]] = {n: Counter() for n in who.visible(self.settings)}
        for (network, status), n in snap.status_counts().items():
            if network in counts:  # (status counted only where the network shares it)
                shared = who.full_records or "status" in self._shared_fields()[network]
                counts[network][status if shared else CameraStatus.unknown] += n
        return [
            NetworkInfo(
                id=n.id,
                name=n.name,
                name_zh=n.name_zh,
                cidrs=[str(c) for c in n.cidrs],
                cameras=sum(counts[n.id].values()),
                by_status=dict(counts[n.id]),
                reason_required=n.sharing.reason_required,
                adapter=adapter_state(n.id)
                if adapter_state and who.can(Permission.discover)
                else None,
            )
            for n in self.settings.networks
            if n.id in counts
        ]

    def status_counts(self) -> Counter[tuple[str, str]]:
        return self.snapshot.status_counts()


def _etag(data: bytes) -> str:
    return '"' + hashlib.blake2b(data, digest_size=16).hexdigest() + '"'


def shared_view(raw: bytes, data: dict[str, Any], allowed: frozenset[str]) -> bytes:
    """The record as its network's owner shares it with non-admins: the allowed fields only."""
    if allowed.issuperset(data):
        return raw
    # Copied to a bytes object of its own size: orjson's result keeps its ~16 KiB write
    # buffer, and a catalog holds one per camera (100,000 of them were 1.4 GB, not 150 MB).
    return bytes(memoryview(orjson.dumps({k: v for k, v in data.items() if k in allowed})))


Built = tuple[tuple[Entry, ...], dict[str, Entry]]
Grouped = tuple[tuple[Entry, ...], dict[str, Entry], dict[str, tuple[Entry, ...]]]


def _with_groups(build: Callable[[], Built]) -> Grouped:
    entries, by_id = build()
    return entries, by_id, _grouped(entries)


def _shares_of(mine: Sequence[Entry]) -> frozenset[str]:
    """What a network shares, as its entries carry it (every entry of a network alike)."""
    return mine[0].shared_fields if mine else frozenset()


def _grouped(entries: Iterable[Entry]) -> dict[str, tuple[Entry, ...]]:
    """Entries by network, each in the order given (id order)."""
    groups: dict[str, list[Entry]] = {}
    for e in entries:
        groups.setdefault(e.network, []).append(e)
    return {network: tuple(mine) for network, mine in groups.items()}


def _entries(
    raws: Sequence[bytes], shares: dict[str, frozenset[str]], edges: frozenset[str]
) -> tuple[tuple[Entry, ...], dict[str, Entry]]:
    """Every record as the list serves it, sorted by id, and by id (run in a worker thread)."""
    keep = len(raws) < LARGE_REGISTRY
    by_id = {e.id: e for e in (_entry(raw, shares, edges, keep) for raw in raws)}  # (once)
    return tuple(sorted(by_id.values(), key=_entry_id)), by_id


def _applied(
    snap: Snapshot,
    records: dict[str, bytes | None],
    shares: dict[str, frozenset[str]],
    edges: frozenset[str],
    grouped: bool = False,
) -> Grouped:
    """`snap` with the changed `records` (None: deleted) replaced, added or removed; entries
    that did not change are the snapshot's own objects. `grouped`: with each network's
    entries too, the snapshot's own groups changed where the records did (regrouping every
    entry was a pass of Python over 100,000 of them after each change, holding the GIL)."""
    by_id = dict(snap.by_id)
    keep = len(by_id) + len(records) < LARGE_REGISTRY
    entries = list(snap.entries)
    if not keep:  # (the copies out of the young collections' way: adapters/gil.settled)
        gc.freeze()
    had = snap.by_network if grouped else {}
    groups: dict[str, list[Entry]] = {}

    def group(network: str) -> list[Entry]:
        if network not in groups:
            groups[network] = list(had.get(network, ()))
        return groups[network]

    for cam_id, raw in records.items():
        was = by_id.pop(cam_id, None)
        entry = None if raw is None else _entry(raw, shares, edges, keep)
        if entry is not None:
            by_id[cam_id] = entry
        _placed(entries, cam_id, entry)
        if had:
            if was is not None and (entry is None or entry.network != was.network):
                _placed(group(was.network), cam_id, None)
            if entry is not None:
                _placed(group(entry.network), cam_id, entry)
    done = tuple(entries)
    if not grouped:
        return done, by_id, {}
    if not had:
        return done, by_id, _grouped(done)
    mine = {network: tuple(kept) for network, kept in groups.items()}
    return done, by_id, {n: kept for n, kept in (had | mine).items() if kept}


def _placed(entries: list[Entry], cam_id: str, entry: Entry | None) -> None:
    """`entries` (in id order) with `cam_id`'s replaced by `entry`, or added; taken out if None."""
    at = bisect_left(entries, cam_id, key=_entry_id)
    there = at < len(entries) and entries[at].id == cam_id
    if entry is None:
        if there:
            del entries[at]
    elif there:
        entries[at] = entry
    else:
        entries.insert(at, entry)


def _carried_matches(old: Snapshot, new: Snapshot, changed: Iterable[str]) -> None:
    """The filtered lists `old` holds, made `new`'s: each changed camera taken out, and put
    back where it now matches (decided by the same code, on a snapshot of that one camera).
    A district's dashboards poll the same few pages while a camera changes every second or
    so: each page after a change was a pass over 75,000 cameras first, with four dashboards
    waiting on it (a filtered page's p99 149 ms at 100,000 cameras, bench/scale.py); now it
    is a cut of a list already made. A list not asked for in _CARRIED_REBUILDS rebuilds is
    dropped."""
    ids = list(changed)
    for key, found in list(old._matched.items()):  # (requests add to it meanwhile)
        unasked = old._unasked.get(key, 0) + 1
        if unasked > _CARRIED_REBUILDS:
            continue
        _, filters, visible, full = key
        kept = list(found)
        for cam_id in ids:
            e = new.by_id.get(cam_id)
            matches = e is not None and Snapshot(-1, (e,)).matching(filters, visible, full)
            _placed(kept, cam_id, e if matches else None)
        new._matched[key] = kept
        new._unasked[key] = unasked


def _changes_worth_applying(cameras: int) -> int:
    """Up to how many changes are applied to a snapshot rather than everything loaded: half
    the cameras (a change costs one record's parse, as a full load's every record does), at
    least MAX_CHANGES, at most what the change log surely still holds. At 100,000 cameras a
    health round's status changes were over 5,000 per rebuild, and the first rounds after an
    import over 20,000: each rebuild then loaded and parsed every record again, seconds of CPU
    while dashboards waited."""
    return min(int(CHANGES_KEPT * 0.9), max(MAX_CHANGES, cameras // 2))


def _entry_id(e: Entry) -> str:
    return e.id


def _entry(
    raw: bytes, shares: dict[str, frozenset[str]], edges: frozenset[str], keep_shared: bool
) -> Entry:
    d = orjson.loads(raw)
    allowed = shares.get(d["network"], frozenset())
    lifecycle = intern(d.get("lifecycle") or Lifecycle.in_service.value)
    haystack = _haystack(d)
    shared_haystack = _haystack({k: v for k, v in d.items() if k in allowed})
    return Entry(  # (the few distinct values of the filter fields held once, not per camera)
        id=d["id"],
        network=intern(d["network"]),
        status=intern(d["status"]),
        category=intern(d["category"]),
        department=intern(d["department"]),
        carrier=intern(d["carrier"]),
        lifecycle=lifecycle,
        image=intern((d.get("image") or {}).get("status") or ""),
        precision_m=_precision_m(d.get("location")),
        haystack=haystack,
        shared_haystack=haystack if shared_haystack == haystack else shared_haystack,
        full=raw,
        shared=shared_view(raw, d, allowed) if keep_shared else None,
        shared_fields=allowed,
        rev=d.get("rev", 1),
        last_seen=d.get("last_seen"),
        target=None if lifecycle in NOT_PROBED_VALUES else probe_target(d, d["network"] in edges),
    )


def probe_target(d: dict[str, Any], edge: bool = False) -> Target | None:
    """Where to probe a stored record: an edge adapter by the camera's ref (it knows where the
    camera is), an in-process one by its ONVIF device service or its stream."""
    ref = (d.get("device") or {}).get("ref")
    address = d.get("address") or ""
    if edge:
        return Target(address=address, ref=ref) if ref else None
    device_uri = (d.get("onvif") or {}).get("device_uri")
    if device_uri:
        port = urlsplit(device_uri).port or 80
        return Target(address=address, port=port, xaddrs=(device_uri,), ref=ref)
    stream = next((p["stream_uri"] for p in d.get("profiles", ()) if p.get("stream_uri")), None)
    if stream:
        return Target(address=address, kind="rtsp", rtsp_uri=stream, ref=ref)
    return None


def _haystack(d: dict[str, Any]) -> str:
    """The lower-cased text `q` searches, from the fields of the record as served."""
    loc = d.get("location") or {}
    text = " ".join(
        str(x)
        for x in (
            d["id"],
            d.get("name"),
            d.get("address"),
            d.get("department"),
            loc.get("address"),
            *d.get("tags", ()),
        )
        if x
    )
    return text.lower()


def _matches(e: Entry, q: ListQuery, visible: tuple[str, ...], full: bool) -> bool:
    haystack = e.haystack if full else e.shared_haystack
    return (
        e.network in visible
        and (q.network is None or e.network == q.network)
        and (q.status is None or (e.status == q.status and e.sees("status", full)))
        and (q.category is None or (e.category == q.category and e.sees("category", full)))
        and (q.department is None or (e.department == q.department and e.sees("department", full)))
        and (q.carrier is None or (e.carrier == q.carrier and e.sees("carrier", full)))
        and _in_lifecycle(e, q.lifecycle, full)
        and (q.image is None or (e.image == q.image and e.sees("image", full)))
        and (q.q is None or q.q.lower() in haystack)
    )


_RETIRED = Lifecycle.decommissioned.value


def _in_lifecycle(e: Entry, wanted: str | None, full: bool) -> bool:
    """Decommissioned cameras are kept, and listed only when asked for by name."""
    if wanted is None:
        return e.lifecycle != _RETIRED
    return e.lifecycle == wanted and e.sees("lifecycle", full)


def encode_cursor(cam_id: str) -> str:
    return base64.urlsafe_b64encode(cam_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """Raises ValueError on anything that is not a cursor this gateway made."""
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    return raw.decode()


def _list_body(snap: Snapshot, who: Principal, settings: Settings, q: ListQuery) -> bytes:
    visible = who.visible(settings)
    matched = snap.matching(q, visible, who.full_records)
    start = bisect_right(matched, decode_cursor(q.cursor), key=_entry_id) if q.cursor else 0
    page = matched[start : start + q.limit]
    last = page[-1].id if page else None
    more = start + len(page) < len(matched)
    head = orjson.dumps(
        {
            "version": snap.version_of(visible),
            "total": len(matched),
            "next_cursor": encode_cursor(last) if more and last else None,
        }
    )
    # One join of every piece: a page of 10,000 cameras is ~16 MB, and joining the items first
    # and then adding head and tail made two more copies of it.
    parts = [head[:-1] + b',"items":[']
    for e in page:
        parts += (e.shown(who.full_records), b",")
    if page:
        parts.pop()
    parts.append(b"]}")
    return b"".join(parts)


def _near_body(
    snap: Snapshot,
    who: Principal,
    settings: Settings,
    q: ListQuery,
    hits: list[tuple[str, float]],
    placed: frozenset[str],
) -> bytes:
    visible = who.visible(settings)
    full = who.full_records
    found = [
        (e, d)
        for cam_id, d in hits
        if (e := snap.by_id.get(cam_id)) is not None and _matches(e, q, visible, full)
    ]
    start = 0
    if q.cursor:  # the page after that camera, in distance order (gone from it: nothing after)
        after = decode_cursor(q.cursor)
        start = next((i + 1 for i, (e, _) in enumerate(found) if e.id == after), len(found))
    page = found[start : start + q.limit]
    more = start + q.limit < len(found)
    unplaced = snap.unplaced(q, visible, full, placed)
    assert q.near is not None
    near = {
        "lat": q.near[0],
        "lon": q.near[1],
        "radius_m": q.radius_m,
        "distance_m": {e.id: round(d, 1) for e, d in page},
        "precision_m": {e.id: e.precision_m for e, _ in page},
        "unplaced": dict(sorted(unplaced.items())),
    }
    head = orjson.dumps(
        {
            "version": snap.version_of(visible),
            "total": len(found),
            "next_cursor": encode_cursor(page[-1][0].id) if more else None,
            "near": near,
        }
    )
    items = b",".join(e.shown(full) for e, _ in page)
    return head[:-1] + b',"items":[' + items + b"]}"


_NEAR_SCAN = 10_000  # nearest cameras read per network before the list's filters apply
_M_PER_DEGREE = 111_320.0


def _precision_m(location: dict[str, Any] | None) -> float | None:
    """How far off the coordinates may be, from how many decimals they were given with (a
    network that rounds them, an inventory with two decimals): half a unit of the last one
    (of the finer of the two: a rounded pair has both short, an exact one rarely)."""
    if not location:
        return None
    decimals = max(_decimals(location["lat"]), _decimals(location["lon"]))
    return round(0.5 * 10.0**-decimals * _M_PER_DEGREE, 1)


def _decimals(value: float) -> int:
    text = repr(float(value))
    return len(text.split(".", 1)[1].rstrip("0")) if "." in text and "e" not in text else 0


def summarize(
    snap: Snapshot, settings: Settings, visible: tuple[str, ...], full: bool = True
) -> Summary:
    """The town's inventory table, recounted from the registry. Non-admins count a field a
    network does not share as unknown ("" or status `unknown`). Decommissioned cameras count
    only in `by_lifecycle`: the rest is the fleet as it stands."""
    granted = [e for e in snap.entries if e.network in visible]

    def value(e: Entry, field: str, unknown: str = "") -> str:
        return str(getattr(e, field)) if e.sees(field, full) else unknown

    lifecycles: dict[str, Counter[str]] = {}
    for e in granted:
        lifecycles.setdefault(value(e, "category"), Counter())[value(e, "lifecycle")] += 1
    seen = [e for e in granted if e.lifecycle != _RETIRED]  # kept, not counted as the fleet

    status = {e.id: value(e, "status", CameraStatus.unknown.value) for e in seen}
    category = {e.id: value(e, "category") for e in seen}
    cells = Counter((e.network, category[e.id], status[e.id]) for e in seen)
    by_category = Counter(category.values())
    online = Counter(category[e.id] for e in seen if status[e.id] == CameraStatus.online)
    inventory = [
        InventoryRow(
            category=c.id,
            category_name=c.name,
            category_name_zh=c.name_zh,
            network=c.network or "",
            department=c.department,
            carrier=c.carrier,
            project=c.project,
            funding_10k_cny=c.funding_10k_cny,
            planned=c.planned,
            registered=by_category[c.id],
            by_lifecycle=dict(sorted(lifecycles.get(c.id, Counter()).items())),
            online=online[c.id],
        )
        for c in settings.categories
        if c.network is None or c.network in visible
    ]
    return Summary(
        version=snap.version_of(visible),
        total=len(seen),
        by_network_category_status=[
            SummaryCell(network=n, category=c, status=CameraStatus(s), count=k)
            for (n, c, s), k in sorted(cells.items())
        ],
        by_department=dict(sorted(Counter(value(e, "department") for e in seen).items())),
        by_carrier=dict(sorted(Counter(value(e, "carrier") for e in seen).items())),
        by_status=dict(sorted(Counter(status.values()).items())),
        inventory=inventory,
    )


def _retrieve(task: asyncio.Task[None]) -> None:
    """A rebuild nobody waited for to the end may fail (Redis away): the next request tries
    again and reports it; this one is only logged."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("catalog rebuild failed", extra={"error": f"{type(exc).__name__}: {exc}"})


def _release(old: list[Any], trim: bool) -> None:
    old.clear()
    if trim:
        memory.trim()


def _freeze_long_lived(collect: bool) -> None:
    """Keep the snapshot (and everything loaded before it) out of the cyclic collector's full
    passes, which otherwise stall a request for tens of milliseconds now and then; plain
    refcounting still frees old snapshots. Cyclic garbage that happened to exist when freezing
    is frozen too, so when `collect` (FullCollections.due) everything is thawed and collected
    first."""
    if collect:
        gc.unfreeze()
        gc.collect()
    gc.freeze()
