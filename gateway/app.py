"""The application factory: middlewares in order, routes, and cleanup contexts in dependency
order (Redis, then the services built on it, then the events listener)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from importlib.metadata import PackageNotFoundError, version

from aiohttp import web
from redis.asyncio import Redis

from . import events
from .api import audit, cameras, health, networks, openapi, summary
from .api.endpoint import Endpoint, add_routes
from .audit import AuditLog
from .auth import TokenStore
from .catalog import Catalog
from .keys import AUDIT, CATALOG, METRICS, REDIS, REGISTRY, SETTINGS, TOKENS, VAULT
from .metrics import Metrics
from .middlewares import observe, problems
from .registry import Registry
from .settings import Settings
from .vault import CredentialVault

ENDPOINTS: list[Endpoint] = [
    *health.ENDPOINTS,
    *cameras.ENDPOINTS,
    *summary.ENDPOINTS,
    *networks.ENDPOINTS,
    *audit.ENDPOINTS,
]


def package_version() -> str:
    try:
        return version("camgw")
    except PackageNotFoundError:
        return "0+unknown"


def redis_client(url: str) -> Redis:
    """Bounded timeouts: a stalled Redis turns into a 503, never a hung request."""
    return Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=15)


def create_app(settings: Settings, vault: CredentialVault) -> web.Application:
    app = web.Application(
        middlewares=[observe, problems],
        client_max_size=max(settings.server.max_body_bytes, settings.server.max_import_bytes),
    )
    app[SETTINGS] = settings
    app[VAULT] = vault
    app[METRICS] = Metrics()
    add_routes(app, ENDPOINTS)
    doc = openapi.build(ENDPOINTS, package_version())
    app.router.add_get("/api/v1/openapi.json", openapi.handler(doc), name="openapi")
    app.on_response_prepare.append(_server_header)
    app.cleanup_ctx.append(_redis)
    app.cleanup_ctx.append(_services)
    app.cleanup_ctx.append(_events)
    return app


async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
    # Say nothing about the Python and aiohttp versions behind the gateway.
    response.headers["Server"] = "camgw"


async def _redis(app: web.Application) -> AsyncIterator[None]:
    client = redis_client(app[SETTINGS].redis.url)
    app[REDIS] = client
    yield
    await client.aclose()


async def _services(app: web.Application) -> AsyncIterator[None]:
    settings, client = app[SETTINGS], app[REDIS]
    prefix = settings.redis.prefix
    app[REGISTRY] = Registry(client, prefix, app[VAULT], settings.audit.max_entries)
    app[TOKENS] = TokenStore(client, prefix)
    app[AUDIT] = AuditLog(client, prefix, settings.audit.max_entries)
    app[CATALOG] = Catalog(app[REGISTRY], settings)
    app[METRICS].watch_catalog(app[CATALOG])
    yield


async def _events(app: web.Application) -> AsyncIterator[None]:
    registry, catalog, tokens = app[REGISTRY], app[CATALOG], app[TOKENS]
    task = asyncio.create_task(
        events.listen(
            app[REDIS], registry.keys.events, registry.version, catalog.set_live, tokens.forget
        ),
        name="camgw-events",
    )
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
