"""Pydantic models at the API and registry boundary: the normalised camera record and its inputs.

Every model forbids unknown fields. Text is length-bounded and free of control characters;
URIs never carry credentials (they are refused on input and stripped by adapters on discovery).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyAddress,
    SecretStr,
    StringConstraints,
)

from adapters.uris import has_credentials

_CONTROL = {chr(c) for c in range(32)} - {"\t"} | {"\x7f"}


def _no_control_chars(value: str) -> str:
    if any(ch in _CONTROL for ch in value):
        raise ValueError("must not contain control characters")
    return value


def _uri_without_credentials(value: str) -> str:
    try:
        parts = urlsplit(value)
    except ValueError:
        # urlsplit's own message quotes the netloc, and with it any password: never pass it on.
        raise ValueError("is not a valid URI") from None
    if parts.scheme not in {"rtsp", "rtsps", "http", "https"}:
        raise ValueError("scheme must be rtsp, rtsps, http or https")
    if not parts.hostname:
        raise ValueError("must name a host")
    if has_credentials(value):
        # Say what is wrong without repeating the value: it holds a password.
        raise ValueError("must not contain credentials; send them in the `credentials` field")
    return value


_Clean = AfterValidator(_no_control_chars)


def _text(max_length: int, min_length: int = 0) -> StringConstraints:
    return StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length)


Text32 = Annotated[str, _text(32), _Clean]
Text100 = Annotated[str, _text(100), _Clean]
Text200 = Annotated[str, _text(200), _Clean]
Text500 = Annotated[str, _text(500), _Clean]
Name = Annotated[str, _text(200, 1), _Clean]
ShortName = Annotated[str, _text(100, 1), _Clean]
Token = Annotated[str, _text(64, 1), _Clean]


CameraId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")]
Tag = Annotated[str, Field(pattern=r"^[\w.:-]{1,64}$")]
CleanUri = Annotated[str, Field(max_length=2048), AfterValidator(_uri_without_credentials)]


class CameraStatus(StrEnum):
    online = "online"
    offline = "offline"
    degraded = "degraded"
    unknown = "unknown"


class CameraSource(StrEnum):
    discovered = "discovered"
    registered = "registered"
    imported = "imported"


class Role(StrEnum):
    viewer = "viewer"
    operator = "operator"
    admin = "admin"
    auditor = "auditor"


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Location(Model):
    lat: float = Field(ge=-90, le=90, description="WGS-84 latitude")
    lon: float = Field(ge=-180, le=180, description="WGS-84 longitude")
    address: Text200 | None = Field(None, description="Street address or landmark")


class OnvifInfo(Model):
    device_uri: CleanUri | None = None
    endpoint_reference: Text200 | None = None
    services: dict[Text100, CleanUri] = Field(default_factory=dict)
    clock_offset_s: float = Field(0.0, description="Camera clock minus gateway clock")


class StreamProfile(Model):
    token: Token
    name: Text100 = ""
    codec: Text32 | None = None
    width: int | None = Field(None, ge=1, le=16384)
    height: int | None = Field(None, ge=1, le=16384)
    fps: float | None = Field(None, ge=0, le=1000)
    stream_uri: CleanUri | None = None


class Capabilities(Model):
    ptz: bool = False
    audio: bool = False
    events: bool = False


class CameraCredentials(Model):
    """Write-only: stored apart from the record and never returned."""

    username: Token
    password: SecretStr = Field(min_length=1, max_length=128)


# Fields an admin owns: discovery fills them only when they are empty, never overwrites them.
ADMIN_FIELDS = ("name", "category", "department", "carrier", "project", "location", "tags")


class Camera(Model):
    """The normalised camera record, as stored in the registry and served by the API."""

    id: CameraId
    network: Slug
    name: Name
    category: Slug
    department: Text100 = ""
    carrier: Text100 = ""
    project: Text200 = ""
    location: Location | None = None
    address: IPvAnyAddress = Field(description="The camera's IP address on its network")
    vendor: Text100 | None = None
    model: Text100 | None = None
    firmware: Text100 | None = None
    serial: Text100 | None = None
    mac: Annotated[str, Field(pattern=r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")] | None = None
    hardware_id: Text100 | None = None
    onvif: OnvifInfo | None = None
    profiles: list[StreamProfile] = Field(default_factory=list, max_length=32)
    snapshot_uri: CleanUri | None = None
    capabilities: Capabilities = Field(default_factory=Capabilities)
    status: CameraStatus = CameraStatus.unknown
    last_seen: datetime | None = None
    last_error: Text500 | None = None
    source: CameraSource
    has_credentials: bool = Field(False, description="Credentials are on file (never shown)")
    tags: list[Tag] = Field(default_factory=list, max_length=32)
    created_at: datetime
    updated_at: datetime
    rev: int = Field(1, ge=1, description="Bumped on every change to this record")


class CameraCreate(Model):
    """What an admin sends to register a camera (also one row of an import)."""

    id: CameraId | None = Field(None, description="Stable id; generated when left out")
    network: Slug
    name: Name
    category: Slug
    department: Text100 | None = Field(None, description="Defaults to the category's")
    carrier: Text100 | None = Field(None, description="Defaults to the category's")
    project: Text200 | None = Field(None, description="Defaults to the category's")
    location: Location | None = None
    address: IPvAnyAddress
    vendor: Text100 | None = None
    model: Text100 | None = None
    stream_uri: CleanUri | None = None
    snapshot_uri: CleanUri | None = None
    credentials: CameraCredentials | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=32)


class CameraPatch(Model):
    """JSON merge patch of the admin-owned fields; `null` clears an optional one."""

    name: Name | None = None
    category: Slug | None = None
    department: Text100 | None = None
    carrier: Text100 | None = None
    project: Text200 | None = None
    location: Location | None = None
    address: IPvAnyAddress | None = None
    stream_uri: CleanUri | None = None
    snapshot_uri: CleanUri | None = None
    credentials: CameraCredentials | None = None
    tags: list[Tag] | None = Field(None, max_length=32)


class CameraQuery(Model):
    """Filters of the camera list; all exact matches except `q` (case-insensitive substring of
    id, name, address, department, location address and tags)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    network: Slug | None = None
    status: CameraStatus | None = None
    category: Slug | None = None
    department: Text100 | None = None
    q: Text100 | None = None
    limit: int = Field(1000, ge=1, le=10_000, description="Page size")
    cursor: Annotated[str, Field(max_length=200, pattern=r"^[A-Za-z0-9_-]+$")] | None = None


