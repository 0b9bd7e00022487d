"""Fleets as towns have them, through the API: an NVR of 16 channels and an encoder of 4 on one
address each, two devices behind one address on different ports (port forwards), a device
replaced by another at the same address, and what discovery leaves aside, counted with why.

A camera is a video source of a device: identified by (device identity, channel), where the
device's identity is its endpoint reference, else serial and MAC, else address and port
(docs/discovery.md). Addresses: 127.1.230.0/26.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from adapters.simulator.devices import Quirks, SimDevice
from adapters.simulator.fleet import FleetCamera
from adapters.simulator.server import Simulator, build_devices
from gateway.keys import DISCOVERY
from gateway.settings import Settings
from gateway.vault import CredentialVault
from tests.gateway.test_discovery_api import (
    PASSWORDS,
    Factory,
    Gateway,
    gateway,
    passwords,
    sim_settings,
)

__all__ = ["passwords"]  # the fixture (autouse) that sets the networks' password variables

Json = dict[str, Any]
BASE = "127.1.230"


def device(name: str, last: int, **kw: Any) -> SimDevice:
    camera = FleetCamera(
        id=f"governance-{name}",
        network="governance",
        category="sharp-eyes",
        name=name,
        address=f"{BASE}.{last}",
        lat=31.08,
        lon=121.3,
        place="Test Rd, Dongjing",
    )
    [built] = build_devices([camera], PASSWORDS, quirks_for=lambda c: Quirks())
    return replace(built, **kw)


def settings_for(settings: Settings, static: tuple[str, ...] = ()) -> Settings:
    s = sim_settings(settings, {"governance": f"{BASE}.0/26"})
    nets = tuple(
        n.model_copy(update={"discovery": n.discovery.model_copy(update={"static_hosts": static})})
        if n.id == "governance"
        else n
        for n in s.networks
    )
    return s.model_copy(update={"networks": nets})


async def all_cameras(gw: Gateway) -> list[Json]:
    body = await gw.get("/api/v1/cameras?network=governance&limit=500")
    return list(body["items"])


@pytest.fixture
async def town(
    aiohttp_client: Factory, settings: Settings, vault: CredentialVault
) -> AsyncIterator[tuple[Gateway, dict[str, SimDevice]]]:
    devices = {
        "nvr": device("nvr", 1, channels=16, model="SIM-NVR-16"),
        "encoder": device("encoder", 2, channels=4, model="SIM-ENC-4"),
        "camera": device("camera", 3),
        "fwd-a": device("fwd-a", 4),
        "fwd-b": replace(device("fwd-b", 4), port=8001),
    }
    # fwd-b shares fwd-a's address; behind a NAT only the static list names it
    static = (f"{BASE}.4:8001",)
    async with (
        Simulator(list(devices.values()), answer_delay_s=0.005, serve_rtsp=False),
        gateway(aiohttp_client, settings_for(settings, static), vault) as gw,
    ):
        yield gw, devices


async def test_an_nvr_is_a_camera_per_channel_and_shared_addresses_are_kept_apart(
    town: tuple[Gateway, dict[str, SimDevice]],
) -> None:
    gw, devices = town
    job = await gw.discover("governance")
    assert job["state"] == "done", job
    assert job["failures"] == []
    # Devices found: the NVR, the encoder, the camera and the two devices behind one address.
    assert job["progress"]["found"] == 5
    assert job["progress"]["enriched"] == 16 + 4 + 1 + 2
    cams = await all_cameras(gw)
    assert len(cams) == 23 and len({c["id"] for c in cams}) == 23
    nvr = [c for c in cams if c["address"] == devices["nvr"].address]
    assert len(nvr) == 16
    assert sorted(c["channel"]["index"] for c in nvr) == list(range(1, 17))
    assert {c["channel"]["of"] for c in nvr} == {16}
    assert {c["channel"]["token"] for c in nvr} == {f"VideoSource_{i}" for i in range(1, 17)}
    ch5 = next(c for c in nvr if c["channel"]["index"] == 5)
    assert [p["token"] for p in ch5["profiles"]] == ["Profile_501", "Profile_502"]
    assert {p["source"] for p in ch5["profiles"]} == {"VideoSource_5"}
    assert ch5["snapshot_uri"] == f"http://{devices['nvr'].address}:8000/onvif/snapshot/5.jpg"
    assert ch5["name"] == "governance-nvr VideoSource_5"  # the device's name, the channel
    assert ch5["serial"] == devices["nvr"].serial and ch5["device"]["port"] == 8000
    encoder = [c for c in cams if c["address"] == devices["encoder"].address]
    assert sorted(c["channel"]["index"] for c in encoder) == [1, 2, 3, 4]
    [single] = [c for c in cams if c["address"] == devices["camera"].address]
    assert single["channel"] is None  # a device of one source is one camera, as always
    behind = {c["device"]["port"]: c for c in cams if c["address"] == devices["fwd-a"].address}
    assert set(behind) == {8000, 8001}
    assert behind[8000]["serial"] == devices["fwd-a"].serial
    assert behind[8001]["serial"] == devices["fwd-b"].serial

    # Again: the same cameras, the same ids, nothing duplicated.
    again = await gw.discover("governance")
    assert again["progress"]["enriched"] == 23
    assert {c["id"] for c in await all_cameras(gw)} == {c["id"] for c in cams}


async def test_each_channel_has_its_own_picture_and_status(
    town: tuple[Gateway, dict[str, SimDevice]],
) -> None:
    gw, devices = town
    await gw.discover("governance")
    nvr = sorted(
        (c for c in await all_cameras(gw) if c["address"] == devices["nvr"].address),
        key=lambda c: c["channel"]["index"],
    )
    pictures = []
    for cam in nvr[:2]:
        resp = await gw.client.get(f"/api/v1/cameras/{cam['id']}/snapshot", headers=gw.auth)
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"] == "image/jpeg"
        pictures.append(await resp.read())
    assert pictures[0] != pictures[1]  # each channel's own picture
    service = gw.client.app[DISCOVERY]
    devices["nvr"].quirks.offline = True
    for _ in range(2):  # two lost probes: offline (one is not an outage)
        await service.health_round("governance")
    statuses = {c["id"]: c["status"] for c in await all_cameras(gw)}
    assert {statuses[c["id"]] for c in nvr} == {"offline"}
    single = [c for c in await all_cameras(gw) if c["address"] == devices["camera"].address]
    assert single[0]["status"] == "online"


async def test_a_device_replacing_another_at_its_address_is_a_new_camera(
    aiohttp_client: Factory, settings: Settings, vault: CredentialVault
) -> None:
    old = device("old-camera", 10)
    new = replace(device("new-camera", 10), model="SIM-IPC-4MP")  # another identity, same place
    s = settings_for(settings)
    async with gateway(aiohttp_client, s, vault) as gw:
        async with Simulator([old], answer_delay_s=0.005, serve_rtsp=False):
            await gw.discover("governance")
        [before] = await all_cameras(gw)
        patched = await gw.client.patch(
            f"/api/v1/cameras/{before['id']}", json={"name": "Gate 3"}, headers=gw.auth
        )
        assert patched.status == 200, await patched.text()
        async with Simulator([new], answer_delay_s=0.005, serve_rtsp=False):
            job = await gw.discover("governance")
        assert job["state"] == "done" and job["failures"] == []
        cams = {c["id"]: c for c in await all_cameras(gw)}
        assert len(cams) == 2
        kept = cams[before["id"]]
        assert kept["name"] == "Gate 3" and kept["serial"] == old.serial  # history kept
        assert kept["status"] == "offline"
        [successor] = [c for c in cams.values() if c["id"] != before["id"]]
        assert successor["serial"] == new.serial and successor["model"] == "SIM-IPC-4MP"
        assert successor["name"] != "Gate 3"
        assert kept["last_error"] == (
            f"no longer answering at its address: another device (camera {successor['id']}) does"
        )


async def test_what_discovery_leaves_aside_is_counted_with_why(
    aiohttp_client: Factory, settings: Settings, vault: CredentialVault
) -> None:
    cam = device("listed", 20)
    static = (f"{BASE}.20:8000", f"{BASE}.20:8000", "127.9.9.9:8000")
    s = settings_for(settings, static)
    async with (
        Simulator([cam], answer_delay_s=0.005, serve_rtsp=False),
        gateway(aiohttp_client, s, vault) as gw,
    ):
        job = await gw.discover("governance")
    assert job["state"] == "done"
    progress = job["progress"]
    assert progress["ignored_by_reason"] == {
        "outside the network's CIDRs": 1,
        "listed twice (same address and port, or same stream)": 1,
    }
    assert progress["ignored"] == 2 and progress["enriched"] == 1


@pytest.mark.parametrize("call", ["GetServices", "GetNetworkInterfaces", "GetDeviceInformation"])
async def test_a_call_answered_with_broken_xml_is_on_the_cameras_record(
    aiohttp_client: Factory, settings: Settings, vault: CredentialVault, call: str
) -> None:
    cam = device("broken-call", 30)
    cam.quirks.malformed_call = call
    async with (
        Simulator([cam], answer_delay_s=0.005, serve_rtsp=False),
        gateway(aiohttp_client, settings_for(settings), vault) as gw,
    ):
        job = await gw.discover("governance")
        assert job["state"] == "done" and job["failures"] == []  # the camera is still read
        [record] = await all_cameras(gw)
    [note] = [n for n in record["notes"] if n.startswith(f"{call} unusable: ")]
    assert note.startswith(f"{call} unusable: XMLSyntaxError: "), note
