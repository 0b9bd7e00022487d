"""Pydantic models at the API and registry boundary: the normalised camera record and its inputs.

Every model forbids unknown fields. Text is length-bounded and free of control characters;
URIs never carry credentials (they are refused on input and stripped by adapters on discovery).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from enum import StrEnum
from ipaddress import IPv4Address, IPv6Address
from typing import Annotated, Any, Literal, cast
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    IPvAnyAddress,
    SecretStr,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    create_model,
    field_validator,
)
from pydantic.fields import FieldInfo
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

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
    if parts.scheme not in {"rtsp", "rtsps", "http", "https"} or not value.startswith(
        f"{parts.scheme}://"
    ):
        raise ValueError("must begin with rtsp://, rtsps://, http:// or https://")
    if not parts.hostname:
        raise ValueError("must name a host")
    if has_credentials(value):
        # Say what is wrong without repeating the value: it holds a password.
        raise ValueError("must not contain credentials; send them in the `credentials` field")
    if not re.fullmatch(URI_PATTERN[1:-1], value):
        raise ValueError("must not contain spaces or control characters")
    return value


# What the checks above accept, as the document states it (explicit classes, not \s: Python
# and ECMA-262 regexes disagree on which characters that is).
_URI_OUT = r"\u0000-\u0020\u007F"
URI_PATTERN = rf"^(?:https?|rtsps?)://[^{_URI_OUT}/?#@]+(?:[/?#][^{_URI_OUT}]*)?$"


_Clean = AfterValidator(_no_control_chars)

# -- how the OpenAPI document states the text rules ------------------------------------------
# Rules a JSON schema keyword cannot carry with a message for people are enforced by the
# validators above and stated by a `DocumentedPattern` beside them; tests/gateway/test_openapi.py
# holds each pattern to its validator, character by character.

_CONTROL_CLASS = r"\u0000-\u0008\u000A-\u001F\u007F"  # _CONTROL: C0 controls but tab, and DEL
# Unicode White_Space: what pydantic's strip_whitespace removes (Python's str.strip() also
# removes U+001C-001F, controls refused anyway). Without the controls, what "blank" means.
_WHITE_CLASS = r"\u0009-\u000D\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000"
_SPACE_CLASS = r"\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000"
NO_CONTROL_PATTERN = rf"^[^{_CONTROL_CLASS}]*$"
NOT_BLANK_PATTERN = (
    rf"^[^{_CONTROL_CLASS}]*[^\u0009{_CONTROL_CLASS}{_SPACE_CLASS}][^{_CONTROL_CLASS}]*$"
)


def stripped_text_pattern(max_length: int, min_length: int = 0) -> str:
    """What `_text(max_length, min_length)` + `_Clean` accept, as one regex: any white space
    around (it is stripped), then at most `max_length` characters without controls that begin
    and end with one that is not white space. The length bound is on the stripped text, so the
    document states it here rather than as `maxLength` (which would count the spaces)."""
    if min_length not in (0, 1) or max_length < 1:
        raise ValueError("stripped_text_pattern: min_length 0 or 1, max_length at least 1")
    edge = f"[^{_CONTROL_CLASS}{_WHITE_CLASS}]"
    core = edge
    if max_length > 1:
        core += f"(?:[^{_CONTROL_CLASS}]{{0,{max_length - 2}}}{edge})?"
    if min_length == 0:
        core = f"(?:{core})?"
    return f"^[{_WHITE_CLASS}]*{core}[{_WHITE_CLASS}]*$"


@dataclass(frozen=True, slots=True)
class DocumentedPattern:
    """Puts `pattern` into a string's JSON schema for a rule that validators beside it enforce
    with a readable message (pydantic's own `pattern` answers with the regex); `drop` removes
    keywords the pattern states more exactly (a length counted after stripping)."""

    pattern: str
    drop: tuple[str, ...] = ()

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        for keyword in self.drop:
            json_schema.pop(keyword, None)
        json_schema["pattern"] = self.pattern
        return json_schema


def _text(max_length: int, min_length: int = 0) -> StringConstraints:
    return StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length)


def _stripped(max_length: int, min_length: int = 0) -> DocumentedPattern:
    return DocumentedPattern(
        stripped_text_pattern(max_length, min_length), drop=("maxLength", "minLength")
    )


Text32 = Annotated[str, _text(32), _Clean, _stripped(32)]
Text100 = Annotated[str, _text(100), _Clean, _stripped(100)]
Text200 = Annotated[str, _text(200), _Clean, _stripped(200)]
Text500 = Annotated[str, _text(500), _Clean, _stripped(500)]
Name = Annotated[str, _text(200, 1), _Clean, _stripped(200, 1)]
ShortName = Annotated[str, _text(100, 1), _Clean, _stripped(100, 1)]
Token = Annotated[str, _text(64, 1), _Clean, _stripped(64, 1)]


def _ip_text(value: object) -> object:
    """An address is text (or an address object made in code): not a number, which pydantic
    would also take, and without an IPv6 zone (`fe80::1%eth0`), which is no camera's address
    on a network and not what the document's `ipv6` format allows."""
    if isinstance(value, IPv4Address | IPv6Address):
        return value
    if not isinstance(value, str):
        raise ValueError("must be an IPv4 or IPv6 address, as text")
    if "%" in value:
        raise ValueError("must not name an IPv6 zone")
    return value


IpAddress = Annotated[
    IPvAnyAddress,
    BeforeValidator(_ip_text),
    WithJsonSchema({"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}),
]


def _json_number(value: object, info: ValidationInfo) -> object:
    """In a JSON body a number is a JSON number, as the document says: not `"12.5"` or `true`,
    which pydantic would also take. (A CSV import's cells are text, validated in Python mode.)"""
    if info.mode == "json" and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ValueError("must be a number")
    return value


JsonNumber = BeforeValidator(_json_number)


CameraId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")]
# Tags in any script (学校, north-gate): no white space, controls or URL/CSV delimiters. Explicit
# classes, so that pydantic's (Rust), Python's and the document's ECMA-262 regexes read it alike.
TAG_PATTERN = rf"^[^{_CONTROL_CLASS}{_WHITE_CLASS}\u0080-\u009F/\\?#&%,;\"'<>]{{1,64}}$"
Tag = Annotated[str, Field(pattern=TAG_PATTERN)]
CleanUri = Annotated[
    str,
    Field(
        max_length=2048,
        description="rtsp, rtsps, http or https, without credentials, naming the camera by its "
        "IP address, on a port its device advertised or the network allows (access.camera_ports)",
    ),
    AfterValidator(_uri_without_credentials),
    DocumentedPattern(URI_PATTERN),
]


class CameraStatus(StrEnum):
    online = "online"
    offline = "offline"
    degraded = "degraded"
    unknown = "unknown"


class Lifecycle(StrEnum):
    """Where a camera is in its project's life (docs/lifecycle.md). Admin-owned: discovery never
    changes it, and a decommissioned camera is kept (its history with it), not deleted."""

    planned = "planned"
    under_construction = "under-construction"
    in_service = "in-service"
    under_repair = "under-repair"
    decommissioned = "decommissioned"


# Lifecycle states whose cameras are not expected to answer (not probed, no address needed).
NOT_BUILT = frozenset({Lifecycle.planned, Lifecycle.under_construction})
NOT_PROBED = NOT_BUILT | {Lifecycle.decommissioned}
NOT_PROBED_VALUES = frozenset(s.value for s in NOT_PROBED)  # as stored in records


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
    lat: Annotated[float, Field(ge=-90, le=90), JsonNumber] = Field(description="WGS-84 latitude")
    lon: Annotated[float, Field(ge=-180, le=180), JsonNumber] = Field(
        description="WGS-84 longitude"
    )
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
    source: Token | None = Field(None, description="The video source the profile encodes")


class Channel(Model):
    """Which video source of its device a camera is: an NVR's or an encoder's channel."""

    token: Token = Field(description="The device's video source token")
    index: int = Field(ge=1, le=1024, description="1-based, in the device's order")
    of: int = Field(ge=2, le=1024, description="How many video sources the device has")


class Capabilities(Model):
    ptz: bool = False
    audio: bool = False
    events: bool = False


class DeviceInfo(Model):
    """What discovery read from the device itself. Never set through the API: it says where
    the network's credentials may be offered (docs/security.md), and by which key the camera's
    adapter knows it (`ref`: snapshots and probes of an edge network ask by it)."""

    address: IpAddress | None = Field(
        None, description="Where discovery last read the device (absent where withheld)"
    )
    ports: list[Annotated[int, Field(ge=1, le=65535)]] = Field(
        default_factory=list,
        max_length=64,
        description="Ports the device advertised: device service, media, streams, snapshots",
    )
    ref: Annotated[str, Field(pattern=r"^[0-9a-f]{16,64}$")] | None = Field(
        None, description="The camera's opaque key in its network's adapter"
    )
    port: int | None = Field(
        None, ge=1, le=65535, description="The port its device service (or stream) answers on"
    )


class CameraCredentials(Model):
    """Write-only: stored apart from the record and never returned."""

    username: Token
    password: SecretStr = Field(min_length=1, max_length=128)


# Fields an admin owns: discovery fills them only when they are empty, never overwrites them.
ADMIN_FIELDS = (
    "name",
    "category",
    "department",
    "carrier",
    "project",
    "location",
    "tags",
    "lifecycle",
    "lifecycle_since",
    "maintenance",
)


Phone = Annotated[
    str,
    StringConstraints(min_length=3, max_length=32, pattern=r"^\+?[0-9][0-9 ()\-]*[0-9]$"),
]


class Maintenance(Model):
    """Who fixes the camera: an organisation, a person or role there, a phone number, and the
    day someone last confirmed it (contacts change before projects finish)."""

    organisation: Text100 = ""
    contact: Text100 = Field("", description="A person or a role (duty desk, team)")
    phone: Phone | None = None
    confirmed_on: date | None = Field(None, description="When the contact was last confirmed")


class ImageStatus(StrEnum):
    """What the last quality diagnosis made of a camera's picture (docs/quality.md)."""

    ok = "ok"
    suspect = "suspect"  # a check failed mildly, or has not failed for enough rounds yet
    faulty = "faulty"


CheckName = Annotated[str, Field(pattern=r"^[a-z][a-z_]{0,31}$")]


class ImageFault(Model):
    check: CheckName = Field(description="blur, too_dark, occlusion, ... (docs/quality.md)")
    level: ImageStatus
    measures: dict[CheckName, float] = Field(default_factory=dict)


class ImageQuality(Model):
    """The picture of an online camera judged by the quality diagnosis (set by it only)."""

    status: ImageStatus
    failing: list[ImageFault] = Field(default_factory=list, max_length=11)
    since: datetime = Field(description="When the picture came to this verdict")
    night: bool = Field(False, description="Judged by the network's night limits")
    failing_rounds: int = Field(
        0,
        ge=0,
        description="Rounds in a row with a failing check, counted up to confirm_rounds (then "
        "faulty)",
    )
    reference: bool = Field(False, description="Judged against an accepted reference frame")


class GbChannel(Model):
    """A camera reached through a GB/T 28181 lower platform (docs/gb28181.md): its 20-digit
    channel code (the identity), the code decoded by the edition the platform speaks, and what
    the platform's catalog said of it."""

    code: Annotated[str, Field(pattern=r"^[0-9]{20}$")]
    platform: Annotated[str, Field(pattern=r"^[0-9]{20}$")] = Field(
        description="The lower platform it is reached through"
    )
    edition: Literal["2016", "2022"] = Field(description="The edition the code was read by")
    region: Annotated[str, Field(pattern=r"^[0-9]{8}$")] = Field(
        description="Administrative region and grassroots unit (digits 1-8)"
    )
    industry: Annotated[str, Field(pattern=r"^[0-9]{2}$")]
    industry_name: Text100 | None = None
    type: Annotated[str, Field(pattern=r"^[0-9]{3}$")]
    type_name: Text100 | None = None
    network_id: Annotated[str, Field(pattern=r"^[0-9]$")] = Field(
        description="The code's network identifier (digit 14)"
    )
    network_name: Text100 | None = None
    civil_code: Text32 = ""
    parent: Text32 = Field("", description="ParentID: the device or group above it")
    group_path: list[Text100] = Field(
        default_factory=list, max_length=16, description="Group tree from the root, by name"
    )
    owner: Text100 = ""
    status_reason: Text100 = Field("", description="The platform's last status word")
    platform_name: Text200 = Field(
        "", description="The name the platform gives it (the record's, unless an admin renamed it)"
    )


class Camera(Model):
    """The normalised camera record, as stored in the registry and served by the API."""

    id: CameraId
    network: Slug
    name: Name
    category: Slug
    department: Text100 = ""
    carrier: Text100 = ""
    project: Text200 = ""
    lifecycle: Lifecycle = Lifecycle.in_service
    lifecycle_since: datetime | None = Field(None, description="When it entered that state")
    maintenance: Maintenance | None = Field(
        None, description="Its own maintenance contact (else its category's and carrier's)"
    )
    location: Location | None = None
    address: IpAddress | None = Field(
        description="The camera's IP address on its network; absent where an edge network's "
        "owner withholds it, and for a camera not built yet (planned, under construction)"
    )
    vendor: Text100 | None = None
    model: Text100 | None = None
    firmware: Text100 | None = None
    serial: Text100 | None = None
    mac: Annotated[str, Field(pattern=r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")] | None = None
    hardware_id: Text100 | None = None
    onvif: OnvifInfo | None = None
    device: DeviceInfo | None = Field(None, description="Set by discovery only")
    channel: Channel | None = Field(
        None,
        description="Set by discovery for a camera that is one of several video sources "
        "of a device (an NVR channel); several cameras then share the device's address and port",
    )
    profiles: list[StreamProfile] = Field(default_factory=list, max_length=32)
    snapshot_uri: CleanUri | None = None
    capabilities: Capabilities = Field(default_factory=Capabilities)
    status: CameraStatus = CameraStatus.unknown
    last_seen: datetime | None = None
    last_error: Text500 | None = None
    notes: list[Text500] = Field(
        default_factory=list,
        max_length=16,
        description="What the last discovery noticed in the camera's answers: which call "
        "answered unusably (malformed XML, too large), a clock skew compensated, a URI host "
        "replaced",
    )
    snapshot_note: Text200 | None = Field(
        None,
        description="What the camera's snapshot source does unusually, as the last snapshot's "
        "X-Snapshot-Source said it ('camera-http; converted from image/png', 'rtsp-grab; "
        "fallback: the HTTP snapshot answers an HTML page, not a picture'); set by snapshots "
        "only, cleared by a plain JPEG from its HTTP snapshot",
    )
    gb28181: GbChannel | None = Field(
        None, description="Reached through a GB/T 28181 lower platform (set by it only)"
    )
    image: ImageQuality | None = Field(
        None, description="The last video quality diagnosis (set by it only; docs/quality.md)"
    )
    source: CameraSource
    has_credentials: bool = Field(False, description="Credentials are on file (never shown)")
    tags: list[Tag] = Field(default_factory=list, max_length=32)
    created_at: datetime
    updated_at: datetime
    rev: int = Field(1, ge=1, description="Bumped on every change to this record")


class LifecycleChange(Model):
    previous: Lifecycle | None = Field(description="None: the state the camera was created in")
    state: Lifecycle
    at: datetime
    actor: str = Field(description="Who made the change (an audited actor)")


class LifecycleHistory(Model):
    id: CameraId
    lifecycle: Lifecycle
    changes: list[LifecycleChange] = Field(description="Newest first (the newest 1,000 kept)")


def _with_rules(info: FieldInfo) -> Any:
    """A field's type with its constraints and validators (a FieldInfo keeps them apart)."""
    annotation = cast(Any, info.annotation)
    return Annotated[(annotation, *info.metadata)] if info.metadata else annotation


def _shared_view() -> type[BaseModel]:
    """The record as a network shares it with non-admins: only the fields its owner lists in
    `sharing.share` (id and network always), so every other field may be absent."""
    optional: dict[str, object] = {
        name: (_with_rules(info) | None, Field(None, description=info.description))
        for name, info in Camera.model_fields.items()
        if name not in ("id", "network")
    }
    return create_model(  # type: ignore[call-overload,no-any-return]
        "SharedCamera", __base__=Model, id=(CameraId, ...), network=(Slug, ...), **optional
    )


SharedCamera = _shared_view()

# Fields every shared record keeps, whatever the sharing policy lists.
ALWAYS_SHARED = ("id", "network")


class CameraCreate(Model):
    """What an admin sends to register a camera (also one row of an import)."""

    # The document's side of `_address_once_built`: an address, unless not built yet.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"required": ["address"], "properties": {"address": {"not": {"type": "null"}}}},
                {
                    "required": ["lifecycle"],
                    "properties": {"lifecycle": {"enum": [*sorted(s.value for s in NOT_BUILT)]}},
                },
            ]
        },
    )

    id: CameraId | None = Field(
        None,
        description="Stable id, beginning with the network's id and a dot (`police.gate-3`): "
        "ids are scoped by network; generated when left out",
    )
    network: Slug
    name: Name
    category: Slug
    department: Text100 | None = Field(None, description="Defaults to the category's")
    carrier: Text100 | None = Field(None, description="Defaults to the category's")
    project: Text200 | None = Field(None, description="Defaults to the category's")
    lifecycle: Lifecycle = Lifecycle.in_service
    maintenance: Maintenance | None = None
    location: Location | None = None
    address: IpAddress | None = Field(
        None,
        validate_default=True,
        description="Required, except for a camera not built yet (planned, under construction)",
    )
    vendor: Text100 | None = None
    model: Text100 | None = None
    stream_uri: CleanUri | None = None
    snapshot_uri: CleanUri | None = None
    credentials: CameraCredentials | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=32)

    @field_validator("address")
    @classmethod
    def _address_once_built(cls, value: Any, info: ValidationInfo) -> Any:
        lifecycle = info.data.get("lifecycle", Lifecycle.in_service)
        if value is None and lifecycle not in NOT_BUILT:
            raise PydanticCustomError(
                "address_required",
                "required for a camera that is built (lifecycle {lifecycle}); only planned and "
                "under-construction cameras may have none yet",
                {"lifecycle": lifecycle.value},
            )
        return value


def _never_null(schema: dict[str, Any]) -> None:
    """The document's side of `records.patch_errors`: a patch may leave this field out, not
    send `null` for it (the record cannot be without one)."""
    options = [o for o in schema.pop("anyOf", []) if o != {"type": "null"}]
    schema.pop("default", None)
    if len(options) == 1:
        schema.update(options[0])
    else:
        schema["anyOf"] = options


def _never_null_field() -> Any:
    return Field(None, json_schema_extra=_never_null)


class CameraPatch(Model):
    """JSON merge patch of the admin-owned fields; `null` clears an optional one (not `name`,
    `category` or `address`, which every record has)."""

    name: Name | None = _never_null_field()
    category: Slug | None = _never_null_field()
    department: Text100 | None = None
    carrier: Text100 | None = None
    project: Text200 | None = None
    lifecycle: Lifecycle | None = _never_null_field()
    maintenance: Maintenance | None = None
    location: Location | None = None
    address: IpAddress | None = _never_null_field()
    stream_uri: CleanUri | None = None
    snapshot_uri: CleanUri | None = None
    credentials: CameraCredentials | None = None
    tags: list[Tag] | None = Field(None, max_length=32)


# -- query strings and path segments ------------------------------------------------------------
# A query value is checked as sent (never stripped first): the OpenAPI document cannot say
# "at most 100 characters after stripping", and it states exactly what the server accepts.
# Rules a JSON schema keyword cannot carry with a message for people are enforced by a
# validator next to the `DocumentedPattern` that states them; tests hold the two to agreement.


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _strip(value: str) -> str:
    return value.strip()


_QueryText = (_Clean, DocumentedPattern(NO_CONTROL_PATTERN), AfterValidator(_strip))
QueryText100 = Annotated[str, StringConstraints(max_length=100), *_QueryText]
QueryText200 = Annotated[str, StringConstraints(max_length=200), *_QueryText]
Reason = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200),
    _Clean,
    AfterValidator(_not_blank),
    DocumentedPattern(NOT_BLANK_PATTERN),
    AfterValidator(_strip),
]


