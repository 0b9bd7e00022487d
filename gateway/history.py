"""Each camera's status changes, held in memory per gateway process and kept up to date from the
registry's status streams (`<prefix>:history:status:<network>`, appended by the script that makes
each change: gateway/lua/upsert.lua). What availability, the outage report, a camera's history
and the outage metrics are computed from (issue 12; docs/accountability.md).

Why in memory: a month of a flapping town is ~200,000 stream entries, and reading them from
Redis for each request took 1.3 to 3.3 s on the benchmark machine (XRANGE alone 0.43 s of Redis
time; the client 1 s to parse the reply and 1 s to turn it into dicts), against the aim of a
monthly roll-up under 1 s; from memory it takes ~50 ms (bench/availability.py). So each
process reads each stream once, then only what was added since (one pipelined round trip per
refresh, every few seconds and before each query), and holds each camera's changes as compact
arrays (~22 bytes a change: 12 MiB for 563,000). A query then finds a camera's changes inside
a window, and its status at the window's start, by bisection. Every replica reads the same
streams: they agree.

Time is the change's `at` (the record's `updated_at`, the writer's clock), not the stream id
(Redis's clock): the figures are about when the camera changed, as its writer saw it. Within a
camera the stream's order is the true order of its changes (one script at a time); a writer
whose clock lags behind the previous writer's cannot make time run backwards: each change's
time is at least the one before it (`times` is non-decreasing).

A camera with no change held (stable for longer than the history is kept, or registered before
the history was written) has been in its current status since before anything held: the
queries say so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from .availability import ABSENT, UNKNOWN, code, image_code
from .errors import redis_errors
from .settings import Settings

log = logging.getLogger(__name__)

REFRESH_S = 10.0  # the background refresh (metrics); queries refresh first anyway
# Entries per XRANGE, and each network's taken on its own turn of the event loop: at 5,000,
# a district's first health round (75,000 status changes) made refreshes of 40-60 ms steps,
# six streams' chunks in one (bench/scale.py at 100,000 cameras, 2026-12-01).
_CHUNK = 1000
_SEQ_BITS = 20  # a stream id ms-seq as one integer: ms << 20 | seq (seq capped)
_SEQ_MAX = (1 << _SEQ_BITS) - 1
_TRIM_SLACK_MS = 3_600_000  # drop what the stream trimmed at most once an hour


def stream_key(stream_id: bytes | str) -> int:
    """A stream id `ms-seq` as one orderable integer."""
    text = stream_id.decode() if isinstance(stream_id, bytes) else stream_id
    ms, _, seq = text.partition("-")
    return int(ms) << _SEQ_BITS | min(int(seq or 0), _SEQ_MAX)


def key_id(key: int) -> str:
    """The stream id of a key (as `next_cursor` says it)."""
    return f"{key >> _SEQ_BITS}-{key & _SEQ_MAX}"


def image_history_key(prefix: str, network: str) -> str:
    """The stream of a network's image status changes (verdicts of the quality diagnosis)."""
    return f"{prefix}:history:image:{network}"


