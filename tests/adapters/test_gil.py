"""What `favour_the_loop` changes for the threads beside an event loop (adapters/gil.py)."""

from __future__ import annotations

import subprocess
import sys

# Full collections while 2,000,000 objects that live on are made (a district's rebuild).
_FULL_PASSES = """
import gc
import sys
from adapters.gil import favour_the_loop
if sys.argv[1] == "favoured":
    favour_the_loop()
full = []
def count(phase, info):
    if phase == "stop" and info["generation"] == 2:
        full.append(1)
gc.callbacks.append(count)
kept = [[i] for i in range(2_000_000)]
print(len(full), sys.getswitchinterval())
"""


def passes(mode: str) -> tuple[int, float]:
    run = [sys.executable, "-c", _FULL_PASSES, mode]
    full, interval = subprocess.run(run, capture_output=True, text=True, check=True).stdout.split()
    return int(full), float(interval)


def test_no_full_collection_holds_the_gil_while_a_large_build_runs() -> None:
    """Each full pass walks every object alive that is not frozen: in a district's gateway
    40 to 540 ms with the GIL held, whichever thread started it."""
    full, interval = passes("default")  # (CPython's: a full pass every ~70,000 objects made,
    assert full >= 5 and interval == 0.005  # once the heap grew by a quarter since the last)
    assert passes("favoured") == (0, 0.001)


# Objects the young collections walk after a large pass (a district's round) made 300,000.
_YOUNG = """
import asyncio
import gc
import sys
from adapters import gil
gc.disable()  # (counted, not collected)
made = asyncio.run(gil.off_the_loop(True, lambda: [[i] for i in range(300_000)]))
print(sum(len(gc.get_objects(generation)) for generation in (0, 1, 2)))
"""


def test_what_a_large_pass_made_is_out_of_the_young_collections_way() -> None:
    """A large pass's containers were walked by each young collection until promoted, with
    the GIL held whichever thread collected (5 to 50 ms each at 100,000 cameras)."""
    run = [sys.executable, "-c", _YOUNG]
    walked = int(subprocess.run(run, capture_output=True, text=True, check=True).stdout)
    assert walked < 50_000  # (to_thread alone: over 300,000)