def _decimal(value: object) -> object:
    """A query integer is ASCII decimal digits, as the document's `integer` is sent: not
    `+5`, ` 5`, `5.0` or `5_000`, which Python's and pydantic's parsers would also take."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError("must be a whole number written in decimal digits")
    return value


# Bounds go before the validator inside an Annotated (`Annotated[int, Field(ge=1), _Decimal]`):
# after it, pydantic writes them into the JSON schema as `ge`/`le` instead of `minimum`/`maximum`.
_Decimal = BeforeValidator(_decimal)
QueryInt = Annotated[int, _Decimal]


# `lat,lon` in range, as decimals: what `near` takes (the pattern is the whole rule). Latitudes
# stop at 85 degrees: Redis GEO (Web Mercator) places nothing nearer the poles.
_LAT = r"-?(?:85(?:\.0{1,8})?|(?:8[0-4]|[1-7]?[0-9])(?:\.[0-9]{1,8})?)"
_LON = r"-?(?:180(?:\.0{1,8})?|(?:1[0-7][0-9]|[1-9]?[0-9])(?:\.[0-9]{1,8})?)"
NEAR_PATTERN = rf"^{_LAT},{_LON}$"

# Unpadded base64url: no length of 1 more than a multiple of 4 (no such encoding exists).
_LIST_CURSOR = r"^(?:[A-Za-z0-9_-]{4})*[A-Za-z0-9_-]{2,4}$"


class CameraQuery(Model):
    """Filters of the camera list; all exact matches except `q` (case-insensitive substring of
    id, name, address, department, location address and tags)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    network: Slug | None = None
    status: CameraStatus | None = None
    category: Slug | None = None
    department: QueryText100 | None = Field(None, description="Compared after trimming spaces")
    carrier: QueryText100 | None = Field(None, description="Compared after trimming spaces")
    lifecycle: Lifecycle | None = Field(
        None, description="Left out: every state but decommissioned (kept, listed when asked for)"
    )
    image: ImageStatus | None = Field(
        None,
        description="The quality diagnosis's verdict on the picture (docs/quality.md); only "
        "cameras whose network shows the caller `image`",
    )
    q: QueryText100 | None = Field(None, description="Compared after trimming spaces")
    limit: QueryInt = Field(1000, ge=1, le=10_000, description="Page size")
    cursor: Annotated[str, Field(max_length=200, pattern=_LIST_CURSOR)] | None = Field(
        None,
        description="`next_cursor` of the previous page (unpadded base64url); a value this API "
        "did not return may be refused (422)",
    )
    near: Annotated[str, Field(max_length=40, pattern=NEAR_PATTERN)] | None = Field(
        None,
        description="`lat,lon` (WGS-84 degrees): only cameras within `radius` metres of it, "
        "nearest first, each placed by the location its network shares (docs/incidents.md); "
        "pages follow the distance order (`next_cursor`)",
    )
    radius: Annotated[int, Field(ge=1, le=50_000), _Decimal] = Field(
        500, description="Metres around `near`"
    )

    def point(self) -> tuple[float, float] | None:
        if self.near is None:
            return None
        lat, lon = self.near.split(",")
        return float(lat), float(lon)


