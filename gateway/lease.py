"""Leases: one gateway replica at a time owns a network's scheduled work (its discovery, its
health rounds), so N replicas behind a load balancer do not probe every camera N times.

A lease is a Redis key holding "holder fence" with a time to live. Taking a free lease bumps the
network's fence counter: the fence is the lease's generation. The holder renews the lease every
third of its TTL; a replica that dies, hangs or loses Redis stops renewing, the lease expires and
another replica takes it with a greater fence. Every registry write made under a lease carries
its fence, and the registry's scripts refuse it (`StaleLease`) once the counter has moved on:
a holder that was paused past its TTL (a long GC, a stopped VM) cannot overwrite what its
successor wrote (docs/deployment.md)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from .errors import CamgwError, redis_errors
from .lua import source

log = logging.getLogger(__name__)

DEFAULT_TTL_S = 15.0


def replica_id() -> str:
    """This process, as lease holders and logs name it: host, pid and a random tag (a
    restarted process with a reused pid is another holder)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class Fence:
    """Proof of holding a lease: writes carry it, the registry checks it."""

    key: str  # the fence counter
    value: int


class LeaseLost(Exception):
    """The lease expired or was taken over while its work ran."""


class Leases:
    """The leases of one registry (prefix), taken by one replica (`holder`)."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        holder: str | None = None,
        ttl_s: float = DEFAULT_TTL_S,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,  # injectable, for tests
    ) -> None:
        self.redis = redis
        self._sleep = sleep
        self.prefix = prefix
        self.holder = holder or replica_id()
        self.ttl_s = ttl_s
        self._script = redis.register_script(source("lease.lua"))

    def keys(self, name: str) -> tuple[str, str]:
        return f"{self.prefix}:lease:{name}", f"{self.prefix}:fence:{name}"

    async def acquire(self, name: str) -> Fence | None:
        """The lease if it is free or already ours (extended), else None."""
        lease, counter = self.keys(name)
        with redis_errors():
            fence, holder = await self._script(
                keys=[lease, counter], args=["acquire", self.holder, self._ttl_ms()]
            )
        holder = holder.decode() if isinstance(holder, bytes) else holder
        return Fence(counter, int(fence)) if holder == self.holder else None

    async def holder_of(self, name: str) -> str | None:
        """Who holds the lease now (None: nobody)."""
        with redis_errors():
            raw = await self.redis.get(self.keys(name)[0])
        if not raw:
            return None
        text = raw.decode() if isinstance(raw, bytes) else raw
        return text.split(" ", 1)[0]

    async def renew(self, name: str, fence: Fence) -> bool:
        return await self._call("renew", name, fence)

    async def release(self, name: str, fence: Fence) -> bool:
        return await self._call("release", name, fence)

    async def _call(self, op: str, name: str, fence: Fence) -> bool:
        lease, counter = self.keys(name)
        with redis_errors():
            done = await self._script(
                keys=[lease, counter], args=[op, self.holder, self._ttl_ms(), fence.value]
            )
        return bool(done)

    def _ttl_ms(self) -> int:
        return max(1, round(self.ttl_s * 1000))

    @contextlib.asynccontextmanager
    async def held(self, name: str) -> AsyncIterator[Fence | None]:
        """The lease for the block, renewed while it runs; None when another replica holds
        it. If the lease is lost meanwhile (not renewed in time, taken over), the block is
        cancelled and LeaseLost raised; the lease is released when the block ends."""
        fence = await self.acquire(name)
        if fence is None:
            yield None
            return
        task = asyncio.current_task()
        assert task is not None
        lost = asyncio.Event()
        keeper = asyncio.create_task(self._keep(name, fence, task, lost), name=f"lease-{name}")
        try:
            yield fence
        except asyncio.CancelledError:
            if lost.is_set():
                task.uncancel()
                raise LeaseLost(f"lease {name} lost (fence {fence.value})") from None
            raise
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            if not lost.is_set():
                with contextlib.suppress(CamgwError):
                    await self.release(name, fence)

    async def _keep(
        self, name: str, fence: Fence, work: asyncio.Task[object], lost: asyncio.Event
    ) -> None:
        """Renew every third of the TTL; cancel the work once the lease is not ours."""
        while True:
            await self._sleep(self.ttl_s / 3)
            try:
                ours = await self.renew(name, fence)
            except CamgwError:
                continue  # Redis away: the next renewal decides (the TTL runs meanwhile)
            if not ours:
                log.warning(
                    "lease lost; its work stops",
                    extra={"lease": name, "fence": fence.value, "holder": self.holder},
                )
                lost.set()
                work.cancel()
                return
