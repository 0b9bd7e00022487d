"""The seam between a network adapter and the gateway, and the data that crosses it.

Data only, no callbacks: discovery yields events (a camera read, a camera failed with its kind,
progress, done); a snapshot request carries who asks, why, how wide and until when, and is
answered with a JPEG or a typed failure; health probes are answered with results. The same seam
serves an adapter in the gateway's process and one inside its network (`camgw adapter`,
`adapters/remote.py`, carried by the messages of `adapters/wire.py`): the gateway cannot tell
which it talks to.

Errors, drawn once:

    AdapterError                 anything an adapter reports about a camera or its network
    ├── CameraUnreachable        refused, reset: the camera is not answering
    │   └── CameraTimeout        ... within the time allowed
    ├── CameraAuthError          the camera refused our credentials (or none may be sent)
    ├── CameraProtocolError      the camera answered, but with garbage, hostile XML or a lie
    ├── SnapshotRefused          the network's owner does not share this picture (policy)
    ├── SnapshotFailed           every source failed; `steps` say which, each with its kind
    └── AdapterUnavailable       the network's adapter itself is not there (an edge adapter
                                 that stopped sending heartbeats)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from .uris import UriCredentials


class AdapterError(Exception):
    """Messages name the camera and the step, never a credential."""


class CameraUnreachable(AdapterError):
    pass


class CameraTimeout(CameraUnreachable):
    pass


class CameraAuthError(AdapterError):
    pass


class CameraProtocolError(AdapterError):
    pass


class SnapshotRefused(AdapterError):
    """The network's export policy does not let this picture leave (hours, reason, rate,
    snapshots not shared at all): the message says which, for the requester."""


class AdapterUnavailable(AdapterError):
    """The network's adapter is not connected: nothing about any camera was learnt."""


class FailureKind(StrEnum):
    """Why a camera found by discovery is not a record (JobFailure.step in the API)."""

    targets = "targets"  # a configured target outside the network's ranges
    credentials = "credentials"  # no credentials to try it with
    timeout = "timeout"  # no complete answer in time
    unreachable = "unreachable"  # refused, reset
    auth = "auth"  # credentials refused
    read = "read"  # answered, but unusably
    normalise = "normalise"  # what it said does not fit a record
    store = "store"  # the gateway could not keep it


def failure_kind(exc: AdapterError) -> FailureKind:
    if isinstance(exc, CameraAuthError):
        return FailureKind.auth
    if isinstance(exc, CameraTimeout):
        return FailureKind.timeout
    if isinstance(exc, CameraUnreachable):
        return FailureKind.unreachable
    return FailureKind.read


def _positional(obj: Any) -> tuple[type, tuple[Any, ...]]:
    """Pickled as a constructor call with the fields in order: a slotted dataclass's default
    pickling calls `dataclasses.fields` per object, and a health round sends 100,000 targets
    to the adapters' process and their results back."""
    return type(obj), tuple(getattr(obj, name) for name in obj.__slots__)


@dataclass(frozen=True, slots=True)
class Target:
    """Somewhere a camera may answer: from WS-Discovery, a static list or a CSV inventory."""

    address: str
    port: int = 80
    endpoint_reference: str | None = None
    xaddrs: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    kind: str = "onvif"  # "onvif" or "rtsp"
    rtsp_uri: str | None = None  # for RTSP-only cameras (credentials stripped)
    source: str = "static"  # ws-discovery, static, csv
    name: str | None = None  # from a CSV inventory or the name scope
    ref: str | None = None  # the camera's key in its adapter (health probes of an edge network)
    place: tuple[float, float] | None = None  # (lat, lon) from the owner's inventory

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        return _positional(self)


@dataclass(frozen=True, slots=True)
class Profile:
    token: str
    name: str = ""
    codec: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    stream_uri: str | None = None
    source: str | None = None  # the video source (sensor, NVR channel) the profile encodes


@dataclass(frozen=True, slots=True)
class Discovered:
    """What a camera says about itself, normalised; URIs carry no credentials."""

    network: str
    address: str | None  # None: withheld by the network's owner (an edge adapter's policy)
    source: str
    ref: str | None = None  # the adapter's opaque, stable key for this camera
    port: int | None = None  # where the device answers: its device service (or RTSP) port
    # A camera is one video source of a device: an NVR or an encoder has several, each its
    # own camera (`channel` the source's token, `channels` how many the device has).
    channel: str | None = None
    channel_index: int = 1  # 1-based, in the device's order
    channels: int = 1
    endpoint_reference: str | None = None
    device_uri: str | None = None
    name: str | None = None
    location: str | None = None
    lat: float | None = None
    lon: float | None = None
    hardware: str | None = None
    vendor: str | None = None
    model: str | None = None
    firmware: str | None = None
    serial: str | None = None
    mac: str | None = None
    hardware_id: str | None = None
    services: dict[str, str] = field(default_factory=dict)
    clock_offset_s: float = 0.0
    profiles: tuple[Profile, ...] = ()
    snapshot_uri: str | None = None
    ptz: bool = False
    audio: bool = False
    events: bool = False
    rtsp_only: bool = False
    notes: tuple[str, ...] = ()  # quirks fixed on the way ("snapshot host 0.0.0.0 replaced")
    uri_credentials: UriCredentials | None = None  # found inside a URI the camera returned
    # Which credentials read it: their keyed fingerprint (`uris.credentials_fingerprint`),
    # never the credentials; None where unknown (an older edge adapter).
    credentials_fp: str | None = None