class IncidentArea(Model):
    lat: Annotated[float, Field(ge=-85.05, le=85.05), JsonNumber]
    lon: Annotated[float, Field(ge=-180, le=180), JsonNumber]
    radius_m: int = Field(300, ge=1, le=5000)


class IncidentSnapshotRequest(Model):
    """Pictures of several cameras for one incident: named, or the nearest to a place."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"oneOf": [{"required": ["cameras"]}, {"required": ["near"]}]},
    )

    reason: Reason = Field(description="The incident or ticket reference: every picture's")
    cameras: list[CameraId] | None = Field(
        None, min_length=1, max_length=24, json_schema_extra=_never_null
    )
    near: IncidentArea | None = Field(
        None,
        validate_default=True,
        description="Instead of `cameras`: around a place",
        json_schema_extra=_never_null,
    )
    max_cameras: int = Field(12, ge=1, le=24, description="With `near`: the nearest this many")
    width: Annotated[int, Field(ge=16, le=1920)] | None = Field(
        640, description="Largest width wanted (each network's max_width still applies)"
    )

    @field_validator("near")
    @classmethod
    def _one_way(cls, value: IncidentArea | None, info: ValidationInfo) -> IncidentArea | None:
        if (info.data.get("cameras") is None) == (value is None):
            raise PydanticCustomError("cameras_or_near", "give either cameras or near, not both")
        return value


class IncidentPicture(Model):
    camera: str
    status: int = Field(description="200, or the status a single snapshot request would get")
    taken_at: str | None = None
    source: str | None = Field(None, description="As X-Snapshot-Source says")
    distance_m: float | None = Field(None, description="With `near`: metres from the place")
    jpeg_base64: str | None = None
    error: str | None = Field(None, description="Why not, in plain words")


class IncidentSnapshots(Model):
    reason: str
    taken: int
    refused: int
    items: list[IncidentPicture]


class SnapshotQuery(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: Reason | None = Field(
        None,
        description="Incident or ticket reference (required where the network says so); not "
        "blank; recorded without surrounding spaces",
    )
    width: Annotated[int, Field(ge=16, le=7680), _Decimal] | None = Field(
        None, description="Downscaled copy this wide"
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ISO_HINT = "must be an RFC 3339 date-time with a time zone, e.g. 2024-05-01T08:00:00Z"
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)
# The years `iso_datetime` takes, as the document's pattern says them (beside `date-time`).
SINCE_PATTERN = r"^(?:19[7-9][0-9]|2[0-9]{3})-"


def iso_datetime(value: object) -> datetime:
    """An RFC 3339 date-time (OpenAPI's `date-time`: `2024-05-01T08:00:00Z`, `...T16:00:00.5+08:00`)
    written in the years 1970 to 2999. No Unix timestamps, no bare dates, no other ISO 8601
    spellings: `0.5` is not what anyone means, and the document says `date-time`. An instant
    before 1970-01-01T00:00:00Z (`1970-01-01T00:30:00+01:00`) means "from the start"; a stream
    id cannot be computed from it."""
    if isinstance(value, datetime):
        parsed = value
        if parsed.tzinfo is None:
            raise ValueError(_ISO_HINT + " (add Z or an offset such as +08:00)")
    elif not isinstance(value, str):
        raise ValueError(_ISO_HINT)
    else:
        parsed = _rfc3339(value)
    if not 1970 <= parsed.year <= 2999:
        raise ValueError("must be in the years 1970 to 2999")
    return max(parsed, _EPOCH)


def _rfc3339(value: str) -> datetime:
    match = _RFC3339.fullmatch(value)
    if match is None:
        hint = " (a `+` in a query string must be sent as %2B)" if " " in value else ""
        if "T" in value.upper() and not re.search(r"(?:[Zz]|[+-]\d\d:\d\d)$", value):
            hint = " (add Z or an offset such as +08:00)"
        raise ValueError(_ISO_HINT + hint)
    year, month, day, hour, minute, second = (int(match[i]) for i in range(1, 7))
    fraction, zulu, sign, off_h, off_m = match[7], match[8], match[9], match[10], match[11]
    if not 1970 <= year <= 2999:
        raise ValueError("must be in the years 1970 to 2999")
    if second == 60:
        raise ValueError(_ISO_HINT + " (leap seconds are not taken)")
    if zulu:
        zone = UTC
    else:
        hours, minutes = int(off_h), int(off_m)
        if hours > 23 or minutes > 59:
            raise ValueError(_ISO_HINT + " (an offset is -23:59 to +23:59)")
        delta = timedelta(hours=hours, minutes=minutes)
        zone = timezone(-delta if sign == "-" else delta)
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        return datetime(year, month, day, hour, minute, second, micro, tzinfo=zone)
    except ValueError:
        raise ValueError(_ISO_HINT + " (no such date or time)") from None


def _decimal_up_to(bound: int) -> str:
    """A regex for the decimal numbers 1..bound, without leading zeros."""
    digits = str(bound)
    options = [f"[1-9][0-9]{{0,{len(digits) - 2}}}"] if len(digits) > 1 else []
    for i, d in enumerate(digits):
        low = 1 if i == 0 else 0
        if int(d) > low:
            top = int(d) - 1
            rest = len(digits) - i - 1
            choice = str(low) if low == top else f"[{low}-{top}]"
            options.append(f"{digits[:i]}{choice}" + (f"[0-9]{{{rest}}}" if rest else ""))
    options.append(digits)
    return "|".join(options)


_U64_POSITIVE = _decimal_up_to(2**64 - 1)
# A stream id above 0-0 whose parts are below 2^64, as Redis writes them (no leading zeros).
STREAM_CURSOR_PATTERN = rf"^(?:(?:{_U64_POSITIVE})-(?:0|{_U64_POSITIVE})|0-(?:{_U64_POSITIVE}))$"
_STREAM_CURSOR = re.compile(STREAM_CURSOR_PATTERN)


def _stream_cursor(value: str) -> str:
    if _STREAM_CURSOR.fullmatch(value):
        return value
    parts = value.split("-")
    if len(parts) == 2 and all(p.isascii() and p.isdigit() for p in parts):
        if any(int(p) >= 2**64 for p in parts):
            raise ValueError("both parts must be below 2^64")
        if all(int(p) == 0 for p in parts):
            raise ValueError("must be above 0-0")
        raise ValueError("must be written without leading zeros, as `next_cursor` is")
    raise ValueError("must be a stream id `<milliseconds>-<sequence>`, as `next_cursor` is")


StreamCursor = Annotated[
    str, AfterValidator(_stream_cursor), DocumentedPattern(STREAM_CURSOR_PATTERN)
]


class AuditQueryParams(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)

    actor: QueryText200 | None = None
    camera: CameraId | None = None
    network: Slug | None = None
    reason: Reason | None = Field(
        None, description="Snapshots taken under this incident or ticket reference (exact)"
    )
    since: (
        Annotated[datetime, BeforeValidator(iso_datetime), DocumentedPattern(SINCE_PATTERN)] | None
    ) = Field(
        None,
        description="RFC 3339 date-time with a time zone, in the years 1970 to 2999 (no leap "
        "seconds)",
    )
    limit: QueryInt = Field(100, ge=1, le=1000)
    cursor: StreamCursor | None = Field(None, description="`next_cursor` of the previous page")


# Path segments: what the `{id}` of each route may be (the document's parameter schemas).


class CameraPath(Model):
    id: CameraId


class NetworkPath(Model):
    id: Slug


class JobPath(Model):
    id: Annotated[str, Field(pattern=r"^job-[0-9a-f]{12}$")]


class NearInfo(Model):
    lat: float
    lon: float
    radius_m: int
    distance_m: dict[str, float] = Field(description="Camera id -> metres from the point")
    precision_m: dict[str, float] = Field(
        description="Camera id -> how far its shared coordinates may be off (rounded ones: "
        "half a unit of their last decimal)"
    )
    unplaced: dict[str, int] = Field(
        description="Network -> cameras matching the filters that could not be placed: no "
        "location, or one their network does not share"
    )


class CameraPage(Model):
    """One page of the camera list (the body is assembled from cached record bytes)."""

    version: int = Field(
        description="Version of the caller's networks this page was built from: it changes "
        "only when a camera of a network the caller is granted changes"
    )
    total: int = Field(description="Cameras matching the filters")
    next_cursor: str | None = None
    near: NearInfo | None = Field(None, description="With `near`: distances and precision")
    items: list[SharedCamera] = Field(  # type: ignore[valid-type]
        description="Admins get whole records; others the fields each network shares"
    )


class ImportFieldError(Model):
    """One problem of an imported row, as the person who filled in the file reads it."""

    field: str | None = Field(
        description="The camera field (`location.lat`, `tags[2]`); null for the row as a whole"
    )
    column: str | None = Field(
        description="The column as the file's header names it (`经度`, `lon`); in a JSON import "
        "the field's path; null for the row as a whole"
    )
    value: str | None = Field(
        description="The value as the file has it (JSON values other than text as JSON), "
        "shortened past 100 characters; null when absent, and for URIs and credentials, "
        "which may hold a password"
    )
    message: str = Field(
        description="`<column>: <what is wrong>`, in Chinese for a CSV file with a Chinese "
        "header, else in English (docs/import.md)"
    )


class ImportRowError(Model):
    row: int = Field(description="1-based data row (CSV: the record's line number is `line`)")
    line: int | None = None
    field: str | None = Field(None, description="The first problem's field")
    reason: str = Field(description="The first problem's message")
    errors: list[ImportFieldError] = Field(
        description="Every problem of the row, in the file's column order (at least one)"
    )


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
    planned: int = Field(description="Cameras the inventory table lists (the config)")
    registered: int = Field(description="Records of the category, decommissioned ones aside")
    by_lifecycle: dict[str, int] = Field(
        description='Records by lifecycle state, decommissioned included ("": not shared)'
    )
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
    found: int = Field(0, description="Devices found: places (address and port) to read")
    enriched: int = Field(0, description="Cameras read and stored (an NVR's channels each)")
    failed: int = 0
    ignored: int = Field(0, description="Targets and answers left aside, all reasons together")
    ignored_by_reason: dict[str, int] = Field(
        default_factory=dict,
        description="Why: outside the network's CIDRs, listed twice, not a probe answer, ...",
    )


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


class EdgeDiscovery(Model):
    job: str
    state: Literal["running", "done", "failed"]
    at: datetime
    enriched: int
    failed: int


class EdgeAdapterInfo(Model):
    """An edge adapter as the gateway last heard from it (docs/edge.md)."""

    connected: bool = Field(description="Heard from within edge.heartbeat_timeout_s")
    heartbeat_age_s: float | None = Field(None, description="Since its last message")
    adapter_version: str | None = None
    started_at: datetime | None = None
    inbox_depth: int | None = Field(
        None, description="Requests it has not read, or not yet answered (null: Redis did not say)"
    )
    cameras_known: int = Field(0, description="Cameras the adapter knows")
    last_discovery: EdgeDiscovery | None = None
    refused: dict[str, int] = Field(
        default_factory=dict, description="Its messages refused by this gateway, by reason"
    )


class AdapterState(Model):
    mode: Literal["in-process", "edge"] = "in-process"
    state: Literal["idle", "running", "unreachable"]
    running_job: str | None = None
    last_job: DiscoveryJob | None = None
    last_error: str | None = None
    health_rounds: int = 0
    edge: EdgeAdapterInfo | None = None


class GbPlatformInfo(Model):
    id: str
    name: str
    edition: str
    registered: bool
    online: bool
    last_keepalive: datetime | None
    registered_at: datetime | None
    expires_at: datetime | None
    channels: int = Field(description="Channels in its last catalog")
    catalog_complete: bool | None = Field(description="None: no catalog yet")
    conflicts: int = Field(description="Channel codes another platform already holds")
    offline_reason: str
    subscribed: bool = Field(description="Its catalog notifications are subscribed to")
    device_info: dict[str, str] = Field(
        description="What its DeviceInfo answer said (DeviceName, Manufacturer, Model, Firmware)"
    )


class NetworkInfo(Model):
    id: str
    name: str
    name_zh: str
    cidrs: list[str]
    cameras: int
    by_status: dict[str, int]
    reason_required: bool
    adapter: AdapterState | None = Field(None, description="Discovery state (admins only)")
    platforms: list[GbPlatformInfo] = Field(
        default_factory=list, description="GB/T 28181 lower platforms feeding it (admins only)"
    )


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
    seq: int | None = Field(
        None, description="Position in the audit chain: 1, 2, ... across the whole trail"
    )
    prev: str | None = Field(None, description="Link of the entry before (64 zeros for seq 1)")
    link: str | None = Field(
        None,
        description="HMAC-SHA256 over prev, seq and this entry's fields under a key the gateway "
        "holds; `camgw audit verify` checks every link",
    )


class AuditPage(Model):
    items: list[AuditEntry]
    next_cursor: str | None = None


class Health(Model):
    status: Literal["ok", "unavailable"]
