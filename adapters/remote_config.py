"""An edge adapter's own configuration file: what the network's owner decides, kept on the
adapter's machine inside the network (docs/edge.md). The gateway's config names no camera
credentials, addresses or export rules of an edge network; this file does."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .config import AccessConfig, CredentialRef, DiscoveryConfig, SnapshotConfig
from .config_errors import ConfigError, read_toml, validation_lines
from .export import ExportPolicy
from .redis_link import RedisLink

__all__ = ["AdapterConfig", "ConfigError", "load_adapter_config"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")]


class AdapterConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    network: Slug = Field(description="The network this adapter serves (its id at the gateway)")
    cidrs: tuple[IPNetwork, ...] = Field(min_length=1, description="Its cameras' address ranges")
    redis: RedisLink = Field(description="The registry Redis, reached outward (rediss://)")
    key_file: Path = Field(
        description="This adapter's secret: keys its camera refs, seals the cameras' own "
        "credentials and chains its log (create it with `camgw adapter keygen`)"
    )
    state_dir: Path = Field(description="Its camera table, sealed credentials and log")
    credentials: CredentialRef | None = Field(None, description="The network's camera password")
    discovery: DiscoveryConfig = DiscoveryConfig()
    snapshots: SnapshotConfig = SnapshotConfig()
    access: AccessConfig = AccessConfig()
    export: ExportPolicy = ExportPolicy()
    heartbeat_s: float = Field(5.0, gt=0, le=300, description="How often it says it is alive")
    concurrency: int = Field(32, ge=1, le=1024, description="Requests handled at once")
    cache_ttl_s: float = Field(
        1.0, ge=0, le=60, description="A picture serves every request for it this long"
    )
    outbox_max_entries: int = Field(100_000, ge=1000, le=10_000_000)


def load_adapter_config(path: Path, network: str | None = None) -> AdapterConfig:
    """Read and validate the file; `network` (from the command line) must be the file's.
    Raises `ConfigError`, one line per finding, each naming the file (and line, or setting)."""
    raw = read_toml(path, hint="check --config")
    try:
        cfg = AdapterConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(*validation_lines(exc, path, raw, AdapterConfig)) from None
    if network is not None and cfg.network != network:
        raise ConfigError(f"{path} configures network {cfg.network!r}, not {network!r}")
    return cfg
