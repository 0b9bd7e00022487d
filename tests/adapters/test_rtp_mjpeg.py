"""Motion JPEG over RTP (RFC 2435, adapters.rtsp.mjpeg): JPEG files rebuilt from RTP/JPEG
packets. Real JPEGs (OpenCV's libjpeg, standard Huffman tables) are cut into RTP/JPEG packets
the way a camera sends them; the rebuilt file must decode to exactly the same pixels: Q 1-99
(standard tables), Q 128-255 (in-band tables, 8- and 16-bit, cached for Q < 255), types 0/1
(4:2:2/4:2:0) and 64/65 (restart markers). Then hostile packets: truncated headers, reserved
values, absurd dimensions, oversized pictures: a clear RtpError or FrameTooLarge, bounded
memory. The end-to-end path against GStreamer's jpegenc/rtpjpegpay is in test_rtsp_codecs.py."""

from __future__ import annotations

import re
import struct

import cv2
import numpy as np
import pytest

from adapters.rtsp.decode import check_size, checked_jpeg, decode_gop
from adapters.rtsp.errors import DecodeError, FrameTooLarge, RtpError
from adapters.rtsp.mjpeg import JpegStream, standard_tables
from adapters.rtsp.rtp import Gop

PT = 26
WIDTH, HEIGHT = 320, 240


