"""The gateway's side of the edge (docs/edge.md): requests into each edge adapter's inbox, and
everything its outbox says read, validated, refused or routed.

`EdgeHub` owns the streams of every edge network: it creates them and their consumer groups,
reads each outbox in a task of its own (one network's trouble never holds another's), and
routes what it reads: a discovery's events to the job waiting for them, a probe's results and a
snapshot's chunks to the request waiting for them, hello and heartbeats to the adapter's
liveness. A message that does not parse, is over its bound or names another network is refused:
acknowledged, never applied, counted and audited (`edge.refused`) under the network.

`EdgeAdapter` is the `adapters.base.NetworkAdapter` of an edge network: the discovery and
snapshot services above the seam use it exactly as they use an in-process adapter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, cast

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from adapters import tasks, wire
from adapters.base import (
    AdapterError,
    AdapterUnavailable,
    CameraAuthError,
    CameraFailed,
    CameraProtocolError,
    CameraRead,
    CameraTimeout,
    CameraUnreachable,
    DiscoveryDone,
    DiscoveryEvent,
    DiscoveryProgress,
    Failure,
    FailureKind,
    HealthResult,
    SnapshotFailed,
    SnapshotRefused,
    SnapshotRequest,
    SnapshotResult,
    Target,
)
from adapters.quality.thresholds import Thresholds

from .audit import AuditEvent, AuditLog
from .errors import CamgwError
from .models import EdgeAdapterInfo, EdgeDiscovery
from .settings import EdgeSettings, Settings

log = logging.getLogger(__name__)

GATEWAY_GROUP = "gateway"
ADAPTER_GROUP = "adapter"
_READ_COUNT = 100
_BLOCK_MS = 1000
_RETRY_S = 1.0
_JOB_EVENTS = 1024  # events of one discovery job read but not yet taken by its consumer
_DEPTH_EVERY_S = 5.0  # how often the inbox depths the metrics show are measured
# A verdict's time beyond a picture's: the adapter's first diagnosis starts its worker process.
_JUDGE_S = 10.0


@dataclass(slots=True)
class EdgeStatus:
    """What the gateway knows of one edge adapter (from its hello and heartbeats)."""

    network: str
    adapter_version: str | None = None
    started_at: float | None = None
    last_heard: float | None = None  # wall clock of the last message read
    cameras: int = 0
    pending: int = 0
    last_discovery: wire.DiscoverySummary | None = None
    refused: Counter[str] = field(default_factory=Counter)
    inbox_depth: int | None = None  # as last measured (metrics; the API measures afresh)
    unmatched: int = 0  # answers to no request waiting here (late, or another gateway's)

    def age(self, now: float) -> float | None:
        return None if self.last_heard is None else max(0.0, now - self.last_heard)


@dataclass(slots=True)
class _Probe:
    """A probe's results as they arrive (several messages for many cameras)."""

    future: asyncio.Future[list[wire.ProbeOutcome]]
    deadline: float
    results: list[wire.ProbeOutcome] = field(default_factory=list)


@dataclass(slots=True)
class _Assembly:
    """A snapshot's chunks as they arrive."""

    future: asyncio.Future[SnapshotResult]
    deadline: float
    head: wire.SnapshotResult | None = None
    parts: dict[int, bytes] = field(default_factory=dict)


OrphanSink = Callable[[DiscoveryEvent], Awaitable[None]]


