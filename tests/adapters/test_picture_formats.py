"""What a camera's snapshot URL answers, read in the adapter layer (issue 9): identified from its
bytes (never its Content-Type), a JPEG checked, a PNG or BMP converted to JPEG within the pixel
limit read from its header, anything else refused by name; and the adapter's memory of cameras
whose HTTP snapshot answers something unusable. The adapter here is the one edge adapters run
(`adapters/remote.py` calls the same `CameraNetworkAdapter.snapshot`); the gateway's side, with
RTSP fallbacks, is tests/gateway/test_snapshot_formats.py.
"""

from __future__ import annotations

import ipaddress
import os
import struct
import time
from collections.abc import AsyncIterator

import cv2
import numpy as np
import pytest

from adapters.base import SnapshotRequest
from adapters.config import AccessConfig, DiscoveryConfig, SnapshotConfig
from adapters.http_snapshot import UnusableAnswers
from adapters.imaging import (
    BMP,
    EMPTY,
    HTML,
    JPEG,
    PNG,
    TEXT,
    UNKNOWN,
    XML,
    BadImage,
    ImageTooLarge,
    NotAPicture,
    identify,
    picture_size,
    usable_jpeg,
)
from adapters.network import AdapterSpec, CameraNetworkAdapter
from adapters.simulator.devices import Quirks, SimDevice, SnapshotFormat
from adapters.simulator.fleet import FleetCamera
from adapters.simulator.server import Simulator
from adapters.simulator.snapshot import HTML_ERROR_PAGE, camera_hash, png_bomb, read_marker
from adapters.uris import UriCredentials

LIMIT = "over this gateway's limit of 33,177,600"


def encoded(ext: str, width: int = 160, height: int = 90) -> bytes:
    img = np.zeros((height, width, 3), np.uint8)
    img[:, : width // 2] = (0, 0, 255)  # left half red, right half black
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return bytes(buf.tobytes())


def bmp_core(width: int, height: int) -> bytes:
    """An OS/2-style BMP (BITMAPCOREHEADER: 16-bit sizes), 24 bits, rows padded to 4 bytes."""
    row = (width * 3 + 3) & ~3
    pixels = b"\x80" * row * height
    header = struct.pack("<IHHHH", 12, width, height, 1, 24)
    offset = 14 + len(header)
    return b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + header + pixels


# --------------------------------------------------------------------------- identify


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (encoded(".jpg"), JPEG),
        (encoded(".png"), PNG),
        (encoded(".bmp"), BMP),
        (encoded(".tiff"), "image/tiff"),
        (b"GIF89a\x01\x00\x01\x00", "image/gif"),
        (HTML_ERROR_PAGE, HTML),
        (b"\r\n  <HTML><BODY>401 Unauthorized</BODY></HTML>", HTML),  # a camera's login page
        (b'<?xml version="1.0"?><Error><Code>503</Code></Error>', XML),
        (b"Snapshot is disabled\r\n", TEXT),
        ("快照不可用".encode(), TEXT),
        (b"\x00\x17" + os.urandom(64), UNKNOWN),
        (b"", EMPTY),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_answers_are_identified_by_their_bytes(body: bytes, kind: str) -> None:
    assert identify(body) == kind


# --------------------------------------------------------------------------- sizes


def test_sizes_come_from_the_headers_without_decoding() -> None:
    assert picture_size(encoded(".png", 321, 123), PNG) == (321, 123)
    assert picture_size(encoded(".bmp", 321, 123), BMP) == (321, 123)
    assert picture_size(encoded(".jpg", 321, 123), JPEG) == (321, 123)
    assert picture_size(bmp_core(40, 30), BMP) == (40, 30)
    top_down = bytearray(encoded(".bmp", 64, 48))
    top_down[22:26] = struct.pack("<i", -48)  # a negative height: rows stored top first
    assert picture_size(bytes(top_down), BMP) == (64, 48)


BMP_INFO_7 = b"BM" + b"\0" * 12 + struct.pack("<I", 7) + b"\0" * 8
BMP_0_WIDE = b"BM" + b"\0" * 12 + struct.pack("<Iii", 40, 0, 5)


@pytest.mark.parametrize(
    ("body", "kind", "message"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 16, PNG, "a PNG without its header (IHDR)"),
        (png_bomb(0, 10), PNG, "a PNG header declaring 0x10 pixels"),
        (BMP_INFO_7, BMP, "a BMP with an unknown header (7 bytes)"),
        (BMP_0_WIDE, BMP, "a BMP header declaring 0x5 pixels"),
    ],
)
def test_broken_headers_are_refused_by_name(body: bytes, kind: str, message: str) -> None:
    with pytest.raises(BadImage) as caught:
        picture_size(body, kind)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("body", "kind", "size"),
    [
        (png_bomb(100_000, 100_000), PNG, "100000x100000"),
        (png_bomb(3839, 65500), PNG, "3839x65500"),
        (b"BM" + b"\0" * 12 + struct.pack("<Iii", 40, 65536, -65536), BMP, "65536x65536"),
    ],
)
def test_a_bomb_is_refused_from_its_header_before_any_decode(
    body: bytes, kind: str, size: str
) -> None:
    assert len(body) < 1000
    started = time.perf_counter()
    with pytest.raises(ImageTooLarge) as caught:
        usable_jpeg(body, kind)
    assert str(caught.value) == f"a picture of {size} pixels, {LIMIT}"
    assert time.perf_counter() - started < 0.05  # read from the header: nothing decoded


