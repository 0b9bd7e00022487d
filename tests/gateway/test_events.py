"""The registry's events channel (gateway/events.py) against the suite's redis-server: every
version published reaches the catalog, and a burst of them (an import's 100,000 writes) is
handled in turns with the event loop's other work, not in one long step."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from gateway.events import _YIELD_EVERY, listen

BURST = 2000


async def test_a_burst_of_versions_is_read_in_turns_with_other_work(redis: Redis) -> None:
    seen: list[str] = []
    subscribed = asyncio.Event()

    def on_version(version: int | None) -> None:
        if version == 0:  # the version read on subscribing (an empty registry)
            subscribed.set()
        elif version is not None:
            seen.append("version")

    async def read_version() -> int:
        return 0

    listener = asyncio.create_task(
        listen(redis, "t:events", read_version, on_version, lambda: None)
    )
    try:
        await asyncio.wait_for(subscribed.wait(), 10)
        async with redis.pipeline(transaction=False) as pipe:
            for n in range(1, BURST + 1):
                pipe.publish("t:events", f"version {n}")
            await pipe.execute()

        async def other_work() -> None:  # a request's turn, each time the loop comes round
            while len([s for s in seen if s == "version"]) < BURST:
                seen.append("other")
                await asyncio.sleep(0)

        await asyncio.wait_for(other_work(), 10)
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
    # once the other work was under way, it ran between the versions, never after more
    # than _YIELD_EVERY of them in a row (before the fix: the whole burst in one step)
    assert seen.count("version") == BURST
    assert "other" in seen, "the whole burst was handled before any other work ran"
    since = seen[seen.index("other") :]
    runs = [len(run) for run in "".join("v" if s == "version" else " " for s in since).split()]
    assert len(runs) > 1 and max(runs) <= _YIELD_EVERY, runs
