"""How a network is reached: the per-network adapter configuration (a block of the gateway's
config file, validated here so an adapter running as its own process reads the same model)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .uris import UriCredentials

# Pictures: the most pixels a snapshot or stream frame may have. 8K UHD (7680x4320) is above
# every surveillance camera's main stream (4K, 12 and 16 MP, 32 MP panoramics) and its decode is
# ~100 MB (3 bytes a pixel); the bound is 4x that, for the odd gigantic sensor an operator knows.
DEFAULT_MAX_PIXELS = 7680 * 4320  # 33,177,600
MAX_PIXELS_BOUND = 1 << 27  # 134,217,728 (16384 x 8192)

# adapters/__init__.py sets OpenCV's own fence (OPENCV_IO_MAX_IMAGE_PIXELS) at this bound.


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CredentialRef(_Strict):
    """Where a network's camera credentials live: never a literal in the config file."""

    username: str = Field("admin", min_length=1, max_length=64)
    password_env: str | None = Field(None, description="Environment variable holding it")
    password_file: Path | None = Field(None, description="File holding it (first line)")

    @model_validator(mode="after")
    def _one_source(self) -> CredentialRef:
        if (self.password_env is None) == (self.password_file is None):
            raise ValueError("give exactly one of password_env and password_file")
        return self

    def resolve(self) -> UriCredentials | None:
        """None when the referenced secret is absent (the adapter reports it per camera)."""
        if self.password_env is not None:
            password = os.environ.get(self.password_env)
        else:
            assert self.password_file is not None
            try:
                password = self.password_file.read_text().splitlines()[0].strip()
            except (OSError, IndexError):
                password = None
        return UriCredentials(self.username, password) if password else None


class DiscoveryConfig(_Strict):
    wsdiscovery_targets: tuple[str, ...] = Field(
        (), description="Unicast probe targets: addresses or CIDRs (every host is probed)"
    )
    multicast_interface: str | None = Field(
        None, description="Send a multicast probe on this interface only; none by default"
    )
    static_hosts: tuple[str, ...] = Field(
        (), description="ONVIF hosts, 'address' or 'address:port'"
    )
    rtsp_uris: tuple[str, ...] = Field((), description="RTSP-only cameras (no credentials inside)")
    csv_inventory: Path | None = Field(
        None, description="CSV with address[,port,kind,name,rtsp_uri,lat,lon]"
    )
    onvif_port: int = Field(80, ge=1, le=65535, description="Device service port when unknown")
    schedule_s: float = Field(0, ge=0, description="Rediscover every N seconds (0: on demand)")
    health_interval_s: float = Field(30, ge=0, description="Health probe period (0: off)")
    concurrency: int = Field(128, ge=1, le=2048, description="Cameras read at once")
    timeout_s: float = Field(5.0, gt=0, le=120, description="One request to a camera")
    camera_budget_s: float = Field(20.0, gt=0, le=600, description="All requests to one camera")
    probe_wait_s: float = Field(2.0, gt=0, le=60, description="How long to collect ProbeMatches")
    max_response_bytes: int = Field(1 << 20, ge=4096, le=64 << 20)


class AccessConfig(_Strict):
    """Where a network's camera credentials may go: only to the camera they belong to (its own
    address; see docs/security.md), on a port its device advertised or one listed here."""

    camera_ports: tuple[int, ...] = Field(
        (80, 443, 554, 8000, 8080, 8443, 8554),
        description="Ports of a camera's own address that credentials may be sent to, besides "
        "those its device advertised to discovery",
    )
    allow_basic_over_http: bool = Field(
        False,
        description="Answer a Basic challenge over plain HTTP or RTSP (the password travels in "
        "clear); Digest is always used when offered",
    )

    @model_validator(mode="after")
    def _ports_in_range(self) -> AccessConfig:
        bad = [p for p in self.camera_ports if not 1 <= p <= 65535]
        if bad:
            raise ValueError(f"camera_ports must be 1-65535, not {bad[0]}")
        return self


class SnapshotConfig(_Strict):
    """How hard the gateway may pull on a camera for a picture."""

    connect_timeout_s: float = Field(2.0, gt=0, le=30)
    timeout_s: float = Field(5.0, gt=0, le=60, description="Whole HTTP snapshot request")
    max_bytes: int = Field(8 << 20, ge=64 << 10, le=64 << 20, description="Largest JPEG accepted")
    rtsp_timeout_s: float = Field(4.0, gt=0, le=60, description="Open + first frame of a stream")
    rtsp_workers: int = Field(4, ge=1, le=64, description="Threads for H.264 and JPEG work")
    warm_streams: int = Field(4, ge=0, le=64, description="RTSP streams kept open per network")
    warm_idle_s: float = Field(30.0, gt=0, le=3600, description="Close a warm stream when unused")
    max_pixels: int = Field(
        DEFAULT_MAX_PIXELS,
        ge=320 * 240,
        le=MAX_PIXELS_BOUND,
        description="Largest picture (width x height) decoded, from a snapshot's JPEG header or "
        "a stream's SPS, before any decode; larger ones are refused (8K UHD by default)",
    )
