"""H.265 over RTP (RFC 7798, adapters.rtsp.h265): single NAL unit packets, aggregation packets
(AP), fragmentation units (FU), parameter sets from sprop-vps/-sps/-pps and in-band, decoding
starting at an IRAP picture, the SPS parser, and hostile packets (truncated, malformed,
oversized): each a clear RtpError, never a crash, memory bounded. Hand-built packets; the
end-to-end path against GStreamer's x265enc/rtph265pay is in test_rtsp_codecs.py."""

from __future__ import annotations

import base64
import re
import struct

import pytest

from adapters.rtsp.decode import check_size
from adapters.rtsp.errors import DecodeError, FrameTooLarge, RtpError
from adapters.rtsp.h265 import (
    AP,
    FU,
    H265Depacketizer,
    H265Stream,
    parameter_set_id,
    parse_h265_sps,
    sps_from_sprop,
)
from adapters.rtsp.nal import START_CODE, split_annexb
from adapters.rtsp.sdp import parse_sdp

PT = 96
# GStreamer's x265enc, 1280x720 Main (the simulator's SDP)
VPS = base64.b64decode("QAEMAf//AWAAAAMAkAAAAwAAAwBdugJA")
SPS = base64.b64decode("QgEBAWAAAAMAkAAAAwAAAwBdoAKAgC0WW6Skwv/wABAAFqAgICCAAAADAIAAAAyE")
PPS = base64.b64decode("RAHAcYMS")
AUD = bytes([35 << 1, 1, 0x50])


def nal(kind: int, size: int = 50, tag: int = 0, tid: int = 1) -> bytes:
    """A NAL unit of `kind` with a recognisable body."""
    return bytes([kind << 1, tid, tag]) + bytes((i * 7 + tag) & 0xFF or 1 for i in range(size))


def idr(size: int = 3000, tag: int = 0) -> bytes:
    return nal(19, size, tag)  # IDR_W_RADL


def trail(size: int = 400, tag: int = 0) -> bytes:
    return nal(1, size, tag)  # TRAIL_R


def ap(*nals: bytes) -> bytes:
    return bytes([AP << 1, 1]) + b"".join(struct.pack("!H", len(n)) + n for n in nals)


def fu(unit: bytes, size: int) -> list[bytes]:
    """`unit` cut into FUs of at most `size` payload bytes (RFC 7798 4.4.3)."""
    header, body = unit[:2], unit[2:]
    kind = (header[0] >> 1) & 0x3F
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    out = []
    for i, chunk in enumerate(chunks):
        fu_header = kind | (0x80 if i == 0 else 0) | (0x40 if i == len(chunks) - 1 else 0)
        payload_header = bytes([(header[0] & 0x81) | (FU << 1), header[1]])
        out.append(payload_header + bytes([fu_header]) + chunk)
    return out


def rtp(seq: int, ts: int, payload: bytes, marker: bool = False, pt: int = PT) -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts, 7) + payload


class Sender:
    """Packetizes access units as rtph265pay does: an AP for the parameter sets, FUs for large
    NAL units, the marker bit on the last packet of each access unit."""

    def __init__(self, mtu: int = 1400) -> None:
        self.seq, self.ts, self.mtu = 500, 90_000, mtu

    def access_unit(self, *nals: bytes, params: bool = False) -> list[bytes]:
        payloads: list[bytes] = [ap(VPS, SPS, PPS)] if params else []
        for unit in nals:
            payloads += fu(unit, self.mtu) if len(unit) > self.mtu else [unit]
        packets = []
        for i, payload in enumerate(payloads):
            packets.append(rtp(self.seq, self.ts, payload, marker=i == len(payloads) - 1))
            self.seq += 1
        self.ts += 3600
        return packets


def feed_all(stream: H265Stream, packets: list[bytes]) -> int:
    return sum(stream.feed(p, now=1.0) for p in packets)


# ----------------------------------------------------------------------------- depacketizing


def test_single_nal_unit_aggregation_and_fragmentation_units() -> None:
    depay = H265Depacketizer(1 << 20)
    assert depay.push(memoryview(PPS)) == [PPS]
    assert depay.push(memoryview(ap(VPS, SPS, PPS))) == [VPS, SPS, PPS]
    unit = nal(19, 5000, tid=3)
    fragments = fu(unit, 1000)
    assert len(fragments) == 6  # 5001 bytes after the two-byte NAL header
    assert fragments[0][2] == 0x80 | 19 and fragments[-1][2] == 0x40 | 19
    out: list[bytes] = []
    for fragment in fragments:
        out += depay.push(memoryview(fragment))
    assert out == [unit]  # the NAL header rebuilt: type from the FU header, TID kept
    # a fragment whose start we never saw (joined mid-unit, or lost) is skipped
    assert depay.push(memoryview(fragments[2])) == []
    assert depay.push(memoryview(fragments[-1])) == []


