"""Giving freed memory back to the system (glibc only; elsewhere these do nothing).

A district registry's catalog is rebuilt from worker threads, and each thread allocates from an
arena of its own: freed records stayed in those arenas, so the gateway's RSS at 100,000 cameras
kept growing past what it held by 40% (bench/scale.py). Three glibc settings bound that, made at
start-up before any thread (`tune`): fewer arenas; large blocks (list bodies of up to tens of
megabytes, Redis replies of thousands of records) always in mappings of their own, returned to
the system when freed, where glibc would otherwise raise its threshold to the largest block
freed and put the next ones between long-lived records, which pin them; and `malloc_trim`
after large rebuilds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

log = logging.getLogger(__name__)

_M_ARENA_MAX = -8  # mallopt's parameters (malloc.h)
_M_MMAP_THRESHOLD = -3
LARGE_BLOCK = 256 << 10  # blocks from this size are mappings of their own (glibc's floor: 128 KiB)


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        libc.mallopt  # noqa: B018  (glibc has it; musl and others do not)
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def tune(arenas: int = 2, large_block: int = LARGE_BLOCK) -> bool:
    """At most `arenas` malloc arenas for the process's threads, and blocks of `large_block`
    bytes and more mapped on their own (a fixed threshold: glibc's moving one is off); call
    before starting any thread. False where this is not glibc."""
    libc = _glibc()
    if libc is None:
        return False
    done = bool(libc.mallopt(_M_ARENA_MAX, arenas)) and bool(
        libc.mallopt(_M_MMAP_THRESHOLD, large_block)
    )
    log.debug("malloc tuned", extra={"arenas": arenas, "large_block": large_block, "done": done})
    return done


def trim() -> bool:
    """Return free pages of every arena to the system (ctypes releases the GIL meanwhile; run it
    in a worker thread: it walks the heap). True when memory was released."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False
