"""The adapter's side of the edge (`camgw adapter`): inside its network, it reads its inbox,
does what is asked with the same `CameraNetworkAdapter` the gateway runs in process, applies its
owner's export policy, and writes what may leave to its outbox (docs/edge.md).

It opens one kind of connection, outward to the registry Redis, and listens on no port. It
keeps its cameras' table (what it read, before the policy), their own credentials (sealed with
its key) and its own hash-chained log of every request on its machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, cast

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from . import tasks, wire
from .audit_log import LOG_PURPOSE, AdapterLog, AdapterLogError, LogEvent, Outcome
from .base import (
    AdapterError,
    CameraAuthError,
    CameraFailed,
    CameraRead,
    CameraTimeout,
    CameraUnreachable,
    Discovered,
    DiscoveryDone,
    DiscoveryEvent,
    DiscoveryProgress,
    SnapshotFailed,
    SnapshotRequest,
    SnapshotResult,
    Target,
)
from .export import ExportPolicy, SnapshotGate, exported, is_shared, reveals
from .imaging import BadImage, jpeg_size, render
from .network import AdapterSpec, CameraNetworkAdapter
from .quality.checks import Signature
from .quality.job import JobResult
from .quality.worker import Worker, WorkerDied
from .remote_config import AdapterConfig
from .uris import UriCredentials, uri_port
from .vault import CredentialVault

log = logging.getLogger(__name__)

ADAPTER_GROUP = "adapter"
REF_PURPOSE = "camgw adapter refs v1"
_READ_COUNT = 16
_BLOCK_MS = 1000
_RETRY_S = 1.0
_SEND_BATCH = 32  # a discovery's messages per pipelined round trip to the outbox


def adapter_version() -> str:
    try:
        return version("camgw")
    except PackageNotFoundError:
        return "0+unknown"


class CameraTable:
    """What this adapter read of each camera, by ref, kept on disk: a restarted adapter answers
    snapshots and probes before its next discovery."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.cameras: dict[str, Discovered] = {}
        self.targets: dict[str, Target] = {}

    def load(self) -> None:
        try:
            raw = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return
        except (OSError, orjson.JSONDecodeError) as exc:
            log.warning("camera table unreadable; starting empty", extra={"error": str(exc)})
            return
        for item in raw if isinstance(raw, list) else []:
            with contextlib.suppress(KeyError, TypeError, ValueError):  # (ValidationError too)
                info = wire.CameraInfo.model_validate(item["camera"])
                camera = wire.from_info(str(item["network"]), info)
                self.put(camera, Target(**item["target"]))

    def put(self, camera: Discovered, target: Target) -> None:
        assert camera.ref is not None
        self.cameras[camera.ref] = camera
        self.targets[camera.ref] = target

    def save(self) -> None:
        """Atomically: a crash leaves the old table or the new one."""
        items = [
            {
                "network": c.network,
                "camera": wire.to_info(c).model_dump(mode="json"),
                "target": {
                    "address": t.address,
                    "port": t.port,
                    "xaddrs": list(t.xaddrs),
                    "kind": t.kind,
                    "rtsp_uri": t.rtsp_uri,
                    "endpoint_reference": t.endpoint_reference,
                    "ref": t.ref,
                },
            }
            for ref, c in self.cameras.items()
            if (t := self.targets.get(ref)) is not None
        ]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(items))
        os.replace(tmp, self.path)


