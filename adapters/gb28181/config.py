"""The `[gb28181]` configuration: camgw's SIP service as a superior platform, and the lower
platforms allowed to register with it. Off unless `enabled`: the shipped config opens no port."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

GbCode = Annotated[str, Field(pattern=r"^[0-9]{20}$", description="A 20-digit GB/T 28181 code")]
SipDomain = Annotated[str, Field(pattern=r"^[0-9A-Za-z][0-9A-Za-z.-]{0,63}$")]
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class LowerPlatform(_Strict):
    """One lower platform (下级平台) allowed to register, and the camgw network it feeds."""

    id: GbCode = Field(description="Its 20-digit platform id (the REGISTER's From user)")
    domain: SipDomain = Field(description="Its SIP domain (usually the first 10 digits of its id)")
    name: str = Field("", max_length=100, description="Shown in GET /api/v1/networks")
    network: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")] = Field(
        description="The camgw network its channels become cameras of"
    )
    category: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")] | None = Field(
        None, description="Category of its channels (default: discovered_category)"
    )
    edition: Literal["2016", "2022"] | None = Field(
        None,
        description="The GB/T 28181 edition it speaks (default: its X-GB-Ver header, else 2016)",
    )
    media_transport: Literal["udp", "tcp"] = Field(
        "udp",
        description="How its live video reaches camgw: RTP over UDP, or over TCP (RFC 4571, "
        "camgw passive: the platform connects), for platforms behind NAT or firewalls",
    )
    password_env: str | None = Field(None, description="Environment variable holding its password")
    password_file: Path | None = Field(None, description="File holding it (first line)")
    cidrs: tuple[IPNetwork, ...] = Field(
        min_length=1, description="Address ranges its signalling may come from"
    )

    @model_validator(mode="after")
    def _one_source(self) -> LowerPlatform:
        if (self.password_env is None) == (self.password_file is None):
            raise ValueError("give exactly one of password_env and password_file")
        return self

    def password(self) -> str | None:
        """None when the referenced secret is absent (the platform is then refused, logged)."""
        if self.password_env is not None:
            return os.environ.get(self.password_env) or None
        assert self.password_file is not None
        try:
            return self.password_file.read_text().splitlines()[0].strip() or None
        except (OSError, IndexError):
            return None

    def allows(self, address: str) -> bool:
        try:
            addr = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(addr.version == n.version and addr in n for n in self.cidrs)


class SipServiceConfig(_Strict):
    enabled: bool = Field(False, description="Run the SIP service (opens its ports)")
    host: str = Field("127.0.0.1", description="Address the SIP service listens on")
    udp_port: int = Field(5060, ge=0, le=65535, description="UDP port (0 picks a free one)")
    tcp_port: int = Field(5060, ge=0, le=65535, description="TCP port (0 picks a free one)")
    transports: tuple[Literal["udp", "tcp"], ...] = Field(("udp", "tcp"), min_length=1)
    id: GbCode = Field("31011700002000000001", description="camgw's own platform id")
    domain: SipDomain = Field("3101170000", description="camgw's SIP domain (the digest realm)")
    max_message_bytes: int = Field(16 << 10, ge=1024, le=64 << 10, description="Per message")
    max_headers: int = Field(48, ge=16, le=128, description="Header lines per message")
    register_expires_s: tuple[int, int] = Field(
        (60, 86_400), description="Registration lifetime allowed: [shortest, longest]"
    )
    nonce_ttl_s: float = Field(300.0, ge=10, le=3600, description="A digest nonce's life")
    keepalive_interval_s: float = Field(60.0, ge=5, le=3600, description="Expected interval")
    keepalive_misses: int = Field(3, ge=1, le=20, description="Missed keepalives = offline")
    catalog_page_timeout_s: float = Field(
        30.0, ge=1, le=600, description="A catalog that sends no page this long has stopped"
    )
    catalog_max_channels: int = Field(
        100_000,
        ge=1,
        le=1_000_000,
        description="Items one catalog may hold (SumNum above: refused)",
    )
    snapshot_upload_host: str = Field(
        "127.0.0.1",
        description="Address the snapshot upload server listens on, and names in the one-time "
        "URLs it gives (lower platforms must reach it)",
    )
    media_host: str = Field(
        "127.0.0.1",
        description="Address camgw receives live video (PS over RTP) on, named in its INVITEs",
    )
    snapshot_upload_port: int = Field(8081, ge=0, le=65535, description="(0 picks a free one)")
    max_snapshot_bytes: int = Field(8 << 20, ge=64 << 10, le=64 << 20, description="Per upload")
    snapshot_timeout_s: float = Field(
        10.0, gt=0, le=120, description="From the command to UploadSnapShotFinished"
    )
    max_tcp_connections: int = Field(64, ge=1, le=10_000)
    tcp_idle_s: float = Field(300.0, ge=5, le=3600, description="An idle TCP connection closes")
    platforms: tuple[LowerPlatform, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> SipServiceConfig:
        ids = [p.id for p in self.platforms]
        if len(set(ids)) != len(ids):
            raise ValueError("gb28181.platforms: duplicate platform ids")
        low, high = self.register_expires_s
        if not 1 <= low <= high:
            raise ValueError("gb28181.register_expires_s: [shortest, longest], shortest >= 1")
        return self

    @property
    def platform_by_id(self) -> dict[str, LowerPlatform]:
        return {p.id: p for p in self.platforms}
