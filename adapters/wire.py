"""The edge protocol: the messages between the gateway and an edge adapter (docs/edge.md).

Each Redis stream entry carries `m`, one JSON object validated by these models, and for a
snapshot chunk `b`, raw JPEG bytes. Both sides validate what they read with the same models:
unknown fields, wrong types, unbounded strings or lists, another schema version are refused.
A camera's address and credentials never need to cross: cameras are named by `ref`, an opaque
key the adapter derives from the device's identity.
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

T = TypeVar("T")

SCHEMA: Literal[1] = 1
MAX_MESSAGE_BYTES = 64 << 10  # one JSON object
CHUNK_BYTES = 256 << 10  # one piece of a snapshot

Text = Annotated[str, Field(max_length=500)]
Short = Annotated[str, Field(max_length=128)]
Ref = Annotated[str, Field(pattern=r"^[0-9a-f]{16,64}$", description="The adapter's camera key")]
RequestId = Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
Network = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")]
Epoch = Annotated[float, Field(ge=0, le=32_503_680_000)]  # seconds, before the year 3000
FailureKind = Literal["unreachable", "timeout", "auth", "read", "normalise", "credentials"]
SnapshotFailureKind = Literal["refused", "unreachable", "timeout", "auth", "protocol", "expired"]


class WireModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Message(WireModel):
    v: Literal[1] = SCHEMA


# -- what a camera says, as far as its owner lets it leave ---------------------------------------


class ProfileInfo(WireModel):
    token: Short
    name: Short = ""
    codec: Annotated[str, Field(max_length=32)] | None = None
    width: int | None = Field(None, ge=1, le=16384)
    height: int | None = Field(None, ge=1, le=16384)
    fps: float | None = Field(None, ge=0, le=1000)
    stream_uri: Annotated[str, Field(max_length=2048)] | None = None


class CameraInfo(WireModel):
    """A camera the adapter read. Every field but `ref` may be withheld (None) by the export
    policy; what is sent is still validated by the gateway as any discovered record is."""

    ref: Ref
    address: Short | None = None
    source: Annotated[str, Field(max_length=32)] = "edge"
    endpoint_reference: Annotated[str, Field(max_length=200)] | None = None
    device_uri: Annotated[str, Field(max_length=2048)] | None = None
    name: Annotated[str, Field(max_length=200)] | None = None
    location: Annotated[str, Field(max_length=200)] | None = None
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    hardware: Short | None = None
    vendor: Short | None = None
    model: Short | None = None
    firmware: Short | None = None
    serial: Short | None = None
    mac: Annotated[str, Field(max_length=17)] | None = None
    hardware_id: Short | None = None
    services: dict[Short, Annotated[str, Field(max_length=2048)]] = Field(
        default_factory=dict, max_length=32
    )
    clock_offset_s: float = Field(0.0, ge=-1e9, le=1e9)
    profiles: list[ProfileInfo] = Field(default_factory=list, max_length=32)
    snapshot_uri: Annotated[str, Field(max_length=2048)] | None = None
    ptz: bool = False
    audio: bool = False
    events: bool = False
    rtsp_only: bool = False
    notes: list[Text] = Field(default_factory=list, max_length=32)


# -- gateway -> adapter --------------------------------------------------------------------------


class Discover(Message):
    type: Literal["discover"] = "discover"
    job: RequestId
    actor: Text
    deadline: Epoch


class Probe(Message):
    type: Literal["probe"] = "probe"
    request: RequestId
    refs: list[Ref] = Field(max_length=100_000)
    deadline: Epoch


class Snapshot(Message):
    type: Literal["snapshot"] = "snapshot"
    request: RequestId
    ref: Ref
    requester: Text
    role: Short
    reason: Text = ""
    width: int | None = Field(None, ge=16, le=7680)
    deadline: Epoch


ToAdapter = Annotated[Discover | Probe | Snapshot, Field(discriminator="type")]


# -- adapter -> gateway --------------------------------------------------------------------------


class DiscoverySummary(WireModel):
    job: RequestId
    state: Literal["running", "done", "failed"]
    at: Epoch
    enriched: int = Field(0, ge=0)
    failed: int = Field(0, ge=0)


class Hello(Message):
    type: Literal["hello"] = "hello"
    network: Network
    adapter_version: Short
    started_at: Epoch


class Heartbeat(Message):
    type: Literal["heartbeat"] = "heartbeat"
    network: Network
    at: Epoch
    pending: int = Field(0, ge=0, description="Inbox requests read and not yet answered")
    cameras: int = Field(0, ge=0, description="Cameras the adapter knows")
    last_discovery: DiscoverySummary | None = None


class DiscoveryProgress(Message):
    type: Literal["discovery.progress"] = "discovery.progress"
    job: RequestId
    found: int = Field(ge=0)
    enriched: int = Field(ge=0)
    failed: int = Field(ge=0)
    ignored: int = Field(ge=0)


class CameraRead(Message):
    type: Literal["camera.read"] = "camera.read"
    job: RequestId
    camera: CameraInfo


class CameraFailed(Message):
    type: Literal["camera.failed"] = "camera.failed"
    job: RequestId
    ref: Ref | None = None
    kind: FailureKind
    reason: Text


class DiscoveryDone(Message):
    type: Literal["discovery.done"] = "discovery.done"
    job: RequestId
    state: Literal["done", "failed"]
    error: Text | None = None


class ProbeOutcome(WireModel):
    ref: Ref
    ok: bool
    error: Text | None = None
    latency_ms: float | None = Field(None, ge=0, le=1e7)


class ProbeResult(Message):
    type: Literal["probe.result"] = "probe.result"
    request: RequestId
    results: list[ProbeOutcome] = Field(max_length=100_000)


class SnapshotResult(Message):
    """One piece of a picture (`b` holds its bytes); `index` counts from 0 to `chunks` - 1."""

    type: Literal["snapshot.result"] = "snapshot.result"
    request: RequestId
    source: Literal["camera-http", "rtsp-grab"]
    taken_at: Epoch
    bytes: int = Field(ge=1, le=64 << 20)
    chunks: int = Field(ge=1, le=256)
    index: int = Field(ge=0, le=255)
    warm: bool = False
    attempts: list[Text] = Field(default_factory=list, max_length=8)


class SnapshotFailed(Message):
    type: Literal["snapshot.failed"] = "snapshot.failed"
    request: RequestId
    kind: SnapshotFailureKind
    reason: Text


FromAdapter = Annotated[
    Hello
    | Heartbeat
    | DiscoveryProgress
    | CameraRead
    | CameraFailed
    | DiscoveryDone
    | ProbeResult
    | SnapshotResult
    | SnapshotFailed,
    Field(discriminator="type"),
]

_TO_ADAPTER: TypeAdapter[ToAdapter] = TypeAdapter(ToAdapter)
_FROM_ADAPTER: TypeAdapter[FromAdapter] = TypeAdapter(FromAdapter)


class Refused(ValueError):
    """A message that must not be applied; `reason` is short and names no secret."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def encode(message: WireModel, payload: bytes = b"") -> dict[str, bytes]:
    """The stream entry's fields for `message` (and a chunk's bytes)."""
    fields = {"m": orjson.dumps(message.model_dump(mode="json"))}
    if payload:
        fields["b"] = payload
    return fields