class EdgeHub:
    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        audit: AuditLog,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.cfg: EdgeSettings = settings.edge
        self.audit = audit
        self.clock = clock
        self.prefix = settings.redis.prefix
        self.consumer = f"gateway-{secrets.token_hex(4)}"
        self.networks = tuple(n.id for n in settings.networks if n.mode == "edge")
        self.status = {n: EdgeStatus(n) for n in self.networks}
        self.orphans: OrphanSink | None = None  # discovery events of no job waiting here
        self._jobs: dict[str, asyncio.Queue[DiscoveryEvent]] = {}
        self._probes: dict[str, _Probe] = {}
        self._snapshots: dict[str, _Assembly] = {}
        # a quality diagnosis's verdict, or a reference kept, by request
        self._answers: dict[str, asyncio.Future[wire.DiagnosisResult | wire.ReferenceResult]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        for network in self.networks:
            await self._groups(network)
            self._tasks.append(
                asyncio.create_task(self._read_outbox(network), name=f"edge-{network}")
            )
        if self.networks:
            self._tasks.append(asyncio.create_task(self._measure_depths(), name="edge-depths"))

    async def stop(self) -> None:
        await tasks.stop(*self._tasks)  # a Redis read may swallow one cancel: see tasks.stop
        self._tasks.clear()

    async def _groups(self, network: str) -> None:
        """The streams and their consumer groups, made once (BUSYGROUP: they exist)."""
        for key, group in (
            (wire.outbox(self.prefix, network), GATEWAY_GROUP),
            (wire.inbox(self.prefix, network), ADAPTER_GROUP),
        ):
            with contextlib.suppress(ResponseError):
                await self.redis.xgroup_create(key, group, id="0", mkstream=True)

    def adapter(self, network: str) -> EdgeAdapter:
        return EdgeAdapter(self, network)

    # -- liveness -------------------------------------------------------------------------

    def connected(self, network: str) -> bool:
        age = self.status[network].age(self.clock())
        return age is not None and age <= self.cfg.heartbeat_timeout_s

    def down(self, network: str) -> AdapterUnavailable:
        age = self.status[network].age(self.clock())
        since = "never heard from" if age is None else f"last heard from {age:.0f} s ago"
        return AdapterUnavailable(f"the {network} network's adapter is not connected ({since})")

    async def info(self, network: str) -> EdgeAdapterInfo:
        """The adapter as /networks and the metrics show it."""
        status, now = self.status[network], self.clock()
        last = status.last_discovery
        return EdgeAdapterInfo(
            connected=self.connected(network),
            heartbeat_age_s=None if (age := status.age(now)) is None else round(age, 1),
            adapter_version=status.adapter_version,
            started_at=_utc(status.started_at) if status.started_at else None,
            inbox_depth=await self.inbox_depth(network),
            cameras_known=status.cameras,
            last_discovery=EdgeDiscovery(
                job=last.job,
                state=last.state,
                at=_utc(last.at),
                enriched=last.enriched,
                failed=last.failed,
            )
            if last
            else None,
            refused=dict(status.refused),
        )

    async def inbox_depth(self, network: str) -> int | None:
        """Requests in the adapter's inbox it has not read yet, or has read and not answered
        (None: Redis could not say)."""
        key = wire.inbox(self.prefix, network)
        try:
            groups = await self.redis.xinfo_groups(key)
        except RedisError:
            return None
        depth = 0
        for group in groups:
            name = group.get("name")
            if name in (ADAPTER_GROUP, ADAPTER_GROUP.encode()):
                depth = int(group.get("lag") or 0) + int(group.get("pending") or 0)
        self.status[network].inbox_depth = depth
        return depth

    async def _measure_depths(self) -> None:
        while True:
            for network in self.networks:
                await self.inbox_depth(network)
            await asyncio.sleep(_DEPTH_EVERY_S)

    # -- requests -------------------------------------------------------------------------

    async def send(self, network: str, message: wire.WireModel) -> None:
        fields = wire.encode(message)
        await self.redis.xadd(
            wire.inbox(self.prefix, network),
            cast(dict[Any, Any], fields),
            maxlen=self.cfg.inbox_max_entries,
            approximate=True,
        )

    def open_job(self, job: str) -> asyncio.Queue[DiscoveryEvent]:
        queue: asyncio.Queue[DiscoveryEvent] = asyncio.Queue(maxsize=_JOB_EVENTS)
        self._jobs[job] = queue
        return queue

    def close_job(self, job: str) -> None:
        self._jobs.pop(job, None)

    def open_probe(self, request: str, deadline: float) -> asyncio.Future[list[wire.ProbeOutcome]]:
        future: asyncio.Future[list[wire.ProbeOutcome]] = asyncio.get_running_loop().create_future()
        self._probes[request] = _Probe(future, deadline)
        return future

    def close_probe(self, request: str) -> None:
        self._probes.pop(request, None)

    def open_snapshot(self, request: str, deadline: float) -> asyncio.Future[SnapshotResult]:
        future: asyncio.Future[SnapshotResult] = asyncio.get_running_loop().create_future()
        self._snapshots[request] = _Assembly(future, deadline)
        return future

    def close_snapshot(self, request: str) -> None:
        self._snapshots.pop(request, None)

    def open_answer(
        self, request: str
    ) -> asyncio.Future[wire.DiagnosisResult | wire.ReferenceResult]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[wire.DiagnosisResult | wire.ReferenceResult] = loop.create_future()
        self._answers[request] = future
        return future

    def close_answer(self, request: str) -> None:
        self._answers.pop(request, None)

    # -- the outbox -----------------------------------------------------------------------

    async def _read_outbox(self, network: str) -> None:
        key = wire.outbox(self.prefix, network)
        cursor = "0"  # first our own pending entries (a restart), then new ones
        while True:
            try:
                reply = cast(
                    list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]],
                    await self.redis.xreadgroup(
                        GATEWAY_GROUP,
                        self.consumer,
                        {key: cursor},
                        count=_READ_COUNT,
                        block=None if cursor != ">" else _BLOCK_MS,
                    ),
                )
                entries = reply[0][1] if reply else []
                if cursor != ">" and not entries:  # the history is done: new entries from now on
                    cursor = ">"
                    await self._claim_abandoned(network, key)
                    continue
                for entry_id, fields in entries:
                    await self._handle(network, entry_id, fields)
                await self._done(key, [entry_id for entry_id, _ in entries])
                if cursor != ">":
                    cursor = entries[-1][0].decode()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning(
                    "edge outbox unreadable, retrying",
                    extra={"network": network, "error": type(exc).__name__},
                )
                await asyncio.sleep(_RETRY_S)
            except Exception:  # a bug handling one message must not stop the network's reader
                log.exception("edge outbox reader error", extra={"network": network})
                await asyncio.sleep(_RETRY_S)

    async def _claim_abandoned(self, network: str, key: str) -> None:
        """Entries another gateway read and never acknowledged (it died): handled here."""
        start = "0-0"
        while True:
            reply = await self.redis.xautoclaim(
                key,
                GATEWAY_GROUP,
                self.consumer,
                min_idle_time=int(self.cfg.reclaim_idle_s * 1000),
                start_id=start,
                count=_READ_COUNT,
            )
            start = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
            claimed = cast(list[tuple[bytes, dict[bytes, bytes]]], reply[1])
            for entry_id, fields in claimed:
                await self._handle(network, entry_id, fields)
            await self._done(key, [entry_id for entry_id, _ in claimed])
            if not claimed or start == "0-0":
                return

    async def _done(self, key: str, ids: list[bytes]) -> None:
        """Applied: acknowledged and deleted at once (one round trip), so that the outbox never
        holds what was applied (a snapshot's chunks are most of its bytes)."""
        if not ids:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xack(key, GATEWAY_GROUP, *ids)
            pipe.xdel(key, *ids)
            await pipe.execute()

    async def _handle(self, network: str, entry_id: object, fields: dict[bytes, bytes]) -> None:
        try:
            message, payload = wire.decode_from_adapter(fields, self.cfg.max_message_bytes)
            named = getattr(message, "network", network)
            if named != network:
                raise wire.Refused(
                    "wrong-network", f"names network {str(named)[:32]!r}, not {network!r}"
                )
            await self._route(network, message, payload)
        except wire.Refused as exc:
            await self._refuse(network, entry_id, exc)

    async def _route(self, network: str, message: wire.FromAdapter, payload: bytes) -> None:
        status = self.status[network]
        status.last_heard = self.clock()
        if isinstance(message, wire.Hello):
            status.adapter_version, status.started_at = message.adapter_version, message.started_at
            log.info(
                "edge adapter connected",
                extra={"network": network, "version": message.adapter_version},
            )
        elif isinstance(message, wire.Heartbeat):
            status.pending, status.cameras = message.pending, message.cameras
            status.last_discovery = message.last_discovery
        elif isinstance(message, wire.ProbeResult):
            self._answer_probe(network, message)
        elif isinstance(message, wire.SnapshotResult):
            self._chunk(network, message, payload)
        elif isinstance(message, wire.SnapshotFailed):
            self._fail_snapshot(network, message)
        elif isinstance(message, wire.DiagnosisResult | wire.ReferenceResult):
            waiting = self._answers.pop(message.request, None)
            if waiting is None or waiting.done():
                self.status[network].unmatched += 1
            else:
                waiting.set_result(message)
        else:
            await self._discovery_event(network, message)

    async def _discovery_event(
        self,
        network: str,
        message: wire.DiscoveryProgress | wire.CameraRead | wire.CameraFailed | wire.DiscoveryDone,
    ) -> None:
        event = to_event(network, message)
        queue = self._jobs.get(message.job)
        if queue is not None:
            await queue.put(event)  # the job's consumer applies it (backpressure: bounded)
        elif self.orphans is not None and isinstance(event, CameraRead | CameraFailed):
            # A job that ended here (or a gateway that restarted): still the network's truth.
            await self.orphans(event)

    def _answer_probe(self, network: str, message: wire.ProbeResult) -> None:
        waiting = self._probes.get(message.request)
        if waiting is None or waiting.future.done():
            self.status[network].unmatched += 1  # too late, or another gateway's request
            return
        waiting.results.extend(message.results)
        if len(waiting.results) > wire.PROBE_BATCH:
            raise wire.Refused("sequence", "more probe results than cameras asked about")
        if not message.more:
            self._probes.pop(message.request, None)
            waiting.future.set_result(waiting.results)

    def _chunk(self, network: str, message: wire.SnapshotResult, payload: bytes) -> None:
        assembly = self._snapshots.get(message.request)
        if assembly is None or assembly.future.done():
            self.status[network].unmatched += 1
            return
        if assembly.head is None:
            assembly.head = message
        elif (assembly.head.chunks, assembly.head.bytes) != (message.chunks, message.bytes):
            raise wire.Refused("sequence", "snapshot chunks disagree about the picture's size")
        if message.index >= message.chunks or message.index in assembly.parts:
            raise wire.Refused("sequence", "snapshot chunk out of sequence")
        assembly.parts[message.index] = payload
        if len(assembly.parts) < message.chunks:
            return
        jpeg = b"".join(assembly.parts[i] for i in range(message.chunks))
        self._snapshots.pop(message.request, None)
        if len(jpeg) != message.bytes:
            assembly.future.set_exception(
                SnapshotFailed([("edge adapter", CameraProtocolError("picture arrived cut"))])
            )
            raise wire.Refused("sequence", "snapshot bytes do not add up")
        head = assembly.head
        assembly.future.set_result(
            SnapshotResult(
                jpeg, head.source, head.taken_at, head.warm, tuple(head.attempts), head.note
            )
        )

    def _fail_snapshot(self, network: str, message: wire.SnapshotFailed) -> None:
        answer = self._answers.pop(message.request, None)  # (a diagnosis fails alike)
        if answer is not None and not answer.done():
            answer.set_exception(snapshot_error(network, message))
            return
        assembly = self._snapshots.pop(message.request, None)
        if assembly is None or assembly.future.done():
            self.status[network].unmatched += 1
            return
        assembly.future.set_exception(snapshot_error(network, message))

    async def _refuse(self, network: str, entry_id: object, refusal: wire.Refused) -> None:
        self.status[network].refused[refusal.kind] += 1
        reason = refusal.reason
        text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        log.warning(
            "edge message refused", extra={"network": network, "entry": text, "reason": reason}
        )
        with contextlib.suppress(CamgwError):
            await self.audit.append(
                AuditEvent(
                    actor=f"adapter:{network}",
                    role="adapter",
                    action="edge.refused",
                    target=text,
                    network=network,
                    outcome="invalid",
                    status=422,
                    detail=reason,
                )
            )


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def to_event(
    network: str,
    message: wire.DiscoveryProgress | wire.CameraRead | wire.CameraFailed | wire.DiscoveryDone,
) -> DiscoveryEvent:
    """A validated outbox message as the seam's discovery event."""
    if isinstance(message, wire.CameraRead):
        return CameraRead(wire.from_info(network, message.camera))
    if isinstance(message, wire.CameraFailed):
        kind = FailureKind(message.kind)
        return CameraFailed(
            Failure(
                network,
                None,
                kind,
                message.reason,
                None,
                message.ref,
                credentials_fp=message.credentials_fp,
            )
        )
    if isinstance(message, wire.DiscoveryProgress):
        return DiscoveryProgress(message.found, message.ignored, dict(message.ignored_by_reason))
    return DiscoveryDone(message.error if message.state == "failed" else None)


