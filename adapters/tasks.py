"""Stopping background tasks so that they really stop, or say why they did not."""

from __future__ import annotations

import asyncio
import io
import logging
from typing import Any

log = logging.getLogger(__name__)

_RECANCEL_S = 0.1
GIVE_UP_S = 10.0  # a shutdown step never waits longer than this for its tasks


async def stop(*tasks: asyncio.Task[Any] | None, give_up_s: float = GIVE_UP_S) -> bool:
    """Cancel the tasks and wait until every one has ended; True when they all have.

    One cancel is not always enough on Python 3.11: `asyncio.wait_for` (which redis-py uses to
    send commands) returns the inner result and drops the cancellation when both land at once,
    and the task carries on. So a task still running after a moment is cancelled again.
    A task that still runs after `give_up_s` (it swallows every cancellation) is left behind
    and logged with where it waits, so that a shutdown is never hung by one task.
    Outcomes are consumed here (callers only need the tasks gone).
    """
    running = [t for t in tasks if t is not None]
    pending = {t for t in running if not t.done()}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + give_up_s
    while pending and loop.time() < deadline:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=_RECANCEL_S)
    for task in pending:
        log.error(
            "task %s did not stop within %.0f s of being cancelled; left behind",
            task.get_name(),
            give_up_s,
            extra={"task": task.get_name(), "stack": _stack(task)},
        )
    for task in running:
        if task.done() and not task.cancelled():
            task.exception()  # mark it retrieved: no "exception was never retrieved" noise
    return not pending


def _stack(task: asyncio.Task[Any]) -> str:
    out = io.StringIO()
    task.print_stack(limit=8, file=out)
    return out.getvalue()[-2000:]
