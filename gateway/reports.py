"""Accountability (issue 12): availability figures per camera and rolled up, the outage report
(JSON, CSV, XLSX) and a camera's status history, computed from the status changes held by
gateway/history.py and the cameras of the catalog's current snapshot.

Grants and sharing apply as everywhere: only the caller's networks are ever counted, and for a
non-admin a field a network does not share is blank (null in a camera's row, '' as a group's
key); where a network does not share `status`, its cameras' time counts as not observed and
they are in no outage report (their status is not the caller's to know).

"Online but faulty" (issue 15): time online while the quality diagnosis's verdict on the picture
was `faulty` is counted apart (`online_faulty_s`), from the image status changes the history
holds beside the statuses; the outage report lists cameras online with a faulty picture for at
least `min_minutes` too (`image`, `failing`). Only where the caller sees the record's `image`.
"""

from __future__ import annotations

import asyncio
import csv
import io
import math
from bisect import bisect_left, bisect_right
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from sys import intern
from typing import Any, TypeVar

import orjson
from aiohttp import web
from openpyxl import Workbook

from adapters import tasks

from .availability import (
    ABSENT,
    DOWN,
    IMAGE_FAULTY,
    ONLINE,
    STATUSES,
    CameraWindow,
    Rollup,
    camera_window,
    code,
    combine,
    down_since,
    faulty_online,
    image_code,
)
from .catalog import Catalog, Snapshot
from .errors import redis_errors
from .history import HISTORY, CameraLog, StatusHistory, instant, key_id, stream_key, window_bounds
from .keys import CATALOG, METRICS, REDIS, REGISTRY, SETTINGS
from .lifecycle_log import NOT_COUNTED, LifecycleLog, Span, settled
from .models import Camera, CameraStatus, ImageStatus, Maintenance
from .outage_metrics import OutageCollector
from .policy import Principal
from .report_models import (
    PERIOD_SECONDS,
    Availability,
    AvailabilityQuery,
    AvailabilityRow,
    Figures,
    GroupBy,
    HistoryQuery,
    OutageQuery,
    OutageReport,
    OutageRow,
    StatusChange,
    StatusHistoryPage,
)
from .settings import Settings

T = TypeVar("T")

# Cameras not expected to answer (docs/lifecycle.md): not counted, not reported; over a window,
# by their lifecycle at each moment of it (gateway/lifecycle_log.py).
NOT_IN_SERVICE = NOT_COUNTED
_IN_THREAD = 20_000  # cameras from which a computation runs in a worker thread
_HISTORY_PER_CAMERA = 200  # changes listed per camera in the outage report


@dataclass(frozen=True, slots=True)
class Attrs:
    """What the accountability figures need of a camera's record."""

    id: str
    network: str
    name: str
    category: str
    department: str
    carrier: str
    project: str
    status: int  # availability.py code
    last_error: str
    created_at: float | None
    in_service: bool
    shared: frozenset[str]
    maintenance: dict[str, Any] | None = None  # its own contact, as stored
    lifecycle: str = "in-service"
    lifecycle_since: float | None = None
    image: int = ABSENT  # availability.image_code of the record's verdict
    image_since: float | None = None
    failing: str = ""  # the failing checks, comma-separated

    @property
    def stamp(self) -> tuple[str, float | None]:
        return self.lifecycle, self.lifecycle_since

    def shows(self, field: str, who: Principal) -> bool:
        return who.full_records or field in self.shared

    def value(self, field: str, who: Principal) -> str | None:
        """The field as the caller may see it (None: not shared with them)."""
        return str(getattr(self, field)) if self.shows(field, who) else None


def _seconds(value: object) -> float | None:
    try:
        return datetime.fromisoformat(value).timestamp() if isinstance(value, str) else None
    except ValueError:
        return None


