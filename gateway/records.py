"""Pure functions on camera records: build from input, patch, merge discovery, check against config.

No I/O here; `registry.py` stores what these functions decide.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from dataclasses import asdict
from datetime import datetime
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit

from adapters.base import Discovered

from .errors import FieldError
from .models import (
    ADMIN_FIELDS,
    Camera,
    CameraCreate,
    CameraPatch,
    CameraSource,
    CameraStatus,
    Capabilities,
    OnvifInfo,
    StreamProfile,
)
from .settings import Settings

# Fields that exist on the input models but are not record fields.
_INPUT_ONLY = {"stream_uri", "credentials"}


def new_camera_id() -> str:
    return f"cam-{secrets.token_hex(6)}"


def new_camera(
    body: CameraCreate, settings: Settings, now: datetime, source: CameraSource
) -> Camera:
    """A registered (or imported) camera: defaults for department, carrier and project come
    from its category, so every record says who answers for it."""
    category = settings.category_by_id.get(body.category)
    data = body.model_dump(exclude=_INPUT_ONLY | {"id"})
    for field in ("department", "carrier", "project"):
        if data[field] is None:
            data[field] = getattr(category, field, "") if category else ""
    profiles = [_single_profile(body.stream_uri)] if body.stream_uri else []
    return Camera(
        **data,
        id=body.id or new_camera_id(),
        profiles=profiles,
        source=source,
        has_credentials=body.credentials is not None,
        created_at=now,
        updated_at=now,
    )


def _single_profile(stream_uri: str) -> StreamProfile:
    return StreamProfile(token="main", name="registered stream", stream_uri=stream_uri)


def apply_patch(camera: Camera, patch: CameraPatch, now: datetime) -> Camera:
    """JSON merge patch: only the fields present change; `null` clears an optional field."""
    changes: dict[str, Any] = {
        k: getattr(patch, k) for k in patch.model_fields_set if k not in _INPUT_ONLY
    }
    for required in ("name", "category", "address"):
        if required in changes and changes[required] is None:
            changes.pop(required)  # checked by `patch_errors`; never store a hole
    for text in ("department", "carrier", "project"):
        if text in changes and changes[text] is None:
            changes[text] = ""
    if "tags" in changes and changes["tags"] is None:
        changes["tags"] = []
    if "stream_uri" in patch.model_fields_set:
        changes["profiles"] = [_single_profile(patch.stream_uri)] if patch.stream_uri else []
    if "credentials" in patch.model_fields_set:
        changes["has_credentials"] = patch.credentials is not None
    data = camera.model_dump() | changes | {"updated_at": now, "rev": camera.rev + 1}
    return Camera.model_validate(data)


def with_category_defaults(camera: Camera, settings: Settings) -> Camera:
    """Empty responsibility fields take the category's: when an admin classifies a discovered
    camera, who answers for it should not stay blank if the taxonomy knows."""
    category = settings.category_by_id.get(camera.category)
    if category is None:
        return camera
    fill = {
        f: getattr(category, f)
        for f in ("department", "carrier", "project")
        if not getattr(camera, f) and getattr(category, f)
    }
    return camera.model_copy(update=fill) if fill else camera


def patch_errors(patch: CameraPatch) -> list[FieldError]:
    return [
        FieldError(f, "may not be null")
        for f in ("name", "category", "address")
        if f in patch.model_fields_set and getattr(patch, f) is None
    ]


def merge_discovered(existing: Camera, discovered: Camera, now: datetime) -> Camera:
    """Discovery refreshes what the camera says about itself and never what an admin decided:
    admin-owned fields keep their value, and are filled from discovery only when empty."""
    data = discovered.model_dump()
    old = existing.model_dump()
    for field in ADMIN_FIELDS:
        if old[field] not in (None, "", []):
            data[field] = old[field]
    data.update(
        id=existing.id,
        network=existing.network,
        source=existing.source,
        has_credentials=existing.has_credentials or discovered.has_credentials,
        created_at=existing.created_at,
        updated_at=now,
        rev=existing.rev + 1,
    )
    return Camera.model_validate(data)


def discovered_id(d: Discovered) -> str:
    """A stable id for a camera nobody registered: from its strongest identity, so the same
    camera found twice (even by two gateways at once) gets the same record."""
    identity = d.endpoint_reference or (f"{d.serial}|{d.mac}" if d.serial and d.mac else "")
    key = f"{d.network}|{identity or d.address}"
    return f"{d.network}-{hashlib.blake2b(key.encode(), digest_size=6).hexdigest()}"


def camera_from_discovered(d: Discovered, settings: Settings, now: datetime, cam_id: str) -> Camera:
    """Normalise what a camera said about itself; raises pydantic's ValidationError when the
    camera sent something the record cannot hold."""
    onvif = None
    if not d.rtsp_only:
        onvif = OnvifInfo(
            device_uri=d.device_uri,
            endpoint_reference=d.endpoint_reference,
            services=d.services,
            clock_offset_s=d.clock_offset_s,
        )
    fallback_name = " ".join(x for x in (d.vendor, d.model, d.address) if x)
    return Camera(
        id=cam_id,
        network=d.network,
        name=(d.name or fallback_name)[:200],
        category=settings.discovered_category,
        address=ip_address(d.address),
        vendor=d.vendor,
        model=d.model or d.hardware,  # the ONVIF hardware scope names the model too
        firmware=d.firmware,
        serial=d.serial,
        mac=d.mac,
        hardware_id=d.hardware_id,
        onvif=onvif,
        profiles=[StreamProfile(**asdict(p)) for p in d.profiles],
        snapshot_uri=d.snapshot_uri,
        capabilities=Capabilities(ptz=d.ptz, audio=d.audio, events=d.events),
        status=CameraStatus.online,
        last_seen=now,
        source=CameraSource.discovered,
        created_at=now,
        updated_at=now,
    )


def check_camera(settings: Settings, camera: Camera) -> list[FieldError]:
    """Rules that need the configuration: known network and category, and every address the
    record names inside the network's ranges (the gateway never contacts anything else)."""
    network = settings.network_by_id.get(camera.network)
    if network is None:
        return [FieldError("network", "is not a configured network")]
    errors: list[FieldError] = []
    category = settings.category_by_id.get(camera.category)
    if category is None:
        errors.append(FieldError("category", "is not a configured category"))
    elif category.network not in (None, camera.network):
        errors.append(FieldError("category", f"belongs to network {category.network!r}"))
    if not network.contains(camera.address):
        errors.append(FieldError("address", f"is outside the CIDRs of network {network.id!r}"))
    for field, uri in _uris(camera):
        problem = _host_problem(network.contains, uri)
        if problem:
            errors.append(FieldError(field, problem))
    return errors


def _uris(camera: Camera) -> list[tuple[str, str]]:
    found = [(f"profiles[{i}].stream_uri", p.stream_uri) for i, p in enumerate(camera.profiles)]
    if camera.snapshot_uri:
        found.append(("snapshot_uri", camera.snapshot_uri))
    if camera.onvif and camera.onvif.device_uri:
        found.append(("onvif.device_uri", camera.onvif.device_uri))
    return [(f, u) for f, u in found if u]


def _host_problem(contains: Any, uri: str) -> str | None:
    host = urlsplit(uri).hostname or ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "must name the camera by IP address"
    return None if contains(address) else "names a host outside the network's CIDRs"


def input_field(field: str) -> str:
    """Map a record field path back to the input field an admin sent."""
    return "stream_uri" if field.startswith("profiles[") else field
