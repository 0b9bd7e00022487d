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
import functools
import socket
from urllib.parse import urlsplit

from .base import CameraProtocolError, CameraUnreachable

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
    if not data:
        raise CameraUnreachable("device service: closed without an answer")
    status = data.split(b"\r\n", 1)[0].split(b" ", 2)
    code = status[1] if len(status) > 1 and status[0].startswith(b"HTTP/1.") else b""
    code = code if len(code) == 3 and code.isdigit() else b"?"
    if code != b"200" or _ANSWER_ELEMENT not in data:
        what = f"HTTP {code.decode('ascii', 'replace')[:3]}" if code != b"200" else "no clock"
        raise CameraProtocolError(f"GetSystemDateAndTime: {what} in the answer")


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