def instant(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _at_seconds(raw: bytes, stream_ms: int) -> float:
    try:
        return datetime.fromisoformat(raw.decode()).timestamp()
    except ValueError:
        return stream_ms / 1000  # not what the writer writes: Redis's time then


@dataclass(slots=True)
class CameraLog:
    """One camera's retained changes, oldest first."""

    keys: array[int] = field(default_factory=lambda: array("q"))  # stream ids (stream_key)
    times: array[float] = field(default_factory=lambda: array("d"))  # non-decreasing
    to: bytearray = field(default_factory=bytearray)  # status codes (availability.py)
    was: bytearray = field(default_factory=bytearray)  # status before (ABSENT: created)
    errors: array[int] = field(default_factory=lambda: array("I"))  # into ErrorTable

    def __len__(self) -> int:
        return len(self.keys)

    def append(self, key: int, at: float, to: int, was: int, error: int) -> None:
        if self.times and at < self.times[-1]:
            at = self.times[-1]
        self.keys.append(key)
        self.times.append(at)
        self.to.append(to)
        self.was.append(was)
        self.errors.append(error)

    def drop_before(self, key: int) -> None:
        """Forget the changes the stream no longer holds."""
        n = bisect_left(self.keys, key)
        if n:
            del self.keys[:n], self.times[:n], self.to[:n], self.was[:n], self.errors[:n]

    def status_at(self, t: float, current: int) -> int:
        """Its status at `t` (the last change at or before it; before the first change held,
        the status that change left; with no change held, `current`)."""
        i = bisect_right(self.times, t)
        if i:
            return self.to[i - 1]
        return self.was[0] if self.keys else current


def window_bounds(cam: CameraLog, start: float, end: float) -> tuple[int, int]:
    """Indexes [lo, hi) of the changes inside [start, end)."""
    return bisect_right(cam.times, start), bisect_left(cam.times, end)


class ErrorTable:
    """`last_error` texts, each kept once (a fleet repeats a few dozen of them)."""

    def __init__(self) -> None:
        self.texts: list[str] = [""]
        self._index: dict[bytes, int] = {b"": 0}

    def add(self, raw: bytes) -> int:
        i = self._index.get(raw)
        if i is None:
            i = self._index[raw] = len(self.texts)
            self.texts.append(raw.decode(errors="replace"))
        return i


@dataclass(slots=True)
class NetworkLog:
    """One network's stream as read so far."""

    key: str
    cameras: dict[str, CameraLog] = field(default_factory=dict)
    last_id: str = "0-0"  # the newest entry read
    oldest_key: int | None = None  # the oldest entry held
    entries: int = 0
    codes: Callable[[str], int] = code  # the statuses' (image_code: the verdicts')

    def clear(self) -> None:
        self.cameras.clear()
        self.last_id, self.oldest_key, self.entries = "0-0", None, 0


class StatusHistory:
    """The status changes of every network, read incrementally from Redis (module docstring).
    Readers hold `reading()` while they look at the logs, so that a refresh never changes them
    under a computation running in a worker thread."""

    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        keys: Callable[[str], str],
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        # Our own client on the app's connection pool: the XRANGE replies are used as hiredis
        # gives them, without redis-py's conversion of each entry into a dict (half the time).
        self.redis = Redis(connection_pool=redis.connection_pool)
        self.redis.set_response_callback("XRANGE", _raw)
        self.redis.set_response_callback("XREVRANGE", _raw)
        self.settings = settings
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.networks = {n.id: NetworkLog(keys(n.id)) for n in settings.networks}
        prefix = settings.redis.prefix
        self.images = {
            n.id: NetworkLog(image_history_key(prefix, n.id), codes=image_code)
            for n in settings.networks
        }
        self.errors = ErrorTable()
        self.generation = 0  # bumped by every refresh that read something (metrics cache)
        self.loads_s: list[float] = []  # how long each refresh that read entries took
        self._lock = asyncio.Lock()
        self._oldest: dict[str, tuple[int, float | None]] = {}  # retained_since, per generation

    def now(self) -> float:
        return self.clock().timestamp()

    @contextlib.asynccontextmanager
    async def reading(self, refresh: bool = True) -> AsyncIterator[None]:
        """Up to date (unless `refresh` is False) and unchanged while held."""
        async with self._lock:
            if refresh:
                await self._refresh()
            yield

    async def refresh(self) -> None:
        async with self._lock:
            await self._refresh()

    def camera(self, network: str, cam_id: str) -> CameraLog | None:
        net = self.networks.get(network)
        return net.cameras.get(cam_id) if net is not None else None

    def image(self, network: str, cam_id: str) -> CameraLog | None:
        """The camera's image status changes held (codes: availability.image_code)."""
        net = self.images.get(network)
        return net.cameras.get(cam_id) if net is not None else None

    def retained_since(self, network: str) -> float | None:
        """The time of the oldest change held for the network (None: none held): from then on
        every change is held, so a camera with no change since has been in its status since
        at least then."""
        net = self.networks.get(network)
        if net is None:
            return None
        held = self._oldest.get(network)
        if held is None or held[0] != self.generation:
            oldest = min((c.times[0] for c in net.cameras.values() if c.times), default=None)
            held = self._oldest[network] = (self.generation, oldest)
        return held[1]

    def error_text(self, index: int) -> str:
        return self.errors.texts[index]

    async def _refresh(self) -> None:
        started = time.perf_counter()
        read = 0
        pending = [*self.networks.values(), *self.images.values()]
        while pending:
            with redis_errors():
                async with self.redis.pipeline(transaction=False) as pipe:
                    for net in pending:
                        pipe.xrange(net.key, min=f"({net.last_id}", max="+", count=_CHUNK)
                        pipe.xrange(net.key, min="-", max="+", count=1)
                        pipe.xrevrange(net.key, max="+", min="-", count=1)
                    replies = await pipe.execute()
            more = []
            for i, net in enumerate(pending):
                new, first, last = replies[3 * i : 3 * i + 3]
                if not new and self._reset(net, last):
                    more.append(net)  # the stream was replaced: read it again from the start
                    continue
                self._add(net, new)
                read += len(new)
                self._trim(net, first)
                if len(new) == _CHUNK:
                    more.append(net)
                await asyncio.sleep(0)  # let requests through between chunks of a first read
            pending = more
        if read:
            self.generation += 1
            self.loads_s.append(time.perf_counter() - started)
            del self.loads_s[:-100]

    def _reset(self, net: NetworkLog, last: list[Any]) -> bool:
        """The stream is gone or now ends before what we read (it was deleted and written
        anew): forget what we hold."""
        if net.last_id == "0-0":
            return False
        if last and stream_key(last[0][0]) >= stream_key(net.last_id):
            return False
        log.warning("status stream %s was replaced; reading it again", net.key)
        net.clear()
        self.generation += 1
        return bool(last)

    def _add(self, net: NetworkLog, entries: list[Any]) -> None:
        errors, cams = self.errors, net.cameras
        for sid, fields in entries:
            if (
                len(fields) >= 10
                and fields[0] == b"id"
                and fields[2] == b"from"
                and fields[4] == b"to"
                and fields[6] == b"at"
                and fields[8] == b"error"
            ):  # as upsert.lua writes them
                cam_id, was, to, at, err = fields[1], fields[3], fields[5], fields[7], fields[9]
            else:
                f = dict(zip(fields[::2], fields[1::2], strict=False))
                cam_id, was, to = f.get(b"id", b""), f.get(b"from", b""), f.get(b"to", b"")
                at, err = f.get(b"at", b""), f.get(b"error", b"")
            key = stream_key(sid)
            name = cam_id.decode()
            cam = cams.get(name)
            if cam is None:
                cam = cams[name] = CameraLog()
            cam.append(
                key,
                _at_seconds(at, key >> _SEQ_BITS),
                net.codes(to.decode()) if to else UNKNOWN,
                net.codes(was.decode()) if was else ABSENT,
                errors.add(err) if err else 0,
            )
            if net.oldest_key is None:
                net.oldest_key = key
        if entries:
            net.last_id = entries[-1][0].decode()
            net.entries += len(entries)

    def _trim(self, net: NetworkLog, first: list[Any]) -> None:
        """Forget what the stream trimmed (by age and count), at most once an hour's worth."""
        if net.oldest_key is None:
            return
        if not first:
            return
        first_key = stream_key(first[0][0])
        if first_key - net.oldest_key < _TRIM_SLACK_MS << _SEQ_BITS:
            return
        for cam_id in list(net.cameras):
            cam = net.cameras[cam_id]
            cam.drop_before(first_key)
            if not cam.keys:
                del net.cameras[cam_id]
        net.entries = sum(len(c) for c in net.cameras.values())
        net.oldest_key = first_key
        self.generation += 1

    def sizes(self) -> Iterator[tuple[str, int, int]]:
        """(network, cameras, changes) held."""
        for network, net in self.networks.items():
            yield network, len(net.cameras), net.entries

    async def run(self, every_s: float = REFRESH_S) -> None:
        """Keep up to date in the background (the metrics read what is held)."""
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # Redis away: try again at the next tick
                log.warning("status history refresh failed", extra={"error": str(exc)})
            await asyncio.sleep(every_s)


def _raw(response: Any, **_: Any) -> Any:
    return response


HISTORY = web.AppKey("history", StatusHistory)