def test_a_fragment_of_another_unit_ends_the_one_in_progress() -> None:
    """The end of the first unit was lost and a middle fragment of another type comes: neither
    is completed."""
    depay = H265Depacketizer(1 << 20)
    first, second = fu(idr(3000), 1000), fu(trail(3000), 1000)
    assert depay.push(memoryview(first[0])) == []
    assert depay.push(memoryview(second[1])) == []
    assert depay.push(memoryview(first[-1])) == []  # its start is forgotten too


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        (b"", "truncated H.265 RTP payload (0 bytes)"),
        (b"\x02\x01", "truncated H.265 RTP payload (2 bytes)"),
        (b"\x82\x01\x00", "forbidden_zero_bit"),
        (bytes([AP << 1, 1, 0x00]), "truncated H.265 aggregation packet"),
        (bytes([AP << 1, 1, 0x00, 0x09, 0x40, 0x01]), "malformed H.265 aggregation packet"),
        (bytes([AP << 1, 1, 0x00, 0x01, 0x40]), "malformed H.265 aggregation packet"),
        (bytes([AP << 1, 1]) + b"\x00\x00", "malformed H.265 aggregation packet"),
        (bytes([FU << 1, 1, 0x93]), "truncated H.265 fragmentation unit"),
        (bytes([FU << 1, 1, 0xD3, 0x00]), "start and end bits both set"),
        (bytes([FU << 1, 1, 0x80 | AP, 0x00]), "of a type 48 packet"),
        (bytes([FU << 1, 1, 0x80 | FU, 0x00]), "of a type 49 packet"),
        (bytes([50 << 1, 1, 0x00, 0x00]), "PACI packets (type 50) not supported"),
        (bytes([55 << 1, 1, 0x00]), "not an H.265 payload (NAL type 55)"),
    ],
)
def test_hostile_h265_payloads_are_clear_errors(payload: bytes, says: str) -> None:
    with pytest.raises(RtpError, match=re.escape(says)):
        H265Depacketizer(1 << 20).push(memoryview(payload))


def test_a_fragmented_unit_over_the_cap_is_an_error_and_forgotten() -> None:
    depay = H265Depacketizer(8 << 10)
    fragments = fu(idr(20_000), 1000)
    with pytest.raises(RtpError, match=r"H\.265 NAL unit larger than 8192 bytes"):
        for fragment in fragments:
            depay.push(memoryview(fragment))
    assert depay._fu is None  # nothing kept
    assert depay.push(memoryview(PPS)) == [PPS]  # and the depacketizer goes on


def test_endless_fragments_without_an_end_stay_bounded() -> None:
    """A hostile sender that starts a fragment and never ends it: the stream's access unit cap
    ends it with an error, not memory growth."""
    stream = H265Stream(PT, [VPS, SPS, PPS], max_gop_bytes=64 << 10)
    start = bytes([FU << 1, 1, 0x80 | 19]) + b"\x11" * 1000
    middle = bytes([FU << 1, 1, 19]) + b"\x22" * 1000
    stream.feed(rtp(1, 1, start))
    with pytest.raises(RtpError, match="larger than 65536 bytes"):
        for seq in range(2, 200):
            stream.feed(rtp(seq, 1, middle))


# ------------------------------------------------------------------ access units and the GOP


def test_gop_from_sprop_parameter_sets_an_idr_and_trailing_pictures() -> None:
    stream = H265Stream(PT, [PPS, SPS, VPS])  # any order in: VPS, SPS, PPS out
    send = Sender()
    assert feed_all(stream, send.access_unit(trail())) == 0  # before any IRAP: skipped
    assert feed_all(stream, send.access_unit(AUD, idr(5000))) == 1
    key = stream.keyframe()
    assert key is not None and key.codec == "H265" and key.frames == 1
    assert split_annexb(key.units[0]) == [VPS, SPS, PPS, idr(5000)]  # the AUD is dropped
    assert key.units[0].startswith(START_CODE + VPS)
    for i in range(3):
        assert feed_all(stream, send.access_unit(trail(tag=i))) == 1
    gop = stream.gop()
    assert gop is not None and gop.frames == 4 and gop.serial == 4 and gop.key_serial == 1
    assert split_annexb(gop.units[-1]) == [trail(tag=2)]
    assert feed_all(stream, send.access_unit(nal(21, 2000, tag=9))) == 1  # a CRA: a new GOP
    gop = stream.gop()
    assert gop is not None and gop.frames == 1 and gop.key_serial == 5
    assert stream.keyframes == 2 and stream.lost == 0


