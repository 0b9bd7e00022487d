"""The seam between a network adapter and the gateway, and the data that crosses it.

Discovered records go out, health results go out; (issue 4) snapshot requests come in and JPEG
bytes go out. Everything here is plain data that serialises to JSON, so the same seam works
in-process (default) and across a process boundary (`camgw adapter`, `adapters/remote.py`).

Errors, drawn once:

    AdapterError                 anything an adapter reports about a camera or its network
    ├── CameraUnreachable        refused, timed out, reset: the camera is not answering
    ├── CameraAuthError          the camera refused our credentials
    └── CameraProtocolError      the camera answered, but with garbage, hostile XML or a lie
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .uris import UriCredentials


class AdapterError(Exception):
    """Messages name the camera and the step, never a credential."""


class CameraUnreachable(AdapterError):
    pass


class CameraAuthError(AdapterError):
    pass


class CameraProtocolError(AdapterError):
    pass


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


@dataclass(frozen=True, slots=True)
class Profile:
    token: str
    name: str = ""
    codec: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    stream_uri: str | None = None


@dataclass(frozen=True, slots=True)
class Discovered:
    """What a camera says about itself, normalised; URIs carry no credentials."""

    network: str
    address: str
    source: str
    endpoint_reference: str | None = None
    device_uri: str | None = None
    name: str | None = None
    location: str | None = None
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


@dataclass(frozen=True, slots=True)
class Failure:
    """A camera that was found but could not be read, and why (attributed, no credentials)."""

    network: str
    address: str
    step: str
    reason: str
    endpoint_reference: str | None = None


@dataclass(slots=True)
class Progress:
    found: int = 0
    enriched: int = 0
    failed: int = 0
    ignored: int = 0  # answers from outside the network's CIDRs


ProgressCallback = Callable[[Progress], None]
# Where each camera read goes: None (or an awaitable of None) when kept, else its Failure.
CameraSink = Callable[[Discovered], "Awaitable[Failure | None] | Failure | None"]


@dataclass(frozen=True, slots=True)
class HealthResult:
    address: str
    ok: bool
    error: str | None = None
    latency_ms: float | None = None


@dataclass(frozen=True, slots=True, repr=False)
class SnapshotRequest:
    """A picture of one camera. Credentials go only to `address`, on a port in
    `credential_ports` or the network's configured camera ports (docs/security.md)."""

    camera_id: str
    address: str
    snapshot_uri: str | None
    stream_uri: str | None
    credentials: UriCredentials | None = None  # the camera's own
    network_credentials: bool = False  # may the network's be offered (discovery read it here)
    credential_ports: frozenset[int] = frozenset()  # ports the camera's device advertised

    def __repr__(self) -> str:
        return f"SnapshotRequest({self.camera_id})"


@dataclass(frozen=True, slots=True)
class SnapshotResult:
    jpeg: bytes
    source: str  # "camera-http" or "rtsp-grab"
    taken_at: float  # wall-clock seconds of the frame
    warm: bool = False  # an RTSP frame from a stream that was already open
    attempts: tuple[str, ...] = ()  # steps that failed before this one succeeded


class SnapshotFailed(AdapterError):
    """Every source failed; `steps` says which and how (no hosts, no credentials)."""

    def __init__(self, steps: list[tuple[str, AdapterError]]) -> None:
        self.steps = steps
        super().__init__("; ".join(f"{name}: {exc}" for name, exc in steps) or "no source")

    @property
    def timed_out(self) -> bool:
        return bool(self.steps) and all(
            "timed out" in str(e) or "within" in str(e) for _, e in self.steps
        )


class NetworkAdapter(Protocol):
    """One network's adapter, in-process or remote; the gateway cannot tell which."""

    network: str

    async def discover(self, on_progress: ProgressCallback, on_camera: CameraSink) -> list[Failure]:
        """Read every target; each camera read goes to `on_camera`, which answers a Failure
        when the camera could not be kept (it is then counted and returned as failed)."""
        ...

    async def probe(self, targets: Sequence[Target]) -> list[HealthResult]: ...

    async def snapshot(self, request: SnapshotRequest) -> SnapshotResult: ...

    async def close(self) -> None: ...
