"""HTTP-style authentication, shared by RTSP requests and HTTP snapshot requests: RFC 7617 Basic
and RFC 7616 Digest with SHA-256, SHA-256-sess, MD5 and MD5-sess (qop=auth, or none for RFC 2069
servers; `userhash` honoured).

Which challenge is answered (`Authenticator.from_challenges`): the strongest Digest the camera
offers that we support (SHA-256 over MD5; RFC 7616 section 3.7 has servers list one challenge
per algorithm, most preferred first), else Basic, but only when the caller allows it: Basic
sends the password itself, so it is for encrypted connections (https) or a network whose config
opts in (`allow_basic_over_http`). Digest is never downgraded to Basic.

An `Authenticator` holds one camera's credentials and challenge; whoever keeps one between
requests keys it by origin (scheme, host, port) and checks `matches()` before reusing it, so a
digest session never answers another origin or carries other credentials. Its repr and every
error here name no credential.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Iterable
from urllib.parse import quote

# algorithm (upper case) -> (hashlib name, session variant, strength: higher is preferred)
_ALGORITHMS: dict[str, tuple[str, bool, int]] = {
    "SHA-256": ("sha256", False, 2),
    "SHA-256-SESS": ("sha256", True, 2),
    "MD5": ("md5", False, 1),
    "MD5-SESS": ("md5", True, 1),
}
SUPPORTED_ALGORITHMS = ("SHA-256", "SHA-256-sess", "MD5", "MD5-sess")

_SEPARATORS_RE = re.compile(r"[\s,]*")
_PARAM_RE = re.compile(r'([A-Za-z0-9_*-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]+))\s*,?')
_SCHEME_RE = re.compile(r"([A-Za-z0-9!#$%&'*+.^_`|~-]+)(?=[\s,]|$)")
_TOKEN68_RE = re.compile(r"\s+[A-Za-z0-9._~+/-]+=*\s*(?=,|$)")
_UNESCAPE_RE = re.compile(r"\\(.)")


def parse_challenges(values: Iterable[str]) -> list[tuple[str, dict[str, str]]]:
    """Every challenge in WWW-Authenticate values (RFC 9110 section 11.6.1: a value may carry
    several, comma-separated): [(scheme in lower case, {param in lower case: unquoted value})].
    Parsing stops at garbage; what came before it is kept."""
    found: list[tuple[str, dict[str, str]]] = []
    for value in values:
        pos = 0
        params: dict[str, str] | None = None
        while True:
            separators = _SEPARATORS_RE.match(value, pos)
            pos = separators.end() if separators is not None else pos
            if pos >= len(value):
                break
            m = _PARAM_RE.match(value, pos)
            if m is not None and params is not None:
                raw = m.group(2) if m.group(2) is not None else m.group(3)
                params[m.group(1).lower()] = _UNESCAPE_RE.sub(r"\1", raw)
                pos = m.end()
                continue
            m = _SCHEME_RE.match(value, pos)
            if m is None:
                break
            params = {}
            found.append((m.group(1).lower(), params))
            pos = m.end()
            token68 = _TOKEN68_RE.match(value, pos)  # "Negotiate abc==": nothing we use
            if token68 is not None:
                pos = token68.end()
    return found


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """'Digest realm="x", nonce="y"' -> ("digest", {"realm": "x", "nonce": "y"}): the first
    challenge of a header (or an Authorization header's credentials: the same grammar)."""
    found = parse_challenges([header])
    return found[0] if found else ("", {})


def offers_basic(challenges: Iterable[str]) -> bool:
    return any(scheme == "basic" for scheme, _ in parse_challenges(challenges))


def offered_schemes(challenges: Iterable[str]) -> str:
    """'Basic, Digest (SHA-512-256)': what a camera offered, for an error message."""
    names: list[str] = []
    for scheme, params in parse_challenges(challenges):
        name = scheme.capitalize()[:20]
        if scheme == "digest":
            name += f" ({params.get('algorithm', 'MD5')[:20]})"
        if name not in names:
            names.append(name)
    return ", ".join(names) or "no challenge"


def _hash(algorithm: str, text: str) -> str:
    name = _ALGORITHMS[algorithm][0]
    return hashlib.new(name, text.encode("utf-8"), usedforsecurity=False).hexdigest()


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
    """The RFC 7616 (RFC 2617 for MD5) `response` value; qop "auth" or None. `username` is the
    plain one even when the header carries its hash (userhash). ValueError for an algorithm
    not in SUPPORTED_ALGORITHMS."""
    alg = algorithm.upper()
    if alg not in _ALGORITHMS:
        raise ValueError(f"unsupported digest algorithm {algorithm[:40]!r}")
    ha1 = _hash(alg, f"{username}:{realm}:{password}")
    if _ALGORITHMS[alg][1]:
        ha1 = _hash(alg, f"{ha1}:{nonce}:{cnonce}")
    ha2 = _hash(alg, f"{method}:{uri}")
    if qop:
        return _hash(alg, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _hash(alg, f"{ha1}:{nonce}:{ha2}")


def digest_rank(params: dict[str, str]) -> int:
    """How much we like a Digest challenge: 0 unusable (no nonce, an algorithm we do not
    support, or a qop list without "auth"), else the algorithm's strength."""
    if "nonce" not in params:
        return 0
    known = _ALGORITHMS.get(params.get("algorithm", "MD5").upper())
    if known is None:
        return 0
    if "qop" in params and "auth" not in _qops(params):
        return 0  # auth-int only: we would have to hash bodies
    return known[2]


def _qops(params: dict[str, str]) -> list[str]:
    return [q.strip().lower() for q in params.get("qop", "").split(",") if q.strip()]


class Authenticator:
    def __init__(self, scheme: str, params: dict[str, str], username: str, password: str):
        self.scheme = scheme
        self.params = params
        self._username = username
        self._password = password
        self._nc = 0
        self.stale = params.get("stale", "").lower() == "true"

    def __repr__(self) -> str:  # never the password
        if self.scheme == "digest":
            return f"Authenticator(scheme='digest', algorithm={self.algorithm!r})"
        return f"Authenticator(scheme={self.scheme!r})"

    @property
    def algorithm(self) -> str:
        return self.params.get("algorithm", "MD5") if self.scheme == "digest" else ""

    def matches(self, username: str, password: str) -> bool:
        """Whether this session answers with exactly these credentials (constant time)."""
        same_user = hmac.compare_digest(self._username.encode(), username.encode())
        same_password = hmac.compare_digest(self._password.encode(), password.encode())
        return same_user and same_password

    @classmethod
    def from_challenges(
        cls,
        challenges: Iterable[str],
        username: str,
        password: str,
        *,
        allow_basic: bool = False,
    ) -> Authenticator | None:
        """The strongest supported Digest challenge (SHA-256 over MD5; the first offered among
        equals), else Basic if `allow_basic`; None if nothing usable (see `offers_basic`)."""
        best: dict[str, str] | None = None
        best_rank = 0
        basic: dict[str, str] | None = None
        for scheme, params in parse_challenges(challenges):
            if scheme == "digest":
                rank = digest_rank(params)
                if rank > best_rank:
                    best, best_rank = params, rank
            elif scheme == "basic" and basic is None:
                basic = params
        if best is not None:
            return cls("digest", best, username, password)
        if basic is not None and allow_basic:
            return cls("basic", basic, username, password)
        return None

    def header(self, method: str, uri: str, *, cnonce: str | None = None) -> str:
        """The Authorization value for one request; `cnonce` only for test vectors."""
        if self.scheme == "basic":
            token = base64.b64encode(f"{self._username}:{self._password}".encode()).decode()
            return f"Basic {token}"
        p = self.params
        realm, nonce = p.get("realm", ""), p["nonce"]
        algorithm = p.get("algorithm", "MD5")
        qop = "auth" if "auth" in _qops(p) else None
        self._nc += 1
        nc = f"{self._nc:08x}"
        cnonce = cnonce if cnonce is not None else os.urandom(16).hex()
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
        if p.get("userhash", "").lower() == "true":  # RFC 7616 section 3.4.4
            user = f'username="{_hash(algorithm.upper(), f"{self._username}:{realm}")}"'
        elif _quotable(self._username):
            user = f'username="{_quote(self._username)}"'
        else:  # RFC 7616 section 3.4.4: non-ASCII names in RFC 5987 notation
            user = "username*=UTF-8''" + quote(self._username, safe="!#$&+^`|~")
        parts = [
            user,
            f'realm="{_quote(realm)}"',
            f'nonce="{_quote(nonce)}"',
            f'uri="{_quote(uri)}"',
            f'response="{response}"',
        ]
        if "algorithm" in p:
            parts.append(f"algorithm={_token(algorithm)}")
        if "opaque" in p:
            parts.append(f'opaque="{_quote(p["opaque"])}"')
        if qop:
            parts += [f"qop={qop}", f"nc={nc}", f'cnonce="{_quote(cnonce)}"']
        if p.get("userhash", "").lower() == "true":
            parts.append("userhash=true")
        return "Digest " + ", ".join(parts)


def _quotable(value: str) -> bool:
    return all(0x20 <= ord(ch) < 0x7F for ch in value)


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "")


def _token(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9-]", "", value)
