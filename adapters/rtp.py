"""RTP (RFC 3550) and H.264 over RTP (RFC 6184): from packets to Annex-B access units and GOPs.

Pure and synchronous: `adapters.rtsp.RtspPlayer` reads interleaved RTP from the camera and feeds
each packet to an `H264Stream`, which

- parses the RTP header (version, padding, extension, CSRCs, marker, sequence, timestamp),
- depacketizes H.264: single NAL unit packets, STAP-A aggregates and FU-A fragments
  (packetization modes 0 and 1; the interleaved mode 2 is refused),
- assembles access units (a frame's NAL units: one RTP timestamp, ended by the marker bit or a
  timestamp change),
- tracks the parameter sets (SPS/PPS from the SDP's sprop-parameter-sets, replaced by in-band ones),
- keeps the current GOP: the parameter sets, the newest IDR access unit and the ones after it, as
  Annex-B bytes an H.264 decoder reads from a file.

Memory is bounded: a GOP larger than `max_gop_bytes` is dropped (the stream waits for the next
IDR); one access unit larger than that is an error. Sequence gaps drop the damaged GOP too.
Errors are `RtpError` (a ValueError) with messages that name no host and no credential.
"""

from __future__ import annotations

import base64
import binascii
import struct
import time
from dataclasses import dataclass

MAX_GOP_BYTES = 8 << 20
START_CODE = b"\x00\x00\x00\x01"

# NAL unit types (H.264 table 7-1, RFC 6184 table 1)
NAL_SLICE, NAL_IDR, NAL_SEI, NAL_SPS, NAL_PPS, NAL_AUD = 1, 5, 6, 7, 8, 9
STAP_A, STAP_B, MTAP16, MTAP24, FU_A, FU_B = 24, 25, 26, 27, 28, 29
_VCL = frozenset(range(1, 6))


class RtpError(ValueError):
    """The media is not usable RTP/H.264 (malformed, unsupported, oversized)."""


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


def decode_sprop(sprop: str) -> list[bytes]:
    """sprop-parameter-sets (comma-separated base64 NAL units) -> NAL units; bad items skipped."""
    nals = []
    for item in sprop.split(","):
        text = item.strip()
        if not text:
            continue
        try:
            nal = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue
        if nal and len(nal) <= 4096:
            nals.append(nal)
    return nals


@dataclass(frozen=True, slots=True)
class Gop:
    """Annex-B bytes to decode: parameter sets, an IDR access unit, the access units after it."""

    annexb: bytes
    frames: int  # access units (pictures) in `annexb`
    taken_at: float  # wall clock when the newest of them arrived
    serial: int  # number of the newest access unit in the stream (1, 2, ...)


class H264Depacketizer:
    """RTP payloads of one H.264 stream -> NAL units (RFC 6184, non-interleaved mode)."""

    def __init__(self, max_nal_bytes: int) -> None:
        self.max_nal_bytes = max_nal_bytes
        self._fu: bytearray | None = None

    def reset(self) -> None:
        """After a lost packet: a fragment in progress can never be completed."""
        self._fu = None

    def push(self, payload: memoryview) -> list[bytes]:
        if not payload:
            raise RtpError("empty H.264 RTP payload")
        indicator = payload[0]
        kind = indicator & 0x1F
        if 1 <= kind <= 23:
            self._fu = None
            return [bytes(payload)]
        if kind == STAP_A:
            self._fu = None
            return _stap_a(payload)
        if kind == FU_A:
            return self._fu_a(payload, indicator)
        if kind in (STAP_B, MTAP16, MTAP24, FU_B):
            raise RtpError(f"H.264 interleaved packetization (NAL type {kind}) not supported")
        raise RtpError(f"not an H.264 payload (NAL type {kind})")

    def _fu_a(self, payload: memoryview, indicator: int) -> list[bytes]:
        if len(payload) < 3:
            raise RtpError("truncated H.264 FU-A fragment")
        fu_header = payload[1]
        start, end = fu_header & 0x80, fu_header & 0x40
        if start and end:
            raise RtpError("malformed H.264 FU-A fragment (start and end bits both set)")
        if start:
            self._fu = bytearray(((indicator & 0xE0) | (fu_header & 0x1F),))
        elif self._fu is None:  # the start was lost, or we joined mid-unit: skip it
            return []
        self._fu += payload[2:]
        if len(self._fu) > self.max_nal_bytes:
            self._fu = None
            raise RtpError(f"H.264 NAL unit larger than {self.max_nal_bytes} bytes")
        if not end:
            return []
        nal, self._fu = bytes(self._fu), None
        return [nal]


