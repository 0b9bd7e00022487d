"""RTP parsing (adapters.rtsp.rtp) and H.264 depacketization (adapters.rtsp.h264, .nal): single
NAL units, STAP-A, FU-A, access units by marker bit and timestamp, parameter sets, the GOP buffer
and its bounds. Synthetic packets; H.265 is in test_rtp_h265.py, MJPEG in test_rtp_mjpeg.py, the
end-to-end path against GStreamer in test_rtsp.py and test_rtsp_codecs.py."""

from __future__ import annotations

import base64
import re
import struct

import pytest

from adapters.rtsp.errors import RtpError
from adapters.rtsp.h264 import H264Depacketizer, H264Stream, decode_sprop, parameter_set_id
from adapters.rtsp.nal import START_CODE, split_annexb
from adapters.rtsp.rtp import parse_rtp

SPS = base64.b64decode("Z0LAH9oBQBbsBagICAoAAAMAAgAAAwBlHjBlQA==")  # x264 720p baseline
PPS = bytes.fromhex("68ce3c80")
PT = 96


def rtp(seq: int, ts: int, payload: bytes, marker: bool = False, pt: int = PT) -> bytes:
    second = (0x80 if marker else 0) | pt
    return struct.pack("!BBHII", 0x80, second, seq & 0xFFFF, ts, 0x1234) + payload


def stap_a(*nals: bytes) -> bytes:
    return b"\x18" + b"".join(struct.pack("!H", len(n)) + n for n in nals)


def fu_a(nal: bytes, size: int) -> list[bytes]:
    """`nal` cut into FU-A fragments of at most `size` payload bytes."""
    header, body = nal[0], nal[1:]
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    out = []
    for i, chunk in enumerate(chunks):
        start = 0x80 if i == 0 else 0
        end = 0x40 if i == len(chunks) - 1 else 0
        fu_header = (header & 0x1F) | start | end
        out.append(bytes([(header & 0xE0) | 28, fu_header]) + chunk)
    return out


def idr(size: int = 3000, tag: int = 0) -> bytes:
    return b"\x65" + bytes([0x88, tag]) + bytes((i * 7) & 0xFF or 1 for i in range(size))


def p_slice(size: int = 400, tag: int = 0) -> bytes:
    return b"\x41" + bytes([0x9A, tag]) + bytes((i * 3) & 0xFF or 1 for i in range(size))


class Sender:
    """Packetizes access units the way rtph264pay does: STAP-A for the parameter sets,
    FU-A for large NAL units, the marker bit on the last packet of each access unit."""

    def __init__(self, mtu: int = 1400) -> None:
        self.seq = 1000
        self.ts = 90_000
        self.mtu = mtu

    def access_unit(self, *nals: bytes, params: bool = False) -> list[bytes]:
        payloads: list[bytes] = [stap_a(SPS, PPS)] if params else []
        for nal in nals:
            payloads += fu_a(nal, self.mtu) if len(nal) > self.mtu else [nal]
        packets = []
        for i, payload in enumerate(payloads):
            packets.append(rtp(self.seq, self.ts, payload, marker=i == len(payloads) - 1))
            self.seq += 1
        self.ts += 3600
        return packets


def feed_all(stream: H264Stream, packets: list[bytes]) -> int:
    return sum(stream.feed(p, now=1.0) for p in packets)


def nal_units(annexb: bytes) -> list[bytes]:
    return [n for n in annexb.split(START_CODE) if n]


def test_annexb_with_three_and_four_byte_start_codes() -> None:
    data = START_CODE + SPS + b"\x00\x00\x01" + PPS + START_CODE + idr(100)
    assert split_annexb(data) == [SPS, PPS, idr(100)]
    assert split_annexb(b"") == [] and split_annexb(b"\x00\x00\x01\x00\x00\x01") == []


# ---------------------------------------------------------------------------------- RTP header


def test_rtp_header_with_csrcs_extension_and_padding() -> None:
    payload = b"\x41\x9a\x00payload"
    packet = (
        struct.pack("!BBHII", 0x80 | 0x20 | 0x10 | 2, 0x80 | PT, 7, 1234, 99)
        + b"\x00\x00\x00\x01\x00\x00\x00\x02"  # two CSRCs
        + b"\xbe\xde\x00\x01"  # extension header, one word
        + b"\x01\x02\x03\x04"
        + payload
        + b"\x00\x00\x03"  # three bytes of padding
    )
    header, body = parse_rtp(packet)
    assert (header.marker, header.payload_type, header.sequence, header.timestamp) == (
        True,
        PT,
        7,
        1234,
    )
    assert bytes(body) == payload


