"""A camera's snapshot URI over HTTP, with Digest (SHA-256 or MD5) or Basic as the camera asks.

Hostile-camera rules: connect and total timeouts, a byte cap read as the body streams in,
redirects followed only to the same origin (scheme, host and port; at most twice), and only hosts
the caller allows (the network's CIDRs) are contacted at all. The body comes back as it is, with
the Content-Type the camera declared: what it really is (a JPEG, a PNG to convert, an HTML error
page) is `adapters.imaging`'s business, read from its bytes.

`UnusableAnswers` remembers, per camera and URI, that a snapshot URI answered something unusable,
so that the caller can take the picture elsewhere (RTSP) for a while instead of downloading the
same error page on every request.

Credentials: the caller decides whether any go with this URI (`adapters.network` sends a camera's
only to its own address, on its own ports). Basic is answered only over https or when the
network opted in (`allow_basic_over_http`); a digest session kept between fetches is keyed by
origin and user and reused only with the very same credentials.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import aiohttp

from .base import CameraAuthError, CameraProtocolError, CameraUnreachable
from .httpauth import Authenticator, offers_basic
from .onvif import read_capped
from .uris import UriCredentials, split_credentials

_MAX_REDIRECTS = 2
_DEFAULT_PORTS = {"http": 80, "https": 443}
BASIC_OVER_HTTP_REFUSED = (
    "snapshot: the camera asks for Basic authentication over plain HTTP, which this network "
    "does not allow (allow_basic_over_http)"
)
_NOT_MEDIA_TYPE = re.compile(r"[^a-z0-9.+/-]")


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    body: bytes
    content_type: str  # as the camera declared it: a media type (lower case, bounded) or ""


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
) -> HttpAnswer:
    """The body of a 200 answer from `uri`, whatever it is (`adapters.imaging.identify` says
    what). Raises CameraUnreachable / CameraAuthError / CameraProtocolError with messages that
    name neither the host nor the credentials. `limits.total` bounds the whole exchange: the
    authentication round trip and any redirects included.

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
) -> HttpAnswer:
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
                declared = resp.headers.get("Content-Type", "").partition(";")[0]
                return HttpAnswer(body, _NOT_MEDIA_TYPE.sub("", declared.lower())[:64])
        except TimeoutError as exc:
            raise CameraUnreachable("snapshot: timed out") from exc
        except aiohttp.ClientConnectionError as exc:
            raise CameraUnreachable(f"snapshot: {type(exc).__name__}") from exc
        except aiohttp.ClientError as exc:
            raise CameraProtocolError(f"snapshot: bad HTTP answer ({type(exc).__name__})") from exc
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


class UnusableAnswers:
    """Which cameras' snapshot URIs answered something unusable (an HTML page, garbage, a
    picture that does not decode), each for `ttl_s` after that answer: meanwhile the caller
    takes their pictures elsewhere. Keyed by camera and URI (a corrected URI is asked at once);
    at most `max_entries`, the oldest forgotten first; `clock` is injectable for tests."""

    def __init__(
        self,
        ttl_s: float,
        max_entries: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock = clock
        self._until: OrderedDict[tuple[str, str], tuple[float, str]] = OrderedDict()

    def recall(self, camera: str, uri: str) -> tuple[str, float] | None:
        """What the URI answered and how many seconds it is still skipped; None when it is to
        be asked (never was unusable, or long enough ago)."""
        key = (camera, uri)
        entry = self._until.get(key)
        if entry is None:
            return None
        until, what = entry
        left = until - self.clock()
        if left <= 0:
            del self._until[key]
            return None
        return what, left

    def remember(self, camera: str, uri: str, what: str) -> None:
        if self.ttl_s <= 0:
            return
        key = (camera, uri)
        self._until.pop(key, None)
        self._until[key] = (self.clock() + self.ttl_s, what)
        while len(self._until) > self.max_entries:
            self._until.popitem(last=False)

    def forget(self, camera: str, uri: str) -> None:
        self._until.pop((camera, uri), None)

    def __len__(self) -> int:
        return len(self._until)
