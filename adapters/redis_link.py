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

This module does not import the gateway: an edge adapter uses it on its own.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from pathlib import Path
from typing import Annotated, Any, Self
from urllib.parse import urlsplit

import redis
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import SSLConnection
from redis.credentials import CredentialProvider
from redis.exceptions import (
    AuthenticationError,
    NoPermissionError,
    RedisError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")]

POOL_WAIT_S = 5.0  # a caller waits this long for a free connection of the bounded pool
HEALTH_CHECK_S = 15.0  # an idle connection is PINGed before reuse after this long

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


class RedisLink(BaseModel):
    """Where the registry Redis is and how to reach it safely. `[redis]` in the gateway's config
    (`gateway.settings.RedisConfig`) and in an edge adapter's."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="redis://host:port/db or rediss://host:port/db (TLS); no user, password "
        "or query in it",
    )
    prefix: Slug = Field("camgw", description="Key prefix, so several gateways can share a Redis")
    username: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        description="Redis ACL user (`camgw acl`); none: the default user",
    )
    password_env: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$",
        description="Environment variable holding the password",
    )
    password_file: Path | None = Field(
        None, description="File holding the password (first line; keep it mode 600)"
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
    connect_timeout_s: float = Field(2.0, gt=0, le=60, description="Opening a connection")

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
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise ValueError("not a valid redis:// or rediss:// URL") from None
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError("must start with redis:// or rediss:// (TLS)")
        if parts.username is not None or parts.password is not None or "@" in parts.netloc:
            raise ValueError(
                "must not carry a user or password: set `username` and `password_env` or "
                "`password_file` instead"
            )
        if not parts.hostname:
            raise ValueError("names no host")
        if parts.query or parts.fragment:
            raise ValueError(
                "must not carry options (?...): TLS and timeouts are settings of their own"
            )
        if port == 0:
            raise ValueError("port 0 is not a port to connect to")
        db = parts.path.strip("/")
        if db and not (db.isdigit() and int(db) < 1 << 16):
            raise ValueError("the path must be a database number, e.g. /0")
        return url

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.password_env is not None and self.password_file is not None:
            raise ValueError("give at most one of password_env and password_file")
        if self.username is not None and not self.has_password:
            raise ValueError(f"username {self.username!r} needs password_env or password_file")
        tls_files = [n for n in ("ca_file", "cert_file", "key_file") if getattr(self, n)]
        if tls_files and not self.tls:
            raise ValueError(f"{', '.join(tls_files)} need a rediss:// url (TLS)")
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file needs cert_file (the client certificate it belongs to)")
        if not self.tls and not self.loopback and not self.allow_plaintext:
            raise ValueError(
                f"url: plain redis:// to {self.host}, which is not a loopback address, would "
                "send the password and the registry in clear; use rediss:// (with ca_file), "
                "or set allow_plaintext = true for a network you trust"
            )
        return self

    # -- what the URL says --------------------------------------------------------------------

    @property
    def tls(self) -> bool:
        return self.url.startswith("rediss://")

    @property
    def host(self) -> str:
        host = urlsplit(self.url).hostname
        assert host is not None  # validated
        return host

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 6379

    @property
    def shown(self) -> str:
        """The URL as logs and messages show it: scheme, host, port and database, nothing
        else (a URL built around validation could still hold a password)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{urlsplit(self.url).scheme}://{host}:{self.port}/{self.db}"

    @property
    def db(self) -> int:
        db = urlsplit(self.url).path.strip("/")
        return int(db) if db else 0

    @property
    def loopback(self) -> bool:
        if self.host.lower() == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def has_password(self) -> bool:
        return self.password_env is not None or self.password_file is not None

    @property
    def password_source(self) -> str:
        """Where the password comes from, for messages: never the password."""
        if self.password_env is not None:
            return f"password_env {self.password_env}"
        if self.password_file is not None:
            return f"password_file {self.password_file}"
        return "(no password)"

    def password(self) -> str | None:
        """The password, read now from its environment variable or file; None without one."""
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if not value:
                raise RedisLinkError(
                    f"redis password_env {self.password_env}: the variable is not set or empty"
                )
            return value
        if self.password_file is not None:
            try:
                lines = self.password_file.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "unreadable"
                raise RedisLinkError(
                    f"redis password_file {self.password_file}: cannot read it ({reason})"
                ) from None
            value = lines[0].strip() if lines else ""
            if not value:
                raise RedisLinkError(f"redis password_file {self.password_file}: it is empty")
            return value
        return None


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

    def __init__(self, link: RedisLink) -> None:
        self._link = link

    def get_credentials(self) -> tuple[str] | tuple[str, str]:
        password = self._link.password() or ""
        if self._link.username:
            return self._link.username, password
        return (password,)

    async def get_credentials_async(self) -> tuple[str] | tuple[str, str]:
        return self.get_credentials()

    def __repr__(self) -> str:
        return f"_LinkCredentials({self._link.username!r}, {self._link.password_source})"


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


def connect(link: RedisLink, *, max_connections: int = 64) -> Redis:
    """A client on a bounded, blocking pool: a burst waits for a connection (up to
    POOL_WAIT_S) instead of failing with "too many connections" or opening hundreds; bounded
    timeouts turn a stalled Redis into an error, never a hang. TLS and ACL login as `link`
    says. Nothing is opened yet; `check` opens a connection and explains a failure. The client
    owns its pool: `aclose()` closes its connections."""
    kwargs: dict[str, Any] = {
        "host": link.host,
        "port": link.port,
        "db": link.db,
        "max_connections": max_connections,
        "timeout": POOL_WAIT_S,
        "socket_timeout": link.socket_timeout_s,
        "socket_connect_timeout": link.connect_timeout_s,
        "health_check_interval": HEALTH_CHECK_S,
        **_QUIET,
    }
    if link.has_password:
        link.password()  # fail now, naming the variable or file, rather than per connection
        kwargs["credential_provider"] = _LinkCredentials(link)
    if link.tls:
        kwargs["connection_class"] = _VerifiedTLSConnection
        kwargs["tls_context"] = tls_context(link)
    pool = BlockingConnectionPool(**kwargs)
    return Redis.from_pool(pool)


async def check(client: Redis, link: RedisLink) -> None:
    """One PING through `client`; a failure becomes a RedisLinkError that says which setting
    to look at (CA, client certificate, user and password, ACL, address)."""
    try:
        await client.ping()
    except RedisLinkError:
        raise
    except RedisError as exc:
        raise RedisLinkError(explain(exc, link)) from None


def explain(exc: BaseException, link: RedisLink) -> str:
    """A sentence for an error met on the link, naming the setting concerned; never a
    password (redis-py's messages hold none, and the URL may not carry one)."""
    where = f"Redis at {link.host}:{link.port}"
    user = link.username or "default"
    text = str(exc)
    if isinstance(exc, NoPermissionError):
        return f"{where}: ACL user {user} may not do this ({text}); see `camgw acl`"
    if isinstance(exc, AuthenticationError) or "WRONGPASS" in text or "NOAUTH" in text:
        if not link.has_password:
            return f"{where} requires a login: set username and password_env or password_file"
        return (
            f"{where} refused the login of ACL user {user} (check username and the password "
            f"in {link.password_source}; the user may be disabled)"
        )
    if isinstance(exc, RedisTimeoutError):
        hint = " (a plain port, not TLS?)" if link.tls else ""
        return f"{where} did not answer in time{hint}: {text}"
    if link.tls:
        lowered = text.lower()
        if "certificate_verify_failed" in lowered or "certificate verify failed" in lowered:
            if "mismatch" in lowered or "doesn't match" in lowered:
                return (
                    f"{where}: TLS refused: the server's certificate does not name "
                    f"{link.host}, the host of url ({_ssl_detail(text)})"
                )
            trusted = f"the CA in ca_file {link.ca_file}" if link.ca_file else "a system CA"
            return (
                f"{where}: TLS refused: the server's certificate is not signed by {trusted} "
                f"({_ssl_detail(text)})"
            )
        if "wrong version number" in lowered or "record layer failure" in lowered:
            return f"{where} did not answer TLS: is it a plain port? (url is rediss://)"
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
        return f"{where} closed the connection: does it speak only TLS? (url is redis://)"
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
