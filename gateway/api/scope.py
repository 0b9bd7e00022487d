"""Which network a request concerns, for the audit: every refusal and failure is filed under the
network it was aimed at whenever that can be known, so each network's own auditor sees the
attempts against that network (an entry filed under no network is seen only by auditors of
every network).

Handlers set `request[NETWORK]` as soon as they know it; an endpoint's resolver answers for
refusals that happen before its handler runs (a wrong role, a body too large). Resolvers never
fail: when nothing can be known they answer no network.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from ..keys import BODY, CATALOG, DISCOVERY, NETWORK, SETTINGS

NetworksOf = Callable[[web.Request], Awaitable[tuple[str, ...]]]

_PEEK_TYPES = ("application/json", "application/merge-patch+json")


async def networks_of(request: web.Request, resolve: NetworksOf | None) -> tuple[str, ...]:
    """The networks a refused request concerns (usually one; an import may name several)."""
    known = request.get(NETWORK)
    if known:
        return (known,)
    if resolve is None:
        return ()
    with contextlib.suppress(Exception):  # never let attribution turn a refusal into a 500
        return await resolve(request)
    return ()


async def camera_network(request: web.Request) -> tuple[str, ...]:
    """`/cameras/{id}...`: the camera's network, if there is such a camera."""
    cam = await request.app[CATALOG].camera(request.match_info.get("id", "")[:128])
    return (cam.network,) if cam is not None else ()


async def path_network(request: web.Request) -> tuple[str, ...]:
    """`/networks/{id}/...`: the network named, if it is configured."""
    network = request.match_info.get("id", "")
    return (network,) if network in request.app[SETTINGS].network_by_id else ()


async def job_network(request: web.Request) -> tuple[str, ...]:
    job = await request.app[DISCOVERY].job(request.match_info.get("id", "")[:64])
    return (job.network,) if job is not None else ()


async def body_networks(request: web.Request) -> tuple[str, ...]:
    """The configured networks a JSON body names (an object's `network`, or each row's in an
    array): the body the handler read, or, when a refusal came before the handler (a role),
    the body itself if it is JSON and within the size limit."""
    raw = request.get(BODY)
    if raw is None:
        server = request.app[SETTINGS].server
        limit = max(server.max_body_bytes, server.max_import_bytes)
        # Unread (no handler ran, or one refused before reading): a bounded, declared length.
        if (
            request.content_type not in _PEEK_TYPES
            or request.content_length is None
            or request.content_length > limit
        ):
            return ()
        raw = await request.read()
    data = orjson.loads(raw)
    rows = data if isinstance(data, list) else [data]
    named = (row.get("network") for row in rows if isinstance(row, dict))
    known = request.app[SETTINGS].network_by_id
    return tuple(dict.fromkeys(n for n in named if isinstance(n, str) and n in known))
