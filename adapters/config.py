"""How a network is reached: the per-network adapter configuration (a block of the gateway's
config file, validated here so an adapter running as its own process reads the same model)."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from .inventory import parse_host, rtsp_target
from .uris import UriCredentials, split_credentials
from .wsdiscovery import MAX_TARGETS, count_targets, parse_target, split_host_port

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


# -- discovery: every key is checked here, when the config loads, so that a discovery job never
# fails on a value of the config (docs/discovery.md). Only what the host holds is left to each run:
# the CSV inventory's contents (data the owner edits between runs) and whether the multicast
# interface exists; either fails that network's run alone, naming the key.


def _checked(check: Callable[[str], object], shown: Callable[[str], str] = repr) -> AfterValidator:
    """An item validator whose ValueError names the value it refuses: "'x': what is wrong"."""

    def validate(value: str) -> str:
        try:
            check(value)
        except ValueError as exc:
            raise ValueError(f"{shown(value)}: {exc}") from None
        return value

    return AfterValidator(validate)


def _static_host(entry: str) -> None:
    host, _ = split_host_port(entry)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            "not an address or address:port (names are not resolved; IPv6 with a port is "
            "'[address]:port')"
        ) from None
    if address.is_multicast or address.is_unspecified:
        raise ValueError("is not an address a camera can have")
    parse_host(entry, 80)  # what each run does with it


def _without_credentials(uri: str) -> str:
    """How an RTSP URI is named in an error: never with the credentials it may carry."""
    try:
        return repr(split_credentials(uri)[0])
    except ValueError:  # an invalid port, with userinfo: name none of it
        return "an RTSP URI"


def _rtsp_uri(uri: str) -> None:
    parts = urlsplit(uri)
    if "@" in parts.netloc:
        raise ValueError(
            "carries credentials; give them in the network's credentials, never in a URI"
        )
    if parts.scheme.lower() not in ("rtsp", "rtsps"):
        raise ValueError("is not an rtsp:// or rtsps:// URI")
    try:
        parts.port  # noqa: B018 (raises for a port out of range)
        ipaddress.ip_address(parts.hostname or "")
    except ValueError:
        raise ValueError("must name the camera by its IP address, with a valid port") from None
    rtsp_target(uri)  # what each run does with it


_INTERFACE = re.compile(r"^[^\s/:%]{1,15}$")


def _interface(name: str) -> None:
    if not _INTERFACE.match(name) or name in (".", ".."):
        raise ValueError(
            "is not an interface name (1 to 15 characters, no spaces, '/', ':' or '%')"
        )


WsTarget = Annotated[str, _checked(parse_target)]
StaticHost = Annotated[str, _checked(_static_host)]
RtspUri = Annotated[str, Field(max_length=2048), _checked(_rtsp_uri, _without_credentials)]
Interface = Annotated[str, _checked(_interface)]


class DiscoveryConfig(_Strict):
    """Where a network's cameras are found and how hard discovery may pull (docs/discovery.md)."""

    wsdiscovery_targets: tuple[WsTarget, ...] = Field(
        (),
        description="Unicast WS-Discovery probe targets: an address, a CIDR (every host is "
        "probed) or one host with its own port ('127.1.0.5:3703', '[fd00::5]:3703'); "
        f"at most {MAX_TARGETS:,} addresses in all",
    )
    wsdiscovery_port: int = Field(
        3702, ge=1, le=65535, description="The port probes go to, where a target names none"
    )
    multicast_interface: Interface | None = Field(
        None, description="Send a multicast probe on this interface only; none by default"
    )
    static_hosts: tuple[StaticHost, ...] = Field(
        (), description="ONVIF devices, 'address' or 'address:port' ('[v6]:port')"
    )
    rtsp_uris: tuple[RtspUri, ...] = Field(
        (), description="RTSP-only cameras: rtsp:// URIs naming an IP address, no credentials"
    )
    csv_inventory: Path | None = Field(
        None,
        description="CSV inventory (docs/discovery.md), read at every run: its contents are the "
        "network owner's data, checked then, not when the config loads",
    )
    onvif_port: int = Field(80, ge=1, le=65535, description="Device service port when unknown")
    schedule_s: float = Field(
        0, ge=0, le=7 * 86_400, description="Rediscover every N seconds (0: on demand; else >= 10)"
    )
    health_interval_s: float = Field(
        30, ge=0, le=86_400, description="Health probe period (0: off; else >= 1)"
    )
    concurrency: int = Field(128, ge=1, le=2048, description="Cameras read at once")
    health_concurrency: int = Field(
        512, ge=1, le=4096, description="Health probes at once (each one small request)"
    )
    timeout_s: float = Field(5.0, gt=0, le=120, description="One request to a camera")
    camera_budget_s: float = Field(
        20.0, gt=0, le=600, description="All requests to one camera (at least timeout_s)"
    )
    probe_wait_s: float = Field(2.0, gt=0, le=60, description="How long to collect ProbeMatches")
    max_response_bytes: int = Field(
        1 << 20, ge=4096, le=64 << 20, description="Largest answer read from a camera (ONVIF)"
    )

    @field_validator("wsdiscovery_targets")
    @classmethod
    def _bounded(cls, targets: tuple[str, ...]) -> tuple[str, ...]:
        total = count_targets(targets)
        if total > MAX_TARGETS:
            raise ValueError(
                f"{total:,} addresses to probe, more than {MAX_TARGETS:,}: narrow the ranges"
            )
        return targets

    @field_validator("schedule_s")
    @classmethod
    def _schedule(cls, value: float) -> float:
        if 0 < value < 10:
            raise ValueError(f"{value:g}: 0 (on demand only) or at least 10 seconds")
        return value

    @field_validator("health_interval_s")
    @classmethod
    def _health(cls, value: float) -> float:
        if 0 < value < 1:
            raise ValueError(f"{value:g}: 0 (no health probes) or at least 1 second")
        return value

    @model_validator(mode="after")
    def _budget_holds_a_request(self) -> DiscoveryConfig:
        if self.camera_budget_s < self.timeout_s:
            raise ValueError(
                f"camera_budget_s ({self.camera_budget_s:g}) is less than timeout_s "
                f"({self.timeout_s:g}): one camera's budget must hold at least one request"
            )
        return self


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
        description="Largest picture (width x height) decoded, from a snapshot's JPEG, PNG or "
        "BMP header or a stream's SPS, before any decode; larger ones are refused (8K UHD by "
        "default)",
    )
    unusable_http_s: float = Field(
        300.0,
        ge=0,
        le=86_400,
        description="After a camera's HTTP snapshot answered something that is not a usable "
        "picture (an HTML page, garbage), its pictures come from its RTSP stream for this long "
        "before HTTP is asked again (0: ask every time)",
    )
