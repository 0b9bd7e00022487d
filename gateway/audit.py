"""The audit trail: a Redis Stream that the API can append to and read, never edit or delete.

Changes to the registry write their audit entry inside the same Lua script as the change, so
a change without its entry cannot exist. Refusals (401/403/404/422) are appended on their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.resources import files
from typing import cast

from redis.asyncio import Redis

from .batching import GroupCommit
from .errors import redis_errors
from .models import AuditEntry, AuditPage

_SCAN_BATCH = 500


@dataclass(frozen=True, slots=True)
class AuditEvent:
    actor: str
    role: str
    action: str
    target: str
    outcome: str
    status: int
    network: str = ""
    detail: str = ""
    request_id: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def fields(self) -> list[str]:
        """Flat field/value list, as XADD and the registry scripts take it."""
        out = [
            "actor",
            self.actor,
            "role",
            self.role,
            "action",
            self.action,
            "target",
            self.target,
            "outcome",
            self.outcome,
            "status",
            str(self.status),
            "network",
            self.network,
            "detail",
            self.detail,
            "request_id",
            self.request_id,
        ]
        for key, value in self.extra.items():
            out += [key, str(value)]
        out += ["time", datetime.now(UTC).isoformat(timespec="milliseconds")]
        return out


@dataclass(frozen=True, slots=True)
class AuditQuery:
    actor: str | None = None
    camera: str | None = None
    network: str | None = None
    networks: frozenset[str] | None = None  # what the reader may see; None = all
    since: datetime | None = None
    limit: int = 100
    cursor: str | None = None  # newest-first paging: entries older than this stream id


class AuditLog:
    """Appends are group-committed (one script call per batch); each caller returns only once
    its own entry is in the stream."""

    def __init__(self, redis: Redis, prefix: str, max_entries: int) -> None:
        self.redis = redis
        self.key = f"{prefix}:audit"
        self.max_entries = max_entries
        self._script = redis.register_script(
            (files("gateway") / "lua" / "audit_batch.lua").read_text()
        )
        self._batches: GroupCommit[list[str], None] = GroupCommit(self._write, "audit log")

    async def append(self, event: AuditEvent) -> None:
        await self._batches.submit(event.fields())

    async def _write(self, entries: list[list[str]]) -> list[None]:
        args = [str(self.max_entries)]
        for fields in entries:
            args += [str(len(fields)), *fields]
        await self._script(keys=[self.key], args=args)
        return [None] * len(entries)

    async def query(self, q: AuditQuery) -> AuditPage:
        """Newest first, filtered in the gateway (streams have no secondary indexes)."""
        low = f"{int(q.since.timestamp() * 1000)}-0" if q.since else "-"
        high = f"({q.cursor}" if q.cursor else "+"
        items: list[AuditEntry] = []
        with redis_errors():
            while len(items) < q.limit:
                batch = await self.redis.xrevrange(self.key, high, low, count=_SCAN_BATCH)
                if not batch:
                    break
                rows = cast(list[tuple[bytes, dict[bytes, bytes]]], batch)
                for raw_id, raw in rows:
                    entry = _entry(raw_id, raw)
                    if _matches(q, entry):
                        items.append(entry)
                        if len(items) == q.limit:
                            break
                high = f"({rows[-1][0].decode()}"
                if len(batch) < _SCAN_BATCH:
                    break
        more = len(items) == q.limit
        return AuditPage(items=items, next_cursor=items[-1].id if more and items else None)


def _entry(raw_id: bytes, raw: dict[bytes, bytes]) -> AuditEntry:
    d = {k.decode(): v.decode() for k, v in raw.items()}
    known = set(AuditEntry.model_fields) - {"id", "extra"}
    base: dict[str, object] = {k: d.pop(k, "") for k in known}
    base["status"] = int(str(base["status"]) or 0)
    base["time"] = base["time"] or None
    return AuditEntry.model_validate(base | {"id": raw_id.decode(), "extra": d})


def _matches(q: AuditQuery, e: AuditEntry) -> bool:
    if q.networks is not None and e.network not in q.networks:
        return False
    return (
        (q.actor is None or e.actor == q.actor)
        and (q.camera is None or e.target == q.camera)
        and (q.network is None or e.network == q.network)
    )
