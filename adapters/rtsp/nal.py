"""Access units and GOPs of the NAL-unit codecs (H.264 and H.265), from depacketized NAL units.

`NalStream` is what h264.py and h265.py share: it parses each RTP header, hands the payload to
the codec's depacketizer, and

- assembles access units (a picture's NAL units: one RTP timestamp, ended by the marker bit or
  by a timestamp change),
- tracks the parameter sets (from the SDP's sprop-*, replaced by in-band ones),
- keeps the current GOP: the newest keyframe access unit (the parameter sets in front) and the
  ones after it, each as Annex-B bytes: what `decode.py` hands to FFmpeg, one unit a packet.

Memory is bounded: a GOP larger than `max_gop_bytes` is dropped (the stream waits for the next
keyframe); one access unit larger than that is an error. Sequence gaps drop the damaged GOP too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .errors import RtpError
from .rtp import MAX_GOP_BYTES, Gop, SequenceCheck, parse_rtp

START_CODE = b"\x00\x00\x00\x01"
MAX_PARAMETER_SET_BYTES = 4096


def split_annexb(data: bytes) -> list[bytes]:
    """The NAL units of an Annex-B byte string (3- or 4-byte start codes)."""
    nals: list[bytes] = []
    pos = data.find(b"\x00\x00\x01")
    while pos != -1:
        start = pos + 3
        nxt = data.find(b"\x00\x00\x01", start)
        end = len(data) if nxt == -1 else nxt
        while end > start and data[end - 1] == 0:  # trailing zeros: the next 4-byte start code
            end -= 1
        if end > start:
            nals.append(data[start:end])
        pos = nxt
    return nals


class Depacketizer:
    """RTP payloads of one stream -> NAL units (one per codec: RFC 6184, RFC 7798)."""

    def push(self, payload: memoryview) -> list[bytes]:
        raise NotImplementedError

    def reset(self) -> None:
        """After a lost packet: a fragment in progress can never be completed."""


@dataclass(frozen=True, slots=True)
class NalCodec:
    """What tells one NAL-unit codec's units apart."""

    name: str  # SDP encoding name
    label: str  # for people: H.264, H.265
    nal_type: Callable[[bytes], int]
    parameter_sets: tuple[int, ...]  # NAL types, in the order a decoder wants them
    parameter_set_id: Callable[[bytes], int]  # its id (0 when unreadable)
    vcl: frozenset[int]  # coded pictures
    keyframes: frozenset[int]  # where decoding can start: IDR (H.264), IRAP (H.265)
    dropped: frozenset[int]  # not copied into a GOP (access unit delimiters)


