"""Scheduled video quality diagnosis: every camera of a network judged once per interval.

Per network whose `[networks.quality]` is enabled (a network's owner opts out with `enabled =
false`), a round is due every `interval_s` (field `quality` of the network's schedule hash,
gateway/schedule.py; the first one interval after start) and runs under the lease
`quality:{network}`, so one replica at a time does it; its record writes carry the lease's fence.

A round takes each camera in service and not offline, 4 pictures in flight:
- its picture through the snapshot path: `SnapshotService.frame` for an in-process network
  (the shared cache, single flight, minimum interval and circuit breaker operators' requests
  use); an edge network's adapter judges the picture itself and only its verdict crosses
  (`_judged_at_edge`, docs/quality.md "Edge networks"); paced by the network's
  `max_per_minute` through the same Redis rate limiter as operators, the round being its own
  caller (`quality#quality-{network}`); every read audited as `camera.snapshot`
  with the reason "quality diagnosis" and the verdict;
- judged in the diagnosis worker: one process, OpenCV on one thread, never the event loop
  (adapters/quality/job.py), against the camera's accepted reference frame of the period (day
  or night, by the network's clock) if it has one, and the signature of its previous picture;
- the verdict on the record (`image`), written only when it changed: a failing check makes the
  camera suspect, `confirm_rounds` failing rounds in a row faulty (the count stops there, so a
  camera that stays faulty is not rewritten every round); counted in Prometheus per check,
  department and carrier. A round's verdicts are written together, every 5 s or 500 verdicts
  and at its end (`_RoundVerdicts`), so that a first round over a town moves the camera list
  a few times a minute rather than with every camera.

Each change of a camera's image status (ok, suspect, faulty) is also added to
`<prefix>:history:image:{network}` (as the status history: id, from, to, at, error; trimmed
alike), so that availability and the outage report count "online but faulty" time
(gateway/history.py, gateway/reports.py).

Redis: `<prefix>:quality:sig:{network}` hash id -> "digest-hex taken_at" (the frozen check's
memory); `<prefix>:quality:ref:{id}:day` and `:night` the accepted reference JPEGs.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter
from redis.asyncio import Redis

from adapters import tasks, wire
from adapters.base import AdapterError, AdapterUnavailable, SnapshotRefused
from adapters.imaging import render
from adapters.quality.checks import Check, Level, Signature
from adapters.quality.diagnose import CheckResult, Diagnosis
from adapters.quality.job import JobResult, init_worker, judge
from adapters.quality.thresholds import QualityConfig

from .audit import AuditEvent, AuditLog
from .catalog import Catalog
from .edge import EdgeAdapter
from .errors import (
    BadGateway,
    CamgwError,
    StaleLease,
    TooManyRequests,
    Unavailable,
    redis_errors,
)
from .history import image_history_key
from .keys import AUDIT, CATALOG, DISCOVERY, METRICS, REDIS, REGISTRY, SETTINGS, SNAPSHOTS
from .lease import Fence, Leases
from .models import (
    NOT_PROBED_VALUES,
    Camera,
    CameraStatus,
    ImageFault,
    ImageQuality,
    ImageStatus,
    Role,
)
from .policy import Principal
from .quality_refs import ReferenceStore, evidence_key
from .registry import Registry
from .schedule import Schedule
from .settings import NetworkConfig, Settings, SharingPolicy
from .snapshots import Frame, SnapshotService, _http_error

log = logging.getLogger(__name__)

WORK = "quality"
REASON = "quality diagnosis"
MAX_REFERENCE_BYTES = 4 << 20
# The evidence thumbnail: enough to see blur, a cover or a turned camera, ~10-20 KB.
EVIDENCE_WIDTH = 320
EVIDENCE_QUALITY = 60


def evidence_ttl(interval_s: float) -> int:
    """Seconds a thumbnail is kept: two rounds (each failing round writes it afresh), at least
    a day, so that the owner told of a fault on a Friday still sees it on Saturday."""
    return int(max(2 * interval_s, 86_400))


@dataclass(frozen=True, slots=True)
class Evidence:
    jpeg: bytes
    taken_at: float  # the picture's capture time (epoch seconds)
    status: str  # the verdict it made: suspect or faulty
    failing: str  # its failing checks, comma-separated
    width: int


_FETCHES = 4  # pictures in flight per round (the worker judges one at a time)
_STATUS = {
    Level.ok: ImageStatus.ok,
    Level.suspect: ImageStatus.suspect,
    Level.faulty: ImageStatus.faulty,
}


def verdict(
    diagnosis: Diagnosis, before: ImageQuality | None, confirm: int, night: bool, now: datetime
) -> ImageQuality:
    """The record's view of a diagnosis: faulty only after `confirm` failing rounds in a row
    (a passing truck is not a covered lens), suspect until then."""
    rounds = min((before.failing_rounds if before else 0) + 1, confirm) if diagnosis.failing else 0
    status = _STATUS[diagnosis.status]
    if status is ImageStatus.faulty and rounds < confirm:
        status = ImageStatus.suspect
    failing = [
        ImageFault(check=r.check.value, level=_STATUS[r.level], measures=r.measures)
        for r in diagnosis.results
        if r.level is not Level.ok
    ]
    since = now
    if before is not None and before.status is status and _same(before.failing, failing):
        since = before.since
    reference = any(r.measures.get("reference") == 1.0 for r in diagnosis.results)
    return ImageQuality(
        status=status,
        failing=failing,
        since=since,
        night=night,
        failing_rounds=rounds,
        reference=reference,
    )


def _same(a: list[ImageFault], b: list[ImageFault]) -> bool:
    return [(f.check, f.level) for f in a] == [(f.check, f.level) for f in b]


def _changed(before: ImageQuality | None, after: ImageQuality) -> bool:
    if before is None:
        return True
    keep = {"since", "failing"}
    return before.model_dump(exclude=keep) != after.model_dump(exclude=keep) or not _same(
        before.failing, after.failing
    )


class QualityService:
    def __init__(
        self,
        settings: Settings,
        redis: Redis,
        registry: Registry,
        catalog: Catalog,
        snapshots: SnapshotService,
        audit: AuditLog,
        leases: Leases,
        counters: QualityCounters,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.registry = registry
        self.catalog = catalog
        self.snapshots = snapshots
        self.audit = audit
        self.leases = leases
        self.counters = counters
        self.schedule = Schedule(redis, settings.redis.prefix)
        self._clock = clock
        self._sleep = sleep
        self._pool: ProcessPoolExecutor | None = None
        self.rounds: dict[str, int] = {}

    # -- the worker ---------------------------------------------------------------------------

    def _worker(self) -> ProcessPoolExecutor:
        """Started at the first diagnosis, not with the gateway (its imports take a second)."""
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),  # no fork of a running loop
                initializer=init_worker,
            )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    # -- references ---------------------------------------------------------------------------

    def _ref_key(self, cam_id: str, night: bool) -> str:
        return f"{self.settings.redis.prefix}:quality:ref:{cam_id}:{'night' if night else 'day'}"

    def _sig_key(self, network: str) -> str:
        return f"{self.settings.redis.prefix}:quality:sig:{network}"

    async def accept_reference(self, cam_id: str, jpeg: bytes, night: bool) -> None:
        """The picture this camera should show by day (or by night: a street at night is
        another picture), as an admin accepted it: blur, occlusion and displacement are judged
        against it from the next round of that period on."""
        if not jpeg or len(jpeg) > MAX_REFERENCE_BYTES:
            raise ValueError(f"a reference is 1 byte to {MAX_REFERENCE_BYTES:,} bytes")
        with redis_errors():
            await self.redis.set(self._ref_key(cam_id, night), jpeg)

    def is_night(self, network: str) -> bool:
        """Whether the network's night limits and references apply now (its local clock)."""
        now = datetime.fromtimestamp(self._clock(), UTC)
        return self.settings.network_by_id[network].quality.is_night(now)

    async def accept_current(self, camera: Camera) -> tuple[Frame, bool]:
        """The camera's picture now, as its reference for the period it is now (day or
        night, returned); CamgwError when there is no picture to be had."""
        net = self.settings.network_by_id[camera.network]
        frame = await self._picture(camera, net, self.principal(net.id))
        night = self.is_night(net.id)
        await self.accept_reference(camera.id, frame.jpeg, night)
        return frame, night

    # -- the schedule -------------------------------------------------------------------------

    async def background(self) -> AsyncIterator[None]:
        """Cleanup-context body: one loop per network that is diagnosed."""
        nets = [n.id for n in self.settings.networks if n.quality.enabled]
        loops = [asyncio.create_task(self._loop(n), name=f"quality-{n}") for n in nets]
        yield
        # (tasks.stop cancels again: one cancel can be lost in redis-py's wait_for on 3.11)
        await tasks.stop(*loops)
        await asyncio.to_thread(self.close)

    async def _loop(self, network: str) -> None:
        while True:
            try:
                wait = await self.tick(network)
            except asyncio.CancelledError:
                raise
            except Exception:  # one network's trouble never ends its loop, nor the others'
                log.exception("quality round error", extra={"network": network})
                wait = self.leases.ttl_s / 3
            await self._sleep(wait)

    async def tick(self, network: str) -> float:
        """Run the network's round if it is due and this replica takes its lease; returns the
        seconds until it should look again."""
        cfg = self.settings.network_by_id[network].quality
        if not cfg.enabled:
            return 3600.0
        key = self.schedule.key(network)
        with redis_errors():
            await self.redis.hsetnx(key, WORK, repr(self._clock() + cfg.interval_s))
            due = float(await self.redis.hget(key, WORK) or 0)
        if due <= self._clock():
            async with self.leases.held(f"{WORK}:{network}") as fence:
                if fence is not None:
                    with redis_errors():
                        due = float(await self.redis.hget(key, WORK) or 0)
                    if due <= self._clock():  # (another replica may have just done it)
                        await self.run_round(network, fence)
                        with redis_errors():
                            await self.redis.hset(key, WORK, repr(self._clock() + cfg.interval_s))
            with redis_errors():
                due = float(await self.redis.hget(key, WORK) or 0)
        return min(max(0.05, due - self._clock()), self.leases.ttl_s / 3)

    # -- a round ------------------------------------------------------------------------------

    async def run_round(self, network: str, fence: Fence | None = None) -> int:
        """Diagnose every camera of the network once; returns how many records changed."""
        net = self.settings.network_by_id[network]
        if not net.quality.enabled:
            return 0
        snap = await self.catalog.current()
        # Filtered on the catalog's entries and parsed one at a time as the round reaches them
        # (a district's network is 100,000 records: not all parsed at once on the event loop).
        entries = [
            e
            for e in snap.entries
            if e.network == network
            and e.status != CameraStatus.offline.value
            and e.lifecycle not in NOT_PROBED_VALUES
        ]
        queue = iter(entries)
        verdicts = _RoundVerdicts(self, fence, self._clock())
        skipped = 0

        async def worker() -> None:
            nonlocal skipped
            for entry in queue:
                camera = self.catalog.parsed(entry)
                if camera.gb28181 is not None:
                    # Each picture of a GB/T 28181 channel is a command to the lower platform
                    # (the police's): not sent on a schedule (docs/quality.md).
                    skipped += 1
                    continue
                after = await self.diagnose_camera(camera, net)
                if after is not None:
                    await verdicts.add(camera.id, after)

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(_FETCHES, len(entries))):
                    group.create_task(worker())
        except* StaleLease as lost:
            raise lost.exceptions[0] from None
        await verdicts.flush()
        self.rounds[network] = self.rounds.get(network, 0) + 1
        log.info(
            "quality round",
            extra={"network": network, "cameras": len(entries) - skipped, "skipped": skipped},
        )
        return verdicts.changed

    def principal(self, network: str) -> Principal:
        return Principal(f"{WORK}-{network}", WORK, Role.operator, frozenset({network}))

    async def diagnose_camera(self, camera: Camera, net: NetworkConfig) -> ImageQuality | None:
        """One camera: picture, verdict, audit, counts; the verdict for its record (written by
        the round, `_RoundVerdicts`). A picture that could not be had is audited, and None
        leaves the record as it was (whether the camera answers is the health round's
        business)."""
        who = self.principal(net.id)
        cfg = net.quality
        pace = net.sharing.model_copy(update={"rate_limit_per_minute": cfg.max_per_minute})
        started = time.perf_counter()
        if net.mode == "edge":  # judged in the network's adapter: only the verdict leaves
            return await self._judged_at_edge(camera, net, who, pace, started)
        try:
            await self._within_rate(who, net.id, pace)
            frame = await self._picture(camera, net, who)
        except CamgwError as exc:
            self.counters.diagnoses.labels(net.id, "unreachable").inc()
            await self._audit(camera, who, started, exc.status, "error", exc.audit_detail, {})
            return None
        now = datetime.fromtimestamp(self._clock(), UTC)
        night = cfg.is_night(now)
        with redis_errors():
            raw_ref = await self.redis.get(self._ref_key(camera.id, night))
            raw_sig = await self.redis.hget(self._sig_key(net.id), camera.id)
        previous = _signature(raw_sig)
        reference = raw_ref if isinstance(raw_ref, bytes) else None
        thresholds = cfg.night if night else cfg.day
        loop = asyncio.get_running_loop()
        worker = self._worker()
        try:
            result: JobResult = await loop.run_in_executor(
                worker,
                judge,
                frame.jpeg,
                thresholds,
                reference,
                previous,
                frame.taken_at,
                1.0,
            )
        except BrokenProcessPool:  # the worker died (killed, out of memory): a new one next
            if self._pool is worker:  # (not one a neighbour has started since)
                self._pool = None
                worker.shutdown(wait=False, cancel_futures=True)
            self.counters.diagnoses.labels(net.id, "worker-failed").inc()
            await self._audit(camera, who, started, 500, "error", "diagnosis worker stopped", {})
            return None
        except ValueError as exc:  # no picture to judge (no decode, a sliver): said, not stored
            self.counters.diagnoses.labels(net.id, "not-judged").inc()
            await self._audit(camera, who, started, 502, "error", str(exc)[:300], {})
            return None
        sig = result.signature
        with redis_errors():
            await self.redis.hset(
                self._sig_key(net.id), camera.id, f"{sig.digest.hex()} {sig.taken_at!r}"
            )
        after = verdict(result.diagnosis, camera.image, cfg.confirm_rounds, night, now)
        self._count(camera, net.id, after)
        extra = {
            "reason": REASON,
            "image": after.status.value,
            "failing": ",".join(f.check for f in after.failing),
            "source": frame.source,
        }
        await self._audit(camera, who, started, 200, "ok", "", extra)
        await self._keep_evidence(camera, net, frame, after, worker)
        return after

    async def _judged_at_edge(
        self,
        camera: Camera,
        net: NetworkConfig,
        who: Principal,
        pace: SharingPolicy,
        started: float,
    ) -> ImageQuality | None:
        """An edge network's camera: its adapter judges the picture inside the network (its
        export policy's `diagnosis`, whatever it says of snapshots) and answers the verdict and
        the picture's digest for the frozen check; recorded, audited and counted as here."""
        cfg = net.quality
        now = datetime.fromtimestamp(self._clock(), UTC)
        night = cfg.is_night(now)
        adapter = self.snapshots.adapters.get(net.id)
        ref = camera.device.ref if camera.device else None
        with redis_errors():
            raw_sig = await self.redis.hget(self._sig_key(net.id), camera.id)
        previous = _signature(raw_sig)
        try:
            if not isinstance(adapter, EdgeAdapter) or ref is None:
                raise Unavailable(f"camera {camera.id} has no adapter ref yet (run a discovery)")
            await self._within_rate(who, net.id, pace)
            answer = await adapter.diagnose(
                ref,
                who.actor,
                REASON,
                night,
                cfg.night if night else cfg.day,
                wire.PreviousPicture(digest=previous.digest.hex(), taken_at=previous.taken_at)
                if previous
                else None,
            )
            diagnosis = _from_wire(answer)
        except SnapshotRefused as exc:  # the owner's policy (diagnosis off, camera not shared)
            self.counters.diagnoses.labels(net.id, "unreachable").inc()
            await self._audit(camera, who, started, 403, "denied", str(exc)[:300], {})
            return None
        except (AdapterError, CamgwError) as exc:
            error = (
                exc
                if isinstance(exc, CamgwError)
                else Unavailable(str(exc))
                if isinstance(exc, AdapterUnavailable)  # the adapter is gone, not the camera
                else _http_error(camera, exc)
            )
            self.counters.diagnoses.labels(net.id, "unreachable").inc()
            await self._audit(camera, who, started, error.status, "error", error.audit_detail, {})
            return None
        with redis_errors():
            await self.redis.hset(
                self._sig_key(net.id), camera.id, f"{answer.digest} {answer.taken_at!r}"
            )
        after = verdict(diagnosis, camera.image, cfg.confirm_rounds, night, now)
        self._count(camera, net.id, after)
        extra = {
            "reason": REASON,
            "image": after.status.value,
            "failing": ",".join(f.check for f in after.failing),
            "source": f"edge-adapter ({answer.source})",
        }
        await self._audit(camera, who, started, 200, "ok", "", extra)
        return after

    async def _picture(self, camera: Camera, net: NetworkConfig, who: Principal) -> Frame:
        """Through the snapshot path: the shared frame of an in-process network, the edge
        adapter's answer (its export policy decides) for an edge network."""
        if net.mode == "edge":
            snap = await self.snapshots.snapshot(camera, who, None, net.sharing, REASON)
            return snap.frame
        frame, _ = await self.snapshots.frame(camera, net.sharing)
        return frame

    async def _within_rate(self, who: Principal, network: str, pace: SharingPolicy) -> None:
        """The round waits its turn rather than failing: at most `max_per_minute` pictures."""
        while True:
            try:
                await self.snapshots.check_rate(who, network, pace)
                return
            except TooManyRequests as exc:
                await self._sleep(float(exc.extra.get("retry_after", 1)))

    async def _store(self, cam_id: str, after: ImageQuality, fence: Fence | None) -> int:
        """One camera's verdict on its record (1 if the record changed)."""
        return await self._store_many({cam_id: after}, fence)

    async def _store_many(self, verdicts: dict[str, ImageQuality], fence: Fence | None) -> int:
        """Verdicts on their records, those that changed written in one pipeline; how many
        records changed. A record changed meanwhile keeps its state: the next round writes it.
        Raises StaleLease when the round's lease has passed."""
        ids = list(verdicts)
        try:
            records = await self.registry.get_many(ids)
            now = datetime.now(UTC)
            todo = [
                (cur, after)
                for cur, after in zip(records, verdicts.values(), strict=True)
                if cur is not None and _changed(cur.image, after)
            ]
            if not todo:
                return 0
            update = {"updated_at": now}
            replies = await self.registry.replace_many(
                [
                    (cur.model_copy(update=update | {"image": after, "rev": cur.rev + 1}), cur.rev)
                    for cur, after in todo
                ],
                fence=fence,
            )
        except CamgwError as exc:
            if isinstance(exc, StaleLease):
                raise
            log.warning("quality verdicts not written", extra={"error": str(exc)})
            return 0
        changes: list[tuple[str, str, ImageStatus | None, ImageQuality]] = []
        for (cur, after), reply in zip(todo, replies, strict=True):
            if isinstance(reply, StaleLease) or not isinstance(reply, int | CamgwError):
                raise reply
            if isinstance(reply, CamgwError):
                continue  # changed meanwhile
            self.catalog.note_version(reply)
            was = cur.image.status if cur.image is not None else None
            if was is not after.status:
                changes.append((cur.network, cur.id, was, after))
        if changes:
            await self.note_changes(changes)
        return sum(1 for r in replies if not isinstance(r, Exception))

    # -- evidence -----------------------------------------------------------------------------

    def evidence_key(self, cam_id: str) -> str:
        return evidence_key(self.settings.redis.prefix, cam_id)

    async def _keep_evidence(
        self,
        camera: Camera,
        net: NetworkConfig,
        frame: Frame,
        after: ImageQuality,
        worker: ProcessPoolExecutor,
    ) -> None:
        """A small JPEG of the picture that made the verdict suspect or faulty, made in the
        diagnosis worker (not on the loop), kept `evidence_ttl` in Redis; dropped when the
        verdict is ok again. Kept only where the picture may leave the network: an in-process
        network's pictures come to the gateway for its operators; an edge network's are judged
        in its adapter and never leave (this path is not taken for them)."""
        key = self.evidence_key(camera.id)
        if after.status is ImageStatus.ok or net.mode == "edge":
            with redis_errors():
                await self.redis.delete(key)
            return
        width = min(EVIDENCE_WIDTH, frame.width, net.sharing.max_width)
        loop = asyncio.get_running_loop()
        try:
            thumb: bytes = await loop.run_in_executor(
                worker, render, frame.jpeg, frame.width, width, None, EVIDENCE_QUALITY
            )
        except (BrokenProcessPool, ValueError) as exc:  # the verdict stands without it
            log.warning("no quality evidence", extra={"camera": camera.id, "error": str(exc)})
            return
        evidence: dict[Any, Any] = {
            "jpeg": thumb,
            "taken_at": repr(frame.taken_at),
            "status": after.status.value,
            "failing": ",".join(f.check for f in after.failing),
            "width": min(width, frame.width),  # (render never upscales)
        }
        with redis_errors():
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(key)
                pipe.hset(key, mapping=evidence)
                pipe.expire(key, evidence_ttl(net.quality.interval_s))
                await pipe.execute()

    async def evidence(self, cam_id: str) -> Evidence | None:
        """The evidence kept for the camera, if any (it expires)."""
        with redis_errors():
            got = await self.redis.hgetall(self.evidence_key(cam_id))
        raw = {_text(k): v for k, v in got.items()}
        jpeg = raw.get("jpeg")
        if not isinstance(jpeg, bytes) or not jpeg:
            return None
        return Evidence(
            jpeg=jpeg,
            taken_at=float(_text(raw.get("taken_at", "0"))),
            status=_text(raw.get("status", "")),
            failing=_text(raw.get("failing", "")),
            width=int(_text(raw.get("width", "0")) or 0),
        )

    async def note_changes(
        self, changes: list[tuple[str, str, ImageStatus | None, ImageQuality]]
    ) -> None:
        """Add changes of image status (network, camera, from, to) to each network's image
        history, trimmed as the status history is (by age, Redis's clock, and by count).
        Written after the records: a Redis failure between the two loses these changes from
        the history, never the verdicts."""
        history = self.settings.history
        oldest_ms = int(time.time() * 1000) - history.status_days * 86_400_000
        with redis_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                for network, cam_id, was, to in changes:
                    key = image_history_key(self.settings.redis.prefix, network)
                    fields: dict[Any, Any] = {
                        "id": cam_id,
                        "from": was.value if was is not None else "",
                        "to": to.status.value,
                        "at": to.since.isoformat(),
                        "error": "",
                    }
                    pipe.xadd(key, fields, minid=str(oldest_ms), approximate=True)
                for network in {c[0] for c in changes}:
                    key = image_history_key(self.settings.redis.prefix, network)
                    pipe.xtrim(key, maxlen=history.status_max_entries, approximate=True)
                await pipe.execute()

    def _count(self, camera: Camera, network: str, after: ImageQuality) -> None:
        self.counters.diagnoses.labels(network, after.status.value).inc()
        for fault in after.failing:
            self.counters.failing.labels(
                fault.check, camera.department or "-", camera.carrier or "-"
            ).inc()

    async def _audit(
        self,
        camera: Camera,
        who: Principal,
        started: float,
        status: int,
        outcome: str,
        detail: str,
        extra: dict[str, str],
    ) -> None:
        latency = f"{(time.perf_counter() - started) * 1000:.1f}"
        await self.audit.append(
            AuditEvent(
                actor=who.actor,
                role="system",
                action="camera.snapshot",
                target=camera.id,
                network=camera.network,
                outcome=outcome,
                status=status,
                detail=detail,
                extra={"reason": REASON, "latency_ms": latency, **extra},
            )
        )


