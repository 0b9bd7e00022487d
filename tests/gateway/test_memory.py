"""Freed memory goes back to the system (gateway/memory.py): what a catalog rebuilt in worker
threads leaves behind at district scale is returned by `trim`, so RSS follows what is held."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import orjson
import pytest

from gateway import memory
from gateway.catalog import Snapshot, _entries
from gateway.reports import AttrsCache


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(memory._glibc() is None, reason="glibc's malloc_trim is not available")
def test_memory_freed_in_a_worker_thread_is_returned_by_trim() -> None:
    """200,000 records of ~1.7 KB made in a worker thread, then all but every tenth dropped (as
    a catalog rebuild leaves the entries that did not change between new ones): the survivors
    pin the heap, so without a trim the ~340 MiB stay the process's; after it, the free pages
    between them are the system's again."""
    held: list[list[bytes]] = []

    def build() -> None:
        held.append([bytes(1700) + i.to_bytes(4, "big") for i in range(200_000)])

    before = _rss_mib()
    worker = threading.Thread(target=build)
    worker.start()
    worker.join()
    grown = _rss_mib() - before
    survivors = held.pop()[::10]
    assert grown > 250 and len(survivors) == 20_000
    memory.trim()
    assert _rss_mib() - before < grown / 3


# Large blocks freed between small ones that live on (list bodies between records): the MiB
# that stay the process's after they are all freed, without any trim.
_LARGE_BLOCKS_KEPT = """
import sys
from pathlib import Path
from gateway import memory
if sys.argv[1] == "tuned":
    assert memory.tune()
def rss_mib():
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l[:6] == "VmRSS:")
    return int(line.split()[1]) / 1024
first = b"z" * (16 << 20)
del first  # one large block freed: glibc raises its threshold to its size
before = rss_mib()
large, small = [], []
for i in range(40):
    large.append(b"x" * (4 << 20))  # 4 MiB, written: resident
    small.extend(b"y" * 2000 + bytes([j]) for j in range(100))  # live on, above it
large.clear()
print(round(rss_mib() - before))
"""


@pytest.mark.skipif(memory._glibc() is None, reason="glibc's mallopt is not available")
def test_large_blocks_go_back_to_the_system_when_freed() -> None:
    """With `tune`, a freed list body is returned at once: without it, glibc's moving
    threshold put 4 MiB blocks in the heap between records, and 160 MiB stayed resident."""

    def kept(mode: str) -> int:
        run = [sys.executable, "-c", _LARGE_BLOCKS_KEPT, mode]
        return int(subprocess.run(run, capture_output=True, text=True, check=True).stdout)

    assert kept("default") > 120
    assert kept("tuned") < 10


def test_the_accountability_cache_holds_the_catalogs_records_not_copies() -> None:
    """After a full reload every record is a new bytes object equal to the old one: the
    per-camera figures are kept (not parsed again) but pinned to the new record, so the old
    ones can go (they stayed: a district's 170 MB of records twice); and no superseded
    snapshot is held (its entries would stay alive with it)."""

    def records() -> list[bytes]:
        return [
            orjson.dumps({"id": f"governance.c{i}", "network": "governance", "status": "online",
                          "category": "sharp-eyes", "department": "d", "carrier": "c"})
            for i in range(50)
        ]  # fmt: skip

    shares = {"governance": frozenset({"id", "network", "status"})}
    first = Snapshot(1, *_entries(records(), shares, frozenset()))
    cache = AttrsCache()
    unheld = sys.getrefcount(first)
    attrs = cache.build(first)
    second = Snapshot(2, *_entries(records(), shares, frozenset()))
    again = cache.build(second)
    assert all(a is b for a, b in zip(attrs, again, strict=True))  # (equal records: not parsed)
    assert all(cache._by_id[e.id][0] is e.full for e in second.entries)
    assert sys.getrefcount(first) == unheld  # (the first snapshot is nobody's but ours)
