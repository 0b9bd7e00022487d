"""A network adapter double for the gateway's tests: plugged into the seam
(`adapters.base.NetworkAdapter`), it yields the events it is told to, as an adapter does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from adapters.base import (
    CameraFailed,
    CameraRead,
    Discovered,
    DiscoveryDone,
    DiscoveryEvent,
    DiscoveryProgress,
    Failure,
    HealthResult,
    SnapshotRequest,
    SnapshotResult,
    Target,
)


class DoubleAdapter:
    """Yields what it is told to; `fail` makes discovery raise, `hang` makes it never end."""

    def __init__(
        self,
        network: str,
        found: list[Discovered],
        *,
        fail: bool = False,
        hang: bool = False,
        failures: list[Failure] | None = None,
    ) -> None:
        self.network = network
        self.found = found
        self.fail = fail
        self.hang = hang
        self.failures = failures or []
        self.reachable: dict[str, bool] = {}

    async def discover(self, job: str, actor: str = "") -> AsyncIterator[DiscoveryEvent]:
        if self.fail:
            raise RuntimeError("adapter process crashed")
        if self.hang:
            await asyncio.Event().wait()
        yield DiscoveryProgress(found=len(self.found) + len(self.failures))
        for d in self.found:
            yield CameraRead(d)
        for f in self.failures:
            yield CameraFailed(f)
        yield DiscoveryDone()

    async def probe(self, targets: Sequence[Target]) -> list[HealthResult]:
        return [HealthResult(t.address, self.reachable.get(t.address, True)) for t in targets]

    async def snapshot(self, request: SnapshotRequest) -> SnapshotResult:
        raise NotImplementedError

    async def close(self) -> None:
        pass