@pytest.mark.parametrize("kind", range(16, 22), ids=lambda k: f"type{k}")
def test_every_irap_type_starts_a_gop(kind: int) -> None:
    stream = H265Stream(PT, [VPS, SPS, PPS])
    assert feed_all(stream, Sender().access_unit(nal(kind, 800))) == 1


@pytest.mark.parametrize("kind", [0, 1, 8, 9, 22, 23], ids=lambda k: f"type{k}")
def test_other_pictures_do_not_start_a_gop(kind: int) -> None:
    stream = H265Stream(PT, [VPS, SPS, PPS])
    assert feed_all(stream, Sender().access_unit(nal(kind, 800))) == 0
    assert stream.gop() is None


def test_in_band_parameter_sets_and_an_irap_without_them() -> None:
    stream = H265Stream(PT)  # no sprop in the SDP
    send = Sender()
    assert feed_all(stream, send.access_unit(idr())) == 0  # nothing to decode it with yet
    assert feed_all(stream, send.access_unit(idr(), params=True)) == 1
    gop = stream.gop()
    assert gop is not None and split_annexb(gop.units[0])[:3] == [VPS, SPS, PPS]


def test_a_sequence_gap_drops_the_gop_until_the_next_irap() -> None:
    stream = H265Stream(PT, [VPS, SPS, PPS])
    send = Sender()
    feed_all(stream, send.access_unit(idr(4000), params=True))
    lost = send.access_unit(trail(3000, tag=1))
    feed_all(stream, lost[:1] + lost[2:])  # one fragment lost
    assert stream.lost == 1 and stream.gop() is None and stream.dropped_gops == 1
    assert feed_all(stream, send.access_unit(trail())) == 0
    assert feed_all(stream, send.access_unit(idr(4000, tag=2))) == 1


def test_an_oversized_gop_is_dropped_and_memory_stays_bounded() -> None:
    cap = 64 << 10
    stream = H265Stream(PT, [VPS, SPS, PPS], max_gop_bytes=cap)
    send = Sender()
    feed_all(stream, send.access_unit(idr(20_000), params=True))
    for i in range(40):
        feed_all(stream, send.access_unit(trail(5000, tag=i)))
        assert stream.gop_bytes <= cap
    assert stream.dropped_gops == 1 and stream.gop() is None
    with pytest.raises(RtpError, match=r"H\.265 NAL unit larger than 65536 bytes"):
        feed_all(stream, send.access_unit(idr(70_000)))
    # many NAL units, each small, one access unit: the same
    slices = (nal(19, 1000, tag=i) for i in range(70))
    with pytest.raises(RtpError, match=r"H\.265 access unit larger than 65536 bytes"):
        feed_all(stream, send.access_unit(*slices))


def test_from_sdp_reads_sprop_and_refuses_reordered_transmission() -> None:
    def b64(unit: bytes) -> str:
        return base64.b64encode(unit).decode()

    fmtp = {"sprop-vps": b64(VPS), "sprop-sps": b64(SPS), "sprop-pps": b64(PPS)}
    stream = H265Stream.from_sdp(PT, fmtp, 1 << 20)
    assert feed_all(stream, Sender().access_unit(idr())) == 1
    with pytest.raises(RtpError, match=r"sprop-max-don-diff 2 .* not supported"):
        H265Stream.from_sdp(PT, {**fmtp, "sprop-max-don-diff": "2"}, 1 << 20)
    assert H265Stream.from_sdp(PT, {**fmtp, "sprop-max-don-diff": "0"}, 1 << 20)


# ------------------------------------------------------------------ sequence parameter set


class BitWriter:
    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, n: int, value: int) -> None:
        self.bits += [(value >> (n - 1 - i)) & 1 for i in range(n)]

    def ue(self, value: int) -> None:
        code = value + 1
        self.u(code.bit_length() - 1, 0)
        self.u(code.bit_length(), code)

    def sps(self) -> bytes:
        bits = [*self.bits, 1]
        bits += [0] * (-len(bits) % 8)
        raw = bytes(int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8))
        return bytes([33 << 1, 1]) + re.sub(rb"\x00\x00(?=[\x00-\x03])", b"\x00\x00\x03", raw)


