"""Camera credentials, sealed; keys derived from one key file.

A sealed value is AES-256-GCM ciphertext bound to an id (the camera's), so it opens only with
the key and only for that id: an AOF file, an RDB dump, a replica, SLOWLOG or MONITOR never
shows a camera password. The key lives in a file outside Redis (`CAMGW_KEY_FILE`, default
`var/camgw.key`; mode 600), and every other key (camera refs, the audit chains) is derived from
it with HKDF (`CredentialVault.derive`).

Here in `adapters` so that an edge adapter, a process of its own inside its network, keeps its
own key file, seals its own per-camera credentials and derives its own keys; the gateway uses
the same code through `gateway.vault`.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .uris import UriCredentials

KEY_BYTES = 32


class VaultError(Exception):
    """The key file is missing or malformed, or a sealed value does not open."""


class CredentialVault:
    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise VaultError("credential key must be 32 bytes")
        self._aead = AESGCM(key)
        self._key = key

    def __repr__(self) -> str:
        return "CredentialVault(<key hidden>)"

    def derive(self, purpose: str) -> bytes:
        """A 32-byte key for one purpose (camera ids, the audit chain), derived with HKDF so the
        deployment keeps one secret file and no derived key reveals another or the master."""
        hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=purpose.encode())
        return hkdf.derive(self._key)

    def seal(self, camera_id: str, creds: UriCredentials) -> bytes:
        nonce = secrets.token_bytes(12)
        plain = orjson.dumps({"u": creds.username, "p": creds.password})
        return nonce + self._aead.encrypt(nonce, plain, camera_id.encode())

    def open(self, camera_id: str, sealed: bytes) -> UriCredentials:
        try:
            plain = self._aead.decrypt(sealed[:12], sealed[12:], camera_id.encode())
        except (InvalidTag, ValueError) as exc:
            raise VaultError(f"credentials of camera {camera_id} do not open") from exc
        data = orjson.loads(plain)
        return UriCredentials(data["u"], data["p"])


def load_key(path: Path) -> bytes:
    try:
        text = path.read_text().strip()
    except FileNotFoundError as exc:
        raise VaultError(f"no credential key at {path}; create one with `camgw keygen`") from exc
    try:
        key = base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise VaultError(f"credential key file {path} is not base64") from exc
    if len(key) != KEY_BYTES:
        raise VaultError(f"credential key file {path} must hold 32 bytes")
    return key


def create_key_file(path: Path) -> None:
    """Write a new random key, readable by the owner only; never overwrites one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode() + "\n")
