"""Frame grabs in each codec camgw decodes (H.264, H.265 per RFC 7798, MJPEG per RFC 2435),
cold (adapters.rtsp.grab) and warm (adapters.stream_pool), against the real GStreamer RTSP
simulator on 127.2.252.0/24: one camera per codec (x264enc, x265enc, jpegenc), 720p25, 1 s GOPs.

Nothing here is skipped: without Debian's GStreamer packages the simulator fixture fails with the
apt-get line that fixes it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import statistics
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from adapters.rtsp import (
    GopDecoder,
    RtspPlayer,
    decode_gop,
    describe,
    first_keyframe,
    gop_to_jpeg,
    grab_frame,
    grab_jpeg,
    h264,
    h265,
    open_stream,
)
from adapters.rtsp.nal import split_annexb
from adapters.simulator.devices import SimDevice
from adapters.simulator.fleet import FleetCamera
from adapters.simulator.rtsp_server import Codec, RtspCamera, RtspSimulator
from adapters.stream_pool import StreamPool

PASSWORD = "Codec-s3cret-pw"
CODECS: tuple[Codec, ...] = ("h264", "h265", "mjpeg")
ADDRESSES = {codec: f"127.2.252.{i + 1}" for i, codec in enumerate(CODECS)}
SDP_NAMES = {"h264": "H264", "h265": "H265", "mjpeg": "JPEG"}


@pytest.fixture(scope="module")
async def sim() -> AsyncIterator[RtspSimulator]:
    cameras = [
        RtspCamera(f"codec-{codec}", address, "admin", PASSWORD, codec=codec)
        for codec, address in ADDRESSES.items()
    ]
    async with RtspSimulator(cameras) as simulator:
        yield simulator


def loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network("127.0.0.0/8")
    except ValueError:
        return False


def url(sim: RtspSimulator, codec: Codec) -> str:
    return sim.url(f"codec-{codec}")


def size(jpeg: bytes) -> tuple[int, int]:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image.shape[0], image.shape[1]


@pytest.mark.parametrize("codec", CODECS)
async def test_describe_names_the_codec(sim: RtspSimulator, codec: Codec) -> None:
    info = await describe(url(sim, codec), "admin", PASSWORD, timeout=5)
    assert info.codec == SDP_NAMES[codec] and info.fps == 25
    if codec != "mjpeg":  # from the SPS in sprop-parameter-sets / sprop-sps
        assert (info.width, info.height) == (1280, 720)
    if codec == "h265":
        assert (info.profile, info.level) == ("Main", 3.1)


@pytest.mark.parametrize("codec", CODECS)
async def test_cold_grab(sim: RtspSimulator, codec: Codec) -> None:
    times = []
    for _ in range(2):
        started = time.monotonic()
        frame = await grab_frame(url(sim, codec), "admin", PASSWORD, allowed=loopback)
        times.append(time.monotonic() - started)
        assert frame.shape == (720, 1280, 3) and frame.dtype == np.uint8
        assert float(frame.std()) > 20  # a test pattern, not a blank frame
    print(f"\ncold {codec} grabs (720p25, 1 s GOP): " + ", ".join(f"{t * 1000:.0f}" for t in times))
    assert max(times) < 2.0


async def test_an_h265_grab_starts_at_an_irap_with_its_parameter_sets(sim: RtspSimulator) -> None:
    gop = await first_keyframe(url(sim, "h265"), "admin", PASSWORD, loopback, 5)
    kinds = [h265.nal_type(nal) for nal in split_annexb(gop.units[0])]
    assert kinds[:3] == [h265.NAL_VPS, h265.NAL_SPS, h265.NAL_PPS]
    pictures = [kind for kind in kinds if kind in h265.CODEC.vcl]
    assert pictures and all(kind in h265.IRAP for kind in pictures)  # SEI may come first
    gop264 = await first_keyframe(url(sim, "h264"), "admin", PASSWORD, loopback, 5)
    kinds = [h264.nal_type(nal) for nal in split_annexb(gop264.units[0])]
    assert kinds[:2] == [h264.NAL_SPS, h264.NAL_PPS] and h264.NAL_IDR in kinds


@pytest.mark.parametrize("codec", CODECS)
async def test_a_grab_joins_a_running_stream_without_disturbing_its_viewer(
    sim: RtspSimulator, codec: Codec
) -> None:
    """Another viewer keeps the camera streaming (as a real camera always is): a grab joins
    mid-GOP and waits for the next keyframe, and the viewer loses nothing (a PLAY with
    "Range: npt=0.000-" made GStreamer seek the shared stream: a gap for every other client)."""
    async with await open_stream(url(sim, codec), "admin", PASSWORD, allowed=loopback) as other:
        await other.keyframe()
        await read_frames(other, 5)
        for _ in range(2):
            frame = await grab_frame(url(sim, codec), "admin", PASSWORD, allowed=loopback)
            assert frame.shape == (720, 1280, 3)
        await read_frames(other, 5)
        assert other.stream is not None
        assert other.stream.lost == 0 and other.stream.dropped_gops == 0


async def test_an_mjpeg_grab_is_the_cameras_own_jpeg(sim: RtspSimulator) -> None:
    gop = await first_keyframe(url(sim, "mjpeg"), "admin", PASSWORD, loopback, 5)
    assert gop.codec == "JPEG" and gop.frames == 1
    jpeg = await asyncio.to_thread(gop_to_jpeg, gop)
    assert jpeg is gop.units[0]  # not re-encoded
    assert size(jpeg) == (720, 1280)
    frame = await asyncio.to_thread(decode_gop, gop)
    assert frame.shape == (720, 1280, 3)
    jpeg = await grab_jpeg(url(sim, "mjpeg"), "admin", PASSWORD, allowed=loopback)
    assert jpeg.startswith(b"\xff\xd8") and size(jpeg) == (720, 1280)


@pytest.mark.parametrize("codec", CODECS)
async def test_warm_grabs_through_the_stream_pool(sim: RtspSimulator, codec: Codec) -> None:
    uri = url(sim, codec)
    with ThreadPoolExecutor(max_workers=2) as executor:
        pool = StreamPool(executor, max_streams=2, idle_s=5.0)
        try:
            started = time.monotonic()
            jpeg, taken_at, warm = await pool.jpeg(
                uri, "admin", PASSWORD, allowed=loopback, timeout_s=5
            )
            cold = time.monotonic() - started
            assert not warm and size(jpeg) == (720, 1280)
            times, stamps = [], [taken_at]
            for _ in range(12):
                await asyncio.sleep(0.1)
                started = time.monotonic()
                jpeg, taken_at, warm = await pool.jpeg(
                    uri, "admin", PASSWORD, allowed=loopback, timeout_s=5
                )
                times.append(time.monotonic() - started)
                assert warm and size(jpeg) == (720, 1280)
                assert time.time() - taken_at < 0.5  # the newest frame, not the keyframe
                stamps.append(taken_at)
            assert stamps == sorted(stamps)
            # a newer frame almost every time (an encoder on a busy machine may skip one)
            assert len(set(stamps)) >= 0.75 * len(stamps)
            p50 = statistics.median(times)
            print(
                f"\n{codec} through StreamPool (720p25, 1 s GOP): cold {cold * 1000:.0f} ms, "
                f"warm p50 {p50 * 1000:.1f} ms, max {max(times) * 1000:.1f} ms"
            )
            assert p50 < 0.1 and p50 < cold
        finally:
            await pool.close()
        assert len(pool) == 0


async def test_cold_grabs_through_a_pool_without_warm_streams(sim: RtspSimulator) -> None:
    with ThreadPoolExecutor(max_workers=1) as executor:
        pool = StreamPool(executor, max_streams=0)
        for codec in CODECS:
            jpeg, _, warm = await pool.jpeg(
                url(sim, codec), "admin", PASSWORD, allowed=loopback, timeout_s=5
            )
            assert not warm and size(jpeg) == (720, 1280)
        assert len(pool) == 0
        await pool.close()


@pytest.mark.parametrize("codec", ["h264", "h265"])
async def test_the_incremental_decoder_matches_a_decode_from_scratch(
    sim: RtspSimulator, codec: Codec
) -> None:
    """A warm stream's decoder feeds FFmpeg each access unit once; the picture it returns for a
    grown GOP is the one a fresh decoder gets from the whole GOP."""
    decoder: GopDecoder | None = None
    async with await open_stream(url(sim, codec), "admin", PASSWORD, allowed=loopback) as player:
        await player.keyframe()
        for _ in range(3):
            await read_frames(player, 4)
            gop = player.gop()
            assert gop is not None
            if decoder is None:
                decoder = GopDecoder(gop.codec)
            incremental = await asyncio.to_thread(decoder.to_bgr, gop)
            assert decoder._fed == gop.frames
            scratch = await asyncio.to_thread(decode_gop, gop)
            assert np.array_equal(incremental, scratch)


async def read_frames(player: RtspPlayer, frames: int) -> None:
    left = [frames]

    def count() -> None:
        left[0] -= 1

    await player.run(count, lambda: left[0] <= 0)


async def test_a_simulated_devices_codec_reaches_its_rtsp_stream() -> None:
    camera = FleetCamera(
        "police-traffic-9101", "police", "traffic", "x", "127.2.252.9", 31.0, 121.3, "x"
    )
    device = SimDevice(camera, password="dev-pw-9101", onvif=False, codec="h265")
    rtsp = RtspCamera.from_device(device)
    assert rtsp.codec == "h265" and rtsp.config()["codec"] == "h265"
    async with RtspSimulator([rtsp]) as simulator:
        assert simulator.url(camera.id) == device.stream_uri
        info = await describe(device.stream_uri, device.username, device.password, timeout=5)
        assert info.codec == "H265"
