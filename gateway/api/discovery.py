"""Discovery jobs: POST /api/v1/networks/{id}/discover starts one; GET /api/v1/jobs/{id}."""

from __future__ import annotations

from aiohttp import web

from ..errors import NotFound
from ..keys import DISCOVERY, PRINCIPAL
from ..models import DiscoveryJob
from ..policy import Permission
from .endpoint import Endpoint
from .http import json_response


async def start_discovery(request: web.Request) -> web.StreamResponse:
    who = request[PRINCIPAL]
    network = request.match_info["id"]
    service = request.app[DISCOVERY]
    if network not in service.adapters or not who.sees(network):
        raise NotFound(f"network {network} not found")
    job = service.start(network, who.actor)
    location = request.app.router["job_get"].url_for(id=job.id)
    return json_response(job, status=202, headers={"Location": str(location)})


async def get_job(request: web.Request) -> web.StreamResponse:
    who = request[PRINCIPAL]
    job = await request.app[DISCOVERY].job(request.match_info["id"][:64])
    if job is None or not who.sees(job.network):
        raise NotFound("no such job")
    return json_response(job)


ENDPOINTS = [
    Endpoint(
        "POST",
        "/api/v1/networks/{id}/discover",
        start_discovery,
        "Start discovery on a network (or return the running job)",
        "discovery.start",
        Permission.discover,
        response=DiscoveryJob,
        status=202,
        audit_failures=True,
    ),
    Endpoint(
        "GET",
        "/api/v1/jobs/{id}",
        get_job,
        "Discovery job progress and failures",
        "job.get",
        Permission.discover,
        response=DiscoveryJob,
    ),
]
