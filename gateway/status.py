"""Camera status with hysteresis: one lost probe does not flip the dashboard to offline, one
lucky answer does not flip it back. Pure state; `discovery.py` writes what changes."""

from __future__ import annotations

from dataclasses import dataclass, field

from .models import CameraStatus

FAILS_TO_OFFLINE = 2  # consecutive failed probes before an online camera is shown offline
OKS_TO_ONLINE = 2  # consecutive good probes before an offline camera is shown online again


@dataclass(slots=True)
class _Streak:
    ok: int = 0
    fail: int = 0


@dataclass
class StatusTracker:
    streaks: dict[str, _Streak] = field(default_factory=dict)

    def observe(self, cam_id: str, current: CameraStatus, ok: bool) -> CameraStatus:
        """The status to show after one more observation (may equal `current`)."""
        s = self.streaks.setdefault(cam_id, _Streak())
        if ok:
            s.ok, s.fail = s.ok + 1, 0
            if current is CameraStatus.unknown:
                return CameraStatus.online
            if current is CameraStatus.offline and s.ok >= OKS_TO_ONLINE:
                return CameraStatus.online
            return current  # degraded stays degraded until a discovery reads it whole
        s.ok, s.fail = 0, s.fail + 1
        if current in (CameraStatus.online, CameraStatus.degraded, CameraStatus.unknown):
            return CameraStatus.offline if s.fail >= FAILS_TO_OFFLINE else current
        return current

    def reset(self, cam_id: str) -> None:
        """After a full read (discovery) the camera's state is known afresh."""
        self.streaks.pop(cam_id, None)

    def forget_missing(self, present: set[str]) -> None:
        for cam_id in set(self.streaks) - present:
            del self.streaks[cam_id]
