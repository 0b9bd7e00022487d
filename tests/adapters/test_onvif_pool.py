"""OnvifClient under load: waiting for our own connection pool is not the camera's fault.

Found by bench/discovery.py (3,308 simulated cameras): aiohttp's `connect` timeout also covers
the wait for a free pool slot, so with 128 cameras in flight (up to 4 requests each) healthy
cameras failed discovery with ConnectionTimeoutError. The connect timeout now bounds the TCP
connect only; a pool wait is bounded by the request's total timeout.
"""

from __future__ import annotations

from adapters.base import Target
from adapters.onvif import OnvifClient
from adapters.simulator.devices import ONVIF_PORT
from adapters.simulator.fleet import FleetCamera
from adapters.simulator.server import Simulator, build_devices
from adapters.uris import UriCredentials

PASSWORD = "pool-test-pw-5Rt"


async def test_a_wait_for_the_pool_is_not_a_connect_timeout() -> None:
    camera = FleetCamera(
        id="pool-cam",
        network="governance",
        category="sharp-eyes",
        name="pool-cam",
        address="127.1.220.1",
        lat=31.08,
        lon=121.3,
        place="Test Rd",
    )
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
