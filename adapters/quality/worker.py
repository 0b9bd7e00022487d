"""The diagnosis worker: one process, OpenCV on one thread (`job.init_worker`), started at the
first diagnosis; a worker that dies (killed, out of memory) is replaced for the next one.

The gateway's rounds and an edge adapter's diagnoses both judge pictures here: never on an
event loop, and never more than one core whatever the size of the town.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from .checks import Signature
from .job import JobResult, init_worker, judge
from .thresholds import Thresholds


class WorkerDied(RuntimeError):
    """The worker stopped while judging (the next diagnosis starts a new one)."""


class Worker:
    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None

    def _started(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),  # no fork of a running loop
                initializer=init_worker,
            )
        return self._pool

    async def judge(
        self,
        jpeg: bytes,
        thresholds: Thresholds,
        reference: bytes | None,
        previous: Signature | None,
        taken_at: float,
        min_frozen_gap_s: float = 1.0,
    ) -> JobResult:
        """The diagnosis of one picture; ValueError when it is no picture to judge,
        WorkerDied when the worker stopped."""
        pool = self._started()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                pool, judge, jpeg, thresholds, reference, previous, taken_at, min_frozen_gap_s
            )
        except BrokenProcessPool:
            if self._pool is pool:  # (not one a neighbour has started since)
                self._pool = None
                pool.shutdown(wait=False, cancel_futures=True)
            raise WorkerDied("the diagnosis worker stopped") from None

    def close(self) -> None:
        """Blocking: waits for the worker to exit (run it in a thread from a loop)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
