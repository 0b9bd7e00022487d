"""GET /api/v1/cameras/{id}/snapshot: a picture for the ops center, on the network owner's terms.

Every request, granted or refused, leaves an audit entry with actor, camera, network, reason,
outcome, source, note, attempts, bytes and latency. The response names its source in
X-Snapshot-Source, with what the source did unusually ("camera-http; converted from image/png").
"""

from __future__ import annotations

import asyncio
import base64
import time
from datetime import UTC, datetime

import orjson
from aiohttp import web

from ..audit import AuditEvent
from ..catalog import ListQuery
from ..errors import CamgwError, FieldError, Invalid, NotFound
from ..keys import AUDIT, CATALOG, PRINCIPAL, REQUEST_ID, SETTINGS, SNAPSHOTS
from ..models import (
    CameraPath,
    IncidentArea,
    IncidentPicture,
    IncidentSnapshotRequest,
    IncidentSnapshots,
    SnapshotQuery,
)
from ..policy import Permission
from ..snapshots import Snapshot
from .endpoint import Endpoint
from .http import cached_query, json_response, read_model
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
    try:
        params = cached_query(request, SnapshotQuery)
    except CamgwError as exc:
        cam_id = request.match_info["id"][:128]
        await _audit(request, cam_id, "", "", time.perf_counter(), exc, **_NO_PICTURE)
        exc.audited = True
        raise
    snap = await take(request, request.match_info["id"][:128], params.reason, params.width)
    if isinstance(snap, CamgwError):
        raise snap
    return web.Response(
        body=snap.jpeg,
        content_type="image/jpeg",
        headers={
            "X-Snapshot-Taken-At": _taken(snap),
            "X-Snapshot-Source": snap.frame.header,
            "X-Snapshot-Cache": snap.cache,
            "Cache-Control": "no-store",
        },
    )


async def take(
    request: web.Request, cam_id: str, reason: str | None, width: int | None
) -> Snapshot | CamgwError:
    """One camera's picture for the caller, or why not (already audited): the network's
    policy (reason, rate, width, watermark), then the service; one audit entry either way."""
    started = time.perf_counter()
    who = request[PRINCIPAL]
    network = ""
    try:
        camera = await request.app[CATALOG].camera(cam_id)
        if camera is None or not who.sees(camera.network):
            if camera is not None:
                network = camera.network  # audited (the owner sees the probe), never answered
            raise NotFound(f"camera {cam_id} not found")
        network = camera.network
        policy = request.app[SETTINGS].network_by_id[network].sharing
        if policy.reason_required and not reason:
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
            camera, who, width, policy, reason or "", request.get(REQUEST_ID, "")
        )
    except CamgwError as exc:
        await _audit(request, cam_id, network, reason or "", started, exc, **_NO_PICTURE)
        exc.audited = True  # this entry is the request's; the endpoint wrapper adds none
        return exc
    await _audit(
        request,
        cam_id,
        network,
        reason or "",
        started,
        None,
        source=snap.frame.source,
        note=snap.frame.note or "",
        attempts="; ".join(snap.frame.attempts),
        cache=snap.cache,
        bytes=str(len(snap.jpeg)),
    )
    return snap


async def incident_snapshots(request: web.Request) -> web.StreamResponse:
    """Pictures of several cameras for one incident, each taken (and audited) as a single
    snapshot request would be, under the incident's reason, within the caller's rate limits."""
    body = await read_model(
        request, IncidentSnapshotRequest, request.app[SETTINGS].server.max_body_bytes
    )
    distance: dict[str, float] = {}
    if body.near is not None:
        distance = await _nearest(request, body.near, body.max_cameras)
        wanted = list(distance)
    else:
        wanted = list(dict.fromkeys(body.cameras or ()))
    gate = asyncio.Semaphore(_INCIDENT_CONCURRENCY)

    async def one(cam_id: str) -> IncidentPicture:
        async with gate:
            snap = await take(request, cam_id, body.reason, body.width)
        if isinstance(snap, CamgwError):
            return IncidentPicture(
                camera=cam_id,
                status=snap.status,
                error=snap.detail,
                distance_m=distance.get(cam_id),
            )
        return IncidentPicture(
            camera=cam_id,
            status=200,
            taken_at=_taken(snap),
            source=snap.frame.header,
            distance_m=distance.get(cam_id),
            jpeg_base64=base64.b64encode(snap.jpeg).decode(),
        )

    items = await asyncio.gather(*(one(c) for c in wanted))
    taken = sum(1 for i in items if i.status == 200)
    answer = IncidentSnapshots(
        reason=body.reason, taken=taken, refused=len(items) - taken, items=list(items)
    )
    return json_response(answer, headers={"Cache-Control": "no-store"})


async def _nearest(request: web.Request, area: IncidentArea, count: int) -> dict[str, float]:
    """The cameras nearest the place that the caller may see placed (as the list's `near`)."""
    query = ListQuery(near=(area.lat, area.lon), radius_m=area.radius_m, limit=count)
    body = await request.app[CATALOG].camera_list(request[PRINCIPAL], query)
    page = orjson.loads(body.data)
    return {c["id"]: page["near"]["distance_m"][c["id"]] for c in page["items"]}


_INCIDENT_CONCURRENCY = 4  # cameras fetched at once for one incident request


# A refused or failed request's entry: no picture left the gateway, and every entry has the
# same fields.
_NO_PICTURE = {"source": "", "note": "", "attempts": "", "bytes": "0"}


def _taken(snap: Snapshot) -> str:
    return datetime.fromtimestamp(snap.frame.taken_at, UTC).isoformat(timespec="milliseconds")


async def _audit(
    request: web.Request,
    cam_id: str,
    network: str,
    reason: str,
    started: float,
    failure: CamgwError | None,
    **extra: str,
) -> None:
    status = failure.status if failure else 200
    outcome = _OUTCOMES.get(status, "error") if failure else "ok"
    detail = failure.audit_detail if failure else ""
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
        "POST",
        "/api/v1/snapshots",
        incident_snapshots,
        "Pictures of several cameras for one incident (named, or the nearest to a place), "
        "each audited under its reason",
        "incident.snapshots",
        Permission.snapshot,
        body=IncidentSnapshotRequest,
        response=IncidentSnapshots,
        errors=(422,),
    ),
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
