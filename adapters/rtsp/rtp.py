"""RTP (RFC 3550): the packet header, sequence tracking, and what every codec's stream gives a
decoder (`Gop`, `MediaStream`). Pure and synchronous; the codecs are in h264.py, h265.py and
mjpeg.py. Errors are `RtpError` with messages that name no host and no credential."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Protocol

from .errors import RtpError

MAX_GOP_BYTES = 8 << 20  # a GOP (H.264/H.265) or one picture (MJPEG), by default


@dataclass(frozen=True, slots=True)
class RtpHeader:
    marker: bool
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int


def parse_rtp(packet: bytes) -> tuple[RtpHeader, memoryview]:
    """The header and payload of one RTP packet. Raises RtpError."""
    if len(packet) < 12:
        raise RtpError(f"RTP packet of {len(packet)} bytes, shorter than its header")
    b0, b1 = packet[0], packet[1]
    if b0 >> 6 != 2:
        raise RtpError(f"not an RTP packet (version {b0 >> 6})")
    seq, ts, ssrc = struct.unpack_from("!HII", packet, 2)
    offset = 12 + 4 * (b0 & 0x0F)
    if b0 & 0x10:  # header extension
        if len(packet) < offset + 4:
            raise RtpError("RTP header extension truncated")
        (words,) = struct.unpack_from("!H", packet, offset + 2)
        offset += 4 + 4 * words
    end = len(packet)
    if b0 & 0x20:  # padding: the last byte says how much
        pad = packet[-1]
        if pad == 0 or offset + pad > end:
            raise RtpError("RTP padding larger than the packet")
        end -= pad
    if offset > end:
        raise RtpError("RTP header longer than the packet")
    header = RtpHeader(bool(b1 & 0x80), b1 & 0x7F, seq, ts, ssrc)
    return header, memoryview(packet)[offset:end]


class SequenceCheck:
    """Notices lost packets: a sequence number that does not follow the previous one."""

    def __init__(self) -> None:
        self._seq: int | None = None
        self.lost = 0  # gaps seen

    def gap(self, sequence: int) -> bool:
        gap = self._seq is not None and sequence != (self._seq + 1) & 0xFFFF
        self._seq = sequence
        if gap:
            self.lost += 1
        return gap


@dataclass(frozen=True, slots=True)
class Gop:
    """What a decoder needs for the newest picture of a stream: `units[0]` is a keyframe (an
    IDR or IRAP access unit with the parameter sets in front, or a whole JPEG), the others the
    access units after it in decoding order. H.264/H.265 units are Annex-B bytes."""

    codec: str  # the SDP encoding name: H264, H265, JPEG
    units: tuple[bytes, ...]
    taken_at: float  # wall clock when the newest unit arrived
    serial: int  # number of the newest unit in the stream (1, 2, ...)

    @property
    def frames(self) -> int:
        return len(self.units)

    @property
    def key_serial(self) -> int:
        """The number of its keyframe: the same for every Gop cut from one GOP."""
        return self.serial - len(self.units) + 1

    @property
    def annexb(self) -> bytes:
        """All units as one byte string (an H.264/H.265 elementary stream)."""
        return b"".join(self.units)


class MediaStream(Protocol):
    """One video track's RTP, as every codec module assembles it: feed packets, read the GOP."""

    codec: str
    max_gop_bytes: int
    dropped_gops: int  # GOPs (or pictures) dropped for size or damage

    def feed(self, packet: bytes, now: float | None = None) -> bool:
        """One RTP packet. True when it completed a unit that is now in the GOP."""
        ...

    @property
    def has_gop(self) -> bool: ...

    @property
    def lost(self) -> int:
        """Sequence gaps seen."""
        ...

    @property
    def gop_bytes(self) -> int: ...

    def keyframe(self) -> Gop | None:
        """The current GOP's keyframe alone."""
        ...

    def gop(self) -> Gop | None:
        """The whole current GOP, up to its newest unit."""
        ...
