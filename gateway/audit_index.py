"""Secondary indexes of the audit stream, so that a query for a rare actor, camera or network
reads that value's entries instead of the whole stream.

Keys (stream `camgw:audit`; the Lua side is `lua/audit_index_lib.lua`):
    camgw:audit:ix                  hash `from`, `through`: the coverage, stream ids; every entry
                                    with from < id <= through is indexed
    camgw:audit:ix:keys             set of the index keys below (the archiver trims them)
    camgw:audit:ix:<kind>:<sha1>    sorted set per value (kind actor, camera = the entry's
                                    `target`, network; sha1 hex of the value); members the ids
                                    of its entries as `%020d-%020d`, all scored 0: lexical
                                    order is stream order, newest first is ZREVRANGEBYLEX;
                                    every entry is in three, an empty value's included (the
                                    same work for every entry: no timing tells them apart)

Every key starts with the stream's key, so a hash tag on `<prefix>:audit` (or on the prefix)
puts the stream, its head, turn, lock and indexes in one Redis Cluster slot.

Who keeps them: `audit_batch.lua` indexes the entries it appends, after indexing (up to 256 of)
those other scripts appended since the coverage's end (the registry's upsert/delete scripts
append without indexing); the gateway's upkeep (`AuditIndex.catch_up`) indexes the rest
after the end and, backwards, the entries written before the indexes existed, moving the
coverage over them; the archiver drops ids below the stream's first entry (`trim`). A query
reads the index only inside the coverage and scans the stream outside it, and checks every
filter on every entry it reads, so an incomplete or stale index costs time, never an entry.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import cast

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from .lua import source

Id = tuple[int, int]  # a stream id: (milliseconds, sequence)

MAX_SEQ = 2**64 - 1
LAST_ID: Id = (MAX_SEQ, MAX_SEQ)

_STEP = 200  # entries per catch-up script call (each blocks Redis for some 5 ms)
_CATCH_UP_BUDGET = 20_000  # entries per direction per upkeep tick
_TRIM_CHUNK = 200  # index keys per trim script call
_TRIM_BUDGET = 20_000  # index keys per archiver run; the next run goes on from there


def script(name: str) -> str:
    """A script of gateway/lua with the index functions before it."""
    return source("audit_index_lib.lua") + "\n" + source(name)


def parse_id(text: str | bytes) -> Id | None:
    """`<ms>-<seq>` (both below 2^64; an index member's leading zeros too), else None."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    ms, sep, seq = text.partition("-")
    if not (sep and ms.isascii() and ms.isdigit() and seq.isascii() and seq.isdigit()):
        return None
    parsed = (int(ms), int(seq))
    return parsed if max(parsed) <= MAX_SEQ else None


def text(i: Id) -> str:
    return f"{i[0]}-{i[1]}"


def lex(i: Id) -> str:
    """An index member: fixed width, so lexical order is stream order."""
    return f"{i[0]:020d}-{i[1]:020d}"


def below(member: bytes | str) -> str:
    """The ZREVRANGEBYLEX bound that goes on after `member`."""
    return "(" + (member.decode(errors="replace") if isinstance(member, bytes) else member)


def before(i: Id) -> Id | None:
    """The largest id below `i` (None below 0-0)."""
    if i[1] > 0:
        return (i[0], i[1] - 1)
    return (i[0] - 1, MAX_SEQ) if i[0] > 0 else None


def after(i: Id) -> Id | None:
    """The smallest id above `i` (None above the last one)."""
    if i[1] < MAX_SEQ:
        return (i[0], i[1] + 1)
    return (i[0] + 1, 0) if i[0] < MAX_SEQ else None


@dataclass(frozen=True, slots=True)
class Plan:
    """How to answer a query: the index key to read, and the coverage it was read with."""

    key: str
    size: int  # members of the key (0: nothing inside the coverage matches)
    start: Id  # coverage: entries with start < id <= end are in the index
    end: Id


class AuditIndex:
    """The indexes' keys, the query's reads, the upkeep's catch-up and the archiver's trim
    (the appends index in `audit_batch.lua`, `batch_script`)."""

    def __init__(self, redis: Redis, stream_key: str) -> None:
        self.redis = redis
        self.stream_key = stream_key
        self.meta_key = f"{stream_key}:ix"
        self.keys_key = f"{stream_key}:ix:keys"
        self._step = redis.register_script(script("audit_index.lua"))
        self._trim = redis.register_script(script("audit_index_trim.lua"))
        self._trim_cursor = 0  # where the archiver's last pass over the index keys stopped

    def key(self, kind: str, value: str) -> str:
        digest = hashlib.sha1(value.encode("utf-8", "surrogatepass")).hexdigest()
        return f"{self.meta_key}:{kind}:{digest}"

    def batch_script(self) -> AsyncScript:
        return self.redis.register_script(script("audit_batch.lua"))

    async def plan(self, filters: list[tuple[str, str]]) -> Plan | None:
        """The smallest index among `filters` (kind, value) and the coverage, in one round
        trip; None when the indexes have no coverage yet (nothing appended since they exist)."""
        keys = [self.key(kind, value) for kind, value in filters]
        pipe = self.redis.pipeline(transaction=False)
        pipe.hmget(self.meta_key, ["from", "through"])
        for key in keys:
            pipe.zcard(key)
        got = await pipe.execute()
        start, end = (parse_id(v) if v is not None else None for v in got[0])
        if start is None or end is None:
            return None
        size, key = min(zip((int(n) for n in got[1:]), keys, strict=True))
        return Plan(key, size, start, end)

    async def members(self, key: str, upper: str, lower: str, count: int) -> list[bytes | str]:
        """Up to `count` members of `key` from `upper` down to `lower` (ZREVRANGEBYLEX bounds,
        `[lex(id)` or `(member`), newest first."""
        return await self.redis.zrevrangebylex(key, upper, lower, 0, count)

    async def catch_up(
        self, forward: int = _CATCH_UP_BUDGET, backward: int = _CATCH_UP_BUDGET
    ) -> tuple[int, int]:
        """Index up to `forward` entries after the coverage and `backward` before it, a few
        hundred per script call; returns how many of each."""
        done_forward = done_backward = 0
        while True:
            f = min(_STEP, forward - done_forward)
            b = min(_STEP, backward - done_backward)
            if f <= 0 and b <= 0:
                break
            got = await self._step(
                keys=[self.stream_key, self.meta_key, self.keys_key], args=[max(f, 0), max(b, 0)]
            )
            n_forward, n_backward, at_end, at_start = (int(x) for x in cast(list[int], got))
            done_forward += n_forward
            done_backward += n_backward
            if at_end:
                forward = done_forward  # nothing more after the end now
            if at_start:
                backward = done_backward
        return done_forward, done_backward

    async def coverage(self) -> tuple[Id, Id] | None:
        start, end = await self.redis.hmget(self.meta_key, ["from", "through"])
        first, last = (parse_id(v) if v is not None else None for v in (start, end))
        return (first, last) if first is not None and last is not None else None

    @property
    def trim_pending(self) -> bool:
        """A pass over the index keys is under way (the last run stopped at its budget)."""
        return self._trim_cursor != 0

    async def trim(self, budget: int = _TRIM_BUDGET) -> int:
        """Drop ids below the stream's first entry from up to `budget` index keys (a pass over
        all of them goes on where the last call stopped), and empty keys from the key set.
        Returns the ids dropped."""
        dropped = seen = 0
        while seen < budget:
            cursor, keys = await self.redis.sscan(
                self.keys_key, self._trim_cursor, count=_TRIM_CHUNK
            )
            self._trim_cursor = int(cursor)
            if keys:
                seen += len(keys)
                got = await self._trim(keys=[self.stream_key, self.keys_key, *keys])
                dropped += int(cast(int, got))
            if self._trim_cursor == 0:
                break
        return dropped
