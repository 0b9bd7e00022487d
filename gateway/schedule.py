"""When a network's scheduled work is next due, kept in Redis so that every replica agrees.

`<prefix>:schedule:{network}` is a hash: `discovery` and `health`, each the wall-clock time
(epoch seconds) at which that work is next due. The replica that completes the work moves its
time on, under the work's lease (gateway/lease.py); a replica that dies mid-way leaves the time
where it was, so another replica takes the lease once it expires and does the work.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from .errors import redis_errors

WORK = ("discovery", "health")


@dataclass(frozen=True, slots=True)
class Due:
    discovery: float | None  # None: not scheduled
    health: float | None


class Schedule:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    def key(self, network: str) -> str:
        return f"{self.prefix}:schedule:{network}"

    async def due(self, network: str, now: float, every: dict[str, float]) -> Due:
        """The network's due times; work never scheduled before starts as `every` says
        (discovery at once, health one interval from now). `every[w]` of 0: not scheduled."""
        key = self.key(network)
        first = {"discovery": now, "health": now + every["health"]}
        with redis_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                for work in WORK:
                    if every[work] > 0:
                        pipe.hsetnx(key, work, repr(first[work]))
                pipe.hmget(key, list(WORK))
                raw = (await pipe.execute())[-1]
        times = {
            w: float(r) if r and every[w] > 0 else None for w, r in zip(WORK, raw, strict=True)
        }
        return Due(times["discovery"], times["health"])

    async def next(self, network: str, work: str, at: float) -> None:
        with redis_errors():
            await self.redis.hset(self.key(network), work, repr(at))
