"""The audit trail: a Redis Stream that the API can append to and read, never edit or delete.

Every entry is sealed into a hash chain (`audit_chain.py`): `seq`, `prev` and an HMAC `link`
under a key derived from the credential key file, which never reaches Redis. Changes to the
registry write their entry inside the same Lua script as the change, so a change without its
entry cannot exist; those scripts, like the batched appends here, take their seq/prev/link
from the one sequencer of the process (`AuditLog.chain`). Refusals are appended on their own;
unauthenticated ones (401) are counted per source and minute instead (`RefusalAggregator`),
so a flood makes a count, not a flood of entries. Before the stream is trimmed its oldest
entries are archived to files (`audit_archive.py`).

Keys (prefix `camgw`):
    camgw:audit                     the stream (seq, prev, the entry's fields, link)
    camgw:audit:head                "seq link" of the last entry (the scripts' optimistic check)
    camgw:audit:turn                the writer that lost a race and appends next (500 ms at most)
    camgw:audit:archive-lock        the gateway archiving now (SET NX PX)
    camgw:audit:ix...               indexes by actor, camera and network (`audit_index.py`)
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, cast

import orjson
from redis.asyncio import Redis

from .audit_archive import Archiver, export, verify_trail
from .audit_chain import CHAIN_PURPOSE, AuditChain, Break
from .audit_index import (
    LAST_ID,
    AuditIndex,
    Id,
    Plan,
    after,
    before,
    below,
    lex,
    parse_id,
    text,
)
from .batching import GroupCommit
from .errors import CamgwError, Unavailable, redis_errors
from .models import AuditEntry, AuditPage
from .settings import AuditConfig
from .vault import CredentialVault

log = logging.getLogger(__name__)

_SCAN_BATCH = 500
_INDEX_BATCH = 500  # index members read (and entries fetched by id) per round trip at most

# Every stored value is bounded, so no caller (and no attacker choosing a path, a header or a
# token) can make an entry large.
FIELD_LIMITS = {
    "actor": 200,
    "role": 32,
    "action": 64,
    "target": 200,
    "outcome": 32,
    "network": 64,
    "detail": 500,
    "request_id": 128,
}
MAX_EXTRA_FIELDS = 16
MAX_EXTRA_KEY = 64
MAX_EXTRA_VALUE = 500
RESERVED = {*FIELD_LIMITS, "status", "time", "id", "extra", "seq", "prev", "link"}
_KEY_CHARS = re.compile(r"[^A-Za-z0-9_.-]")


def bound(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
    time: datetime | None = None  # None: now

    def fields(self) -> list[str]:
        """Flat field/value list, every value bounded in length; `time` last. The chain's
        seq/prev/link are added when the entry is sealed."""
        out = [
            "actor",
            bound(self.actor, FIELD_LIMITS["actor"]),
            "role",
            bound(self.role, FIELD_LIMITS["role"]),
            "action",
            bound(self.action, FIELD_LIMITS["action"]),
            "target",
            bound(self.target, FIELD_LIMITS["target"]),
            "outcome",
            bound(self.outcome, FIELD_LIMITS["outcome"]),
            "status",
            str(int(self.status)),
            "network",
            bound(self.network, FIELD_LIMITS["network"]),
            "detail",
            bound(self.detail, FIELD_LIMITS["detail"]),
            "request_id",
            bound(self.request_id, FIELD_LIMITS["request_id"]),
        ]
        extra: dict[str, str] = {}
        for key, value in self.extra.items():
            if len(extra) == MAX_EXTRA_FIELDS:
                extra["extra_dropped"] = str(len(self.extra) - MAX_EXTRA_FIELDS)
                break
            name = _KEY_CHARS.sub("_", key)[:MAX_EXTRA_KEY] or "_"
            if name in RESERVED:
                name = f"x_{name}"[:MAX_EXTRA_KEY]
            extra[name] = bound(str(value), MAX_EXTRA_VALUE)
        for key, value in extra.items():
            out += [key, value]
        out += ["time", (self.time or datetime.now(UTC)).isoformat(timespec="milliseconds")]
        return out


@dataclass(frozen=True, slots=True)
class AuditQuery:
    actor: str | None = None
    camera: str | None = None
    network: str | None = None
    reason: str | None = None  # a snapshot's incident or ticket reference (not indexed: scanned)
    networks: frozenset[str] | None = None  # what the reader may see; None = all
    since: datetime | None = None
    limit: int = 100
    cursor: str | None = None  # newest-first paging: entries older than this stream id


# -- unauthenticated refusals, counted --------------------------------------------------------

OTHER_SOURCES = "other sources"
_PATH_SAMPLES = 3
_PATH_SAMPLE_CHARS = 100
_PENDING_MINUTES = 60


@dataclass(slots=True)
class _Count:
    first: float
    last: float
    count: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)


class RefusalAggregator:
    """401s per (source address, minute): one `auth.refused` entry per source and minute with
    the count, first and last time, the reasons and a few sample paths, written once the minute
    is over (and at shutdown). At most `max_sources` sources are held per minute; the rest are
    counted together under "other sources". Noting a refusal is a dict update: no Redis."""

    def __init__(self, max_sources: int, clock: Callable[[], float] = time.time) -> None:
        self.max_sources = max_sources
        self.clock = clock  # injectable: tests move time instead of sleeping
        self._minutes: dict[int, dict[str, _Count]] = {}
        self._flushing = asyncio.Lock()
        self.dropped = 0  # refusals lost because their minute could not be written in time

    def note(self, source: str, path: str, reason: str) -> None:
        now = self.clock()
        minute = int(now // 60)
        sources = self._minutes.get(minute)
        if sources is None:
            if len(self._minutes) >= _PENDING_MINUTES:  # Redis has been away for an hour
                oldest = min(self._minutes)
                lost = sum(c.count for c in self._minutes.pop(oldest).values())
                self.dropped += lost
                log.error("unauthenticated refusals not audited", extra={"count": lost})
            sources = self._minutes[minute] = {}
        key = bound(source or "unknown", 64)
        counted = sources.get(key)
        if counted is None:
            if len(sources) >= self.max_sources:
                key = OTHER_SOURCES
                counted = sources.get(key)
            if counted is None:
                counted = sources[key] = _Count(now, now)
        counted.count += 1
        counted.last = max(counted.last, now)
        counted.reasons[reason] = counted.reasons.get(reason, 0) + 1
        sample = bound(path, _PATH_SAMPLE_CHARS)
        if len(counted.paths) < _PATH_SAMPLES and sample not in counted.paths:
            counted.paths.append(sample)

    def pending(self) -> int:
        return sum(c.count for sources in self._minutes.values() for c in sources.values())

    async def flush(self, log_: AuditLog, everything: bool = False) -> int:
        """Write the minutes that are over (all of them with `everything`); a minute that
        cannot be written stays for the next flush. Returns the entries written."""
        async with self._flushing:
            current = int(self.clock() // 60)
            due = sorted(m for m in self._minutes if everything or m < current)
            if not due:
                return 0
            now = datetime.fromtimestamp(self.clock(), UTC)
            events = [
                self._event(minute, source, counted, now)
                for minute in due
                for source, counted in sorted(self._minutes[minute].items())
            ]
            await log_.append_many(events)
            for minute in due:
                self._minutes.pop(minute, None)
            return len(events)

    def _event(self, minute: int, source: str, c: _Count, now: datetime) -> AuditEvent:
        other = source == OTHER_SOURCES
        detail = f"{c.count} unauthenticated request(s) refused" + (
            f" from sources beyond the first {self.max_sources} of this minute" if other else ""
        )
        return AuditEvent(
            actor="anonymous",
            role="",
            action="auth.refused",
            target=source,
            outcome="denied",
            status=401,
            detail=detail,
            extra={
                "count": str(c.count),
                "minute": _iso(minute * 60),
                "first": _iso(c.first),
                "last": _iso(c.last),
                "reasons": ",".join(f"{r}={n}" for r, n in sorted(c.reasons.items())),
                "paths": orjson.dumps(c.paths).decode(),
            },
            time=now,
        )


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


# -- the log ------------------------------------------------------------------------------------


class AuditLog:
    """Appends are group-committed (one script call per batch); each caller returns only once
    its own entry is in the stream."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        vault: CredentialVault,
        config: AuditConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.config = config or AuditConfig()
        self.key = f"{prefix}:audit"
        self.head_key = f"{prefix}:audit:head"
        self.turn_key = f"{prefix}:audit:turn"  # the writer that lost a race appends next
        self._chain_key = vault.derive(CHAIN_PURPOSE)
        self.chain = AuditChain(redis, self.key, self.head_key, self._chain_key)
        self.index = AuditIndex(redis, self.key)
        self.archiver = Archiver(redis, self.key, self.config, self.index)
        self.refusals = RefusalAggregator(self.config.refusal_sources, clock)
        self._script = self.index.batch_script()
        self.entries_read = 0  # stream entries read by queries (scanned or fetched by id)
        self._batches: GroupCommit[list[str], None] = GroupCommit(self._write, "audit log")

    def __repr__(self) -> str:
        return f"AuditLog({self.key!r}, <key hidden>)"

    async def append(self, event: AuditEvent) -> None:
        await self._batches.submit(event.fields())

    async def append_many(self, events: list[AuditEvent]) -> None:
        """Several entries in one script call: all of them are in the stream when this
        returns, or none is (so a retry never writes one twice)."""
        if not events:
            return
        try:
            with redis_errors():
                await self._write([e.fields() for e in events])
        except OSError as exc:
            raise Unavailable("the audit log is unreachable; retry") from exc

    async def _write(self, contents: list[list[str]]) -> list[None]:
        async def send(chain: list[str], entries: list[list[str]]) -> None:
            # One argument per entry (a JSON array the script decodes): redis-py packs every
            # argument in Python, and an entry has some forty field/value strings.
            args: list[str | bytes] = [*chain, *(orjson.dumps(fields) for fields in entries)]
            keys = [self.key, self.head_key, self.turn_key, self.index.meta_key]
            await self._script(keys=[*keys, self.index.keys_key], args=args)

        await self.chain.append(contents, send)
        return [None] * len(contents)

    # -- upkeep: refusal counts, indexes, archive --------------------------------------------

    async def flush_refusals(self, everything: bool = False) -> int:
        return await self.refusals.flush(self, everything)

    async def index_upkeep(self) -> tuple[int, int]:
        """Index what the appending scripts left out (`AuditIndex.catch_up`): entries indexed
        after the coverage and before it."""
        with redis_errors():
            return await self.index.catch_up()

    async def archive(self) -> int:
        with redis_errors():
            return await self.archiver.run_once()

    async def upkeep(self, tick_s: float = 5.0) -> None:
        """Runs for the life of the gateway: refusal counts and the indexes' catch-up every
        tick, the archive every `archive_interval_s`. Failures are logged and retried; they
        never end the loop."""
        loop = asyncio.get_running_loop()
        next_archive = loop.time() + min(tick_s, self.config.archive_interval_s)
        while True:
            await asyncio.sleep(min(tick_s, self.config.archive_interval_s))
            try:
                await self.flush_refusals()
                await self.index_upkeep()
                if loop.time() >= next_archive:
                    next_archive = loop.time() + self.config.archive_interval_s
                    await self.archive()
            except CamgwError as exc:
                log.warning("audit upkeep failed; retrying", extra={"error": exc.detail})
            except Exception:
                log.exception("audit upkeep failed; retrying")

    # -- whole-trail checks (CLI) ----------------------------------------------------------

    async def verify(self, archive_dir: Path | None = None) -> Break | str:
        with redis_errors():
            return await verify_trail(
                self.redis,
                self.key,
                self.head_key,
                archive_dir or self.config.archive_dir,
                self._chain_key,
            )

    async def export(
        self, since: datetime, out: IO[bytes], archive_dir: Path | None = None, **about: object
    ) -> int:
        with redis_errors():
            return await export(
                self.redis,
                self.key,
                self.head_key,
                archive_dir or self.config.archive_dir,
                int(since.timestamp() * 1000),
                out,
                since=since.isoformat(),
                **about,
            )

    # -- reading -----------------------------------------------------------------------------

    async def query(self, q: AuditQuery, *, use_index: bool = True) -> AuditPage:
        """Newest first, `limit` at most, older than `cursor`, from `since` on. With a filter
        on camera, actor or network (or a reader of one network) the entries inside the
        indexes' coverage come from the smallest of those indexes (`audit_index.py`), the rest
        of the stream is scanned; every entry read is checked against every filter, so the
        answer is the scan's (`use_index=False`), read from fewer entries."""
        items: list[AuditEntry] = []
        # (A cursor the API would refuse reads as 0-0, before which there is nothing.)
        high = before(parse_id(q.cursor) or (0, 0)) if q.cursor else LAST_ID
        low: Id = (max(0, int(q.since.timestamp() * 1000)), 0) if q.since else (0, 0)
        visible = q.networks
        if visible is not None and (not visible or q.network not in (None, *visible)):
            high = None  # the reader sees no network the query could match
        if high is None:
            return AuditPage(items=[], next_cursor=None)
        with redis_errors():
            plan = await self._plan(q) if use_index else None
            if plan is None:
                await self._scan(q, high, low, items)
            else:
                # After the coverage, inside it, before it: three ranges, newest first. (No
                # entry has the id 0-0: a coverage from 0-0 leaves nothing before it.)
                newer = after(plan.end)
                if newer is not None:
                    await self._scan(q, high, max(low, newer), items)
                inside = after(plan.start)
                if plan.size and inside is not None:
                    await self._fetch(q, plan.key, min(high, plan.end), max(low, inside), items)
                if plan.start != (0, 0):
                    await self._scan(q, min(high, plan.start), low, items)
        more = len(items) == q.limit
        return AuditPage(items=items, next_cursor=items[-1].id if more and items else None)

    async def _plan(self, q: AuditQuery) -> Plan | None:
        filters = [(k, v) for k, v in (("camera", q.camera), ("actor", q.actor)) if v is not None]
        if q.network is not None:
            filters.append(("network", q.network))
        elif q.networks is not None and len(q.networks) == 1:
            filters.append(("network", next(iter(q.networks))))
        return await self.index.plan(filters) if filters else None

    async def _scan(self, q: AuditQuery, high: Id | None, low: Id, items: list[AuditEntry]) -> None:
        """Walk the stream from `high` down to `low` (both included), filtering."""
        while high is not None and high >= low and len(items) < q.limit:
            batch = await self.redis.xrevrange(self.key, text(high), text(low), count=_SCAN_BATCH)
            rows = cast(list[tuple[bytes, dict[bytes, bytes]]], batch)
            self.entries_read += len(rows)
            if self._take(q, rows, items) or len(rows) < _SCAN_BATCH:
                return
            high = before(parse_id(rows[-1][0]) or (0, 0))

    async def _fetch(
        self, q: AuditQuery, key: str, high: Id, low: Id, items: list[AuditEntry]
    ) -> None:
        """The entries an index names from `high` down to `low` (both included), fetched by id
        in pipelined pages; ids no longer in the stream (archived) are skipped."""
        if high < low:
            return
        count = min(_INDEX_BATCH, q.limit - len(items))
        upper, lower = f"[{lex(high)}", f"[{lex(low)}"
        while len(items) < q.limit:
            members = await self.index.members(key, upper, lower, count)
            pipe = self.redis.pipeline(transaction=False)
            for i in filter(None, map(parse_id, members)):
                pipe.xrange(self.key, text(i), text(i))
            found = [row for rows in await pipe.execute() for row in rows]
            self.entries_read += len(found)
            if self._take(q, found, items) or len(members) < count:
                return
            upper = below(members[-1])
            count = min(_INDEX_BATCH, count * 2)

    @staticmethod
    def _take(
        q: AuditQuery, rows: list[tuple[bytes, dict[bytes, bytes]]], items: list[AuditEntry]
    ) -> bool:
        """Add the rows that match to `items`; True once it holds `limit`."""
        for raw_id, raw in rows:
            entry = _entry(raw_id, raw)
            if _matches(q, entry):
                items.append(entry)
                if len(items) == q.limit:
                    return True
        return False

    async def follow(self, after: str, block_ms: int = 2000) -> AsyncIterator[AuditEntry]:
        """Entries appended after stream id `after` ("0": all of them), as they come, until
        the caller stops. Each wait is shorter than the client's socket timeout."""
        last = after
        while True:
            with redis_errors():
                got = await self.redis.xread({self.key: last}, block=block_ms, count=500)
            streams = got.items() if isinstance(got, dict) else (got or [])
            for _key, rows in streams:
                for raw_id, raw in cast(list[tuple[bytes, dict[bytes, bytes]]], rows):
                    last = raw_id.decode()
                    yield _entry(raw_id, raw)


