"""The gateway's side of the GB/T 28181 superior platform: what registrations, catalogs and
notifications change in the registry and the audit trail (the protocol is adapters/gb28181/).

Keys (prefix `camgw`):
    camgw:gb28181:codes             hash channel code -> the platform that holds it (first come)
    camgw:gb28181:ch:{platform}     set of camera ids reached through the platform
    camgw:gb28181:nodes:{platform}  hash node code -> JSON [name, parent]: the platform's group
                                    tree (business groups, virtual organisations, devices), so
                                    that a restart, and every replica, knows the groups' names

A channel's code is its identity: its record is `{network}.gb{code}`. A code that another
platform already holds is a conflict: reported (log, audit, `GET /api/v1/networks`), never
written over the other's record.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import ValidationError
from redis.asyncio import Redis

from adapters import tasks
from adapters.gb28181.adapter import PlatformAdapter
from adapters.gb28181.codes import Edition, decode, is_channel
from adapters.gb28181.config import LowerPlatform
from adapters.gb28181.manscdp import CatalogItem
from adapters.gb28181.snapshot import upload_app
from adapters.gb28181.superior import (
    CatalogDone,
    CatalogPage,
    Event,
    Notification,
    Offline,
    PlatformStatus,
    Refused,
    Registration,
    SnapshotCommand,
    SuperiorPlatform,
)
from adapters.gb28181.transport import SipTransports
from adapters.uris import UriCredentials

from .audit import AuditEvent, AuditLog
from .catalog import Catalog
from .errors import CamgwError, Conflict, NotFound, redis_errors
from .keys import ADAPTERS, AUDIT, CATALOG, METRICS, REDIS, REGISTRY, SETTINGS, VAULT
from .models import (
    Camera,
    CameraSource,
    CameraStatus,
    GbChannel,
    GbPlatformInfo,
    Location,
)
from .records import merge_discovered
from .registry import Registry
from .settings import Settings
from .vault import CredentialVault

log = logging.getLogger(__name__)

NONCE_PURPOSE = "camgw gb28181 nonces v1"
_TICK_S = 1.0
_WRITES = 16  # channel writes in flight per page
_RETRIES = 5
_STATUS = {
    "ON": (CameraStatus.online, ""),
    "OFF": (CameraStatus.offline, "the platform reports it off"),
    "VLOST": (CameraStatus.degraded, "video lost (VLOST)"),
    "DEFECT": (CameraStatus.degraded, "fault reported (DEFECT)"),
}


def camera_id(network: str, code: str) -> str:
    return f"{network}.gb{code}"


class GbGateway:
    def __init__(
        self,
        settings: Settings,
        redis: Redis,
        registry: Registry,
        catalog: Catalog,
        audit: AuditLog,
        vault: CredentialVault,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.config = settings.gb28181
        self.redis = redis
        self.registry = registry
        self.catalog = catalog
        self.audit = audit
        self.clock = clock
        self.platform = SuperiorPlatform(self.config, vault.derive(NONCE_PURPOSE), clock)
        self.transports = SipTransports(self.config, self.platform.receive)
        prefix = settings.redis.prefix
        self._codes_key = f"{prefix}:gb28181:codes"
        self._channels_prefix = f"{prefix}:gb28181:ch:"
        self._nodes_prefix = f"{prefix}:gb28181:nodes:"
        self.conflicts: dict[str, int] = {}
        self.failed: dict[str, int] = {}  # channels a record could not be made of, per platform
        self.changed: dict[str, int] = {}  # records the catalog under way changed, per platform
        self._uploads: web.AppRunner | None = None
        self.catalog_applied = {p.id: asyncio.Event() for p in self.config.platforms}
        self.nodes: dict[str, dict[str, tuple[str, str]]] = {}  # platform -> code -> (name, parent)

    async def start(self) -> None:
        try:  # who holds which channel, as claimed before a restart
            with redis_errors():
                held = await self.redis.hgetall(self._codes_key)
            self.platform.holder.update({_text(k): _text(v) for k, v in held.items()})
        except CamgwError as exc:  # (Redis away: each catalog's claims fill it in again)
            log.warning("gb28181 channel claims not read", extra={"error": exc.detail})
        for p in self.config.platforms:  # the group trees as the last catalogs left them
            try:
                self.nodes[p.id] = await self.group_tree(p.id)
            except CamgwError as exc:
                log.warning("gb28181 group tree not read", extra={"error": exc.detail})
        cfg = self.config
        try:
            await self.transports.start()
        except OSError as exc:
            raise RuntimeError(
                f"[gb28181] cannot listen on {cfg.host} (udp {cfg.udp_port}, tcp "
                f"{cfg.tcp_port}): {exc.strerror or exc}"
            ) from exc
        port = self.transports.ports.get("udp") or self.transports.ports.get("tcp") or 5060
        self.platform.local = (cfg.host, port)
        runner = web.AppRunner(upload_app(self.platform.snaps), access_log=None)
        await runner.setup()
        self._uploads = runner
        host = cfg.snapshot_upload_host
        try:
            await web.TCPSite(runner, host, cfg.snapshot_upload_port).start()
        except OSError as exc:
            await self.stop()
            raise RuntimeError(
                f"[gb28181] cannot listen for snapshot uploads on {host}:"
                f"{cfg.snapshot_upload_port}: {exc.strerror or exc}"
            ) from exc
        bound = runner.addresses[0][1]
        shown = f"[{host}]" if ":" in host else host
        self.platform.upload_base = f"http://{shown}:{bound}"
        log.info(
            "gb28181 sip service listening",
            extra={"ports": self.transports.ports, "uploads": self.platform.upload_base},
        )

    async def stop(self) -> None:
        await self.transports.stop()
        if self._uploads is not None:
            await self._uploads.cleanup()

    async def run(self) -> None:
        """Apply the platform's events, one at a time, in order."""
        events = self.platform.events
        while True:
            event = await events.get()
            try:
                await self.apply(event)
            except asyncio.CancelledError:
                raise
            except Exception:  # one event's failure never stops the service
                log.exception("gb28181 event not applied", extra={"event": type(event).__name__})
            finally:
                events.task_done()

    async def ticker(self) -> None:
        while True:
            await asyncio.sleep(_TICK_S)
            self.platform.tick()

    async def settle(self) -> None:
        """Wait until every event queued so far is applied (tests, benches)."""
        await self.platform.events.join()

    async def group_tree(self, platform_id: str) -> dict[str, tuple[str, str]]:
        """The platform's group tree as stored: node code -> (name, parent code)."""
        with redis_errors():
            raw = await self.redis.hgetall(self._nodes_prefix + platform_id)
        tree: dict[str, tuple[str, str]] = {}
        for code, value in raw.items():
            try:
                name, parent = json.loads(value)
            except (ValueError, TypeError):
                continue  # (not ours: skipped, the next catalog writes it again)
            if isinstance(name, str) and isinstance(parent, str):
                tree[_text(code)] = (name[:100], parent[:20])
        return tree

    # -- events --------------------------------------------------------------------------------

    async def apply(self, event: Event) -> None:
        if isinstance(event, Registration):
            await self._audit(
                event.platform,
                f"gb28181.{event.outcome}",
                "ok",
                event.status,
                f"{event.reason} from {event.source}",
            )
        elif isinstance(event, Refused):
            await self.audit.append(
                AuditEvent(
                    actor=f"gb28181:{event.platform_id or event.source}",
                    role="platform",
                    action="gb28181.refused",
                    target=event.platform_id or event.source,
                    network=self._network_of(event.platform_id),
                    outcome="denied",
                    status=event.status,
                    detail=f"{event.reason} (from {event.source})",
                )
            )
        elif isinstance(event, Offline):
            await self._audit(event.platform, "gb28181.offline", "error", 503, event.reason)
            await self._unreachable(event.platform, event.reason)
        elif isinstance(event, CatalogPage):
            await self._channels(event.platform, event.edition, event.items, "catalog")
        elif isinstance(event, CatalogDone):
            outcome = "ok" if event.complete else "error"
            detail = f"{event.received} of {event.sum_num} items"
            if event.reason:
                detail += f"; {event.reason}"
            if changed := self.changed.pop(event.platform.id, 0):
                detail += f"; {changed} records changed"
            await self._audit(event.platform, "gb28181.catalog", outcome, 200, detail)
            if event.complete:
                await self._absent(event.platform, event.codes)
            self.catalog_applied[event.platform.id].set()
        elif isinstance(event, Notification):
            await self._notified(event)
        elif isinstance(event, SnapshotCommand):
            await self.audit.append(
                AuditEvent(
                    actor=f"gb28181:{event.platform.id}",
                    role="platform",
                    action="gb28181.snapshot",
                    target=camera_id(event.platform.network, event.code),
                    network=event.platform.network,
                    outcome=event.outcome,
                    status=200 if event.outcome == "ok" else 504,
                    detail=f"session {event.session_id}"
                    + (f": {event.detail}" if event.detail else ""),
                )
            )

    def _network_of(self, platform_id: str) -> str:
        found = self.config.platform_by_id.get(platform_id)
        return found.network if found else ""

    async def _audit(
        self, p: LowerPlatform, action: str, outcome: str, status: int, detail: str
    ) -> None:
        await self.audit.append(
            AuditEvent(
                actor=f"gb28181:{p.id}",
                role="platform",
                action=action,
                target=p.id,
                network=p.network,
                outcome=outcome,
                status=status,
                detail=detail,
            )
        )

    # -- channels ------------------------------------------------------------------------------

    async def _channels(
        self, p: LowerPlatform, edition: Edition, items: tuple[CatalogItem, ...], why: str
    ) -> None:
        nodes = self.nodes.setdefault(p.id, {})
        channels: list[CatalogItem] = []
        changed: dict[str, str] = {}
        for item in items:
            if is_channel(item.device_id, item.parental):
                channels.append(item)
                continue
            node = (item.name[:100], item.parent_id[:20])
            listed = item.device_id in nodes
            if nodes.get(item.device_id) != node and (
                listed or len(nodes) < self.config.catalog_max_channels
            ):
                nodes[item.device_id] = node
                changed[item.device_id] = json.dumps(node, ensure_ascii=False)
        if changed:  # (in Redis before any channel names them: a restart keeps the tree)
            with redis_errors():
                await self.redis.hset(self._nodes_prefix + p.id, mapping=dict(changed.items()))
        if not channels:
            return
        owned = await self._claim(p, [c.device_id for c in channels])
        now = datetime.fromtimestamp(self.clock(), UTC)
        fresh: dict[str, Camera] = {}
        for item in channels:
            if item.device_id in owned:
                cam = self._fresh(p, edition, item, now)
                if cam is not None:
                    fresh[cam.id] = cam
        if not fresh:
            return
        ids = list(fresh)
        with redis_errors():
            raws = await self.redis.mget([self.registry.keys.cam(i) for i in ids])
        new = [fresh[i] for i, raw in zip(ids, raws, strict=True) if raw is None]
        known = iter(i for i, raw in zip(ids, raws, strict=True) if raw is not None)
        if new:  # pipelined, each its own audited script (as an import's rows)
            creates: list[tuple[Camera, UriCredentials | None, AuditEvent | None]] = [
                (c, None, self._created(p, c, f"gb28181.channel.{why}")) for c in new
            ]
            results = await self.registry.create_many(creates)
            for cam, result in zip(new, results, strict=True):
                if isinstance(result, int):
                    self.catalog.note_version(result)
                else:  # (created meanwhile by another writer, or refused: by the slow path)
                    await self._write_fresh(p, cam, now, why)

        async def writer() -> None:
            for cam_id in known:
                await self._write_fresh(p, fresh[cam_id], now, why)

        await asyncio.gather(*(writer() for _ in range(_WRITES)))
        with redis_errors():
            await self.redis.sadd(self._channels_prefix + p.id, *ids)

    def _fresh(
        self, p: LowerPlatform, edition: Edition, item: CatalogItem, now: datetime
    ) -> Camera | None:
        try:
            return self._camera(p, edition, item, now)
        except ValidationError as exc:
            self.failed[p.id] = self.failed.get(p.id, 0) + 1
            log.warning(
                "gb28181 channel not recorded: what the platform sent does not fit a record",
                extra={"platform": p.id, "code": item.device_id, "error": str(exc)[:300]},
            )
            return None

    @staticmethod
    def _created(p: LowerPlatform, cam: Camera, action: str) -> AuditEvent:
        return AuditEvent(
            actor=f"gb28181:{p.id}",
            role="platform",
            action=action,
            target=cam.id,
            network=p.network,
            outcome="ok",
            status=200,
            detail=f"channel {cam.gb28181.code if cam.gb28181 else ''}",
        )

    async def _claim(self, p: LowerPlatform, codes: list[str]) -> set[str]:
        """The codes this platform holds (newly or already); others are conflicts, reported."""
        with redis_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                for code in codes:
                    pipe.hsetnx(self._codes_key, code, p.id)
                await pipe.execute()
            holders = await self.redis.hmget(self._codes_key, codes)
        owned: set[str] = set()
        taken: list[tuple[str, str]] = []
        orphans: list[str] = []
        for code, holder in zip(codes, holders, strict=True):
            who = _text(holder or "")
            if who == p.id:
                owned.add(code)
            elif who not in self.config.platform_by_id:
                orphans.append(code)  # held by a platform no longer configured: taken over
            else:
                taken.append((code, who))
        if orphans:
            with redis_errors():
                await self.redis.hset(self._codes_key, mapping=dict.fromkeys(orphans, p.id))
            owned.update(orphans)
            log.info(
                "gb28181 channel codes of a platform no longer configured taken over",
                extra={"platform": p.id, "codes": len(orphans)},
            )
        for code in owned:
            self.platform.holder[code] = p.id
        if taken:
            self.conflicts[p.id] = self.conflicts.get(p.id, 0) + len(taken)
            first = ", ".join(f"{c} (held by {w})" for c, w in taken[:3])
            log.warning(
                "gb28181 channel codes already held by another platform: not merged",
                extra={"platform": p.id, "codes": len(taken), "first": first},
            )
            await self._audit(
                p, "gb28181.conflict", "conflict", 409, f"{len(taken)} codes: {first}"
            )
        return owned

    def _camera(
        self, p: LowerPlatform, edition: Edition, item: CatalogItem, now: datetime
    ) -> Camera:
        code = decode(item.device_id, edition)
        status, reason = _STATUS.get(item.status.upper(), (CameraStatus.unknown, ""))
        gb = GbChannel(
            code=code.code,
            platform=p.id,
            edition=edition,
            region=code.region,
            industry=code.industry,
            industry_name=code.industry_name,
            type=code.type,
            type_name=code.type_name,
            network_id=code.network,
            network_name=code.network_name,
            civil_code=item.civil_code[:32],
            parent=item.parent_id[:32],
            group_path=self._path(p.id, item.parent_id),
            owner=item.owner[:100],
            status_reason=item.status[:100],
            platform_name=(item.name or code.code)[:200],
        )
        return Camera(
            id=camera_id(p.network, code.code),
            network=p.network,
            name=(item.name or code.code)[:200],
            category=p.category or self.settings.discovered_category,
            location=_location(item),
            vendor=item.manufacturer[:100] or None,
            model=item.model[:100] or None,
            status=status,
            last_seen=now if status is CameraStatus.online else None,
            last_error=reason or None,
            address=None,  # reached through the platform, by its code
            source=CameraSource.discovered,
            gb28181=gb,
            created_at=now,
            updated_at=now,
        )

    def _path(self, platform_id: str, parent: str) -> list[str]:
        nodes = self.nodes.get(platform_id, {})
        path: list[str] = []
        seen: set[str] = set()
        while parent in nodes and parent not in seen and len(path) < 16:
            seen.add(parent)
            name, parent_next = nodes[parent]
            path.append(name or parent)
            parent = parent_next
        return path[::-1]

    async def _write_fresh(self, p: LowerPlatform, fresh: Camera, now: datetime, why: str) -> None:
        """A channel's record as the platform now describes it, merged into the stored one."""

        def build(old: Camera | None) -> Camera | None:
            if old is None:
                return fresh
            merged = merge_discovered(old, fresh, now)
            if old.gb28181 is not None and old.name == old.gb28181.platform_name:
                merged = merged.model_copy(update={"name": fresh.name})  # not renamed by an admin
            same = merged.model_copy(update={"updated_at": old.updated_at, "rev": old.rev})
            if old.last_seen is not None and merged.status is CameraStatus.online:
                same = same.model_copy(update={"last_seen": old.last_seen})
            return None if same == old else merged

        code = fresh.gb28181.code if fresh.gb28181 else ""
        # A notification's change is audited one by one; a catalog's are counted into its
        # `gb28181.catalog` entry (a re-read after an outage may change thousands).
        detail = f"channel {code} changed by a catalog notification" if why == "notified" else ""
        done = await self._write(p, fresh.id, build, f"gb28181.channel.{why}", detail)
        if done == "replaced" and why == "catalog":
            self.changed[p.id] = self.changed.get(p.id, 0) + 1

    async def _write(
        self,
        p: LowerPlatform,
        cam_id: str,
        build: Callable[[Camera | None], Camera | None],
        action: str,
        detail: str = "",
    ) -> str | None:
        """Write what `build` makes of the stored record (retried on a concurrent change):
        "created", "replaced", or None (nothing to change). A creation is audited; a
        replacement is when `detail` says what changed."""
        for _ in range(_RETRIES):
            old = await self.registry.get(cam_id)
            new = build(old)
            if new is None:
                return None
            try:
                if old is None:
                    audit = self._created(p, new, action)
                    version = await self.registry.create(new, None, audit)
                else:
                    change = replace(self._created(p, new, action), detail=detail)
                    version = await self.registry.replace(
                        new, old.rev, audit=change if detail else None
                    )
            except Conflict as exc:
                if exc.extra.get("field") in ("rev", "id"):
                    continue
                raise
            self.catalog.note_version(version)
            return "created" if old is None else "replaced"
        raise Conflict(f"camera {cam_id} kept changing")

    async def _notified(self, event: Notification) -> None:
        p, now = event.platform, datetime.fromtimestamp(self.clock(), UTC)
        for item in event.items:
            kind = (item.event or "").upper()
            cam_id = camera_id(p.network, item.device_id)
            if kind in ("ADD", "UPDATE"):
                await self._channels(p, event.edition, (item,), "notified")
            elif kind == "DEL":
                await self._deleted(p, item.device_id, cam_id)
            elif kind in _STATUS and item.device_id in self.nodes.get(p.id, {}):
                continue  # (a group's status: no record to change, no code to claim)
            elif kind in _STATUS:
                owned = await self._claim(p, [item.device_id])
                if item.device_id in owned:
                    await self._status(p, cam_id, *_STATUS[kind], now, kind)
            else:
                log.info("gb28181 notification event ignored", extra={"event": kind[:16]})

    async def _deleted(self, p: LowerPlatform, code: str, cam_id: str) -> None:
        if self.nodes.get(p.id, {}).pop(code, None) is not None:  # a group, not a channel
            with redis_errors():
                await self.redis.hdel(self._nodes_prefix + p.id, code)
            return
        with redis_errors():
            holder = await self.redis.hget(self._codes_key, code)
        if holder is None or _text(holder) != p.id:
            return  # not this platform's to delete
        audit = AuditEvent(
            actor=f"gb28181:{p.id}",
            role="platform",
            action="gb28181.channel.deleted",
            target=cam_id,
            network=p.network,
            outcome="ok",
            status=200,
            detail=f"channel {code} removed from the platform's catalog (DEL)",
        )
        with contextlib.suppress(NotFound):
            version = await self.registry.delete(cam_id, audit)
            self.catalog.note_version(version)
        with redis_errors():
            await self.redis.hdel(self._codes_key, code)
            await self.redis.srem(self._channels_prefix + p.id, cam_id)
        self.platform.holder.pop(code, None)

    async def _status(
        self,
        p: LowerPlatform,
        cam_id: str,
        status: CameraStatus,
        reason: str,
        now: datetime,
        word: str,
    ) -> None:
        def build(old: Camera | None) -> Camera | None:
            if old is None or old.gb28181 is None:
                return None
            error = reason or None
            gb = old.gb28181.model_copy(update={"status_reason": word})
            if old.status is status and old.last_error == error and old.gb28181 == gb:
                return None
            update: dict[str, object] = {
                "status": status,
                "last_error": error,
                "gb28181": gb,
                "updated_at": now,
                "rev": old.rev + 1,
            }
            if status is CameraStatus.online:
                update["last_seen"] = now
            return old.model_copy(update=update)

        detail = f"{word}: {reason or 'online'} (catalog notification)"
        await self._write(p, cam_id, build, "gb28181.channel.status", detail)

    async def _unreachable(self, p: LowerPlatform, reason: str) -> None:
        """An offline platform's channels stay listed, shown unreachable through it."""
        with redis_errors():
            ids = sorted(_text(m) for m in await self.redis.smembers(self._channels_prefix + p.id))
        await self._offline(p, ids, f"unreachable through lower platform {p.id}: {reason}")

    async def _absent(self, p: LowerPlatform, codes: frozenset[str]) -> None:
        """Channels a complete catalog no longer lists stay recorded (an admin's to delete),
        shown offline with the reason: the platform stopped sharing them."""
        with redis_errors():
            held = {_text(m) for m in await self.redis.smembers(self._channels_prefix + p.id)}
        gone = sorted(held - {camera_id(p.network, c) for c in codes})
        if not gone:
            return
        await self._offline(p, gone, "no longer in the lower platform's catalog")
        await self._audit(
            p, "gb28181.catalog.absent", "ok", 200, f"{len(gone)} channels: {', '.join(gone[:3])}"
        )

    async def _offline(self, p: LowerPlatform, ids: list[str], error: str) -> None:
        now = datetime.fromtimestamp(self.clock(), UTC)
        error = error[:500]
        queue = iter(ids)

        def build(old: Camera | None) -> Camera | None:
            if old is None or (old.status is CameraStatus.offline and old.last_error == error):
                return None
            update = {"status": CameraStatus.offline, "last_error": error}
            return old.model_copy(update=update | {"updated_at": now, "rev": old.rev + 1})

        async def writer() -> None:
            for cam_id in queue:
                with contextlib.suppress(CamgwError):
                    await self._write(p, cam_id, build, "gb28181.channel.status")

        await asyncio.gather(*(writer() for _ in range(min(_WRITES, len(ids)))))

    # -- reporting -----------------------------------------------------------------------------

    def infos(self, network: str) -> list[GbPlatformInfo]:
        return [
            _info(s, self.conflicts.get(s.id, 0))
            for s in self.platform.status()
            if s.network == network
        ]


