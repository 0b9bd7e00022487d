"""Camera status with hysteresis: one lost probe does not flip the dashboard to offline, one
lucky answer does not flip it back.

`Streaks` keeps them in Redis (`camgw:streaks:{network}`, hash camera id -> "ok fail"), so that
whichever replica holds a network's health lease (gateway/lease.py) counts on from where the
last one stopped, and every replica shows the same status. Streaks are capped at what the rules
need, so a camera whose state is settled costs no write.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice

from redis.asyncio import Redis

from .errors import redis_errors
from .models import CameraStatus

FAILS_TO_OFFLINE = 2  # consecutive failed probes before an online camera is shown offline
OKS_TO_ONLINE = 2  # consecutive good probes before an offline camera is shown online again
_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class Streak:
    ok: int = 0
    fail: int = 0

    def encode(self) -> str:
        return f"{self.ok} {self.fail}"

    @classmethod
    def decode(cls, raw: bytes | str | None) -> Streak:
        text = raw.decode() if isinstance(raw, bytes) else (raw or "")
        ok, _, fail = text.partition(" ")
        if not (ok.isdigit() and fail.isdigit()):
            return cls()  # absent, or not ours: a fresh start
        return cls(min(int(ok), OKS_TO_ONLINE), min(int(fail), FAILS_TO_OFFLINE))


def observe(streak: Streak, current: CameraStatus, ok: bool) -> tuple[CameraStatus, Streak]:
    """The status to show after one more observation (may equal `current`), and the streak
    to keep."""
    if ok:
        streak = Streak(min(streak.ok + 1, OKS_TO_ONLINE), 0)
        if current is CameraStatus.unknown:
            return CameraStatus.online, streak
        if current is CameraStatus.offline and streak.ok >= OKS_TO_ONLINE:
            return CameraStatus.online, streak
        return current, streak  # degraded stays degraded until a discovery reads it whole
    streak = Streak(0, min(streak.fail + 1, FAILS_TO_OFFLINE))
    if current in (CameraStatus.online, CameraStatus.degraded, CameraStatus.unknown):
        return (CameraStatus.offline if streak.fail >= FAILS_TO_OFFLINE else current), streak
    return current, streak


class Streaks:
    """The streaks of every camera, in Redis, per network."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    def key(self, network: str) -> str:
        return f"{self.prefix}:streaks:{network}"

    async def load(self, network: str, ids: list[str]) -> dict[str, Streak]:
        out: dict[str, Streak] = {}
        key = self.key(network)
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            with redis_errors():
                raw = await self.redis.hmget(key, chunk)
            out.update(zip(chunk, map(Streak.decode, raw), strict=True))
        return out

    async def save(
        self, network: str, changed: dict[str, Streak], gone: Iterable[str] = ()
    ) -> None:
        """Write the streaks that changed, drop those of cameras read afresh or removed. One
        command per _CHUNK cameras, each sent on its own: a district's first round changes
        75,000 streaks, and one pipeline of them all was packed in one go (0.1 s and more of
        the event loop)."""
        key, gone = self.key(network), list(gone)
        # (each chunk encoded as it is sent: 75,000 at once held the loop 85 ms)
        items = ((cam_id, s.encode()) for cam_id, s in changed.items())
        with redis_errors():
            while chunk := list(islice(items, _CHUNK)):
                await self.redis.hset(key, mapping=dict(chunk))
            for start in range(0, len(gone), _CHUNK):
                await self.redis.hdel(key, *gone[start : start + _CHUNK])

    async def reset(self, network: str, cam_id: str) -> None:
        """After a full read (discovery) the camera's state is known afresh."""
        with redis_errors():
            await self.redis.hdel(self.key(network), cam_id)