def _attrs(raw: bytes, shared: frozenset[str]) -> Attrs:
    d = orjson.loads(raw)
    lifecycle = intern(d.get("lifecycle") or "in-service")
    image = d.get("image") or {}
    return Attrs(  # (the few distinct values of the grouping fields held once, not per camera)
        id=d["id"],
        network=intern(d["network"]),
        name=d.get("name") or "",
        category=intern(d.get("category") or ""),
        department=intern(d.get("department") or ""),
        carrier=intern(d.get("carrier") or ""),
        project=intern(d.get("project") or ""),
        status=code(d.get("status") or CameraStatus.unknown.value),
        last_error=d.get("last_error") or "",
        created_at=_seconds(d.get("created_at")),
        in_service=lifecycle not in NOT_IN_SERVICE,
        shared=shared,
        maintenance=d.get("maintenance"),
        lifecycle=lifecycle,
        lifecycle_since=_seconds(d.get("lifecycle_since")),
        image=image_code(image.get("status")),
        image_since=_seconds(image.get("since")),
        failing=",".join(f.get("check", "") for f in image.get("failing") or ()),
    )


class AttrsCache:
    """Each camera's Attrs, parsed once per change of its record (not per snapshot: a status
    change makes a new snapshot, and 100,000 records take a second to parse). Built in a
    worker thread for large fleets and read on the loop (the metrics): the snapshot and its
    list are swapped in as one value."""

    def __init__(self) -> None:
        self._by_id: dict[str, tuple[bytes, Attrs]] = {}
        # (the snapshot's version, not the snapshot: holding it kept a district's superseded
        # entries, and their records, alive until the next build)
        self._held: tuple[int | None, list[Attrs]] = (None, [])

    def of(self, snap: Snapshot) -> list[Attrs] | None:
        held_version, held = self._held
        return held if snap.version == held_version else None

    def build(self, snap: Snapshot) -> list[Attrs]:
        held = self.of(snap)
        if held is not None:
            return held
        old, new = self._by_id, {}
        out = []
        for e in snap.entries:
            known = old.get(e.id)
            if known is None or known[1].shared != e.shared_fields:
                known = (e.full, _attrs(e.full, e.shared_fields))
            elif known[0] is not e.full:
                # The catalog's own bytes are kept, never an equal older copy (after a full
                # load every record is a new object: 170 MB twice at 100,000 cameras).
                same = known[0] == e.full
                known = (e.full, known[1] if same else _attrs(e.full, e.shared_fields))
            new[e.id] = known
            out.append(known[1])
        self._by_id, self._held = new, (snap.version, out)
        return out


