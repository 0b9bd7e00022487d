"""Large list bodies (a page of 10,000 cameras is ~15 MB) are written a chunk at a time: a
dashboard that reads slowly holds a chunk of the gateway's memory, not a copy of the page.

Written whole, each connection's transport kept what its socket had not yet taken: 64
dashboards answered a changed page at once held ~900 MB (bench/scale.py, RSS peaks of
1.4-1.6 GiB at 100,000 cameras)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.api.http import LARGE_BODY, json_body

ServerFactory = Callable[..., Awaitable[TestServer]]
READERS = 4
BODY = b"[" + b",".join(b'{"id":"cam-%07d","name":"gate"}' % i for i in range(300_000)) + b"]"
_SOCKET_BUFFER = 64 * 1024


@pytest.fixture
async def server(
    aiohttp_server: ServerFactory,
) -> tuple[TestServer, list[asyncio.BaseTransport]]:
    transports: list[asyncio.BaseTransport] = []

    async def page(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        transports.append(request.transport)
        sock = request.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BUFFER)
        return json_body(request, BODY, {"ETag": '"v1"'})

    app = web.Application()
    app.router.add_get("/page", page)
    return await aiohttp_server(app), transports


Asked = tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]


async def _ask(port: int, method: str = "GET") -> Asked:
    """A dashboard across a slow network: its socket takes little (loopback's buffers otherwise
    grow to 32 MB) and it reads nothing past the headers until told."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SOCKET_BUFFER)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=_SOCKET_BUFFER)
    writer.write(f"{method} /page HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    return reader, writer, head


async def _read_and_close(asked: Asked) -> bytes:
    reader, writer, _ = asked
    try:
        return await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()


def _buffered(transport: asyncio.BaseTransport) -> int:
    assert isinstance(transport, asyncio.WriteTransport)
    return transport.get_write_buffer_size()


async def test_slow_readers_of_a_large_body_each_hold_a_chunk_not_a_copy(
    server: tuple[TestServer, list[asyncio.BaseTransport]],
) -> None:
    assert len(BODY) > 8 * LARGE_BODY
    srv, transports = server
    assert srv.port is not None
    asked = [await _ask(srv.port) for _ in range(READERS)]
    # Nobody reads: each answer is written until its socket is full, then waits (looked at
    # until then: a transport's buffer has no event to wait for).
    while len(transports) < READERS or not all(_buffered(t) for t in transports):  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    held = [_buffered(t) for t in transports]
    assert max(held) <= 1024 * 1024, held  # (written whole: ~8 MB each)
    for one in asked:  # and then each reads the page, whole and intact
        head = one[2]
        assert b"200 OK" in head and f"Content-Length: {len(BODY)}".encode() in head
        assert b'ETag: "v1"' in head
        assert await _read_and_close(one) == BODY


async def test_a_head_request_gets_the_length_and_no_body(
    server: tuple[TestServer, list[asyncio.BaseTransport]],
) -> None:
    srv, _ = server
    assert srv.port is not None
    asked = await _ask(srv.port, "HEAD")
    assert b"200 OK" in asked[2] and f"Content-Length: {len(BODY)}".encode() in asked[2]
    assert await _read_and_close(asked) == b""
