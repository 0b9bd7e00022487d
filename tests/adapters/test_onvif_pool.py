"""OnvifClient under load: waiting for our own connection pool is not the camera's fault.

Found by bench/discovery.py (3,308 simulated cameras): aiohttp's `connect` timeout also covers
the wait for a free pool slot, so with 128 cameras in flight (up to 4 requests each) healthy
cameras failed discovery with ConnectionTimeoutError. The connect timeout now bounds the TCP
connect only; a pool wait is bounded by the request's total timeout.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from adapters.base import Target
from adapters.onvif import OnvifClient, extra_budget_s
from adapters.simulator.devices import ONVIF_PORT
from adapters.simulator.fleet import FleetCamera
from adapters.simulator.server import Simulator, build_devices
from adapters.uris import UriCredentials

PASSWORD = "pool-test-pw-5Rt"


def fleet_camera(name: str, address: str) -> FleetCamera:
    return FleetCamera(
        id=name,
        network="governance",
        category="sharp-eyes",
        name=name,
        address=address,
        lat=31.08,
        lon=121.3,
        place="Test Rd",
    )


async def test_a_wait_for_the_pool_is_not_a_connect_timeout() -> None:
    camera = fleet_camera("pool-cam", "127.1.220.1")
    devices = build_devices([camera], {"governance": PASSWORD})
    # One pooled connection: the four concurrent calls of a camera's third round queue for it,
    # each waiting longer (0.1-0.3 s) than the camera's connect timeout (0.05 s).
    client = OnvifClient(timeout_s=2.0, connect_timeout_s=0.05, pool_size=1)
    async with Simulator(devices, answer_delay_s=0.1, serve_rtsp=False), client:
        [found] = await client.enrich(
            "governance",
            Target(address=camera.address, port=ONVIF_PORT),
            UriCredentials("admin", PASSWORD),
        )
    assert found.serial and found.mac and found.services
    assert [p.stream_uri for p in found.profiles] and found.snapshot_uri


@pytest.mark.parametrize(
    ("calls", "earned"),
    [(1, 0.0), (3, 0.0), (4, 0.0), (5, 5.0), (8, 5.0), (12, 10.0), (48, 55.0)],
)
def test_a_device_earns_one_timeout_per_wave_of_media_calls_past_the_first(
    calls: int, earned: float
) -> None:
    assert extra_budget_s(calls, 5.0) == earned


async def test_an_nvr_is_not_held_to_one_cameras_budget() -> None:
    """A 16-channel NVR answering in 0.1 s needs about 15 rounds (1.5 s) for its 3 setup calls
    and 48 media calls, four at a time: more than the 0.8 s a single camera is allowed, well
    within the budget it earns for its channels."""
    [built] = build_devices([fleet_camera("nvr", "127.1.220.2")], {"governance": PASSWORD})
    nvr = replace(built, channels=16)
    client = OnvifClient(timeout_s=0.5, connect_timeout_s=0.5)
    async with Simulator([nvr], answer_delay_s=0.1, serve_rtsp=False), client:
        async with asyncio.timeout(0.8) as budget:
            start = budget.when()
            found = await client.enrich(
                "governance",
                Target(address=nvr.address, port=ONVIF_PORT),
                UriCredentials("admin", PASSWORD),
                budget,
            )
    assert len(found) == 16 and all(c.snapshot_uri and c.profiles for c in found)
    assert start is not None and budget.when() == pytest.approx(start + extra_budget_s(48, 0.5))