def h265_sps(
    width: int,
    height: int,
    crop: tuple[int, int, int, int] | None = None,
    sub_layers: int = 0,
    chroma: int = 1,
) -> bytes:
    w = BitWriter()
    w.u(4, 0)  # sps_video_parameter_set_id
    w.u(3, sub_layers)
    w.u(1, 1)
    w.u(2, 0)  # profile_tier_level: general_profile_space
    w.u(1, 0)
    w.u(5, 2)  # Main 10
    w.u(32, 0x20000000)
    w.u(4, 0b1001)
    w.u(44, 0)  # constraint flags (43) and inbld: zeros, escaped in the NAL unit
    w.u(8, 153)  # level 5.1
    for _ in range(sub_layers):
        w.u(2, 0b11)  # sub-layer profile and level present
    if sub_layers:
        for _ in range(sub_layers, 8):
            w.u(2, 0)
    for _ in range(sub_layers):
        w.u(88, 0)
        w.u(8, 120)
    w.ue(0)  # sps_seq_parameter_set_id
    w.ue(chroma)
    if chroma == 3:
        w.u(1, 0)
    w.ue(width)
    w.ue(height)
    w.u(1, crop is not None)
    for offset in crop or ():
        w.ue(offset)
    w.ue(0)  # bit_depth_luma_minus8 ... (not read)
    return w.sps()


def test_sps_of_a_real_stream() -> None:
    sps = parse_h265_sps(SPS)
    assert (sps.width, sps.height, sps.profile, sps.level) == (1280, 720, "Main", 3.1)
    assert parameter_set_id(VPS) == 0 and parameter_set_id(SPS) == 0
    assert parameter_set_id(PPS) == 0
    sdp = (
        "v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H265/90000\r\na=framerate:25\r\n"
        f"a=fmtp:96 sprop-vps={base64.b64encode(VPS).decode()};"
        f"sprop-sps={base64.b64encode(SPS).decode()};sprop-pps={base64.b64encode(PPS).decode()}"
    )
    video = parse_sdp(sdp)
    assert (video.codec, video.width, video.height, video.fps) == ("H265", 1280, 720, 25)
    assert (video.profile, video.level) == ("Main", 3.1)


@pytest.mark.parametrize(
    ("sps", "size"),
    [
        (h265_sps(1920, 1088, crop=(0, 0, 0, 4)), (1920, 1080)),  # 4:2:0: offsets in 2 px
        (h265_sps(1920, 1080, sub_layers=2), (1920, 1080)),
        (h265_sps(704, 576, crop=(2, 2, 0, 0), chroma=2), (696, 576)),
        (h265_sps(640, 480, crop=(1, 1, 1, 1), chroma=3), (638, 478)),
    ],
    ids=["cropped", "sub-layers", "4:2:2", "4:4:4"],
)
def test_sps_conformance_window_and_sub_layers(sps: bytes, size: tuple[int, int]) -> None:
    assert b"\x00\x00\x03" in sps  # the escaping path is exercised
    parsed = parse_h265_sps(sps)
    assert (parsed.width, parsed.height) == size
    assert (parsed.profile, parsed.level) == ("Main 10", 5.1)
    assert parameter_set_id(sps) == 0


@pytest.mark.parametrize(
    "unit",
    [
        b"",
        PPS,
        SPS[:12],  # truncated in the profile_tier_level
        h265_sps(0, 720),
        h265_sps(32768, 32768),  # absurd dimensions
        h265_sps(1280, 720, crop=(700, 700, 0, 0)),  # cropped to nothing
        bytes([33 << 1, 1]) + b"\xff" * 40,
    ],
    ids=["empty", "pps", "truncated", "zero-width", "absurd", "over-cropped", "ones"],
)
def test_sps_garbage_raises_value_error(unit: bytes) -> None:
    with pytest.raises(ValueError):
        parse_h265_sps(unit)
    assert sps_from_sprop(base64.b64encode(unit).decode()) is None


def test_the_pixel_limit_is_checked_from_the_sps_before_any_decoder() -> None:
    def keyframe(sps: bytes) -> bytes:
        return b"".join(START_CODE + n for n in (VPS, sps, PPS, idr(100)))

    check_size("H265", keyframe(SPS), 1280 * 720)
    with pytest.raises(FrameTooLarge, match=r"a stream of 1280x720 pixels, .* limit of 921,599"):
        check_size("H265", keyframe(SPS), 1280 * 720 - 1)
    with pytest.raises(FrameTooLarge, match="16384x16384"):
        check_size("H265", keyframe(h265_sps(16384, 16384)))  # valid, but over 8K UHD
    with pytest.raises(DecodeError, match="sequence parameter set is unusable"):
        check_size("H265", keyframe(h265_sps(32768, 32768)))
    short = keyframe(h265_sps(16384, 16384)).replace(START_CODE, b"\x00\x00\x01")
    with pytest.raises(FrameTooLarge):  # 3-byte start codes are found too
        check_size("H265", short)
