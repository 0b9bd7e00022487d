"""A camera's quality references (docs/quality.md, "Reference frames"), admins only:

- PUT /api/v1/cameras/{id}/reference: accept the camera's picture now as the one it should
  show, by day or by night as the network's clock says now;
- PUT /api/v1/cameras/{id}/references/{period}: upload a JPEG of one's own for day or night
  (at most 4 MiB, decoded and checked off the event loop);
- GET /api/v1/cameras/{id}/references: which it has, when set, by whom, from where;
- DELETE /api/v1/cameras/{id}/references/{period}.

Blur, occlusion and displacement are judged against a reference from the next round of its
period on. An edge network's cameras are judged in its adapter, which keeps their references
itself: accepting the current picture and deleting go to the adapter (the picture stays in the
network); an upload is refused (409: a picture of the town's would enter the owner's network).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Literal

from aiohttp import web
from pydantic import Field

from adapters import wire
from adapters.base import AdapterError
from adapters.quality.job import check_reference

from ..edge import EdgeAdapter
from ..errors import CamgwError, Conflict, FieldError, Invalid, NotFound
from ..keys import CATALOG, NETWORK, PRINCIPAL, REDIS, SETTINGS, SNAPSHOTS
from ..models import Camera, CameraId, CameraPath, Model
from ..policy import Permission, Principal
from ..quality import MAX_REFERENCE_BYTES, QUALITY
from ..quality_refs import PERIODS, Period, ReferenceInfo, ReferenceStore, now_info
from .endpoint import Endpoint, audit_done
from .http import json_response, read_body
from .scope import camera_network


class ReferenceAccepted(Model):
    id: CameraId
    period: Literal["day", "night"] = Field(
        description="The reference is used by day or by night (the network's local clock now)"
    )
    accepted_at: datetime
    bytes: int = Field(ge=1, description="Size of the reference JPEG")
    width: int = Field(ge=1)
    height: int = Field(ge=1)


class ReferencePath(Model):
    id: CameraId
    period: Period


class References(Model):
    id: CameraId
    items: list[ReferenceInfo] = Field(description="Day first; a period without one is absent")


def _store(request: web.Request) -> ReferenceStore:
    return ReferenceStore(request.app[REDIS], request.app[SETTINGS])


async def granted_camera(request: web.Request, who: Principal) -> Camera:
    """The camera, 404 alike when missing or in a network the caller is not granted."""
    cam_id = request.match_info["id"][:128]
    camera = await request.app[CATALOG].camera(cam_id)
    if camera is None or not who.sees(camera.network):
        raise NotFound(f"camera {cam_id} not found")
    request[NETWORK] = camera.network
    return camera


def _edge(request: web.Request, camera: Camera) -> tuple[EdgeAdapter, str] | None:
    """The camera's edge adapter and its ref there, for a camera of an edge network."""
    if request.app[SETTINGS].network_by_id[camera.network].mode != "edge":
        return None
    adapter = request.app[SNAPSHOTS].adapters.get(camera.network)
    ref = camera.device.ref if camera.device else None
    if not isinstance(adapter, EdgeAdapter) or ref is None:
        raise Conflict(f"camera {camera.id} has no adapter ref yet (run a discovery)")
    return adapter, ref


async def _at_edge(
    request: web.Request,
    camera: Camera,
    edge: tuple[EdgeAdapter, str],
    period: Period,
    action: Literal["accept", "delete"],
) -> wire.ReferenceResult:
    adapter, ref = edge
    try:
        return await adapter.reference(ref, period, action, request[PRINCIPAL].actor)
    except AdapterError as exc:
        raise Conflict(
            f"camera {camera.id}: its network's adapter kept no reference: {exc}"[:500]
        ) from exc


def _period(request: web.Request) -> Period:
    period = request.match_info["period"]
    for known in PERIODS:
        if period == known:
            return known
    raise Invalid([FieldError("period", "must be day or night")])


async def accept_reference(request: web.Request) -> web.StreamResponse:
    who = request[PRINCIPAL]
    camera = await granted_camera(request, who)
    edge = _edge(request, camera)
    if edge is not None:
        return await _accept_at_edge(request, camera, edge)
    try:
        frame, night = await request.app[QUALITY].accept_current(camera)
    except CamgwError as exc:
        if exc.status < 500:
            raise
        # the camera failed, not this request: nothing was accepted, and it says why
        raise Conflict(
            f"camera {camera.id} gave no picture to accept as its reference: {exc.detail}"
        ) from exc
    answer = ReferenceAccepted(
        id=camera.id,
        period="night" if night else "day",
        accepted_at=datetime.now(UTC),
        bytes=len(frame.jpeg),
        width=frame.width,
        height=frame.height,
    )
    await _store(request).describe(
        camera.id,
        now_info(answer.period, who.actor, "current", len(frame.jpeg), frame.width, frame.height),
    )
    await audit_done(
        request,
        "camera.reference",
        camera,
        200,
        {
            "bytes": str(len(frame.jpeg)),
            "source": frame.source,
            "period": answer.period,
        },
    )
    return json_response(answer)


