"""A large import does not hold the event loop: while it runs, /healthz and the camera list keep
answering (security review, issue 7, finding 12: `/healthz` took 11 s during a 100,000-row one).
The suite imports 40,000 rows, enough for the class of fault (an import that held the loop for
seconds, in proportion to its rows); `bench/scale.py` measures the loop during 100,000.

What is asserted is the event loop's own lag (a task that sleeps 10 ms and records how late it
wakes): on a loaded 2-core machine it is a steadier measure than request latencies, which are
printed alongside (run with `-s`), and bounded more loosely. The background health rounds are
off, so that the import's own cost is measured.
"""

from __future__ import annotations

import asyncio
import io
import statistics
import time
from collections.abc import Awaitable, Callable

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.keys import TOKENS
from gateway.models import Role
from gateway.settings import Settings
from gateway.vault import CredentialVault

Client = TestClient[web.Request, web.Application]
Factory = Callable[..., Awaitable[Client]]

ROWS = 40_000
# The finding's aim is 100 ms for health and list answers; alone on this machine the p99 is
# ~30-50 ms, but beside a full suite's other processes on 2 cores it reached 80-120 ms. The test
# guards the class of fault (an import that holds the loop: 11 s before the fix) with room for
# a shared machine, not the figure itself.
MAX_LOOP_LAG_S = 0.250
TICK_S = 0.010
HEALTH, LIST = "/healthz", "/api/v1/cameras?limit=1"


def big_csv(rows: int = ROWS) -> bytes:
    """`rows` valid cameras, half on governance (127.1/16), half on police (127.2/16)."""
    lines = ["name,network,category,address"]
    for i in range(rows):
        network, category, octet = (
            ("governance", "sharp-eyes", 1) if i % 2 == 0 else ("police", "public-security", 2)
        )
        n = i // 2 + 1  # 1 .. 50,000: never .0.0
        lines.append(f"c{i},{network},{category},127.{octet}.{n >> 8}.{n & 0xFF}")
    return ("\n".join(lines) + "\n").encode()


class LoopLag:
    """How late a 10 ms sleep wakes up, sampled continuously while it runs."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(TICK_S)
            self.samples.append(time.perf_counter() - start - TICK_S)

    def __enter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def poll(client: Client, path: str, headers: dict[str, str], out: list[float]) -> None:
    """One request after the other, each one's latency recorded, until cancelled."""
    while True:
        start = time.perf_counter()
        async with client.get(path, headers=headers) as resp:
            assert resp.status == 200, await resp.text()
            await resp.read()
        out.append(time.perf_counter() - start)
        await asyncio.sleep(0.005)


def summary(name: str, values: list[float]) -> str:
    if not values:
        return f"{name}: no samples"
    ms = sorted(v * 1000 for v in values)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return (
        f"{name}: n={len(ms)} median={statistics.median(ms):.1f} ms p99={p99:.1f} ms "
        f"max={ms[-1]:.1f} ms"
    )


async def import_while_polling(
    aiohttp_client: Factory, settings: Settings, vault: CredentialVault, paths: list[str]
) -> tuple[list[float], dict[str, list[float]]]:
    """Import ROWS cameras through the API while `paths` are polled; the loop's lag samples and
    each path's latencies, printed."""
    body = big_csv()
    data = settings.model_dump()
    data["server"]["max_import_bytes"] = 16 << 20  # 100,000 rows would be 4.2 MB
    for network in data["networks"]:
        network["discovery"]["health_interval_s"] = 0  # the import alone, no health rounds
    client = await aiohttp_client(create_app(Settings.model_validate(data), vault))
    admin, _ = await client.app[TOKENS].create("import-admin", Role.admin, ["*"], "tests")
    viewer, _ = await client.app[TOKENS].create("import-viewer", Role.viewer, ["*"], "tests")
    view = {"Authorization": f"Bearer {viewer}"}
    for path in (HEALTH, LIST):  # one-off costs (first catalog build) before measuring
        assert (await client.get(path, headers=view)).status == 200
    latencies: dict[str, list[float]] = {path: [] for path in paths}

    with LoopLag() as lag:
        pollers = [asyncio.create_task(poll(client, p, view, latencies[p])) for p in paths]
        started = time.perf_counter()
        resp = await client.post(
            "/api/v1/cameras/import",
            data=io.BytesIO(body),  # (raw bytes this large: aiohttp warns)
            headers={"Authorization": f"Bearer {admin}", "Content-Type": "text/csv"},
        )
        raw = await resp.read()
        elapsed = time.perf_counter() - started
        for task in pollers:
            task.cancel()
        await asyncio.gather(*pollers, return_exceptions=True)

    assert resp.status == 200, raw[:500]
    result = orjson.loads(raw)
    print(f"\n{ROWS:,}-row import: {elapsed:.1f} s, {len(body) / 1e6:.1f} MB CSV")
    print(f"  {summary('event loop lag', lag.samples)}")
    for path, values in latencies.items():
        print(f"  {summary(f'GET {path}', values)}")
    assert result["failed"] == 0, result["errors"][:3]
    assert result["created"] == ROWS
    assert len(result["ids"]) == ROWS
    assert len(lag.samples) > 100 and all(latencies.values())
    return lag.samples, latencies


@pytest.mark.slow
async def test_health_and_list_answer_during_a_large_import(
    aiohttp_client: Factory, settings: Settings, vault: CredentialVault
) -> None:
    """Before: /healthz took 11 s during such an import. The list is polled too: its catalog
    is rebuilt while the import writes (a large rebuild no longer makes requests wait for it,
    and no longer frees or collects on the event loop)."""
    lag, latencies = await import_while_polling(aiohttp_client, settings, vault, [HEALTH, LIST])
    # p99, not the maximum: on a busy 2-core machine a garbage collection or the other core's
    # scheduling now and then costs one sample more (the maximum is printed; before the fix a
    # single health answer took 11 s, and the loop stood still for seconds at a time).
    assert p99(lag) < MAX_LOOP_LAG_S, summary("event loop lag", lag)
    for path, values in latencies.items():  # (the client shares the loop: its time counts too)
        assert p99(values) < MAX_LOOP_LAG_S, summary(path, values)
    assert max(lag) < 10 * MAX_LOOP_LAG_S, summary("event loop lag", lag)


def p99(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.99)]