class SnapshotQuery(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: Annotated[str, _text(200, 1), _Clean] | None = Field(
        None, description="Incident or ticket reference (required where the network says so)"
    )
    width: int | None = Field(None, ge=16, le=7680, description="Downscaled copy this wide")


class AuditQueryParams(Model):
    actor: Text200 | None = None
    camera: CameraId | None = None
    network: Slug | None = None
    since: datetime | None = None
    limit: int = Field(100, ge=1, le=1000)
    cursor: Annotated[str, Field(pattern=r"^\d{1,20}-\d{1,20}$")] | None = None


class CameraPage(Model):
    """One page of the camera list (the body is assembled from cached record bytes)."""

    version: int = Field(
        description="Version of the caller's networks this page was built from: it changes "
        "only when a camera of a network the caller is granted changes"
    )
    total: int = Field(description="Cameras matching the filters")
    next_cursor: str | None = None
    items: list[Camera]


class ImportRowError(Model):
    row: int = Field(description="1-based data row (CSV: the record's line number is `line`)")
    line: int | None = None
    field: str | None = None
    reason: str


class ImportResult(Model):
    created: int
    failed: int
    ids: list[str]
    errors: list[ImportRowError]


class SummaryCell(Model):
    network: str
    category: str
    status: CameraStatus
    count: int


class InventoryRow(Model):
    category: str
    category_name: str
    category_name_zh: str
    network: str
    department: str
    carrier: str
    project: str
    funding_10k_cny: float
    planned: int
    registered: int
    online: int


class Summary(Model):
    version: int = Field(description="Version of the caller's networks (as in the camera list)")
    total: int
    by_network_category_status: list[SummaryCell]
    by_department: dict[str, int]
    by_carrier: dict[str, int]
    by_status: dict[str, int]
    inventory: list[InventoryRow]


class JobProgress(Model):
    found: int = 0
    enriched: int = 0
    failed: int = 0
    ignored: int = Field(0, description="Answers from outside the network's CIDRs")


class JobFailure(Model):
    address: str
    step: str = Field(
        description="targets, credentials, timeout, unreachable, auth, read, normalise, store"
    )
    reason: str


class DiscoveryJob(Model):
    id: str
    network: str
    state: Literal["running", "done", "failed"]
    actor: str
    started_at: datetime
    finished_at: datetime | None = None
    elapsed_s: float = 0.0
    progress: JobProgress
    failures: list[JobFailure] = Field(default_factory=list)
    failures_dropped: int = Field(0, description="Failures beyond the first 1,000")
    error: str | None = Field(None, description="Why the whole job failed, if it did")


class AdapterState(Model):
    state: Literal["idle", "running"]
    running_job: str | None = None
    last_job: DiscoveryJob | None = None
    last_error: str | None = None
    health_rounds: int = 0


class NetworkInfo(Model):
    id: str
    name: str
    name_zh: str
    cidrs: list[str]
    cameras: int
    by_status: dict[str, int]
    reason_required: bool
    adapter: AdapterState | None = Field(None, description="Discovery state (admins only)")


class TokenInfo(Model):
    id: str
    name: ShortName
    role: Role
    networks: list[str] = Field(description="Granted network ids; ['*'] grants all")
    created_at: datetime
    created_by: str


class AuditEntry(Model):
    id: str = Field(description="Stream id: milliseconds-sequence")
    time: datetime | None
    actor: str
    role: str
    action: str
    target: str
    network: str
    outcome: str = Field(description="ok, denied, invalid, not_found, conflict or error")
    status: int
    detail: str
    request_id: str
    extra: dict[str, str] = Field(default_factory=dict, description="Action-specific fields")


class AuditPage(Model):
    items: list[AuditEntry]
    next_cursor: str | None = None


class Health(Model):
    status: Literal["ok", "unavailable"]
