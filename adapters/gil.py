"""How the interpreter shares the GIL between an event loop and the threads that compute beside it.

The gateway's worker threads (catalog rebuilds, a district's health verdicts, /metrics) and an
adapter process's (the epoll health probes, OpenCV) compute while an event loop serves sockets.
The loop gives the GIL up at every select and socket call and must get it back from the
computing thread each time; at CPython's default switch interval (5 ms) one pass of the loop
could wait that long several times over (bench/loop_gil.py: loop delay p99 23.8 ms beside a
parsing thread, 3.6 ms at 1 ms, the thread keeping 97% of its pace).

The cyclic garbage collector's automatic full passes hold the GIL too, whichever thread starts
them: over a district's heap, with the objects a rebuild or a round is still making, one took
40 to 540 ms (bench/scale.py, 2026-12-01, a gc callback's log through a 100,000-camera import:
30 full passes over 5 ms, a third of them in the main thread). They are made rare; the gateway's
catalog freezes what lives on (gc.freeze) and collects fully itself when the registry is quiet
(gateway/catalog.py), and refcounting frees everything that is not a cycle meanwhile.
"""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import Callable
from typing import Any, Final, TypeVar

T = TypeVar("T")

SWITCH_INTERVAL_S: Final = 0.001  # CPython's default: 0.005
# Collections of the middle generation between two automatic full ones (CPython's: 10, about
# every 70,000 objects made; this: about every 7 million).
FULL_COLLECTION_AFTER: Final = 1000


def favour_the_loop() -> None:
    """Hand the GIL over after SWITCH_INTERVAL_S, and make the collector's automatic full
    passes rare. Process-wide: `camgw serve` and each adapter process set it at their start."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_AFTER)


LOOP_ITEMS: Final = 2000  # a pass of Python over more items than this runs in a worker thread


async def off_the_loop(large: bool, fn: Callable[..., T], /, *args: Any) -> T:
    """`fn(*args)`, in a worker thread when `large` (a district's 100,000 cameras), else on the
    event loop (a town's pass is quicker done there than handed over)."""
    if not large:
        return fn(*args)
    return await asyncio.to_thread(settled, fn, *args)


def settled(fn: Callable[..., T], /, *args: Any) -> T:
    """`fn(*args)`, and what it made moved out of the collector's young generations: a large
    pass's containers (a round's 75,000 entries, targets, verdicts) were walked by each young
    collection until promoted, 5 to 50 ms with the GIL held, whichever thread collected
    (loop delay p99 in the 50 ms bucket through a district's first health round, 2 runs of 4).
    Frozen like the catalog's snapshot: refcounting frees them, and the catalog's full
    collection (when the registry is quiet, at least hourly) finds any cycle among them
    (gateway/catalog.py: FullCollections)."""
    out = fn(*args)
    gc.freeze()
    return out
