"""How many camera reads a discovery runs at once when its own process is the bottleneck.

A discovery reads up to `concurrency` cameras at once to hide their latency. When parsing
their answers costs more CPU than the process gets (a district's discovery on a busy core),
every answer waits behind hundreds of others on the event loop, and the reads' own timeouts
fire: cameras that answered within 50 ms were reported as timing out (bench/scale.py at
100,000 cameras: up to 312 of 3,308, "ConnectionTimeoutError"). `ReadWindow` admits fewer
reads while the loop runs late and more while it does not (additive increase, multiplicative
decrease, as TCP's congestion window grows unless a packet is lost). Cameras that are slow or
hang leave the loop idle, so they still get the whole configured concurrency.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType

LAG_EVERY_S = 0.02  # how often the loop's lag is sampled
LAG_KEPT_S = 0.5  # the lag a window acts on: the worst of this recent past
LATE_S = 0.25  # a loop this late halves the window (a connect's 2 s is far off still); less
# late, the window grows by one read per sample (a loop "on time within 50 ms" was too strict
# a rule: a busy test process's window stayed near its first size for a second)
FIRST_WINDOW = 16  # reads admitted at first (then up to the configured concurrency)


class LoopLag:
    """How late this event loop runs what is due: each `sample` asks to wake after `every_s`
    and records how late it woke; `worst` is the largest delay over the last `kept_s`."""

    def __init__(
        self,
        every_s: float = LAG_EVERY_S,
        kept_s: float = LAG_KEPT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.every_s = every_s
        self.kept_s = kept_s
        self.clock = clock
        self._recent: deque[tuple[float, float]] = deque()  # (when, delay)

    def observe(self, delay_s: float) -> None:
        now = self.clock()
        self._recent.append((now, max(0.0, delay_s)))
        while self._recent and self._recent[0][0] < now - self.kept_s:
            self._recent.popleft()

    def worst(self) -> float:
        cutoff = self.clock() - self.kept_s
        return max((d for at, d in self._recent if at >= cutoff), default=0.0)

    async def sample(self) -> None:
        self.observe(await overslept(self.every_s, self.clock))


async def overslept(every_s: float, clock: Callable[[], float]) -> float:
    """Sleep `every_s`; how much later than that the event loop woke (the gateway's loop
    delay histogram samples the same way, gateway/loop_monitor.py)."""
    due = clock() + every_s
    await asyncio.sleep(every_s)
    return clock() - due


class ReadWindow:
    """An async context manager: at most `size` reads inside at once. `run` (a task for as
    long as the reads last) moves `size` between 1 and `limit` with the loop's lag: one more
    read per sample while it is not late, half as many when it is (at most once per
    `LAG_KEPT_S`: one late stretch is one cut). It grows with time, not with reads ending:
    reads that hang leave the loop idle, and the window opens past them to the whole
    `limit` within seconds."""

    def __init__(
        self,
        limit: int,
        lag: LoopLag,
        first: int = FIRST_WINDOW,
    ) -> None:
        self.limit = limit
        self.size = max(1, min(limit, first))
        self.smallest = self.size
        self.cuts = 0
        self.running = 0
        self.lag = lag
        self._cut_at = float("-inf")
        self._room = asyncio.Condition()

    async def __aenter__(self) -> None:
        async with self._room:
            await self._room.wait_for(lambda: self.running < self.size)
            self.running += 1

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        async with self._room:
            self.running -= 1
            self._room.notify()

    async def run(self) -> None:
        while True:
            await self.lag.sample()
            before = self.size
            self.adjust()
            if self.size > before:
                async with self._room:
                    self._room.notify(self.size - before)

    def adjust(self) -> None:
        """One step of the window by the loop's recent lag."""
        lag, now = self.lag.worst(), self.lag.clock()
        if lag >= LATE_S:
            if self.size > 1 and now - self._cut_at >= self.lag.kept_s:
                self.size = max(1, self.size // 2)
                self.smallest = min(self.smallest, self.size)
                self.cuts += 1
                self._cut_at = now
        else:
            self.size = min(self.limit, self.size + 1)
