"""SIP digest authentication (RFC 3261 section 22, RFC 2617/7616 computations), both sides.

The superior platform issues stateless nonces: `<issued, hex seconds>-<random>.<HMAC of those
and the platform id>`, so any nonce it did not issue, or issued to another platform, is refused
without a table of nonces; one older than `nonce_ttl_s` is answered `stale=true` (the lower
platform retries with the new nonce and the same password, RFC 2617 section 3.2.1).
With qop=auth each nonce count must rise (a replayed REGISTER is refused); without qop (what
the GB/T 28181 examples show) a nonce may be reused until it goes stale.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections import OrderedDict
from dataclasses import dataclass

ALGORITHMS = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
_PARAM = re.compile(r'\s*([A-Za-z-]{1,16})\s*=\s*("(?:[^"\\]|\\.){0,256}"|[^\s,"]{1,256})\s*(,|$)')
_MAX_NONCES = 4096  # qop nonce counts remembered (oldest forgotten first)


class DigestError(Exception):
    """Why an Authorization header is refused (for the log and audit; the peer sees 401/403)."""

    def __init__(self, reason: str, stale: bool = False) -> None:
        self.reason = reason
        self.stale = stale
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class Credentials:
    """A parsed `Authorization: Digest ...` header."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None


def parse_authorization(value: str) -> Credentials:
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise DigestError("not a Digest authorization")
    found: dict[str, str] = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if m is None or len(found) > 16:
            raise DigestError("malformed Digest parameters")
        key, val = m.group(1).lower(), m.group(2)
        if val.startswith('"'):
            val = val[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        if key in found:
            raise DigestError(f"Digest parameter {key} given twice")
        found[key] = val
        pos = m.end()
    try:
        return Credentials(
            username=found["username"],
            realm=found["realm"],
            nonce=found["nonce"],
            uri=found["uri"],
            response=found["response"],
            algorithm=found.get("algorithm", "MD5").upper(),
            qop=found.get("qop"),
            nc=found.get("nc"),
            cnonce=found.get("cnonce"),
        )
    except KeyError as exc:
        raise DigestError(f"Digest parameter {exc.args[0]} missing") from None


def compute(
    algorithm: str,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
) -> str:
    h = ALGORITHMS[algorithm]

    def hx(text: str) -> str:
        return h(text.encode("utf-8")).hexdigest()

    ha1 = hx(f"{username}:{realm}:{password}")
    ha2 = hx(f"{method}:{uri}")
    if qop:
        return hx(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return hx(f"{ha1}:{nonce}:{ha2}")


def authorization(
    challenge: str, username: str, password: str, method: str, uri: str, nc: int = 1
) -> str:
    """The client's answer to a `WWW-Authenticate: Digest ...` challenge (the simulator's)."""
    c = parse_challenge(challenge)
    algorithm = c.get("algorithm", "MD5").upper()
    qop = "auth" if "auth" in c.get("qop", "").split(",") else None
    cnonce = secrets.token_hex(8) if qop else None
    ncs = f"{nc:08x}" if qop else None
    response = compute(
        algorithm, username, c["realm"], password, method, uri, c["nonce"], qop, ncs, cnonce
    )
    parts = [
        f'username="{username}"',
        f'realm="{c["realm"]}"',
        f'nonce="{c["nonce"]}"',
        f'uri="{uri}"',
        f'response="{response}"',
        f"algorithm={algorithm}",
    ]
    if qop:
        parts += [f"qop={qop}", f"nc={ncs}", f'cnonce="{cnonce}"']
    return "Digest " + ", ".join(parts)


def parse_challenge(value: str) -> dict[str, str]:
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise DigestError("not a Digest challenge")
    out: dict[str, str] = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if m is None:
            raise DigestError("malformed Digest challenge")
        val = m.group(2)
        out[m.group(1).lower()] = val[1:-1] if val.startswith('"') else val
        pos = m.end()
    if "nonce" not in out or "realm" not in out:
        raise DigestError("challenge without nonce or realm")
    return out


class NonceIssuer:
    """Stateless nonces per platform; nonce counts remembered for qop=auth."""

    def __init__(self, key: bytes, ttl_s: float) -> None:
        self._key = key
        self.ttl_s = ttl_s
        self._counts: OrderedDict[str, int] = OrderedDict()

    def issue(self, platform: str, now: float) -> str:
        # The random part: two challenges in one second are two nonces (their counts apart).
        issued = f"{int(now):x}-{secrets.token_hex(6)}"
        return f"{issued}.{self._mac(issued, platform)}"

    def _mac(self, issued: str, platform: str) -> str:
        message = f"{issued}|{platform}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]

    def challenge(self, platform: str, realm: str, now: float, stale: bool = False) -> str:
        nonce = self.issue(platform, now)
        text = f'Digest realm="{realm}", nonce="{nonce}", algorithm=MD5, qop="auth"'
        return text + (", stale=true" if stale else "")

    def verify(
        self,
        creds: Credentials,
        *,
        platform: str,
        realm: str,
        password: str,
        method: str,
        now: float,
    ) -> None:
        """Raises DigestError (stale=True: a good answer to a nonce that has expired)."""
        if creds.username != platform:
            raise DigestError("username is not the platform id")
        if creds.realm != realm:
            raise DigestError("realm is not ours")
        if creds.algorithm not in ALGORITHMS:
            raise DigestError(f"algorithm {creds.algorithm[:16]} not supported")
        issued, _, mac = creds.nonce.partition(".")
        if not re.fullmatch(r"[0-9a-f]{1,12}-[0-9a-f]{12}", issued) or not hmac.compare_digest(
            mac, self._mac(issued, platform)
        ):
            raise DigestError("nonce not issued by us to this platform")
        if creds.qop not in (None, "auth") or (creds.qop and not (creds.nc and creds.cnonce)):
            raise DigestError("qop must be auth, with nc and cnonce")
        expected = compute(
            creds.algorithm,
            creds.username,
            realm,
            password,
            method,
            creds.uri,
            creds.nonce,
            creds.qop,
            creds.nc,
            creds.cnonce,
        )
        if not hmac.compare_digest(expected, creds.response.lower()):
            raise DigestError("wrong response (password)")
        age = now - int(issued.split("-")[0], 16)
        if age > self.ttl_s or age < -60:
            raise DigestError("nonce expired", stale=True)
        if creds.qop:
            self._count(creds.nonce, creds.nc or "")

    def _count(self, nonce: str, nc: str) -> None:
        if not re.fullmatch(r"[0-9a-fA-F]{8}", nc):
            raise DigestError("nonce count is not 8 hex digits")
        count = int(nc, 16)
        if count <= self._counts.get(nonce, 0):
            raise DigestError("nonce count replayed")
        self._counts[nonce] = count
        self._counts.move_to_end(nonce)
        while len(self._counts) > _MAX_NONCES:
            self._counts.popitem(last=False)
