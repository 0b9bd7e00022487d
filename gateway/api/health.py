"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector
from redis.exceptions import RedisError

from ..catalog import LARGE_REGISTRY
from ..errors import Unavailable
from ..keys import CATALOG, METRICS, PRINCIPAL, REDIS, SETTINGS
from ..metrics import NetworkView
from ..models import Health
from ..policy import Permission
from .endpoint import Endpoint
from .http import json_response

_READY_TIMEOUT_S = 1.0


async def healthz(request: web.Request) -> web.StreamResponse:
    """The process answers; says nothing about its dependencies."""
    return json_response(Health(status="ok"))


async def readyz(request: web.Request) -> web.StreamResponse:
    """Ready when the registry answers; a load balancer stops sending traffic otherwise."""
    try:
        async with asyncio.timeout(_READY_TIMEOUT_S):
            await request.app[REDIS].ping()
    except (RedisError, OSError, TimeoutError):
        return json_response(Health(status="unavailable"), status=503)
    return json_response(Health(status="ok"))


async def metrics(request: web.Request) -> web.StreamResponse:
    """Counts as of now (not as of the last list request), limited to the caller's networks."""
    catalog = request.app[CATALOG]
    with contextlib.suppress(Unavailable):  # Redis down: serve the last counts, graph the outage
        await catalog.current()
    who = request[PRINCIPAL]
    source: Collector = request.app[METRICS].registry
    if who.networks is not None:
        source = NetworkView(source, frozenset(who.visible(request.app[SETTINGS])))
    # A district's counts (per owner, per outage) are a pass over every camera after each
    # change: off the event loop there. The collectors read snapshots, which never change.
    if len(catalog.snapshot.entries) >= LARGE_REGISTRY:
        body = await asyncio.to_thread(generate_latest, source)
    else:
        body = generate_latest(source)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


ENDPOINTS = [
    Endpoint("GET", "/healthz", healthz, "Liveness", "health", None, response=Health),
    Endpoint(
        "GET",
        "/readyz",
        readyz,
        "Readiness (registry reachable)",
        "ready",
        None,
        response=Health,
        answers=((503, Health),),
    ),
    Endpoint(
        "GET",
        "/metrics",
        metrics,
        "Prometheus metrics",
        "metrics",
        Permission.read_metrics,
        produces="text/plain",
    ),
]
