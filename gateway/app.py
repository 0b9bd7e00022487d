"""The application factory: middlewares in order, routes, and cleanup contexts in dependency
order (Redis, then the services built on it, then the events listener)."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Literal

from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import RedisError

from adapters import tasks
from adapters.base import NetworkAdapter
from adapters.network import AdapterSpec, CameraNetworkAdapter
from adapters.process import AdapterProcess, ProcessAdapter
from adapters.redis_link import RedisLink, connect
from adapters.threaded import AdapterThread, ThreadedAdapter

from . import events, logs
from .api import (
    audit,
    cameras,
    chain,
    discovery,
    health,
    networks,
    openapi,
    quality,
    quality_evidence,
    reports,
    session,
    snapshots,
    summary,
)
from .api.endpoint import Endpoint, add_routes
from .audit import AuditLog
from .auth import TokenStore
from .catalog import Catalog
from .dashboard import add_dashboard
from .discovery import DiscoveryService
from .edge import EdgeHub
from .errors import CamgwError
from .gb28181 import gb28181_context
from .keys import (
    ADAPTERS,
    AUDIT,
    CATALOG,
    DISCOVERY,
    EDGE,
    METRICS,
    QUERY_CACHE,
    REDIS,
    REGISTRY,
    SETTINGS,
    SNAPSHOTS,
    TOKENS,
    VAULT,
)
from .metrics import Metrics
from .middlewares import edge
from .quality import quality_context
from .registry import Registry
from .reports import accountability_context
from .settings import NetworkConfig, Settings
from .snapshots import SnapshotService
from .vault import CredentialVault

log = logging.getLogger(__name__)

ENDPOINTS: list[Endpoint] = [
    *health.ENDPOINTS,
    *cameras.ENDPOINTS,
    *summary.ENDPOINTS,
    *networks.ENDPOINTS,
    *audit.ENDPOINTS,
    *chain.ENDPOINTS,
    *discovery.ENDPOINTS,
    *snapshots.ENDPOINTS,
    *reports.ENDPOINTS,
    *quality.ENDPOINTS,
    *quality_evidence.ENDPOINTS,
    *session.ENDPOINTS,
]

AdapterFactory = Callable[[web.Application], dict[str, NetworkAdapter]]
_CLOSE_S = 10.0  # an adapter's close (its sessions, streams) at shutdown
REF_PURPOSE = "camgw camera refs v1"  # keys in-process cameras' refs (an edge adapter has its own)


def package_version() -> str:
    try:
        return version("camgw")
    except PackageNotFoundError:
        return "0+unknown"


def redis_client(link: RedisLink | str, max_connections: int = 64) -> Redis:
    """`adapters.redis_link.connect`: bounded timeouts (a stalled Redis turns into a 503, never
    a hung request), a bounded, blocking pool (a burst waits for a connection instead of
    failing with "too many connections" or opening hundreds), TLS verified and the ACL login as
    the link (`[redis]`) says. A bare URL is a link with nothing else set."""
    if isinstance(link, str):
        link = RedisLink(url=link)
    return connect(link, max_connections=max_connections)


def in_process_spec(
    network: NetworkConfig, settings: Settings, vault: CredentialVault
) -> AdapterSpec:
    """What a network's adapter in this process (or its child) is built from; credentials
    resolved now, not at import."""
    return AdapterSpec(
        network.id,
        network.cidrs,
        network.discovery,
        network.credentials.resolve() if network.credentials else None,
        settings.snapshots,
        network.access,
        ref_key=vault.derive(REF_PURPOSE),
    )


def in_process_adapter(
    network: NetworkConfig, settings: Settings, vault: CredentialVault
) -> CameraNetworkAdapter:
    """A network reached from this process, on the caller's loop."""
    return CameraNetworkAdapter(in_process_spec(network, settings, vault))


def default_adapters(app: web.Application) -> dict[str, NetworkAdapter]:
    """One adapter per configured network: its edge adapter's streams, or reached from here
    as `[server] adapters` says: in one child process for all of them (`process`,
    adapters/process.py), on a loop and thread of their own (`thread`, adapters/threaded.py) or
    on the API's loop (`loop`); docs/discovery.md, "Where the reads run"."""
    return adapters_for(app, app[SETTINGS].server.adapters)


