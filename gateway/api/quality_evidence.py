"""GET /api/v1/cameras/{id}/quality/evidence: the small picture that made the camera's verdict
suspect or faulty (docs/quality.md, "Evidence thumbnails"), for those who may take a snapshot of
the camera, on the same terms: its network granted, a reason where the network requires one,
the reader's watermark burnt in where it asks for one; every read audited (`camera.evidence`),
granted or refused, as a snapshot is."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from aiohttp import web
from pydantic import ConfigDict, Field

from adapters.imaging import render, watermark_lines

from ..errors import FieldError, Forbidden, Invalid, NotFound
from ..keys import PRINCIPAL, SETTINGS, SNAPSHOTS
from ..models import CameraPath, Model, Reason
from ..policy import Permission
from ..quality import QUALITY
from .endpoint import Endpoint, audit_done
from .http import cached_query
from .quality import granted_camera
from .scope import camera_network


class EvidenceQuery(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: Reason | None = Field(
        None,
        description="Incident or ticket reference (required where the network requires one for "
        "snapshots)",
    )


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


async def get_evidence(request: web.Request) -> web.StreamResponse:
    started = time.perf_counter()
    who = request[PRINCIPAL]
    params = cached_query(request, EvidenceQuery)
    camera = await granted_camera(request, who)
    net = request.app[SETTINGS].network_by_id[camera.network]
    if net.mode == "edge":
        raise Forbidden(
            f"camera {camera.id}: the {camera.network} network's pictures are judged in its own "
            "adapter and do not leave the network; no quality evidence is kept"
        )
    if net.sharing.reason_required and not params.reason:
        raise Invalid(
            [
                FieldError(
                    "reason", f"network {camera.network} requires an incident or ticket reference"
                )
            ]
        )
    evidence = await request.app[QUALITY].evidence(camera.id)
    if evidence is None:
        raise NotFound(
            f"camera {camera.id} has no quality evidence: its picture is not judged suspect or "
            "faulty, or the evidence has expired"
        )
    jpeg = evidence.jpeg
    if net.sharing.watermark and evidence.width > 0:  # who looked, as on any snapshot
        marks = watermark_lines(who.actor, camera.id, evidence.taken_at)
        loop = asyncio.get_running_loop()
        jpeg = await loop.run_in_executor(
            request.app[SNAPSHOTS].executor,
            render,
            jpeg,
            evidence.width,
            evidence.width,
            marks,
            80,
        )
    await audit_done(
        request,
        "camera.evidence",
        camera,
        200,
        {
            "reason": params.reason or "",
            "latency_ms": f"{(time.perf_counter() - started) * 1000:.1f}",
            "source": "quality-evidence",
            "image": evidence.status,
            "failing": evidence.failing,
            "bytes": str(len(jpeg)),
        },
    )
    return web.Response(
        body=jpeg,
        content_type="image/jpeg",
        headers={
            "X-Snapshot-Taken-At": _iso(evidence.taken_at),
            "X-Quality-Verdict": evidence.status,
            "X-Quality-Failing": evidence.failing,
            "Cache-Control": "no-store",
        },
    )


ENDPOINTS = [
    Endpoint(
        "GET",
        "/api/v1/cameras/{id}/quality/evidence",
        get_evidence,
        "The small picture that made the camera's quality verdict suspect or faulty",
        "camera.evidence",
        Permission.snapshot,
        network=camera_network,
        path_params=CameraPath,
        query=EvidenceQuery,
        produces="image/jpeg",
        audit_failures=True,
        errors=(403, 404),
    ),
]
