"""Group commit: calls that arrive while a batch is being written go out together in the next
one, and each caller gets its own result only once its batch is done. Under load one Redis call
serves many requests; alone, a request pays one call as before. Used by the audit stream and the
snapshot rate limit, the two Redis writes on the snapshot hot path. A batch that fails fails
each of its callers (a Redis failure as 503); the writer goes on with the next batch."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from redis.exceptions import RedisError

from .errors import Unavailable

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    def __init__(self, write: Callable[[list[T]], Awaitable[list[R]]], what: str) -> None:
        self._write = write
        self._what = what
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        done: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name=f"group-commit-{self._what}")
        return await asyncio.shield(done)  # a caller going away does not undo its write

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                results = await self._write([item for item, _ in batch])
            except (RedisError, OSError, asyncio.CancelledError) as exc:
                for _, done in batch + self._pending:
                    if not done.done():
                        done.set_exception(Unavailable(f"the {self._what} is unreachable; retry"))
                if isinstance(exc, asyncio.CancelledError):
                    raise
            except Exception as exc:  # e.g. CamgwError: each caller of the batch gets it
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for (_, done), result in zip(batch, results, strict=True):
                    done.set_result(result)
