"""Background tasks stop at shutdown, and one that will not stop cannot hang it."""

from __future__ import annotations

import asyncio
import logging

import pytest

from adapters import tasks


async def test_a_task_that_swallows_cancellation_is_left_behind_and_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue  # the bug being guarded against

    task = asyncio.create_task(stubborn(), name="stubborn-one")
    await asyncio.sleep(0)  # inside its loop
    with caplog.at_level(logging.ERROR, logger="adapters.tasks"):
        stopped = await tasks.stop(task, give_up_s=0.3)
    assert stopped is False and not task.done()
    (record,) = caplog.records
    assert record.getMessage() == (
        "task stubborn-one did not stop within 0 s of being cancelled; left behind"
    )
    assert "stubborn" in record.stack  # type: ignore[attr-defined]
    release.set()
    task.cancel()
    await asyncio.wait({task})


async def test_ordinary_tasks_stop_and_their_errors_are_consumed() -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    async def waits() -> None:
        await asyncio.sleep(3600)

    failed = asyncio.create_task(fails())
    await asyncio.sleep(0)
    waiting = asyncio.create_task(waits())
    assert await tasks.stop(failed, waiting, None) is True
    assert waiting.cancelled() and failed.done()
