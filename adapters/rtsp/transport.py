"""The RTSP connection (RFC 2326, RTSP/1.0) in pure asyncio: requests and their answers, digest or
basic authentication, and RTP interleaved on the connection (RTP/AVP/TCP). No UDP: one TCP
connection per stream, which is what crosses a camera network's firewall.

The gateway must contact only addresses inside a network's CIDRs, so: `allowed(host)` is checked
before every connection, redirects (3xx) are never followed (`refuse_redirect`), and URLs an
answer names (Content-Base, control URLs) must name the stream's own host (`same_host_url`).
One host, one TCP connection (two if the camera closes after a 401); every wait is the caller's
asyncio timeout, so a hanging camera holds up nobody else and everything can be cancelled.

Credentials may come in the URI (rtsp://user:pass@host/...) or as arguments; they are never sent
in the request line, never logged, and never appear in an exception message. They answer the
strongest Digest challenge offered (SHA-256 over MD5, `adapters.httpauth`); Basic sends the
password in clear over plain RTSP, so it is answered only with `allow_basic=True` (the network's
`allow_basic_over_http`), never by default.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from ..httpauth import Authenticator, offered_schemes, offers_basic
from ..uris import split_credentials
from .errors import (
    PeerClosed,
    RtspAuthError,
    RtspConnectionError,
    RtspError,
    RtspNoCredentials,
    RtspProtocolError,
)

RTSP_DEFAULT_PORT = 554
MAX_RESPONSE_BYTES = 64 * 1024  # status line + headers + body, per response
MAX_EARLY_MEDIA_BYTES = 4 << 20  # interleaved media arriving before the answer to PLAY
DESCRIBE_RETRY_S = 0.2  # wait before the one retry of a DESCRIBE answered 503
USER_AGENT = "camgw-rtsp/1.0"
_METHOD_START = re.compile(rb"[A-Z_]{4}")  # a request from the camera: SET_PARAMETER, ANNOUNCE


def new_connection(
    uri: str,
    username: str | None,
    password: str | None,
    allowed: Callable[[str], bool] | None = None,
    named: bool = True,
    *,
    allow_basic: bool = False,
) -> RtspConnection:
    """Credentials in the URI are used when `username` is not given. `named`: error messages
    start with the (credential-free) URI. `allow_basic`: Basic may answer a challenge.
    Nothing is sent yet (`connect()`)."""
    clean_uri, uri_creds = split_credentials(uri)
    if username is None and uri_creds is not None:
        username, password = uri_creds.username, uri_creds.password
    parts = urlsplit(clean_uri)
    prefix = f"{safe(clean_uri)}: " if named else ""
    if parts.scheme.lower() != "rtsp":
        raise RtspError(f"{prefix}not an rtsp:// URI")
    host = parts.hostname
    if not host:
        raise RtspError(f"{prefix}no host")
    try:
        port = parts.port or RTSP_DEFAULT_PORT
    except ValueError:
        raise RtspError(f"{prefix}invalid port") from None
    if not request_uri_ok(clean_uri):
        raise RtspError(f"{prefix}invalid URI")
    conn = RtspConnection(
        clean_uri, host, port, username, password or "", allowed, allow_basic=allow_basic
    )
    conn.label = clean_uri if named else None
    return conn


@dataclass(slots=True)
class Response:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def all(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self.headers if key == name]


class RtspConnection:
    """One RTSP connection to one camera: requests (authenticated when challenged), answers
    bounded by MAX_RESPONSE_BYTES, then the media interleaved on it. Timeouts are the
    caller's (asyncio.timeout around any of these); `stage` names what we were waiting for."""

    def __init__(
        self,
        uri: str,
        host: str,
        port: int,
        username: str | None,
        password: str,
        allowed: Callable[[str], bool] | None = None,
        *,
        allow_basic: bool = False,
    ):
        self.uri = uri
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.allowed = allowed
        self.allow_basic = allow_basic  # Basic sends the password in clear: only if opted in
        self.label: str | None = uri  # prefix of error messages; None: no URI in them
        self.stage = "connect"
        self.cseq = 0
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.auth: Authenticator | None = None
        self.sent_on_connection = 0
        self.reconnect = True  # after a SETUP the session lives on this connection: no
        self.interleaved = False  # after a SETUP: RTP may come before a response
        self.early: collections.deque[tuple[int, bytes]] = collections.deque()
        self.early_bytes = 0

    # -- plumbing ---------------------------------------------------------------------------

    def error(self, cls: type[RtspError], message: str) -> RtspError:
        """An exception of `cls`, its message prefixed with the URI (if named), never with a
        password."""
        text = f"{self.label}: {message}" if self.label else message
        if len(self.password) >= 4 and self.password in text:  # defence in depth
            text = text.replace(self.password, "***")
        return cls(text)

    def refuse_redirect(self, method: str, response: Response) -> None:
        """Redirects are never followed: the target could be any host, outside the network."""
        if 300 <= response.status < 400:
            raise self.error(
                RtspProtocolError, f"{method}: redirect refused ({response.status}, not followed)"
            )

    async def connect(self) -> None:
        self.stage = "connect"
        if self.allowed is not None and not self.allowed(self.host):
            raise self.error(RtspProtocolError, "host outside the allowed address ranges")
        try:
            self.reader, self.writer = await asyncio.open_connection(
                self.host, self.port, limit=MAX_RESPONSE_BYTES
            )
            self.sent_on_connection = 0
        except ConnectionRefusedError:
            raise self.error(RtspConnectionError, "connection refused") from None
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise self.error(RtspConnectionError, f"cannot connect ({reason})") from None

    async def close(self) -> None:
        writer, self.writer, self.reader = self.writer, None, None
        if writer is None:
            return
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def request(
        self, method: str, extra: dict[str, str] | None = None, url: str | None = None
    ) -> Response:
        """Send one request (authenticating if challenged) and return the final response.
        `url`: the request URI (default: the stream's)."""
        url = url or self.uri
        response = await self._send(method, extra, url)
        if response.status == 401:
            response = await self._authenticate(method, extra, response, url)
        return response

    async def _authenticate(
        self, method: str, extra: dict[str, str] | None, challenge: Response, url: str
    ) -> Response:
        """Answer a 401: once with the challenge, once more only if the camera says our nonce
        went stale. A second plain 401 means the credentials are wrong."""
        if self.username is None:
            raise self.error(
                RtspNoCredentials, f"{method} needs authentication; no credentials set"
            )
        for attempt in range(2):
            offered = challenge.all("www-authenticate")
            auth = Authenticator.from_challenges(
                offered, self.username, self.password, allow_basic=self.allow_basic
            )
            if auth is None:
                if not self.allow_basic and offers_basic(offered):
                    raise self.error(
                        RtspAuthError,
                        f"{method}: the camera asks for Basic authentication over plain RTSP, "
                        "which this network does not allow (allow_basic_over_http)",
                    )
                raise self.error(
                    RtspAuthError,
                    f"{method}: unsupported authentication scheme ({offered_schemes(offered)})",
                )
            if attempt and not auth.stale:
                break
            self.auth = auth
            if (challenge.header("connection") or "").lower() == "close" and self.reconnect:
                await self.close()
            response = await self._send(method, extra, url)
            if response.status != 401:
                return response
            challenge = response
        scheme = self.auth.scheme if self.auth is not None else "?"
        raise self.error(RtspAuthError, f"{method}: credentials refused ({scheme})")

    async def _send(self, method: str, extra: dict[str, str] | None, url: str) -> Response:
        """One request and its response; if the camera had closed a connection we already
        used (many close after a 401), reconnect and send it once more."""
        if self.writer is None or self.reader is None:
            if not self.reconnect:
                raise self.error(RtspConnectionError, f"{method}: connection closed by the camera")
            await self.connect()
        try:
            return await self._exchange(method, extra, url)
        except PeerClosed:
            if self.sent_on_connection <= 1 or not self.reconnect:
                raise
        await self.close()
        await self.connect()
        return await self._exchange(method, extra, url)

    def write_request(self, method: str, extra: dict[str, str] | None, url: str) -> None:
        """Queue one request on the connection (its answer is read by the caller)."""
        assert self.writer is not None
        self.cseq += 1
        lines = [f"{method} {url} RTSP/1.0", f"CSeq: {self.cseq}", f"User-Agent: {USER_AGENT}"]
        for key, value in (extra or {}).items():
            lines.append(f"{key}: {value}")
        if self.auth is not None:
            lines.append(f"Authorization: {self.auth.header(method, url)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"))

    async def _exchange(self, method: str, extra: dict[str, str] | None, url: str) -> Response:
        assert self.writer is not None and self.reader is not None
        self.sent_on_connection += 1
        self.stage = method
        try:
            self.write_request(method, extra, url)
            await self.writer.drain()
        except OSError:
            raise self.error(PeerClosed, f"{method}: connection lost while sending") from None
        response = await self._read_response(method)
        cseq = response.header("cseq")
        if cseq is not None and cseq.strip() != str(self.cseq):
            raise self.error(
                RtspProtocolError, f"{method}: answer for CSeq {cseq[:20]!r}, not {self.cseq}"
            )
        return response

    async def _read_response(self, method: str) -> Response:
        assert self.reader is not None
        try:
            # Look at the first bytes before waiting for a whole header block: a peer that
            # sends something else is told apart at once, not after the timeout.
            head = await self.reader.readexactly(1)
            while head == b"$" and self.interleaved:  # media before the answer (to PLAY)
                await self._stash_interleaved(method)
                head = await self.reader.readexactly(1)
            head += await self.reader.readexactly(4)
            if head != b"RTSP/":
                kind = "an HTTP" if head == b"HTTP/" else "a non-RTSP"
                raise self.error(RtspProtocolError, f"{method}: {kind} answer")
            head += await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise self.error(
                RtspProtocolError, f"{method}: response headers exceed {MAX_RESPONSE_BYTES} bytes"
            ) from None
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                raise self.error(
                    PeerClosed, f"{method}: connection closed without an answer"
                ) from None
            raise self.error(RtspProtocolError, f"{method}: truncated answer") from None
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise self.error(PeerClosed, f"{method}: connection lost ({reason})") from None
        status, reason, headers = self._parse_head(method, head)
        body = b""
        length_text = next((v for k, v in headers if k == "content-length"), None)
        if length_text is not None:
            try:
                length = int(length_text)
            except ValueError:
                raise self.error(RtspProtocolError, f"{method}: bad Content-Length") from None
            if length < 0 or len(head) + length > MAX_RESPONSE_BYTES:
                raise self.error(
                    RtspProtocolError, f"{method}: response larger than {MAX_RESPONSE_BYTES} bytes"
                )
            try:
                body = await self.reader.readexactly(length)
            except asyncio.IncompleteReadError:
                raise self.error(RtspProtocolError, f"{method}: truncated body") from None
            except OSError as exc:
                raise self.error(RtspConnectionError, f"{method}: connection lost") from exc
        return Response(status, reason, headers, body)

    async def _stash_interleaved(self, method: str) -> None:
        """An interleaved frame ($, channel, length) read while waiting for an answer: kept
        for the player, within bounds."""
        assert self.reader is not None
        channel, high, low = await self.reader.readexactly(3)
        data = await self.reader.readexactly((high << 8) | low)
        self.early_bytes += len(data)
        if self.early_bytes > MAX_EARLY_MEDIA_BYTES:
            raise self.error(RtspProtocolError, f"{method}: no answer among the media packets")
        self.early.append((channel, data))

    def _parse_head(self, method: str, head: bytes) -> tuple[int, str, list[tuple[str, str]]]:
        text = head.decode("latin-1")
        lines = text.split("\r\n")
        m = re.fullmatch(r"RTSP/1\.\d (\d{3})(?: (.*))?", lines[0])
        if m is None:
            kind = "an HTTP" if lines[0].startswith("HTTP/") else "a non-RTSP"
            raise self.error(RtspProtocolError, f"{method}: {kind} answer")
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            if not line:
                continue
            if line[0] in " \t" and headers:  # obsolete line folding
                key, value = headers[-1]
                headers[-1] = (key, f"{value} {line.strip()}")
                continue
            key, sep, value = line.partition(":")
            if not sep or not key.strip():
                raise self.error(RtspProtocolError, f"{method}: malformed header line")
            headers.append((key.strip().lower(), value.strip()))
        reason = printable(m.group(2) or "")
        return int(m.group(1)), reason, headers

    # -- OPTIONS and DESCRIBE ---------------------------------------------------------------

    async def options(self) -> tuple[tuple[str, ...], str | None]:
        """OPTIONS: (the methods in Public, the Server header). Some cameras answer OPTIONS
        badly (404/501) yet DESCRIBE fine: only a redirect is an error."""
        response = await self.request("OPTIONS")
        self.refuse_redirect("OPTIONS", response)
        if response.status != 200:
            return (), None
        public = response.header("public") or ""
        methods = tuple(m.strip().upper() for m in public.split(",") if m.strip())[:32]
        return methods, response.header("server")

    async def describe(self) -> Response:
        """DESCRIBE: a 200 answer with an SDP body, else an RtspError. A 503 is retried once
        after DESCRIBE_RETRY_S (within the caller's timeout): servers answer it while a shared
        stream is still being torn down after its last client (GStreamer's RTSP server does),
        or while the encoder starts."""
        resp = await self.request("DESCRIBE", {"Accept": "application/sdp"})
        if resp.status == 503:
            await asyncio.sleep(DESCRIBE_RETRY_S)
            resp = await self.request("DESCRIBE", {"Accept": "application/sdp"})
        self.refuse_redirect("DESCRIBE", resp)
        if resp.status != 200:
            if resp.status == 404:
                raise self.error(RtspError, "DESCRIBE: no such stream (404)")
            raise self.error(RtspError, f"DESCRIBE: {resp.status} {resp.reason[:60]}".rstrip())
        content_type = (resp.header("content-type") or "application/sdp").split(";")[0].strip()
        if content_type.lower() != "application/sdp":
            raise self.error(
                RtspProtocolError, f"DESCRIBE: content type {content_type[:40]!r}, not SDP"
            )
        if not resp.body:
            raise self.error(RtspProtocolError, "DESCRIBE: empty SDP")
        return resp

    # -- media interleaved on the connection ------------------------------------------------

    async def next_interleaved(self) -> tuple[int, bytes]:
        """The next interleaved frame (channel, data): one kept while waiting for an answer,
        else one read from the connection. RTSP messages among the media (answers to
        keep-alives, requests from the camera) are read and skipped."""
        while True:
            if self.early:
                return self.early.popleft()
            item = await self._read_interleaved()
            if item is not None:
                return item

    async def _read_interleaved(self) -> tuple[int, bytes] | None:
        reader = self.reader
        if reader is None:
            raise self.error(RtspConnectionError, "stream: connection closed")
        try:
            head = await reader.readexactly(4)
            if head[0] == 0x24:  # '$', channel, 16-bit length
                return head[1], await reader.readexactly((head[2] << 8) | head[3])
            if head == b"RTSP" or _METHOD_START.fullmatch(head):
                await self._skip_message(reader)
                return None
        except asyncio.IncompleteReadError:
            raise self.error(
                RtspConnectionError, "stream: connection closed by the camera"
            ) from None
        except asyncio.LimitOverrunError:
            raise self.error(
                RtspProtocolError, f"stream: message headers exceed {MAX_RESPONSE_BYTES} bytes"
            ) from None
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise self.error(RtspConnectionError, f"stream: connection lost ({reason})") from None
        raise self.error(RtspProtocolError, "stream: garbage among the interleaved media")

    async def _skip_message(self, reader: asyncio.StreamReader) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        m = re.search(rb"(?im)^content-length[ \t]*:[ \t]*(\d{1,9})[ \t]*\r?$", head)
        length = int(m.group(1)) if m else 0
        if length > MAX_RESPONSE_BYTES:
            raise self.error(RtspProtocolError, "stream: oversized RTSP message among the media")
        if length:
            await reader.readexactly(length)

    # -- URLs an answer names ---------------------------------------------------------------

    def same_host_url(self, what: str, url: str) -> str:
        """`url` without userinfo, if it names the stream's own host; else refused."""
        clean, _ = split_credentials(url.strip())
        try:
            parts = urlsplit(clean)
            host = parts.hostname or ""
            _ = parts.port
        except ValueError:
            raise self.error(RtspProtocolError, f"{what} is not a valid URL") from None
        if parts.scheme.lower() != "rtsp" or not request_uri_ok(clean):
            raise self.error(RtspProtocolError, f"{what} is not a valid rtsp:// URL")
        if not same_host(host, self.host) or (self.allowed is not None and not self.allowed(host)):
            raise self.error(RtspProtocolError, f"{what} names another host: refused")
        return clean


def printable(text: str) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def safe(uri: str) -> str:
    """A (credential-free) URI for an error message: printable, bounded."""
    return printable(uri)[:200]


def request_uri_ok(uri: str) -> bool:
    """Safe to put in a request line: printable ASCII, no spaces, bounded."""
    return 0 < len(uri) <= 1024 and all(0x21 <= ord(ch) < 0x7F for ch in uri)


def resolve_control(base: str, control: str) -> str:
    """RFC 2326 C.1.1: an absolute control URL, "*" (the base), or one relative to the base."""
    control = control.strip()
    if not control or control == "*":
        return base
    if re.match(r"(?i)^[a-z][a-z0-9+.-]*://", control):
        return control
    if control.startswith("/"):
        parts = urlsplit(base)
        return urlunsplit((parts.scheme, parts.netloc, control, "", ""))
    return base + ("" if base.endswith("/") else "/") + control


def same_host(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a.lower().rstrip(".") == b.lower().rstrip(".")