def _decode(fields: dict[bytes, bytes], adapter: TypeAdapter[T], max_bytes: int) -> tuple[T, bytes]:
    raw = fields.get(b"m")
    if raw is None:
        raise Refused("no message field")
    if len(raw) > max_bytes:
        raise Refused(f"message of {len(raw)} bytes over the {max_bytes}-byte limit")
    extra = set(fields) - {b"m", b"b"}
    if extra:
        raise Refused("unknown entry fields")
    payload = fields.get(b"b", b"")
    if len(payload) > CHUNK_BYTES:
        raise Refused(f"chunk of {len(payload)} bytes over the {CHUNK_BYTES}-byte limit")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Refused("not JSON") from None
    if not isinstance(data, dict):
        raise Refused("not a JSON object")
    if data.get("v") != SCHEMA:
        raise Refused(f"schema version {str(data.get('v'))[:16]!r}, this gateway speaks {SCHEMA}")
    try:
        return adapter.validate_python(data), payload
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "message"
        raise Refused(f"invalid {where}: {first['msg']}"[:200]) from None


def decode_to_adapter(
    fields: dict[bytes, bytes], max_bytes: int = MAX_MESSAGE_BYTES
) -> tuple[ToAdapter, bytes]:
    return _decode(fields, _TO_ADAPTER, max_bytes)


def decode_from_adapter(
    fields: dict[bytes, bytes], max_bytes: int = MAX_MESSAGE_BYTES
) -> tuple[FromAdapter, bytes]:
    return _decode(fields, _FROM_ADAPTER, max_bytes)


def chunks(jpeg: bytes, size: int = CHUNK_BYTES) -> list[bytes]:
    return [jpeg[i : i + size] for i in range(0, len(jpeg), size)] or [b""]


def inbox(prefix: str, network: str) -> str:
    return f"{prefix}:edge:{network}:inbox"


def outbox(prefix: str, network: str) -> str:
    return f"{prefix}:edge:{network}:outbox"
