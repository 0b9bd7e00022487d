"""/api/v1/cameras: the list the dashboard polls, one camera, and the admin's changes."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from adapters.uris import UriCredentials

from ..audit import AuditEvent
from ..catalog import ListQuery, decode_cursor, shared_view
from ..errors import CamgwError, Conflict, FieldError, Forbidden, Invalid, NotFound
from ..importer import (
    Reporter,
    Row,
    RowError,
    answer,
    collector_paused,
    parse_csv,
    parse_json,
    release,
    validate_rows,
    yielding,
)
from ..keys import AUDIT, CATALOG, NETWORK, PRINCIPAL, REGISTRY, REQUEST_ID, SETTINGS
from ..models import (
    Camera,
    CameraCreate,
    CameraCredentials,
    CameraPage,
    CameraPatch,
    CameraPath,
    CameraQuery,
    CameraSource,
    ImportResult,
    Lifecycle,
    LifecycleHistory,
    SharedCamera,
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
from .scope import body_networks, camera_network

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
        carrier=params.carrier,
        lifecycle=params.lifecycle.value if params.lifecycle else None,
        image=params.image.value if params.image else None,
        q=params.q,
        limit=params.limit,
        cursor=params.cursor,
        near=params.point(),
        radius_m=params.radius,
    )


async def get_camera(request: web.Request) -> web.StreamResponse:
    who = request[PRINCIPAL]
    raw, data = await _visible_raw(request, who, "camera.get")
    if who.full_records:
        return raw_json(raw)
    allowed = request.app[SETTINGS].network_by_id[data["network"]].sharing.share
    return raw_json(shared_view(raw, data, frozenset(allowed)))


async def create_camera(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    who = request[PRINCIPAL]
    body = await read_model(request, CameraCreate, settings.server.max_body_bytes)
    request[NETWORK] = body.network
    _require_grant(who, body.network)
    camera = new_camera(body, settings, datetime.now(UTC), CameraSource.registered)
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
    """Up to 100,000 rows. Decoding, parsing, validation, the records and the answer are built
    in a worker thread, kept out of the event loop's way (see gateway.importer): the loop only
    reads the body and awaits the pipelined Redis writes, so health checks and dashboards keep
    answering meanwhile (security review finding 12: /healthz took 11 s during an import)."""
    settings = request.app[SETTINGS]
    who = request[PRINCIPAL]
    raw = await read_body(
        request, settings.server.max_import_bytes, (*CSV_TYPES, "application/json")
    )
    as_json = request.content_type == "application/json"
    created_event = _change(request, "camera.create", "", "", via="import")  # per row: replace
    Create = tuple[Camera, UriCredentials | None, AuditEvent | None]  # what create_many takes
    reporter = Reporter(settings, who.sees)  # words bad rows for the file's reader

    def prepare() -> tuple[int, list[Create], list[Row], list[RowError]]:
        with collector_paused():
            rows = parse_json(raw) if as_json else parse_csv(raw, settings)
            good, bad = validate_rows(rows, reporter)
            now = datetime.now(UTC)
            batch: list[Create] = []
            batch_rows: list[Row] = []
            for row, body in yielding(good):
                try:
                    _require_grant(who, body.network)
                    camera = new_camera(body, settings, now, CameraSource.imported)
                    _check(settings, camera)
                except CamgwError as exc:
                    bad.append(reporter.refused(row, exc))
                    continue
                audit = replace(created_event, target=camera.id, network=camera.network)
                batch.append((camera, _creds(body.credentials), audit))
                batch_rows.append(row)
            count = len(rows)
            release(good)
            release(rows)
            return count, batch, batch_rows, bad

    count, batch, batch_rows, bad = await asyncio.to_thread(prepare)
    results = await request.app[REGISTRY].create_many(batch)

    def report() -> tuple[bytes, Counter[str], Counter[str], int]:
        ids: list[str] = []
        created: Counter[str] = Counter()
        version = 0
        pairs = zip(batch, batch_rows, results, strict=True)
        for (camera, _, _), row, result in yielding(pairs):
            if isinstance(result, CamgwError):
                bad.append(reporter.refused(row, result))
            elif isinstance(result, Exception):
                raise result
            else:
                ids.append(camera.id)
                created[camera.network] += 1
                version = max(version, result)
        release(batch)
        release(batch_rows)
        failed = Counter(_row_network(e.row, settings.network_by_id) for e in bad)
        return answer(ids, bad), created, failed, version

    body, created, failed, version = await asyncio.to_thread(report)
    if version:
        request.app[CATALOG].note_version(version)
    # One entry per network the rows name, so each network's auditor sees what came in.
    for network in sorted(set(created) | set(failed)) or [""]:
        await request.app[AUDIT].append(
            AuditEvent(
                actor=who.actor,
                role=who.role.value,
                action="camera.import",
                target=f"{count} rows",
                network=network,
                outcome="ok" if created[network] else "invalid",
                status=200,
                detail=f"created {created[network]}, failed {failed[network]}",
                request_id=request.get(REQUEST_ID, ""),
            )
        )
    return raw_json(body)


def _row_network(row: Row, known: Mapping[str, object]) -> str:
    """The configured network a row names, or none."""
    network = row.data.get("network") if isinstance(row.data, dict) else None
    return network if isinstance(network, str) and network in known else ""


# -- helpers ---------------------------------------------------------------------------------


async def get_lifecycle(request: web.Request) -> web.StreamResponse:
    who = request[PRINCIPAL]
    _, data = await _visible_raw(request, who, "camera.lifecycle.get")
    changes = await request.app[REGISTRY].lifecycle_changes(data["id"])
    lifecycle = data.get("lifecycle") or Lifecycle.in_service.value
    return json_response(LifecycleHistory(id=data["id"], lifecycle=lifecycle, changes=changes))


async def _visible_raw(
    request: web.Request, who: Principal, action: str
) -> tuple[bytes, dict[str, Any]]:
    """The record, or 404 alike for a missing camera and one in a network the caller may not
    see: the same body, headers and work (both are audited, the hidden one as a refusal under
    its network so that network's auditor sees the probe), so existence does not leak."""
    cam_id = request.match_info["id"]
    raw = await request.app[REGISTRY].get_raw(cam_id) if _ID.match(cam_id) else None
    data = orjson.loads(raw) if raw is not None else None
    if data is not None and who.sees(data["network"]):
        request[NETWORK] = data["network"]
        return raw or b"", data
    missing = NotFound(f"camera {cam_id[:128]} not found")
    if data is None:
        await audit_refusal(request, action, missing, cam_id[:128])
    else:
        hidden = Forbidden("network not granted")
        await audit_refusal(request, action, hidden, cam_id, data["network"])
    missing.audited = True  # once; the caller sees a plain 404 either way
    raise missing


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
        conditional=True,
    ),
    Endpoint(
        "POST",
        "/api/v1/cameras",
        create_camera,
        "Register a camera",
        "camera.create",
        Permission.write_cameras,
        network=body_networks,
        body=CameraCreate,
        response=Camera,
        status=201,
        audit_failures=True,
        errors=(409,),
    ),
    Endpoint(
        "POST",
        "/api/v1/cameras/import",
        import_cameras,
        "Import cameras from CSV or a JSON array; bad rows reported, good rows kept",
        "camera.import",
        Permission.write_cameras,
        network=body_networks,
        body=CameraCreate,
        body_rows=True,
        body_types=(*CSV_TYPES, "application/json"),
        response=ImportResult,
        audit_failures=True,
    ),
    Endpoint(
        "GET",
        "/api/v1/cameras/{id}",
        get_camera,
        "One camera (non-admins: the fields its network shares)",
        "camera.get",
        Permission.read_cameras,
        network=camera_network,
        path_params=CameraPath,
        response=SharedCamera,
        errors=(404,),
    ),
    Endpoint(
        "PATCH",
        "/api/v1/cameras/{id}",
        patch_camera,
        "Change admin-owned fields (JSON merge patch)",
        "camera.update",
        Permission.write_cameras,
        network=camera_network,
        path_params=CameraPath,
        body=CameraPatch,
        body_types=PATCH_TYPES,
        response=Camera,
        audit_failures=True,
        errors=(404, 409),
    ),
    Endpoint(
        "DELETE",
        "/api/v1/cameras/{id}",
        delete_camera,
        "Remove a camera",
        "camera.delete",
        Permission.write_cameras,
        network=camera_network,
        path_params=CameraPath,
        status=204,
        audit_failures=True,
        errors=(404,),
    ),
    Endpoint(
        "GET",
        "/api/v1/cameras/{id}/lifecycle",
        get_lifecycle,
        "A camera's lifecycle changes, with when and who (admins and auditors)",
        "camera.lifecycle.get",
        Permission.read_history,
        network=camera_network,
        path_params=CameraPath,
        response=LifecycleHistory,
        errors=(404,),
    ),
]