class EdgeRunner:
    def __init__(
        self,
        cfg: AdapterConfig,
        redis: Redis,
        vault: CredentialVault,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg
        self.redis = redis
        self.vault = vault
        self.clock = clock
        self.network = cfg.network
        self.inbox = wire.inbox(cfg.redis.prefix, cfg.network)
        self.outbox = wire.outbox(cfg.redis.prefix, cfg.network)
        self.consumer = f"adapter-{cfg.network}"  # one name: a restart finds its own pending
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        self.table = CameraTable(cfg.state_dir / "cameras.json")
        self.table.load()
        self.log = AdapterLog(cfg.state_dir / "log", vault.derive(LOG_PURPOSE), clock=clock)
        self.gate = SnapshotGate(cfg.network, clock=clock)
        self.adapter = CameraNetworkAdapter(
            AdapterSpec(
                cfg.network,
                cfg.cidrs,
                cfg.discovery,
                cfg.credentials.resolve() if cfg.credentials else None,
                cfg.snapshots,
                cfg.access,
                ref_key=vault.derive(REF_PURPOSE),
            )
        )
        self.started_at = clock()
        self.pending = 0
        self.last_discovery: wire.DiscoverySummary | None = None
        self._slots = asyncio.Semaphore(cfg.concurrency)
        self._discovering = asyncio.Lock()
        self._frames: dict[str, tuple[float, SnapshotResult]] = {}
        self._fetching: dict[str, asyncio.Task[SnapshotResult]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sealed: tuple[int, dict[str, object]] | None = None  # credentials.json, by mtime
        self.worker = Worker()  # the quality diagnosis's process, started at the first one
        self._pruned = 0.0  # when expired pictures were last dropped (`_forget_old_frames`)

    # -- the process ----------------------------------------------------------------------

    async def run(self) -> None:
        """Until cancelled: hello, heartbeats, and every request of the inbox (the gateway
        creates the streams and their groups; until it has, reading is retried)."""
        await self.send(
            wire.Hello(
                network=self.network,
                adapter_version=adapter_version(),
                started_at=self.started_at,
            )
        )
        beat = asyncio.create_task(self._heartbeats(), name="edge-heartbeat")
        try:
            await self._read_inbox()
        finally:
            # A heartbeat's XADD may swallow one cancel (tasks.stop says how): never gather
            # after a single cancel, or a stopping adapter can hang here for good. Each step
            # runs even if a second cancel interrupts the one before (the adapter's HTTP
            # sessions would be left open).
            try:
                await tasks.stop(beat, *self._tasks)
            finally:
                try:
                    await self.adapter.close()
                finally:
                    await self.log.close()
                    await asyncio.to_thread(self.worker.close)

    async def send(self, message: wire.WireModel, payload: bytes = b"") -> None:
        await self.redis.xadd(
            self.outbox,
            cast(dict[Any, Any], wire.encode(message, payload)),
            maxlen=self.cfg.outbox_max_entries,
            approximate=True,
        )

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.heartbeat_s)
            with contextlib.suppress(RedisError, OSError):
                await self.send(
                    wire.Heartbeat(
                        network=self.network,
                        at=self.clock(),
                        pending=self.pending,
                        cameras=len(self.table.cameras),
                        last_discovery=self.last_discovery,
                    )
                )

    async def _read_inbox(self) -> None:
        cursor = "0"  # what this adapter read before a restart and never finished, first
        while True:
            try:
                reply = cast(
                    list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]],
                    await self.redis.xreadgroup(
                        ADAPTER_GROUP,
                        self.consumer,
                        {self.inbox: cursor},
                        count=_READ_COUNT,
                        block=None if cursor != ">" else _BLOCK_MS,
                    ),
                )
                entries = reply[0][1] if reply else []
                if cursor != ">" and not entries:  # the history is done: new entries from now on
                    cursor = ">"
                    continue
                for entry_id, fields in entries:
                    if cursor != ">":
                        cursor = entry_id.decode()
                    await self._accept(entry_id, fields)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("inbox unreadable, retrying", extra={"error": type(exc).__name__})
                await asyncio.sleep(_RETRY_S)

    async def _accept(self, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        try:
            message, _ = wire.decode_to_adapter(fields)
        except wire.Refused as exc:  # no request to answer: said in its own log only
            log.warning("inbox message refused", extra={"reason": exc.reason})
            await self.redis.xack(self.inbox, ADAPTER_GROUP, entry_id)
            return
        await self._slots.acquire()
        self.pending += 1
        task = asyncio.create_task(self._handle(entry_id, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, entry_id: bytes, message: wire.ToAdapter) -> None:
        try:
            if message.deadline < self.clock():
                await self._expired(message)
            elif isinstance(message, wire.Discover):
                await self._discover(message)
            elif isinstance(message, wire.Probe):
                await self._probe(message)
            elif isinstance(message, wire.Diagnose):
                await self._diagnose(message)
            elif isinstance(message, wire.Reference):
                await self._reference(message)
            else:
                await self._snapshot(message)
            await self.redis.xack(self.inbox, ADAPTER_GROUP, entry_id)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug with one request; left pending, retried after a restart
            log.exception("request failed", extra={"network": self.network})
        finally:
            self.pending -= 1
            self._slots.release()

    async def _expired(self, message: wire.ToAdapter) -> None:
        request = message.job if isinstance(message, wire.Discover) else message.request
        await self.log.append(
            LogEvent(request, message.type, "expired", detail="past its deadline")
        )
        if isinstance(message, wire.Snapshot | wire.Diagnose | wire.Reference):
            await self.send(
                wire.SnapshotFailed(
                    request=message.request, kind="expired", reason="the request expired"
                )
            )

    # -- discovery ------------------------------------------------------------------------

    async def _discover(self, message: wire.Discover) -> None:
        async with self._discovering:  # one run at a time; a second waits its turn
            summary = wire.DiscoverySummary(job=message.job, state="running", at=self.clock())
            self.last_discovery = summary
            # On the owner's disk before any record leaves (the end is logged with its counts).
            await self.log.append(
                LogEvent(message.job, "discover", "answered", requester=message.actor,
                         detail="started")
            )  # fmt: skip
            read = withheld = failed = 0
            failure: str | None = None
            batch: list[dict[str, bytes]] = []
            async for event in self.adapter.discover(message.job, message.actor):
                out = self._outgoing(message.job, event)
                if isinstance(event, CameraRead):
                    read += 1
                    if out is None:
                        withheld += 1
                elif isinstance(event, CameraFailed):
                    failed += 1
                elif isinstance(event, DiscoveryDone):
                    failure = event.error
                if out is not None:
                    batch.append(out)
                if len(batch) >= _SEND_BATCH or not isinstance(event, CameraRead | CameraFailed):
                    await self._send_all(batch)  # progress and the end go out at once
                    batch = []
            await self._send_all(batch)
            await asyncio.to_thread(self.table.save)
            state = "failed" if failure else "done"
            self.last_discovery = wire.DiscoverySummary(
                job=message.job,
                state=state,
                at=self.clock(),
                enriched=read - withheld,
                failed=failed,
            )
            await self.log.append(
                LogEvent(
                    message.job,
                    "discover",
                    "failed" if failure else "answered",
                    requester=message.actor,
                    detail=f"read {read}, shared {read - withheld}, failed {failed}",
                )
            )

    async def _send_all(self, batch: list[dict[str, bytes]]) -> None:
        """Encoded messages in one round trip (a discovery's records: one XADD each)."""
        if not batch:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for fields in batch:
                pipe.xadd(
                    self.outbox,
                    cast(dict[Any, Any], fields),
                    maxlen=self.cfg.outbox_max_entries,
                    approximate=True,
                )
            await pipe.execute()

    def _outgoing(self, job: str, event: DiscoveryEvent) -> dict[str, bytes] | None:
        """An event as it may leave, encoded: the owner's policy applied, nothing else of it."""
        if isinstance(event, CameraRead):
            camera = event.camera
            if camera.ref is None or camera.address is None:
                return None
            self.table.put(camera, _target_of(camera))
            info = exported(wire.to_info(camera), self.cfg.export)
            if info is None:
                return None
            fields = wire.encode(wire.CameraRead(job=job, camera=info))
            if len(fields["m"]) <= wire.MAX_MESSAGE_BYTES:
                return fields
            reason = "its record is too large to share (over one message)"
            too_large = wire.CameraFailed(job=job, ref=camera.ref, kind="normalise", reason=reason)
            return wire.encode(too_large)
        if isinstance(event, CameraFailed):
            f = event.failure
            known = wire.CameraInfo(ref=f.ref or _NO_REF, address=f.address)
            reason = f.reason[:500]
            if reveals(reason, known, self.cfg.export):
                reason = f"{f.kind.value} (details withheld by the network's policy)"
            return wire.encode(
                wire.CameraFailed(
                    job=job,
                    ref=f.ref,
                    kind=f.kind.value,
                    reason=reason,
                    credentials_fp=f.credentials_fp,
                )
            )
        if isinstance(event, DiscoveryProgress):
            return wire.encode(
                wire.DiscoveryProgress(
                    job=job,
                    found=event.found,
                    enriched=0,
                    failed=0,
                    ignored=event.ignored,
                    ignored_by_reason={k[:80]: v for k, v in event.ignored_by_reason.items()},
                )
            )
        state = "failed" if event.error else "done"
        return wire.encode(wire.DiscoveryDone(job=job, state=state, error=event.error))

    # -- health ---------------------------------------------------------------------------

    async def _probe(self, message: wire.Probe) -> None:
        policy = self.cfg.export
        shared = {
            r: wire.to_info(self.table.cameras[r])
            for r in message.refs
            if r in self.table.cameras and is_shared(wire.to_info(self.table.cameras[r]), policy)
        }
        results = await self.adapter.probe([self.table.targets[r] for r in shared])
        outcomes = [
            wire.ProbeOutcome(
                ref=r.ref,
                ok=r.ok,
                error=_screened(r.error, shared[r.ref], policy),
                latency_ms=r.latency_ms,
            )
            for r in results
            if r.ref in shared
        ]
        await self.log.append(  # logged before it leaves (a failure leaves it unanswered)
            LogEvent(
                message.request,
                "probe",
                "answered",
                detail=f"{len(outcomes)} of {len(message.refs)} cameras",
            )
        )
        for answer in wire.probe_results(message.request, outcomes):
            await self.send(answer)

    # -- snapshots ------------------------------------------------------------------------

    async def _snapshot(self, message: wire.Snapshot) -> None:
        entry = LogEvent(
            message.request,
            "snapshot",
            "answered",
            camera=message.ref,
            requester=message.requester,
            role=message.role,
            reason=message.reason,
        )
        info = await self._shared_camera(message, entry)
        if info is None:
            return
        refusal = self.gate.decide(message, self.cfg.export)
        if refusal is not None:
            await self._snapshot_failed(message, "refused", refusal.reason, entry)
            return
        try:
            async with asyncio.timeout(max(0.0, message.deadline - self.clock())):
                result = await self._frame(message.ref)
                jpeg = await self._within_policy(result.jpeg, message)
        except TimeoutError:
            await self._snapshot_failed(message, "timeout", "no picture in time", entry)
            return
        except (AdapterError, BadImage) as exc:
            reason = str(exc)[:500]
            if reveals(reason, info, self.cfg.export):
                reason = "the camera gave no picture (details withheld by the network's policy)"
            await self._snapshot_failed(message, _snapshot_kind(exc), reason, entry)
            return
        # On the owner's disk before it leaves: what is not in the log has not left.
        try:
            await self.log.append(replace(entry, bytes=len(jpeg)))
        except AdapterLogError as exc:
            log.error("adapter log unwritable; refusing", extra={"error": str(exc)[:300]})
            reason = "the adapter cannot record the request in its log"
            await self.send(
                wire.SnapshotFailed(request=message.request, kind="refused", reason=reason)
            )
            return
        pieces = wire.chunks(jpeg)
        for index, piece in enumerate(pieces):
            await self.send(
                wire.SnapshotResult(
                    request=message.request,
                    source="rtsp-grab" if result.source == "rtsp-grab" else "camera-http",
                    taken_at=result.taken_at,
                    bytes=len(jpeg),
                    chunks=len(pieces),
                    index=index,
                    warm=result.warm,
                    attempts=[a[:500] for a in result.attempts[:8]],
                    note=result.note[:500] if result.note else None,
                ),
                piece,
            )

    async def _shared_camera(
        self, message: wire.Snapshot | wire.Diagnose, entry: LogEvent
    ) -> wire.CameraInfo | None:
        """The camera a request names, if this adapter knows it and the network shares it
        (a ref from before a tighter policy is refused); else the failure is answered."""
        camera = self.table.cameras.get(message.ref)
        if camera is None:
            reason = "this adapter does not know the camera (run a discovery)"
            await self._snapshot_failed(message, "unreachable", reason, entry)
            return None
        info = wire.to_info(camera)
        if not is_shared(info, self.cfg.export):
            reason = f"the {self.network} network does not share this camera"
            await self._snapshot_failed(message, "refused", reason, entry)
            return None
        return info

    async def _snapshot_failed(
        self,
        message: wire.Snapshot | wire.Diagnose | wire.Reference,
        kind: wire.SnapshotFailureKind,
        reason: str,
        entry: LogEvent,
    ) -> None:
        outcome: Outcome = "refused" if kind == "refused" else "failed"
        with contextlib.suppress(AdapterLogError):  # a refusal leaves nothing: sent regardless
            await self.log.append(replace(entry, outcome=outcome, detail=reason))
        await self.send(wire.SnapshotFailed(request=message.request, kind=kind, reason=reason))

    # -- quality diagnosis ----------------------------------------------------------------

    async def _diagnose(self, message: wire.Diagnose) -> None:
        """Judge the camera's picture here; only the verdict leaves (measures, a digest for
        the frozen check), never the picture: allowed whatever the policy says of snapshots,
        unless the owner turned `diagnosis` off. A failure answers `snapshot.failed`."""
        entry = LogEvent(
            message.request,
            "diagnose",
            "answered",
            camera=message.ref,
            requester=message.requester,
            reason=message.reason,
        )
        info = await self._shared_camera(message, entry)
        if info is None:
            return
        if not self.cfg.export.diagnosis:
            reason = f"the {self.network} network does not diagnose its cameras for the town"
            await self._snapshot_failed(message, "refused", reason, entry)
            return
        previous = (
            Signature(bytes.fromhex(message.previous.digest), message.previous.taken_at)
            if message.previous
            else None
        )
        try:
            async with asyncio.timeout(max(0.0, message.deadline - self.clock())):
                result = await self._frame(message.ref)
                reference = await asyncio.to_thread(self._reference_of, message.ref, message.night)
                judged = await self.worker.judge(
                    result.jpeg, message.thresholds, reference, previous, result.taken_at
                )
        except TimeoutError:
            await self._snapshot_failed(message, "timeout", "no verdict in time", entry)
            return
        except (AdapterError, BadImage) as exc:
            reason = str(exc)[:500]
            if reveals(reason, info, self.cfg.export):
                reason = "the camera gave no picture (details withheld by the network's policy)"
            await self._snapshot_failed(message, _snapshot_kind(exc), reason, entry)
            return
        except WorkerDied as exc:
            await self._snapshot_failed(message, "protocol", str(exc), entry)
            return
        except ValueError as exc:  # not a picture the diagnosis judges (no decode, a sliver)
            reason = f"the picture could not be judged: {str(exc)[:300]}"
            await self._snapshot_failed(message, "protocol", reason, entry)
            return
        self._forget_old_frames()
        answer = _verdict(message.request, result, judged)
        try:  # what left is on the owner's disk first, as for a snapshot
            await self.log.append(replace(entry, detail=f"verdict {answer.status}"))
        except AdapterLogError as exc:
            log.error("adapter log unwritable; refusing", extra={"error": str(exc)[:300]})
            reason = "the adapter cannot record the request in its log"
            await self.send(
                wire.SnapshotFailed(request=message.request, kind="refused", reason=reason)
            )
            return
        await self.send(answer)

    # -- reference frames: kept here, for this adapter's diagnoses ----------------------

    def _reference_path(self, ref: str, period: str) -> Path:
        return self.cfg.state_dir / "references" / f"{ref}.{period}.jpg"

    def _reference_of(self, ref: str, night: bool) -> bytes | None:
        """Blocking: the camera's reference JPEG of the period, if one was accepted."""
        try:
            return self._reference_path(ref, "night" if night else "day").read_bytes()
        except OSError:
            return None

    async def _reference(self, message: wire.Reference) -> None:
        """Accept the camera's picture now as its reference of the period (kept in the state
        directory; the picture does not leave), or delete it. Answers its size only."""
        entry = LogEvent(
            message.request,
            "reference",
            "answered",
            camera=message.ref,
            requester=message.requester,
            reason=f"{message.action} {message.period}",
        )
        camera = self.table.cameras.get(message.ref)
        if camera is None or not is_shared(wire.to_info(camera), self.cfg.export):
            reason = "this adapter does not know the camera (run a discovery)"
            await self._snapshot_failed(message, "unreachable", reason, entry)
            return
        path = self._reference_path(message.ref, message.period)
        if message.action == "delete":
            existed = path.exists()
            path.unlink(missing_ok=True)
            await self.log.append(replace(entry, detail="deleted" if existed else "none"))
            answer = wire.ReferenceResult(
                request=message.request,
                period=message.period,
                bytes=0,
                width=0,
                height=0,
                existed=existed,
            )
            await self.send(answer)
            return
        try:
            async with asyncio.timeout(max(0.0, message.deadline - self.clock())):
                result = await self._frame(message.ref)
            width, height = jpeg_size(result.jpeg, self.cfg.snapshots.max_pixels)
        except TimeoutError:
            await self._snapshot_failed(message, "timeout", "no picture in time", entry)
            return
        except (AdapterError, BadImage) as exc:
            reason = "the camera gave no picture to accept as its reference"
            await self._snapshot_failed(message, _snapshot_kind(exc), reason, entry)
            return
        await asyncio.to_thread(_write_atomically, path, result.jpeg)
        await self.log.append(replace(entry, detail=f"kept {len(result.jpeg)} bytes"))
        await self.send(
            wire.ReferenceResult(
                request=message.request,
                period=message.period,
                bytes=len(result.jpeg),
                width=width,
                height=height,
                existed=True,
            )
        )

    def _forget_old_frames(self) -> None:
        """A round reads every camera's picture: those past the cache's lifetime are dropped
        (at most once a lifetime), so that the adapter does not keep the whole network's."""
        now, ttl = self.clock(), self.cfg.cache_ttl_s
        if now - self._pruned < max(1.0, ttl):
            return
        self._pruned = now
        for ref in [r for r, (at, _) in self._frames.items() if now - at > ttl]:
            del self._frames[ref]

    async def _frame(self, ref: str) -> SnapshotResult:
        """The camera's picture, shared by requests close together (one fetch at a time)."""
        cached = self._frames.get(ref)
        if cached is not None and self.clock() - cached[0] <= self.cfg.cache_ttl_s:
            return cached[1]
        task = self._fetching.get(ref)
        if task is None:
            task = asyncio.create_task(self._fetch(ref))
            self._fetching[ref] = task
            task.add_done_callback(lambda _: self._fetching.pop(ref, None))
        return await asyncio.shield(task)

    async def _fetch(self, ref: str) -> SnapshotResult:
        camera = self.table.cameras[ref]
        stream = next((p.stream_uri for p in camera.profiles if p.stream_uri), None)
        ports = frozenset(p for u in _camera_uris(camera) if (p := uri_port(u)))
        result = await self.adapter.snapshot(
            SnapshotRequest(
                camera_id=ref,
                address=camera.address,
                snapshot_uri=camera.snapshot_uri,
                stream_uri=stream,
                credentials=self._own_credentials(ref),
                network_credentials=True,  # this adapter's discovery read the device there
                credential_ports=ports,
                ref=ref,
            )
        )
        self._frames[ref] = (self.clock(), result)
        return result

    def _own_credentials(self, ref: str) -> UriCredentials | None:
        """A camera's own credentials, sealed with this adapter's key (`credentials.json`,
        read again only when the file changed: `camgw adapter credentials` needs no restart)."""
        path = self.cfg.state_dir / "credentials.json"
        try:
            stamp = path.stat().st_mtime_ns
            if self._sealed is None or self._sealed[0] != stamp:
                table = orjson.loads(path.read_bytes())
                self._sealed = (stamp, table if isinstance(table, dict) else {})
        except (OSError, orjson.JSONDecodeError):
            return None
        sealed = self._sealed[1].get(ref)
        if not isinstance(sealed, str):
            return None
        return self.vault.open(ref, bytes.fromhex(sealed))

    async def _within_policy(self, jpeg: bytes, message: wire.Snapshot) -> bytes:
        """Checked (decodable, within the pixel limit) and no wider than the owner allows."""
        # (The adapter's snapshot path decoded it already: the header's size is enough here.)
        width, _ = jpeg_size(jpeg, self.cfg.snapshots.max_pixels)
        allowed = self.gate.width(message, self.cfg.export)
        if allowed is None or allowed >= width:
            return jpeg
        return await asyncio.to_thread(render, jpeg, width, allowed, None)


_NO_REF = "0" * 16  # (a failure of a camera never read has no ref of its own)


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _verdict(request: str, picture: SnapshotResult, judged: JobResult) -> wire.DiagnosisResult:
    """The diagnosis as it leaves: levels and measures (finite numbers), no picture."""
    d = judged.diagnosis
    return wire.DiagnosisResult(
        request=request,
        source="rtsp-grab" if picture.source == "rtsp-grab" else "camera-http",
        taken_at=picture.taken_at,
        status=d.status.value,
        results=[
            wire.CheckOutcome(
                check=r.check.value,
                level=r.level.value,
                measures={k[:32]: v for k, v in r.measures.items() if math.isfinite(v)},
                masked_by=r.masked_by.value if r.masked_by else None,
            )
            for r in d.results
        ],
        width=d.width,
        height=d.height,
        digest=judged.signature.digest.hex(),
    )


def _screened(error: str | None, info: wire.CameraInfo, policy: ExportPolicy) -> str | None:
    if not error:
        return None
    return "failed (details withheld)" if reveals(error, info, policy) else error[:500]


def _target_of(camera: Discovered) -> Target:
    """Where to probe a camera this adapter read (its device service, or its stream)."""
    assert camera.address is not None
    if camera.device_uri:
        port = uri_port(camera.device_uri) or 80
        return Target(
            address=camera.address,
            port=port,
            xaddrs=(camera.device_uri,),
            endpoint_reference=camera.endpoint_reference,
            ref=camera.ref,
        )
    stream = next((p.stream_uri for p in camera.profiles if p.stream_uri), None)
    return Target(address=camera.address, kind="rtsp", rtsp_uri=stream, ref=camera.ref)


def _camera_uris(camera: Discovered) -> list[str]:
    uris = [p.stream_uri for p in camera.profiles if p.stream_uri]
    uris += [u for u in (camera.snapshot_uri, camera.device_uri) if u]
    return uris + list(camera.services.values())


def _snapshot_kind(exc: Exception) -> wire.SnapshotFailureKind:
    if isinstance(exc, CameraTimeout):
        return "timeout"
    if isinstance(exc, SnapshotFailed) and exc.steps:
        kinds = {_snapshot_kind(e) for _, e in exc.steps}
        return kinds.pop() if len(kinds) == 1 else "protocol"
    if isinstance(exc, CameraAuthError):
        return "auth"
    if isinstance(exc, CameraUnreachable):
        return "unreachable"
    return "protocol"


def seal_credentials(
    cfg: AdapterConfig, vault: CredentialVault, ref: str, creds: UriCredentials
) -> None:
    """Keep a camera's own credentials on this machine, sealed (`camgw adapter credentials`)."""
    path = cfg.state_dir / "credentials.json"
    try:
        table = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        table = {}
    table[ref] = vault.seal(ref, creds).hex()
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(orjson.dumps(table))
    os.replace(tmp, path)