# --------------------------------------------------------------------------- conversion


@pytest.mark.parametrize("ext", [".png", ".bmp"])
def test_png_and_bmp_become_jpegs_of_the_same_picture(ext: str) -> None:
    body = encoded(ext, 320, 180)
    picture = usable_jpeg(body, identify(body))
    assert picture.converted_from == f"image/{ext[1:]}"
    assert (picture.width, picture.height) == (320, 180)
    assert identify(picture.jpeg) == JPEG
    img = cv2.imdecode(np.frombuffer(picture.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (180, 320, 3)
    assert img[90, 40].tolist() == pytest.approx([0, 0, 254], abs=3)  # red stays red
    assert img[90, 280].tolist() == pytest.approx([0, 0, 0], abs=3)


def test_an_os2_bmp_and_a_png_with_alpha_convert_too() -> None:
    assert usable_jpeg(bmp_core(40, 30), BMP).width == 40
    rgba = np.zeros((30, 40, 4), np.uint8)
    ok, buf = cv2.imencode(".png", rgba)
    assert ok
    assert usable_jpeg(bytes(buf.tobytes()), PNG).height == 30


def test_a_jpeg_is_kept_as_it_is() -> None:
    body = encoded(".jpg", 320, 180)
    picture = usable_jpeg(body, JPEG)
    assert (picture.jpeg, picture.width, picture.converted_from) == (body, 320, None)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (HTML_ERROR_PAGE, "an HTML page, not a picture"),
        (b"\x00\x17garbage", "unrecognised bytes, not a picture"),
        (b"", "an empty answer, not a picture"),
        (b"GIF89a\x01\x00\x01\x00", "a GIF, a format this gateway does not convert"),
        (encoded(".jpg")[:300], "a JPEG that does not decode"),
        (encoded(".png")[:60], "a PNG that does not decode"),
        (b"\xff\xd8\xff\xda" + b"\0" * 40, "a JPEG that does not decode (no frame header)"),
    ],
)
def test_anything_else_is_not_a_picture_and_says_what_it_is(body: bytes, message: str) -> None:
    with pytest.raises(NotAPicture) as caught:
        usable_jpeg(body, identify(body))
    assert str(caught.value) == message
    # `what`: the same words every time (notes and memories use it), without the detail
    assert caught.value.what == message.partition(" (")[0]


# --------------------------------------------------------------------------- the memory