def _stap_a(payload: memoryview) -> list[bytes]:
    nals = []
    offset, size = 1, len(payload)
    while offset < size:
        if offset + 2 > size:
            raise RtpError("truncated H.264 STAP-A aggregate")
        length = (payload[offset] << 8) | payload[offset + 1]
        offset += 2
        if length == 0 or offset + length > size:
            raise RtpError("malformed H.264 STAP-A aggregate")
        nals.append(bytes(payload[offset : offset + length]))
        offset += length
    if not nals:
        raise RtpError("empty H.264 STAP-A aggregate")
    return nals


def _ue(data: bytes, bitpos: int) -> tuple[int, int]:
    """An exp-Golomb code at `bitpos`; (value, next bit position). Raises RtpError."""
    zeros = 0
    limit = len(data) * 8
    while True:
        if bitpos >= limit or zeros > 31:
            raise RtpError("bad exp-Golomb code")
        bit = (data[bitpos >> 3] >> (7 - (bitpos & 7))) & 1
        bitpos += 1
        if bit:
            break
        zeros += 1
    value = 0
    for _ in range(zeros):
        if bitpos >= limit:
            raise RtpError("bad exp-Golomb code")
        value = (value << 1) | ((data[bitpos >> 3] >> (7 - (bitpos & 7))) & 1)
        bitpos += 1
    return (1 << zeros) - 1 + value, bitpos


def parameter_set_id(nal: bytes) -> int:
    """seq_parameter_set_id of an SPS, pic_parameter_set_id of a PPS (0 when unreadable)."""
    try:
        if nal[0] & 0x1F == NAL_SPS:
            return _ue(nal[:16], 32)[0]  # after profile_idc, constraint flags, level_idc
        return _ue(nal[:8], 8)[0]
    except (RtpError, IndexError):
        return 0