_KNOWN = [name for name in AuditEntry.model_fields if name not in ("id", "extra")]


def _entry(raw_id: bytes, raw: dict[bytes, bytes]) -> AuditEntry:
    """An entry as the API shows it; whatever is in the stream (a forged entry may lack fields
    or hold garbage) is shown, never a 500."""
    d = {k.decode(errors="replace"): v.decode(errors="replace") for k, v in raw.items()}
    base: dict[str, object] = {k: d.pop(k, "") for k in _KNOWN}
    status, seq = str(base["status"]), str(base["seq"])
    base["status"] = int(status) if status.isdigit() and len(status) < 6 else 0
    base["seq"] = int(seq) if seq.isdigit() and len(seq) <= 20 else None
    base["prev"] = base["prev"] or None
    base["link"] = base["link"] or None
    try:
        base["time"] = datetime.fromisoformat(str(base["time"]))
    except ValueError:
        base["time"] = None
    return AuditEntry.model_validate(base | {"id": raw_id.decode(), "extra": d})


def _matches(q: AuditQuery, e: AuditEntry) -> bool:
    if q.networks is not None and e.network not in q.networks:
        return False
    return (
        (q.actor is None or e.actor == q.actor)
        and (q.camera is None or e.target == q.camera)
        and (q.network is None or e.network == q.network)
        and (q.reason is None or e.extra.get("reason") == q.reason)
    )
