"""Authorised snapshots: cache, single flight, circuit breaker, rate limit, rendering.

Cameras are small computers on thin links; the ops center may have many screens. So:
- one upstream fetch per camera at a time, shared by every waiting request, in this process
  (a future) and across gateways sharing the Redis (a lock key plus the frame stored briefly);
- a frame is reused for the network's cache lifetime and never refetched sooner than
  `min_interval_s`;
- after `breaker_failures` consecutive failures a camera's circuit opens with growing backoff,
  and its status says so;
- the cache is bounded in bytes, not entries.

Where a picture came from is told, not hidden: `Frame.header` (X-Snapshot-Source) names the source
and what it did unusually (a PNG converted, a fallback to RTSP), the audit entry lists the
attempts, and the camera's record keeps the note (`snapshot_note`) while it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import struct
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import orjson
from redis.asyncio import Redis

from adapters.base import (
    AdapterError,
    AdapterUnavailable,
    CameraProtocolError,
    NetworkAdapter,
    SnapshotFailed,
    SnapshotRefused,
    SnapshotRequest,
    SnapshotResult,
)
from adapters.imaging import (
    BadImage,
    ImageTooLarge,
    NotAPicture,
    check_decodable,
    render,
    target_width,
    watermark_lines,
)

from .batching import GroupCommit
from .errors import (
    BadGateway,
    CamgwError,
    Forbidden,
    GatewayTimeout,
    TooManyRequests,
    Unavailable,
    redis_errors,
)
from .lua import source
from .models import Camera, CameraStatus
from .policy import Principal
from .records import camera_ports, device_here
from .registry import Registry
from .settings import Settings, SharingPolicy

log = logging.getLogger(__name__)

_POLL_S = 0.025  # how often a waiting replica looks for the frame another one is fetching
_MIN_SHARED_TTL_S = 0.25


def _claim_reply(reply: list[object]) -> tuple[bytes | None, bool]:
    """(published frame, None) or (None, whether we claimed the fetch)."""
    if reply and isinstance(reply[0], bytes):
        return reply[0], False
    return None, bool(len(reply) > 1 and reply[1])


_MAX_ATTEMPTS, _MAX_ATTEMPT_CHARS, _MAX_NOTE_CHARS = 8, 500, 200
_FALLBACK = "fallback: the HTTP snapshot gave no usable picture"


@dataclass(frozen=True, slots=True)
class Frame:
    jpeg: bytes
    source: str  # camera-http | rtsp-grab
    taken_at: float
    width: int
    height: int
    note: str | None = None  # what the source did unusually (SnapshotResult.note)
    attempts: tuple[str, ...] = ()  # what happened on the way (SnapshotResult.attempts)
    fetched: float = field(default_factory=time.monotonic)

    @property
    def header(self) -> str:
        """X-Snapshot-Source: the source, then what it did unusually ('camera-http; converted
        from image/png'); a stream that served after the HTTP snapshot failed is a fallback
        even when the adapter said no more (an edge adapter's answer carries no note)."""
        note = self.note
        if note is None and self.source == "rtsp-grab" and self.attempts:
            note = _FALLBACK
        return _printable(f"{self.source}; {note}" if note else self.source)

    def pack(self) -> bytes:
        head = orjson.dumps(
            {
                "source": self.source,
                "taken_at": self.taken_at,
                "width": self.width,
                "height": self.height,
                "note": self.note,
                "attempts": list(self.attempts),
            }
        )
        return struct.pack(">H", len(head)) + head + self.jpeg

    @classmethod
    def unpack(cls, raw: bytes) -> Frame:
        """A frame another gateway published; aged from when it was taken, not from now, so
        it is not kept for a second cache lifetime here. (A gateway of an earlier version
        published 'source|taken_at|width|height'.)"""
        (n,) = struct.unpack(">H", raw[:2])
        head = raw[2 : 2 + n]
        if head.startswith(b"{"):
            meta = orjson.loads(head)
            source, taken, width, height = (
                str(meta["source"]),
                float(meta["taken_at"]),
                int(meta["width"]),
                int(meta["height"]),
            )
            note = str(meta["note"]) if meta.get("note") else None
            attempts = tuple(str(a) for a in meta.get("attempts") or ())
        else:
            text_source, text_taken, text_width, text_height = head.decode().split("|")
            source, taken = text_source, float(text_taken)
            width, height, note, attempts = int(text_width), int(text_height), None, ()
        age = max(0.0, time.time() - taken)
        return cls(
            raw[2 + n :],
            source,
            taken,
            width,
            height,
            note,
            attempts,
            fetched=time.monotonic() - age,
        )


def _printable(text: str) -> str:
    """As a header value and a record field may hold it: printable ASCII, bounded."""
    clean = "".join(c if " " <= c <= "~" else "?" for c in text)
    return clean[:_MAX_NOTE_CHARS].strip()


@dataclass(frozen=True, slots=True)
class Snapshot:
    jpeg: bytes
    frame: Frame
    cache: str  # hit | miss | shared


class ByteLru:
    """An LRU bounded by the bytes it holds."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._items: OrderedDict[object, tuple[object, int]] = OrderedDict()

    def get(self, key: object) -> object | None:
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def put(self, key: object, value: object, size: int) -> None:
        if size > self.max_bytes:
            return
        self.pop(key)
        self._items[key] = (value, size)
        self.size += size
        while self.size > self.max_bytes:
            _, (_, evicted) = self._items.popitem(last=False)
            self.size -= evicted

    def pop(self, key: object) -> None:
        item = self._items.pop(key, None)
        if item is not None:
            self.size -= item[1]

    def __len__(self) -> int:
        return len(self._items)


@dataclass(slots=True)
class _Circuit:
    failures: int = 0
    open_until: float = 0.0
    backoff_s: float = 0.0


class Breakers:
    def __init__(self, threshold: int, backoff_s: float, max_backoff_s: float) -> None:
        self.threshold = threshold
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._circuits: dict[str, _Circuit] = {}

    def retry_after(self, cam_id: str) -> float:
        """Seconds until the camera may be tried again; 0 when its circuit is closed."""
        c = self._circuits.get(cam_id)
        return max(0.0, c.open_until - time.monotonic()) if c else 0.0

    def success(self, cam_id: str) -> bool:
        """Record a success; True when the circuit had been open (the status may recover)."""
        c = self._circuits.pop(cam_id, None)
        return c is not None and c.failures >= self.threshold

    def failure(self, cam_id: str) -> bool:
        """Record a failure; True when this one opened (or re-opened) the circuit."""
        c = self._circuits.setdefault(cam_id, _Circuit())
        c.failures += 1
        if c.failures < self.threshold:
            return False
        c.backoff_s = min(self.max_backoff_s, c.backoff_s * 2 or self.backoff_s)
        c.open_until = time.monotonic() + c.backoff_s
        return True


class SnapshotService:
    def __init__(
        self,
        settings: Settings,
        redis: Redis,
        registry: Registry,
        adapters: dict[str, NetworkAdapter],
    ) -> None:
        cfg = settings.snapshots
        self.settings = settings
        self.redis = redis
        self.registry = registry
        self.adapters = adapters
        self.cache = ByteLru(cfg.cache_bytes)
        self.breakers = Breakers(
            cfg.breaker_failures, cfg.breaker_backoff_s, cfg.breaker_max_backoff_s
        )
        self.executor = ThreadPoolExecutor(cfg.image_workers, "snapshot-image")
        self.upstream_fetches = 0
        self._inflight: dict[str, asyncio.Task[Frame]] = {}
        self._owner = secrets.token_hex(8)
        self._rate = redis.register_script(source("rate.lua"))
        self._rates: GroupCommit[str, int] = GroupCommit(self._count, "rate limiter")
        self._claim = redis.register_script(source("snapshot_claim.lua"))
        self._release = redis.register_script(source("snapshot_release.lua"))

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)

    # -- policy ---------------------------------------------------------------------------

    async def check_rate(self, who: Principal, network: str, policy: SharingPolicy) -> None:
        """Per operator and network, per minute, shared by every gateway on the Redis."""
        minute = int(time.time() // 60)
        key = f"{self.registry.keys.prefix}:rate:{network}:{who.token_id}:{minute}"
        count = await self._rates.submit(key)
        if count > policy.rate_limit_per_minute:
            retry = 60 - int(time.time() % 60)
            raise TooManyRequests(
                f"at most {policy.rate_limit_per_minute} snapshots a minute from network "
                f"{network}; retry in {retry} s",
                retry_after=retry,
            )

    async def _count(self, keys: list[str]) -> list[int]:
        return [int(n) for n in await self._rate(keys=keys, args=[61])]

    # -- the picture ----------------------------------------------------------------------

    async def snapshot(
        self,
        camera: Camera,
        who: Principal,
        width: int | None,
        policy: SharingPolicy,
        reason: str = "",
        request_id: str = "",
    ) -> Snapshot:
        ask = Ask(who.actor, who.role.value, reason, width, request_id)
        if self._edge(camera):
            # The network's owner decides each request (its export policy: hours, reason,
            # per-requester limits): no frame is shared between requests here; the adapter
            # caches and shares fetches itself.
            frame, cache = await self._fetch_once(camera, ask), "miss"
        else:
            frame, cache = await self.frame(camera, policy)
        out_width = target_width(frame.width, width, policy.max_width)
        key = (
            "variant",
            camera.id,
            frame.taken_at,
            who.actor if policy.watermark else "",
            out_width,
        )
        cached = self.cache.get(key)
        if isinstance(cached, bytes):
            return Snapshot(cached, frame, cache)
        if not policy.watermark and out_width >= frame.width:
            return Snapshot(frame.jpeg, frame, cache)  # served as the camera sent it
        marks = watermark_lines(who.actor, camera.id, frame.taken_at) if policy.watermark else None
        loop = asyncio.get_running_loop()
        quality = self.settings.snapshots.jpeg_quality
        jpeg: bytes = await loop.run_in_executor(
            self.executor, render, frame.jpeg, frame.width, out_width, marks, quality
        )
        self.cache.put(key, jpeg, len(jpeg))
        return Snapshot(jpeg, frame, cache)

    async def frame(self, camera: Camera, policy: SharingPolicy) -> tuple[Frame, str]:
        ttl = max(policy.cache_ttl_s, self.settings.snapshots.min_interval_s)
        cached = self.cache.get(("frame", camera.id))
        if isinstance(cached, Frame) and time.monotonic() - cached.fetched < ttl:
            return cached, "hit"
        task = self._inflight.get(camera.id)
        if task is not None:
            return await asyncio.shield(task), "shared"
        retry = self.breakers.retry_after(camera.id)
        if retry > 0:
            raise _circuit_open(camera, retry)
        # The fetch is its own task: a requester that goes away does not cancel it for the
        # others waiting on the same camera.
        task = asyncio.create_task(self._fetch(camera, ttl), name=f"snapshot-{camera.id}")
        self._inflight[camera.id] = task
        task.add_done_callback(lambda _: self._inflight.pop(camera.id, None))
        return await asyncio.shield(task), "miss"

    async def _fetch(self, camera: Camera, ttl: float) -> Frame:
        frame = await self._shared_fetch(camera, ttl)
        self.cache.put(("frame", camera.id), frame, len(frame.jpeg))
        return frame

    async def _shared_fetch(self, camera: Camera, ttl: float) -> Frame:
        """One fetch across every gateway on the Redis: the lock holder fetches and publishes
        the frame for `ttl`; the others wait for it (or take over if the holder vanishes)."""
        prefix = self.registry.keys.prefix
        lock, shared = f"{prefix}:snaplock:{camera.id}", f"{prefix}:snap:{camera.id}"
        cfg = self.settings.snapshots
        budget = cfg.timeout_s + cfg.rtsp_timeout_s + 2.0
        deadline = time.monotonic() + budget
        while True:
            with redis_errors():
                frame_raw, claimed = _claim_reply(
                    await self._claim(keys=[shared, lock], args=[self._owner, int(budget * 1000)])
                )
            if frame_raw is not None:
                return Frame.unpack(frame_raw)
            if claimed:
                break
            if time.monotonic() > deadline:
                raise GatewayTimeout("another gateway's fetch of this camera did not finish")
            await asyncio.sleep(_POLL_S)
        frame: Frame | None = None
        try:
            frame = await self._upstream(camera)
            return frame
        finally:
            # Publish only frames that live long enough for another gateway to use them.
            publish = frame.pack() if frame is not None and ttl >= _MIN_SHARED_TTL_S else b""
            with contextlib.suppress(CamgwError), redis_errors():
                await self._release(
                    keys=[shared, lock], args=[self._owner, publish, max(1, int(ttl * 1000))]
                )

    def _edge(self, camera: Camera) -> bool:
        """The camera's network is reached by its edge adapter, which knows where the camera
        is (the record may not say) and judges each request by its owner's policy."""
        return self.settings.network_by_id[camera.network].mode == "edge"

    async def _fetch_once(self, camera: Camera, ask: Ask) -> Frame:
        retry = self.breakers.retry_after(camera.id)
        if retry > 0:
            raise _circuit_open(camera, retry)
        return await self._upstream(camera, ask)

    async def _upstream(self, camera: Camera, ask: Ask | None = None) -> Frame:
        adapter = self.adapters.get(camera.network)
        if adapter is None:
            raise Unavailable(f"network {camera.network} has no adapter")
        stream = next((p.stream_uri for p in camera.profiles if p.stream_uri), None)
        # (an edge adapter knows where its camera is; a GB/T 28181 platform, its channel)
        if (
            camera.snapshot_uri is None
            and stream is None
            and not self._edge(camera)
            and not camera.gb28181
        ):
            raise Unavailable(f"camera {camera.id} has neither a snapshot URI nor a stream")
        creds = await self.registry.credentials(camera.id) if camera.has_credentials else None
        access = self.settings.network_by_id[camera.network].access
        cfg, ask = self.settings.snapshots, ask or Ask()
        request = SnapshotRequest(
            camera.id,
            str(camera.address) if camera.address is not None else None,
            camera.snapshot_uri,
            stream,
            creds,
            network_credentials=device_here(camera),
            credential_ports=camera_ports(camera, access.camera_ports),
            ref=camera.device.ref if camera.device else None,
            request_id=ask.request_id,
            requester=ask.requester,
            role=ask.role,
            reason=ask.reason,
            width=ask.width,
            deadline=time.time() + cfg.timeout_s + cfg.rtsp_timeout_s + 2.0,
        )
        self.upstream_fetches += 1
        try:
            result, width, height = await self._decodable(adapter, request)
        except SnapshotRefused as exc:  # the owner's policy, not a fault of the camera
            raise Forbidden(f"camera {camera.id}: {exc}") from exc
        except AdapterUnavailable as exc:  # the adapter is gone, not the camera
            raise Unavailable(str(exc), retry_after=5) from exc
        except (SnapshotFailed, AdapterError, BadImage) as exc:
            await self._failed(camera, exc)
            raise _http_error(camera, exc) from exc
        if self.breakers.success(camera.id):
            await self._set_status(camera, CameraStatus.online, None)
        frame = Frame(
            result.jpeg,
            result.source,
            result.taken_at,
            width,
            height,
            result.note,
            tuple(a[:_MAX_ATTEMPT_CHARS] for a in result.attempts[:_MAX_ATTEMPTS]),
        )
        await self._note(camera, frame)
        return frame

    async def _decodable(
        self, adapter: NetworkAdapter, request: SnapshotRequest
    ) -> tuple[SnapshotResult, int, int]:
        """The adapter's picture with its size, checked to decode. An unusable HTTP snapshot is
        that step failing: the stream is tried next, as when the HTTP request itself fails.
        A picture over `max_pixels` is refused as it is (ImageTooLarge, from its header, nothing
        decoded), not retried over RTSP: the camera needs reconfiguring, or the limit raising."""
        result = await adapter.snapshot(request)
        try:
            return result, *await self._size(result.jpeg)
        except ImageTooLarge:
            raise
        except BadImage as exc:
            if result.source != "camera-http":
                raise
            failed: list[tuple[str, AdapterError]] = [
                ("camera HTTP snapshot", CameraProtocolError(f"not a usable JPEG ({exc})"))
            ]
            if request.stream_uri is None:
                raise SnapshotFailed(failed) from exc
            try:
                result = await adapter.snapshot(replace(request, snapshot_uri=None))
            except SnapshotFailed as more:
                raise SnapshotFailed(failed + more.steps) from more
            attempts = (f"camera HTTP snapshot: not a usable JPEG ({exc})", *result.attempts)
            result = replace(result, attempts=attempts)
            return result, *await self._size(result.jpeg)

    async def _size(self, jpeg: bytes) -> tuple[int, int]:
        """Header size (refused above max_pixels before any decode), then a 1/8-scale decode;
        in the image workers, which bound how many pictures are decoded at once."""
        loop = asyncio.get_running_loop()
        limit = self.settings.snapshots.max_pixels
        return await loop.run_in_executor(self.executor, check_decodable, jpeg, limit)

    async def _failed(self, camera: Camera, exc: Exception) -> None:
        log.warning(
            "snapshot failed",
            extra={"camera": camera.id, "network": camera.network, "error": str(exc)[:300]},
        )
        if self.breakers.failure(camera.id):
            await self._set_status(camera, CameraStatus.degraded, f"snapshot: {exc}"[:500])

    async def _note(self, camera: Camera, frame: Frame) -> None:
        """Keep the camera's `snapshot_note` true (best effort, and only on a change): what its
        source does unusually, set while it does; cleared by a plain JPEG from its HTTP
        snapshot; left as it is by a plain RTSP frame (the HTTP snapshot was not asked, or
        failed in a way that says nothing about what it answers)."""
        if frame.note is not None:
            note: str | None = frame.header
        elif frame.source == "camera-http":
            note = None
        else:
            return
        if camera.snapshot_note == note:
            return
        with contextlib.suppress(CamgwError):
            current = await self.registry.get(camera.id)
            if current is None or current.snapshot_note == note:
                return
            updated = current.model_copy(
                update={
                    "snapshot_note": note,
                    "updated_at": datetime.now(UTC),
                    "rev": current.rev + 1,
                }
            )
            await self.registry.replace(updated, current.rev)

    async def _set_status(self, camera: Camera, status: CameraStatus, error: str | None) -> None:
        """Report the circuit in the camera's record (best effort: the picture matters more)."""
        with contextlib.suppress(CamgwError):
            current = await self.registry.get(camera.id)
            if current is None or current.status is CameraStatus.offline:
                return
            if error is None and not (current.last_error or "").startswith("snapshot:"):
                return
            updated = current.model_copy(
                update={
                    "status": status,
                    "last_error": error,
                    "updated_at": datetime.now(UTC),
                    "rev": current.rev + 1,
                }
            )
            await self.registry.replace(updated, current.rev)


@dataclass(frozen=True, slots=True)
class Ask:
    """Who asks for a picture, why and how wide: what an edge adapter's export policy judges."""

    requester: str = ""
    role: str = ""
    reason: str = ""
    width: int | None = None
    request_id: str = ""


def _circuit_open(camera: Camera, retry: float) -> Unavailable:
    return Unavailable(
        f"camera {camera.id} failed repeatedly; its circuit is open for {retry:.0f} s",
        retry_after=max(1, round(retry)),
    )


def _http_error(camera: Camera, exc: Exception) -> CamgwError:
    """What the client is told: that the camera gave no picture, never how it failed (refused,
    reset or timed out would make the gateway a port scanner of the camera's network). The log
    and the audit entry get the precise steps (`audit_detail`); a picture the camera did send
    but that is unusable is said plainly, since it reveals nothing about the network."""
    if isinstance(exc, ImageTooLarge):  # "camera X sent a picture of WxH pixels, over ..."
        return BadGateway(f"camera {camera.id} sent {exc}")
    if isinstance(exc, NotAPicture):  # the adapter's answer when no stream is left to try
        return BadGateway(
            f"camera {camera.id} answered its snapshot request with {exc}, and has no RTSP "
            "stream to fall back on"
        )
    if isinstance(exc, BadImage):
        return BadGateway(f"camera {camera.id} sent an image that is not a usable JPEG ({exc})")
    error = BadGateway(
        f"camera {camera.id} did not deliver a picture; the audit log and the gateway's log say why"
    )
    error.audit_detail = f"camera {camera.id}: {exc}"
    return error
