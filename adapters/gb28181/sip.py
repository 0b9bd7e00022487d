"""A small, strict SIP (RFC 3261) message parser and serialiser: what GB/T 28181 signalling needs.

Strict on purpose (a video security access platform checks signalling strictly, and so do we):
bounded message size, line length and header count; no line folding; no control characters
in the head; the five headers every request needs (Via, From, To, Call-ID, CSeq), a CSeq whose
method is the request's, and a Content-Length that is present on a stream and equals the body
a datagram carries. Whatever breaks a rule raises `SipError` with the status a UAS answers
(400, 413, 505) and a reason that names the rule, never an echo of the input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_MESSAGE_BYTES = 64 << 10  # a catalog page of a few channels is ~4 kB; GB bodies stay small
MAX_HEADERS = 64
MAX_LINE = 2048
SIP_VERSION = "SIP/2.0"

# RFC 3261 section 7.3.3 compact forms.
_COMPACT = {
    "v": "Via",
    "f": "From",
    "t": "To",
    "i": "Call-ID",
    "m": "Contact",
    "l": "Content-Length",
    "c": "Content-Type",
    "k": "Supported",
    "s": "Subject",
    "e": "Content-Encoding",
    "o": "Event",
}
_CANONICAL = {
    n.lower(): n
    for n in (
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Contact",
        "Content-Length",
        "Content-Type",
        "Max-Forwards",
        "Expires",
        "Authorization",
        "WWW-Authenticate",
        "User-Agent",
        "Date",
        "Event",
        "Subscription-State",
        "Subject",
        "Supported",
        "Allow",
        "X-GB-Ver",
    )
}
_REQUIRED = ("Via", "From", "To", "Call-ID", "CSeq")
_TOKEN = re.compile(r"^[A-Za-z0-9.!%*_+`'~-]{1,32}$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9.!%*_+`'~-]{1,64}$")
_CTL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_STATUS_LINE = re.compile(r"^SIP/2\.0 ([1-6][0-9]{2}) ([^\x00-\x1f\x7f]{0,200})$")

REASONS = {
    100: "Trying",
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    481: "Call/Transaction Does Not Exist",
    486: "Busy Here",
    489: "Bad Event",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "Version Not Supported",
}


class SipError(Exception):
    """A message refused: `status` is what a UAS answers (when it can answer at all)."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"{status} {reason}")


@dataclass(slots=True)
class SipMessage:
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def get(self, name: str) -> str | None:
        want = canonical(name)
        return next((v for n, v in self.headers if n == want), None)

    def all(self, name: str) -> list[str]:
        want = canonical(name)
        return [v for n, v in self.headers if n == want]

    def set(self, name: str, value: str) -> None:
        want = canonical(name)
        self.headers = [(n, v) for n, v in self.headers if n != want] + [(want, value)]

    @property
    def call_id(self) -> str:
        return self.get("Call-ID") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        number, _, method = (self.get("CSeq") or "").partition(" ")
        return int(number), method.strip()


@dataclass(slots=True)
class SipRequest(SipMessage):
    method: str = ""
    uri: str = ""

    def encode(self) -> bytes:
        return _encode(f"{self.method} {self.uri} {SIP_VERSION}", self.headers, self.body)


@dataclass(slots=True)
class SipResponse(SipMessage):
    status: int = 200
    reason: str = "OK"

    def encode(self) -> bytes:
        return _encode(f"{SIP_VERSION} {self.status} {self.reason}", self.headers, self.body)


def canonical(name: str) -> str:
    low = name.lower()
    low = _COMPACT.get(low, low).lower()
    return _CANONICAL.get(low) or "-".join(p.capitalize() for p in low.split("-"))


