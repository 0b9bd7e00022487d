"""/api/v1/summary: the town's inventory table, recounted from the registry."""

from __future__ import annotations

from aiohttp import web

from ..keys import CATALOG, PRINCIPAL
from ..models import Summary
from ..policy import Permission
from .endpoint import Endpoint
from .http import conditional


async def get_summary(request: web.Request) -> web.StreamResponse:
    catalog = request.app[CATALOG]
    return await conditional(request, catalog, await catalog.summary(request[PRINCIPAL]))


ENDPOINTS = [
    Endpoint(
        "GET",
        "/api/v1/summary",
        get_summary,
        "Counts by network x category x status, by department and carrier",
        "summary.get",
        Permission.read_cameras,
        response=Summary,
        conditional=True,
    ),
]
