"""MPEG-2 Program Stream (ISO/IEC 13818-1), as GB/T 28181 carries video over RTP: demultiplexed
into the video elementary stream (H.264 or H.265 Annex-B), and muxed (the simulator's side).

A frame is one RTP timestamp's payloads joined: a pack header (00 00 01 BA), on keyframes a
system header (BB) and a program stream map (BC, which names the video's stream type: 0x1B
H.264, 0x24 H.265), then PES packets (E0-EF video, C0-DF audio). Hostile input is bounded:
every length is checked against what is there, the frame against `max_bytes`; a structure that
does not fit raises `PsError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

STREAM_TYPES = {0x1B: "H264", 0x24: "H265"}
_TYPES_BY_CODEC = {v: k for k, v in STREAM_TYPES.items()}
MAX_FRAME_BYTES = 8 << 20


class PsError(ValueError):
    pass


@dataclass(slots=True)
class Demuxed:
    codec: str | None  # from the stream map (None: no map seen yet)
    video: bytes  # the video elementary stream bytes of the frame


def demux(data: bytes, codec: str | None = None, max_bytes: int = MAX_FRAME_BYTES) -> Demuxed:
    """The video bytes of one PS frame; `codec` carries over from an earlier map."""
    if len(data) > max_bytes:
        raise PsError(f"a PS frame larger than {max_bytes} bytes")
    out: list[bytes] = []
    pos, end = 0, len(data)
    while pos + 4 <= end:
        if data[pos : pos + 3] != b"\x00\x00\x01":
            raise PsError(f"no start code at byte {pos}")
        sid = data[pos + 3]
        if sid == 0xBA:
            if pos + 14 > end or (data[pos + 4] >> 6) != 0b01:
                raise PsError("pack header truncated or not MPEG-2")
            pos += 14 + (data[pos + 13] & 0x07)
            continue
        if sid == 0xB9:  # program end
            break
        if pos + 6 > end:
            raise PsError("packet header truncated")
        length = struct.unpack_from(">H", data, pos + 4)[0]
        body_end = pos + 6 + length
        if body_end > end:
            raise PsError(f"packet 0x{sid:02X} longer than the frame")
        if sid == 0xBC:
            codec = _stream_map(data[pos + 6 : body_end]) or codec
        elif 0xE0 <= sid <= 0xEF:
            out.append(_pes_payload(data[pos + 6 : body_end]))
        pos = body_end
    return Demuxed(codec, b"".join(out))


def _pes_payload(body: bytes) -> bytes:
    if len(body) < 3 or (body[0] >> 6) != 0b10:
        raise PesError("PES header not MPEG-2")
    start = 3 + body[2]
    if start > len(body):
        raise PesError("PES header longer than the packet")
    return body[start:]


class PesError(PsError):
    pass


def _stream_map(body: bytes) -> str | None:
    if len(body) < 6:
        raise PsError("program stream map truncated")
    info_len = struct.unpack_from(">H", body, 2)[0]
    pos = 4 + info_len
    if pos + 2 > len(body):
        raise PsError("program stream map truncated")
    es_len = struct.unpack_from(">H", body, pos)[0]
    pos += 2
    stop = min(len(body), pos + es_len)
    found = None
    while pos + 4 <= stop:
        stream_type, sid = body[pos], body[pos + 1]
        info = struct.unpack_from(">H", body, pos + 2)[0]
        if 0xE0 <= sid <= 0xEF and found is None:
            found = STREAM_TYPES.get(stream_type)
            if found is None:
                raise PsError(f"video stream type 0x{stream_type:02X} is not H.264 or H.265")
        pos += 4 + info
    return found


# -- muxing (the simulator) ----------------------------------------------------------------------


def _timestamp(marker: int, ts: int) -> bytes:
    ts &= (1 << 33) - 1
    return bytes(
        [
            (marker << 4) | (((ts >> 30) & 0x07) << 1) | 1,
            (ts >> 22) & 0xFF,
            (((ts >> 15) & 0x7F) << 1) | 1,
            (ts >> 7) & 0xFF,
            ((ts & 0x7F) << 1) | 1,
        ]
    )


def _pack_header(scr: int) -> bytes:
    scr &= (1 << 33) - 1
    b = bytearray(b"\x00\x00\x01\xba")
    b += bytes(
        [
            0x44 | ((scr >> 27) & 0x38) | ((scr >> 28) & 0x03),
            (scr >> 20) & 0xFF,
            ((scr >> 12) & 0xF8) | 0x04 | ((scr >> 13) & 0x03),
            (scr >> 5) & 0xFF,
            ((scr << 3) & 0xF8) | 0x04,
            0x01,  # SCR extension 0, marker
        ]
    )
    b += bytes([0x01, 0x89, 0xC3, 0xF8])  # mux rate, markers, no stuffing
    return bytes(b)


def _system_header() -> bytes:
    body = bytes([0x80, 0x01, 0x01, 0x04, 0xE1, 0xFF, 0xE0, 0xE0, 0x80])
    return b"\x00\x00\x01\xbb" + struct.pack(">H", len(body)) + body


def _stream_map_packet(codec: str) -> bytes:
    es = bytes([_TYPES_BY_CODEC[codec], 0xE0, 0x00, 0x00])
    body = bytes([0xE0, 0xFF]) + struct.pack(">H", 0) + struct.pack(">H", len(es)) + es
    body += b"\x00\x00\x00\x00"  # CRC (not checked by readers of GB streams)
    return b"\x00\x00\x01\xbc" + struct.pack(">H", len(body)) + body


def mux(unit: bytes, codec: str, pts: int, keyframe: bool) -> bytes:
    """One access unit (Annex-B) as a PS frame: pack header, on keyframes the system header
    and stream map, then PES packets of at most 65,000 payload bytes."""
    out = bytearray(_pack_header(pts))
    if keyframe:
        out += _system_header() + _stream_map_packet(codec)
    first = True
    for start in range(0, len(unit), 65_000):
        chunk = unit[start : start + 65_000]
        header = bytes([0x80, 0x80, 5]) + _timestamp(0x2, pts) if first else bytes([0x80, 0, 0])
        first = False
        out += b"\x00\x00\x01\xe0" + struct.pack(">H", len(header) + len(chunk)) + header + chunk
    return bytes(out)
