"""Leases on a network's scheduled work: one replica at a time holds one, a lost lease stops
its work, and the fence tells a stale holder's writes from its successor's.

Time: a lease's expiry is Redis's (PX); a test makes it expire by expiring the key, as the TTL
would, instead of sleeping past a deadline.
"""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from gateway.lease import Fence, LeaseLost, Leases


class Ticks:
    """The keeper's sleep: returns when the test says a third of the TTL has passed."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[None] = asyncio.Queue()
        self.slept = 0

    async def sleep(self, _seconds: float) -> None:
        await self.queue.get()
        self.slept += 1


async def test_one_holder_at_a_time_and_each_taking_is_a_new_fence(redis: Redis) -> None:
    a, b = Leases(redis, "t", "replica-a"), Leases(redis, "t", "replica-b")
    first = await a.acquire("health:police")
    assert first == Fence("t:fence:health:police", 1)
    assert await b.acquire("health:police") is None  # held by a
    assert await a.acquire("health:police") == first  # a's own, extended: the same fence
    assert await b.holder_of("health:police") == "replica-a"
    assert await b.acquire("health:governance") == Fence("t:fence:health:governance", 1)

    await redis.pexpire("t:lease:health:police", 1)  # a stopped renewing: the TTL ran out
    await asyncio.sleep(0.01)
    second = await b.acquire("health:police")
    assert second == Fence("t:fence:health:police", 2)
    assert not await a.renew("health:police", first)  # a learns it lost the lease
    assert not await a.release("health:police", first)  # and cannot free b's
    assert await b.holder_of("health:police") == "replica-b"


async def test_work_stops_when_its_lease_is_lost(redis: Redis) -> None:
    ticks = Ticks()
    a = Leases(redis, "t", "replica-a", sleep=ticks.sleep)
    b = Leases(redis, "t", "replica-b")
    started = asyncio.Event()

    async def work() -> None:
        async with a.held("discover:police") as fence:
            assert fence is not None
            started.set()
            await asyncio.Event().wait()  # a long job

    task = asyncio.create_task(work())
    await started.wait()
    await redis.delete("t:lease:discover:police")  # expired (a paused process)...
    assert await b.acquire("discover:police") is not None  # ... and taken over
    ticks.queue.put_nowait(None)  # a's keeper renews: the lease is not a's any more
    with pytest.raises(LeaseLost, match="lease discover:police lost"):
        async with asyncio.timeout(5):
            await task
    assert await b.holder_of("discover:police") == "replica-b"  # a did not free b's lease


async def test_a_held_lease_is_renewed_and_released_after_the_work(redis: Redis) -> None:
    ticks = Ticks()
    a = Leases(redis, "t", "replica-a", ttl_s=30, sleep=ticks.sleep)
    b = Leases(redis, "t", "replica-b")
    async with a.held("health:police") as fence:
        assert fence is not None
        async with b.held("health:police") as other:
            assert other is None  # another replica's: nothing to do
        await redis.pexpire("t:lease:health:police", 5000)  # 25 s later, as Redis counts
        ticks.queue.put_nowait(None)  # the keeper's turn
        for _ in range(100):
            if await redis.pttl("t:lease:health:police") > 5000:
                break
            await asyncio.sleep(0.01)
        assert await redis.pttl("t:lease:health:police") > 25_000  # renewed to the full TTL
    assert await redis.exists("t:lease:health:police") == 0  # released
