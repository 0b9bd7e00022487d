"""GET /api/v1/cameras/{id}/snapshot: a picture for the ops center, on the network owner's terms.

Every request, granted or refused, leaves an audit entry with actor, camera, network, reason,
outcome, source, note, attempts, bytes and latency. The response names its source in
X-Snapshot-Source, with what the source did unusually ("camera-http; converted from image/png").
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from aiohttp import web

from ..audit import AuditEvent
from ..errors import CamgwError, FieldError, Invalid, NotFound
from ..keys import AUDIT, CATALOG, PRINCIPAL, REQUEST_ID, SETTINGS, SNAPSHOTS
from ..models import CameraPath, SnapshotQuery
from ..policy import Permission
from .endpoint import Endpoint
from .http import cached_query
from .scope import camera_network

_OUTCOMES = {
    403: "denied",
    404: "not_found",
    422: "invalid",
    429: "denied",
    502: "error",
    503: "error",
    504: "error",
}


async def get_snapshot(request: web.Request) -> web.StreamResponse:
    started = time.perf_counter()
    who = request[PRINCIPAL]
    cam_id = request.match_info["id"][:128]
    network, reason = "", ""
    try:
        params = cached_query(request, SnapshotQuery)
        reason = params.reason or ""
        camera = await request.app[CATALOG].camera(cam_id)
        if camera is None or not who.sees(camera.network):
            if camera is not None:
                network = camera.network  # audited (the owner sees the probe), never answered
            raise NotFound(f"camera {cam_id} not found")
        network = camera.network
        policy = request.app[SETTINGS].network_by_id[network].sharing
        if policy.reason_required and not params.reason:
            raise Invalid(
                [
                    FieldError(
                        "reason", f"network {network} requires an incident or ticket reference"
                    )
                ]
            )
        service = request.app[SNAPSHOTS]
        await service.check_rate(who, network, policy)
        snap = await service.snapshot(
            camera, who, params.width, policy, reason, request.get(REQUEST_ID, "")
        )
    except CamgwError as exc:
        await _audit(
            request,
            cam_id,
            network,
            reason,
            started,
            exc.status,
            _OUTCOMES.get(exc.status, "error"),
            detail=exc.audit_detail,
            source="",  # no picture left the gateway: every entry has the same fields
            note="",
            attempts="",
            bytes="0",
        )
        exc.audited = True  # this entry is the request's; the endpoint wrapper adds none
        raise
    taken = datetime.fromtimestamp(snap.frame.taken_at, UTC).isoformat(timespec="milliseconds")
    await _audit(
        request,
        cam_id,
        network,
        reason,
        started,
        200,
        "ok",
        source=snap.frame.source,
        note=snap.frame.note or "",
        attempts="; ".join(snap.frame.attempts),
        cache=snap.cache,
        bytes=str(len(snap.jpeg)),
    )
    return web.Response(
        body=snap.jpeg,
        content_type="image/jpeg",
        headers={
            "X-Snapshot-Taken-At": taken,
            "X-Snapshot-Source": snap.frame.header,
            "X-Snapshot-Cache": snap.cache,
            "Cache-Control": "no-store",
        },
    )


async def _audit(
    request: web.Request,
    cam_id: str,
    network: str,
    reason: str,
    started: float,
    status: int,
    outcome: str,
    detail: str = "",
    **extra: str,
) -> None:
    who = request[PRINCIPAL]
    latency = f"{(time.perf_counter() - started) * 1000:.1f}"
    await request.app[AUDIT].append(
        AuditEvent(
            actor=who.actor,
            role=who.role.value,
            action="camera.snapshot",
            target=cam_id,
            network=network,
            outcome=outcome,
            status=status,
            detail=detail[:300],
            request_id=request.get(REQUEST_ID, ""),
            extra={"reason": reason, "latency_ms": latency, **extra},
        )
    )


ENDPOINTS = [
    Endpoint(
        "GET",
        "/api/v1/cameras/{id}/snapshot",
        get_snapshot,
        "A JPEG from the camera now (or from the short cache), on the network's policy",
        "camera.snapshot",
        Permission.snapshot,
        network=camera_network,
        path_params=CameraPath,
        query=SnapshotQuery,
        produces="image/jpeg",
        errors=(404, 429, 502, 503, 504),
    ),
]
