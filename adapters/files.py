"""Files: those that must survive a crash, written whole under their final name or not at all
and never over a file that is already there (the audit archive, an adapter's own log); and how
many a process may hold open."""

from __future__ import annotations

import logging
import os
import resource
import secrets
from pathlib import Path

log = logging.getLogger(__name__)


def create_durably(directory: Path, name: str, data: bytes, mode: int = 0o640) -> bool:
    """Write `data` to `directory/name` durably; False (nothing written) if a file of that
    name exists or appears meanwhile. Written to a temporary file, synced, then linked to its
    name (a link fails rather than replace), and the directory synced."""
    final = directory / name
    tmp = directory / f".{name}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, final)
        except FileExistsError:
            return False
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(directory)
    return True


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def raise_nofile_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit and return the soft limit: a network's
    discovery holds up to concurrency x 4 connections, a simulator thousands of sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        log.warning("could not raise RLIMIT_NOFILE from %d to %d", soft, target)
        return soft
    return target