@pytest.mark.parametrize(
    ("packet", "says"),
    [
        (b"\x80\x60\x00", "shorter than its header"),
        (b"\x00" * 40, "not an RTP packet (version 0)"),
        (b"\xc0" + b"\x00" * 40, "version 3"),
        (struct.pack("!BBHII", 0x90, PT, 1, 1, 1) + b"\x00\x00", "extension truncated"),
        (struct.pack("!BBHII", 0xA0, PT, 1, 1, 1) + b"\x41\x50", "padding larger"),
        (struct.pack("!BBHII", 0x8F, PT, 1, 1, 1) + b"\x41", "header longer than the packet"),
    ],
)
def test_malformed_rtp_is_an_error(packet: bytes, says: str) -> None:
    with pytest.raises(RtpError, match=re.escape(says)):
        parse_rtp(packet)


# ----------------------------------------------------------------------------- depacketizing


def test_single_stap_a_and_fu_a() -> None:
    depay = H264Depacketizer(1 << 20)
    assert depay.push(memoryview(PPS)) == [PPS]
    assert depay.push(memoryview(stap_a(SPS, PPS))) == [SPS, PPS]
    nal = idr(5000)
    fragments = fu_a(nal, 1000)
    assert len(fragments) == 6  # 5002 bytes after the NAL header
    out: list[bytes] = []
    for fragment in fragments:
        out += depay.push(memoryview(fragment))
    assert out == [nal]
    # a fragment whose start we never saw (joined mid-unit, or lost) is skipped
    assert depay.push(memoryview(fragments[2])) == []
    assert depay.push(memoryview(fragments[-1])) == []


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        (b"", "empty"),
        (b"\x18\x00", "truncated H.264 STAP-A"),
        (b"\x18\x00\x09\x67\x42", "malformed H.264 STAP-A"),
        (b"\x18", "empty H.264 STAP-A"),
        (b"\x7c\x85", "truncated H.264 FU-A"),
        (b"\x7c\xc5\x00", "start and end bits"),
        (b"\x79\x00\x01", "interleaved packetization"),  # STAP-B
        (b"\x7d\x85\x00", "interleaved packetization"),  # FU-B
        (b"\x60\x00", "not an H.264 payload (NAL type 0)"),
        (b"\x7e\x00", "NAL type 30"),
    ],
)
def test_bad_h264_payloads_are_errors(payload: bytes, says: str) -> None:
    with pytest.raises(RtpError, match=re.escape(says)):
        H264Depacketizer(1 << 20).push(memoryview(payload))


def test_sprop_and_parameter_set_ids() -> None:
    sprop = ",".join(base64.b64encode(n).decode().rstrip("=") for n in (SPS, PPS))
    assert decode_sprop(sprop + ",!!not-base64!!,") == [SPS, PPS]
    assert parameter_set_id(SPS) == 0 and parameter_set_id(PPS) == 0
    assert parameter_set_id(b"\x68\x60") == 2  # ue(v) 011 -> 2


# ------------------------------------------------------------------ access units and the GOP


def test_gop_from_parameter_sets_idr_and_p_frames() -> None:
    stream = H264Stream(PT, [SPS, PPS])
    send = Sender()
    assert stream.gop() is None and stream.keyframe() is None
    assert feed_all(stream, send.access_unit(p_slice())) == 0  # before any IDR: skipped
    assert feed_all(stream, send.access_unit(idr(5000), params=True)) == 1
    key = stream.keyframe()
    assert key is not None and key.frames == 1
    assert nal_units(key.annexb) == [SPS, PPS, idr(5000)]
    for i in range(3):
        assert feed_all(stream, send.access_unit(p_slice(tag=i))) == 1
    gop = stream.gop()
    assert gop is not None and gop.frames == 4 and gop.serial == 4
    assert nal_units(gop.annexb) == [SPS, PPS, idr(5000), *(p_slice(tag=i) for i in range(3))]
    # a new IDR starts a new GOP
    assert feed_all(stream, send.access_unit(idr(2000, tag=1))) == 1
    gop = stream.gop()
    assert gop is not None and gop.frames == 1 and gop.serial == 5
    assert nal_units(gop.annexb)[-1] == idr(2000, tag=1)
    assert stream.keyframes == 2 and stream.lost == 0


