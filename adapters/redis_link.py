"""The link to the registry Redis, for the gateway and for an edge adapter (docs/edge.md,
"Redis: TLS and ACLs"): one settings model, `RedisLink`, and one way to open it, `connect`.

- `rediss://` is TLS with the server's certificate always verified: against `ca_file` only
  when it is given (a private CA; the system's CAs are then not trusted), else against the
  system's CAs; the host name (or IP address) of the URL must be in the certificate.
  `cert_file`/`key_file` are the client certificate for servers with `tls-auth-clients yes`.
- `redis://` (plain) is allowed to a loopback address; elsewhere only with
  `allow_plaintext = true`, since the password and the registry would cross the wire in clear.
- The password is never a literal: `password_env` names an environment variable,
  `password_file` a file (its first line). Neither the URL (no user or password in it) nor an
  error message, log line or repr ever holds it. It is read again for each new connection, so
  a rotated password file is picked up without a restart.
- On connect, redis-py sends only `HELLO 3 AUTH <user> <password>` (and `SELECT` for a database
  other than 0), then `PING` as a health check: no `CLIENT SETINFO`, no
  `CLIENT MAINT_NOTIFICATIONS`, so an ACL user needs nothing beyond `+hello +auth +ping`.

Replicated (docs/deployment.md, "Replicated: Redis Sentinel"): `redis+sentinel://` (or
`rediss+sentinel://`, TLS to the Sentinels and the data nodes alike) names a Sentinel set and
the service (`sentinel monitor <service> ...`):

    redis+sentinel://10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379/camgw/0

Every new connection asks the Sentinels for the service's primary, so after a failover the
next connections go to the new primary without a restart; commands in flight on the old one
fail (the gateway answers 503) and are not retried (a registry write is not idempotent). The
ACL login (`username`, `password_*`) and the TLS files apply to the data nodes; the Sentinels
take `sentinel_username` and `sentinel_password_env`/`sentinel_password_file` (a Sentinel's
`requirepass` or ACL user), or nothing. Redis replication is asynchronous: an acknowledged
write can be lost in a failover. `replicas_to_ack` with `wait_for_replicas` (WAIT) makes a
write count as done only once that many replicas have it.

District (docs/deployment.md, "District: Redis Cluster"): `redis+cluster://` (or
`rediss+cluster://`, TLS to every node) names seed nodes of a Redis Cluster:

    redis+cluster://10.0.0.1:6379,10.0.0.2:6379,10.0.0.3:6379/0

A registry's write and its audit entry are one Lua script, which must find all its keys on one
node: so every key of a registry must be in one hash slot, and on a cluster the prefix must be a
hash tag, `{town-a}` (refused at load otherwise, naming `prefix`). A district spreads over the
masters by running one registry (one prefix) per town. Since a registry is one slot, the client
is a plain one whose connections all go to the master that serves that slot, as the cluster
names it (CLUSTER SLOTS, asked of the seed nodes) when a connection opens: scripts, pipelines,
MULTI, pub/sub, blocking stream reads and WAIT behave as on one server. A reply that the slot
is elsewhere (MOVED: a failover or a resharding moved it; ASK, TRYAGAIN: it is being moved;
CLUSTERDOWN) fails the command with SlotMoved, a connection error (503), not retried, and the
next connection goes to the master the cluster names then. redis-py's RedisCluster is not used:
it sends a script without KEYS (and WAIT) to a random node, has no single-connection client
for WAIT, and retries a write on a connection error.

This module does not import the gateway: an edge adapter uses it on its own.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import os
import re
import ssl
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, NamedTuple, Self
from urllib.parse import SplitResult, urlsplit

import redis
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import Connection, SSLConnection
from redis.asyncio.sentinel import (
    MasterNotFoundError,
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedSSLConnection,
)
from redis.crc import key_slot
from redis.credentials import CredentialProvider
from redis.exceptions import (
    AskError,
    AuthenticationError,
    ClusterDownError,
    MovedError,
    NoPermissionError,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")]
# A key prefix: a slug, or a slug in braces, a hash tag: every key of the registry then hashes
# to one cluster slot, that of the name in braces.
Prefix = Annotated[str, Field(pattern=r"^(\{[a-z0-9][a-z0-9-]{0,31}\}|[a-z0-9][a-z0-9-]{0,31})$")]
Address = tuple[str, int]

POOL_WAIT_S = 5.0  # a caller waits this long for a free connection of the bounded pool
HEALTH_CHECK_S = 15.0  # an idle connection is PINGed before reuse after this long
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
_SCHEMES = ("redis", "rediss", *SENTINEL_SCHEMES, *CLUSTER_SCHEMES)
_SERVICE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_USER = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_ENV = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
_MAX_SENTINELS = 16
_MAX_SEEDS = 16

# What redis-py may send besides the caller's commands, switched off: CLIENT SETINFO and
# CLIENT MAINT_NOTIFICATIONS (Redis Enterprise maintenance events). Each needs an ACL right
# (`client|setinfo` does not even exist before Redis 7.2), and a refused one is an ACL LOG entry.
_QUIET: dict[str, Any] = {}
if hasattr(redis, "DriverInfo"):  # redis-py >= 7.2: driver_info=None disables CLIENT SETINFO
    _QUIET["driver_info"] = None
else:  # pragma: no cover - older redis-py
    _QUIET["lib_name"] = None
    _QUIET["lib_version"] = None
try:
    from redis.maint_notifications import MaintNotificationsConfig
except ImportError:  # pragma: no cover - redis-py without maintenance notifications
    pass
else:
    _QUIET["maint_notifications_config"] = MaintNotificationsConfig(enabled=False)


class RedisLinkError(RedisConnectionError):
    """The link cannot be made as configured. The message names the setting or file to look at
    and never holds a password."""


class NoPrimary(RedisLinkError, MasterNotFoundError):
    """No Sentinel of the set names a primary of the service that is up (a failover under way,
    no Sentinel reachable, a wrong service name, or a refused login). A connection error: the
    gateway answers 503 and the next connection asks the Sentinels again."""


class NoSlotOwner(RedisLinkError):
    """No seed node of a cluster link names a master for the registry's slot that may be used
    (none reachable, a refused login, not a cluster, the slot served by nobody). A connection
    error: the gateway answers 503 and the next connection asks the seed nodes again."""


class SlotMoved(RedisConnectionError):
    """The node a connection is on does not serve the registry's slot (any more): MOVED (moved
    by a failover or a resharding), ASK or TRYAGAIN (being moved), CLUSTERDOWN. The command was
    not run. A connection error: the gateway answers 503; the connection is closed, and the next
    one goes to the master the cluster names then."""


class OutsideSlot(ResponseError):
    """A command touched a key in another slot than the registry's (a key not under the
    prefix): a bug, not a cluster event. Never retried."""


class NotReplicated(RedisError):
    """A write went to the primary, but fewer than `replicas_to_ack` replicas confirmed it
    within `ack_timeout_ms`: it may survive a failover or not, so it must not be acknowledged
    as done (the gateway answers 503; the write itself is not undone)."""


class _Target(NamedTuple):
    """What a valid URL says."""

    scheme: str
    addresses: tuple[Address, ...]  # the server, or the Sentinels
    service: str | None  # the Sentinel service; None: a direct link
    db: int


class RedisLink(BaseModel):
    """Where the registry Redis is and how to reach it safely. `[redis]` in the gateway's config
    (`gateway.settings.RedisConfig`) and in an edge adapter's."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="redis://host:port/db or rediss://host:port/db (TLS); or a Sentinel set: "
        "redis+sentinel://host:port,host:port,.../service/db (rediss+sentinel:// with TLS); or "
        "a cluster's seed nodes: redis+cluster://host:port,host:port,... (rediss+cluster:// "
        "with TLS); no user, password or query in it",
    )
    prefix: Prefix = Field(
        "camgw",
        description="Key prefix, so several registries can share a Redis; on a cluster a hash "
        "tag, {name}, so that all the registry's keys are in one slot",
    )
    username: str | None = Field(
        None,
        pattern=_USER,
        description="Redis ACL user (`camgw acl`); none: the default user",
    )
    password_env: str | None = Field(
        None,
        pattern=_ENV,
        description="Environment variable holding the password",
    )
    password_file: Path | None = Field(
        None, description="File holding the password (first line; keep it mode 600)"
    )
    sentinel_username: str | None = Field(
        None,
        pattern=_USER,
        description="redis+sentinel://: the Sentinels' ACL user; none: their default user",
    )
    sentinel_password_env: str | None = Field(
        None,
        pattern=_ENV,
        description="redis+sentinel://: environment variable holding the Sentinels' password "
        "(their requirepass, or sentinel_username's); none: the Sentinels ask for none",
    )
    sentinel_password_file: Path | None = Field(
        None, description="redis+sentinel://: file holding the Sentinels' password (first line)"
    )
    ca_file: Path | None = Field(
        None,
        description="rediss://: PEM CA certificate(s) the server's certificate must chain to "
        "(only these are trusted); none: the system's CAs",
    )
    cert_file: Path | None = Field(
        None, description="rediss://: client certificate (PEM) for mutual TLS"
    )
    key_file: Path | None = Field(
        None, description="rediss://: the client certificate's private key (PEM, unencrypted)"
    )
    allow_plaintext: bool = Field(
        False, description="Allow plain redis:// to a host that is not a loopback address"
    )
    socket_timeout_s: float = Field(5.0, gt=0, le=300, description="One command's reply")
    connect_timeout_s: float = Field(
        2.0, gt=0, le=60, description="Opening a connection (and a Sentinel's reply)"
    )
    replicas_to_ack: int = Field(
        0,
        ge=0,
        le=16,
        description="A registry write counts as done once this many replicas have it (WAIT); "
        "0: once the primary has it (replication is asynchronous: a failover can lose it)",
    )
    ack_timeout_ms: int = Field(
        1000,
        ge=1,
        le=60_000,
        description="How long a write waits for replicas_to_ack replicas; then 503",
    )

    @model_validator(mode="before")
    @classmethod
    def _redact(cls, data: Any) -> Any:
        """A URL with a user, password or query is refused below; redacted first, so that no
        error shows what was there (pydantic echoes a field's input, and an enclosing model's
        config decides whether to hide it, not this one's)."""
        if isinstance(data, dict) and isinstance(data.get("url"), str):
            redacted = _redacted(data["url"])
            if redacted != data["url"]:
                data = {**data, "url": redacted}
        return data

    @field_validator("url")
    @classmethod
    def _url_shape(cls, url: str) -> str:
        _parse(url)  # raises ValueError, saying what is wrong
        return url

    @field_validator("prefix")
    @classmethod
    def _one_slot(cls, prefix: str, info: ValidationInfo) -> str:
        """On a cluster, every key of the registry in one slot: the prefix is a hash tag."""
        url = info.data.get("url")  # absent when the url itself was refused
        if isinstance(url, str) and _parse(url).scheme in CLUSTER_SCHEMES and prefix[0] != "{":
            raise ValueError(
                f"{prefix!r} is not a hash tag, and url is a Redis Cluster: each registry write "
                "and its audit entry are one script, so all the registry's keys must be in one "
                f'slot; write prefix = "{{{prefix}}}" (a district: one prefix per town, e.g. '
                f'"{{{prefix}-north}}", spreads the towns over the masters)'
            )
        return prefix

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.password_env is not None and self.password_file is not None:
            raise ValueError("give at most one of password_env and password_file")
        if self.username is not None and not self.has_password:
            raise ValueError(f"username {self.username!r} needs password_env or password_file")
        sentinel_auth = [
            n
            for n in ("sentinel_username", "sentinel_password_env", "sentinel_password_file")
            if getattr(self, n) is not None
        ]
        if sentinel_auth and not self.sentinel:
            raise ValueError(
                f"{', '.join(sentinel_auth)} need a redis+sentinel:// or rediss+sentinel:// url"
            )
        if self.sentinel_password_env is not None and self.sentinel_password_file is not None:
            raise ValueError("give at most one of sentinel_password_env and sentinel_password_file")
        if self.sentinel_username is not None and not self.has_sentinel_password:
            raise ValueError(
                f"sentinel_username {self.sentinel_username!r} needs sentinel_password_env or "
                "sentinel_password_file"
            )
        tls_files = [n for n in ("ca_file", "cert_file", "key_file") if getattr(self, n)]
        if tls_files and not self.tls:
            raise ValueError(f"{', '.join(tls_files)} need a rediss:// url (TLS)")
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file needs cert_file (the client certificate it belongs to)")
        if not self.tls and not self.loopback and not self.allow_plaintext:
            remote = next(h for h, _ in self.addresses if not _is_loopback(h))
            secure = f"rediss{self.scheme.removeprefix('redis')}://"  # the scheme with TLS
            raise ValueError(
                f"url: plain {self.scheme}:// to {remote}, which is not a loopback address, "
                f"would send the password and the registry in clear; use {secure} (with "
                "ca_file), or set allow_plaintext = true for a network you trust"
            )
        if self.replicas_to_ack and self.ack_timeout_ms >= self.socket_timeout_s * 1000:
            raise ValueError(
                f"ack_timeout_ms {self.ack_timeout_ms} must be below socket_timeout_s "
                f"({self.socket_timeout_s:g} s): WAIT answers only after it"
            )
        return self

    # -- what the URL says --------------------------------------------------------------------

    @property
    def scheme(self) -> str:
        return _parse(self.url).scheme

    @property
    def tls(self) -> bool:
        return self.scheme.startswith("rediss")

    @property
    def sentinel(self) -> bool:
        """The URL names a Sentinel set (and a service), not a server."""
        return self.scheme in SENTINEL_SCHEMES

    @property
    def cluster(self) -> bool:
        """The URL names seed nodes of a Redis Cluster."""
        return self.scheme in CLUSTER_SCHEMES

    @property
    def addresses(self) -> tuple[Address, ...]:
        """The server's address, the Sentinels', or a cluster's seed nodes', as the URL gives
        them."""
        return _parse(self.url).addresses

    @property
    def seeds(self) -> tuple[Address, ...]:
        """The seed nodes of a cluster link; () for another."""
        return self.addresses if self.cluster else ()

    @property
    def slot(self) -> int:
        """The cluster slot of the registry's keys (their hash tag's, if the prefix is one)."""
        return int(key_slot(f"{self.prefix}:".encode()))

    @property
    def sentinels(self) -> tuple[Address, ...]:
        """The Sentinels of a Sentinel link; () for a direct one."""
        return self.addresses if self.sentinel else ()

    @property
    def service(self) -> str | None:
        """The Sentinel service (the name in `sentinel monitor`); None for a direct link."""
        return _parse(self.url).service

    @property
    def host(self) -> str:
        """The server's host; for a Sentinel link, the first Sentinel's; for a cluster link, the
        first seed node's."""
        return self.addresses[0][0]

    @property
    def port(self) -> int:
        """The server's port; for a Sentinel link, the first Sentinel's."""
        return self.addresses[0][1]

    @property
    def shown(self) -> str:
        """The URL as logs and messages show it: scheme, host(s), port(s), service and
        database, nothing else (a URL built around validation could still hold a password)."""
        hosts = ",".join(_host_port(a) for a in self.addresses)
        service = f"/{self.service}" if self.service else ""
        return f"{self.scheme}://{hosts}{service}/{self.db}"

    @property
    def db(self) -> int:
        return _parse(self.url).db

    @property
    def loopback(self) -> bool:
        """Every address of the URL is a loopback address (a Sentinel link's data nodes, and
        the master a cluster names, are checked when named)."""
        return all(_is_loopback(h) for h, _ in self.addresses)

    @property
    def has_password(self) -> bool:
        return self.password_env is not None or self.password_file is not None

    @property
    def has_sentinel_password(self) -> bool:
        return self.sentinel_password_env is not None or self.sentinel_password_file is not None

    @property
    def password_source(self) -> str:
        """Where the password comes from, for messages: never the password."""
        return _source("", self.password_env, self.password_file)

    @property
    def sentinel_password_source(self) -> str:
        return _source("sentinel_", self.sentinel_password_env, self.sentinel_password_file)

    def password(self) -> str | None:
        """The password, read now from its environment variable or file; None without one."""
        return _secret("", self.password_env, self.password_file)

    def sentinel_password(self) -> str | None:
        """The Sentinels' password, read now; None without one."""
        return _secret("sentinel_", self.sentinel_password_env, self.sentinel_password_file)


