"""Group commit: many concurrent callers, few writes, each caller its own result or error."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.batching import GroupCommit
from gateway.errors import Unavailable


async def test_concurrent_submits_share_writes_and_get_their_own_results() -> None:
    batches: list[list[int]] = []

    async def write(items: list[int]) -> list[int]:
        batches.append(items)
        await asyncio.sleep(0.01)  # a Redis round trip
        return [i * 10 for i in items]

    group: GroupCommit[int, int] = GroupCommit(write, "test")
    results = await asyncio.gather(*(group.submit(i) for i in range(50)))
    assert results == [i * 10 for i in range(50)]
    assert sorted(i for b in batches for i in b) == list(range(50))
    assert len(batches) <= 2  # the first caller's write, then everyone who queued meanwhile


async def test_a_failed_write_fails_every_caller_of_that_batch_and_the_next_still_works() -> None:
    fail = True

    async def write(items: list[int]) -> list[int]:
        await asyncio.sleep(0)
        if fail:
            raise RedisConnectionError("redis down")
        return items

    group: GroupCommit[int, int] = GroupCommit(write, "audit log")
    outcomes = await asyncio.gather(*(group.submit(i) for i in range(5)), return_exceptions=True)
    assert all(isinstance(o, Unavailable) for o in outcomes)
    assert "audit log" in str(outcomes[0])
    fail = False
    assert await group.submit(7) == 7


async def test_a_caller_that_goes_away_does_not_cancel_the_write() -> None:
    written: list[int] = []
    release = asyncio.Event()

    async def write(items: list[int]) -> list[None]:
        await release.wait()
        written.extend(items)
        return [None] * len(items)

    group: GroupCommit[int, None] = GroupCommit(write, "audit log")
    caller = asyncio.create_task(group.submit(1))
    await asyncio.sleep(0)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    release.set()
    await group.submit(2)
    assert written == [1, 2]
