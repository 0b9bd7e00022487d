"""The health probe of an ONVIF camera, without a SOAP stack: one fixed GetSystemDateAndTime
request (unauthenticated, as the ONVIF core spec allows it for clock synchronisation) written
to a fresh connection, and the answer's status line and body looked at, not parsed.

A district's health round probes every camera every 30 s: 100,000 cameras are 3,300 probes a
second. Through zeep a probe costs milliseconds of CPU (building the envelope, an aiohttp
session's request machinery, parsing the reply into objects); this costs a connection and a
few callbacks. What it proves is what the probe needs: the device service answers, with a SOAP
reply to that very call. Discovery still reads everything through zeep.

The answer is hostile like any other: at most `MAX_ANSWER` bytes are read, nothing is parsed as
XML, and an answer that does not carry the operation's response element is a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .base import AdapterError, CameraProtocolError, CameraTimeout, CameraUnreachable

MAX_ANSWER = 64 << 10  # a clock answer is ~1 KB; more is read no further
_ENVELOPE = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope">'
    b'<s:Body xmlns:tds="http://www.onvif.org/ver10/device/wsdl">'
    b"<tds:GetSystemDateAndTime/></s:Body></s:Envelope>"
)
_ANSWER_ELEMENT = b"GetSystemDateAndTimeResponse"


@functools.lru_cache(maxsize=1 << 17)  # (the same devices every round)
def request_bytes(url: str) -> bytes:
    """The HTTP request for the device service at `url` (http only)."""
    parts = urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    host = parts.netloc.rpartition("@")[2]  # (never credentials in a Host header)
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\n"
        'Content-Type: application/soap+xml; charset=utf-8; action="'
        'http://www.onvif.org/ver10/device/wsdl/GetSystemDateAndTime"\r\n'
        f"Content-Length: {len(_ENVELOPE)}\r\nConnection: close\r\n\r\n"
    ).encode("ascii") + _ENVELOPE


@dataclass(frozen=True, slots=True)
class ClockProbe:
    host: str
    port: int
    url: str  # the device service's (http)


@dataclass(frozen=True, slots=True)
class ClockOutcome:
    error: AdapterError | None  # None: it answered the clock
    latency_ms: float = 0.0


_CONNECTING, _READING = 0, 1


def probe_clocks(
    probes: Sequence[ClockProbe],
    limit: int,
    timeout_s: float,
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> list[ClockOutcome]:
    """Every probe's answer, `limit` connections at a time, each within `timeout_s` of its
    start (CameraTimeout after). Blocking: one epoll loop over non-blocking sockets, for a
    worker thread. A district's network is 75,000 devices a round: through asyncio's socket
    calls (futures, callbacks, a task per connection) a probe cost ~0.3 ms of CPU, here ~0.09
    (measured against bench/_responders.py). `stop` set: the probes not yet answered end as
    unreachable, at once."""
    out: list[ClockOutcome | None] = [None] * len(probes)
    poller = select.epoll()
    live: dict[int, _Probe] = {}
    started: deque[tuple[float, int, _Probe]] = deque()  # (deadline, fd, probe): in start order
    following = iter(range(len(probes)))
    try:
        while True:
            while len(live) < limit and (i := next(following, None)) is not None:
                _connect(probes[i], i, clock(), poller, live, started, out, timeout_s)
            if not live:
                break
            for fd, _ in poller.poll(_TICK_S):
                probe = live.get(fd)
                if probe is not None and _advance(probe, probes, clock, out, poller):
                    _close(probe, poller, live)
            now = clock()
            while started and (started[0][0] <= now or (stop is not None and stop.is_set())):
                _, fd, probe = started.popleft()
                if live.get(fd) is probe:
                    out[probe.index] = ClockOutcome(CameraTimeout("timeout"))
                    _close(probe, poller, live)
    finally:
        for probe in list(live.values()):
            _close(probe, poller, live)
        poller.close()
    return [o if o is not None else ClockOutcome(CameraUnreachable("not probed")) for o in out]


_TICK_S = 0.05  # epoll's wait: how late a timeout may be noticed


@dataclass(slots=True)
class _Probe:
    index: int
    sock: socket.socket
    began: float
    state: int = _CONNECTING
    data: bytearray = field(default_factory=bytearray)


def _connect(
    target: ClockProbe,
    index: int,
    now: float,
    poller: select.epoll,
    live: dict[int, _Probe],
    started: deque[tuple[float, int, _Probe]],
    out: list[ClockOutcome | None],
    timeout_s: float,
) -> None:
    family = socket.AF_INET6 if ":" in target.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    code = sock.connect_ex((target.host, target.port))
    if code not in (0, errno.EINPROGRESS):
        sock.close()
        out[index] = ClockOutcome(_unreachable(code))
        return
    probe = _Probe(index, sock, now)
    live[sock.fileno()] = probe
    started.append((now + timeout_s, sock.fileno(), probe))
    poller.register(sock.fileno(), select.EPOLLOUT)


def _advance(
    probe: _Probe,
    probes: Sequence[ClockProbe],
    clock: Callable[[], float],
    out: list[ClockOutcome | None],
    poller: select.epoll,
) -> bool:
    """One readiness event of a probe's socket; True once its outcome is known."""
    sock = probe.sock
    error: AdapterError | None
    if probe.state == _CONNECTING:
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            out[probe.index] = ClockOutcome(_unreachable(code))
            return True
        try:  # (the request is far below a socket buffer: sent whole or not at all)
            sock.send(request_bytes(probes[probe.index].url))
        except OSError as exc:
            out[probe.index] = ClockOutcome(_unreachable(exc.errno or 0))
            return True
        probe.state = _READING
        poller.modify(sock.fileno(), select.EPOLLIN)
        return False
    try:
        chunk = sock.recv(MAX_ANSWER - len(probe.data))
    except BlockingIOError:
        return False
    except OSError as exc:
        out[probe.index] = ClockOutcome(_unreachable(exc.errno or 0))
        return True
    probe.data += chunk
    if chunk and len(probe.data) < MAX_ANSWER and _ANSWER_ELEMENT not in probe.data:
        return False
    error = _judged(bytes(probe.data))
    ms = 0.0 if error else round((clock() - probe.began) * 1000, 1)
    out[probe.index] = ClockOutcome(error, ms)
    return True


