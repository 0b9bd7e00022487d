"""A scripted adapter for tests/adapters/test_process_adapter.py, built in the adapter process
from a spec; its own module so that the child imports little besides `adapters.base`."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from adapters.base import (
    CameraUnreachable,
    DiscoveryDone,
    DiscoveryEvent,
    DiscoveryProgress,
    HealthResult,
    SnapshotFailed,
    SnapshotRequest,
    SnapshotResult,
    Target,
)
from adapters.config import SnapshotConfig

NETWORK = "governance"
PICTURE_BYTES = 1 << 20


@dataclass(frozen=True)
class ScriptedSpec:
    """An `adapters.process.Spec`, like AdapterSpec, without what a camera read needs."""

    network: str = NETWORK
    snapshots: SnapshotConfig = field(default_factory=SnapshotConfig)


class Scripted:
    """A NetworkAdapter doing what the test asks for.

    discover(job): `job` events (DiscoveryProgress), then DiscoveryDone; probe(targets): by the
    first target's address, "state" (its counters as JSON in `error`) or "hang" (until
    cancelled); snapshot(request): by camera_id, "ok" (a 1 MiB result), "failed"
    (SnapshotFailed), "local" (an exception class the parent cannot import), "exit" (the child
    exits with code 3)."""

    def __init__(self, spec: ScriptedSpec) -> None:
        self.network = spec.network
        self.sent = 0
        self.streams_closed = 0
        self.hanging = 0
        self.closed = False

    async def discover(self, job: str, actor: str = "") -> AsyncIterator[DiscoveryEvent]:
        try:
            for i in range(int(job)):
                self.sent += 1
                yield DiscoveryProgress(found=i + 1)
            yield DiscoveryDone()
        finally:
            self.streams_closed += 1

    async def probe(self, targets: Sequence[Target]) -> list[HealthResult]:
        what = targets[0].address if targets else "state"
        if what == "hang":
            self.hanging += 1
            try:
                await asyncio.Event().wait()
            finally:
                self.hanging -= 1
        state = {"sent": self.sent, "streams_closed": self.streams_closed}
        state |= {"hanging": self.hanging, "closed": self.closed, "pid": os.getpid()}
        return [HealthResult(what, True, json.dumps(state))]

    async def snapshot(self, request: SnapshotRequest) -> SnapshotResult:
        what = request.camera_id
        if what == "failed":
            raise SnapshotFailed([("camera HTTP snapshot", CameraUnreachable("refused"))])
        if what == "local":

            class Odd(Exception):
                pass

            raise Odd("an odd failure")
        if what == "exit":
            os._exit(3)
        picture = b"\xff\xd8" + os.urandom(PICTURE_BYTES) + b"\xff\xd9"
        return SnapshotResult(picture, "camera-http", 1.0)

    async def close(self) -> None:
        self.closed = True