class H264Stream:
    """One H.264 RTP stream: feed packets, read the current GOP."""

    def __init__(
        self,
        payload_type: int | None = None,
        parameter_sets: list[bytes] | None = None,
        max_gop_bytes: int = MAX_GOP_BYTES,
    ) -> None:
        self.payload_type = payload_type
        self.max_gop_bytes = max_gop_bytes
        self._depay = H264Depacketizer(max_gop_bytes)
        self._sps: dict[int, bytes] = {}
        self._pps: dict[int, bytes] = {}
        for nal in parameter_sets or []:
            self._parameter_set(nal)
        self._seq: int | None = None
        # the access unit being assembled
        self._au_ts: int | None = None
        self._au: list[bytes] = []
        self._au_bytes = 0
        self._au_damaged = False
        # the current GOP: parameter sets at its IDR, then access units (Annex-B each)
        self._params = b""
        self._gop: list[bytes] = []
        self._gop_times: list[float] = []  # arrival (wall clock) of each access unit
        self._gop_bytes = 0
        self._gop_started = False
        # counters
        self.packets = 0
        self.access_units = 0  # complete, decodable ones put in a GOP
        self.keyframes = 0
        self.lost = 0  # sequence gaps
        self.dropped_gops = 0  # GOPs dropped for size or damage
        self.ignored = 0  # packets of another payload type

    # -- feeding ---------------------------------------------------------------------------

    def feed(self, packet: bytes, now: float | None = None) -> bool:
        """One RTP packet. True when it completed an access unit that is now in the GOP."""
        header, payload = parse_rtp(packet)
        if self.payload_type is not None and header.payload_type != self.payload_type:
            self.ignored += 1
            return False
        self.packets += 1
        gap = self._seq is not None and header.sequence != (self._seq + 1) & 0xFFFF
        if gap:  # the lost packets may end the access unit in progress or start this one
            self.lost += 1
            self._depay.reset()
            self._au_damaged = True
            self._drop_gop()
        self._seq = header.sequence
        added = False
        if self._au_ts is not None and header.timestamp != self._au_ts:
            added = self._finish(now)  # the previous one had no marker bit (or lost it)
            self._au_damaged = gap
        self._au_ts = header.timestamp
        for nal in self._depay.push(payload):
            self._au_bytes += len(nal) + 4
            if self._au_bytes > self.max_gop_bytes:
                self._au, self._au_bytes, self._au_ts = [], 0, None
                raise RtpError(f"H.264 access unit larger than {self.max_gop_bytes} bytes")
            self._au.append(nal)
        if header.marker:
            added = self._finish(now) or added
        return added

    def _finish(self, now: float | None) -> bool:
        nals, damaged = self._au, self._au_damaged
        self._au, self._au_bytes, self._au_ts, self._au_damaged = [], 0, None, False
        if damaged or not nals:
            return False
        kinds = [nal[0] & 0x1F for nal in nals]
        for nal, kind in zip(nals, kinds, strict=True):
            if kind in (NAL_SPS, NAL_PPS):
                self._parameter_set(nal)
        if not any(k in _VCL for k in kinds):
            return False  # parameter sets or SEI alone: kept above, nothing to show
        data = b"".join(
            START_CODE + nal
            for nal, kind in zip(nals, kinds, strict=True)
            if kind not in (NAL_SPS, NAL_PPS, NAL_AUD)
        )
        if NAL_IDR in kinds:
            if not self._sps or not self._pps:
                return False  # nothing to decode it with yet
            self._params = b"".join(
                START_CODE + p for p in (*self._sps.values(), *self._pps.values())
            )
            self._gop, self._gop_times, self._gop_bytes = [], [], len(self._params)
            self._gop_started = True
            self.keyframes += 1
        elif not self._gop_started:
            return False  # waiting for an IDR
        if self._gop_bytes + len(data) > self.max_gop_bytes:
            self._drop_gop()
            return False
        self._gop.append(data)
        self._gop_times.append(time.time() if now is None else now)
        self._gop_bytes += len(data)
        self.access_units += 1
        return True

    def _parameter_set(self, nal: bytes) -> None:
        kind = nal[0] & 0x1F
        if kind == NAL_SPS and len(nal) >= 4:
            self._sps[parameter_set_id(nal) & 31] = nal
        elif kind == NAL_PPS and len(nal) >= 2:
            self._pps[parameter_set_id(nal) & 255] = nal

    def _drop_gop(self) -> None:
        if self._gop_started:
            self.dropped_gops += 1
        self._gop, self._gop_times, self._gop_bytes = [], [], 0
        self._gop_started, self._params = False, b""

    # -- reading ---------------------------------------------------------------------------

    @property
    def has_gop(self) -> bool:
        return bool(self._gop)

    @property
    def newest_at(self) -> float:
        """Wall clock of the newest access unit in the GOP (0 when there is none)."""
        return self._gop_times[-1] if self._gop_times else 0.0

    def keyframe(self) -> Gop | None:
        """The parameter sets and the current GOP's IDR access unit alone."""
        if not self._gop:
            return None
        serial = self.access_units - len(self._gop) + 1
        return Gop(self._params + self._gop[0], 1, self._gop_times[0], serial)

    def gop(self) -> Gop | None:
        """The whole current GOP, up to its newest access unit."""
        if not self._gop:
            return None
        return Gop(
            self._params + b"".join(self._gop),
            len(self._gop),
            self._gop_times[-1],
            self.access_units,
        )

    @property
    def gop_bytes(self) -> int:
        return self._gop_bytes
