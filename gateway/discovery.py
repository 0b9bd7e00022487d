"""Discovery jobs, the periodic health probe, and what both write to the registry.

Each network's adapter runs on its own: a network whose adapter fails (or hangs) leaves the
others' discovery and the API untouched. Jobs are kept in Redis (`<prefix>:job:{id}`, a week)
so any gateway sharing the Redis can report them.

Replicas share the work (docs/deployment.md, "Replicas"): a network's discovery runs under
the lease `discover:{network}` and its health rounds under `health:{network}`, so one replica
at a time does each; their writes carry the lease's fence and are refused once it has passed
on. When each is next due is kept in Redis (gateway/schedule.py), and so are the status streaks
(gateway/status.py): every replica shows the same status for a camera.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError
from redis.asyncio import Redis

from adapters.base import (
    CameraFailed,
    CameraRead,
    Discovered,
    DiscoveryProgress,
    Failure,
    FailureKind,
    HealthResult,
    NetworkAdapter,
    Target,
)
from adapters.gil import LOOP_ITEMS, off_the_loop
from adapters.tasks import stop

from . import identity
from .audit import AuditEvent, AuditLog
from .catalog import Catalog, Entry
from .errors import CamgwError, Conflict, StaleLease, field_errors, redis_errors
from .lease import Fence, LeaseLost, Leases
from .models import (
    AdapterState,
    Camera,
    CameraStatus,
    DiscoveryJob,
    EdgeAdapterInfo,
    JobFailure,
    JobProgress,
)
from .records import (
    NetworkMismatch,
    camera_from_discovered,
    check_camera,
    discovered_id,
    merge_discovered,
)
from .registry import CredentialChange, ProbedWrite, Registry
from .schedule import Schedule
from .settings import Settings
from .status import Streak, Streaks, observe

log = logging.getLogger(__name__)

JOB_TTL_S = 7 * 24 * 3600
MAX_JOB_FAILURES = 1000
_JOB_REASON_CHARS = 300  # of a failure's reason, in the job
LAST_SEEN_RESOLUTION = timedelta(minutes=5)  # last_seen is rewritten at most this often
_HEALTH_BATCH = 2000  # a health round's writes made ready at once (written 100 per script)
_WRITE_RETRIES = 5
_PROGRESS_SAVE_S = 0.5
_FP_BATCH = 500  # fingerprints of credentials written per script call
# Registry writes of discovered cameras in flight at once, all networks together. Well under the
# Redis pool (64, blocking, 5 s wait): when the event loop is busy enriching hundreds of cameras,
# each command takes several loop turns, and unbounded writes used to hold every connection long
# enough for others to time out ("registry unreachable" store failures, 503s for API requests).
# Writes beyond this wait here, without a deadline; the job ends when the last one is stored.
_WRITE_CONCURRENCY = 16
# Failure steps that say nothing about the camera's health: the gateway could not store it, or
# had no target or no credentials to try it with.
_NOT_THE_CAMERAS = frozenset({FailureKind.store, FailureKind.targets, FailureKind.credentials})
_ANSWERED = frozenset({FailureKind.auth, FailureKind.read, FailureKind.normalise})
_POLL_S = 1.0  # how often a job run by another replica is read while waiting for it
# An auth failure with credentials other than those that last read the camera (another process,
# a stale password) says nothing about the camera: its record is left alone, and the job says so.
NOT_THE_WORKING_CREDENTIALS = (
    " (not the credentials that last worked for this camera: record left as it is)"
)


@dataclass
class NetworkState:
    """What /networks reports about a network's adapter."""

    running: DiscoveryJob | None = None
    last: DiscoveryJob | None = None
    last_error: str | None = None
    health_runs: int = 0  # by this replica (so are the two below)
    health_probes: int = 0  # cameras probed
    health_last_s: float = 0.0  # how long the last round took
    task: asyncio.Task[DiscoveryJob] | None = field(default=None, repr=False)
    fence: Fence | None = field(default=None, repr=False)  # the running job's lease
    refused: str | None = field(default=None, repr=False)  # a write of the job's: StaleLease
    starting: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    # While a job runs: which credentials last read each camera (id -> fingerprint), as read
    # when it started and kept up to date by its reads (None: unknown, e.g. Redis did not say).
    worked: dict[str, str] | None = field(default=None, repr=False)