def _info(s: PlatformStatus, conflicts: int) -> GbPlatformInfo:
    def when(t: float | None) -> datetime | None:
        return datetime.fromtimestamp(t, UTC) if t is not None else None

    return GbPlatformInfo(
        id=s.id,
        name=s.name,
        edition=s.edition,
        registered=s.registered,
        online=s.online,
        last_keepalive=when(s.last_keepalive),
        registered_at=when(s.registered_at),
        expires_at=when(s.expires_at),
        channels=s.channels,
        catalog_complete=s.catalog_complete,
        conflicts=conflicts,
        offline_reason=s.offline_reason,
        subscribed=s.subscribed,
        device_info=s.device_info,
    )


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _location(item: CatalogItem) -> Location | None:
    try:
        lat, lon = float(item.latitude), float(item.longitude)
    except ValueError:
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat == 0 and lon == 0):
        return None  # (0, 0): what platforms send for "not surveyed"
    return Location(lat=lat, lon=lon, address=item.address[:200] or None)


class GbCollector(Collector):
    """What an operator graphs of the lower platforms (scraped from memory, no Redis)."""

    def __init__(self, gw: GbGateway) -> None:
        self.gw = gw

    def collect(self) -> Iterator[Metric]:
        labels = ["platform", "network"]
        registered = GaugeMetricFamily(
            "camgw_gb28181_registered", "Lower platform registered (1) or not (0)", labels=labels
        )
        online = GaugeMetricFamily(
            "camgw_gb28181_online", "Lower platform keeping alive (1) or not (0)", labels=labels
        )
        channels = GaugeMetricFamily(
            "camgw_gb28181_channels", "Channels in the platform's last catalog", labels=labels
        )
        conflicts = CounterMetricFamily(
            "camgw_gb28181_conflicts", "Channel codes another platform already held", labels=labels
        )
        for s in self.gw.platform.status():
            key = [s.id, s.network]
            registered.add_metric(key, int(s.registered))
            online.add_metric(key, int(s.online))
            channels.add_metric(key, s.channels)
            conflicts.add_metric(key, self.gw.conflicts.get(s.id, 0))
        refused = CounterMetricFamily(
            "camgw_gb28181_refused", "SIP messages refused, by status and reason", labels=["why"]
        )
        for why, n in sorted(self.gw.platform.refusals.items()):
            refused.add_metric([why], n)
        dropped = CounterMetricFamily(
            "camgw_gb28181_events_dropped", "Events the gateway could not keep up with"
        )
        dropped.add_metric([], self.gw.platform.dropped_events)
        uploads = CounterMetricFamily(
            "camgw_gb28181_uploads_refused", "Snapshot uploads refused (token, source, size, type)"
        )
        uploads.add_metric([], self.gw.platform.snaps.refused)
        yield from (registered, online, channels, conflicts, refused, dropped, uploads)