def _encode(first: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    lines = [first]
    for name, value in headers:
        if name == "Content-Length":
            continue
        if _CTL.search(value) or "\r" in value:
            raise ValueError(f"header {name} carries a control character")
        lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


def head_end(data: bytes | bytearray) -> int:
    """Index just past the blank line ending the head, or -1."""
    at = data.find(b"\r\n\r\n")
    return -1 if at < 0 else at + 4


def parse(
    data: bytes,
    *,
    stream: bool = False,
    max_bytes: int = MAX_MESSAGE_BYTES,
    max_headers: int = MAX_HEADERS,
) -> SipRequest | SipResponse:
    """One whole message: a datagram, or (`stream`) one framed off a TCP connection, whose
    Content-Length is then required (RFC 3261 section 18.3)."""
    if len(data) > max_bytes:
        raise SipError(413, f"message larger than {max_bytes} bytes")
    end = head_end(data)
    if end < 0:
        raise SipError(400, "no blank line after the headers")
    try:
        head = data[: end - 4].decode("utf-8")
    except UnicodeDecodeError:
        raise SipError(400, "headers are not UTF-8") from None
    lines = head.split("\r\n")
    if len(lines) - 1 > max_headers:
        raise SipError(413, f"more than {max_headers} header lines")
    first, raw_headers = lines[0], lines[1:]
    if len(first) > MAX_LINE or _CTL.search(first):
        raise SipError(400, "start line too long or has control characters")
    headers = [_header(line) for line in raw_headers]
    body = data[end:]
    msg = _start(first)
    msg.headers = headers
    _check_length(msg, body, stream)
    msg.body = body
    if isinstance(msg, SipRequest):
        _check_request(msg)
    else:
        for name in _REQUIRED:
            if msg.get(name) is None:
                raise SipError(400, f"response without {name}")
        _cseq(msg)
    return msg


def _start(first: str) -> SipRequest | SipResponse:
    if first.startswith("SIP/"):
        if not first.startswith(SIP_VERSION + " "):
            raise SipError(505, "only SIP/2.0 is spoken")
        m = _STATUS_LINE.match(first)
        if m is None:
            raise SipError(400, "malformed status line")
        return SipResponse(status=int(m.group(1)), reason=m.group(2))
    parts = first.split(" ")
    if len(parts) != 3:
        raise SipError(400, "malformed request line")
    method, uri, version = parts
    if version != SIP_VERSION:
        raise SipError(505, "only SIP/2.0 is spoken")
    if not _TOKEN.match(method) or method.upper() != method:
        raise SipError(400, "malformed method")
    if not uri.lower().startswith(("sip:", "sips:")) or len(uri) > 256:
        raise SipError(400, "request URI is not a sip: URI")
    return SipRequest(method=method, uri=uri)


def _header(line: str) -> tuple[str, str]:
    if not line:
        raise SipError(400, "empty header line")
    if line[0] in " \t":
        raise SipError(400, "folded header lines are not accepted")
    if len(line) > MAX_LINE:
        raise SipError(413, f"header line longer than {MAX_LINE} characters")
    if _CTL.search(line):
        raise SipError(400, "control character in a header")
    name, sep, value = line.partition(":")
    name = name.rstrip(" \t")
    if not sep or not _HEADER_NAME.match(name):
        raise SipError(400, "malformed header line")
    return canonical(name), value.strip(" \t")


def _check_length(msg: SipMessage, body: bytes, stream: bool) -> None:
    lengths = msg.all("Content-Length")
    if len(lengths) > 1:
        raise SipError(400, "more than one Content-Length")
    if not lengths:
        if stream:
            raise SipError(400, "Content-Length is required over TCP")
        return
    value = lengths[0]
    if not value.isdigit() or len(value) > 9:
        raise SipError(400, "Content-Length is not a number")
    if int(value) != len(body):
        raise SipError(400, f"Content-Length {int(value)} but the body is {len(body)} bytes")


def _check_request(msg: SipRequest) -> None:
    for name in _REQUIRED:
        values = msg.all(name)
        if not values:
            raise SipError(400, f"request without {name}")
        if name != "Via" and len(values) > 1:
            raise SipError(400, f"more than one {name}")
    _number, method = _cseq(msg)
    if method != msg.method:
        raise SipError(400, "CSeq method is not the request's")
    forwards = msg.get("Max-Forwards")
    if forwards is not None and (not forwards.isdigit() or int(forwards) > 255):
        raise SipError(400, "Max-Forwards is not a number up to 255")
    if len(msg.call_id) > 128 or not msg.call_id:
        raise SipError(400, "Call-ID empty or longer than 128 characters")


def _cseq(msg: SipMessage) -> tuple[int, str]:
    number, _, method = (msg.get("CSeq") or "").partition(" ")
    if not number.isdigit() or len(number) > 10 or int(number) >= 2**31:
        raise SipError(400, "CSeq number is not a number below 2**31")
    if not _TOKEN.match(method.strip()):
        raise SipError(400, "CSeq has no method")
    return int(number), method.strip()


# -- header values -------------------------------------------------------------------------------


def params(value: str) -> tuple[str, dict[str, str]]:
    """`<sip:x@y>;tag=1;expires=3600` -> ("<sip:x@y>", {"tag": "1", "expires": "3600"})."""
    # Parameters begin after the name-addr's closing '>' (a URI may carry its own).
    close = value.find(">")
    split_at = value.find(";", close if close >= 0 else 0)
    if split_at < 0:
        return value.strip(), {}
    main, rest = value[:split_at].strip(), value[split_at + 1 :]
    out: dict[str, str] = {}
    for part in rest.split(";")[:16]:
        key, _, val = part.partition("=")
        if key.strip():
            out[key.strip().lower()] = val.strip().strip('"')
    return main, out


def uri_user(value: str) -> str | None:
    """The user part of the SIP URI in a From/To/Contact value or a request URI."""
    main, _ = params(value)
    m = re.search(r"sips?:([^@;>\s]{1,64})@", main)
    return m.group(1) if m else None


def uri_host(value: str) -> str | None:
    main, _ = params(value)
    m = re.search(r"sips?:(?:[^@;>\s]{1,64}@)?([^;>\s:]{1,128})", main)
    return m.group(1) if m else None


def response_to(
    request: SipRequest, status: int, reason: str | None = None, to_tag: str | None = None
) -> SipResponse:
    """The response's Via, From, Call-ID and CSeq are the request's; To gains our tag."""
    headers = [(n, v) for n, v in request.headers if n == "Via"]
    to = request.get("To") or ""
    if to_tag and "tag" not in params(to)[1]:
        to = f"{to};tag={to_tag}"
    headers += [
        ("From", request.get("From") or ""),
        ("To", to),
        ("Call-ID", request.call_id),
        ("CSeq", request.get("CSeq") or ""),
    ]
    return SipResponse(headers=headers, status=status, reason=reason or REASONS.get(status, ""))
