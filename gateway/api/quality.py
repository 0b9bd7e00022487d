"""PUT /api/v1/cameras/{id}/reference: an admin accepts the camera's picture now as the one it
should show, by day or by night as the network's clock says now; blur, occlusion and
displacement are judged against it from the next round of that period on."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from aiohttp import web
from pydantic import Field

from ..audit import AuditEvent
from ..errors import CamgwError, Conflict, NotFound
from ..keys import AUDIT, CATALOG, NETWORK, PRINCIPAL, REQUEST_ID
from ..models import CameraId, CameraPath, Model
from ..policy import Permission
from ..quality import QUALITY
from .endpoint import Endpoint
from .http import json_response
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


async def accept_reference(request: web.Request) -> web.StreamResponse:
    who = request[PRINCIPAL]
    cam_id = request.match_info["id"][:128]
    camera = await request.app[CATALOG].camera(cam_id)
    if camera is None or not who.sees(camera.network):
        raise NotFound(f"camera {cam_id} not found")
    request[NETWORK] = camera.network
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
    await request.app[AUDIT].append(
        AuditEvent(
            actor=who.actor,
            role=who.role.value,
            action="camera.reference",
            target=camera.id,
            network=camera.network,
            outcome="ok",
            status=200,
            request_id=request.get(REQUEST_ID, ""),
            extra={
                "bytes": str(len(frame.jpeg)),
                "source": frame.source,
                "period": answer.period,
            },
        )
    )
    return json_response(answer)


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
]