def _close(probe: _Probe, poller: select.epoll, live: dict[int, _Probe]) -> None:
    fd = probe.sock.fileno()
    live.pop(fd, None)
    with contextlib.suppress(OSError):
        poller.unregister(fd)
    probe.sock.close()


def _unreachable(code: int) -> CameraUnreachable:
    # (OSError picks the subclass by errno: ConnectionRefusedError, as the asyncio path said)
    return CameraUnreachable(f"device service: {type(OSError(code, '')).__name__}")


def _judged(data: bytes) -> AdapterError | None:
    """What an answer says: None for the clock's answer, else why it is not alive."""
    if not data:
        return CameraUnreachable("device service: closed without an answer")
    status = data.split(b"\r\n", 1)[0].split(b" ", 2)
    code = status[1] if len(status) > 1 and status[0].startswith(b"HTTP/1.") else b""
    code = code if len(code) == 3 and code.isdigit() else b"?"
    if code != b"200" or _ANSWER_ELEMENT not in data:
        what = f"HTTP {code.decode('ascii', 'replace')[:3]}" if code != b"200" else "no clock"
        return CameraProtocolError(f"GetSystemDateAndTime: {what} in the answer")
    return None


async def clock_answers(host: str, port: int, url: str) -> None:
    """Whether the device service at `url`, reached at host:port, answers GetSystemDateAndTime.
    Raises CameraUnreachable (no connection, or closed without an answer) or
    CameraProtocolError (it answered something else); the caller bounds the time.

    On a bare non-blocking socket, not a transport and protocol: a district's round is
    thousands of these a second, and asyncio's transport machinery was most of their CPU."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, (host, port))
            await loop.sock_sendall(sock, request_bytes(url))
            data = await _answer(loop, sock)
        except OSError as exc:
            raise CameraUnreachable(f"device service: {type(exc).__name__}") from exc
    finally:
        sock.close()
    error = _judged(data)
    if error is not None:
        raise error


async def _answer(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> bytes:
    """At most MAX_ANSWER bytes: until the camera closes or the answer's element shows."""
    data = bytearray()
    while len(data) < MAX_ANSWER:
        chunk = await loop.sock_recv(sock, MAX_ANSWER - len(data))
        if not chunk:
            break
        data += chunk
        if _ANSWER_ELEMENT in data:
            break
    return bytes(data)
