"""/api/v1/audit: read the trail (newest first). There is deliberately no way to change it, and
every read is itself recorded (`audit.read`: who, the filters, how many entries they got)."""

from __future__ import annotations

import orjson
from aiohttp import web

from ..audit import AuditEvent, AuditQuery
from ..keys import AUDIT, PRINCIPAL, REQUEST_ID
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
        reason=p.reason,
        networks=who.networks,  # an auditor reads the trail of the networks granted to it
        since=p.since,
        limit=p.limit,
        cursor=p.cursor,
    )
    audit = request.app[AUDIT]
    page = await audit.query(query)
    # Recorded after the read (so it is not in its own page) and before the answer: no one
    # reads the trail without leaving an entry. A read with a network filter is that
    # network's business, so its auditors see it too.
    await audit.append(
        AuditEvent(
            actor=who.actor,
            role=who.role.value,
            action="audit.read",
            target="",
            network=p.network or "",
            outcome="ok",
            status=200,
            request_id=request.get(REQUEST_ID, ""),
            extra={
                "filters": orjson.dumps(p.model_dump(mode="json", exclude_none=True)).decode(),
                "returned": str(len(page.items)),
            },
        )
    )
    return json_response(page)


ENDPOINTS = [
    Endpoint(
        "GET",
        "/api/v1/audit",
        read_audit,
        "Audit trail, newest first (each read is itself recorded as `audit.read`)",
        "audit.read",
        Permission.read_audit,
        query=AuditQueryParams,
        response=AuditPage,
    ),
]