def test_unusable_answers_are_remembered_per_camera_and_uri_for_a_while() -> None:
    now = [100.0]
    memory = UnusableAnswers(300, max_entries=3, clock=lambda: now[0])
    memory.remember("cam-1", "http://127.1.0.1/snap.jpg", "an HTML page, not a picture")
    assert memory.recall("cam-1", "http://127.1.0.1/snap.jpg") == (
        "an HTML page, not a picture",
        300,
    )
    assert memory.recall("cam-1", "http://127.1.0.1/other.jpg") is None  # a corrected URI
    assert memory.recall("cam-2", "http://127.1.0.1/snap.jpg") is None
    now[0] += 299.5
    assert memory.recall("cam-1", "http://127.1.0.1/snap.jpg") == (
        "an HTML page, not a picture",
        0.5,
    )
    now[0] += 0.5
    assert memory.recall("cam-1", "http://127.1.0.1/snap.jpg") is None  # asked again now
    assert len(memory) == 0

    for i in range(5):  # bounded: the oldest is forgotten first
        memory.remember(f"cam-{i}", "u", "x")
    assert len(memory) == 3
    assert [memory.recall(f"cam-{i}", "u") is not None for i in range(5)] == [
        False,
        False,
        True,
        True,
        True,
    ]
    memory.forget("cam-4", "u")
    assert memory.recall("cam-4", "u") is None

    off = UnusableAnswers(0, clock=lambda: now[0])  # unusable_http_s = 0: ask every time
    off.remember("cam-1", "u", "x")
    assert off.recall("cam-1", "u") is None


# --------------------------------------------------------------------------- the adapter

_N = 140 + os.getpid() % 20
NET = f"127.1.{_N}"
PASSWORD = "Pic-fmt/pw:3"
DEVICES = {
    "pic-png": (f"{NET}.10", SnapshotFormat.png),
    "pic-bmp": (f"{NET}.11", SnapshotFormat.bmp),
    "pic-html": (f"{NET}.12", SnapshotFormat.html_error),
    "pic-bomb": (f"{NET}.13", SnapshotFormat.png_bomb),
}


@pytest.fixture(scope="module")
async def simulator() -> AsyncIterator[Simulator]:
    devices = [
        SimDevice(
            camera=FleetCamera(cam, "police", "public-security", cam, addr, 31.0, 121.0, "Rd"),
            password=PASSWORD,
            quirks=Quirks(snapshot_format=fmt),
        )
        for cam, (addr, fmt) in DEVICES.items()
    ]
    async with Simulator(devices, answer_delay_s=0.0, serve_rtsp=False) as sim:
        yield sim


@pytest.fixture
async def adapter() -> AsyncIterator[CameraNetworkAdapter]:
    spec = AdapterSpec(
        "police",
        (ipaddress.ip_network(f"{NET}.0/24"),),
        DiscoveryConfig(),
        UriCredentials("admin", PASSWORD),
        SnapshotConfig(),
        AccessConfig(),
    )
    adapter = CameraNetworkAdapter(spec)
    yield adapter
    await adapter.close()


def request(cam: str) -> SnapshotRequest:
    addr, _ = DEVICES[cam]
    return SnapshotRequest(
        cam,
        addr,
        f"http://{addr}:8000/onvif/snapshot.jpg",
        None,
        network_credentials=True,
        credential_ports=frozenset({8000}),
    )


@pytest.mark.parametrize(("cam", "described"), [("pic-png", "a PNG"), ("pic-bmp", "a BMP")])
async def test_the_adapter_converts_what_the_camera_sends(
    simulator: Simulator, adapter: CameraNetworkAdapter, cam: str, described: str
) -> None:
    result = await adapter.snapshot(request(cam))
    kind = f"image/{cam[4:]}"
    assert (result.source, result.note) == ("camera-http", f"converted from {kind}")
    assert result.attempts == (
        f"camera HTTP snapshot: {described} of 1280x720 pixels, converted to JPEG",
    )
    img = cv2.imdecode(np.frombuffer(result.jpeg, np.uint8), cv2.IMREAD_COLOR)
    marker = read_marker(img)
    assert marker is not None and marker.camera_hash == camera_hash(cam)


async def test_the_adapter_names_an_unusable_answer_when_nothing_else_is_left(
    simulator: Simulator, adapter: CameraNetworkAdapter
) -> None:
    with pytest.raises(NotAPicture) as caught:
        await adapter.snapshot(request("pic-html"))
    assert str(caught.value) == "an HTML page, not a picture"
    assert len(adapter.unusable_http) == 0  # no stream to go to instead: nothing remembered
    with pytest.raises(ImageTooLarge) as bomb:
        await adapter.snapshot(request("pic-bomb"))
    assert str(bomb.value) == f"a picture of 100000x100000 pixels, {LIMIT}"
