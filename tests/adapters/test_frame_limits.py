"""RTSP frames are bounded like JPEG snapshots (security review, issue 7, finding 4): a stream
whose sequence parameter set (H.264, H.265) or JPEG frame header (MJPEG) declares more than
`max_pixels` is refused before FFmpeg decodes a byte of it (`FrameTooLarge`), FFmpeg's own
`max_pixels` fence stands behind that, and a warm stream of such pictures is closed at once.
The parsers' own tests with hostile parameter sets are in test_rtp_h265.py and test_rtp_mjpeg.py."""

from __future__ import annotations

import asyncio
import base64
import os
import re
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from adapters.config import DEFAULT_MAX_PIXELS
from adapters.rtsp import (
    DecodeError,
    FrameTooLarge,
    Gop,
    GopDecoder,
    check_size,
    decode_gop,
    first_keyframe,
    grab_frame,
    grab_jpeg,
)
from adapters.rtsp.nal import START_CODE
from adapters.simulator.rtsp_server import Codec, RtspCamera, RtspSimulator
from adapters.stream_pool import StreamPool

_X = 200 + os.getpid() % 20
CODECS: tuple[Codec, ...] = ("h264", "h265", "mjpeg")
ADDRESSES = {codec: f"127.2.{_X}.{40 + i}" for i, codec in enumerate(CODECS)}
PASSWORD = "L1mits-pw-9"
SPS_720P = base64.b64decode("Z0LAH9oBQBbsBagICAoAAAMAAgAAAwBlHjBlQA==")  # x264, 1280x720
PPS = bytes.fromhex("68ce3c80")
QVGA = 320 * 240  # the smallest limit the configuration allows