GB28181 = web.AppKey("gb28181", GbGateway)
# The clock the service judges time by (tests set one they move; default: time.time).
Clock = Callable[[], float]
GB28181_CLOCK: web.AppKey[Clock] = web.AppKey("gb28181_clock")


def gb28181_context() -> Callable[[web.Application], AsyncIterator[None]]:
    """Cleanup context: the SIP service, when `[gb28181] enabled` (else nothing opens)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        if not settings.gb28181.enabled:
            yield
            return
        clock = app.get(GB28181_CLOCK, time.time)
        gw = GbGateway(
            settings, app[REDIS], app[REGISTRY], app[CATALOG], app[AUDIT], app[VAULT], clock
        )
        app[GB28181] = gw
        await gw.start()
        collector = GbCollector(gw)
        app[METRICS].registry.register(collector)
        # Its networks' adapters picture the platforms' channels (the same snapshot path).
        adapters = app[ADAPTERS]
        wrapped = {p.network: adapters[p.network] for p in settings.gb28181.platforms}
        for network, inner in wrapped.items():
            adapters[network] = PlatformAdapter(inner, gw.platform)
        workers = [
            asyncio.create_task(gw.run(), name="camgw-gb28181"),
            asyncio.create_task(gw.ticker(), name="camgw-gb28181-tick"),
        ]
        yield
        adapters.update(wrapped)
        app[METRICS].registry.unregister(collector)
        await gw.stop()
        await tasks.stop(*workers)

    return ctx