class NalStream:
    """One H.264 or H.265 RTP stream: feed packets, read the current GOP."""

    def __init__(
        self,
        codec: NalCodec,
        depacketizer: Depacketizer,
        payload_type: int | None = None,
        parameter_sets: Iterable[bytes] = (),
        max_gop_bytes: int = MAX_GOP_BYTES,
    ) -> None:
        self.spec = codec
        self.codec = codec.name
        self.payload_type = payload_type
        self.max_gop_bytes = max_gop_bytes
        self._depay = depacketizer
        self._params: dict[tuple[int, int], bytes] = {}  # (NAL type, id) -> NAL unit
        for nal in parameter_sets:
            self._parameter_set(nal)
        self._seq = SequenceCheck()
        # the access unit being assembled
        self._au_ts: int | None = None
        self._au: list[bytes] = []
        self._au_bytes = 0
        self._au_damaged = False
        # the current GOP: its keyframe unit (parameter sets in front), then the ones after it
        self._gop: list[bytes] = []
        self._gop_times: list[float] = []  # arrival (wall clock) of each access unit
        self._gop_bytes = 0
        self._gop_started = False
        # counters
        self.packets = 0
        self.access_units = 0  # complete, decodable ones put in a GOP
        self.keyframes = 0
        self.dropped_gops = 0  # GOPs dropped for size or damage
        self.ignored = 0  # packets of another payload type

    def __repr__(self) -> str:
        return f"NalStream({self.codec}, gop={len(self._gop)} units)"

    @property
    def lost(self) -> int:
        """Sequence gaps seen."""
        return self._seq.lost

    # -- feeding ---------------------------------------------------------------------------

    def feed(self, packet: bytes, now: float | None = None) -> bool:
        """One RTP packet. True when it completed an access unit that is now in the GOP."""
        header, payload = parse_rtp(packet)
        if self.payload_type is not None and header.payload_type != self.payload_type:
            self.ignored += 1
            return False
        self.packets += 1
        gap = self._seq.gap(header.sequence)
        if gap:  # the lost packets may end the access unit in progress or start this one
            self._depay.reset()
            self._au_damaged = True
            self._drop_gop()
        added = False
        if self._au_ts is not None and header.timestamp != self._au_ts:
            added = self._finish(now)  # the previous one had no marker bit (or lost it)
            self._au_damaged = gap
        self._au_ts = header.timestamp
        for nal in self._depay.push(payload):
            self._au_bytes += len(nal) + 4
            if self._au_bytes > self.max_gop_bytes:
                self._au, self._au_bytes, self._au_ts = [], 0, None
                raise RtpError(
                    f"{self.spec.label} access unit larger than {self.max_gop_bytes} bytes"
                )
            self._au.append(nal)
        if header.marker:
            added = self._finish(now) or added
        return added

    def _finish(self, now: float | None) -> bool:
        nals, damaged = self._au, self._au_damaged
        self._au, self._au_bytes, self._au_ts, self._au_damaged = [], 0, None, False
        if damaged or not nals:
            return False
        spec = self.spec
        kinds = [spec.nal_type(nal) for nal in nals]
        for nal, kind in zip(nals, kinds, strict=True):
            if kind in spec.parameter_sets:
                self._parameter_set(nal)
        if not any(k in spec.vcl for k in kinds):
            return False  # parameter sets or SEI alone: kept above, nothing to show
        skip = spec.dropped.union(spec.parameter_sets)
        data = b"".join(
            START_CODE + nal for nal, kind in zip(nals, kinds, strict=True) if kind not in skip
        )
        if any(k in spec.keyframes for k in kinds):
            if {kind for kind, _ in self._params} != set(spec.parameter_sets):
                return False  # nothing to decode it with yet
            data = self._parameter_bytes() + data
            self._gop, self._gop_times, self._gop_bytes = [], [], 0
            self._gop_started = True
            self.keyframes += 1
        elif not self._gop_started:
            return False  # waiting for a keyframe
        if self._gop_bytes + len(data) > self.max_gop_bytes:
            self._drop_gop()
            return False
        self._gop.append(data)
        self._gop_times.append(time.time() if now is None else now)
        self._gop_bytes += len(data)
        self.access_units += 1
        return True

    def _parameter_set(self, nal: bytes) -> None:
        if len(nal) < 2 or len(nal) > MAX_PARAMETER_SET_BYTES:
            return
        kind = self.spec.nal_type(nal)
        if kind in self.spec.parameter_sets:
            self._params[(kind, self.spec.parameter_set_id(nal))] = nal

    def _parameter_bytes(self) -> bytes:
        order = self.spec.parameter_sets
        ordered = sorted(self._params.items(), key=lambda item: (order.index(item[0][0]), item[0]))
        return b"".join(START_CODE + nal for _, nal in ordered)

    def _drop_gop(self) -> None:
        if self._gop_started:
            self.dropped_gops += 1
        self._gop, self._gop_times, self._gop_bytes = [], [], 0
        self._gop_started = False

    # -- reading ---------------------------------------------------------------------------

    @property
    def has_gop(self) -> bool:
        return bool(self._gop)

    @property
    def gop_bytes(self) -> int:
        return self._gop_bytes

    def keyframe(self) -> Gop | None:
        """The parameter sets and the current GOP's keyframe access unit alone."""
        if not self._gop:
            return None
        serial = self.access_units - len(self._gop) + 1
        return Gop(self.codec, (self._gop[0],), self._gop_times[0], serial)

    def gop(self) -> Gop | None:
        """The whole current GOP, up to its newest access unit."""
        if not self._gop:
            return None
        return Gop(self.codec, tuple(self._gop), self._gop_times[-1], self.access_units)


def split_aggregate(payload: memoryview, start: int, min_nal: int, what: str) -> list[bytes]:
    """The NAL units of an aggregation packet (H.264 STAP-A, H.265 AP): from `start`, a 16-bit
    size and that many bytes, repeated; `what` names the packet in errors."""
    nals = []
    offset, size = start, len(payload)
    while offset < size:
        if offset + 2 > size:
            raise RtpError(f"truncated {what}")
        length = (payload[offset] << 8) | payload[offset + 1]
        offset += 2
        if length < min_nal or offset + length > size:
            raise RtpError(f"malformed {what}")
        nals.append(bytes(payload[offset : offset + length]))
        offset += length
    if not nals:
        raise RtpError(f"empty {what}")
    return nals
