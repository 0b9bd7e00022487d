"""Pure functions on camera records: build from input, patch, merge discovery, check against config.

No I/O here; `registry.py` stores what these functions decide.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import asdict
from datetime import datetime
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit

from adapters.base import Discovered
from adapters.uris import uri_port

from .errors import FieldError
from .models import (
    ADMIN_FIELDS,
    NOT_BUILT,
    Camera,
    CameraCreate,
    CameraPatch,
    CameraSource,
    CameraStatus,
    Capabilities,
    Channel,
    DeviceInfo,
    Location,
    OnvifInfo,
    StreamProfile,
)
from .settings import Settings

# Fields that exist on the input models but are not record fields.
_INPUT_ONLY = {"stream_uri", "credentials"}


def new_camera_id(network: str) -> str:
    """Ids are scoped by network (`police.3fa2c81b09de`): one network's ids can never collide
    with another's, so registering an id tells an admin nothing about other networks."""
    return f"{network}.{secrets.token_hex(6)}"


def id_problem(cam_id: str, network: str) -> str | None:
    if not cam_id.startswith(f"{network}."):
        return f"must begin with '{network}.' (camera ids are scoped by network)"
    return None


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
        id=body.id or new_camera_id(body.network),
        profiles=profiles,
        source=source,
        has_credentials=body.credentials is not None,
        lifecycle_since=now,
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
    for required in ("name", "category", "address", "lifecycle"):
        if required in changes and changes[required] is None:
            changes.pop(required)  # checked by `patch_errors`; never store a hole
    if changes.get("lifecycle", camera.lifecycle) != camera.lifecycle:
        changes["lifecycle_since"] = now
    for text in ("department", "carrier", "project"):
        if text in changes and changes[text] is None:
            changes[text] = ""
    if "tags" in changes and changes["tags"] is None:
        changes["tags"] = []
    if "stream_uri" in patch.model_fields_set:
        changes["profiles"] = [_single_profile(patch.stream_uri)] if patch.stream_uri else []
    if changes.get("address", camera.address) != camera.address:
        # What discovery read at the old address does not hold at the new one: it reads the
        # device again there. URIs name the camera's own address, so old ones go too unless
        # this patch gives new ones.
        changes.update(device=None, onvif=None, channel=None)
        changes.setdefault("snapshot_uri", None)
        changes.setdefault("profiles", [])
    data = camera.model_dump() | changes | {"updated_at": now, "rev": camera.rev + 1}
    patched = Camera.model_validate(data)
    if "credentials" in patch.model_fields_set:
        has = patch.credentials is not None
    else:
        has = camera.has_credentials and credentials_follow(camera, patched)
    return patched.model_copy(update={"has_credentials": has})


def credentials_follow(old: Camera, new: Camera) -> bool:
    """Whether a camera's own credentials stay with a changed record: only while it is the
    same address and no URI points at an origin it did not use before, as browsers drop
    authorisation on a cross-origin redirect. Otherwise they go, unless new ones come along."""
    return old.address == new.address and uri_origins(new) <= uri_origins(old)


def uri_origins(camera: Camera) -> set[tuple[str, str, int]]:
    return {_origin(uri) for _, uri in _uris(camera)}


def _origin(uri: str) -> tuple[str, str, int]:
    parts = urlsplit(uri)
    return parts.scheme, parts.hostname or "", uri_port(uri) or 0


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


class NetworkMismatch(ValueError):
    """Discovery of one network found a record of another: never merged."""


def merge_discovered(existing: Camera, discovered: Camera, now: datetime) -> Camera:
    """Discovery refreshes what the camera says about itself and never what an admin decided:
    admin-owned fields keep their value, and are filled from discovery only when empty. A
    camera found at another address keeps no per-camera credentials of the old one."""
    if existing.network != discovered.network:
        raise NetworkMismatch(
            f"camera {existing.id} is on another network; discovery of network "
            f"{discovered.network} does not merge into it"
        )
    data = discovered.model_dump()
    old = existing.model_dump()
    for field in ADMIN_FIELDS:
        if old[field] not in (None, "", []):
            data[field] = old[field]
    data["snapshot_note"] = old["snapshot_note"]  # the snapshot path's to change, not discovery's
    data["image"] = old["image"]  # the quality diagnosis's (gateway/quality.py)
    kept = existing.has_credentials and existing.address == discovered.address
    data.update(
        id=existing.id,
        source=existing.source,
        has_credentials=kept or discovered.has_credentials,
        created_at=existing.created_at,
        updated_at=now,
        rev=existing.rev + 1,
    )
    return Camera.model_validate(data)


