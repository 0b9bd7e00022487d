"""/api/v1/cameras: the list the dashboard polls, one camera, and the admin's changes."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from adapters.uris import UriCredentials

from ..audit import AuditEvent
from ..catalog import ListQuery, decode_cursor, redact
from ..errors import CamgwError, Conflict, FieldError, Forbidden, Invalid, NotFound
from ..importer import Row, RowError, parse_csv, parse_json, validate_rows
from ..keys import AUDIT, CATALOG, PRINCIPAL, REGISTRY, REQUEST_ID, SETTINGS
from ..models import (
    Camera,
    CameraCreate,
    CameraCredentials,
    CameraPage,
    CameraPatch,
    CameraQuery,
    CameraSource,
    ImportResult,
    ImportRowError,
)
from ..policy import Permission, Principal
from ..records import (
    apply_patch,
    check_camera,
    input_field,
    new_camera,
    patch_errors,
    with_category_defaults,
)
from ..registry import CredentialChange
from ..settings import Settings
from .endpoint import Endpoint, audit_refusal
from .http import (
    cached_parse,
    cached_query,
    conditional,
    json_response,
    raw_json,
    read_body,
    read_model,
)

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_PATCH_RETRIES = 5
CSV_TYPES = ("text/csv", "application/csv")
PATCH_TYPES = ("application/json", "application/merge-patch+json")  # RFC 7396


async def list_cameras(request: web.Request) -> web.StreamResponse:
    catalog = request.app[CATALOG]
    query = cached_parse(request, ListQuery, lambda: _list_query(request))
    body = await catalog.camera_list(request[PRINCIPAL], query)
    return await conditional(request, catalog, body)


def _list_query(request: web.Request) -> ListQuery:
    params = cached_query(request, CameraQuery)
    if params.cursor:
        try:
            decode_cursor(params.cursor)
        except ValueError as exc:
            raise Invalid([FieldError("cursor", "is not a cursor this API returned")]) from exc
    return ListQuery(
        network=params.network,
        status=params.status.value if params.status else None,
        category=params.category,
        department=params.department,
        q=params.q,
        limit=params.limit,
        cursor=params.cursor,
    )


async def get_camera(request: web.Request) -> web.StreamResponse:
    who = request[PRINCIPAL]
    raw, data = await _visible_raw(request, who, "camera.get")
    if who.full_records:
        return raw_json(raw)
    hidden = request.app[SETTINGS].network_by_id[data["network"]].sharing.redact
    return raw_json(redact(raw, data, hidden))


async def create_camera(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    who = request[PRINCIPAL]
    body = await read_model(request, CameraCreate, settings.server.max_body_bytes)
    _require_grant(who, body.network)
    camera = new_camera(body, settings, datetime.now(UTC), CameraSource.registered)
    _check(settings, camera)
    audit = _change(request, "camera.create", camera.id, camera.network)
    version = await request.app[REGISTRY].create(camera, _creds(body.credentials), audit)
    request.app[CATALOG].note_version(version)
    location = request.app.router["camera_get"].url_for(id=camera.id)
    return json_response(camera, status=201, headers={"Location": str(location)})


async def patch_camera(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    registry = request.app[REGISTRY]
    who = request[PRINCIPAL]
    patch = await read_model(request, CameraPatch, settings.server.max_body_bytes, PATCH_TYPES)
    if errors := patch_errors(patch):
        raise Invalid(errors)
    change = CredentialChange.keep
    if "credentials" in patch.model_fields_set:
        change = CredentialChange.set if patch.credentials else CredentialChange.clear
    for _ in range(_PATCH_RETRIES):
        current = await _visible_camera(request, who, "camera.update")
        updated = apply_patch(current, patch, datetime.now(UTC))
        if "category" in patch.model_fields_set:
            updated = with_category_defaults(updated, settings)
        _require_grant(who, updated.network)
        _check(settings, updated)
        audit = _change(
            request,
            "camera.update",
            updated.id,
            updated.network,
            fields=",".join(sorted(patch.model_fields_set)),
        )
        try:
            version = await registry.replace(
                updated, current.rev, change, _creds(patch.credentials), audit
            )
        except Conflict as exc:
            if exc.extra.get("field") == "rev":
                continue  # someone else changed it between our read and write: re-apply
            raise
        request.app[CATALOG].note_version(version)
        return json_response(updated)
    raise Conflict("the camera keeps changing; retry later", field="rev")


async def delete_camera(request: web.Request) -> web.StreamResponse:
    who = request[PRINCIPAL]
    camera = await _visible_camera(request, who, "camera.delete")
    audit = _change(request, "camera.delete", camera.id, camera.network)
    version = await request.app[REGISTRY].delete(camera.id, audit)
    request.app[CATALOG].note_version(version)
    return web.Response(status=204)


async def import_cameras(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    who = request[PRINCIPAL]
    raw = await read_body(
        request, settings.server.max_import_bytes, (*CSV_TYPES, "application/json")
    )
    rows = (
        parse_json(raw) if request.content_type == "application/json" else parse_csv(raw, settings)
    )
    good, bad = validate_rows(rows)
    now = datetime.now(UTC)
    batch: list[tuple[Camera, UriCredentials | None, AuditEvent | None]] = []
    batch_rows: list[Row] = []
    for row, body in good:
        try:
            _require_grant(who, body.network)
            camera = new_camera(body, settings, now, CameraSource.imported)
            _check(settings, camera)
        except CamgwError as exc:
            bad.append(_row_error(row, exc))
            continue
        audit = _change(request, "camera.create", camera.id, camera.network, via="import")
        batch.append((camera, _creds(body.credentials), audit))
        batch_rows.append(row)
    results = await request.app[REGISTRY].create_many(batch)
    ids: list[str] = []
    for (camera, _, _), row, result in zip(batch, batch_rows, results, strict=True):
        if isinstance(result, CamgwError):
            bad.append(_row_error(row, result))
        elif isinstance(result, Exception):
            raise result
        else:
            ids.append(camera.id)
            request.app[CATALOG].note_version(result)
    bad.sort(key=lambda e: e.row.number)
    await request.app[AUDIT].append(
        AuditEvent(
            actor=who.actor,
            role=who.role.value,
            action="camera.import",
            target=f"{len(rows)} rows",
            outcome="ok" if ids else "invalid",
            status=200,
            detail=f"created {len(ids)}, failed {len(bad)}",
            request_id=request.get(REQUEST_ID, ""),
        )
    )
    return json_response(
        ImportResult(
            created=len(ids),
            failed=len(bad),
            ids=ids,
            errors=[
                ImportRowError(row=e.row.number, line=e.row.line, field=e.field, reason=e.reason)
                for e in bad
            ],
        )
    )


# -- helpers ---------------------------------------------------------------------------------


async def _visible_raw(
    request: web.Request, who: Principal, action: str
) -> tuple[bytes, dict[str, Any]]:
    """The record, or 404 alike for a missing camera and one in a network the caller may not
    see (so existence does not leak); the second kind is audited as a refusal."""
    cam_id = request.match_info["id"]
    if not _ID.match(cam_id):
        raise NotFound("no such camera")
    missing = NotFound(f"camera {cam_id} not found")
    raw = await request.app[REGISTRY].get_raw(cam_id)
    if raw is None:
        raise missing
    data = orjson.loads(raw)
    if not who.sees(data["network"]):
        await audit_refusal(
            request, action, Forbidden("network not granted"), cam_id, data["network"]
        )
        missing.audited = True  # once, as the refusal it is; the caller sees a plain 404
        raise missing
    return raw, data


async def _visible_camera(request: web.Request, who: Principal, action: str) -> Camera:
    raw, _ = await _visible_raw(request, who, action)
    return Camera.model_validate_json(raw)


def _require_grant(who: Principal, network: str) -> None:
    if not who.sees(network):
        refusal = Forbidden(f"this token is not granted network {network!r}", field="network")
        refusal.audit_network = network  # the network's auditor sees the attempt
        raise refusal


def _check(settings: Settings, camera: Camera) -> None:
    errors = check_camera(settings, camera)
    if errors:
        raise Invalid([FieldError(input_field(e.field), e.message) for e in errors])


def _creds(creds: CameraCredentials | None) -> UriCredentials | None:
    return UriCredentials(creds.username, creds.password.get_secret_value()) if creds else None


def _change(
    request: web.Request, action: str, target: str, network: str, **extra: str
) -> AuditEvent:
    who = request[PRINCIPAL]
    return AuditEvent(
        actor=who.actor,
        role=who.role.value,
        action=action,
        target=target,
        network=network,
        outcome="ok",
        status=200,
        request_id=request.get(REQUEST_ID, ""),
        extra=extra,
    )


def _row_error(row: Row, exc: CamgwError) -> RowError:
    field = exc.extra.get("field")
    return RowError(row, str(field) if field else None, exc.detail)


ENDPOINTS = [
    Endpoint(
        "GET",
        "/api/v1/cameras",
        list_cameras,
        "List cameras (ETag/304, gzip)",
        "camera.list",
        Permission.read_cameras,
        query=CameraQuery,
        response=CameraPage,
    ),
    Endpoint(
        "POST",
        "/api/v1/cameras",
        create_camera,
        "Register a camera",
        "camera.create",
        Permission.write_cameras,
        body=CameraCreate,
        response=Camera,
        status=201,
        audit_failures=True,
    ),
    Endpoint(
        "POST",
        "/api/v1/cameras/import",
        import_cameras,
        "Import cameras from CSV or a JSON array; bad rows reported, good rows kept",
        "camera.import",
        Permission.write_cameras,
        body_types=(*CSV_TYPES, "application/json"),
        response=ImportResult,
        audit_failures=True,
    ),
    Endpoint(
        "GET",
        "/api/v1/cameras/{id}",
        get_camera,
        "One camera",
        "camera.get",
        Permission.read_cameras,
        response=Camera,
    ),
    Endpoint(
        "PATCH",
        "/api/v1/cameras/{id}",
        patch_camera,
        "Change admin-owned fields (JSON merge patch)",
        "camera.update",
        Permission.write_cameras,
        body=CameraPatch,
        body_types=PATCH_TYPES,
        response=Camera,
        audit_failures=True,
    ),
    Endpoint(
        "DELETE",
        "/api/v1/cameras/{id}",
        delete_camera,
        "Remove a camera",
        "camera.delete",
        Permission.write_cameras,
        status=204,
        audit_failures=True,
    ),
]