async def _accept_at_edge(
    request: web.Request, camera: Camera, edge: tuple[EdgeAdapter, str]
) -> web.StreamResponse:
    """The adapter keeps the camera's picture now; only its size comes back."""
    who = request[PRINCIPAL]
    period: Period = "night" if request.app[QUALITY].is_night(camera.network) else "day"
    kept = await _at_edge(request, camera, edge, period, "accept")
    info = now_info(period, who.actor, "current", kept.bytes, kept.width, kept.height)
    await _store(request).describe(camera.id, info)
    await audit_done(
        request,
        "camera.reference",
        camera,
        200,
        {"bytes": str(kept.bytes), "source": "edge-adapter", "period": period},
    )
    answer = ReferenceAccepted(
        id=camera.id,
        period=period,
        accepted_at=info.set_at or datetime.now(UTC),
        bytes=kept.bytes,
        width=kept.width,
        height=kept.height,
    )
    return json_response(answer)


async def upload_reference(request: web.Request) -> web.StreamResponse:
    who = request[PRINCIPAL]
    camera = await granted_camera(request, who)
    if _edge(request, camera) is not None:
        raise Conflict(
            f"camera {camera.id} is in the {camera.network} network, whose adapter keeps its "
            "references: accept its current picture instead (PUT .../reference)"
        )
    period = _period(request)
    jpeg = await read_body(request, MAX_REFERENCE_BYTES, ("image/jpeg",))
    try:  # decoding a 4 MiB JPEG takes tens of milliseconds: not on the event loop
        width, height = await asyncio.to_thread(check_reference, jpeg)
    except ValueError as exc:
        message = f"not usable as a reference: {exc}"
        raise Invalid([FieldError("body", message)], detail=message) from None
    info = now_info(period, who.actor, "upload", len(jpeg), width, height)
    await _store(request).put(camera.id, jpeg, info)
    await audit_done(
        request,
        "camera.reference.upload",
        camera,
        200,
        {"bytes": str(len(jpeg)), "source": "upload", "period": period},
    )
    answer = ReferenceAccepted(
        id=camera.id,
        period=period,
        accepted_at=info.set_at or datetime.now(UTC),
        bytes=len(jpeg),
        width=width,
        height=height,
    )
    return json_response(answer)


async def list_references(request: web.Request) -> web.StreamResponse:
    camera = await granted_camera(request, request[PRINCIPAL])
    in_adapter = request.app[SETTINGS].network_by_id[camera.network].mode == "edge"
    items = await _store(request).listed(camera.id, in_adapter)
    return json_response(References(id=camera.id, items=items))


async def delete_reference(request: web.Request) -> web.StreamResponse:
    who = request[PRINCIPAL]
    camera = await granted_camera(request, who)
    period = _period(request)
    edge = _edge(request, camera)
    if edge is not None:
        existed = (await _at_edge(request, camera, edge, period, "delete")).existed
        existed = await _store(request).delete(camera.id, period) or existed
    else:
        existed = await _store(request).delete(camera.id, period)
    if not existed:
        raise NotFound(f"camera {camera.id} has no {period} reference")
    await audit_done(request, "camera.reference.delete", camera, 204, {"period": period})
    return web.Response(status=204)


ENDPOINTS = [
    Endpoint(
        "PUT",
        "/api/v1/cameras/{id}/reference",
        accept_reference,
        "Accept the camera's picture now as its quality reference",
        "camera.reference",
        Permission.write_cameras,
        network=camera_network,
        path_params=CameraPath,
        response=ReferenceAccepted,
        audit_failures=True,
        errors=(404, 409),
    ),
    Endpoint(
        "PUT",
        "/api/v1/cameras/{id}/references/{period}",
        upload_reference,
        "Upload a JPEG as the camera's quality reference by day or by night",
        "camera.reference.upload",
        Permission.write_cameras,
        network=camera_network,
        path_params=ReferencePath,
        body_types=("image/jpeg",),
        response=ReferenceAccepted,
        audit_failures=True,
        errors=(404, 409, 413, 415, 422),
    ),
    Endpoint(
        "GET",
        "/api/v1/cameras/{id}/references",
        list_references,
        "The camera's quality references: period, when set, by whom, from where",
        "camera.reference.list",
        Permission.write_cameras,
        network=camera_network,
        path_params=CameraPath,
        response=References,
        errors=(404,),
    ),
    Endpoint(
        "DELETE",
        "/api/v1/cameras/{id}/references/{period}",
        delete_reference,
        "Delete the camera's quality reference of a period",
        "camera.reference.delete",
        Permission.write_cameras,
        network=camera_network,
        path_params=ReferencePath,
        status=204,
        audit_failures=True,
        errors=(404, 422),
    ),
]