class Accountability:
    def __init__(
        self,
        catalog: Catalog,
        history: StatusHistory,
        settings: Settings,
        lifecycle: LifecycleLog | None = None,
    ) -> None:
        self.catalog = catalog
        self.history = history
        self.settings = settings
        self.attrs = AttrsCache()
        prefix = settings.redis.prefix
        self.lifecycle = lifecycle or LifecycleLog(
            history.redis, lambda cam_id: f"{prefix}:lifecycle:{cam_id}"
        )

    async def cameras(self) -> list[Attrs]:
        snap = await self.catalog.current()
        held = self.attrs.of(snap)
        if held is not None:
            return held
        if len(snap.entries) >= _IN_THREAD:
            return await asyncio.to_thread(self.attrs.build, snap)
        return self.attrs.build(snap)

    async def _compute(self, cameras: int, work: Callable[[], T]) -> T:
        """Run `work` with the history up to date and unchanged, off the event loop when large."""
        async with self.history.reading():
            if cameras >= _IN_THREAD:
                return await asyncio.to_thread(work)
            return work()

    async def _counted_cameras(
        self, cams: list[Attrs], networks: frozenset[str], start: float
    ) -> tuple[list[Attrs], set[str]]:
        """The cameras of `networks` that may count in a window from `start`, and the ids of
        those in service throughout it (most): the others' lifecycle changed within it (they
        may have been in service for part of it), and their lifecycle histories are read."""
        steady: set[str] = set()
        chosen = []
        for a in cams:
            if a.network not in networks:
                continue
            if not settled(a.lifecycle_since, a.created_at, start):
                chosen.append(a)
            elif a.in_service:
                steady.add(a.id)
                chosen.append(a)
        await self._read_lifecycles([a for a in chosen if a.id not in steady], start)
        return chosen, steady

    async def _read_lifecycles(self, cams: list[Attrs], start: float) -> None:
        """The lifecycle histories of the cameras whose lifecycle changed after `start`."""
        wanted = [
            (a.id, a.stamp) for a in cams if not settled(a.lifecycle_since, a.created_at, start)
        ]
        if wanted:
            with redis_errors():
                await self.lifecycle.read(wanted)

    def spans(self, a: Attrs, start: float, end: float) -> list[Span]:
        """The parts of [start, end) in which the camera's lifecycle was one that counts."""
        return self.lifecycle.spans(a.id, a.stamp, a.created_at, start, end)

    def counted_networks(self, who: Principal, network: str | None) -> list[str]:
        return [n for n in who.visible(self.settings) if network is None or n == network]

    # -- availability ----------------------------------------------------------------------

    async def availability(self, who: Principal, q: AvailabilityQuery) -> Availability:
        cams = await self.cameras()
        now = self.history.now()
        end = q.end.timestamp() if q.end is not None else now
        start = end - PERIOD_SECONDS[q.period]
        networks = self.counted_networks(who, q.network)
        counted = frozenset(networks)
        chosen, steady = await self._counted_cameras(cams, counted, start)

        def work() -> Availability:
            until = max(start, min(end, now))
            shares = self._shares(who, networks)
            by_camera = q.by is GroupBy.camera
            field = q.by.value
            nothing = CameraWindow(start, until)
            groups: dict[str, Rollup] = {}
            rows: list[AvailabilityRow] = []
            for a in chosen:
                if a.id in steady:
                    spans = None  # the whole window
                else:
                    spans = self.spans(a, start, end)
                    if not spans:
                        continue  # not in service at any time of the window
                shared = shares[a.network]
                if "status" not in shared:
                    w = nothing
                elif spans is None:
                    w = self._status_window(a, start, until, "image" in shared)
                else:
                    w = self._window(a, start, until, spans, "image" in shared)
                if by_camera:
                    rows.append(_camera_row(a, w, shared))
                    key = ""
                elif field == "network":
                    key = a.network
                else:
                    key = getattr(a, field) if field in shared else ""
                group = groups.get(key)
                if group is None:
                    group = groups[key] = Rollup()
                group.add(w)
            if not by_camera:
                rows = [_group_row(k, g) for k, g in groups.items()]
            rows.sort(key=_worst_first)
            return Availability.model_construct(
                period=q.period,
                by=q.by,
                start=instant(start),
                end=instant(end),
                observed_until=instant(until),
                networks=networks,
                total=_figures(_total(groups.values())),
                rows_total=len(rows),
                rows=rows[: q.limit],
            )

        return await self._compute(len(chosen), work)

    def _shares(self, who: Principal, networks: Iterable[str]) -> dict[str, frozenset[str]]:
        """Per network, the fields the caller sees (admins: every field)."""
        every = frozenset(Camera.model_fields)
        return {
            n: every
            if who.full_records
            else frozenset(self.settings.network_by_id[n].sharing.share)
            for n in networks
        }

    def window(self, a: Attrs, who: Principal, start: float, end: float) -> CameraWindow:
        """One camera's figures over [start, end) (nothing observed where the caller may not
        see its status)."""
        if not a.shows("status", who):
            return CameraWindow(start, end)
        return self._window(a, start, end)

    def _window(
        self,
        a: Attrs,
        start: float,
        end: float,
        spans: list[Span] | None = None,
        image: bool = False,
    ) -> CameraWindow:
        """The camera's figures over the parts of [start, end) its lifecycle counts (`spans`,
        computed when not given; they may reach past `end`)."""
        if spans is None:
            spans = self.spans(a, start, end)
        parts = [(max(s, start), min(e, end)) for s, e in spans if min(e, end) > max(s, start)]
        if parts == [(start, end)]:
            return self._status_window(a, start, end, image)
        return combine((self._status_window(a, s, e, image) for s, e in parts), start, end)

    def _status_window(
        self, a: Attrs, start: float, end: float, image: bool = False
    ) -> CameraWindow:
        """Its figures over [start, end); with `image`, online-but-faulty time counted apart."""
        cam = self.history.camera(a.network, a.id)
        begin = start
        if cam is None or not cam.keys:
            if a.created_at is not None and a.created_at > start:
                begin = min(a.created_at, end)  # not observed before it was registered
            w = camera_window(a.status, (), (), begin, end)
            if image:
                self._faulty(a, w, a.status, (), (), 0, 0, begin, end)
            return w
        lo, hi = window_bounds(cam, start, end)
        initial = cam.to[lo - 1] if lo else cam.was[0]
        if lo == 0 and initial != ABSENT and a.created_at is not None and a.created_at > start:
            begin = min(a.created_at, cam.times[0], end)  # registered before its history began
        w = camera_window(initial, cam.times, cam.to, begin, end, lo, hi)
        if image:
            self._faulty(a, w, initial, cam.times, cam.to, lo, hi, begin, end)
        return w

    def _faulty(
        self,
        a: Attrs,
        w: CameraWindow,
        initial: int,
        times: Sequence[float],
        statuses: Sequence[int],
        lo: int,
        hi: int,
        start: float,
        end: float,
    ) -> None:
        """Move the window's online-but-faulty time apart: the camera's image changes held (the
        record's verdict throughout when none is held)."""
        if w.seconds[ONLINE] <= 0:
            return
        img = self.history.image(a.network, a.id)
        if img is None or not img.keys:
            if a.image == IMAGE_FAULTY:
                w.mark_faulty(
                    faulty_online(
                        initial, times, statuses, lo, hi, IMAGE_FAULTY, (), (), 0, 0, start, end
                    )
                )
            return
        ilo, ihi = window_bounds(img, start, end)
        before = img.to[ilo - 1] if ilo else img.was[0]
        if before != IMAGE_FAULTY and IMAGE_FAULTY not in img.to[ilo:ihi]:
            return  # (most cameras: never faulty in the window)
        w.mark_faulty(
            faulty_online(
                initial, times, statuses, lo, hi, before, img.times, img.to, ilo, ihi, start, end
            )
        )

    # -- the outage report -----------------------------------------------------------------

    async def outages(self, who: Principal, q: OutageQuery) -> OutageReport:
        cams = await self.cameras()
        networks = self.counted_networks(who, q.network)
        counted = frozenset(networks)
        chosen = [
            a for a in cams if a.network in counted and a.in_service and a.shows("status", who)
        ]
        # Every camera whose lifecycle ever changed: its run of being down may have begun
        # before it was last put back in service (then it counts from then).
        await self._read_lifecycles(chosen, -math.inf)

        def work() -> OutageReport:
            now = self.history.now()
            recent = now - q.history_days * 86_400
            rows = []
            for a in chosen:
                row = self._outage_row(a, who, now, recent, q.min_minutes * 60)
                if row is not None:
                    rows.append(row)
            rows.sort(key=lambda r: (-r.down_s, r.id))
            return OutageReport(
                generated_at=instant(now),
                min_minutes=q.min_minutes,
                history_days=q.history_days,
                networks=networks,
                total=len(rows),
                items=rows,
            )

        return await self._compute(len(chosen), work)

    def _outage_row(
        self, a: Attrs, who: Principal, now: float, recent: float, min_s: float
    ) -> OutageRow | None:
        """The camera's row if it is down now, or online with a faulty picture (where the
        caller sees `image`), and has been for at least `min_s`."""
        cam = self.history.camera(a.network, a.id)
        image = a.shows("image", who)
        since: float | None = None
        if cam is not None and cam.keys:
            n = bisect_right(cam.times, now)  # as of now: what the clock says has happened
            current = cam.to[n - 1] if n else cam.was[0]
            if current in DOWN:
                _, since = down_since(cam.times, cam.to, cam.was[0], n)
        else:
            current = a.status
        if current in DOWN:
            exact = since is not None
            if since is None:
                since = self.held_since(a, now)
        elif current == ONLINE and image:
            faulty = self._faulty_since(a, cam, now)
            if faulty is None:
                return None
            since, exact = faulty
        else:
            return None
        spans = self.spans(a, since, now)
        if spans and spans[-1][0] > since:  # back in service since, down all along: from then
            since, exact = spans[-1][0], True
        down_s = max(0.0, now - since)
        if down_s < min_s:
            return None
        recent_changes, _ = self.changes(
            cam, a, who, since=recent, until=now, limit=_HISTORY_PER_CAMERA
        )
        return OutageRow(
            id=a.id,
            network=a.network,
            name=a.value("name", who),
            category=a.value("category", who),
            status=_status(current),
            since=instant(since),
            since_exact=exact,
            down_s=down_s,
            department=a.value("department", who),
            carrier=a.value("carrier", who),
            project=a.value("project", who),
            maintenance=self.contact(a, who),
            last_error=a.value("last_error", who),
            outages_recent=self.window(a, who, min(recent, now), now).outages,
            history=recent_changes,
            image=ImageStatus(_IMAGE[a.image]) if a.image != ABSENT and image else None,
            failing=(a.failing or None) if image else None,
        )

    def _faulty_since(
        self, a: Attrs, cam: CameraLog | None, now: float
    ) -> tuple[float, bool] | None:
        """Since when an online camera has been online with a faulty picture (and whether that
        is exact), or None when its picture is not faulty now."""
        img = self.history.image(a.network, a.id)
        faulty_from: float | None = None
        if img is not None and img.keys:
            n = bisect_right(img.times, now)
            if (img.to[n - 1] if n else img.was[0]) != IMAGE_FAULTY:
                return None
            if n:  # (a verdict's change is written only when its status changes)
                faulty_from = img.times[n - 1]
        elif a.image != IMAGE_FAULTY:
            return None
        if faulty_from is None:  # faulty before the oldest change held: the record says since
            faulty_from = a.image_since if a.image_since is not None else self.held_since(a, now)
            faulty_exact = False
        else:
            faulty_exact = True
        online_from, online_exact = self.held_since(a, now), False
        if cam is not None and cam.keys:
            n = bisect_right(cam.times, now)
            if n:
                online_from, online_exact = cam.times[n - 1], True
        if online_from > faulty_from:
            return online_from, online_exact
        return faulty_from, faulty_exact

    def contact(self, a: Attrs, who: Principal) -> Maintenance | None:
        """Who fixes it: its own contact, else its category's and carrier's from the config
        (docs/lifecycle.md); shared like the record's own field."""
        if not a.shows("maintenance", who):
            return None
        if a.maintenance:
            return Maintenance.model_validate(a.maintenance)
        return self.settings.maintenance_default(a.category, a.carrier)

    def held_since(self, a: Attrs, now: float) -> float:
        """How far back the camera's status is known to have held: since the oldest change its
        network's history holds (nothing changed it since), or its registration if later."""
        oldest = self.history.retained_since(a.network)
        bounds = [t for t in (oldest, a.created_at) if t is not None]
        return min(max(bounds), now) if bounds else now

    # -- a camera's history ----------------------------------------------------------------

    def changes(
        self,
        cam: CameraLog | None,
        a: Attrs,
        who: Principal,
        *,
        before: int | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
    ) -> tuple[list[StatusChange], int | None]:
        """The camera's changes newest first: those before stream key `before`, at or after
        `since`, at or before `until`; at most `limit`, and the key to continue from (None:
        no more)."""
        if cam is None or not a.shows("status", who):
            return [], None
        errors = a.shows("last_error", who)
        hi = len(cam.keys) if before is None else bisect_left(cam.keys, before)
        if until is not None:
            hi = min(hi, bisect_right(cam.times, until))
        out: list[StatusChange] = []
        i = hi
        while i > 0 and len(out) < limit:
            i -= 1
            at = cam.times[i]
            if since is not None and at < since:
                return out, None
            was = cam.was[i]
            out.append(
                StatusChange(
                    at=instant(at),
                    previous=_status(was) if was != ABSENT else None,
                    status=_status(cam.to[i]),
                    error=self.history.error_text(cam.errors[i]) if errors else None,
                )
            )
        more = i > 0 and (since is None or cam.times[i - 1] >= since)
        return out, (cam.keys[i] if more else None)

    async def camera_history(
        self, who: Principal, raw: bytes, q: HistoryQuery
    ) -> StatusHistoryPage:
        data = orjson.loads(raw)
        network = self.settings.network_by_id.get(data["network"])
        shared = frozenset(network.sharing.share) if network is not None else frozenset()
        a = _attrs(raw, shared)
        async with self.history.reading():
            cam = self.history.camera(a.network, a.id)
            before = stream_key(q.cursor) if q.cursor else None
            items, more = self.changes(cam, a, who, before=before, limit=q.limit)
            oldest = self.history.retained_since(a.network)
        return StatusHistoryPage(
            id=a.id,
            network=a.network,
            status=_status(a.status) if a.shows("status", who) else None,
            retained_since=instant(oldest) if oldest is not None else None,
            items=items,
            next_cursor=key_id(more) if more is not None else None,
        )


