"""Stream and snapshot URIs: cameras love to put credentials in them; the registry never does."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit


@dataclass(frozen=True, slots=True, repr=False)
class UriCredentials:
    username: str
    password: str

    def __repr__(self) -> str:  # never let a password reach a log through repr()
        return f"UriCredentials(username={self.username!r}, password=***)"


FINGERPRINT_HEX = 16  # 64 bits: tells credentials apart, reveals nothing of them


def credentials_fingerprint(key: bytes, creds: UriCredentials) -> str:
    """Which credentials these are, without them: HMAC-SHA256, keyed with the deployment's
    secret (`AdapterSpec.ref_key`: every process of one deployment computes the same), of
    the username and the password (NUL between them), truncated. Only ever compared with
    another fingerprint; never shown, never logged."""
    message = b"camgw credentials v1\0" + f"{creds.username}\0{creds.password}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:FINGERPRINT_HEX]


def has_credentials(uri: str) -> bool:
    parts = urlsplit(uri)
    return parts.username is not None or parts.password is not None


def split_credentials(uri: str) -> tuple[str, UriCredentials | None]:
    """Return the URI without userinfo, and the userinfo it carried (if any)."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri, None
    creds = UriCredentials(unquote(parts.username or ""), unquote(parts.password or ""))
    return urlunsplit(_without_userinfo(parts)), creds


def _without_userinfo(parts: SplitResult) -> SplitResult:
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal: urlsplit strips the brackets
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return parts._replace(netloc=netloc)


def uri_host(uri: str) -> str | None:
    return urlsplit(uri).hostname


# Ports URIs without one mean (rtsps: RFC 7826's registered port).
DEFAULT_PORTS = {"http": 80, "https": 443, "rtsp": 554, "rtsps": 322}


def uri_port(uri: str) -> int | None:
    """The port a URI connects to: its own, else its scheme's default; None if it has none or
    an invalid one."""
    parts = urlsplit(uri)
    try:
        port = parts.port
    except ValueError:
        return None
    return port or DEFAULT_PORTS.get(parts.scheme.lower())