class DiscoveryService:
    def __init__(
        self,
        settings: Settings,
        redis: Redis,
        registry: Registry,
        catalog: Catalog,
        audit: AuditLog,
        adapters: dict[str, NetworkAdapter],
        *,
        leases: Leases | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.registry = registry
        self.catalog = catalog
        self.audit = audit
        self.adapters = adapters
        self.state = {n: NetworkState() for n in adapters}
        prefix = registry.keys.prefix
        self.leases = leases or Leases(redis, prefix)
        self.schedule = Schedule(redis, prefix)
        self.streaks = Streaks(redis, prefix)
        self._clock, self._sleep = clock, sleep
        self._write_gate = asyncio.Semaphore(_WRITE_CONCURRENCY)
        # Which credentials read each camera (network, id, fingerprint), where that changed:
        # written in batches of _FP_BATCH and when a job ends, so that a first discovery of
        # thousands of cameras pays a few script calls, not one per camera.
        self._fps: dict[tuple[str, str], str] = {}  # (network, id) -> fingerprint
        self._read_afresh: dict[str, set[str]] = {}  # network -> ids: streaks start again
        self._fps_writing: set[asyncio.Task[None]] = set()

    # -- jobs ---------------------------------------------------------------------------

    async def start(self, network: str, actor: str) -> DiscoveryJob:
        """Start a discovery job, or return the one already running for this network (here,
        or on the replica that holds the network's discovery lease)."""
        state = self.state[network]
        async with state.starting:
            if state.running is not None:
                return state.running
            fence = await self.leases.acquire(_lease("discover", network))
            if fence is None:
                return await self._running_elsewhere(network)
            await self._abandoned(network)
            job = DiscoveryJob(
                id=f"job-{secrets.token_hex(6)}",
                network=network,
                state="running",
                actor=actor,
                started_at=datetime.now(UTC),
                progress=JobProgress(),
            )
            state.running = job
            with contextlib.suppress(CamgwError), redis_errors():
                await self.redis.set(self._running_key(network), job.id, ex=JOB_TTL_S)
            state.task = asyncio.create_task(self._run_leased(job), name=f"discover-{network}")
            return job

    async def run(self, network: str, actor: str) -> DiscoveryJob:
        """Start (or join) a job and wait for it to finish."""
        return await self.finished(await self.start(network, actor))

    async def finished(self, job: DiscoveryJob) -> DiscoveryJob:
        """`job` once it has ended: awaited here, or read from Redis while another replica
        runs it (a job whose record has gone is returned as last seen)."""
        state = self.state[job.network]
        if state.running is not None and state.running.id == job.id and state.task is not None:
            return await asyncio.shield(state.task)
        if state.last is not None and state.last.id == job.id:
            return state.last
        while job.state == "running":
            await self._sleep(_POLL_S)
            job = await self.job(job.id) or job
        return job

    async def _running_elsewhere(self, network: str) -> DiscoveryJob:
        """The job of the replica that holds the network's discovery lease."""
        with redis_errors():
            job_id = await self.redis.get(self._running_key(network))
        job = await self.job(_text(job_id)) if job_id else None
        if job is None or job.state != "running":
            holder = await self.leases.holder_of(_lease("discover", network))
            raise Conflict(
                f"a discovery of network {network} is starting on replica {holder}; "
                "retry in a moment"
            )
        return job

    async def _abandoned(self, network: str) -> None:
        """A job that a replica left running when it lost the lease (it died, hung or lost
        Redis) is recorded as failed: this replica now holds the lease."""
        with contextlib.suppress(CamgwError), redis_errors():
            job_id = await self.redis.get(self._running_key(network))
            job = await self.job(_text(job_id)) if job_id else None
            if job is not None and job.state == "running":
                job.state = "failed"
                job.error = "abandoned: the replica running it stopped renewing its lease"
                job.finished_at = datetime.now(UTC)
                await self._save(job)
                log.warning(
                    "discovery job abandoned by its replica",
                    extra={"network": network, "job": job.id},
                )

    def _running_key(self, network: str) -> str:
        return f"{self.registry.keys.prefix}:discovery:running:{network}"

    async def job(self, job_id: str) -> DiscoveryJob | None:
        for state in self.state.values():
            if state.running and state.running.id == job_id:
                return state.running
        with redis_errors():
            raw = await self.redis.get(self._job_key(job_id))
        return DiscoveryJob.model_validate_json(raw) if raw else None

    def _job_key(self, job_id: str) -> str:
        return f"{self.registry.keys.prefix}:job:{job_id}"

    async def _save(self, job: DiscoveryJob) -> None:
        # A Redis blip must not kill the job itself.
        with contextlib.suppress(CamgwError), redis_errors():
            await self.redis.set(self._job_key(job.id), job.model_dump_json(), ex=JOB_TTL_S)

    async def _run_leased(self, job: DiscoveryJob) -> DiscoveryJob:
        """The job, under the network's discovery lease (renewed while it runs). Losing the
        lease stops it here (another replica runs the network's discovery); the next due time
        moves on only when it ends while the lease is held."""
        state = self.state[job.network]
        try:
            async with self.leases.held(_lease("discover", job.network)) as fence:
                if fence is None:
                    raise LeaseLost("the discovery lease was taken by another replica")
                state.fence = fence
                job = await self._run(job)
                await self._scheduled_next(job.network, "discovery")
                return job
        except LeaseLost as exc:
            job.elapsed_s = round((datetime.now(UTC) - job.started_at).total_seconds(), 2)
            return await self._end(job, f"{exc}; stopped here, another replica goes on")
        finally:
            state.fence, state.refused = None, None
            with contextlib.suppress(CamgwError), redis_errors():
                if _text(await self.redis.get(self._running_key(job.network)) or b"") == job.id:
                    await self.redis.delete(self._running_key(job.network))

    async def _run(self, job: DiscoveryJob) -> DiscoveryJob:
        state = self.state[job.network]
        adapter = self.adapters[job.network]
        started = time.monotonic()
        await self._audit(job, "discovery.start", "ok", "")
        await self._save(job)
        saver = _ProgressSaver(self, job, started)
        stores: set[asyncio.Task[None]] = set()
        state.worked = await self._worked_credentials(job.network)
        error: str | None = None
        try:
            async for event in adapter.discover(job.id, job.actor):
                if isinstance(event, CameraRead):
                    # At most _WRITE_CONCURRENCY writes in flight (all networks together);
                    # waiting here slows the adapter's reads through its bounded queue.
                    await self._write_gate.acquire()
                    task = asyncio.create_task(self._store(job, event.camera))
                    stores.add(task)
                    task.add_done_callback(stores.discard)
                elif isinstance(event, CameraFailed):
                    await self._failed(job, event.failure)
                elif isinstance(event, DiscoveryProgress):
                    job.progress.found, job.progress.ignored = event.found, event.ignored
                    job.progress.ignored_by_reason = dict(event.ignored_by_reason)
                elif event.error is not None:
                    raise _RunFailed(event.error)
                saver.tick()
                _check_lease(state, job.network)
            await asyncio.gather(*stores)
            _check_lease(state, job.network)
            await self._settle_fingerprints()  # which credentials read them, before "done"
        except LeaseLost:
            await asyncio.gather(*stores, return_exceptions=True)
            raise
        except Exception as exc:  # the adapter broke: this network's job fails, nothing else
            await asyncio.gather(*stores, return_exceptions=True)
            await self._settle_fingerprints()  # of the cameras stored all the same
            log.warning(
                "discovery failed",
                extra={"network": job.network, "job": job.id, "error": str(exc)[:300]},
                exc_info=not isinstance(exc, _RunFailed),
            )
            error = str(exc)[:500] if isinstance(exc, _RunFailed) else _describe(exc)
        job.elapsed_s = round(time.monotonic() - started, 2)
        await saver.settle()
        return await self._end(job, error)

    async def _end(self, job: DiscoveryJob, error: str | None = None) -> DiscoveryJob:
        """The job is over (done; failed with `error`, or stopped by a lost lease): its state
        and end time set together (a reader never sees `done` without `finished_at`), then
        recorded and audited."""
        state = self.state[job.network]
        state.worked = None
        job.state, job.error = ("failed", error) if error else ("done", None)
        job.finished_at = datetime.now(UTC)
        if error:
            state.last_error = error
        state.running, state.last = None, job
        await self._save(job)
        await self._audit(
            job,
            "discovery.finish",
            "ok" if job.state == "done" else "error",
            f"found {job.progress.found}, enriched {job.progress.enriched}, "
            f"failed {job.progress.failed}",
        )
        return job

    async def _store(self, job: DiscoveryJob, d: Discovered) -> None:
        """One camera read: its record created or refreshed, or its failure in the job."""
        try:
            problem = await self.apply(d)
        except StaleLease as exc:  # the lease passed on: this camera's failure, and the job stops
            self.state[d.network].refused = exc.detail
            problem = _store_failure(d, exc.detail)
        except CamgwError as exc:  # e.g. Redis unavailable: this camera, not the job
            problem = _store_failure(d, exc.detail)
        except Exception as exc:  # anything else about one camera is still that camera's
            log.exception("storing a discovered camera failed", extra={"network": d.network})
            problem = _store_failure(d, _describe(exc))
        finally:
            self._write_gate.release()
        if problem is None:
            job.progress.enriched += 1
        else:
            await self._failed(job, problem)

    async def _failed(self, job: DiscoveryJob, failure: Failure) -> None:
        try:
            failure = await self.apply_failure(failure)
        finally:
            _add_failure(job, failure)

    async def _audit(self, job: DiscoveryJob, action: str, outcome: str, detail: str) -> None:
        with contextlib.suppress(CamgwError):
            await self.audit.append(
                AuditEvent(
                    actor=job.actor,
                    role="admin",
                    action=action,
                    target=job.id,
                    network=job.network,
                    outcome=outcome,
                    status=200,
                    detail=detail,
                )
            )

    def adapter_state(self, network: str, edge: EdgeAdapterInfo | None = None) -> AdapterState:
        state = self.state.get(network) or NetworkState()
        running = "running" if state.running else "idle"
        return AdapterState(
            mode="edge" if edge is not None else "in-process",
            state="unreachable" if edge is not None and not edge.connected else running,
            running_job=state.running.id if state.running else None,
            last_job=state.last,
            last_error=state.last_error,
            health_rounds=state.health_runs,
            edge=edge,
        )

    # -- writing what was found ---------------------------------------------------------

    async def _worked_credentials(self, network: str) -> dict[str, str] | None:
        """Which credentials last read each camera of the network (id -> fingerprint), read
        once when a job starts: a camera read with the same ones costs no write, nor a read.
        None when Redis does not answer (each camera read then writes its own)."""
        try:
            return await self.registry.all_worked_credentials(network)
        except CamgwError:
            return None

    async def apply(self, d: Discovered) -> Failure | None:
        """Create or refresh the record of a discovered camera; admin-owned fields survive.
        Which credentials read it is remembered, in a batch, when that changed."""
        now = datetime.now(UTC)
        # A record registered by address alone is the device's first camera (or its only).
        bare = identity.bare_site(d.network, d.address) if d.channel_index == 1 else None
        found = await self.registry.find(identity.of_discovered(d), bare)
        cam_id = found.id or discovered_id(d, self.registry.id_key)
        try:
            fresh = camera_from_discovered(d, self.settings, now, cam_id)
        except ValidationError as exc:
            errors = field_errors(exc)
            return _normalise_failure(d, "; ".join(f"{e.field}: {e.message}" for e in errors[:3]))
        if errors := check_camera(self.settings, fresh):
            return _normalise_failure(d, "; ".join(f"{e.field}: {e.message}" for e in errors[:3]))
        for note in d.notes:
            log.info("camera quirk", extra={"camera": cam_id, "network": d.network, "note": note})
        change = CredentialChange.set if d.uri_credentials else CredentialChange.keep
        try:
            await self._write(
                cam_id,
                lambda old: merge_discovered(old, fresh, now) if old else fresh,
                change,
                d,
                takeover=found.displaced is not None,
            )
        except NetworkMismatch as exc:
            return _store_failure(d, str(exc))
        except StaleLease:
            raise  # the job's business: it stops
        except CamgwError as exc:
            return _store_failure(d, exc.detail)
        fp = d.credentials_fp
        state = self.state.get(d.network)
        worked = state.worked if state is not None else None
        if fp is not None and (worked is None or worked.get(cam_id) != fp):
            self._remember(d.network, cam_id, fp)
            if worked is not None:
                worked[cam_id] = fp
        self._read_afresh.setdefault(d.network, set()).add(cam_id)
        if len(self._read_afresh[d.network]) >= _FP_BATCH:
            self._write_fingerprints()
        if found.displaced is not None:
            await self._displaced(found.displaced, cam_id, now, d.network)
        return None

    async def _displaced(self, cam_id: str, successor: str, now: datetime, network: str) -> None:
        """A device with an identity of its own answers where this camera did: the camera no
        longer answers there (it keeps its record, name and history; offline until found)."""
        error = f"no longer answering at its address: another device (camera {successor}) does"

        def build(old: Camera | None) -> Camera | None:
            if old is None or (old.status is CameraStatus.offline and old.last_error == error):
                return None
            update = {"status": CameraStatus.offline, "last_error": error[:500]}
            return old.model_copy(update=update | {"updated_at": now, "rev": old.rev + 1})

        with contextlib.suppress(CamgwError):
            await self._write(cam_id, build)
        self._read_afresh.setdefault(network, set()).add(cam_id)

    async def _write(
        self,
        cam_id: str,
        build: Callable[[Camera | None], Camera | None],
        change: CredentialChange = CredentialChange.keep,
        d: Discovered | None = None,
        *,
        takeover: bool = False,
    ) -> None:
        """Read-modify-write with the record's revision; re-applied if someone else wrote.
        `takeover`: a new record may take its site from a displaced one. Written under the
        network's discovery lease while a job runs (StaleLease once it has passed on)."""
        for _ in range(_WRITE_RETRIES):
            old = await self.registry.get(cam_id)
            new = build(old)
            if new is None:
                return
            state = self.state.get(new.network)
            fence = state.fence if state is not None else None
            creds = d.uri_credentials if d else None
            try:
                if old is None:
                    audit = AuditEvent(
                        actor=f"discovery:{new.network}",
                        role="adapter",
                        action="camera.discovered",
                        target=new.id,
                        network=new.network,
                        outcome="ok",
                        status=200,
                        detail=str(new.address),
                    )
                    version = await self.registry.create(
                        new, creds, audit, takeover=takeover, fence=fence
                    )
                else:
                    version = await self.registry.replace(new, old.rev, change, creds, fence=fence)
            except Conflict as exc:
                if exc.extra.get("field") in ("rev", "id"):
                    continue  # concurrent write (or a create race): read again
                raise
            self.catalog.note_version(version)
            return
        raise Conflict(f"camera {cam_id} kept changing during discovery")

    def _remember(self, network: str, cam_id: str, fp: str) -> None:
        """`fp` read the camera just stored: written with the next batch."""
        self._fps[network, cam_id] = fp
        if len(self._fps) >= _FP_BATCH:
            self._write_fingerprints()

    def _write_fingerprints(self) -> None:
        """The fingerprints gathered so far, and the cameras read afresh (their status streaks
        start again), written in the background."""
        batch = [(network, cam_id, fp) for (network, cam_id), fp in self._fps.items()]
        afresh, self._fps, self._read_afresh = self._read_afresh, {}, {}
        writes = [self._store_fingerprints(batch)] if batch else []
        writes += [self._forget_streaks(net, ids) for net, ids in afresh.items() if ids]
        for write in writes:
            task = asyncio.create_task(write)
            self._fps_writing.add(task)
            task.add_done_callback(self._fps_writing.discard)

    async def _forget_streaks(self, network: str, ids: set[str]) -> None:
        try:
            await self.streaks.save(network, {}, gone=ids)
        except CamgwError as exc:  # the next health rounds count on from the old streaks
            log.warning(
                "status streaks of cameras read afresh not reset",
                extra={"network": network, "cameras": len(ids), "error": exc.detail},
            )

    async def _settle_fingerprints(self) -> None:
        """Every fingerprint gathered written (a job ends after those of its cameras). Never
        raises (`_store_fingerprints` logs what failed)."""
        self._write_fingerprints()
        await asyncio.gather(*self._fps_writing)

    async def _store_fingerprints(self, batch: list[tuple[str, str, str]]) -> None:
        """The records are stored: fingerprints that could not be are logged, never a camera's
        failure nor the job's (the next read writes them again)."""
        try:
            await self.registry.remember_credentials(batch)
        except Exception as exc:  # CamgwError (Redis unavailable) or anything unforeseen
            log.warning(
                "which credentials read the cameras was not stored",
                extra={"network": batch[0][0], "cameras": len(batch), "error": _describe(exc)},
            )

    async def apply_failure(self, f: Failure) -> Failure:
        """A known camera that could not be read: offline if it did not answer, degraded if it
        answered but refused or garbled (the dashboard shows last_error either way).

        Credentials refused degrade the camera only when they are those that last read it (the
        camera's password changed, its account is gone) or when none ever did (or the adapter
        does not say which were refused). Others (another process's, a stale password) leave
        the record as it is; the failure returned then says so, for the job."""
        keys = identity.keys(
            f.network, f.address, f.port, ref=f.ref, endpoint_reference=f.endpoint_reference
        )
        cam_id = (await self.registry.find(keys, identity.bare_site(f.network, f.address))).id
        if cam_id is None:
            return f
        if f.kind in _NOT_THE_CAMERAS:
            return f  # nothing was learnt about the camera itself
        if f.kind is FailureKind.auth and f.credentials_fp is not None:
            worked = self._fps.get((f.network, cam_id))  # read here, not yet written
            if worked is None:
                worked = await self.registry.worked_credentials(f.network, cam_id)
            if worked is not None and worked != f.credentials_fp:
                log.warning(
                    "credentials refused are not those that last worked for the camera; "
                    "its record is left as it is",
                    extra={"network": f.network, "camera": cam_id, "reason": f.reason[:300]},
                )
                room = _JOB_REASON_CHARS - len(NOT_THE_WORKING_CREDENTIALS)
                return replace(f, reason=f.reason[:room] + NOT_THE_WORKING_CREDENTIALS)
        reachable = f.kind in _ANSWERED  # not timeout, unreachable
        now = datetime.now(UTC)
        streak = Streak()
        if not reachable:
            with contextlib.suppress(CamgwError):
                streak = (await self.streaks.load(f.network, [cam_id]))[cam_id]
        kept: list[Streak] = []

        def build(old: Camera | None) -> Camera | None:
            if old is None:
                return None
            status = CameraStatus.degraded
            if not reachable:
                status, after = observe(streak, old.status, ok=False)
                kept[:] = [after]
            error = f"{f.kind.value}: {f.reason}"[:500]
            if old.status is status and old.last_error == error:
                return None
            return old.model_copy(
                update={
                    "status": status,
                    "last_error": error,
                    "updated_at": now,
                    "rev": old.rev + 1,
                }
            )

        with contextlib.suppress(CamgwError):
            await self._write(cam_id, build)
            if kept and kept[0] != streak:
                await self.streaks.save(f.network, {cam_id: kept[0]})
        return f

    # -- health -------------------------------------------------------------------------

    async def health_round(self, network: str, fence: Fence | None = None) -> int:
        """Probe every camera of the network once; returns how many records changed. Status
        follows the streaks kept in Redis (every replica counts on from the same ones); with
        `fence`, written under the network's health lease (StaleLease once it has passed).
        Cameras are read from the catalog's entries: a record is parsed only to be written."""
        started = time.monotonic()
        probed = await self.catalog.probed(network)
        if not probed:
            return 0
        # A district's network is 100,000 cameras: each pass of Python over them (indexing,
        # verdicts, records) runs off the event loop; a town's is quicker done on it.
        big = len(probed) > LOOP_ITEMS
        entries, targets = await off_the_loop(big, _probe_plan, probed)
        results = await self.adapters[network].probe(targets)
        streaks = await self.streaks.load(network, list(entries))
        now = datetime.now(UTC)
        moved, writes = await off_the_loop(big, _verdicts, entries, results, streaks, now)
        stamp = _json_time(now)
        for at in range(0, len(writes), _HEALTH_BATCH):
            part = writes[at : at + _HEALTH_BATCH]
            batch = await off_the_loop(big, _probed_writes, part, stamp)
            versions = await self.registry.write_probed(network, batch, stamp, fence)
            if any(versions):
                self.catalog.note_version(max(versions))
        await self.streaks.save(network, moved)
        state = self.state[network]
        state.health_runs += 1
        state.health_probes += len(targets)
        state.health_last_s = time.monotonic() - started
        written = len(writes)
        # A district's round leaves ~250,000 objects (its results, streaks, writes): freed on
        # the loop as this returned, in the step that ended the round (98 ms at 100,000).
        held: list[Any] = [entries, targets, results, streaks, moved, writes]
        del entries, targets, results, streaks, moved, writes
        await off_the_loop(big, held.clear)
        return written

    async def background(self) -> AsyncIterator[None]:
        """Cleanup-context body: health and scheduled discovery per network, each isolated."""
        tasks = [
            asyncio.create_task(self._network_loop(n), name=f"network-{n}") for n in self.adapters
        ]
        yield
        await stop(*tasks, *(s.task for s in self.state.values()))

    async def _network_loop(self, network: str) -> None:
        while True:
            try:
                wait = await self.tick(network)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one network's trouble never ends the loop, nor others
                log.exception("network loop error", extra={"network": network})
                self.state[network].last_error = f"{type(exc).__name__}: {exc}"[:500]
                wait = self.leases.ttl_s / 3
            await self._sleep(wait)

    async def tick(self, network: str) -> float:
        """Do the network's scheduled work that is due, where this replica can take its
        lease; returns the seconds until it should look again. Another replica's work is
        looked at again within a third of the lease's TTL, so that a replica that died with
        the lease is replaced soon after the lease expires."""
        cfg = self.settings.network_by_id[network].discovery
        every = {"discovery": float(cfg.schedule_s), "health": float(cfg.health_interval_s)}
        if not any(every.values()):
            return 3600.0
        due = await self.schedule.due(network, self._clock(), every)
        if due.discovery is not None and due.discovery <= self._clock():
            holder = await self.leases.holder_of(_lease("discover", network))
            if holder in (None, self.leases.holder):  # else another replica runs it
                await self.run(network, "scheduler")
        if due.health is not None and due.health <= self._clock():
            await self._leased_health(network)
        due = await self.schedule.due(network, self._clock(), every)
        soonest = min(t for t in (due.discovery, due.health) if t is not None)
        return min(max(0.05, soonest - self._clock()), self.leases.ttl_s / 3)

    async def _leased_health(self, network: str) -> None:
        """A health round, if this replica takes the lease and it is still due then (another
        replica may have just done it); skipped, and moved on, while a discovery runs."""
        name = _lease("health", network)
        async with self.leases.held(name) as fence:
            if fence is None:
                return
            every = float(self.settings.network_by_id[network].discovery.health_interval_s)
            due = await self.schedule.due(network, self._clock(), {"discovery": 0, "health": every})
            if due.health is None or due.health > self._clock():
                return
            if await self.leases.holder_of(_lease("discover", network)) is None:
                await self.health_round(network, fence)
            await self.schedule.next(network, "health", self._clock() + every)

    async def _scheduled_next(self, network: str, work: str) -> None:
        every = self.settings.network_by_id[network].discovery.schedule_s
        if every > 0:
            with contextlib.suppress(CamgwError):
                await self.schedule.next(network, work, self._clock() + every)


def _check_lease(state: NetworkState, network: str) -> None:
    if state.refused is not None:
        raise LeaseLost(f"lease discover:{network} lost ({state.refused})")


def _lease(work: str, network: str) -> str:
    return f"{work}:{network}"


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


Write = tuple[Entry, CameraStatus, HealthResult]


def _probe_plan(probed: list[Entry]) -> tuple[dict[str, Entry], list[Target]]:
    """The round's cameras by id, and where to probe them."""
    entries = {e.id: e for e in probed}
    return entries, [e.target for e in entries.values() if e.target is not None]


def _verdicts(
    entries: dict[str, Entry],
    results: list[HealthResult],
    streaks: dict[str, Streak],
    now: datetime,
) -> tuple[dict[str, Streak], list[Write]]:
    """A health round's outcome: the streaks that moved, and the records to write (status
    moved, or last_seen due)."""
    by_key = {r.key: r for r in results}
    moved: dict[str, Streak] = {}
    writes: list[Write] = []
    for cam_id, e in entries.items():
        assert e.target is not None
        result = by_key.get(e.target.ref or e.target.address)
        if result is None:
            continue
        current = CameraStatus(e.status)
        status, streak = observe(streaks[cam_id], current, result.ok)
        if streak != streaks[cam_id]:
            moved[cam_id] = streak
        if status is not current or (result.ok and _seen_due(e.id, e.last_seen, now)):
            writes.append((e, status, result))
    return moved, writes


def _probed_writes(writes: list[Write], updated_at: str) -> list[ProbedWrite]:
    return [probed_record(e.full, status, result, updated_at) for e, status, result in writes]


def probed_record(raw: bytes, status: CameraStatus, result: HealthResult, now: str) -> ProbedWrite:
    """The stored record `raw` as a probe leaves it: status, last_seen (answered), last_error
    (cleared when an offline camera answers, else the probe's), updated_at and rev; the rest
    byte for byte. Made from its JSON, not through the model: nothing else of it changes, and
    a round may write every camera of a district (tests/gateway/test_health_writes.py holds
    it to what the model would write)."""
    d = orjson.loads(raw)
    rev = int(d["rev"])
    was = d["status"]
    d["status"] = status.value
    if result.ok:
        d["last_seen"] = now
        if was == CameraStatus.offline.value:
            d["last_error"] = None
    else:
        d["last_error"] = f"health: {result.error}"[:500]
    d["updated_at"] = now
    d["rev"] = rev + 1
    error = d.get("last_error") or ""
    return ProbedWrite(d["id"], rev, orjson.dumps(d), status.value, error, was)


_TIME = TypeAdapter(datetime)


def _json_time(at: datetime) -> str:
    """`at` as the records' JSON writes a time (pydantic's form)."""
    text: str = _TIME.dump_python(at, mode="json")
    return text


def _seen_due(cam_id: str, last_seen: str | None, now: datetime) -> bool:
    """Whether an answering camera's last_seen is rewritten this round: once per
    LAST_SEEN_RESOLUTION (a write per camera per round would rebuild the catalog all the
    time), each camera at its own point of that period. Due "5 minutes after the last write",
    the cameras a district's first round brought online were all due again in one round,
    every 5 minutes: 100,000 writes at once. By its own point, a camera is due when a period
    boundary shifted by its offset lies between its last_seen and now; the boundaries are
    spread evenly, so each round writes its share, and last_seen is never older than the
    period plus a round."""
    if last_seen is None:
        return True
    period = LAST_SEEN_RESOLUTION.total_seconds()
    shift = zlib.crc32(cam_id.encode()) % 1_000_000 / 1_000_000 * period
    seen = datetime.fromisoformat(last_seen).timestamp()
    return (now.timestamp() + shift) // period != (seen + shift) // period or (
        now.timestamp() - seen >= period
    )


