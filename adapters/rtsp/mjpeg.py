"""Motion JPEG over RTP (RFC 2435): from packets to whole JPEG files.

RTP/JPEG carries a picture's entropy-coded scan without its JPEG headers; each packet starts
with a small header (type, Q, width and height in 8-pixel units, the fragment's offset in the
scan), followed by a restart marker header (types 64-127) and, in the first packet of a
picture whose Q is 128-255, its quantization tables. `JpegStream` reassembles the scan (a
picture is complete at the marker bit; a fragment that does not continue it exactly, or a lost
packet, drops the picture) and rebuilds the headers as RFC 2435 appendices A and B do: SOI,
DQT (the standard tables scaled by Q for 1-99, else the in-band ones, 8- or 16-bit), DRI,
SOF0 (types 0 and 64: 4:2:2, 1 and 65: 4:2:0), the standard Huffman tables (JPEG annex K.3),
SOS, then the scan and EOI. The result is a JPEG file.

Bounds: one picture of at most `max_gop_bytes` (more is an error), one in assembly; widths and
heights are at most 2040 (255 x 8) unless the SDP gives a=x-dimensions or a=framesize for the
width or height 0 that means "larger". Interlaced pictures (type-specific field) and the types
an SDP would have to define (2-63, 66-127 other than 64/65, 128-255) are refused.
"""

from __future__ import annotations

import struct
import time

from .errors import RtpError
from .rtp import MAX_GOP_BYTES, Gop, SequenceCheck, parse_rtp

PAYLOAD_TYPE = 26  # static (RFC 3551)
MAX_RTP_SIZE = 2040  # 255 x 8 pixels

# JPEG annex K.1 and K.2 (natural order) and the zig-zag order DQT stores them in
_LUMA = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip
_CHROMA = (
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
) + (99,) * 32  # fmt: skip
_ZIGZAG = (
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
    12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
    35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
    58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
)  # fmt: skip

# JPEG annex K.3: the standard Huffman tables, as DHT stores them (16 code counts, symbols)
_DHT = (
    (0x00, bytes.fromhex("00010501010101010100000000000000000102030405060708090a0b")),
    (
        0x10,
        bytes.fromhex(
            "0002010303020403050504040000017d"
            "01020300041105122131410613516107227114328191a1082342b1c11552d1f02433627282090a16"
            "1718191a25262728292a3435363738393a434445464748494a535455565758595a63646566676869"
            "6a737475767778797a838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6"
            "b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8"
            "f9fa"
        ),
    ),
    (0x01, bytes.fromhex("00030101010101010101010000000000000102030405060708090a0b")),
    (
        0x11,
        bytes.fromhex(
            "00020102040403040705040400010277"
            "000102031104052131061241510761711322328108144291a1b1c109233352f0156272d10a162434"
            "e125f11718191a262728292a35363738393a434445464748494a535455565758595a636465666768"
            "696a737475767778797a82838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4"
            "b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8"
            "f9fa"
        ),
    ),
)


