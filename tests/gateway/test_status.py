"""Status hysteresis: the rules, and streaks kept in Redis so that any replica counts on."""

from __future__ import annotations

from redis.asyncio import Redis

from gateway.models import CameraStatus as S
from gateway.status import Streak, Streaks, observe


def run(current: S, probes: list[bool]) -> list[S]:
    streak, shown = Streak(), []
    for ok in probes:
        current, streak = observe(streak, current, ok)
        shown.append(current)
    return shown


def test_one_lost_probe_or_one_lucky_answer_does_not_flip_the_status() -> None:
    assert run(S.online, [False, True, False, False]) == [S.online, S.online, S.online, S.offline]
    assert run(S.offline, [True, False, True, True]) == [S.offline, S.offline, S.offline, S.online]
    assert run(S.unknown, [True]) == [S.online]
    assert run(S.degraded, [True, True]) == [S.degraded, S.degraded]  # until a discovery


def test_a_settled_camera_keeps_the_same_streak() -> None:
    streak = Streak()
    for _ in range(5):
        _, streak = observe(streak, S.online, True)
    assert streak == Streak(2, 0)  # capped: nothing to write round after round


async def test_streaks_in_redis_carry_over_to_another_replica(redis: Redis) -> None:
    a, b = Streaks(redis, "t"), Streaks(redis, "t")
    status, streak = observe((await a.load("police", ["c1"]))["c1"], S.online, False)
    assert status is S.online
    await a.save("police", {"c1": streak})
    # The next round runs on another replica: the second failure is the second, not the first.
    status, _ = observe((await b.load("police", ["c1"]))["c1"], S.online, False)
    assert status is S.offline
    await b.save("police", {}, gone=["c1"])
    assert await b.load("police", ["c1", "c2"]) == {"c1": Streak(), "c2": Streak()}
    await redis.hset("t:streaks:police", "c3", "garbage")
    assert (await a.load("police", ["c3"]))["c3"] == Streak()
