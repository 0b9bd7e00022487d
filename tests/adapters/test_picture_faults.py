"""The simulator's picture faults, served over its snapshot URL (digest auth, loopback) and
diagnosed as the gateway will: each fault switched on shows as its check, switched off the
camera is clean again, and a frozen camera repeats its picture byte for byte."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import aiohttp
import cv2
import numpy as np
import pytest
from aiohttp import DigestAuthMiddleware

from adapters.quality.checks import Check, Reference, Signature, make_reference
from adapters.quality.diagnose import diagnose
from adapters.quality.frame import prepare
from adapters.quality.thresholds import QualityConfig
from adapters.simulator.devices import ONVIF_PORT, Picture, Quirks, SimDevice
from adapters.simulator.faults import Fault, PictureFault
from adapters.simulator.fleet import FleetCamera
from adapters.simulator.labelled import EXPECTED
from adapters.simulator.scene import Period
from adapters.simulator.server import Simulator
from adapters.simulator.snapshot import camera_hash, read_marker

PASSWORD = "picture-pass"
CONFIG = QualityConfig()


@pytest.fixture(scope="module")
async def sim() -> AsyncIterator[Simulator]:
    camera = FleetCamera(
        id="pictures-1",
        network="governance",
        category="sharp-eyes",
        name="Picture Rd #1",
        address="127.15.0.10",
        lat=31.08,
        lon=121.3,
        place="Picture Rd, Dongjing",
    )
    device = SimDevice(camera=camera, password=PASSWORD, quirks=Quirks(picture=Picture()))
    async with Simulator([device], answer_delay_s=0.0, serve_rtsp=False) as simulator:
        yield simulator


async def _fetch(device: SimDevice) -> tuple[bytes, np.ndarray]:
    url = f"http://{device.address}:{ONVIF_PORT}{device.snapshot_path}"
    auth = DigestAuthMiddleware(device.username, PASSWORD)
    async with (
        aiohttp.ClientSession(middlewares=(auth,)) as session,
        session.get(url) as response,
    ):
        assert response.status == 200
        assert response.content_type == "image/jpeg"
        body = await response.read()
    frame = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert frame is not None and frame.shape == (720, 1280, 3)
    return body, np.asarray(frame, np.uint8)


async def _failing(device: SimDevice, reference: Reference, previous: Signature) -> list[Check]:
    _, frame = await _fetch(device)
    period = device.quirks.picture.period if device.quirks.picture else Period.day
    thresholds = CONFIG.night if period is Period.night else CONFIG.day
    diagnosis, _ = diagnose(
        frame, thresholds, reference=reference, previous=previous, taken_at=60.0
    )
    return diagnosis.failing


@pytest.mark.parametrize("period", list(Period))
async def test_each_fault_switched_on_shows_and_switched_off_clears(
    sim: Simulator, period: Period
) -> None:
    device = sim.device("pictures-1")
    device.quirks.picture = Picture(period=period)
    _, clean = await _fetch(device)
    reference = make_reference(prepare(clean))  # the admin accepts today's picture
    _, previous = diagnose(clean, CONFIG.day, taken_at=0.0)
    seen = {}
    for fault in Fault:
        if fault is Fault.freeze:
            continue  # a sequence, not a picture: the next test
        device.quirks.picture = Picture(period, PictureFault(fault, strength=0.5, seed=3))
        seen[fault.value] = [c.value for c in await _failing(device, reference, previous)]
        device.quirks.picture = Picture(period)  # switched off again
        assert await _failing(device, reference, previous) == [], f"after {fault.value}"
    assert seen == {f.value: [EXPECTED[f]] for f in Fault if f is not Fault.freeze}


async def test_a_frozen_camera_repeats_its_picture_and_a_live_one_never_does(
    sim: Simulator,
) -> None:
    device = sim.device("pictures-1")
    device.quirks.picture = Picture(Period.day)
    live = [await _fetch(device) for _ in range(2)]
    assert live[0][0] != live[1][0]  # a static street, but live sensor noise
    device.quirks.picture = Picture(Period.day, PictureFault(Fault.freeze))
    frozen = [await _fetch(device) for _ in range(2)]
    assert frozen[0][0] == frozen[1][0]

    def frozen_level(pair: list[tuple[bytes, np.ndarray]]) -> str:
        _, first = diagnose(pair[0][1], CONFIG.day, taken_at=0.0)
        second, _ = diagnose(pair[1][1], CONFIG.day, previous=first, taken_at=30.0)
        return second.result(Check.frozen).level.value

    assert (frozen_level(live), frozen_level(frozen)) == ("ok", "faulty")
    device.quirks.picture = Picture(Period.day)


async def test_the_stock_marker_frame_is_unchanged_without_a_picture_quirk(
    sim: Simulator,
) -> None:
    """Cameras without `Quirks.picture` still send the marker frame other tests read."""
    device = sim.device("pictures-1")
    device.quirks.picture = None
    before = dt.datetime.now(dt.UTC)
    _, frame = await _fetch(device)
    marker = read_marker(frame)
    assert marker is not None and marker.camera_hash == camera_hash(device.camera.id)
    assert marker.captured_at >= int(before.timestamp())
    device.quirks.picture = Picture()
