"""/api/v1/audit: read the trail (newest first). There is deliberately no way to change it."""

from __future__ import annotations

from aiohttp import web

from ..audit import AuditQuery
from ..keys import AUDIT, PRINCIPAL
from ..models import AuditPage, AuditQueryParams
from ..policy import Permission
from .endpoint import Endpoint
from .http import json_response, parse_query


async def read_audit(request: web.Request) -> web.StreamResponse:
    p = parse_query(request, AuditQueryParams)
    who = request[PRINCIPAL]
    query = AuditQuery(
        actor=p.actor,
        camera=p.camera,
        network=p.network,
        networks=who.networks,  # an auditor reads the trail of the networks granted to it
        since=p.since,
        limit=p.limit,
        cursor=p.cursor,
    )
    return json_response(await request.app[AUDIT].query(query))


ENDPOINTS = [
    Endpoint(
        "GET",
        "/api/v1/audit",
        read_audit,
        "Audit trail, newest first",
        "audit.read",
        Permission.read_audit,
        query=AuditQueryParams,
        response=AuditPage,
    ),
]