def _status(status: int) -> CameraStatus:
    return CameraStatus(STATUSES[status])


_IMAGE = ("ok", "suspect", "faulty")


def _numbers(
    cameras: int, seconds: list[float], outages: int, longest: float, faulty: float
) -> dict[str, Any]:
    observed = seconds[0] + seconds[1] + seconds[2] + faulty
    return {
        "cameras": cameras,
        "observed_s": observed,
        "online_s": seconds[0],
        "online_faulty_s": faulty,
        "degraded_s": seconds[1],
        "outage_total_s": seconds[2],
        "unknown_s": seconds[3],
        "share_online": seconds[0] / observed if observed > 0 else None,
        "outages": outages,
        "outage_longest_s": longest,
    }


def _total(groups: Iterable[Rollup]) -> Rollup:
    total = Rollup()
    for g in groups:
        total.cameras += g.cameras
        for i in range(4):
            total.seconds[i] += g.seconds[i]
        total.outages += g.outages
        total.outage_longest_s = max(total.outage_longest_s, g.outage_longest_s)
        total.online_faulty_s += g.online_faulty_s
    return total


# Rows are built without validation (model_construct): every value is computed here, and at
# 100,000 cameras validating each row would take longer than computing it.


def _figures(g: Rollup) -> Figures:
    numbers = _numbers(g.cameras, g.seconds, g.outages, g.outage_longest_s, g.online_faulty_s)
    return Figures.model_construct(**numbers)


