"""The event-loop delay histogram: what it records and how a benchmark reads quantiles."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import CollectorRegistry, generate_latest

from gateway.loop_monitor import LoopDelay, quantile


def test_delays_fall_in_their_buckets_and_quantiles_read_them() -> None:
    delay = LoopDelay()
    for ms in [0.5] * 98 + [30, 700]:
        delay.observe(ms / 1000)
    assert delay.quantile(0.5) == 0.001
    assert delay.quantile(0.99) == 0.05  # the 99th of 100 samples: 30 ms, bucket (20, 50] ms
    assert delay.quantile(1.0) == 1.0
    registry = CollectorRegistry()
    registry.register(delay)
    text = generate_latest(registry).decode()
    assert 'camgw_event_loop_delay_seconds_bucket{le="0.001"} 98.0' in text
    assert 'camgw_event_loop_delay_seconds_bucket{le="+Inf"} 100.0' in text
    assert quantile([0] * 13, 0.99) == 0.0


def hold_the_loop(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def test_work_that_holds_the_loop_shows_as_delay() -> None:
    delay = LoopDelay(interval_s=0.01)
    task = asyncio.create_task(delay.run())
    await asyncio.sleep(0.05)
    hold_the_loop(0.12)  # what a CPU-bound parse on the loop does to everything else
    await asyncio.sleep(0.05)
    task.cancel()
    assert delay.quantile(1.0) >= 0.1
