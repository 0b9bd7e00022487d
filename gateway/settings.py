"""Configuration models: the TOML file in `config/`, validated once at start-up.

Networks and categories are data. Nothing in the code names `police` or `governance`; a fourth
network is one more `[[networks]]` block. Secrets are references resolved at load time.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from adapters.config import AccessConfig, CredentialRef, DiscoveryConfig, SnapshotConfig
from adapters.config_errors import ConfigError, read_toml, validation_lines
from adapters.gb28181.config import SipServiceConfig
from adapters.quality.thresholds import QualityConfig
from adapters.redis_link import RedisLink

from .models import ALWAYS_SHARED, Camera, Maintenance

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "camgw.toml"

Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")]
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Strict(BaseModel):
    """Base for every config model: unknown keys are typos, and typos are errors."""

    # hide_input_in_errors: a refused value (an RTSP URI with a password in it, a token) is
    # never echoed back in the error a person or a log sees; the message names the key.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


# Response bodies kept per registry version (catalog.py), by their bytes (a body and its gzip
# copy), not their number: one full list of 100,000 cameras is ~150 MB, and a viewer varying
# `limit` used to make up to 256 of them (docs/registry.md). 64 MiB holds thousands of dashboard
# pages, or four pages of 10,000 cameras; a district's version lasts seconds (health rounds).
BODY_CACHE_BYTES = 64 << 20


class ServerConfig(Strict):
    host: str = Field("127.0.0.1", description="Address the API listens on")
    port: int = Field(8080, ge=0, le=65535, description="TCP port (0 picks a free one)")
    max_body_bytes: int = Field(1 << 20, ge=1024, le=64 << 20, description="JSON body limit")
    max_import_bytes: int = Field(4 << 20, ge=1024, le=256 << 20, description="Import limit")
    access_log: bool = Field(True, description="One structured log line per request")
    adapters: Literal["process", "thread", "loop"] = Field(
        "process",
        description="Where in-process networks' adapters read cameras: in a child process of "
        "their own (process), on a thread of their own (thread: no better under CPython's GIL, "
        "measured) or on the API's event loop (loop); docs/discovery.md, 'Where the reads run'",
    )
    adapter_niceness: int = Field(
        5,
        ge=0,
        le=19,
        description='With adapters = "process": added to the child\'s CPU niceness, so that the '
        "API's loop, woken by a request, preempts the camera reads on a shared core",
    )
    body_cache_bytes: int = Field(
        BODY_CACHE_BYTES,
        ge=1 << 20,
        le=16 << 30,
        description="Response bodies (lists, summaries) kept per registry version, in bytes",
    )


class RedisConfig(RedisLink):
    """The registry Redis as the gateway reaches it: `adapters.redis_link.RedisLink` (URL, prefix,
    TLS files, ACL user and where its password is), the same model an edge adapter's `[redis]`
    is; `REDIS_URL` replaces `url`."""

    url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="Registry Redis, redis:// or rediss:// (TLS), a Sentinel set: "
        "redis+sentinel://host:port,host:port,.../service/db (rediss+sentinel:// with TLS), "
        "or a cluster: redis+cluster://host:port,host:port,... (rediss+cluster:// with TLS; "
        "the prefix a hash tag, {name}); docs/deployment.md; REDIS_URL wins",
    )


class SecretsConfig(Strict):
    key_file: Path = Field(Path("var/camgw.key"), description="Credential key; CAMGW_KEY_FILE wins")


class HistoryConfig(Strict):
    """Each camera's status changes, kept per network (`<prefix>:history:status:<network>`,
    written by the same script as the change): availability and the outage report read them."""

    status_days: int = Field(
        100, ge=1, le=3660, description="Days of status changes kept (at least 90 for a quarter)"
    )
    status_max_entries: int = Field(
        2_000_000,
        ge=1000,
        le=100_000_000,
        description="Status changes kept per network at most, whatever their age (a cap on "
        "the memory a flapping fleet can take: about 150 bytes each)",
    )


class AuditConfig(Strict):
    """The audit stream in Redis holds the newest `max_entries`; older entries are archived to
    files of `segment_entries` before they are trimmed (docs/security.md, "Audit")."""

    max_entries: int = Field(
        10_000_000,
        ge=10,
        description="Entries the Redis stream holds; beyond them the oldest are archived, "
        "then trimmed",
    )
    segment_entries: int = Field(
        10_000, ge=1, le=1_000_000, description="Entries per archive file (JSON Lines)"
    )
    archive_dir: Path = Field(
        Path("var/audit"),
        description="Where archive segments are written; gateways sharing a Redis should share it",
    )
    archive_interval_s: float = Field(
        60.0, gt=0, le=3600, description="How often a gateway checks whether to archive"
    )
    refusal_sources: int = Field(
        1000,
        ge=1,
        le=100_000,
        description="Sources of unauthenticated requests counted apart per minute (the rest "
        "together)",
    )

    @model_validator(mode="after")
    def _segment_fits(self) -> Self:
        if self.segment_entries > self.max_entries:
            raise ValueError("audit.segment_entries must not exceed audit.max_entries")
        return self


class SnapshotSettings(SnapshotConfig):
    """Adapter-side limits (inherited) plus the gateway's cache, pacing and circuit breaker."""

    cache_bytes: int = Field(64 << 20, ge=1 << 20, le=8 << 30, description="Snapshot cache size")
    min_interval_s: float = Field(1.0, ge=0, le=60, description="Per camera, between fetches")
    breaker_failures: int = Field(3, ge=1, le=100, description="Failures that open a circuit")
    breaker_backoff_s: float = Field(5.0, gt=0, le=600, description="First open period")
    breaker_max_backoff_s: float = Field(300.0, gt=0, le=86_400, description="Longest one")
    image_workers: int = Field(2, ge=1, le=32, description="Threads for decode/resize/watermark")
    jpeg_quality: int = Field(85, ge=30, le=100)


