"""PS over RTP (GB/T 28181 live video) received on UDP, or TCP (RFC 4571), until the first
keyframe, and decoded into one JPEG with the RTSP code's decoder (adapters/rtsp/decode.py).

Bounded: packets only from the platform's address ranges, a frame of at most `max_bytes`,
frames with a lost packet dropped (the next keyframe will do), and the caller's deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import cast

from ..rtsp import h264, h265
from ..rtsp.decode import gop_to_jpeg
from ..rtsp.errors import RtpError
from ..rtsp.nal import split_annexb
from ..rtsp.rtp import Gop, parse_rtp
from .ps import MAX_FRAME_BYTES, PsError, demux

_SPECS = {"H264": h264.CODEC, "H265": h265.CODEC}


def is_keyframe(codec: str, unit: bytes) -> bool:
    """An IDR/IRAP picture with its parameter sets in front (what a decoder can start from)."""
    spec = _SPECS[codec]
    kinds = {spec.nal_type(n) for n in split_annexb(unit)}
    return bool(kinds & spec.keyframes) and all(p in kinds for p in spec.parameter_sets)


class PsReceiver(asyncio.DatagramProtocol):
    """Collects RTP packets into PS frames; `keyframe` resolves with (codec, Annex-B unit)."""

    def __init__(self, allows: Callable[[str], bool], max_bytes: int = MAX_FRAME_BYTES) -> None:
        self.allows = allows
        self.max_bytes = max_bytes
        self.keyframe: asyncio.Future[tuple[str, bytes]] = (
            asyncio.get_running_loop().create_future()
        )
        self.transport: asyncio.DatagramTransport | None = None
        self.packets = 0
        self.refused = 0  # from elsewhere, not RTP, or a broken frame
        self._codec: str | None = None
        self._ts: int | None = None
        self._seq: int | None = None
        self._parts: list[bytes] = []
        self._size = 0
        self._broken = False

        self.port = 0
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        self.port = int(self.transport.get_extra_info("sockname")[1])

    async def _tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """RTP over TCP (RFC 4571): each packet after its 2-byte length; one connection used."""
        peer = writer.get_extra_info("peername") or ("", 0)
        if not self.allows(str(peer[0])) or self._conns:
            self.refused += 1
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            while not self.keyframe.done():
                size = int.from_bytes(await reader.readexactly(2), "big")
                self.datagram_received(await reader.readexactly(size), peer)
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if self.keyframe.done():
            return
        if not self.allows(str(addr[0])):
            self.refused += 1
            return
        try:
            header, payload = parse_rtp(data)
        except RtpError:
            self.refused += 1
            return
        self.packets += 1
        if self._ts is not None and header.timestamp != self._ts:
            self._frame()  # a frame without its marker (lost): judged as it is
        if self._seq is not None and header.sequence != (self._seq + 1) & 0xFFFF:
            self._broken = True
        self._seq, self._ts = header.sequence, header.timestamp
        self._size += len(payload)
        if self._size > self.max_bytes:
            self._broken = True
        else:
            self._parts.append(bytes(payload))
        if header.marker:
            self._frame()

    def _frame(self) -> None:
        parts, broken = self._parts, self._broken
        self._parts, self._size, self._broken, self._ts = [], 0, False, None
        if broken or not parts:
            self.refused += int(broken)
            return
        try:
            frame = demux(b"".join(parts), self._codec, self.max_bytes)
        except PsError:
            self.refused += 1
            return
        self._codec = frame.codec
        if frame.codec is not None and frame.video and is_keyframe(frame.codec, frame.video):
            self.keyframe.set_result((frame.codec, frame.video))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        if self._server is not None:
            self._server.close()
        for task in self._conns:
            task.cancel()
        if not self.keyframe.done():
            self.keyframe.cancel()


async def open_receiver(
    host: str,
    allows: Callable[[str], bool],
    transport: str = "udp",
    max_bytes: int = MAX_FRAME_BYTES,
) -> PsReceiver:
    """A receiver on a free port of `host`: UDP, or a TCP listener (the platform connects)."""
    if transport == "tcp":
        receiver = PsReceiver(allows, max_bytes)
        server = await asyncio.start_server(receiver._tcp, host, 0)
        receiver._server = server
        receiver.port = int(server.sockets[0].getsockname()[1])
        return receiver
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_datagram_endpoint(
        lambda: PsReceiver(allows, max_bytes), local_addr=(host, 0)
    )
    return protocol


def to_jpeg(codec: str, unit: bytes) -> bytes:
    """One keyframe decoded to JPEG. Blocking: run it in a thread."""
    return gop_to_jpeg(Gop(codec, (unit,), time.time(), 1))
