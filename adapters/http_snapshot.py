"""A camera's snapshot URI over HTTP, with Basic or Digest as the camera asks.

Hostile-camera rules: connect and total timeouts, a byte cap read as the body streams in,
redirects followed only to the same host (and at most twice), and only hosts the caller allows
(the network's CIDRs) are contacted at all. The body must look like a JPEG; decoding it is the
gateway's business (it decodes anyway to watermark or resize).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from urllib.parse import urljoin, urlsplit

import aiohttp

from .base import CameraAuthError, CameraProtocolError, CameraUnreachable
from .httpauth import Authenticator
from .onvif import read_capped
from .uris import UriCredentials, split_credentials

_MAX_REDIRECTS = 2
JPEG_SOI = b"\xff\xd8"


async def fetch_snapshot(
    session: aiohttp.ClientSession,
    uri: str,
    creds: UriCredentials | None,
    *,
    allowed: Callable[[str], bool],
    max_bytes: int,
    limits: aiohttp.ClientTimeout,
    sessions: dict[str, Authenticator] | None = None,
) -> bytes:
    """JPEG bytes from `uri`. Raises CameraUnreachable / CameraAuthError / CameraProtocolError
    with messages that name neither the host nor the credentials. `limits.total` bounds the
    whole exchange: the authentication round trip and any redirects included.

    `sessions` keeps each camera's digest challenge between fetches (keyed by origin and
    user), so the next fetch authenticates up front with the next nonce count instead of
    paying a 401 round trip; a stale or refused nonce is re-challenged once."""
    url, _ = split_credentials(uri)
    host = urlsplit(url).hostname or ""
    if not allowed(host):
        raise CameraProtocolError("snapshot URI names a host outside the network's ranges")
    try:
        async with asyncio.timeout(limits.total):
            return await _exchange(session, url, creds, max_bytes, limits, sessions)
    except TimeoutError as exc:
        raise CameraUnreachable("snapshot: timed out") from exc


async def _exchange(
    session: aiohttp.ClientSession,
    url: str,
    creds: UriCredentials | None,
    max_bytes: int,
    limits: aiohttp.ClientTimeout,
    sessions: dict[str, Authenticator] | None,
) -> bytes:
    cache = sessions if sessions is not None else {}
    key = _session_key(url, creds)
    auth = cache.get(key)
    challenged = False
    for _ in range(_MAX_REDIRECTS + 2):  # one auth round trip plus the redirects
        headers = {"Authorization": auth.header("GET", _path(url))} if auth else {}
        try:
            async with session.get(
                url, headers=headers, allow_redirects=False, timeout=limits
            ) as resp:
                if resp.status == 401 and not challenged and creds is not None:
                    challenged = True
                    auth = Authenticator.from_challenges(
                        resp.headers.getall("WWW-Authenticate", []), creds.username, creds.password
                    )
                    if auth is None:
                        cache.pop(key, None)
                        raise CameraAuthError("snapshot: no supported authentication offered")
                    cache[key] = auth
                    continue
                if resp.status in (401, 403):
                    cache.pop(key, None)
                    raise CameraAuthError(f"snapshot: credentials refused ({resp.status})")
                if resp.status in (301, 302, 303, 307, 308):
                    url = _same_host_redirect(url, resp.headers.get("Location", ""))
                    continue
                if resp.status != 200:
                    raise CameraProtocolError(f"snapshot: HTTP {resp.status}")
                body = await read_capped(resp, max_bytes)
        except TimeoutError as exc:
            raise CameraUnreachable("snapshot: timed out") from exc
        except aiohttp.ClientConnectionError as exc:
            raise CameraUnreachable(f"snapshot: {type(exc).__name__}") from exc
        except aiohttp.ClientError as exc:
            raise CameraProtocolError(f"snapshot: bad HTTP answer ({type(exc).__name__})") from exc
        if not body.startswith(JPEG_SOI):
            raise CameraProtocolError("snapshot: the answer is not a JPEG")
        return body
    raise CameraProtocolError("snapshot: too many redirects")


def _session_key(url: str, creds: UriCredentials | None) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port}/{creds.username if creds else ''}"


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "") or "/"


def _same_host_redirect(current: str, location: str) -> str:
    target = urljoin(current, location)
    a, b = urlsplit(current), urlsplit(target)
    if (a.scheme, a.hostname, a.port) != (b.scheme, b.hostname, b.port):
        raise CameraProtocolError("snapshot: redirect to another host refused")
    return target
