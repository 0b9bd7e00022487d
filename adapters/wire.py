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

from .base import Discovered, Profile
from .quality.thresholds import Thresholds

T = TypeVar("T")

SCHEMA: Literal[1] = 1
MAX_MESSAGE_BYTES = 64 << 10  # one JSON object
CHUNK_BYTES = 256 << 10  # one piece of a snapshot

PROBE_BATCH = 500  # refs per probe request: 500 of 64 characters fit a message with room
Text = Annotated[str, Field(max_length=500)]
Short = Annotated[str, Field(max_length=128)]
Ref = Annotated[str, Field(pattern=r"^[0-9a-f]{16,64}$", description="The adapter's camera key")]
RequestId = Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
Network = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")]
# Which credentials read (or were refused by) a camera: their keyed fingerprint, never them.
Fingerprint = Annotated[str, Field(pattern=r"^[0-9a-f]{16,64}$")]
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
    source: Annotated[str, Field(max_length=64)] | None = None


class CameraInfo(WireModel):
    """A camera the adapter read. Every field but `ref` may be withheld (None) by the export
    policy; what is sent is still validated by the gateway as any discovered record is."""

    ref: Ref
    address: Short | None = None
    port: int | None = Field(None, ge=1, le=65535)
    channel: Annotated[str, Field(max_length=64)] | None = None
    channel_index: int = Field(1, ge=1, le=1024)
    channels: int = Field(1, ge=1, le=1024)
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
    # Optional: a message of an adapter from before it decodes as unknown (None).
    credentials_fp: Fingerprint | None = None


# -- gateway -> adapter --------------------------------------------------------------------------


class Discover(Message):
    type: Literal["discover"] = "discover"
    job: RequestId
    actor: Text
    deadline: Epoch


class Probe(Message):
    type: Literal["probe"] = "probe"
    request: RequestId
    refs: list[Ref] = Field(max_length=PROBE_BATCH)
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


class PreviousPicture(WireModel):
    """The frozen check's memory of a camera's last picture: a digest, never the picture."""

    digest: Annotated[str, Field(pattern=r"^[0-9a-f]{8,128}$")]
    taken_at: Epoch


class Diagnose(Message):
    """Judge the camera's picture in the adapter; only the verdict leaves (docs/quality.md)."""

    type: Literal["diagnose"] = "diagnose"
    request: RequestId
    ref: Ref
    requester: Text
    reason: Text = ""
    night: bool = False
    thresholds: Thresholds
    previous: PreviousPicture | None = None
    deadline: Epoch


class Reference(Message):
    """Keep the camera's picture now as its reference of a period (`accept`), or forget it
    (`delete`): in the adapter, for its diagnoses; the picture does not leave."""

    type: Literal["reference"] = "reference"
    request: RequestId
    ref: Ref
    period: Literal["day", "night"]
    action: Literal["accept", "delete"]
    requester: Text
    deadline: Epoch


ToAdapter = Annotated[
    Discover | Probe | Snapshot | Diagnose | Reference, Field(discriminator="type")
]


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
    ignored_by_reason: dict[Annotated[str, Field(max_length=80)], int] = Field(
        default_factory=dict, max_length=20
    )


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
    credentials_fp: Fingerprint | None = None  # an `auth` failure: the credentials refused


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
    more: bool = Field(False, description="More results of this request follow")


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
    note: Text | None = None


class SnapshotFailed(Message):
    type: Literal["snapshot.failed"] = "snapshot.failed"
    request: RequestId
    kind: SnapshotFailureKind
    reason: Text


Level = Literal["ok", "suspect", "faulty"]
CheckName = Annotated[str, Field(pattern=r"^[a-z_]{1,32}$")]


class CheckOutcome(WireModel):
    check: CheckName
    level: Level
    measures: dict[Annotated[str, Field(max_length=32)], float] = Field(
        default_factory=dict, max_length=16
    )
    masked_by: CheckName | None = None


class DiagnosisResult(Message):
    """A verdict on a camera's picture, judged in the adapter: measures, no picture."""

    type: Literal["diagnosis.result"] = "diagnosis.result"
    request: RequestId
    source: Literal["camera-http", "rtsp-grab"]
    taken_at: Epoch
    status: Level
    results: list[CheckOutcome] = Field(max_length=32)
    width: int = Field(ge=0, le=16384)
    height: int = Field(ge=0, le=16384)
    digest: Annotated[str, Field(pattern=r"^[0-9a-f]{8,128}$")]


class ReferenceResult(Message):
    """What the adapter now keeps as the reference (`bytes` 0: none, after a delete)."""

    type: Literal["reference.result"] = "reference.result"
    request: RequestId
    period: Literal["day", "night"]
    bytes: int = Field(ge=0, le=64 << 20)
    width: int = Field(ge=0, le=16384)
    height: int = Field(ge=0, le=16384)
    existed: bool = Field(description="A delete: whether there was one")


FromAdapter = Annotated[
    Hello
    | Heartbeat
    | DiscoveryProgress
    | CameraRead
    | CameraFailed
    | DiscoveryDone
    | ProbeResult
    | SnapshotResult
    | SnapshotFailed
    | DiagnosisResult
    | ReferenceResult,
    Field(discriminator="type"),
]

_TO_ADAPTER: TypeAdapter[ToAdapter] = TypeAdapter(ToAdapter)
_FROM_ADAPTER: TypeAdapter[FromAdapter] = TypeAdapter(FromAdapter)


RefusalKind = Literal["oversized", "malformed", "schema", "invalid", "wrong-network", "sequence"]


