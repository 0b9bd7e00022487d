"""In-process adapters on their own loop and thread (adapters/threaded.py): the gateway sees the
same adapter, while the camera reads' CPU work leaves the gateway's loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator, Sequence

import pytest

from adapters.base import (
    DiscoveryDone,
    DiscoveryEvent,
    DiscoveryProgress,
    HealthResult,
    SnapshotRequest,
    SnapshotResult,
    Target,
)
from adapters.threaded import AdapterThread, ThreadedAdapter


class Recording:
    """An adapter that notes which thread ran each call."""

    network = "governance"

    def __init__(self, events: int = 1000, fail_at: int | None = None) -> None:
        self.events, self.fail_at = events, fail_at
        self.threads: set[int] = set()
        self.sent = 0
        self.closed_stream = asyncio.Event()
        self.closed = False

    async def discover(self, job: str, actor: str = "") -> AsyncIterator[DiscoveryEvent]:
        self.threads.add(threading.get_ident())
        try:
            for i in range(self.events):
                if i == self.fail_at:
                    raise RuntimeError(f"the adapter broke at {i}")
                self.sent += 1
                yield DiscoveryProgress(found=i + 1)
            yield DiscoveryDone()
        finally:
            self.closed_stream.set()

    async def probe(self, targets: Sequence[Target]) -> list[HealthResult]:
        self.threads.add(threading.get_ident())
        return [HealthResult(t.address, ok=True) for t in targets]

    async def snapshot(self, request: SnapshotRequest) -> SnapshotResult:
        raise NotImplementedError

    async def close(self) -> None:
        self.threads.add(threading.get_ident())
        self.closed = True


@pytest.fixture
def thread() -> Iterator[AdapterThread]:
    t = AdapterThread("test-adapters")
    yield t
    t.stop()


async def test_every_call_runs_on_the_adapters_thread(thread: AdapterThread) -> None:
    inner = Recording(events=1000)
    adapter = ThreadedAdapter(inner, thread)
    got = [e async for e in adapter.discover("job-1")]
    assert [e.found for e in got[:-1] if isinstance(e, DiscoveryProgress)] == list(range(1, 1001))
    assert got[-1] == DiscoveryDone()  # every event, in order, through a 256-event queue
    assert await adapter.probe([Target("127.1.0.1")]) == [HealthResult("127.1.0.1", ok=True)]
    await adapter.close()
    assert inner.closed and inner.threads == {thread._thread.ident}
    assert threading.get_ident() not in inner.threads


async def test_an_adapters_failure_reaches_the_reader(thread: AdapterThread) -> None:
    adapter = ThreadedAdapter(Recording(events=10, fail_at=4), thread)
    seen = []
    with pytest.raises(RuntimeError, match="the adapter broke at 4"):
        async for event in adapter.discover("job-2"):
            seen.append(event)
    assert len(seen) == 4


async def test_a_reader_that_stops_closes_the_adapters_run(thread: AdapterThread) -> None:
    inner = Recording(events=100_000)
    adapter = ThreadedAdapter(inner, thread)
    stream = adapter.discover("job-3")
    async for event in stream:
        if isinstance(event, DiscoveryProgress) and event.found == 10:
            break
    await stream.aclose()  # type: ignore[attr-defined]
    await asyncio.wait_for(asyncio.wrap_future(thread.submit(inner.closed_stream.wait())), 5)
    assert inner.sent < 1000  # the bounded queue held it back; the run ended, not drained
