"""Stopping background tasks so that they really stop."""

from __future__ import annotations

import asyncio
from typing import Any

_RECANCEL_S = 0.1


async def stop(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel the tasks and wait until every one has ended.

    One cancel is not always enough on Python 3.11: `asyncio.wait_for` (which redis-py uses to
    send commands) returns the inner result and drops the cancellation when both land at once,
    and the task carries on. So a task still running after a moment is cancelled again.
    Outcomes are consumed here (callers only need the tasks gone).
    """
    running = [t for t in tasks if t is not None]
    pending = {t for t in running if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=_RECANCEL_S)
    for task in running:
        if not task.cancelled():
            task.exception()  # mark it retrieved: no "exception was never retrieved" noise