def _add_failure(job: DiscoveryJob, f: Failure) -> None:
    if len(job.failures) >= MAX_JOB_FAILURES:
        job.failures_dropped += 1
        return
    where = f.address or (f"ref {f.ref}" if f.ref else "")
    job.failures.append(
        JobFailure(address=where, step=f.kind.value, reason=f.reason[:_JOB_REASON_CHARS])
    )
    job.progress.failed += 1


class _RunFailed(Exception):
    """The adapter reported that the whole run failed (its sources broke)."""


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def _store_failure(d: Discovered, reason: str) -> Failure:
    return Failure(d.network, d.address, FailureKind.store, reason, d.endpoint_reference, d.ref)


def _normalise_failure(d: Discovered, reason: str) -> Failure:
    kind = FailureKind.normalise
    return Failure(d.network, d.address, kind, reason, d.endpoint_reference, d.ref)


class _ProgressSaver:
    """Saves the running job now and then (GET /jobs/{id} from any gateway), at most one save
    in flight, and that one awaited before the final save: a progress save still waiting for a
    Redis connection must never land after (and overwrite) the finished job."""

    def __init__(self, service: DiscoveryService, job: DiscoveryJob, started: float) -> None:
        self.service, self.job, self.started = service, job, started
        self.last = 0.0
        self.pending: asyncio.Task[None] | None = None

    def tick(self) -> None:
        now = time.monotonic()
        self.job.elapsed_s = round(now - self.started, 2)
        if now - self.last > _PROGRESS_SAVE_S and (self.pending is None or self.pending.done()):
            self.last = now
            self.pending = asyncio.create_task(self.service._save(self.job))

    async def settle(self) -> None:
        if self.pending is not None:
            await asyncio.gather(self.pending, return_exceptions=True)
