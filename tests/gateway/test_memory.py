"""Freed memory goes back to the system (gateway/memory.py): what a catalog rebuilt in worker
threads leaves behind at district scale is returned by `trim`, so RSS follows what is held."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from gateway import memory


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