def adapters_for(
    app: web.Application, mode: Literal["process", "thread", "loop"]
) -> dict[str, NetworkAdapter]:
    """`default_adapters` with the mode given (the test suite's apps: "loop")."""
    settings, vault, hub = app[SETTINGS], app[VAULT], app[EDGE]
    thread: AdapterThread | None = None
    adapters: dict[str, NetworkAdapter] = {}
    specs: list[AdapterSpec] = []
    for n in settings.networks:
        if n.mode == "edge":
            adapters[n.id] = hub.adapter(n.id)
        elif mode == "process":
            specs.append(in_process_spec(n, settings, vault))
        elif mode == "thread":
            thread = thread or AdapterThread()
            adapters[n.id] = ThreadedAdapter(in_process_adapter(n, settings, vault), thread)
        else:
            adapters[n.id] = in_process_adapter(n, settings, vault)
    if specs:
        process = AdapterProcess(
            specs,
            # The child logs as the gateway does: JSON lines on stderr, at the gateway's level.
            initializer=functools.partial(
                logs.setup, logging.getLevelName(logging.getLogger().getEffectiveLevel())
            ),
            niceness=settings.server.adapter_niceness,
        )
        adapters |= {s.network: process.adapter(s.network) for s in specs}
    return {n.id: adapters[n.id] for n in settings.networks}  # in the configured order


def create_app(
    settings: Settings, vault: CredentialVault, adapters: AdapterFactory | None = None
) -> web.Application:
    """The gateway; `adapters` builds each network's adapter (default_adapters, looked up
    when the app is created)."""
    app = web.Application(
        middlewares=[edge],
        client_max_size=max(settings.server.max_body_bytes, settings.server.max_import_bytes),
    )
    app[SETTINGS] = settings
    app[VAULT] = vault
    app[METRICS] = Metrics()
    app[QUERY_CACHE] = {}
    add_routes(app, ENDPOINTS)
    doc = openapi.build(ENDPOINTS, package_version())
    app.router.add_get("/api/v1/openapi.json", openapi.handler(doc), name="openapi")
    add_dashboard(app, settings.dashboard)
    app.cleanup_ctx.append(_redis)
    app.cleanup_ctx.append(_services)
    app.cleanup_ctx.append(_audit_upkeep)
    app.cleanup_ctx.append(_events)
    app.cleanup_ctx.append(_edge)
    app.cleanup_ctx.append(_adapters(adapters or default_adapters))
    app.cleanup_ctx.append(_discovery)
    app.cleanup_ctx.append(_snapshots)
    app.cleanup_ctx.append(quality_context())  # (rounds one interval after start; opt-out)
    app.cleanup_ctx.append(gb28181_context())  # (nothing opens unless [gb28181] enabled)
    app.cleanup_ctx.append(accountability_context)
    return app


async def _redis(app: web.Application) -> AsyncIterator[None]:
    client = redis_client(app[SETTINGS].redis)
    app[REDIS] = client
    watch = asyncio.create_task(_await_registry(client, app[SETTINGS].redis.shown))
    loop_delay = asyncio.create_task(app[METRICS].loop.run(), name="camgw-loop-delay")
    yield
    await tasks.stop(watch, loop_delay)
    await client.aclose()


async def _await_registry(client: Redis, url: str, every_s: float = 2.0) -> None:
    """Say whether the registry answers at start; while it does not, say so (at once, then
    every minute) and what waits on it. The gateway serves meanwhile: the API answers 503."""
    tries = 0
    while True:
        try:
            await client.ping()
        except (RedisError, OSError) as exc:
            if tries % max(1, round(60 / every_s)) == 0:
                log.warning(
                    "registry %s does not answer (%s); waiting for it: the API answers 503, "
                    "discovery and health probes wait",
                    url,
                    exc,
                    extra={"registry": url},
                )
            tries += 1
            await asyncio.sleep(every_s)
            continue
        log.info("registry %s answers", url, extra={"registry": url, "waited_tries": tries})
        return


