"""HTTP-style authentication (RFC 7617 Basic, RFC 2617/7616 Digest with MD5): the same
challenge/response serves RTSP DESCRIBE and HTTP snapshot requests."""

from __future__ import annotations

import base64
import hashlib
import os
import re

_PARAM_RE = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))\s*,?')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """'Digest realm="x", nonce="y"' -> ("digest", {"realm": "x", "nonce": "y"})."""
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        m = _PARAM_RE.match(rest, pos)
        if m is None:
            break
        value = m.group(2) if m.group(2) is not None else m.group(3)
        params[m.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
        pos = m.end()
    return scheme.lower(), params


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def digest_response(
    *,
    username: str,
    password: str,
    realm: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None = None,
    nc: str = "00000001",
    cnonce: str = "",
    algorithm: str = "MD5",
) -> str:
    """The RFC 2617 `response` value."""
    ha1 = _md5(f"{username}:{realm}:{password}")
    if algorithm.upper() == "MD5-SESS":
        ha1 = _md5(f"{ha1}:{nonce}:{cnonce}")
    ha2 = _md5(f"{method}:{uri}")
    if qop:
        return _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _md5(f"{ha1}:{nonce}:{ha2}")


class Authenticator:
    def __init__(self, scheme: str, params: dict[str, str], username: str, password: str):
        self.scheme = scheme
        self.params = params
        self._username = username
        self._password = password
        self._nc = 0
        self.stale = params.get("stale", "").lower() == "true"

    def __repr__(self) -> str:  # never the password
        return f"Authenticator(scheme={self.scheme!r})"

    @classmethod
    def from_challenges(
        cls, challenges: list[str], username: str, password: str
    ) -> Authenticator | None:
        """Prefer digest (MD5/MD5-sess) over basic; None if nothing usable was offered."""
        basic: Authenticator | None = None
        for challenge in challenges:
            scheme, params = parse_challenge(challenge)
            if scheme == "digest":
                algorithm = params.get("algorithm", "MD5").upper()
                if algorithm in ("MD5", "MD5-SESS") and "nonce" in params:
                    return cls("digest", params, username, password)
            elif scheme == "basic" and basic is None:
                basic = cls("basic", params, username, password)
        return basic

    def header(self, method: str, uri: str) -> str:
        if self.scheme == "basic":
            token = base64.b64encode(f"{self._username}:{self._password}".encode()).decode()
            return f"Basic {token}"
        p = self.params
        realm, nonce = p.get("realm", ""), p["nonce"]
        algorithm = p.get("algorithm", "MD5")
        qops = [q.strip().lower() for q in p.get("qop", "").split(",") if q.strip()]
        qop = "auth" if "auth" in qops else None
        self._nc += 1
        nc = f"{self._nc:08x}"
        cnonce = os.urandom(8).hex()
        response = digest_response(
            username=self._username,
            password=self._password,
            realm=realm,
            nonce=nonce,
            method=method,
            uri=uri,
            qop=qop,
            nc=nc,
            cnonce=cnonce,
            algorithm=algorithm,
        )
        parts = [
            f'username="{_quote(self._username)}"',
            f'realm="{_quote(realm)}"',
            f'nonce="{_quote(nonce)}"',
            f'uri="{_quote(uri)}"',
            f'response="{response}"',
        ]
        if "algorithm" in p:
            parts.append(f"algorithm={algorithm}")
        if "opaque" in p:
            parts.append(f'opaque="{_quote(p["opaque"])}"')
        if qop:
            parts += [f"qop={qop}", f"nc={nc}", f'cnonce="{cnonce}"']
        return "Digest " + ", ".join(parts)


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "")
