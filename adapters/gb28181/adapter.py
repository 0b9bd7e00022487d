"""A network's adapter when lower platforms feed it: one more NetworkAdapter.

Cameras reached through a platform (ids `{network}.gb{code}`) are pictured by the platform
(the 2022 image snapshot, or a 2016 live INVITE); every other camera of the network, and
discovery and health probes, go to the network's own adapter as before (a discovery also
queries the network's registered platforms' catalogs again). The gateway cannot tell the difference:
the same snapshot proxy, policy, cache, watermark and audit apply.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence

from ..base import (
    CameraProtocolError,
    CameraTimeout,
    CameraUnreachable,
    DiscoveryEvent,
    HealthResult,
    NetworkAdapter,
    SnapshotFailed,
    SnapshotRequest,
    SnapshotResult,
    Target,
)
from ..rtsp.errors import GrabError
from .codes import valid
from .media import to_jpeg
from .superior import SnapshotError, SuperiorPlatform

SOURCE = "gb28181-snapshot"  # the 2022 image snapshot
LIVE_SOURCE = "gb28181-invite"  # a keyframe of a live INVITE (2016)


class PlatformAdapter:
    def __init__(self, inner: NetworkAdapter, platform: SuperiorPlatform) -> None:
        self.inner = inner
        self.network = inner.network
        self.platform = platform
        self._prefix = f"{inner.network}.gb"

    def discover(self, job: str, actor: str = "") -> AsyncIterator[DiscoveryEvent]:
        """Discovery on the network also reads its lower platforms' catalogs again (the
        catalog on demand); the channels arrive as catalog pages, not as this job's events."""
        self.platform.refresh_catalogs(self.network)
        return self.inner.discover(job, actor)

    async def probe(self, targets: Sequence[Target]) -> list[HealthResult]:
        return await self.inner.probe(targets)

    async def snapshot(self, request: SnapshotRequest) -> SnapshotResult:
        code = request.camera_id.removeprefix(self._prefix)
        if not request.camera_id.startswith(self._prefix) or not valid(code):
            return await self.inner.snapshot(request)
        deadline = request.deadline or None
        try:
            if self.platform.edition_for(code) == "2022":
                jpeg = await self.platform.snapshot(code, deadline)
                return SnapshotResult(
                    jpeg, SOURCE, time.time(), attempts=("gb28181: image snapshot",)
                )
            # The 2016 edition has no image snapshot: a live INVITE, one keyframe, BYE.
            codec, unit = await self.platform.live_frame(code, deadline)
            jpeg = await asyncio.to_thread(to_jpeg, codec, unit)
        except SnapshotError as exc:
            if exc.kind == "timeout":
                raise CameraTimeout(str(exc)) from exc
            failure = CameraUnreachable if exc.kind == "offline" else CameraProtocolError
            raise SnapshotFailed([("gb28181", failure(str(exc)))]) from exc
        except GrabError as exc:  # the keyframe did not decode, or is too large
            raise SnapshotFailed([("gb28181", CameraProtocolError(f"live video: {exc}"))]) from exc
        attempts = (f"gb28181: live INVITE, {codec} keyframe",)
        return SnapshotResult(jpeg, LIVE_SOURCE, time.time(), attempts=attempts)

    async def close(self) -> None:
        await self.inner.close()
