"""An edge adapter's own configuration file: what the network's owner decides, kept on the
adapter's machine inside the network (docs/edge.md). The gateway's config names no camera
credentials, addresses or export rules of an edge network; this file does."""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .config import AccessConfig, CredentialRef, DiscoveryConfig, SnapshotConfig
from .export import ExportPolicy
from .redis_link import RedisLink

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")]


class ConfigError(ValueError):
    """The adapter's config file cannot be used; the message names the file and the field."""


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
    """Read and validate the file; `network` (from the command line) must be the file's."""
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    try:
        cfg = AdapterConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "file"
        raise ConfigError(f"{path}: {where}: {first['msg']}") from None
    if network is not None and cfg.network != network:
        raise ConfigError(f"{path} configures network {cfg.network!r}, not {network!r}")
    return cfg