async def _services(app: web.Application) -> AsyncIterator[None]:
    settings, client = app[SETTINGS], app[REDIS]
    prefix = settings.redis.prefix
    app[AUDIT] = AuditLog(client, prefix, app[VAULT], settings.audit)
    app[REGISTRY] = Registry(client, settings, app[VAULT], app[AUDIT])  # one audit sequencer
    app[TOKENS] = TokenStore(client, prefix)
    app[CATALOG] = Catalog(app[REGISTRY], settings)
    app[METRICS].watch_catalog(app[CATALOG])
    app[METRICS].watch_audit(app[AUDIT])
    geo = asyncio.create_task(_index_locations(app[REGISTRY]), name="camgw-geo-index")
    yield
    await tasks.stop(geo)


async def _index_locations(registry: Registry) -> None:
    """Records written before the GEO indexes existed are placed once (`near` queries)."""
    try:
        if await registry.redis.exists(f"{registry.keys.prefix}:geo:indexed"):
            return
        placed = await registry.index_locations()
        log.info("cameras placed in the GEO indexes", extra={"cameras": placed})
    except (CamgwError, RedisError, OSError) as exc:  # Redis away: the next start tries again
        log.warning("GEO indexes not built", extra={"error": str(exc)[:300]})


async def _audit_upkeep(app: web.Application) -> AsyncIterator[None]:
    """Per-minute counts of unauthenticated refusals, and the archive of the oldest entries
    before any trim; at shutdown the counts still held are written."""
    audit = app[AUDIT]
    task = asyncio.create_task(audit.upkeep(), name="camgw-audit-upkeep")
    yield
    await tasks.stop(task)
    try:
        await audit.flush_refusals(everything=True)
    except CamgwError as exc:
        log.error(
            "unauthenticated refusal counts lost at shutdown",
            extra={"count": audit.refusals.pending(), "error": exc.detail},
        )


async def _events(app: web.Application) -> AsyncIterator[None]:
    registry, catalog, tokens = app[REGISTRY], app[CATALOG], app[TOKENS]
    task = asyncio.create_task(
        events.listen(
            app[REDIS], registry.keys.events, registry.version, catalog.set_live, tokens.forget
        ),
        name="camgw-events",
    )
    yield
    await tasks.stop(task)


async def _edge(app: web.Application) -> AsyncIterator[None]:
    """The inboxes and outboxes of the edge networks (none: nothing runs)."""
    hub = EdgeHub(app[REDIS], app[SETTINGS], app[AUDIT])
    app[EDGE] = hub
    app[METRICS].watch_edge(hub)
    await hub.start()
    yield
    await hub.stop()


def _adapters(factory: AdapterFactory) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        adapters = factory(app)
        app[ADAPTERS] = adapters
        processes = {a.process for a in adapters.values() if isinstance(a, ProcessAdapter)}
        for process in processes:  # now, not at the first read: its imports take a second
            await process.start()
        app[METRICS].watch_adapter_processes(processes)
        yield
        closing = [asyncio.create_task(a.close(), name=f"close-{n}") for n, a in adapters.items()]
        if closing:
            await asyncio.wait(closing, timeout=_CLOSE_S)
        await tasks.stop(*closing)  # those still closing after _CLOSE_S: cancelled, logged
        threads = {a.thread for a in adapters.values() if isinstance(a, ThreadedAdapter)}
        for thread in threads:
            await asyncio.to_thread(thread.stop)
        for process in processes:  # bounded: EOF, then SIGTERM, then SIGKILL
            await process.stop()

    return ctx


async def _discovery(app: web.Application) -> AsyncIterator[None]:
    service = DiscoveryService(
        app[SETTINGS], app[REDIS], app[REGISTRY], app[CATALOG], app[AUDIT], app[ADAPTERS]
    )
    app[DISCOVERY] = service
    app[METRICS].watch_discovery(service)
    async for _ in service.background():
        yield


async def _snapshots(app: web.Application) -> AsyncIterator[None]:
    service = SnapshotService(app[SETTINGS], app[REDIS], app[REGISTRY], app[ADAPTERS])
    app[SNAPSHOTS] = service
    yield
    service.close()
