"""/api/v1/networks: the configured networks the caller is granted, with camera counts."""

from __future__ import annotations

from aiohttp import web

from ..keys import CATALOG, DISCOVERY, EDGE, PRINCIPAL
from ..models import NetworkInfo
from ..policy import Permission
from .endpoint import Endpoint
from .http import json_response


async def list_networks(request: web.Request) -> web.StreamResponse:
    service, hub, who = request.app[DISCOVERY], request.app[EDGE], request[PRINCIPAL]
    edge = {
        n: await hub.info(n) for n in hub.networks if who.sees(n) and who.can(Permission.discover)
    }
    return json_response(
        await request.app[CATALOG].networks(who, lambda n: service.adapter_state(n, edge.get(n)))
    )


ENDPOINTS = [
    Endpoint(
        "GET",
        "/api/v1/networks",
        list_networks,
        "Configured networks and their counts",
        "network.list",
        Permission.read_networks,
        response=NetworkInfo,
        many=True,
    ),
]