# A round's verdicts reach the records together, at least this often: a registry write makes
# every dashboard's next poll a new list (a first round over a town changed every record, one
# every ~65 ms, and each poll waited for a catalog rebuild).
_FLUSH_EVERY_S = 5.0
_FLUSH_AT = 500  # ... or once this many wait


@dataclass(slots=True)
class _RoundVerdicts:
    """A round's verdicts waiting to be written, and how many records they changed."""

    service: QualityService
    fence: Fence | None
    flushed_at: float
    pending: dict[str, ImageQuality] = field(default_factory=dict)
    changed: int = 0

    async def add(self, cam_id: str, after: ImageQuality) -> None:
        self.pending[cam_id] = after
        waited = self.service._clock() - self.flushed_at
        if len(self.pending) >= _FLUSH_AT or waited >= _FLUSH_EVERY_S:
            await self.flush()

    async def flush(self) -> None:
        batch, self.pending = self.pending, {}  # (taken first: another worker may add meanwhile)
        self.flushed_at = self.service._clock()
        if batch:
            # (read after the await: `self.changed += await ...` would read it before, and
            # lose a neighbour's flush that ended meanwhile)
            written = await self.service._store_many(batch, self.fence)
            self.changed += written


def _from_wire(answer: wire.DiagnosisResult) -> Diagnosis:
    """An edge adapter's verdict as the diagnosis it reports (its check names known here)."""
    try:
        return Diagnosis(
            status=Level(answer.status),
            failing=[Check(r.check) for r in answer.results if r.level != "ok"],
            results=[
                CheckResult(
                    check=Check(r.check),
                    level=Level(r.level),
                    measures=dict(r.measures),
                    masked_by=Check(r.masked_by) if r.masked_by else None,
                )
                for r in answer.results
            ],
            width=answer.width,
            height=answer.height,
        )
    except ValueError as exc:  # (a check this gateway does not know: a newer adapter)
        raise BadGateway(f"the adapter's verdict names an unknown check: {exc}"[:300]) from None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _signature(raw: bytes | str | None) -> Signature | None:
    if not raw:
        return None
    text = raw.decode() if isinstance(raw, bytes) else raw
    try:
        digest, taken = text.split(" ", 1)
        return Signature(bytes.fromhex(digest), float(taken))
    except ValueError:
        return None  # unreadable: judged as a first picture