def _source(setting: str, env: str | None, file: Path | None) -> str:
    if env is not None:
        return f"{setting}password_env {env}"
    if file is not None:
        return f"{setting}password_file {file}"
    return "(no password)"


def _secret(setting: str, env: str | None, file: Path | None) -> str | None:
    """`env`'s value or `file`'s first line; errors name the setting, never a value."""
    if env is not None:
        value = os.environ.get(env)
        if not value:
            raise RedisLinkError(
                f"redis {setting}password_env {env}: the variable is not set or empty"
            )
        return value
    if file is not None:
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "unreadable"
            raise RedisLinkError(
                f"redis {setting}password_file {file}: cannot read it ({reason})"
            ) from None
        value = lines[0].strip() if lines else ""
        if not value:
            raise RedisLinkError(f"redis {setting}password_file {file}: it is empty")
        return value
    return None


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_port(address: Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@functools.lru_cache(maxsize=256)
def _parse(url: str) -> _Target:
    """The scheme, address(es), service and database of `url`; ValueError says what is
    wrong (a URL here has been redacted: it shows no password)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ValueError("not a valid redis:// or rediss:// URL") from None
    if parts.scheme not in _SCHEMES:
        raise ValueError(
            "must start with redis:// or rediss:// (TLS), redis+sentinel:// or "
            "rediss+sentinel:// for a Sentinel set, or redis+cluster:// or rediss+cluster:// "
            "for a Redis Cluster"
        )
    if "@" in parts.netloc:
        raise ValueError(
            "must not carry a user or password: set `username` and `password_env` or "
            "`password_file` instead"
        )
    if parts.query or parts.fragment:
        raise ValueError(
            "must not carry options (?...): TLS and timeouts are settings of their own"
        )
    if parts.scheme in SENTINEL_SCHEMES:
        return _parse_sentinel(parts)
    if parts.scheme in CLUSTER_SCHEMES:
        return _parse_cluster(parts)
    try:
        port = parts.port
    except ValueError:
        raise ValueError("not a valid redis:// or rediss:// URL") from None
    if not parts.hostname:
        raise ValueError("names no host")
    if port == 0:
        raise ValueError("port 0 is not a port to connect to")
    db = parts.path.strip("/")
    if db and not (db.isdigit() and int(db) < 1 << 16):
        raise ValueError("the path must be a database number, e.g. /0")
    return _Target(parts.scheme, ((parts.hostname, port or 6379),), None, int(db or 0))


def _parse_sentinel(parts: SplitResult) -> _Target:
    """`host:port,host:port,.../service[/db]`: every Sentinel with its port (no default: a
    Sentinel's port is not a data node's), a service name, a database number (0 if none)."""
    shape = "redis+sentinel://host:port,host:port,.../service/db"
    addresses = _address_list(parts.netloc, "sentinel", "the Sentinel's port, e.g. 26379", shape)
    if len(addresses) > _MAX_SENTINELS:
        raise ValueError(f"names {len(addresses)} Sentinels; at most {_MAX_SENTINELS}")
    segments = parts.path.strip("/").split("/") if parts.path.strip("/") else []
    if not segments:
        raise ValueError(
            f"names no service: the url is {shape}, the service being the name of "
            "`sentinel monitor <service> ...`"
        )
    if len(segments) > 2:
        raise ValueError(f"the path must be /service or /service/db ({shape})")
    service = segments[0]
    if not re.fullmatch(_SERVICE, service):
        raise ValueError("the service name must be letters, digits, '.', '_' or '-' (at most 64)")
    db = segments[1] if len(segments) == 2 else "0"
    if not (db.isdigit() and int(db) < 1 << 16):
        raise ValueError(f"the database must be a number, e.g. /{service}/0")
    return _Target(parts.scheme, tuple(addresses), service, int(db))


def _parse_cluster(parts: SplitResult) -> _Target:
    """`host:port,host:port,...[/0]`: seed nodes of the cluster, each with its port; any node
    will do, several in case one is down. A cluster has one database, 0."""
    shape = "redis+cluster://host:port,host:port,.../0"
    addresses = _address_list(parts.netloc, "node", "a cluster node's port, e.g. 6379", shape)
    if len(addresses) > _MAX_SEEDS:
        raise ValueError(f"names {len(addresses)} seed nodes; at most {_MAX_SEEDS}")
    if parts.path.strip("/") not in ("", "0"):
        raise ValueError(f"a Redis Cluster has only database 0: the url is {shape}")
    return _Target(parts.scheme, addresses, None, 0)


def _address_list(netloc: str, noun: str, port_hint: str, shape: str) -> tuple[Address, ...]:
    """`host:port,host:port,...`, each with its port (no default), none twice."""
    addresses: list[Address] = []
    for item in netloc.split(","):
        try:
            one = urlsplit(f"//{item}")
            host, port, whole = one.hostname, one.port, one.netloc == item
        except ValueError:
            host, port, whole = None, None, False
        if not (item and host and port is not None and whole):
            raise ValueError(f"{noun} {item!r} is not host:port ({port_hint}); the url is {shape}")
        if port == 0:
            raise ValueError(f"{noun} {item!r}: port 0 is not a port to connect to")
        if (host, port) in addresses:
            raise ValueError(f"{noun} {item!r} is named twice")
        addresses.append((host, port))
    return tuple(addresses)


def _redacted(url: str) -> str:
    """`url` with everything up to its last "@" (a user and password, even a malformed one)
    and its query and fragment replaced by "***"; unchanged when it has none of them."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "***" if "@" in url else url
    if "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    for mark in "?#":
        if mark in rest:
            rest = rest.split(mark, 1)[0] + mark + "***"
            break
    return f"{scheme}://{rest}"


class _LinkCredentials(CredentialProvider):
    """Reads the password for each new connection (a rotated file is picked up)."""

    def __init__(self, link: RedisLink, *, sentinel: bool = False) -> None:
        self._link = link
        self._sentinel = sentinel

    def get_credentials(self) -> tuple[str] | tuple[str, str]:
        if self._sentinel:
            user, password = self._link.sentinel_username, self._link.sentinel_password()
        else:
            user, password = self._link.username, self._link.password()
        if user:
            return user, password or ""
        return (password or "",)

    async def get_credentials_async(self) -> tuple[str] | tuple[str, str]:
        return self.get_credentials()

    def __repr__(self) -> str:
        if self._sentinel:
            user, source = self._link.sentinel_username, self._link.sentinel_password_source
        else:
            user, source = self._link.username, self._link.password_source
        return f"_LinkCredentials({user!r}, {source})"


class _NoKeyPassword(Exception):
    pass


def _refuse_key_password() -> bytes:
    """OpenSSL would otherwise prompt on the terminal for an encrypted key."""
    raise _NoKeyPassword


def tls_context(link: RedisLink) -> ssl.SSLContext:
    """Server certificate required and checked (against `ca_file` only, when given), host name
    checked, TLS 1.2 or newer, the client certificate loaded. Errors name the file."""
    try:
        ctx = ssl.create_default_context(cafile=str(link.ca_file) if link.ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise RedisLinkError(
            f"redis ca_file {link.ca_file}: cannot load it as PEM CA certificate(s) "
            f"({_reason(exc)})"
        ) from None
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.check_hostname = True
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if link.cert_file is not None:
        files = f"cert_file {link.cert_file}" + (
            f" / key_file {link.key_file}" if link.key_file else ""
        )
        try:
            ctx.load_cert_chain(link.cert_file, link.key_file, password=_refuse_key_password)
        except _NoKeyPassword:
            raise RedisLinkError(
                f"redis {files}: the key is encrypted; give an unencrypted key file (mode 600)"
            ) from None
        except (OSError, ssl.SSLError) as exc:
            raise RedisLinkError(
                f"redis {files}: cannot load the client certificate and its key ({_reason(exc)})"
            ) from None
    return ctx


class _VerifiedTLSConnection(SSLConnection):
    """redis-py's TLS connection with our context: redis-py's own would also trust the system
    CAs next to `ca_file`, and query-string options of a URL could weaken it."""

    def __init__(self, *, tls_context: ssl.SSLContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ssl_context.context = tls_context


class _VerifiedSentinelTLSConnection(SentinelManagedSSLConnection):
    """A data node's TLS connection of a Sentinel link, with our context. Its address is the one
    the Sentinels announce (`sentinel monitor`, `replica-announce-ip`: usually an IP address),
    and the server's certificate must name it."""

    def __init__(self, *, tls_context: ssl.SSLContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        self.ssl_context.context = tls_context


class _Sentinels(Sentinel):
    """redis-py's Sentinel client, asking our clients (bounded pools, our TLS context, the
    Sentinels' login), with errors that say what each Sentinel answered, and the plain-text rule
    applied to the primary they name."""

    def __init__(self, link: RedisLink, clients: Sequence[tuple[Address, Redis]]) -> None:
        super().__init__([])  # type: ignore[no-untyped-call]
        self.link = link
        self.sentinels = [client for _, client in clients]  # the one that answered first
        self._clients = tuple(self.sentinels)  # all of them, to close
        self._addresses = {id(client): address for address, client in clients}

    async def discover_master(self, service_name: str) -> Address:
        link, problems = self.link, []
        # Many connections ask at once: each walks its own copy, and the Sentinel that answered
        # is moved first without an index another task may have shifted (redis-py's swap can
        # drop a client from the list, leaving its connections unclosed).
        for sentinel in list(self.sentinels):
            at = self._addresses[id(sentinel)]
            where = f"Sentinel {_host_port(at)}"
            try:
                masters = await sentinel.sentinel_masters()
            except RedisError as exc:
                problems.append(_sentence(exc, link, where, sentinel=at))
                continue
            state = masters.get(service_name) if isinstance(masters, dict) else None
            if not state:
                problems.append(f"{where} monitors no service {service_name}")
                continue
            address = (str(state["ip"]), int(state["port"]))
            if not self.check_master_state(state, service_name):
                problems.append(
                    f"{where} sees the primary {_host_port(address)} down (a failover under way?)"
                )
                continue
            if problem := _in_clear(link, where, "primary", address, "rediss+sentinel"):
                problems.append(problem)
                continue
            self.sentinels = [sentinel, *(c for c in self.sentinels if c is not sentinel)]
            return address
        raise NoPrimary(
            f"{link.shown}: no Sentinel names an available primary of service {service_name} "
            f"({'; '.join(problems)})"
        )

    async def aclose(self) -> None:
        await _close_all(self._clients)


class _SentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """The primary's connections: bounded and blocking like a direct link's; each new one asks
    the Sentinels where the primary is (idle ones to a former primary are closed when the
    answer changes). Closing the pool closes the Sentinel clients too."""

    async def aclose(self) -> None:
        try:
            await super().aclose()
        finally:
            await self.sentinel_manager.aclose()


class _Seeds:
    """The seed nodes of a cluster link (the URL's), asked which master serves the registry's
    slot (CLUSTER SLOTS); errors say what each node answered, and the plain-text rule applies to
    the master they name."""

    def __init__(self, link: RedisLink, clients: Sequence[tuple[Address, Redis]]) -> None:
        self.link = link
        self._clients = list(clients)  # the node that answered last goes first

    async def master(self) -> Address:
        link, slot, problems = self.link, self.link.slot, []
        for at, client in list(self._clients):
            where = f"cluster node {_host_port(at)}"
            try:
                reply = await client.execute_command("CLUSTER", "SLOTS")  # type: ignore[no-untyped-call]
            except RedisError as exc:
                if "cluster support disabled" in str(exc):
                    problems.append(
                        f"{where} is not a cluster node (cluster-enabled no): for a single "
                        "server the url is redis:// (or rediss://)"
                    )
                else:
                    problems.append(_sentence(exc, link, where))
                continue
            address = _slot_master(reply, slot, at[0])
            if address is None:
                problems.append(f"{where} names no master for slot {slot}")
                continue
            if problem := _in_clear(link, where, "master", address, "rediss+cluster"):
                problems.append(problem)
                continue
            self._clients = [(at, client), *(c for c in self._clients if c[1] is not client)]
            return address
        raise NoSlotOwner(
            f"{link.shown}: no seed node names a master for slot {slot} of prefix "
            f"{link.prefix} ({'; '.join(problems)})"
        )

    async def aclose(self) -> None:
        await _close_all([client for _, client in self._clients])


def _in_clear(link: RedisLink, where: str, role: str, address: Address, secure: str) -> str | None:
    """The plain-text rule for the node a Sentinel or a seed names: off loopback, plain
    redis:// would carry the password and the registry in clear."""
    if link.tls or link.allow_plaintext or _is_loopback(address[0]):
        return None
    return (
        f"{where} names the {role} {_host_port(address)}, not a loopback address: plain "
        f"{link.scheme}:// would send the password and the registry in clear (use {secure}://, "
        "or allow_plaintext = true)"
    )


async def _close_all(clients: Sequence[Redis]) -> None:
    """Close every client, then raise the first failure (if any)."""
    results = await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)
    if error := next((r for r in results if isinstance(r, BaseException)), None):
        raise error


def _slot_master(reply: Any, slot: int, seed_host: str) -> Address | None:
    """The master serving `slot` in a CLUSTER SLOTS reply (`[[first, last, [host, port, id,
    ...], replica, ...], ...]`); a node that does not know its own address says "" (the seed's,
    then: it is the node asked)."""
    for first, last, master, *_ in reply or ():
        if int(first) <= slot <= int(last):
            host, port = master[0], int(master[1])
            host = (host.decode() if isinstance(host, bytes) else str(host)) or seed_host
            return None if host == "?" else (host, port)
    return None


class _SlotPool(BlockingConnectionPool):
    """A cluster link's connections, bounded and blocking like a direct link's, all to the
    master serving the registry's slot. The seed nodes are asked which master that is when a
    connection opens and none is known, or the one known no longer answers or said MOVED; when
    the answer changes, idle connections to the former master are closed (and busy ones when
    they come back). Closing the pool closes the seed nodes' clients too."""

    def __init__(self, link: RedisLink, seeds: _Seeds, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.connection_kwargs["slot_pool"] = weakref.proxy(self)
        self.link = link
        self.seeds = seeds
        self._master: Address | None = None  # where new connections go; None: ask
        self._known: Address | None = None  # the master named last
        self._asking = asyncio.Lock()  # connections opening at once share one answer

    def __repr__(self) -> str:
        return f"<_SlotPool {self.link.shown} slot {self.link.slot} at {self._known}>"

    async def master(self, stale: Address | None = None) -> Address:
        """The master serving the slot: the one known, unless it is `stale` (it did not answer);
        else the seed nodes' answer."""
        async with self._asking:
            if self._master is None or self._master == stale:
                address = await self.seeds.master()
                self._master = address
                if address != self._known:
                    former, self._known = self._known, address
                    if former is not None:
                        await self.disconnect(inuse_connections=False)
            return self._master

    def forget(self, address: Address) -> None:
        """`address` said the slot is elsewhere (or the cluster is down): ask again."""
        if self._master == address:
            self._master = None

    async def release(self, connection: Any) -> None:
        at = (getattr(connection, "host", None), getattr(connection, "port", None))
        if self._known is not None and at != self._known:
            await connection.disconnect()  # to a former master: reconnects to the new one
        await super().release(connection)

    async def aclose(self) -> None:
        try:
            await super().aclose()
        finally:
            await self.seeds.aclose()


class _SlotConnection(Connection):
    """A connection to the master its pool names when it opens (again, once, if that master
    does not answer: a failover). A reply that the slot is elsewhere closes it and fails the
    command with SlotMoved (the command did not run); one about another slot is OutsideSlot."""

    def __init__(self, *, slot_pool: _SlotPool, **kwargs: Any) -> None:
        self.slot_pool = slot_pool
        super().__init__(**kwargs)

    async def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        if self.is_connected:
            return
        address = await self.slot_pool.master()
        try:
            await self._open(address, check_health)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            if isinstance(exc, AuthenticationError):
                raise
            fresh = await self.slot_pool.master(stale=address)
            if fresh == address:
                raise
            await self._open(fresh, check_health)

    async def _open(self, address: Address, check_health: bool) -> None:
        self.host, self.port = address
        await super().connect_check_health(check_health=check_health, retry_socket_connect=False)

    async def read_response(
        self,
        disable_decoding: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109 - redis-py's signature
        *,
        disconnect_on_error: bool = True,
        push_request: bool | None = False,
    ) -> Any:
        try:
            return await super().read_response(
                disable_decoding,
                timeout,
                disconnect_on_error=disconnect_on_error,
                push_request=push_request,
            )
        except (AskError, TryAgainError, ClusterDownError) as exc:  # MovedError is an AskError
            raise await self._elsewhere(exc) from None

    async def _elsewhere(self, exc: ResponseError) -> RedisError:
        link = self.slot_pool.link
        slot = getattr(exc, "slot_id", link.slot)
        if slot != link.slot:
            return OutsideSlot(
                f"a command touched slot {slot}, not slot {link.slot} where every key of prefix "
                f"{link.prefix} is ({exc}): a key outside the prefix"
            )
        at = (self.host, self.port)
        await self.disconnect()
        if isinstance(exc, MovedError | ClusterDownError):
            self.slot_pool.forget(at)
        kind = next(n for t, n in _REDIRECTS if isinstance(exc, t))  # redis-py drops the word
        return SlotMoved(
            f"{_host_port(at)} does not serve slot {slot} (prefix {link.prefix}) now: {kind} "
            f"{exc}; the next connection goes to the master the cluster names"
        )


_REDIRECTS: tuple[tuple[type[ResponseError], str], ...] = (
    (MovedError, "MOVED"),  # before AskError, its base class
    (AskError, "ASK"),
    (TryAgainError, "TRYAGAIN"),
    (ClusterDownError, "CLUSTERDOWN"),
)


class _SlotTLSConnection(_SlotConnection, SSLConnection):
    """`_SlotConnection` over TLS with our context; the master's certificate must name the
    address the cluster announces for it (`cluster-announce-ip`, usually an IP address)."""

    def __init__(self, *, tls_context: ssl.SSLContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ssl_context.context = tls_context


def connect(link: RedisLink, *, max_connections: int = 64) -> Redis:
    """A client on a bounded, blocking pool: a burst waits for a connection (up to
    POOL_WAIT_S) instead of failing with "too many connections" or opening hundreds; bounded
    timeouts turn a stalled Redis into an error, never a hang. TLS and ACL login as `link`
    says. Nothing is opened yet; `check` opens a connection and explains a failure. The client
    owns its pool: `aclose()` closes its connections.

    A Sentinel link's connections go to the service's primary as the Sentinels name it when
    each connection opens; a command fails (ConnectionError, or "the previous master is now a
    slave") when its primary died or was demoted, and is not retried: the next command takes
    a new connection to the new primary. The Sentinels' connections are bounded the same way,
    with `connect_timeout_s` for their replies too.

    A cluster link's connections go to the master serving the registry's slot, as the seed
    nodes name it (the module's docstring): the same rules, MOVED being one more way of saying
    that the master changed."""
    context = tls_context(link) if link.tls else None
    kwargs: dict[str, Any] = {
        "max_connections": max_connections,
        "timeout": POOL_WAIT_S,
        "socket_timeout": link.socket_timeout_s,
        "socket_connect_timeout": link.connect_timeout_s,
        "health_check_interval": HEALTH_CHECK_S,
        "db": link.db,
        **_QUIET,
    }
    if link.has_password:
        link.password()  # fail now, naming the variable or file, rather than per connection
        kwargs["credential_provider"] = _LinkCredentials(link)
    if context is not None:
        kwargs["tls_context"] = context
    if link.cluster:
        kwargs["connection_class"] = _SlotTLSConnection if context is not None else _SlotConnection
        seeds = _Seeds(link, [(a, _side_client(link, a, context)) for a in link.seeds])
        return Redis.from_pool(_SlotPool(link, seeds, **kwargs))
    if not link.sentinel:
        if context is not None:
            kwargs["connection_class"] = _VerifiedTLSConnection
        pool = BlockingConnectionPool(host=link.host, port=link.port, **kwargs)
        return Redis.from_pool(pool)
    assert link.service is not None  # validated
    if context is not None:
        kwargs["connection_class"] = _VerifiedSentinelTLSConnection
    sentinels = [(a, _side_client(link, a, context, sentinel=True)) for a in link.sentinels]
    return Redis.from_pool(_SentinelPool(link.service, _Sentinels(link, sentinels), **kwargs))  # type: ignore[no-untyped-call]


def _side_client(
    link: RedisLink, address: Address, context: ssl.SSLContext | None, *, sentinel: bool = False
) -> Redis:
    """A small client asked where the data is: a Sentinel (its own login), or a cluster's seed
    node (the data nodes' login)."""
    kwargs: dict[str, Any] = {
        "host": address[0],
        "port": address[1],
        "max_connections": 8,
        "timeout": POOL_WAIT_S,
        "socket_timeout": link.connect_timeout_s,
        "socket_connect_timeout": link.connect_timeout_s,
        "health_check_interval": HEALTH_CHECK_S,
        **_QUIET,
    }
    if sentinel and link.has_sentinel_password:
        link.sentinel_password()  # fail now, naming the variable or file
        kwargs["credential_provider"] = _LinkCredentials(link, sentinel=True)
    elif not sentinel and link.has_password:
        kwargs["credential_provider"] = _LinkCredentials(link)
    if context is not None:
        kwargs["connection_class"] = _VerifiedTLSConnection
        kwargs["tls_context"] = context
    return Redis.from_pool(BlockingConnectionPool(**kwargs))


async def check(client: Redis, link: RedisLink) -> None:
    """One PING through `client`; a failure becomes a RedisLinkError that says which setting
    to look at (CA, client certificate, user and password, ACL, address, Sentinels)."""
    try:
        await client.ping()
    except RedisLinkError:
        raise
    except RedisError as exc:
        raise RedisLinkError(explain(exc, link)) from None


# -- acknowledged by replicas (WAIT) --------------------------------------------------------------


async def wait_for_replicas(client: Redis, link: RedisLink) -> int:
    """WAIT until `link.replicas_to_ack` replicas have every write made so far on `client`'s
    connection, at most `ack_timeout_ms`; NotReplicated (a RedisError: 503) when fewer did.
    WAIT counts only the writes of the connection it runs on, so `client` must be the one
    that wrote, holding one connection: the client `replicated` yields (or `client.client()`).
    Nothing to do, and 0, when replicas_to_ack is 0. Returns how many replicas confirmed."""
    if not link.replicas_to_ack:
        return 0
    if not client.single_connection_client:
        raise TypeError(
            "wait_for_replicas needs the client holding the connection that wrote "
            "(replicated(...), or queue_wait(...) in the write's pipeline)"
        )
    acked = int(await client.wait(link.replicas_to_ack, link.ack_timeout_ms))
    if short := _short(acked, link):
        raise short
    return acked


@asynccontextmanager
async def replicated(client: Redis, link: RedisLink) -> AsyncIterator[Redis]:
    """`async with replicated(redis, link) as conn: await script(keys=..., args=...,
    client=conn)`: the writes made through `conn` (one connection) are acknowledged by
    `replicas_to_ack` replicas when the block ends without an error, else NotReplicated is
    raised (the writes are not undone: the caller answers 503, not success). A block that
    raises waits for nothing. With replicas_to_ack = 0: `client` itself, at no cost."""
    if not link.replicas_to_ack:
        yield client
        return
    async with client.client() as conn:
        yield conn
        await wait_for_replicas(conn, link)


def queue_wait(pipe: Pipeline, link: RedisLink) -> bool:
    """For writes sent in one pipeline (transaction=False): WAIT queued after them, on the
    pipeline's connection. True when queued; then the replies go through `pipeline_acks`."""
    if not link.replicas_to_ack:
        return False
    pipe.wait(link.replicas_to_ack, link.ack_timeout_ms)
    return True


def pipeline_acks(replies: list[Any], link: RedisLink) -> tuple[list[Any], NotReplicated | None]:
    """The replies of a pipeline given `queue_wait`: its own commands' replies (WAIT's taken
    off), and None when the replicas confirmed them, else the NotReplicated that each write
    that succeeded must be answered with instead of success."""
    if not link.replicas_to_ack:
        return replies, None
    *own, acked = replies
    if isinstance(acked, Exception):
        return own, NotReplicated(f"WAIT failed: {acked}")
    return own, _short(int(acked), link)


def _short(acked: int, link: RedisLink) -> NotReplicated | None:
    if acked >= link.replicas_to_ack:
        return None
    return NotReplicated(
        f"the write reached {acked} of the {link.replicas_to_ack} replica(s) replicas_to_ack "
        f"asks for in {link.ack_timeout_ms} ms; it may be lost in a failover"
    )


# -- messages -------------------------------------------------------------------------------------


def explain(exc: BaseException, link: RedisLink) -> str:
    """A sentence for an error met on the link, naming the setting concerned; never a
    password (redis-py's messages hold none, and the URL may not carry one)."""
    if isinstance(exc, NoPrimary | NoSlotOwner):
        return str(exc)  # says what each Sentinel, or seed node, answered
    if link.sentinel:
        hosts = ",".join(_host_port(a) for a in link.sentinels)
        where = f"the primary of service {link.service} (Sentinels {hosts})"
    elif link.cluster:
        hosts = ",".join(_host_port(a) for a in link.seeds)
        where = f"the master of slot {link.slot} (prefix {link.prefix}; cluster nodes {hosts})"
    else:
        where = f"Redis at {link.host}:{link.port}"
    return _sentence(exc, link, where)


def _sentence(
    exc: BaseException, link: RedisLink, where: str, *, sentinel: Address | None = None
) -> str:
    """`explain` for `where`: a server of the link, or the Sentinel at `sentinel` (whose login
    is the sentinel_* settings)."""
    if sentinel is not None:
        user = link.sentinel_username or "default"
        has_password, source = link.has_sentinel_password, link.sentinel_password_source
        settings = "sentinel_username and sentinel_password_env or sentinel_password_file"
        user_setting = "sentinel_username"
    else:
        user = link.username or "default"
        has_password, source = link.has_password, link.password_source
        settings = "username and password_env or password_file"
        user_setting = "username"
    text = str(exc)
    if isinstance(exc, NoPermissionError):
        return f"{where}: ACL user {user} may not do this ({text}); see `camgw acl`"
    if isinstance(exc, AuthenticationError) or "WRONGPASS" in text or "NOAUTH" in text:
        if not has_password:
            return f"{where} requires a login: set {settings}"
        return (
            f"{where} refused the login of ACL user {user} (check {user_setting} and the "
            f"password in {source}; the user may be disabled)"
        )
    if isinstance(exc, RedisTimeoutError):
        hint = " (a plain port, not TLS?)" if link.tls else ""
        return f"{where} did not answer in time{hint}: {text}"
    if (
        sentinel is not None
        and isinstance(exc, ResponseError)
        and "unknown command" in text.lower()
    ):
        return f"{where} is not a Sentinel ({text})"
    if link.tls:
        lowered = text.lower()
        if "certificate_verify_failed" in lowered or "certificate verify failed" in lowered:
            if "mismatch" in lowered or "doesn't match" in lowered:
                if sentinel is not None:
                    named = f"{sentinel[0]}, the Sentinel's host in url"
                elif link.sentinel:
                    named = "the address the Sentinels announce for it"
                elif link.cluster:
                    named = "the address it was reached at (in url, or announced by the cluster)"
                else:
                    named = f"{link.host}, the host of url"
                return (
                    f"{where}: TLS refused: the server's certificate does not name {named} "
                    f"({_ssl_detail(text)})"
                )
            trusted = f"the CA in ca_file {link.ca_file}" if link.ca_file else "a system CA"
            return (
                f"{where}: TLS refused: the server's certificate is not signed by {trusted} "
                f"({_ssl_detail(text)})"
            )
        if "wrong version number" in lowered or "record layer failure" in lowered:
            return f"{where} did not answer TLS: is it a plain port? (url is {link.scheme}://)"
        if any(
            s in lowered
            for s in (
                "certificate required",
                "handshake failure",
                "unknown ca",
                "bad certificate",
                "connection reset",
                "closed by server",
                "connection closed",
                "eof occurred",
            )
        ):
            if link.cert_file is None:
                return (
                    f"{where} closed the TLS connection: it requires a client certificate "
                    "(set cert_file and key_file)"
                )
            return (
                f"{where} closed the TLS connection: it does not accept the client certificate "
                f"in cert_file {link.cert_file} (is it signed by the server's tls-ca-cert-file?)"
            )
    elif "closed by server" in text.lower() or "connection reset" in text.lower():
        if link.sentinel and sentinel is None:
            return (
                f"{where} closed the connection: it went down or was replaced in a failover "
                f"(or it speaks only TLS: url is {link.scheme}://)"
            )
        return f"{where} closed the connection: does it speak only TLS? (url is {link.scheme}://)"
    if sentinel is not None:
        return f"{where}: {text}"
    return f"cannot use {where}: {text}"


def _ssl_detail(text: str) -> str:
    """The reason OpenSSL gave, without the framing of redis-py's message."""
    for marker in ("certificate verify failed: ", "CERTIFICATE_VERIFY_FAILED] "):
        if marker in text:
            return text.split(marker, 1)[1].split(" (_ssl", 1)[0].rstrip(".")
    return text


def _reason(exc: OSError | ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    return exc.strerror or str(exc)