def discovered_id(d: Discovered, key: bytes) -> str:
    """A stable id for a camera nobody registered: from its strongest identity, so the same
    camera found twice (even by two gateways at once) gets the same record. Keyed with the
    deployment's secret, so nobody outside can compute the id a camera will get."""
    identity = (
        (f"edge|{d.ref}" if d.ref else "")
        or d.endpoint_reference
        or (f"{d.serial}|{d.mac}" if d.serial and d.mac else "")
        or f"{d.address}|{d.port or ''}"
    )
    if d.channels > 1 and d.channel and not d.ref:  # a ref is already the channel's own
        identity = f"{identity}|ch|{d.channel}"
    message = f"{d.network}|{identity}".encode()
    digest = hmac.new(key, message, hashlib.sha256).hexdigest()[:16]
    return f"{d.network}.{digest}"


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
    # Never the address: a name is shared where an address may not be.
    fallback_name = " ".join(x for x in (d.vendor, d.model, cam_id) if x)
    camera = Camera(
        id=cam_id,
        network=d.network,
        name=(d.name or fallback_name)[:200],
        category=settings.discovered_category,
        address=ip_address(d.address) if d.address else None,
        location=_location(d),
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
        notes=[n[:500] for n in d.notes[:16]],
        status=CameraStatus.online,
        last_seen=now,
        source=CameraSource.discovered,
        created_at=now,
        updated_at=now,
    )
    ports = sorted({p for p in map(uri_port, (u for _, u in _uris(camera))) if p})
    device = DeviceInfo(address=camera.address, ports=ports, ref=d.ref, port=d.port)
    channel = (
        Channel(token=d.channel, index=d.channel_index, of=d.channels)
        if d.channel and d.channels > 1
        else None
    )
    return camera.model_copy(update={"device": device, "channel": channel})


def _location(d: Discovered) -> Location | None:
    """Where the camera's own side says it is (an edge inventory, possibly coarsened): filled
    into the record only where an admin has not set a location."""
    if d.lat is None or d.lon is None:
        return None
    return Location(lat=d.lat, lon=d.lon, address=(d.location or None) and d.location[:200])


def check_camera(settings: Settings, camera: Camera) -> list[FieldError]:
    """Rules that need the configuration: a known network and category, an id scoped by the
    network, the address inside the network's ranges, and every URI on the camera's own
    address, on a port its device advertised or the network allows (the gateway contacts
    nothing else, and sends credentials nowhere else)."""
    network = settings.network_by_id.get(camera.network)
    if network is None:
        return [FieldError("network", "is not a configured network")]
    errors: list[FieldError] = []
    if problem := id_problem(camera.id, camera.network):
        errors.append(FieldError("id", problem))
    category = settings.category_by_id.get(camera.category)
    if category is None:
        errors.append(FieldError("category", "is not a configured category"))
    elif category.network not in (None, camera.network):
        errors.append(FieldError("category", f"belongs to network {category.network!r}"))
    if camera.address is None:
        # Only an edge network's owner may withhold it; a camera not built yet has none; one
        # reached through a GB/T 28181 lower platform is reached by its code, not an address.
        if network.mode != "edge" and camera.lifecycle not in NOT_BUILT and not camera.gb28181:
            errors.append(
                FieldError(
                    "address",
                    f"is required on network {network.id!r} once a camera is built "
                    f"(lifecycle {camera.lifecycle.value})",
                )
            )
    elif not network.contains(camera.address):
        errors.append(FieldError("address", f"is outside the CIDRs of network {network.id!r}"))
    ports = camera_ports(camera, network.access.camera_ports)
    for field, uri in _uris(camera):
        if problem := _uri_problem(camera, uri, ports, network.id):
            errors.append(FieldError(field, problem))
    return errors


def camera_ports(camera: Camera, configured: tuple[int, ...]) -> frozenset[int]:
    """Ports of the camera's own address the gateway may use: those its device advertised to
    discovery at that address, and those the network's config allows."""
    advertised = camera.device.ports if device_here(camera) and camera.device else []
    return frozenset((*advertised, *configured))


def device_here(camera: Camera) -> bool:
    """Discovery found and read this camera's device at the record's address (so the
    network's credentials may be offered to it)."""
    return (
        camera.address is not None
        and camera.device is not None
        and camera.device.address == camera.address
    )


def _uris(camera: Camera) -> list[tuple[str, str]]:
    found = [(f"profiles[{i}].stream_uri", p.stream_uri) for i, p in enumerate(camera.profiles)]
    if camera.snapshot_uri:
        found.append(("snapshot_uri", camera.snapshot_uri))
    if camera.onvif and camera.onvif.device_uri:
        found.append(("onvif.device_uri", camera.onvif.device_uri))
    if camera.onvif:
        found += [(f"onvif.services[{k}]", v) for k, v in camera.onvif.services.items()]
    return [(f, u) for f, u in found if u]


def _uri_problem(camera: Camera, uri: str, ports: frozenset[int], network: str) -> str | None:
    host = urlsplit(uri).hostname or ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "must name the camera by IP address"
    if address != camera.address:
        return "must name the camera's own address"
    port = uri_port(uri)
    if port is None:
        return "has no valid port"
    if port not in ports:
        return (
            f"port {port} is neither advertised by the camera's device nor allowed by "
            f"network {network!r} (access.camera_ports)"
        )
    return None


def input_field(field: str) -> str:
    """Map a record field path back to the input field an admin sent."""
    return "stream_uri" if field.startswith("profiles[") else field