def picture(width: int = WIDTH, height: int = HEIGHT, seed: int = 0) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack(
        [(xx * 255 // width + seed) % 256, yy * 255 // height, (xx + yy) % 256], axis=2
    ).astype(np.uint8)


def encode(params: list[int], image: np.ndarray | None = None) -> bytes:
    ok, buf = cv2.imencode(".jpg", picture() if image is None else image, params)
    assert ok
    return bytes(buf)


def parts(jpeg: bytes) -> tuple[bytes, int, bytes]:
    """(the DQT tables, zig-zag, luma then chroma; restart interval; the scan and EOI)."""
    pos, tables, restart = 2, b"", 0
    while True:
        marker = jpeg[pos + 1]
        (length,) = struct.unpack(">H", jpeg[pos + 2 : pos + 4])
        body = jpeg[pos + 4 : pos + 2 + length]
        if marker == 0xDB:
            while body:
                tables += body[1:65]
                body = body[65:]
        elif marker == 0xDD:
            (restart,) = struct.unpack(">H", body)
        elif marker == 0xDA:
            return tables, restart, jpeg[pos + 2 + length :]
        pos += 2 + length


def rtp(seq: int, ts: int, payload: bytes, marker: bool = False, pt: int = PT) -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts, 9) + payload


class Camera:
    """Cuts JPEG scans into RTP/JPEG packets (RFC 2435 section 3)."""

    def __init__(self, mtu: int = 1000) -> None:
        self.seq, self.ts, self.mtu = 100, 3000, mtu

    def packets(
        self,
        scan: bytes,
        kind: int = 1,
        q: int = 50,
        size: tuple[int, int] = (WIDTH, HEIGHT),
        tables: bytes | None = None,
        precision: int = 0,
        restart: int = 0,
        type_specific: int = 0,
    ) -> list[bytes]:
        out = []
        offset = 0
        chunks = [scan[i : i + self.mtu] for i in range(0, len(scan), self.mtu)]
        for i, chunk in enumerate(chunks):
            head = bytes([type_specific]) + offset.to_bytes(3, "big")
            head += bytes([kind, q, size[0] // 8, size[1] // 8])
            if kind >= 64:
                head += struct.pack(">HH", restart, 0xFFFF)  # F=1, L=1, count 0x3FFF
            if q >= 128 and offset == 0 and tables is not None:
                head += struct.pack(">BBH", 0, precision, len(tables)) + tables
            out.append(rtp(self.seq, self.ts, head + chunk, marker=i == len(chunks) - 1))
            self.seq += 1
            offset += len(chunk)
        self.ts += 3600
        return out


def feed_all(stream: JpegStream, packets: list[bytes]) -> int:
    return sum(stream.feed(p, now=1.0) for p in packets)


def decoded(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def newest(stream: JpegStream) -> bytes:
    gop = stream.gop()
    assert gop is not None and gop.codec == "JPEG" and gop.frames == 1
    return gop.units[0]


# -------------------------------------------------------------------------- reconstruction


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        (1, [cv2.IMWRITE_JPEG_QUALITY, 50]),
        (1, [cv2.IMWRITE_JPEG_QUALITY, 12]),
        (1, [cv2.IMWRITE_JPEG_QUALITY, 93]),
        (0, [cv2.IMWRITE_JPEG_QUALITY, 75, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, 0x211111]),
    ],
    ids=["420-q50", "420-q12", "420-q93", "422-q75"],
)
def test_standard_tables_rebuild_the_same_picture(kind: int, params: list[int]) -> None:
    """Q 1-99: the tables are the JPEG standard's, scaled as libjpeg's quality scales them."""
    original = encode(params)
    tables, _, scan = parts(original)
    q = params[1]
    assert tables == standard_tables(q)  # RFC 2435 appendix A is libjpeg's quality scaling
    stream = JpegStream(PT)
    assert feed_all(stream, Camera().packets(scan, kind=kind, q=q)) == 1
    rebuilt = newest(stream)
    assert rebuilt.startswith(b"\xff\xd8") and rebuilt.endswith(b"\xff\xd9")
    assert np.array_equal(decoded(rebuilt), decoded(original))
    assert stream.frames == 1 and stream.lost == 0 and stream.dropped_gops == 0


@pytest.mark.parametrize("precision", [0, 3], ids=["8-bit", "16-bit"])
def test_in_band_tables_q255_and_cached_static_tables(precision: int) -> None:
    original = encode([cv2.IMWRITE_JPEG_QUALITY, 85])
    tables, _, scan = parts(original)
    if precision:
        tables = struct.pack(">128H", *tables)
    camera, stream = Camera(mtu=700), JpegStream(PT)
    assert feed_all(stream, camera.packets(scan, q=255, tables=tables, precision=precision)) == 1
    assert np.array_equal(decoded(newest(stream)), decoded(original))
    # Q 128-254: tables in the first picture only (length 0 after), kept for that Q
    assert feed_all(stream, camera.packets(scan, q=200, tables=tables, precision=precision)) == 1
    assert feed_all(stream, camera.packets(scan, q=200, tables=b"")) == 1
    assert np.array_equal(decoded(newest(stream)), decoded(original))
    with pytest.raises(RtpError, match=r"tables for Q=201 never sent"):
        feed_all(stream, camera.packets(scan, q=201, tables=b""))
    with pytest.raises(RtpError, match=r"tables for Q=255 never sent"):  # 255: never cached
        feed_all(stream, camera.packets(scan, q=255, tables=b""))


def test_restart_markers_types_64_and_65() -> None:
    for kind, sampling in ((65, 0x221111), (64, 0x211111)):
        params = [cv2.IMWRITE_JPEG_QUALITY, 60, cv2.IMWRITE_JPEG_RST_INTERVAL, 3]
        original = encode([*params, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, sampling])
        _, restart, scan = parts(original)
        assert restart == 3 and b"\xff\xd0" in scan
        stream = JpegStream(PT)
        assert feed_all(stream, Camera().packets(scan, kind=kind, q=60, restart=restart)) == 1
        rebuilt = newest(stream)
        assert b"\xff\xdd\x00\x04\x00\x03" in rebuilt  # DRI
        assert np.array_equal(decoded(rebuilt), decoded(original))


def test_the_rebuilt_picture_decodes_through_ffmpeg_and_passes_the_checks() -> None:
    stream = JpegStream(PT)
    _, _, scan = parts(encode([cv2.IMWRITE_JPEG_QUALITY, 50]))
    feed_all(stream, Camera().packets(scan))
    gop = stream.gop()
    assert gop is not None
    frame = decode_gop(gop)
    assert frame.shape == (HEIGHT, WIDTH, 3)
    assert checked_jpeg(gop.units[0]) is gop.units[0]  # returned as it came


def test_a_width_of_zero_takes_the_sdp_dimensions() -> None:
    """RFC 2435 carries at most 2040 pixels (255 x 8); larger pictures say 0, and the SDP's
    a=x-dimensions (or a=framesize) gives the size."""
    image = picture(2048, 64)
    _, _, scan = parts(encode([cv2.IMWRITE_JPEG_QUALITY, 50], image))
    packets = Camera().packets(scan, size=(0, 64))
    with pytest.raises(RtpError, match="over 2040 pixels wide or high, and no a=x-dimensions"):
        feed_all(JpegStream(PT), packets)
    stream = JpegStream.from_sdp(PT, {}, 1 << 20, (2048, 64))
    assert feed_all(stream, packets) == 1
    assert decoded(newest(stream)).shape == (64, 2048, 3)


# ------------------------------------------------------------------- fragments and damage


def test_a_lost_fragment_drops_the_picture_and_the_next_one_is_whole() -> None:
    _, _, scan = parts(encode([cv2.IMWRITE_JPEG_QUALITY, 50]))
    camera, stream = Camera(mtu=500), JpegStream(PT)
    first = camera.packets(scan)
    assert len(first) >= 3
    assert feed_all(stream, first[:1] + first[2:]) == 0  # one fragment lost
    assert stream.lost == 1 and stream.dropped_gops == 1 and stream.gop() is None
    assert feed_all(stream, camera.packets(scan)) == 1
    # joined mid-picture: its first fragment never seen
    late = JpegStream(PT)
    second = camera.packets(scan)
    assert feed_all(late, second[1:]) == 0 and late.dropped_gops == 0
    assert feed_all(late, camera.packets(scan)) == 1


def test_a_fragment_at_the_wrong_offset_drops_the_picture() -> None:
    _, _, scan = parts(encode([cv2.IMWRITE_JPEG_QUALITY, 50]))
    camera, stream = Camera(mtu=500), JpegStream(PT)
    packets = camera.packets(scan)
    second = bytearray(packets[1])
    second[13:16] = (1000).to_bytes(3, "big")  # claims to continue at 1000, not 500
    assert feed_all(stream, [packets[0], bytes(second), *packets[2:]]) == 0
    assert stream.dropped_gops == 1 and stream.lost == 0 and stream.gop() is None


def test_a_picture_without_a_marker_bit_is_replaced_by_the_next() -> None:
    _, _, scan = parts(encode([cv2.IMWRITE_JPEG_QUALITY, 50]))
    camera, stream = Camera(), JpegStream(PT)
    unfinished = camera.packets(scan)[:-1]
    assert feed_all(stream, unfinished + camera.packets(scan)) == 1
    assert stream.dropped_gops == 1 and stream.frames == 1


def test_other_payload_types_are_ignored() -> None:
    stream = JpegStream(PT)
    assert not stream.feed(rtp(1, 1, b"\x00" * 20, marker=True, pt=96))
    assert stream.ignored == 1


# ---------------------------------------------------------------------------------- hostile


def header(
    kind: int = 1, q: int = 50, width: int = WIDTH, height: int = HEIGHT, offset: int = 0
) -> bytes:
    return b"\x00" + offset.to_bytes(3, "big") + bytes([kind, q, width // 8, height // 8])


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        (b"", "truncated RTP/JPEG header (0 bytes)"),
        (header()[:7], "truncated RTP/JPEG header (7 bytes)"),
        (b"\x01" + header()[1:] + b"scan", "interlaced RTP/JPEG (type-specific 1)"),
        (header(kind=2) + b"scan", "RTP/JPEG type 2 not supported"),
        (header(kind=66) + b"scan", "RTP/JPEG type 66 not supported"),
        (header(kind=130) + b"scan", "RTP/JPEG type 130 not supported"),
        (header(q=0) + b"scan", "Q=0 is reserved"),
        (header(q=100) + b"scan", "Q=100 is reserved"),
        (header(q=127) + b"scan", "Q=127 is reserved"),
        (header(kind=65) + b"\x00\x04", "truncated RTP/JPEG restart marker header"),
        (header(q=255) + b"\x00\x00", "truncated RTP/JPEG quantization table header"),
        (header(q=255) + b"\x00\x00\x00\x80" + b"\x01" * 100, "truncated RTP/JPEG quantization"),
        (header(q=255) + b"\x00\x00\x00\x40" + b"\x01" * 64, "tables of 64 bytes, 128 needed"),
        (header(q=255) + b"\x00\x03\x00\x80" + b"\x01" * 128, "tables of 128 bytes, 256 needed"),
        (header(width=0) + b"scan", "over 2040 pixels wide or high"),
        (header(offset=8, kind=3) + b"scan", "RTP/JPEG type 3 not supported"),
    ],
)
def test_hostile_rtp_jpeg_is_a_clear_error(payload: bytes, says: str) -> None:
    with pytest.raises(RtpError, match=re.escape(says)):
        JpegStream(PT).feed(rtp(1, 1, payload, marker=True))


def test_an_oversized_picture_is_an_error_and_memory_stays_bounded() -> None:
    cap = 32 << 10
    stream = JpegStream(PT, max_gop_bytes=cap)
    camera = Camera(mtu=1400)
    endless = header() + b"\x11" * 1400
    stream.feed(rtp(1, 1, endless))
    with pytest.raises(RtpError, match=r"JPEG picture larger than 32768 bytes"):
        for i in range(1, 100):  # fragments that never end
            stream.feed(rtp(1 + i, 1, header(offset=1400 * i) + b"\x11" * 1400))
    assert stream._scan is None  # nothing kept
    _, _, scan = parts(encode([cv2.IMWRITE_JPEG_QUALITY, 50]))
    camera.seq = 200
    assert feed_all(stream, camera.packets(scan)) == 1  # the stream goes on


def test_absurd_dimensions_are_refused_before_any_decoder() -> None:
    """The RTP/JPEG header says at most 2040x2040, but an SDP may claim anything for width 0:
    the rebuilt header is read before a decoder allocates a picture."""
    _, _, scan = parts(encode([cv2.IMWRITE_JPEG_QUALITY, 50]))
    stream = JpegStream(PT, size=(16384, 16384))
    assert feed_all(stream, Camera().packets(scan, size=(0, 0))) == 1
    gop = stream.gop()
    assert gop is not None
    with pytest.raises(FrameTooLarge, match="a stream of 16384x16384 pixels"):
        decode_gop(gop)
    with pytest.raises(FrameTooLarge):
        checked_jpeg(gop.units[0])
    check_size("JPEG", newest_of(scan), 320 * 240)
    with pytest.raises(FrameTooLarge, match="320x240 pixels, over this gateway's limit of 76,799"):
        check_size("JPEG", newest_of(scan), 320 * 240 - 1)


def newest_of(scan: bytes) -> bytes:
    stream = JpegStream(PT)
    feed_all(stream, Camera().packets(scan))
    return newest(stream)


def test_what_is_no_jpeg_is_a_decode_error() -> None:
    """The headers are ours, so only the scan is the camera's: libjpeg conceals a corrupt one
    (as it does for HTTP snapshots); a unit that is no JPEG at all is refused."""
    for data in (b"\xff\xd8 not a jpeg", b"GIF89a"):
        with pytest.raises(DecodeError, match="JPEG is unusable"):
            checked_jpeg(data)
        with pytest.raises(DecodeError):
            decode_gop(Gop("JPEG", (data,), 1.0, 1))