def _group_row(key: str, g: Rollup) -> AvailabilityRow:
    numbers = _numbers(g.cameras, g.seconds, g.outages, g.outage_longest_s, g.online_faulty_s)
    return AvailabilityRow.model_construct(
        key=key, network=None, department=None, carrier=None, project=None, **numbers
    )


def _camera_row(a: Attrs, w: CameraWindow, shared: frozenset[str]) -> AvailabilityRow:
    return AvailabilityRow.model_construct(
        key=a.id,
        network=a.network,
        department=a.department if "department" in shared else None,
        carrier=a.carrier if "carrier" in shared else None,
        project=a.project if "project" in shared else None,
        **_numbers(1, w.seconds, w.outages, w.outage_longest_s, w.online_faulty_s),
    )


def _worst_first(row: AvailabilityRow) -> tuple[bool, float, str]:
    share = row.share_online
    return (share is None, share if share is not None else 0.0, row.key)


# -- formats of the outage report ----------------------------------------------------------------

CSV_TYPE = "text/csv"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
COLUMNS = (
    "id",
    "network",
    "name",
    "category",
    "status",
    "since",
    "since_exact",
    "down_s",
    "department",
    "carrier",
    "project",
    "maintenance",
    "last_error",
    "outages_recent",
    "image",
    "failing",
)
HISTORY_COLUMNS = ("id", "at", "previous", "status", "error")