class Refused(ValueError):
    """A message that must not be applied; `reason` is short and names no secret, `kind` is
    one of a few words (what metrics count: never the sender's text)."""

    def __init__(self, kind: RefusalKind, reason: str) -> None:
        super().__init__(reason)
        self.kind: RefusalKind = kind
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
        raise Refused("malformed", "no message field")
    if len(raw) > max_bytes:
        raise Refused("oversized", f"message of {len(raw)} bytes over the {max_bytes}-byte limit")
    extra = set(fields) - {b"m", b"b"}
    if extra:
        raise Refused("malformed", "unknown entry fields")
    payload = fields.get(b"b", b"")
    if len(payload) > CHUNK_BYTES:
        raise Refused(
            "oversized", f"chunk of {len(payload)} bytes over the {CHUNK_BYTES}-byte limit"
        )
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Refused("malformed", "not JSON") from None
    if not isinstance(data, dict):
        raise Refused("malformed", "not a JSON object")
    if data.get("v") != SCHEMA:
        raise Refused(
            "schema", f"schema version {str(data.get('v'))[:16]!r}, this gateway speaks {SCHEMA}"
        )
    try:
        return adapter.validate_python(data), payload
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "message"
        raise Refused("invalid", f"invalid {where}: {first['msg']}"[:200]) from None


def decode_to_adapter(
    fields: dict[bytes, bytes], max_bytes: int = MAX_MESSAGE_BYTES
) -> tuple[ToAdapter, bytes]:
    return _decode(fields, _TO_ADAPTER, max_bytes)


def decode_from_adapter(
    fields: dict[bytes, bytes], max_bytes: int = MAX_MESSAGE_BYTES
) -> tuple[FromAdapter, bytes]:
    return _decode(fields, _FROM_ADAPTER, max_bytes)


def probe_results(
    request: str, outcomes: list[ProbeOutcome], budget: int = MAX_MESSAGE_BYTES // 2
) -> list[ProbeResult]:
    """A probe's answer as messages of at most about `budget` bytes of results each (one
    outcome is under 1 KiB), the last with `more` false."""
    batches: list[list[ProbeOutcome]] = [[]]
    size = 0
    for outcome in outcomes:
        cost = len(orjson.dumps(outcome.model_dump(mode="json"))) + 1
        if batches[-1] and size + cost > budget:
            batches.append([])
            size = 0
        batches[-1].append(outcome)
        size += cost
    last = len(batches) - 1
    return [
        ProbeResult(request=request, results=batch, more=i < last)
        for i, batch in enumerate(batches)
    ]


def chunks(jpeg: bytes, size: int = CHUNK_BYTES) -> list[bytes]:
    return [jpeg[i : i + size] for i in range(0, len(jpeg), size)] or [b""]


def to_info(camera: Discovered) -> CameraInfo:
    """What an adapter read, as it may cross (before the export policy; never credentials)."""
    assert camera.ref is not None, "a camera crosses the edge by its ref"
    return CameraInfo(
        ref=camera.ref,
        address=camera.address,
        port=camera.port,
        channel=camera.channel,
        channel_index=camera.channel_index,
        channels=camera.channels,
        source=camera.source[:32],
        endpoint_reference=camera.endpoint_reference,
        device_uri=camera.device_uri,
        name=camera.name,
        location=camera.location,
        lat=camera.lat,
        lon=camera.lon,
        hardware=camera.hardware,
        vendor=camera.vendor,
        model=camera.model,
        firmware=camera.firmware,
        serial=camera.serial,
        mac=camera.mac,
        hardware_id=camera.hardware_id,
        services=dict(list(camera.services.items())[:32]),
        clock_offset_s=camera.clock_offset_s,
        profiles=[
            ProfileInfo(
                token=p.token,
                name=p.name,
                codec=p.codec,
                width=p.width,
                height=p.height,
                fps=p.fps,
                stream_uri=p.stream_uri,
                source=p.source,
            )
            for p in camera.profiles[:32]
        ],
        snapshot_uri=camera.snapshot_uri,
        ptz=camera.ptz,
        audio=camera.audio,
        events=camera.events,
        rtsp_only=camera.rtsp_only,
        notes=[n[:500] for n in camera.notes[:32]],
        credentials_fp=camera.credentials_fp,
    )


def from_info(network: str, info: CameraInfo) -> Discovered:
    """A camera that crossed the edge, as the seam's record of what was discovered."""
    return Discovered(
        network=network,
        address=info.address,
        source=info.source,
        ref=info.ref,
        port=info.port,
        channel=info.channel,
        channel_index=info.channel_index,
        channels=info.channels,
        endpoint_reference=info.endpoint_reference,
        device_uri=info.device_uri,
        name=info.name,
        location=info.location,
        lat=info.lat,
        lon=info.lon,
        hardware=info.hardware,
        vendor=info.vendor,
        model=info.model,
        firmware=info.firmware,
        serial=info.serial,
        mac=info.mac,
        hardware_id=info.hardware_id,
        services=dict(info.services),
        clock_offset_s=info.clock_offset_s,
        profiles=tuple(
            Profile(p.token, p.name, p.codec, p.width, p.height, p.fps, p.stream_uri, p.source)
            for p in info.profiles
        ),
        snapshot_uri=info.snapshot_uri,
        ptz=info.ptz,
        audio=info.audio,
        events=info.events,
        rtsp_only=info.rtsp_only,
        notes=tuple(info.notes),
        credentials_fp=info.credentials_fp,
    )


def inbox(prefix: str, network: str) -> str:
    return f"{prefix}:edge:{network}:inbox"


def outbox(prefix: str, network: str) -> str:
    return f"{prefix}:edge:{network}:outbox"
