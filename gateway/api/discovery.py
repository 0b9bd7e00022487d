"""Discovery jobs: POST /api/v1/networks/{id}/discover starts one; GET /api/v1/jobs/{id}."""

from __future__ import annotations

from aiohttp import web

from ..errors import Forbidden, NotFound
from ..keys import DISCOVERY, NETWORK, PRINCIPAL
from ..models import DiscoveryJob, JobPath, NetworkPath
from ..policy import Permission
from .endpoint import Endpoint, audit_refusal
from .http import json_response
from .scope import job_network, path_network


async def start_discovery(request: web.Request) -> web.StreamResponse:
    who = request[PRINCIPAL]
    network = request.match_info["id"]
    service = request.app[DISCOVERY]
    if network in service.adapters:
        request[NETWORK] = network  # a refusal is that network's auditor's business
    if network not in service.adapters or not who.sees(network):
        raise NotFound(f"network {network[:64]} not found")
    job = await service.start(network, who.actor)
    location = request.app.router["job_get"].url_for(id=job.id)
    return json_response(job, status=202, headers={"Location": str(location)})


async def get_job(request: web.Request) -> web.StreamResponse:
    who = request[PRINCIPAL]
    job = await request.app[DISCOVERY].job(request.match_info["id"][:64])
    if job is not None and who.sees(job.network):
        return json_response(job)
    # Missing and hidden alike (both audited; the hidden one under its network).
    missing = NotFound("no such job")
    refusal = missing if job is None else Forbidden("network not granted")
    await audit_refusal(request, "job.get", refusal, network=job.network if job else "")
    missing.audited = True
    raise missing


ENDPOINTS = [
    Endpoint(
        "POST",
        "/api/v1/networks/{id}/discover",
        start_discovery,
        "Start discovery on a network (or return the running job)",
        "discovery.start",
        Permission.discover,
        network=path_network,
        path_params=NetworkPath,
        response=DiscoveryJob,
        status=202,
        audit_failures=True,
        errors=(404,),
    ),
    Endpoint(
        "GET",
        "/api/v1/jobs/{id}",
        get_job,
        "Discovery job progress and failures",
        "job.get",
        Permission.discover,
        network=job_network,
        path_params=JobPath,
        response=DiscoveryJob,
        errors=(404,),
    ),
]
