"""The discovery's read window (adapters/pacing.py): it narrows while the adapter's event loop
runs late and opens again while it keeps up, so that parsing which outruns the CPU slows the
reads down instead of timing out cameras that answered."""

from __future__ import annotations

import asyncio

from adapters.pacing import FIRST_WINDOW, LAG_KEPT_S, LATE_S, LoopLag, ReadWindow


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def window(limit: int = 128) -> tuple[ReadWindow, LoopLag, Clock]:
    clock = Clock()
    lag = LoopLag(clock=clock)
    return ReadWindow(limit, lag), lag, clock


def test_a_late_loop_halves_the_window_once_per_late_stretch_and_never_below_one() -> None:
    gate, lag, clock = window()
    assert gate.size == FIRST_WINDOW
    lag.observe(LATE_S)
    gate.adjust()
    assert gate.size == FIRST_WINDOW // 2
    clock.now += LAG_KEPT_S / 2
    gate.adjust()  # the same late stretch: no second cut
    assert gate.size == FIRST_WINDOW // 2
    for _ in range(10):
        clock.now += LAG_KEPT_S
        lag.observe(1.0)
        gate.adjust()
    assert gate.size == 1 and gate.smallest == 1 and gate.cuts == 4  # (16, 8, 4, 2, 1)


def test_a_loop_not_late_opens_the_window_one_read_per_sample_up_to_the_limit() -> None:
    gate, lag, clock = window(limit=20)
    for delay in (0.0, 0.1, LATE_S * 0.9):  # (busy, but not late)
        clock.now += 0.02
        lag.observe(delay)
        gate.adjust()
    assert gate.size == FIRST_WINDOW + 3
    clock.now += 0.02
    lag.observe(LATE_S)  # late: halved once, then held through that late stretch
    gate.adjust()
    gate.adjust()
    assert gate.size == (FIRST_WINDOW + 3) // 2
    clock.now += LAG_KEPT_S + 0.01  # (that sample is past)
    for _ in range(50):
        gate.adjust()
    assert gate.size == 20 and gate.cuts == 1


async def test_at_most_the_window_reads_run_and_a_wider_window_lets_waiters_in() -> None:
    gate = ReadWindow(64, LoopLag())
    gate.size = 2
    inside, most = 0, 0
    release = asyncio.Event()

    async def read() -> None:
        nonlocal inside, most
        async with gate:
            inside += 1
            most = max(most, inside)
            await release.wait()
            inside -= 1

    reads = [asyncio.create_task(read()) for _ in range(6)]
    await asyncio.sleep(0.01)
    assert (inside, gate.running) == (2, 2)
    pacer = asyncio.create_task(gate.run())  # the real loop is on time: it opens
    try:
        for _ in range(100):
            if inside == 6:
                break
            await asyncio.sleep(0.01)
        assert inside == 6 and gate.size > 2
    finally:
        pacer.cancel()
    release.set()
    await asyncio.gather(*reads)
    assert gate.running == 0 and most == 6
