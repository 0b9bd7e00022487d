"""Accountability (issue 12): a camera's status history, availability figures, the outage
report (docs/accountability.md). Computed by gateway/reports.py; declared here like every
other endpoint, so routing, tokens, refusal audits and the OpenAPI document follow."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from aiohttp import web

from ..keys import PRINCIPAL
from ..models import CameraPath
from ..policy import Permission
from ..report_models import (
    Availability,
    AvailabilityQuery,
    HistoryQuery,
    OutageQuery,
    OutageReport,
    ReportFormat,
    StatusHistoryPage,
)
from ..reports import ACCOUNTABILITY, CSV_TYPE, XLSX_TYPE, report_csv, report_xlsx
from .cameras import _visible_raw
from .endpoint import Endpoint
from .http import cached_query, json_response
from .scope import camera_network

_XLSX_IN_THREAD = 200  # rows from which the workbook is built in a worker thread


async def get_history(request: web.Request) -> web.StreamResponse:
    who = request[PRINCIPAL]
    query = cached_query(request, HistoryQuery)
    raw, _ = await _visible_raw(request, who, "camera.history.get")
    page = await request.app[ACCOUNTABILITY].camera_history(who, raw, query)
    return json_response(page)


async def get_availability(request: web.Request) -> web.StreamResponse:
    query = cached_query(request, AvailabilityQuery)
    answer = await request.app[ACCOUNTABILITY].availability(request[PRINCIPAL], query)
    return json_response(answer)


async def get_outages(request: web.Request) -> web.StreamResponse:
    query = cached_query(request, OutageQuery)
    report = await request.app[ACCOUNTABILITY].outages(request[PRINCIPAL], query)
    if query.format is ReportFormat.json:
        return json_response(report)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%MZ")
    if query.format is ReportFormat.csv:
        body, media_type = report_csv(report), f"{CSV_TYPE}; charset=utf-8"
    elif len(report.items) >= _XLSX_IN_THREAD:
        body, media_type = await asyncio.to_thread(report_xlsx, report), XLSX_TYPE
    else:
        body, media_type = report_xlsx(report), XLSX_TYPE
    name = f"outages-{stamp}.{query.format.value}"
    return web.Response(
        body=body,
        headers={
            "Content-Type": media_type,
            "Content-Disposition": f'attachment; filename="{name}"',
        },
    )


ENDPOINTS = [
    Endpoint(
        "GET",
        "/api/v1/cameras/{id}/history",
        get_history,
        "A camera's status changes, newest first (whoever may read the camera)",
        "camera.history.get",
        Permission.read_cameras,
        network=camera_network,
        path_params=CameraPath,
        query=HistoryQuery,
        response=StatusHistoryPage,
        errors=(404,),
    ),
    Endpoint(
        "GET",
        "/api/v1/availability",
        get_availability,
        "Share of time online and outages per camera, department, carrier, project or network "
        "over a day, a week or a month (granted networks only)",
        "availability.get",
        Permission.read_cameras,
        query=AvailabilityQuery,
        response=Availability,
    ),
    Endpoint(
        "GET",
        "/api/v1/reports/outages",
        get_outages,
        "Cameras down (offline or degraded) longer than a threshold, with their department, "
        "carrier, project and recent changes: JSON, CSV or XLSX",
        "report.outages",
        Permission.read_cameras,
        query=OutageQuery,
        response=OutageReport,
        also_produces=(CSV_TYPE, XLSX_TYPE),
    ),
]
