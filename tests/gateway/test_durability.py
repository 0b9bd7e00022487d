"""Durability: redis-server is SIGKILLed while admins register cameras, and restarted on the same
port and directory. Every registration the gateway acknowledged (201) survives, requests during
the outage are refused with 503 (and succeed on retry), and no index points at a missing camera."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.keys import REGISTRY, TOKENS
from gateway.models import Role
from gateway.redis_server import RedisServer
from gateway.settings import DEFAULT_CONFIG, load_settings
from gateway.vault import CredentialVault

TOTAL = 500
IN_FLIGHT = 12
KILL_AFTER = 200
OUTAGE_S = 0.5
PREFIX = "durable"


def cam(n: int) -> dict[str, Any]:
    return {
        "id": f"governance.dur-{n:04d}",
        "network": "governance",
        "name": f"Durable camera {n}",
        "category": "smart-security",
        "address": f"127.1.{n // 200}.{n % 200 + 1}",
        "tags": ["durability"],
    }


@pytest.fixture
def aof_redis(tmp_path: Path) -> RedisServer:
    server = RedisServer(tmp_path / "redis", appendonly=True, appendfsync="always").start()
    yield server  # type: ignore[misc]
    server.stop()


@pytest.fixture
async def durable_client(
    aiohttp_client: Callable[..., Awaitable[TestClient]],  # type: ignore[type-arg]
    aof_redis: RedisServer,
) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    base = load_settings(DEFAULT_CONFIG, use_env=False)
    settings = base.model_copy(
        update={"redis": base.redis.model_copy(update={"url": aof_redis.url, "prefix": PREFIX})}
    )
    yield await aiohttp_client(create_app(settings, CredentialVault(b"k" * 32)))


class Run:
    """What the admins saw."""

    def __init__(self) -> None:
        self.acked: set[str] = set()  # 201
        self.retried_existing: set[str] = set()  # 409 on a retry: an earlier attempt went in
        self.statuses: Counter[int | str] = Counter()
        self.killed = asyncio.Event()
        self.enough = asyncio.Event()  # KILL_AFTER registrations acknowledged


async def register(
    client: TestClient,  # type: ignore[type-arg]
    headers: dict[str, str],
    body: dict[str, Any],
    run: Run,
) -> None:
    retried = False
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        try:
            resp = await client.post("/api/v1/cameras", json=body, headers=headers)
            text = await resp.text()
            status: int | str = resp.status
            retry_after = resp.headers.get("Retry-After")
        except aiohttp.ClientError as exc:
            status, text, retry_after = type(exc).__name__, "", None
        run.statuses[status] += 1
        if status == 201:
            run.acked.add(body["id"])
            if len(run.acked) >= KILL_AFTER:
                run.enough.set()
            return
        if status == 409 and retried and '"field":"id"' in text:
            run.retried_existing.add(body["id"])
            return
        assert status == 503 or isinstance(status, str), (body["id"], status, text)
        if status == 503:
            assert retry_after is not None
            assert '"status":503' in text
            assert "redis://" not in text
        retried = True
        await asyncio.sleep(0.05)
    raise AssertionError(f"{body['id']} never registered")


async def crash_and_restart(server: RedisServer, run: Run) -> None:
    await run.enough.wait()
    server.kill()
    run.killed.set()
    await asyncio.sleep(OUTAGE_S)
    await asyncio.to_thread(server.start)


@pytest.mark.slow
async def test_acknowledged_registrations_survive_sigkill(
    durable_client: TestClient,  # type: ignore[type-arg]
    aof_redis: RedisServer,
) -> None:
    client = durable_client
    secret, _ = await client.app[TOKENS].create("loader", Role.admin, ["*"], "tests")
    headers = {"Authorization": f"Bearer {secret}"}
    port, directory = aof_redis.port, aof_redis.directory

    run = Run()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(TOTAL):
        queue.put_nowait(n)

    async def worker() -> None:
        while not queue.empty():
            await register(client, headers, cam(queue.get_nowait()), run)

    crasher = asyncio.create_task(crash_and_restart(aof_redis, run))
    async with asyncio.timeout(55):
        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
        await crasher

    assert run.killed.is_set()
    assert (aof_redis.port, aof_redis.directory) == (port, directory)
    refused = sum(k for s, k in run.statuses.items() if s not in {201, 409})
    assert refused > 0, f"the outage was never seen: {run.statuses}"
    assert set(run.statuses) <= {201, 409, 503}, run.statuses  # never a 500
    assert len(run.acked) >= KILL_AFTER
    assert len(run.acked | run.retried_existing) == TOTAL

    # Everything acknowledged is there, through the API and in Redis itself.
    registry = client.app[REGISTRY]
    assert await registry.integrity_problems() == []
    raw = aioredis.Redis.from_url(aof_redis.url)
    try:
        stored = {m.decode() for m in await raw.smembers(f"{PREFIX}:idx:all")}
        cam_keys = [k async for k in raw.scan_iter(f"{PREFIX}:cam:*", count=1000)]
        audit = await raw.xrange(f"{PREFIX}:audit")
    finally:
        await raw.aclose()
    expected = {cam(n)["id"] for n in range(TOTAL)}
    assert run.acked <= stored
    assert stored == expected
    assert len(cam_keys) == TOTAL
    # Each camera's audit entry was written with it: no change without its entry.
    created = Counter(
        f[b"target"].decode()
        for _, f in audit
        if f[b"action"] == b"camera.create" and f[b"outcome"] == b"ok"
    )
    assert set(created) == expected
    assert all(k == 1 for k in created.values())

    page = await (await client.get(f"/api/v1/cameras?limit={TOTAL}", headers=headers)).json()
    assert page["total"] == TOTAL
    for cam_id in sorted(run.acked)[:: max(1, len(run.acked) // 25)]:
        resp = await client.get(f"/api/v1/cameras/{cam_id}", headers=headers)
        assert resp.status == 200, cam_id
    assert (await client.get("/readyz")).status == 200