# What a network shares when its policy does not say: what the ops-center dashboard needs to show
# where a camera is, who answers for it and whether it works; nothing about how to reach it.
DASHBOARD_FIELDS = (
    "name",
    "category",
    "department",
    "carrier",
    "project",
    "location",
    "status",
    "last_seen",
    "last_error",
    "capabilities",
    "source",
    "tags",
    "created_at",
    "updated_at",
    "rev",
    "lifecycle",
    "lifecycle_since",
)


class EdgeSettings(Strict):
    """How the gateway talks to edge adapters (docs/edge.md)."""

    heartbeat_timeout_s: float = Field(
        15.0, gt=0, le=600, description="An adapter not heard from this long is not connected"
    )
    restart_grace_s: float = Field(
        60.0, ge=0, le=3600, description="A running discovery waits this long for it to return"
    )
    discovery_timeout_s: float = Field(3600.0, gt=0, le=86_400, description="A whole discovery")
    probe_timeout_s: float = Field(30.0, gt=0, le=600, description="A health round's answer")
    snapshot_timeout_s: float = Field(10.0, gt=0, le=120, description="A snapshot's answer")
    reclaim_idle_s: float = Field(
        60.0, gt=0, le=3600, description="Outbox entries another gateway left unacknowledged"
    )
    max_message_bytes: int = Field(64 << 10, ge=4096, le=1 << 20)
    inbox_max_entries: int = Field(100_000, ge=1000, le=10_000_000)