def snapshot_error(network: str, message: wire.SnapshotFailed) -> AdapterError:
    """A typed failure from the adapter as the seam's error (no meaning read from text)."""
    if message.kind == "refused":
        return SnapshotRefused(message.reason)
    if message.kind in ("timeout", "expired"):
        return CameraTimeout(message.reason)
    errors: dict[str, type[AdapterError]] = {
        "unreachable": CameraUnreachable,
        "auth": CameraAuthError,
        "protocol": CameraProtocolError,
    }
    return SnapshotFailed([(f"{network} adapter", errors[message.kind](message.reason))])


class EdgeAdapter:
    """An edge network's adapter as the gateway sees it: the seam, carried by Redis streams."""

    def __init__(self, hub: EdgeHub, network: str) -> None:
        self.hub = hub
        self.network = network

    async def discover(self, job: str, actor: str = "") -> AsyncIterator[DiscoveryEvent]:
        hub, cfg = self.hub, self.hub.cfg
        if not hub.connected(self.network):
            raise hub.down(self.network)
        queue = hub.open_job(job)
        try:
            deadline = hub.clock() + cfg.discovery_timeout_s
            await hub.send(self.network, wire.Discover(job=job, actor=actor, deadline=deadline))
            while True:
                try:
                    async with asyncio.timeout(cfg.heartbeat_timeout_s):
                        event = await queue.get()
                except TimeoutError:
                    # Quiet: wait on while the adapter is alive (a restarted one runs the
                    # discovery again from its inbox), fail once it has been gone for a while.
                    age = hub.status[self.network].age(hub.clock())
                    if age is None or age > cfg.heartbeat_timeout_s + cfg.restart_grace_s:
                        raise hub.down(self.network) from None
                    if hub.clock() > deadline:
                        raise AdapterUnavailable("the discovery did not finish in time") from None
                    continue
                yield event
                if isinstance(event, DiscoveryDone):
                    return
        finally:
            hub.close_job(job)

    async def probe(self, targets: Sequence[Target]) -> list[HealthResult]:
        """One request per `wire.PROBE_BATCH` cameras, all at once; a batch not answered in
        time says nothing about its cameras."""
        by_ref = {t.ref: t for t in targets if t.ref}
        if not by_ref or not self.hub.connected(self.network):
            return []  # nothing learnt: a silent adapter says nothing about its cameras
        refs = list(by_ref)
        batches = [refs[i : i + wire.PROBE_BATCH] for i in range(0, len(refs), wire.PROBE_BATCH)]
        answers = await asyncio.gather(*(self._probe(batch) for batch in batches))
        return [
            HealthResult(by_ref[o.ref].address, o.ok, o.error, o.latency_ms, o.ref)
            for outcomes in answers
            for o in outcomes
            if o.ref in by_ref
        ]

    async def _probe(self, refs: list[str]) -> list[wire.ProbeOutcome]:
        hub = self.hub
        request = f"probe-{secrets.token_hex(6)}"
        deadline = hub.clock() + hub.cfg.probe_timeout_s
        future = hub.open_probe(request, deadline)
        try:
            await hub.send(self.network, wire.Probe(request=request, refs=refs, deadline=deadline))
            async with asyncio.timeout(hub.cfg.probe_timeout_s):
                return await future
        except TimeoutError:
            return []
        finally:
            hub.close_probe(request)

    async def snapshot(self, request: SnapshotRequest) -> SnapshotResult:
        hub = self.hub
        if not hub.connected(self.network):
            raise hub.down(self.network)
        if request.ref is None:
            raise SnapshotFailed(
                [("edge adapter", CameraProtocolError("the camera has no adapter ref yet"))]
            )
        request_id = request.request_id or f"snap-{secrets.token_hex(6)}"
        deadline = request.deadline or hub.clock() + hub.cfg.snapshot_timeout_s
        future = hub.open_snapshot(request_id, deadline)
        try:
            await hub.send(
                self.network,
                wire.Snapshot(
                    request=request_id,
                    ref=request.ref,
                    requester=request.requester[:500],
                    role=request.role[:128],
                    reason=request.reason[:500],
                    width=request.width,
                    deadline=deadline,
                ),
            )
            async with asyncio.timeout(max(0.0, deadline - hub.clock())):
                return await future
        except TimeoutError:
            raise CameraTimeout(
                f"no picture from the {self.network} network's adapter in time"
            ) from None
        finally:
            hub.close_snapshot(request_id)

    async def diagnose(
        self,
        ref: str,
        requester: str,
        reason: str,
        night: bool,
        thresholds: Thresholds,
        previous: wire.PreviousPicture | None,
    ) -> wire.DiagnosisResult:
        """The adapter's verdict on the camera's picture (docs/quality.md): the picture is
        judged inside the network and never leaves it."""
        request_id = f"diag-{secrets.token_hex(6)}"
        deadline = self.hub.clock() + self.hub.cfg.snapshot_timeout_s + _JUDGE_S
        message = wire.Diagnose(
            request=request_id,
            ref=ref,
            requester=requester[:500],
            reason=reason[:500],
            night=night,
            thresholds=thresholds,
            previous=previous,
            deadline=deadline,
        )
        answer = await self._ask(message, deadline, "no verdict")
        if not isinstance(answer, wire.DiagnosisResult):
            raise CameraProtocolError("the adapter answered a diagnosis with something else")
        return answer

    async def reference(
        self, ref: str, period: Literal["day", "night"], action: Literal["accept", "delete"],
        requester: str,
    ) -> wire.ReferenceResult:  # fmt: skip
        """Have the adapter keep the camera's picture now as its reference of the period (or
        forget it): the picture stays in the network; the answer says its size."""
        request_id = f"ref-{secrets.token_hex(6)}"
        deadline = self.hub.clock() + self.hub.cfg.snapshot_timeout_s
        message = wire.Reference(
            request=request_id,
            ref=ref,
            period=period,
            action=action,
            requester=requester[:500],
            deadline=deadline,
        )
        answer = await self._ask(message, deadline, "no answer")
        if not isinstance(answer, wire.ReferenceResult):
            raise CameraProtocolError("the adapter answered a reference with something else")
        return answer

    async def _ask(
        self, message: wire.Diagnose | wire.Reference, deadline: float, none: str
    ) -> wire.DiagnosisResult | wire.ReferenceResult:
        hub = self.hub
        if not hub.connected(self.network):
            raise hub.down(self.network)
        future = hub.open_answer(message.request)
        try:
            await hub.send(self.network, message)
            async with asyncio.timeout(max(0.0, deadline - hub.clock())):
                return await future
        except TimeoutError:
            raise CameraTimeout(
                f"{none} from the {self.network} network's adapter in time"
            ) from None
        finally:
            hub.close_answer(message.request)

    async def close(self) -> None:
        return None