def standard_tables(q: int) -> bytes:
    """RFC 2435 appendix A (MakeTables): the luma and chroma tables for Q 1-99, zig-zag order,
    8-bit, 128 bytes."""
    factor = min(max(q, 1), 99)
    scale = 5000 // factor if factor < 50 else 200 - factor * 2
    out = bytearray()
    for table in (_LUMA, _CHROMA):
        out += bytes(min(max((table[i] * scale + 50) // 100, 1), 255) for i in _ZIGZAG)
    return bytes(out)


def jpeg_headers(
    kind: int, width: int, height: int, tables: bytes, precision: int = 0, restart: int = 0
) -> bytes:
    """RFC 2435 appendix B (MakeHeaders): everything a JPEG file has before its scan. `kind`:
    0 (4:2:2) or 1 (4:2:0); `tables`: luma then chroma, zig-zag, 64 bytes each or 128 for a
    table whose `precision` bit is set; `restart`: the restart interval (0: none)."""
    out = bytearray(b"\xff\xd8")
    dqt = bytearray()
    pos = 0
    for index in range(2):
        size = 128 if precision & (1 << index) else 64
        dqt.append((size // 128) << 4 | index)  # Pq, Tq
        dqt += tables[pos : pos + size]
        pos += size
    out += b"\xff\xdb" + struct.pack(">H", 2 + len(dqt)) + dqt
    if restart:
        out += b"\xff\xdd\x00\x04" + struct.pack(">H", restart)
    sampling = 0x21 if kind == 0 else 0x22
    out += b"\xff\xc0\x00\x11\x08" + struct.pack(">HH", height, width)
    out += bytes((3, 1, sampling, 0, 2, 0x11, 1, 3, 0x11, 1))
    for table_class, body in _DHT:
        out += b"\xff\xc4" + struct.pack(">HB", 3 + len(body), table_class) + body
    out += b"\xff\xda\x00\x0c\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00"
    return bytes(out)


class JpegStream:
    """One RTP/JPEG stream: feed packets, read the newest whole picture (each is a keyframe)."""

    codec = "JPEG"

    def __init__(
        self,
        payload_type: int | None = PAYLOAD_TYPE,
        size: tuple[int, int] | None = None,
        max_gop_bytes: int = MAX_GOP_BYTES,
    ) -> None:
        self.payload_type = payload_type
        self.size = size  # from the SDP: for a width or height of 0 in the RTP/JPEG header
        self.max_gop_bytes = max_gop_bytes
        self._seq = SequenceCheck()
        self._tables: dict[int, tuple[int, bytes]] = {}  # Q 128-254 -> (precision, tables)
        # the picture being assembled
        self._ts: int | None = None
        self._head = b""  # its JPEG headers
        self._scan: bytearray | None = None  # None: nothing in assembly (or it was damaged)
        # the newest whole picture
        self._frame: bytes | None = None
        self._taken_at = 0.0
        # counters
        self.packets = 0
        self.frames = 0
        self.dropped_gops = 0  # pictures dropped for damage (lost or out-of-order fragments)
        self.ignored = 0

    def __repr__(self) -> str:
        return f"JpegStream(frames={self.frames})"

    @classmethod
    def from_sdp(
        cls,
        payload_type: int | None,
        fmtp: dict[str, str],
        max_gop_bytes: int,
        size: tuple[int | None, int | None] = (None, None),
    ) -> JpegStream:
        width, height = size
        return cls(payload_type, (width, height) if width and height else None, max_gop_bytes)

    @property
    def lost(self) -> int:
        return self._seq.lost

    # -- feeding ---------------------------------------------------------------------------

    def feed(self, packet: bytes, now: float | None = None) -> bool:
        """One RTP packet. True when it completed a picture."""
        header, payload = parse_rtp(packet)
        if self.payload_type is not None and header.payload_type != self.payload_type:
            self.ignored += 1
            return False
        self.packets += 1
        if self._seq.gap(header.sequence):
            self._damaged()
        if len(payload) < 8:
            raise RtpError(f"truncated RTP/JPEG header ({len(payload)} bytes)")
        offset = (payload[1] << 16) | (payload[2] << 8) | payload[3]
        if offset == 0:
            if self._scan is not None:
                self._damaged()  # the previous picture never got its marker bit
            self._ts = header.timestamp
            self._head, pos = self._start(payload)
            self._scan = bytearray()
        else:
            pos = self._skip_headers(payload)
            if self._scan is None:
                return False  # joined mid-picture, or it was damaged: wait for the next one
            if header.timestamp != self._ts or offset != len(self._scan):
                self._damaged()  # a fragment lost or out of order
                return False
        self._scan += payload[pos:]
        if len(self._head) + len(self._scan) + 2 > self.max_gop_bytes:
            self._scan = None
            raise RtpError(f"JPEG picture larger than {self.max_gop_bytes} bytes")
        if not header.marker:
            return False
        scan, self._scan = self._scan, None
        if scan[-2:] != b"\xff\xd9":
            scan += b"\xff\xd9"  # EOI
        self._frame = self._head + bytes(scan)
        self._taken_at = time.time() if now is None else now
        self.frames += 1
        return True

    def _damaged(self) -> None:
        if self._scan is not None:
            self.dropped_gops += 1
        self._scan = None

    def _start(self, p: memoryview) -> tuple[bytes, int]:
        """The JPEG headers of the picture this first fragment starts; (headers, offset of its
        scan data in the payload)."""
        kind, q, width, height = _main_header(p)
        restart, pos = _restart_header(p, kind)
        if not width or not height:
            if self.size is None:
                raise RtpError(
                    "RTP/JPEG picture over 2040 pixels wide or high, and no a=x-dimensions"
                )
            width, height = self.size
        precision, tables = 0, b""
        if q < 128:
            tables = standard_tables(q)
        else:
            if len(p) < pos + 4:
                raise RtpError("truncated RTP/JPEG quantization table header")
            precision = p[pos + 1]
            (length,) = struct.unpack_from(">H", p, pos + 2)
            pos += 4
            if len(p) < pos + length:
                raise RtpError("truncated RTP/JPEG quantization tables")
            if length:
                needed = sum(128 if precision & (1 << i) else 64 for i in range(2))
                if length < needed:
                    raise RtpError(
                        f"RTP/JPEG quantization tables of {length} bytes, {needed} needed"
                    )
                tables = bytes(p[pos : pos + needed])
                if q < 255:  # static for this Q: later pictures may leave them out
                    self._tables[q] = (precision, tables)
            elif q in self._tables:
                precision, tables = self._tables[q]
            else:
                raise RtpError(f"RTP/JPEG quantization tables for Q={q} never sent")
            pos += length
        return jpeg_headers(kind & 1, width, height, tables, precision, restart), pos

    @staticmethod
    def _skip_headers(p: memoryview) -> int:
        """Offset of a later fragment's scan data (it repeats the restart marker header)."""
        kind = _main_header(p)[0]
        return _restart_header(p, kind)[1]

    # -- reading ---------------------------------------------------------------------------

    @property
    def has_gop(self) -> bool:
        return self._frame is not None

    @property
    def gop_bytes(self) -> int:
        return len(self._frame) if self._frame is not None else 0

    def keyframe(self) -> Gop | None:
        return self.gop()

    def gop(self) -> Gop | None:
        """The newest whole picture (a JPEG file) as a one-unit GOP."""
        if self._frame is None:
            return None
        return Gop(self.codec, (self._frame,), self._taken_at, self.frames)


def _main_header(p: memoryview) -> tuple[int, int, int, int]:
    """(type, Q, width, height) of the 8-byte RTP/JPEG main header, checked."""
    if p[0]:
        raise RtpError(f"interlaced RTP/JPEG (type-specific {p[0]}) not supported")
    kind, q = p[4], p[5]
    if kind not in (0, 1, 64, 65):
        raise RtpError(f"RTP/JPEG type {kind} not supported")
    if q == 0 or 100 <= q <= 127:
        raise RtpError(f"RTP/JPEG Q={q} is reserved")
    return kind, q, p[6] * 8, p[7] * 8


def _restart_header(p: memoryview, kind: int) -> tuple[int, int]:
    """(restart interval, offset after the restart marker header) for types 64-127."""
    if kind < 64:
        return 0, 8
    if len(p) < 12:
        raise RtpError("truncated RTP/JPEG restart marker header")
    (interval,) = struct.unpack_from(">H", p, 8)
    return interval, 12