def test_in_band_parameter_sets_and_no_marker_bits() -> None:
    """No sprop in the SDP: SPS/PPS come in-band. An access unit also ends when the timestamp
    changes (a sender that never sets the marker bit)."""
    stream = H264Stream(PT)
    packets = [
        rtp(1, 100, SPS),
        rtp(2, 100, PPS),
        rtp(3, 100, b"\x09\xf0"),  # access unit delimiter: dropped
        rtp(4, 100, idr(800)),
        rtp(5, 200, p_slice()),
        rtp(6, 300, p_slice(tag=1)),
    ]
    assert feed_all(stream, packets) == 2  # the last one is still open
    gop = stream.gop()
    assert gop is not None and gop.frames == 2
    assert nal_units(gop.annexb) == [SPS, PPS, idr(800), p_slice()]


def test_idr_without_parameter_sets_waits() -> None:
    stream = H264Stream(PT)
    send = Sender()
    assert feed_all(stream, send.access_unit(idr())) == 0
    assert stream.gop() is None
    assert feed_all(stream, send.access_unit(idr(), params=True)) == 1


def test_other_payload_types_are_ignored() -> None:
    stream = H264Stream(PT, [SPS, PPS])
    assert not stream.feed(rtp(1, 1, b"\x00\x01\x02", marker=True, pt=0))
    assert stream.ignored == 1


def test_a_sequence_gap_drops_the_gop_until_the_next_idr() -> None:
    stream = H264Stream(PT, [SPS, PPS])
    send = Sender()
    feed_all(stream, send.access_unit(idr(4000), params=True))
    feed_all(stream, send.access_unit(p_slice()))
    lost = send.access_unit(p_slice(3000, tag=1))
    assert len(lost) > 1
    feed_all(stream, lost[:1] + lost[2:])  # one fragment lost
    assert stream.lost == 1 and stream.gop() is None
    assert feed_all(stream, send.access_unit(p_slice())) == 0  # still waiting for an IDR
    assert feed_all(stream, send.access_unit(idr(4000, tag=2))) == 1
    gop = stream.gop()
    assert gop is not None and gop.frames == 1


def test_a_lost_first_packet_of_a_keyframe_does_not_start_a_gop() -> None:
    """The lost packet began the next access unit (an IDR whose first slice is gone): neither
    the one before nor that one is used."""
    stream = H264Stream(PT, [SPS, PPS])
    send = Sender()
    feed_all(stream, send.access_unit(idr(4000), params=True))
    before = send.access_unit(p_slice(3000))
    two_slices = send.access_unit(idr(3000, tag=1), idr(3000, tag=2))
    # lost: the last packet of `before` (its marker) and the first of the keyframe
    assert feed_all(stream, before[:-1] + two_slices[1:]) == 0
    assert stream.lost == 1 and stream.gop() is None
    assert feed_all(stream, send.access_unit(p_slice())) == 0  # waiting for a whole IDR
    assert feed_all(stream, send.access_unit(idr(3000, tag=3))) == 1


def test_an_oversized_gop_is_dropped_and_memory_stays_bounded() -> None:
    cap = 64 << 10
    stream = H264Stream(PT, [SPS, PPS], max_gop_bytes=cap)
    send = Sender()
    feed_all(stream, send.access_unit(idr(20_000), params=True))
    for i in range(40):  # 40 x 5 KB after a 20 KB IDR: well over 64 KiB
        feed_all(stream, send.access_unit(p_slice(5000, tag=i)))
        assert stream.gop_bytes <= cap
    assert stream.dropped_gops == 1 and stream.gop() is None
    feed_all(stream, send.access_unit(idr(20_000, tag=9)))  # the next IDR: a GOP again
    gop = stream.gop()
    assert gop is not None and gop.frames == 1 and len(gop.annexb) <= cap


def test_an_access_unit_larger_than_the_cap_is_an_error() -> None:
    stream = H264Stream(PT, [SPS, PPS], max_gop_bytes=32 << 10)
    send = Sender()
    with pytest.raises(RtpError, match=r"larger than 32768 bytes"):
        feed_all(stream, send.access_unit(idr(40_000), params=True))
    # many NAL units, each small, one access unit: the same
    stream = H264Stream(PT, [SPS, PPS], max_gop_bytes=32 << 10)
    with pytest.raises(RtpError, match=r"access unit larger than 32768 bytes"):
        feed_all(stream, Sender().access_unit(*(p_slice(1000, tag=i) for i in range(40))))