class QualityCounters:
    """Prometheus counts of the diagnosis, on the app's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.diagnoses = Counter(
            "camgw_quality_diagnoses",
            "Quality diagnoses by network and image status (unreachable: no picture to judge)",
            ["network", "status"],
            registry=registry,
        )
        self.failing = Counter(
            "camgw_quality_failing_checks",
            "Failing quality checks, by check, responsible department and carrier",
            ["check", "department", "carrier"],
            registry=registry,
        )


QUALITY = web.AppKey("quality", QualityService)


def quality_context() -> Callable[[web.Application], AsyncIterator[None]]:
    """The cleanup context: the service on the app, its rounds in the background."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        service = QualityService(
            app[SETTINGS],
            app[REDIS],
            app[REGISTRY],
            app[CATALOG],
            app[SNAPSHOTS],
            app[AUDIT],
            app[DISCOVERY].leases,
            QualityCounters(app[METRICS].registry),
        )
        app[QUALITY] = service
        # a deleted camera's references, evidence and signature go with it
        app[REGISTRY].on_delete.append(ReferenceStore(app[REDIS], app[SETTINGS]).forget)
        async for _ in service.background():
            yield

    return ctx


__all__ = ["QUALITY", "QualityConfig", "QualityService", "quality_context", "verdict"]
