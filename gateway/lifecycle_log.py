"""When each camera was expected to answer: the parts of a window its lifecycle was one that the
availability figures count, from its lifecycle history (`<prefix>:lifecycle:<id>`, a list,
newest first, appended by the script that changes the record: gateway/lua/upsert.lua, `from`,
`to`, `at`, `actor`). docs/accountability.md, "What is counted", says what and why.

Counted: `in-service` and `under-repair` (a camera being repaired is down, and its carrier
answers for that time). Not counted: `planned`, `under-construction`, `decommissioned` (nobody
expects them to answer): time in those states is neither online nor an outage, whatever status
the record held meanwhile (health rounds do not probe them, so a status from before is stale).

Most cameras never change lifecycle within a window: their record says since when they have
been in their current state (`lifecycle_since`; none, or their creation: never changed), and
that settles it without reading anything. Only the others' lists are read (one pipelined round
trip before a query), each once per change of its lifecycle: what was read is kept with the
record's `lifecycle` and `lifecycle_since`, and read again when those differ.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

import orjson
from redis.asyncio import Redis

log = logging.getLogger(__name__)

NOT_COUNTED = frozenset({"planned", "under-construction", "decommissioned"})
_READ_CHUNK = 500  # lists per pipeline

Span = tuple[float, float]
Stamp = tuple[str, float | None]  # the record's lifecycle and lifecycle_since


def counted(state: str | None) -> bool:
    """Whether time in `state` is counted (None: before the camera existed, when nothing is
    observed anyway: left to the status history)."""
    return state not in NOT_COUNTED


@dataclass(frozen=True, slots=True)
class Timeline:
    """One camera's lifecycle changes, oldest first."""

    before: str | None  # the state before the first change held (None: it did not exist)
    times: tuple[float, ...]  # non-decreasing
    states: tuple[str, ...]


def timeline(raw: Iterable[bytes | str]) -> Timeline:
    """A lifecycle list as upsert.lua writes it (newest first) as a Timeline. A change whose
    time is before the one before it (a writer whose clock lags) is taken at that one's."""
    entries = [orjson.loads(item) for item in raw][::-1]
    times: list[float] = []
    states: list[str] = []
    for e in entries:
        try:
            at = datetime.fromisoformat(e["at"]).timestamp()
        except (KeyError, TypeError, ValueError):
            continue
        if times and at < times[-1]:
            at = times[-1]
        times.append(at)
        states.append(str(e.get("to") or ""))
    before = (entries[0].get("from") or None) if entries else None
    return Timeline(before, tuple(times), tuple(states))


def counted_spans(line: Timeline, start: float, end: float) -> list[Span]:
    """The parts of [start, end) in which the camera's lifecycle was counted, in order."""
    if end <= start:
        return []
    times, states = line.times, line.states
    i = bisect_right(times, start)
    state = states[i - 1] if i else line.before
    began: float | None = start if counted(state) else None
    out: list[Span] = []
    while i < len(times) and times[i] < end:
        at, new = times[i], states[i]
        if counted(new):
            if began is None:
                began = at
        elif began is not None:
            if at > began:
                out.append((began, at))
            began = None
        i += 1
    if began is not None and end > began:
        out.append((began, end))
    return out


def settled(since: float | None, created_at: float | None, start: float) -> bool:
    """Whether a record's current lifecycle held throughout a window from `start` on: it has
    been in it since before the window, or since its creation (never changed)."""
    if since is None or since <= start:
        return True
    return created_at is not None and since <= created_at


def _with_record(line: Timeline, stamp: Stamp) -> Timeline:
    """The timeline as the record has it: a list that does not end in the record's state (lost,
    or written before lifecycle histories were kept) gets the record's own change, at its
    `lifecycle_since`."""
    lifecycle, since = stamp
    if since is None or (line.states and line.states[-1] == lifecycle):
        return line
    at = max(since, line.times[-1]) if line.times else since
    return Timeline(line.before, (*line.times, at), (*line.states, lifecycle))


class LifecycleLog:
    """Lifecycle timelines of the cameras whose lifecycle changed lately, read from Redis when a
    query needs them (module docstring)."""

    def __init__(self, redis: Redis, key: Callable[[str], str]) -> None:
        self.redis = redis
        self.key = key
        self._held: dict[str, tuple[Stamp, Timeline]] = {}
        self.reads = 0  # lists read from Redis (tests, benchmarks)

    async def read(self, wanted: Iterable[tuple[str, Stamp]]) -> None:
        """Read the lists of the cameras (id, stamp) not held as of their stamp."""
        missing = [(cam_id, stamp) for cam_id, stamp in wanted if self._stamp(cam_id) != stamp]
        for i in range(0, len(missing), _READ_CHUNK):
            chunk = missing[i : i + _READ_CHUNK]
            async with self.redis.pipeline(transaction=False) as pipe:
                for cam_id, _ in chunk:
                    pipe.lrange(self.key(cam_id), 0, -1)
                replies = await pipe.execute()
            for (cam_id, stamp), raw in zip(chunk, replies, strict=True):
                self._held[cam_id] = (stamp, _with_record(timeline(raw), stamp))
            self.reads += len(chunk)

    def _stamp(self, cam_id: str) -> Stamp | None:
        held = self._held.get(cam_id)
        return held[0] if held is not None else None

    def spans(
        self,
        cam_id: str,
        stamp: Stamp,
        created_at: float | None,
        start: float,
        end: float,
    ) -> list[Span]:
        """The counted parts of [start, end) of the camera whose record says `stamp`."""
        lifecycle, since = stamp
        if not settled(since, created_at, start):
            held = self._held.get(cam_id)
            if held is not None and held[0] == stamp:
                return counted_spans(held[1], start, end)
            log.warning("lifecycle history of %s not read; counted by its lifecycle now", cam_id)
        return [(start, end)] if counted(lifecycle) and end > start else []
