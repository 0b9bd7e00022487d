"""/api/v1/networks: the configured networks the caller is granted, with camera counts."""

from __future__ import annotations

from aiohttp import web

from ..gb28181 import GB28181
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
    infos = await request.app[CATALOG].networks(
        who, lambda n: service.adapter_state(n, edge.get(n))
    )
    gb = request.app.get(GB28181)
    if gb is not None and who.can(Permission.discover):  # lower platforms: admins only
        infos = [i.model_copy(update={"platforms": gb.infos(i.id)}) for i in infos]
    return json_response(infos)


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
