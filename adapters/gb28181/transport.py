"""SIP over UDP and TCP for the superior platform: framing and bounds, nothing else.

UDP: one datagram is one message (larger than the bound: refused 413 by the parser). TCP:
messages framed by their Content-Length (required), a head at most `max_message_bytes`, an
idle connection closed after `tcp_idle_s`, at most `max_tcp_connections` at once (more are
closed at accept), and only from the configured platforms' address ranges."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import cast

from .config import SipServiceConfig
from .sip import head_end, parse
from .superior import Peer

log = logging.getLogger(__name__)

Receiver = Callable[[bytes, Peer], None]


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, receive: Receiver) -> None:
        self.receive = receive
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        host, port = str(addr[0]), int(addr[1])
        transport = self.transport
        assert transport is not None

        def send(payload: bytes) -> None:
            transport.sendto(payload, (host, port))

        try:
            self.receive(data, Peer("udp", host, port, send))
        except Exception:  # one message's bug never ends the service
            log.exception("sip datagram not handled", extra={"source": f"{host}:{port}"})


class SipTransports:
    """The listening sockets; `ports` are those bound (0 in the config picks free ones)."""

    def __init__(self, config: SipServiceConfig, receive: Receiver) -> None:
        self.config = config
        self.receive = receive
        self.udp: asyncio.DatagramTransport | None = None
        self.tcp: asyncio.Server | None = None
        self.ports: dict[str, int] = {}
        self._conns: set[asyncio.Task[None]] = set()
        self.refused_connections = 0  # from outside every platform's ranges, or over the bound

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        cfg = self.config
        if "udp" in cfg.transports:
            self.udp, _ = await loop.create_datagram_endpoint(
                lambda: _Udp(self.receive), local_addr=(cfg.host, cfg.udp_port)
            )
            self.ports["udp"] = self.udp.get_extra_info("sockname")[1]
        if "tcp" in cfg.transports:
            self.tcp = await asyncio.start_server(
                self._accept, cfg.host, cfg.tcp_port, limit=cfg.max_message_bytes
            )
            self.ports["tcp"] = self.tcp.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.udp is not None:
            self.udp.close()
        if self.tcp is not None:
            self.tcp.close()
        for task in list(self._conns):
            task.cancel()
        for task in list(self._conns):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.tcp is not None:
            await self.tcp.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("", 0)
        known = any(p.allows(str(peer[0])) for p in self.config.platforms)
        if not known or len(self._conns) >= self.config.max_tcp_connections:
            # (a connection from outside every platform's ranges could only hold a slot)
            self.refused_connections += 1
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            await self._serve(reader, writer)
        finally:
            self._conns.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername") or ("", 0)
        host, port = str(peername[0]), int(peername[1])

        def send(payload: bytes) -> None:
            if not writer.is_closing():
                writer.write(payload)

        peer = Peer("tcp", host, port, send)
        cfg = self.config
        while True:
            try:
                async with asyncio.timeout(cfg.tcp_idle_s):
                    head = await reader.readuntil(b"\r\n\r\n")
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                return
            except asyncio.LimitOverrunError:
                self.receive(b"X" * (cfg.max_message_bytes + 1), peer)  # counted as 413
                return
            length = _content_length(head)
            if length is None or len(head) + length > cfg.max_message_bytes:
                # Unframeable (400) or too big (413, padded to one byte over the bound, never
                # read): answered once, then the stream cannot be trusted and is closed.
                over = b"" if length is None else b"\0" * (cfg.max_message_bytes + 1 - len(head))
                self.receive(head + over, peer)
                await writer.drain()
                return
            try:
                async with asyncio.timeout(cfg.tcp_idle_s):
                    body = await reader.readexactly(length)
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                return
            try:
                self.receive(head + body, peer)
            except Exception:
                log.exception("sip message not handled", extra={"source": f"{host}:{port}"})
            await writer.drain()


def _content_length(head: bytes) -> int | None:
    end = head_end(head)
    for line in head[:end].split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() in (b"content-length", b"l"):
            text = value.strip()
            return int(text) if text.isdigit() and len(text) < 10 else None
    return None


__all__ = ["SipTransports", "parse"]
