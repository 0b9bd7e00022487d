"""Giving freed memory back to the system (glibc only; elsewhere these do nothing).

A district registry's catalog is rebuilt from worker threads, and each thread allocates from an
arena of its own: freed records stayed in those arenas, so the gateway's RSS at 100,000 cameras
kept growing past what it held by 40% (bench/scale.py). Two glibc calls bound that: fewer
arenas (set at start-up, before any thread) and `malloc_trim` after large rebuilds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

log = logging.getLogger(__name__)

_M_ARENA_MAX = -8  # mallopt's parameter (malloc.h)


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


def limit_arenas(arenas: int = 2) -> bool:
    """At most `arenas` malloc arenas for the process's threads; call before starting any."""
    libc = _glibc()
    if libc is None:
        return False
    done = bool(libc.mallopt(_M_ARENA_MAX, arenas))
    log.debug("malloc arenas limited", extra={"arenas": arenas, "done": done})
    return done


def trim() -> bool:
    """Return free pages of every arena to the system (ctypes releases the GIL meanwhile; run it
    in a worker thread: it walks the heap). True when memory was released."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False