def baseline_sps(width: int, height: int) -> bytes:
    """A Baseline-profile SPS NAL unit declaring width x height (multiples of 16)."""
    bits: list[int] = []

    def u(n: int, value: int) -> None:
        bits.extend((value >> (n - 1 - i)) & 1 for i in range(n))

    def ue(value: int) -> None:
        code = value + 1
        u(code.bit_length() - 1, 0)
        u(code.bit_length(), code)

    u(8, 66)  # profile_idc: Baseline
    u(8, 0)  # constraint flags
    u(8, 62)  # level_idc 6.2
    ue(0)  # seq_parameter_set_id
    ue(0)  # log2_max_frame_num_minus4
    ue(2)  # pic_order_cnt_type
    ue(1)  # max_num_ref_frames
    u(1, 0)  # gaps_in_frame_num_value_allowed_flag
    ue(width // 16 - 1)
    ue(height // 16 - 1)
    u(1, 1)  # frame_mbs_only_flag
    u(1, 1)  # direct_8x8_inference_flag
    u(1, 0)  # frame_cropping_flag
    u(1, 0)  # vui_parameters_present_flag
    bits.append(1)  # rbsp_stop_one_bit
    bits.extend([0] * (-len(bits) % 8))
    raw = bytes(int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8))
    return b"\x67" + re.sub(rb"\x00\x00(?=[\x00-\x03])", b"\x00\x00\x03", raw)


def keyframe(sps: bytes) -> bytes:
    """Parameter sets, then an 'IDR' of garbage: any decoder that got this far would fail."""
    return START_CODE + sps + START_CODE + PPS + START_CODE + b"\x65\x88" + b"\x5a" * 4000


def gop(sps: bytes) -> Gop:
    return Gop("H264", (keyframe(sps),), 1.0, 1)


def test_an_oversized_sps_is_refused_before_any_decode() -> None:
    with pytest.raises(FrameTooLarge) as caught:
        decode_gop(gop(baseline_sps(8192, 8192)))
    assert str(caught.value) == (
        "a stream of 8192x8192 pixels, over this gateway's limit of 33,177,600"
    )
    assert (caught.value.width, caught.value.height) == (8192, 8192)
    assert caught.value.limit == DEFAULT_MAX_PIXELS
    assert isinstance(caught.value, DecodeError)  # the grab's failure, for the adapter
    # within the limit, the same bytes reach FFmpeg, which cannot decode the garbage picture
    with pytest.raises(DecodeError) as within:
        decode_gop(gop(baseline_sps(640, 368)))
    assert not isinstance(within.value, FrameTooLarge)


def test_the_limit_is_inclusive_and_configurable() -> None:
    check_size("H264", keyframe(SPS_720P), 1280 * 720)
    with pytest.raises(FrameTooLarge, match=r"1280x720 pixels, .* limit of 921,599$"):
        check_size("H264", keyframe(SPS_720P), 1280 * 720 - 1)
    check_size("H264", keyframe(baseline_sps(7680, 4320)))  # 8K UHD: exactly the default
    with pytest.raises(FrameTooLarge, match="7696x4320"):
        check_size("H264", keyframe(baseline_sps(7696, 4320)))
    aud, sei = START_CODE + b"\x09\xf0", START_CODE + b"\x06\x05\x01\x00\x80"
    with pytest.raises(FrameTooLarge, match="7696x4320"):  # what an encoder puts first
        check_size("H264", aud + sei + keyframe(baseline_sps(7696, 4320)))
    short = keyframe(baseline_sps(7696, 4320)).replace(START_CODE, b"\x00\x00\x01")
    with pytest.raises(FrameTooLarge, match="7696x4320"):  # 3-byte start codes too
        check_size("H264", short)


def test_an_unreadable_sps_is_not_handed_to_a_decoder() -> None:
    with pytest.raises(DecodeError, match="sequence parameter set is unusable"):
        decode_gop(gop(b"\x67\x42\x00"))  # truncated
    with pytest.raises(DecodeError, match="sequence parameter set is unusable"):
        decode_gop(gop(baseline_sps(32768, 16)))  # wider than H.264 allows


# --------------------------------------------------------------------------- real streams


@pytest.fixture(scope="module")
async def sim() -> AsyncIterator[RtspSimulator]:
    cameras = [
        RtspCamera(codec, address, "admin", PASSWORD, width=640, height=360, fps=10, codec=codec)
        for codec, address in ADDRESSES.items()
    ]
    async with RtspSimulator(cameras) as simulator:
        yield simulator


def loopback(host: str) -> bool:
    return host.startswith("127.")


@pytest.mark.parametrize("codec", CODECS)
async def test_a_stream_over_the_limit_is_refused_cold_and_warm(
    sim: RtspSimulator, codec: Codec
) -> None:
    uri = sim.url(codec)
    detail = "a stream of 640x360 pixels, over this gateway's limit of 76,800"
    with ThreadPoolExecutor(2) as executor:
        with pytest.raises(FrameTooLarge) as caught:
            await grab_jpeg(
                uri, "admin", PASSWORD, allowed=loopback, executor=executor, max_pixels=QVGA
            )
        assert str(caught.value) == detail
        with pytest.raises(FrameTooLarge, match=detail):
            await grab_frame(uri, "admin", PASSWORD, allowed=loopback, max_pixels=QVGA)

        cold = StreamPool(executor, max_streams=0, max_pixels=QVGA)
        with pytest.raises(FrameTooLarge, match=detail):
            await cold.jpeg(uri, "admin", PASSWORD, allowed=loopback, timeout_s=5)

        warm = StreamPool(executor, max_streams=2, max_pixels=QVGA)
        try:
            with pytest.raises(FrameTooLarge, match=detail):
                await warm.jpeg(uri, "admin", PASSWORD, allowed=loopback, timeout_s=5)
            for _ in range(50):  # closed at once, not kept playing until idle
                if len(warm) == 0:
                    break
                await asyncio.sleep(0.01)
            assert len(warm) == 0
        finally:
            await warm.close()

        fine = StreamPool(executor, max_streams=1)  # the default limit: 8K UHD
        try:
            jpeg, _, _ = await fine.jpeg(uri, "admin", PASSWORD, allowed=loopback, timeout_s=5)
            assert jpeg.startswith(b"\xff\xd8")
        finally:
            await fine.close()


@pytest.mark.parametrize("codec", ["h264", "h265"])
async def test_ffmpegs_own_fence_stands_behind_the_parsers(
    sim: RtspSimulator, codec: Codec
) -> None:
    """Parameter sets the size check does not read (here: after a first unit with no picture,
    which a GOP from our depacketizer never has) still cannot make FFmpeg allocate a larger
    picture: its own max_pixels refuses it, and that is a FrameTooLarge too."""
    key = await first_keyframe(sim.url(codec), "admin", PASSWORD, loopback, 5)
    sei = START_CODE + (b"\x06\x05\x01\x00\x80" if codec == "h264" else b"\x4e\x01\x05\x01\x00\x80")
    sneaky = Gop(key.codec, (sei, key.units[0]), key.taken_at, 2)
    check_size(key.codec, sneaky.units[0], QVGA)  # nothing for it to read
    with pytest.raises(FrameTooLarge, match="640x360 pixels"):
        await asyncio.to_thread(GopDecoder(key.codec, QVGA).decode, sneaky)
    frame = await asyncio.to_thread(decode_gop, sneaky)
    assert frame.shape == (360, 640, 3)
