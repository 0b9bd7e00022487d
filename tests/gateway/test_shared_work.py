"""Replicas share a network's scheduled work: one replica at a time runs each health round and
each discovery (a lease with a fencing token), they agree on when each is next due and on every
camera's status (both kept in Redis), a replica that stops mid-job is replaced, and what it
writes after it lost the lease is refused.

Two `DiscoveryService`s on one Redis are two replicas, each with its own lease holder and its
own adapter (a double that counts what it probes). Time is an injected clock; a lease expires
because the test expires its key, as the TTL would.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

import orjson
import pytest
from redis.asyncio import Redis

from adapters.base import (
    CameraRead,
    Discovered,
    DiscoveryDone,
    DiscoveryEvent,
    DiscoveryProgress,
    HealthResult,
    Target,
)
from gateway.audit import AuditLog
from gateway.catalog import Catalog
from gateway.discovery import DiscoveryService
from gateway.errors import StaleLease
from gateway.lease import Leases
from gateway.models import CameraStatus
from gateway.registry import Registry
from gateway.settings import Settings
from gateway.vault import CredentialVault
from tests.doubles import DoubleAdapter
from tests.gateway.test_discovery_merge import CAM

NET = "governance"
CAMERAS = [
    replace(
        CAM,
        address=f"127.1.6.{i}",
        endpoint_reference=f"urn:uuid:shared-{i}",
        device_uri=f"http://127.1.6.{i}:8000/onvif/device_service",
        serial=f"SN-{i}",
        mac=f"02:00:00:00:06:{i:02x}",
        name=f"Camera {i}",
        snapshot_uri=None,
        profiles=(),
    )
    for i in range(1, 13)
]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class CountingAdapter(DoubleAdapter):
    """Counts every probe (all replicas' adapters share one counter); `pause` holds a
    discovery after its first camera until it is set."""

    def __init__(self, found: list[Discovered], probes: Counter[str]) -> None:
        super().__init__(NET, found)
        self.probes = probes
        self.pause: asyncio.Event | None = None
        self.first_sent = asyncio.Event()

    async def probe(self, targets: Sequence[Target]) -> list[HealthResult]:
        self.probes.update(t.address for t in targets)
        await asyncio.sleep(0.01)  # the other replica's tick runs meanwhile
        return [
            HealthResult(t.address, ok, None if ok else "no answer within 5 s")
            for t in targets
            if (ok := self.reachable.get(t.address, True)) or True
        ]

    async def discover(self, job: str, actor: str = "") -> AsyncIterator[DiscoveryEvent]:
        yield DiscoveryProgress(found=len(self.found))
        for i, d in enumerate(self.found):
            if i == 1 and self.pause is not None:
                self.first_sent.set()
                await self.pause.wait()
            yield CameraRead(d)
        yield DiscoveryDone()


@dataclass
class Replica:
    service: DiscoveryService
    adapter: CountingAdapter


Make = Callable[..., Replica]


@pytest.fixture
def scheduled(settings: Settings) -> Settings:
    net = settings.network_by_id[NET]
    discovery = net.discovery.model_copy(update={"schedule_s": 600.0, "health_interval_s": 30.0})
    networks = [
        n.model_copy(update={"discovery": discovery}) if n.id == NET else n
        for n in settings.networks
    ]
    return settings.model_copy(update={"networks": networks})


@pytest.fixture
def make(scheduled: Settings, vault: CredentialVault, redis: Redis) -> Callable[..., Replica]:
    """A replica: its own lease holder, adapter and (injectable) keeper sleep."""
    probes: Counter[str] = Counter()
    audit = AuditLog(redis, scheduled.redis.prefix, vault, scheduled.audit)
    registry = Registry(redis, scheduled, vault, audit)

    def build(
        holder: str,
        clock: Clock,
        found: list[Discovered] = CAMERAS,
        keeper_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> Replica:
        adapter = CountingAdapter(list(found), probes)
        leases = Leases(redis, scheduled.redis.prefix, holder, sleep=keeper_sleep)
        service = DiscoveryService(
            scheduled,
            redis,
            registry,
            Catalog(registry, scheduled),
            audit,
            {NET: adapter},
            leases=leases,
            clock=clock,
        )
        return Replica(service, adapter)

    return build


async def _registered(a: Replica) -> dict[str, str]:
    """Discovery by `a`, once: address -> camera id."""
    job = await a.service.run(NET, "test")
    assert job.state == "done" and job.progress.enriched == len(CAMERAS)
    return await _addresses(a)


async def _addresses(a: Replica) -> dict[str, str]:
    """The cameras a's catalog serves: address -> camera id."""
    snap = await a.service.catalog.current()
    return {str(orjson.loads(e.full)["address"]): e.id for e in snap.entries if e.network == NET}


async def test_two_replicas_probe_each_camera_once_per_round_and_agree_when_next(
    make: Make,
) -> None:
    clock = Clock()
    a, b = make("replica-a", clock), make("replica-b", clock)
    await _registered(a)  # the first scheduled discovery, due at once
    assert await b.service.tick(NET) > 0  # b: nothing due (a ran discovery; health in 30 s)
    for round_ in range(1, 4):
        clock.now += 31
        a.adapter.probes.clear()
        await asyncio.gather(a.service.tick(NET), b.service.tick(NET))
        assert sorted(a.adapter.probes.values()) == [1] * len(CAMERAS), f"round {round_}"
        runs = (a.service.state[NET].health_runs, b.service.state[NET].health_runs)
        assert sum(runs) == round_
        due_a = await a.service.schedule.due(NET, clock(), {"discovery": 600, "health": 30})
        due_b = await b.service.schedule.due(NET, clock(), {"discovery": 600, "health": 30})
        assert due_a == due_b and due_a.health == clock.now + 30


async def test_status_streaks_carry_over_from_one_replica_to_the_other(make: Make) -> None:
    clock = Clock()
    a, b = make("replica-a", clock), make("replica-b", clock)
    ids = await _registered(a)
    gate = "127.1.6.3"
    for r in (a, b):
        r.adapter.reachable[gate] = False
    await a.service.health_round(NET)  # one lost probe: still online
    assert (await a.service.registry.get(ids[gate])).status is CameraStatus.online  # type: ignore[union-attr]
    await b.service.health_round(NET)  # the second in a row, counted by the other replica
    cam = await b.service.registry.get(ids[gate])
    assert cam is not None and cam.status is CameraStatus.offline
    assert cam.last_error == "health: no answer within 5 s"
    for r in (a, b):
        r.adapter.reachable[gate] = True
    await b.service.health_round(NET)
    await a.service.health_round(NET)  # two good answers, one from each: online again
    cam = await a.service.registry.get(ids[gate])
    assert cam is not None and cam.status is CameraStatus.online and cam.last_error is None


async def test_a_write_under_a_lease_that_passed_on_is_refused(make: Make, redis: Redis) -> None:
    clock = Clock()
    a, b = make("replica-a", clock), make("replica-b", clock)
    ids = await _registered(a)
    stale = await a.service.leases.acquire(f"health:{NET}")
    assert stale is not None
    await redis.delete(a.service.leases.keys(f"health:{NET}")[0])  # a paused: its TTL ran out
    fresh = await b.service.leases.acquire(f"health:{NET}")
    assert fresh is not None and fresh.value == stale.value + 1

    cam = await a.service.registry.get(ids["127.1.6.1"])
    assert cam is not None
    renamed = cam.model_copy(update={"name": "written by a stale holder", "rev": cam.rev + 1})
    with pytest.raises(StaleLease) as refused:
        await a.service.registry.replace(renamed, cam.rev, fence=stale)
    assert refused.value.status == 409
    assert refused.value.detail == (
        f"camera {cam.id} not written: this replica's lease has passed to another "
        f"(fence now {fresh.value})"
    )
    a.adapter.reachable["127.1.6.1"] = False
    with pytest.raises(StaleLease):  # nor can its health round write anything
        for _ in range(2):
            await a.service.health_round(NET, stale)
    assert await a.service.registry.get(cam.id) == cam  # untouched
    await b.service.registry.replace(renamed, cam.rev, fence=fresh)  # the holder's write lands


async def test_a_replica_that_stops_mid_discovery_is_replaced_and_its_late_writes_refused(
    make: Make,
) -> None:
    clock = Clock()
    paused = asyncio.Event()  # a's lease keeper: asleep until the test wakes it

    async def keeper_sleep(_seconds: float) -> None:
        await paused.wait()
        paused.clear()

    a = make("replica-a", clock, keeper_sleep=keeper_sleep)
    b = make("replica-b", clock)
    a.adapter.pause = asyncio.Event()
    started = await a.service.start(NET, "scheduler")
    await a.adapter.first_sent.wait()  # a has read one camera and stops (a long pause)
    assert (await b.service.start(NET, "admin")).id == started.id  # b: a runs it

    leases = a.service.leases
    await leases.redis.delete(leases.keys(f"discover:{NET}")[0])  # a's TTL ran out
    await b.service.tick(NET)  # due (never completed): b takes the lease and runs it
    done = b.service.state[NET].last
    assert done is not None and done.id != started.id
    assert done.state == "done" and done.progress.enriched == len(CAMERAS)
    abandoned = await b.service.job(started.id)
    assert abandoned is not None and abandoned.state == "failed"
    assert abandoned.error == "abandoned: the replica running it stopped renewing its lease"
    due = await b.service.schedule.due(NET, clock(), {"discovery": 600, "health": 30})
    assert due.discovery == clock.now + 600  # moved on by the replica that completed it

    ids = await _addresses(b)
    second = await b.service.registry.get(ids[str(CAMERAS[1].address)])
    a.adapter.found[1] = replace(CAMERAS[1], name="late write from a")
    a.adapter.pause.set()  # a wakes and goes on writing: refused
    for _ in range(500):
        running = a.service.state[NET].running
        if running is None or running.progress.failed:
            break
        await asyncio.sleep(0.01)
    assert await b.service.registry.get(ids[str(CAMERAS[1].address)]) == second
    paused.set()  # a's keeper wakes, finds the lease gone and stops the job
    last = await a.service.finished(started)
    assert last.state == "failed"
    assert last.error is not None and last.error.startswith(f"lease discover:{NET} lost")
    assert any("lease has passed to another" in f.reason for f in last.failures)
