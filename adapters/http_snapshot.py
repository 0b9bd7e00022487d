"""A camera's snapshot URI over HTTP, with Digest (SHA-256 or MD5) or Basic as the camera asks.

Hostile-camera rules: connect and total timeouts, a byte cap read as the body streams in,
redirects followed only to the same origin (scheme, host and port; at most twice), and only hosts
the caller allows (the network's CIDRs) are contacted at all. The body must look like a JPEG;
decoding it is the gateway's business (it decodes anyway to watermark or resize).

Credentials: the caller decides whether any go with this URI (`adapters.network` sends a camera's
only to its own address, on its own ports). Basic is answered only over https or when the
network opted in (`allow_basic_over_http`); a digest session kept between fetches is keyed by
origin and user and reused only with the very same credentials.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from urllib.parse import urljoin, urlsplit

import aiohttp

from .base import CameraAuthError, CameraProtocolError, CameraUnreachable
from .httpauth import Authenticator, offers_basic
from .onvif import read_capped
from .uris import UriCredentials, split_credentials

_MAX_REDIRECTS = 2
JPEG_SOI = b"\xff\xd8"
_DEFAULT_PORTS = {"http": 80, "https": 443}
BASIC_OVER_HTTP_REFUSED = (
    "snapshot: the camera asks for Basic authentication over plain HTTP, which this network "
    "does not allow (allow_basic_over_http)"
)


async def fetch_snapshot(
    session: aiohttp.ClientSession,
    uri: str,
    creds: UriCredentials | None,
    *,
    allowed: Callable[[str], bool],
    max_bytes: int,
    limits: aiohttp.ClientTimeout,
    sessions: dict[str, Authenticator] | None = None,
    allow_basic_over_http: bool = False,
    withheld: str | None = None,
) -> bytes:
    """JPEG bytes from `uri`. Raises CameraUnreachable / CameraAuthError / CameraProtocolError
    with messages that name neither the host nor the credentials. `limits.total` bounds the
    whole exchange: the authentication round trip and any redirects included.

    `creds`: what may answer this URI's challenge (None: nothing is sent; `withheld` then says
    why, for the error if the camera asks). Credentials inside `uri` are ignored. Basic is
    answered over https, and over http only if `allow_basic_over_http`.

    `sessions` keeps each camera's digest challenge between fetches (keyed by origin and
    user), so the next fetch authenticates up front with the next nonce count instead of
    paying a 401 round trip; a stale or refused nonce is re-challenged once."""
    url, _ = split_credentials(uri)
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not allowed(host):
        raise CameraProtocolError("snapshot URI names a host outside the network's ranges")
    try:
        _ = parts.port
    except ValueError:
        raise CameraProtocolError("snapshot URI has an invalid port") from None
    try:
        async with asyncio.timeout(limits.total):
            return await _exchange(
                session, url, creds, max_bytes, limits, sessions, allow_basic_over_http, withheld
            )
    except TimeoutError as exc:
        raise CameraUnreachable("snapshot: timed out") from exc


async def _exchange(
    session: aiohttp.ClientSession,
    url: str,
    creds: UriCredentials | None,
    max_bytes: int,
    limits: aiohttp.ClientTimeout,
    sessions: dict[str, Authenticator] | None,
    allow_basic_over_http: bool,
    withheld: str | None,
) -> bytes:
    cache = sessions if sessions is not None else {}
    key = _session_key(url, creds)
    basic_ok = allow_basic_over_http or urlsplit(url).scheme.lower() == "https"
    auth = _cached(cache, key, creds, basic_ok)
    challenged = False
    for _ in range(_MAX_REDIRECTS + 2):  # one auth round trip plus the redirects
        headers = {"Authorization": auth.header("GET", _path(url))} if auth else {}
        try:
            async with session.get(
                url, headers=headers, allow_redirects=False, timeout=limits
            ) as resp:
                if resp.status == 401 and not challenged:
                    if creds is None:
                        reason = withheld or "no credentials were given"
                        raise CameraAuthError(
                            f"snapshot: the camera asks for authentication; {reason}"
                        )
                    challenged = True
                    offered = resp.headers.getall("WWW-Authenticate", [])
                    auth = Authenticator.from_challenges(
                        offered, creds.username, creds.password, allow_basic=basic_ok
                    )
                    if auth is None:
                        cache.pop(key, None)
                        if not basic_ok and offers_basic(offered):
                            raise CameraAuthError(BASIC_OVER_HTTP_REFUSED)
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


def _cached(
    cache: dict[str, Authenticator], key: str, creds: UriCredentials | None, basic_ok: bool
) -> Authenticator | None:
    """The session kept for this origin and user, if it answers with exactly `creds` (and is
    not Basic where Basic is not allowed); otherwise it is dropped."""
    auth = cache.get(key)
    if auth is None or creds is None:
        return None
    if auth.matches(creds.username, creds.password) and (auth.scheme != "basic" or basic_ok):
        return auth
    cache.pop(key, None)
    return None


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port if parts.port is not None else _DEFAULT_PORTS.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


def _session_key(url: str, creds: UriCredentials | None) -> str:
    scheme, host, port = _origin(url)
    return f"{scheme}://[{host}]:{port}/{creds.username if creds else ''}"


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "") or "/"


def _same_host_redirect(current: str, location: str) -> str:
    """Only to the same origin (scheme, host, port): the credentials answering the camera's
    challenge, and the digest session, stay with it."""
    target = urljoin(current, location)
    try:
        same = _origin(current) == _origin(target)
    except ValueError:  # an invalid port
        same = False
    if not same:
        raise CameraProtocolError("snapshot: redirect to another host refused")
    target, _ = split_credentials(target)
    return target
