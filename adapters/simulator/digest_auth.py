"""Server side of HTTP Digest authentication (RFC 7616; MD5 and/or SHA-256, qop=auth), as IP
cameras do it, and of Basic (RFC 7617) for the cameras that still only do that.

Nonces are stateless (a timestamp and an HMAC over it and the device address), expire after
`nonce_ttl_s` (then the client is told `stale=true`), and a (nonce, nc, cnonce) triple is accepted
once: a replayed Authorization header is refused. A device offering several algorithms sends one
challenge per algorithm, the preferred first (RFC 7616 section 3.7), and accepts an answer to any.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from ..httpauth import digest_response, parse_challenge

REALM: Final = "camgw-sim"
_MAX_SEEN_PER_NONCE: Final = 10_000


class DigestResult(enum.Enum):
    ok = "ok"
    missing = "missing"  # no (Digest) Authorization header
    stale = "stale"  # our nonce, but expired: the client should retry with a new one
    invalid = "invalid"  # wrong credentials, foreign nonce, replay, malformed


def parse_authorization(value: str) -> dict[str, str] | None:
    """The same header grammar as a challenge (RFC 7616 auth-param lists)."""
    scheme, params = parse_challenge(value)
    return params if scheme == "digest" else None


@dataclass
class DigestAuthority:
    """Issues challenges and checks Authorization headers for one or many devices."""

    realm: str = REALM
    nonce_ttl_s: float = 300.0
    secret: bytes = field(default_factory=lambda: os.urandom(32))
    _seen: dict[str, set[tuple[str, str]]] = field(default_factory=dict)  # nonce -> {(nc, cnonce)}
    _seen_expiry: dict[str, float] = field(default_factory=dict)
    _next_prune: float = 0.0

    def _nonce_mac(self, stamp: str, scope: str) -> str:
        return hmac.new(self.secret, f"{stamp}:{scope}".encode(), hashlib.sha256).hexdigest()[:32]

    def new_nonce(self, scope: str) -> str:
        stamp = f"{int(time.time() * 1000):x}"
        return f"{stamp}{self._nonce_mac(stamp, scope)}"

    def challenge(self, scope: str, *, stale: bool = False, algorithm: str = "MD5") -> str:
        """A WWW-Authenticate value; `scope` binds the nonce (the device address)."""
        nonce = self.new_nonce(scope)
        opaque = self._nonce_mac("opaque", scope)
        value = (
            f'Digest realm="{self.realm}", qop="auth", algorithm={algorithm}, '
            f'nonce="{nonce}", opaque="{opaque}"'
        )
        return value + (", stale=true" if stale else "")

    def challenges(
        self, scope: str, *, stale: bool = False, algorithms: Sequence[str] = ("MD5",)
    ) -> list[str]:
        """One WWW-Authenticate value per algorithm, in order of preference."""
        return [self.challenge(scope, stale=stale, algorithm=a) for a in algorithms]

    def _nonce_state(self, nonce: str, scope: str) -> DigestResult:
        if len(nonce) <= 32:
            return DigestResult.invalid
        stamp, mac = nonce[:-32], nonce[-32:]
        if not hmac.compare_digest(mac, self._nonce_mac(stamp, scope)):
            return DigestResult.invalid
        try:
            issued = int(stamp, 16) / 1000
        except ValueError:
            return DigestResult.invalid
        age = time.time() - issued
        if age > self.nonce_ttl_s or age < -5:
            return DigestResult.stale
        return DigestResult.ok

    def _prune(self) -> None:
        now = time.monotonic()
        if now < self._next_prune:
            return
        self._next_prune = now + 5.0
        for nonce in [n for n, expiry in self._seen_expiry.items() if expiry < now]:
            self._seen.pop(nonce, None)
            self._seen_expiry.pop(nonce, None)

    def check(
        self,
        authorization: str | None,
        *,
        method: str,
        uri: str,
        scope: str,
        username: str,
        password: str,
        algorithms: Sequence[str] = ("MD5",),
    ) -> DigestResult:
        """Check an Authorization header against the expected credentials for a request;
        `algorithms`: those the device offers (an answer with another is invalid)."""
        if not authorization:
            return DigestResult.missing
        params = parse_authorization(authorization)
        if params is None:
            return DigestResult.missing
        nonce = params.get("nonce", "")
        state = self._nonce_state(nonce, scope)
        if state is not DigestResult.ok:
            return state
        if params.get("realm") != self.realm or params.get("uri") != uri:
            return DigestResult.invalid
        algorithm = params.get("algorithm", "MD5").upper()
        if algorithm not in {a.upper() for a in algorithms} or params.get("qop") != "auth":
            return DigestResult.invalid
        nc, cnonce = params.get("nc", ""), params.get("cnonce", "")
        if not re.fullmatch(r"[0-9a-fA-F]{8}", nc) or not cnonce:
            return DigestResult.invalid
        expected = digest_response(
            username=params.get("username", ""),
            password=password,
            realm=self.realm,
            nonce=nonce,
            method=method.upper(),
            uri=uri,
            qop="auth",
            nc=nc,
            cnonce=cnonce,
            algorithm=algorithm,
        )
        ok_user = hmac.compare_digest(params.get("username", "").encode(), username.encode())
        ok_response = hmac.compare_digest(expected, params.get("response", ""))
        if not (ok_user and ok_response):
            return DigestResult.invalid
        self._prune()
        seen = self._seen.setdefault(nonce, set())
        if (nc, cnonce) in seen or len(seen) >= _MAX_SEEN_PER_NONCE:
            return DigestResult.invalid  # a replay (or a nonce used far too often)
        seen.add((nc, cnonce))
        self._seen_expiry.setdefault(nonce, time.monotonic() + self.nonce_ttl_s + 10)
        return DigestResult.ok


def basic_challenge(realm: str = REALM) -> str:
    return f'Basic realm="{realm}", charset="UTF-8"'


def check_basic(authorization: str | None, *, username: str, password: str) -> bool:
    """Whether a Basic Authorization header carries exactly these credentials."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    user, sep, given = decoded.partition(":")
    ok_user = hmac.compare_digest(user.encode(), username.encode())
    ok_password = hmac.compare_digest(given.encode(), password.encode())
    return bool(sep) and ok_user and ok_password
