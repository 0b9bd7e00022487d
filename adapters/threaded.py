"""In-process adapters on an event loop of their own, in a thread of their own.

Reading a camera is CPU work in Python (SOAP parsing with zeep and lxml, ~20 ms per camera): on
the gateway's event loop, a discovery of thousands of cameras ran hundreds of those parses in
one loop iteration, and every request, heartbeat and timeout waited behind them (0.45 s p95
loop delay while dashboards polled). On a loop of their own they still share the interpreter
(the GIL), but the interpreter hands it over every few milliseconds (`sys.getswitchinterval`):
the gateway's loop waits at most that long, not for a whole batch of parses.

`ThreadedAdapter` is a `NetworkAdapter` whose calls run on the `AdapterThread`'s loop; the
gateway cannot tell it from the adapter it wraps. Discovery events cross over through a bounded
queue, so a busy gateway slows the adapter's reads down instead of piling events up.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncIterator, Coroutine, Sequence
from typing import Any, TypeVar, cast

from .base import (
    DiscoveryEvent,
    HealthResult,
    NetworkAdapter,
    SnapshotRequest,
    SnapshotResult,
    Target,
)

T = TypeVar("T")

_EVENT_QUEUE = 256  # discovery events in flight between the two loops
_FINISH_S = 5.0  # what still runs when the thread stops: time to finish after its cancel
_DONE = object()


class AdapterThread:
    """A daemon thread running an event loop until `stop`."""

    def __init__(self, name: str = "camgw-adapters") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
        # As asyncio.run ends: what still runs (a stream kept warm, a read in flight) is
        # cancelled and let finish, so that it closes its connections on this loop; a
        # connection left open would otherwise be collected after the loop closed.
        pending = asyncio.all_tasks(self.loop)
        for task in pending:
            task.cancel()
        if pending:  # bounded: a task that swallows its cancel must not hold the thread
            self.loop.run_until_complete(asyncio.wait(pending, timeout=_FINISH_S))
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """`coro`'s result, run on the adapters' loop; cancelling the caller cancels it."""
        return await asyncio.wrap_future(self.submit(coro))

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the loop once what is scheduled on it has had a turn, and join the thread."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout_s)


class ThreadedAdapter:
    """`inner`, with every call run on `thread`'s loop (see the module's docstring)."""

    def __init__(self, inner: NetworkAdapter, thread: AdapterThread) -> None:
        self.inner = inner
        self.network = inner.network
        self.thread = thread

    async def probe(self, targets: Sequence[Target]) -> list[HealthResult]:
        return await self.thread.call(self.inner.probe(targets))

    async def snapshot(self, request: SnapshotRequest) -> SnapshotResult:
        return await self.thread.call(self.inner.snapshot(request))

    async def close(self) -> None:
        await self.thread.call(self.inner.close())

    async def discover(self, job: str, actor: str = "") -> AsyncIterator[DiscoveryEvent]:
        """The inner adapter's events, as it produces them on its loop; closing this iterator
        (or cancelling its reader) closes the inner one."""
        here = asyncio.get_running_loop()
        events: asyncio.Queue[object] = asyncio.Queue(_EVENT_QUEUE)

        async def hand_over(item: object) -> None:
            # From the adapters' loop: wait (there) for room in this loop's queue.
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(events.put(item), here))

        async def produce() -> None:
            stream = self.inner.discover(job, actor)
            try:
                async for event in stream:
                    await hand_over(event)
            except Exception as exc:  # the reader raises it (a cancellation just ends this)
                await hand_over(exc)
                return
            finally:
                await _aclose(stream)
            await hand_over(_DONE)

        producer = self.thread.submit(produce())
        try:
            while True:
                item = await events.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield cast(DiscoveryEvent, item)
        finally:
            producer.cancel()


async def _aclose(stream: AsyncIterator[DiscoveryEvent]) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()
