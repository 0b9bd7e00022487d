"""Shared fixtures: a real redis-server started by the suite (own port, own temp dir), and a
gateway app per test with its own key prefix, so tests never see each other's data."""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

import gateway.app
from gateway.app import adapters_for, create_app
from gateway.keys import TOKENS
from gateway.logs import JsonFormatter
from gateway.models import Role
from gateway.redis_server import RedisServer
from gateway.settings import DEFAULT_CONFIG, Settings, load_settings
from gateway.vault import CredentialVault

_PREFIXES = itertools.count(1)

Headers = dict[str, str]
TokenFactory = Callable[..., Awaitable[Headers]]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "adapters_process: the apps of this test run their in-process adapters as their "
        'settings say ([server] adapters, "process" as shipped), not on the app\'s loop',
    )


@pytest.fixture(autouse=True)
def adapters_on_the_loop(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The one place the suite departs from the shipped `[server] adapters = "process"`: every
    app a test builds with the default adapters reads cameras on its own event loop ("loop"),
    as the tests were written for (a child process costs about a second of imports per app).
    Tests of the process mode are marked `adapters_process` and keep what their settings say."""
    if request.node.get_closest_marker("adapters_process") is None:
        monkeypatch.setattr(gateway.app, "default_adapters", lambda app: adapters_for(app, "loop"))


@pytest.fixture(autouse=True)
def root_logging_restored() -> Iterator[None]:
    """A test that runs the CLI in process gives the root logger a handler on the stderr it
    captured (gateway/logs.setup); later tests' logs went to that closed file, each printed as
    a 'Logging error' traceback (thousands of lines in a whole run)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers[:]:
        if handler not in handlers and isinstance(handler.formatter, JsonFormatter):
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"), appendonly=False).start()
    yield server
    server.stop()


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    """A plain client of the suite's Redis, emptied first: for tests of one mechanism that
    name their keys themselves (leases, streaks) rather than through a prefix of their own."""
    client = Redis.from_url(redis_server.url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
def settings(redis_server: RedisServer) -> Settings:
    base = load_settings(DEFAULT_CONFIG, use_env=False)
    prefix = f"t{os.getpid()}-{next(_PREFIXES)}"
    return base.model_copy(
        update={"redis": base.redis.model_copy(update={"url": redis_server.url, "prefix": prefix})}
    )


@pytest.fixture
def vault() -> CredentialVault:
    return CredentialVault(os.urandom(32))


@pytest.fixture
async def client(
    aiohttp_client: Callable[..., Awaitable[TestClient]],  # type: ignore[type-arg]
    settings: Settings,
    vault: CredentialVault,
) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    yield await aiohttp_client(create_app(settings, vault))


@pytest.fixture
def token(client: TestClient) -> TokenFactory:  # type: ignore[type-arg]
    """`await token("viewer", ["governance"])` -> Authorization headers for a fresh token."""

    async def make(role: str, networks: list[str] | None = None, name: str = "") -> Headers:
        store = client.app[TOKENS]
        grants = networks or ["*"]
        secret, _ = await store.create(name or f"test-{role}", Role(role), grants, "tests")
        return {"Authorization": f"Bearer {secret}"}

    return make


@pytest.fixture
def data_dir() -> Path:
    return Path(__file__).parent / "data"