class SharingPolicy(Strict):
    """What a network's owner lets leave the network. Pure data; decisions live in policy.py."""

    reason_required: bool = Field(False, description="Snapshots need an incident/ticket reference")
    watermark: bool = Field(True, description="Burn operator, time and camera id into snapshots")
    max_width: int = Field(1920, ge=64, le=7680, description="Largest snapshot width served")
    cache_ttl_s: float = Field(2.0, ge=0, le=60, description="Snapshot cache lifetime")
    rate_limit_per_minute: int = Field(60, ge=1, le=10_000, description="Snapshots per operator")
    share: tuple[str, ...] = Field(
        DASHBOARD_FIELDS,
        description="Record fields non-admins see (an allow-list: a field not named here, or "
        "added to the record later, is not shared); id and network always are",
    )

    @field_validator("share")
    @classmethod
    def _known_fields(cls, share: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [f for f in share if f not in Camera.model_fields]
        if unknown:
            known = ", ".join(Camera.model_fields)
            raise ValueError(f"unknown record field {unknown[0]!r}; record fields are: {known}")
        return tuple(dict.fromkeys((*ALWAYS_SHARED, *share)))


class NetworkConfig(Strict):
    id: Slug
    name: str = Field(min_length=1, max_length=100)
    name_zh: str = Field("", max_length=100)
    mode: Literal["in-process", "edge"] = Field(
        "in-process",
        description="in-process: this gateway reaches the cameras; edge: the network's own "
        "`camgw adapter` does, inside the network (docs/edge.md)",
    )
    cidrs: tuple[IPNetwork, ...] = Field(min_length=1, description="Camera address ranges")
    sharing: SharingPolicy = SharingPolicy()
    discovery: DiscoveryConfig = DiscoveryConfig()
    access: AccessConfig = AccessConfig()
    credentials: CredentialRef | None = Field(None, description="Camera credentials reference")
    quality: QualityConfig = Field(
        default_factory=QualityConfig, description="Video quality diagnosis (docs/quality.md)"
    )

    def contains(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(address.version == net.version and address in net for net in self.cidrs)


class CategoryConfig(Strict):
    id: Slug
    name: str = Field(min_length=1, max_length=100)
    name_zh: str = Field("", max_length=100)
    network: Slug | None = Field(None, description="The network this category's cameras are on")
    department: str = Field("", max_length=100)
    department_zh: str = Field("", max_length=100)
    carrier: str = Field("", max_length=100)
    carrier_zh: str = Field("", max_length=100)
    project: str = Field("", max_length=200)
    funding_10k_cny: float = Field(0, ge=0)
    planned: int = Field(0, ge=0, description="Cameras the inventory table lists")


class MaintenanceDefault(Maintenance):
    """The maintenance contact of a category's cameras (by one carrier, or any: ""), where a
    camera has none of its own (docs/lifecycle.md)."""

    category: Slug
    carrier: str = Field("", max_length=100, description='The cameras\' carrier; "": any')


class DashboardConfig(Strict):
    """The operations-center dashboard served at `/` (docs/dashboard.md)."""

    enabled: bool = Field(True, description="Serve the dashboard at / and /static/")
    tile_url: str = Field(
        "",
        max_length=500,
        description="Map tiles, e.g. https://tiles.example.gov/{z}/{x}/{y}.png (the deployment's "
        "own map service); the Content-Security-Policy allows images from its origin and nothing "
        'else from outside. "": positions on a plain background with a scale',
    )
    tile_max_zoom: int = Field(18, ge=1, le=22, description="Deepest zoom the tile service has")

    @field_validator("tile_url")
    @classmethod
    def _tile_template(cls, value: str) -> str:
        if not value:
            return value
        scheme, sep, rest = value.partition("://")
        host = rest.split("/", 1)[0]
        if scheme not in ("http", "https") or not sep or not host or "{" in host:
            raise ValueError("must be an http:// or https:// URL with a fixed host")
        if any(c in value for c in " '\"<>;,") or "@" in host:
            raise ValueError("must not contain spaces, quotes, <, >, ; , or user info")
        for name in ("{z}", "{x}", "{y}"):
            if name not in value:
                raise ValueError(f"must contain {name}")
        return value

    @property
    def tile_origin(self) -> str:
        """scheme://host[:port] of `tile_url` ("" when none): what the CSP allows."""
        if not self.tile_url:
            return ""
        scheme, _, rest = self.tile_url.partition("://")
        return f"{scheme}://{rest.split('/', 1)[0]}"


class Settings(Strict):
    server: ServerConfig = ServerConfig()
    redis: RedisConfig = RedisConfig()
    secrets: SecretsConfig = SecretsConfig()
    audit: AuditConfig = AuditConfig()
    history: HistoryConfig = HistoryConfig()
    snapshots: SnapshotSettings = SnapshotSettings()
    edge: EdgeSettings = EdgeSettings()
    dashboard: DashboardConfig = DashboardConfig()
    gb28181: SipServiceConfig = SipServiceConfig()
    networks: tuple[NetworkConfig, ...] = Field(min_length=1)
    categories: tuple[CategoryConfig, ...] = Field(min_length=1)
    discovered_category: Slug = Field(
        "unclassified", description="Category of cameras that discovery finds unregistered"
    )
    maintenance: tuple[MaintenanceDefault, ...] = ()

    model_config = ConfigDict(
        extra="forbid", frozen=True, ignored_types=(cached_property,), hide_input_in_errors=True
    )

    @model_validator(mode="after")
    def _ids_unique_and_linked(self) -> Self:
        _require_unique("networks", [n.id for n in self.networks])
        _require_unique("categories", [c.id for c in self.categories])
        known = {n.id for n in self.networks}
        for cat in self.categories:
            if cat.network is not None and cat.network not in known:
                raise ValueError(f"category {cat.id!r} names unknown network {cat.network!r}")
        if self.discovered_category not in {c.id for c in self.categories}:
            raise ValueError(f"discovered_category {self.discovered_category!r} is not a category")
        for p in self.gb28181.platforms:  # (docs/gb28181.md)
            if p.network not in known:
                raise ValueError(f"gb28181 platform {p.id} names unknown network {p.network!r}")
            if p.category is not None and p.category not in {c.id for c in self.categories}:
                raise ValueError(f"gb28181 platform {p.id}: category {p.category!r} unknown")
        for i, m in enumerate(self.maintenance):
            if m.category not in {c.id for c in self.categories}:
                raise ValueError(f"maintenance[{i}]: category {m.category!r} is not a category")
        return self

    def maintenance_for(self, camera: Camera) -> Maintenance | None:
        """Who fixes the camera: its own contact, else its category's for its carrier, else its
        category's for any carrier."""
        if camera.maintenance is not None:
            return camera.maintenance
        return self.maintenance_default(camera.category, camera.carrier)

    def maintenance_default(self, category: str, carrier: str) -> Maintenance | None:
        """The config's contact for a category's cameras by that carrier, else by any."""
        found = {(m.category, m.carrier): m for m in self.maintenance}
        default = found.get((category, carrier)) or found.get((category, ""))
        if default is None:
            return None
        return Maintenance.model_validate(default.model_dump(exclude={"category", "carrier"}))

    @cached_property
    def network_by_id(self) -> dict[str, NetworkConfig]:
        return {n.id: n for n in self.networks}

    @cached_property
    def category_by_id(self) -> dict[str, CategoryConfig]:
        return {c.id: c for c in self.categories}

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy with other networks or categories must not keep the original's lookups
        (pydantic copies the instance dict, where `cached_property` keeps its values)."""
        copy = super().model_copy(update=update, deep=deep)
        for name in ("network_by_id", "category_by_id"):
            copy.__dict__.pop(name, None)
        return copy


def _require_unique(what: str, ids: list[str]) -> None:
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValueError(f"duplicate {what} ids: {', '.join(dupes)}")


@dataclass(frozen=True, slots=True)
class EnvOverrides:
    """The few things the environment may override (12-factor style); empty means unset."""

    redis_url: str | None = None  # REDIS_URL
    config: Path | None = None  # CAMGW_CONFIG
    key_file: Path | None = None  # CAMGW_KEY_FILE

    @classmethod
    def read(cls, environ: Mapping[str, str] = os.environ) -> EnvOverrides:
        config, key_file = environ.get("CAMGW_CONFIG"), environ.get("CAMGW_KEY_FILE")
        return cls(
            redis_url=environ.get("REDIS_URL") or None,
            config=Path(config) if config else None,
            key_file=Path(key_file) if key_file else None,
        )


def load_settings(path: Path | None = None, *, use_env: bool = True) -> Settings:
    """Read and validate a config file; `REDIS_URL` replaces the file's Redis URL.

    Raises `ConfigError` (a ValueError) whose `lines` are what a person reads: the file and
    line of a TOML syntax error, a missing file, or every refused setting, named by the id of
    its `[[networks]]` or `[[categories]]` block (adapters/config_errors.py)."""
    env = EnvOverrides.read() if use_env else EnvOverrides()
    path = path or env.config or DEFAULT_CONFIG
    raw = read_toml(path, hint="set --config or CAMGW_CONFIG")
    origins: dict[tuple[int | str, ...], str] = {}
    if env.redis_url:
        _override(raw, "redis", "url", env.redis_url)
        origins["redis", "url"] = "REDIS_URL"
    if env.key_file:
        _override(raw, "secrets", "key_file", str(env.key_file))
        origins["secrets", "key_file"] = "CAMGW_KEY_FILE"
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        lines = validation_lines(exc, path, raw, Settings, blocks=_BLOCKS, origins=origins)
        raise ConfigError(*lines) from None  # (from None: a traceback shows no refused value)


# The arrays of tables whose blocks an error names by their id.
_BLOCKS = {"networks": "network", "categories": "category"}


def _override(raw: dict[str, Any], section: str, key: str, value: str) -> None:
    table = raw.setdefault(section, {})
    if isinstance(table, dict):  # else the file's `section = ...` is refused as not a table
        table[key] = value