@dataclass(frozen=True, slots=True)
class Failure:
    """A camera that was found but could not be read, and why (attributed, no credentials)."""

    network: str
    address: str | None
    kind: FailureKind
    reason: str
    endpoint_reference: str | None = None
    ref: str | None = None
    port: int | None = None  # where the device was tried (its device service or RTSP port)
    # An `auth` failure: the keyed fingerprint of the credentials refused (None: unknown).
    credentials_fp: str | None = None


# -- discovery events ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CameraRead:
    camera: Discovered


@dataclass(frozen=True, slots=True)
class CameraFailed:
    failure: Failure


@dataclass(frozen=True, slots=True)
class DiscoveryProgress:
    """What the adapter has found so far: targets, and what it ignored, by reason (answers
    from outside the ranges, the same device named twice, ...)."""

    found: int
    ignored: int = 0
    ignored_by_reason: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DiscoveryDone:
    error: str | None = None  # why the whole run failed, if it did


DiscoveryEvent = CameraRead | CameraFailed | DiscoveryProgress | DiscoveryDone


@dataclass(frozen=True, slots=True)
class HealthResult:
    address: str  # the target's ("" where withheld)
    ok: bool
    error: str | None = None
    latency_ms: float | None = None
    ref: str | None = None  # the target's, when it had one

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        return _positional(self)

    @property
    def key(self) -> str:
        return self.ref or self.address


@dataclass(frozen=True, slots=True, repr=False)
class SnapshotRequest:
    """A picture of one camera, for one requester. In process, the gateway names where the
    camera is; an edge adapter knows that itself, by `ref`. Credentials go only to `address`,
    on a port in `credential_ports` or the network's configured camera ports
    (docs/security.md)."""

    camera_id: str
    address: str | None
    snapshot_uri: str | None
    stream_uri: str | None
    credentials: UriCredentials | None = None  # the camera's own
    network_credentials: bool = False  # may the network's be offered (discovery read it here)
    credential_ports: frozenset[int] = frozenset()  # ports the camera's device advertised
    ref: str | None = None  # the camera's key in its adapter
    request_id: str = ""
    requester: str = ""  # the operator, as the audit names them
    role: str = ""
    reason: str = ""
    width: int | None = None  # the width asked for (the owner's policy may cap it)
    deadline: float = 0.0  # wall-clock seconds after which nobody waits for the answer

    def __repr__(self) -> str:
        return f"SnapshotRequest({self.camera_id})"


@dataclass(frozen=True, slots=True)
class SnapshotResult:
    jpeg: bytes
    source: str  # "camera-http" or "rtsp-grab"
    taken_at: float  # wall-clock seconds of the frame
    warm: bool = False  # an RTSP frame from a stream that was already open
    # What happened on the way: steps that failed or were skipped, a conversion (for the audit).
    attempts: tuple[str, ...] = ()
    # What the picture's source did unusually, for the operator ("converted from image/png",
    # "fallback: the HTTP snapshot answers an HTML page, not a picture"); None when nothing.
    note: str | None = None


class SnapshotFailed(AdapterError):
    """Every source failed; `steps` say which and how (no hosts, no credentials)."""

    def __init__(self, steps: list[tuple[str, AdapterError]]) -> None:
        self.steps = steps
        super().__init__("; ".join(f"{name}: {exc}" for name, exc in steps) or "no source")


class NetworkAdapter(Protocol):
    """One network's adapter, in-process or remote; the gateway cannot tell which."""

    network: str

    def discover(self, job: str, actor: str = "") -> AsyncIterator[DiscoveryEvent]:
        """Read every target: each camera read or failed as it happens, progress now and then,
        and `DiscoveryDone` last. Closing the iterator stops the run."""
        ...

    async def probe(self, targets: Sequence[Target]) -> list[HealthResult]: ...

    async def snapshot(self, request: SnapshotRequest) -> SnapshotResult:
        """The picture, or SnapshotFailed / SnapshotRefused / CameraTimeout."""
        ...

    async def close(self) -> None: ...