def contact_text(m: Maintenance) -> str:
    """A maintenance contact in one cell: `China Unicom NOC, duty desk, +86 21 ... (confirmed
    2026-11-01)`."""
    parts = ", ".join(p for p in (m.organisation, m.contact, m.phone or "") if p)
    return f"{parts} (confirmed {m.confirmed_on.isoformat()})" if m.confirmed_on else parts


def history_text(changes: Iterable[StatusChange]) -> str:
    """A camera's changes in one cell: `2026-03-01T08:00:00Z online>offline; ...`."""
    return "; ".join(
        f"{_iso(c.at)} {c.previous.value if c.previous else ''}>{c.status.value}" for c in changes
    )


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _cell(value: object) -> object:
    if isinstance(value, Maintenance):
        return contact_text(value)
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else value


def report_csv(report: OutageReport) -> bytes:
    """UTF-8 with a BOM (Excel then reads it as UTF-8), a header row, one camera per row, its
    changes in the last column (history_text)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([*COLUMNS, "history"])
    for row in report.items:
        writer.writerow([*(_cell(getattr(row, c)) for c in COLUMNS), history_text(row.history)])
    return "\ufeff".encode() + out.getvalue().encode()


def excel_time(t: datetime) -> datetime:
    """Excel has no time zones (UTC, as the header says) and keeps milliseconds."""
    t = t.astimezone(UTC).replace(tzinfo=None)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def report_xlsx(report: OutageReport) -> bytes:
    """Two sheets: `outages` (a header row, one camera per row, typed cells: times as Excel
    date-times in UTC, seconds as numbers) and `history` (one change per row)."""
    wb = Workbook(write_only=True)
    sheet = wb.create_sheet("outages")
    sheet.append([c if c != "since" else "since (UTC)" for c in COLUMNS])
    for row in report.items:
        values: list[object] = []
        for c in COLUMNS:
            v = getattr(row, c)
            if isinstance(v, datetime):
                v = excel_time(v)
            elif isinstance(v, Enum):
                v = v.value
            elif isinstance(v, Maintenance):
                v = contact_text(v)
            values.append(v)
        sheet.append(values)
    changes = wb.create_sheet("history")
    changes.append([c if c != "at" else "at (UTC)" for c in HISTORY_COLUMNS])
    for row in report.items:
        for change in row.history:
            changes.append(
                [
                    row.id,
                    excel_time(change.at),
                    change.previous.value if change.previous else None,
                    change.status.value,
                    change.error,
                ]
            )
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


# -- wiring ---------------------------------------------------------------------------------------

ACCOUNTABILITY = web.AppKey("accountability", Accountability)


async def accountability_context(app: web.Application) -> AsyncIterator[None]:
    """The status history (read from start-up, refreshed in the background), the service the
    endpoints use, and the outage metrics' collector."""
    history = StatusHistory(app[REDIS], app[SETTINGS], app[REGISTRY].keys.status_history)
    lifecycle = LifecycleLog(app[REDIS], app[REGISTRY].keys.lifecycle)
    service = Accountability(app[CATALOG], history, app[SETTINGS], lifecycle)
    app[HISTORY] = history
    app[ACCOUNTABILITY] = service
    app[METRICS].registry.register(OutageCollector(service))
    task = asyncio.create_task(history.run(), name="camgw-status-history")
    yield
    await tasks.stop(task)
