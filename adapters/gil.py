"""How the interpreter shares the GIL between an event loop and the threads that compute beside it.

The gateway's worker threads (catalog rebuilds, a district's health verdicts, /metrics) and an
adapter process's (the epoll health probes, OpenCV) compute while an event loop serves sockets.
The loop gives the GIL up at every select and socket call and must get it back from the
computing thread each time; at CPython's default switch interval (5 ms) one pass of the loop
could wait that long several times over (bench/loop_gil.py: loop delay p99 23.8 ms beside a
parsing thread, 3.6 ms at 1 ms, the thread keeping 97% of its pace).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any, Final, TypeVar

T = TypeVar("T")

SWITCH_INTERVAL_S: Final = 0.001  # CPython's default: 0.005


def favour_the_loop() -> None:
    """Hand the GIL over after SWITCH_INTERVAL_S. Process-wide: `camgw serve` and each adapter
    process set it once, at their start."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)


LOOP_ITEMS: Final = 2000  # a pass of Python over more items than this runs in a worker thread


async def off_the_loop(large: bool, fn: Callable[..., T], /, *args: Any) -> T:
    """`fn(*args)`, in a worker thread when `large` (a district's 100,000 cameras), else on the
    event loop (a town's pass is quicker done there than handed over)."""
    return await asyncio.to_thread(fn, *args) if large else fn(*args)
