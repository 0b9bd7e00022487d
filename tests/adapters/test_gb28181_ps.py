"""PS (MPEG-2 program stream) as GB/T 28181 carries video: muxed and demuxed, hostile frames
refused; a keyframe recognised and decoded to JPEG with the RTSP code's decoder."""

from __future__ import annotations

import pytest

from adapters.gb28181.media import is_keyframe, to_jpeg
from adapters.gb28181.ps import PsError, demux, mux
from adapters.simulator.gb28181 import video_gop


@pytest.fixture(scope="module")
def gop() -> list[tuple[bytes, bool]]:
    return video_gop("H264", 5)


@pytest.mark.parametrize("codec", ["H264", "H265"])
def test_a_keyframe_round_trips_and_decodes(codec: str) -> None:
    unit, key = video_gop(codec, 2)[0]
    assert key and is_keyframe(codec, unit)
    frame = demux(mux(unit, codec, 3600, keyframe=True))
    assert (frame.codec, frame.video) == (codec, unit)
    jpeg = to_jpeg(codec, frame.video)
    assert jpeg.startswith(b"\xff\xd8")


def test_the_codec_carries_over_to_frames_without_a_map(gop: list[tuple[bytes, bool]]) -> None:
    unit, key = gop[1]
    assert not key and not is_keyframe("H264", unit)
    frame = demux(mux(unit, "H264", 7200, keyframe=False), codec="H264")
    assert (frame.codec, frame.video) == ("H264", unit)


def test_large_units_span_several_pes_packets() -> None:
    unit = b"\x00\x00\x00\x01\x65" + bytes(range(256)) * 600  # ~150 kB
    assert demux(mux(unit, "H265", 0, keyframe=True)).video == unit


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\x00\x02\xba" + b"\x00" * 20, "no start code at byte 0"),
        (b"\x00\x00\x01\xba\x00" + b"\x00" * 9, "pack header truncated or not MPEG-2"),
        (b"\x00\x00\x01\xe0\xff\xff\x80\x80\x05", "packet 0xE0 longer than the frame"),
        (b"\x00\x00\x01\xe0\x00\x03\x80\x80\x09", "PES header longer than the packet"),
        (
            b"\x00\x00\x01\xbc\x00\x0e\xe0\xff\x00\x00\x00\x04\x90\xe0\x00\x00\x00\x00\x00\x00",
            "video stream type 0x90 is not H.264 or H.265",
        ),
    ],
)
def test_hostile_frames_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(PsError, match=message):
        demux(data)


def test_a_frame_over_the_bound_is_refused_unread() -> None:
    with pytest.raises(PsError, match="larger than 1024 bytes"):
        demux(b"\x00" * 1025, max_bytes=1024)
