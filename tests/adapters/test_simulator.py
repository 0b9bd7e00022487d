"""The camera-fleet simulator against real clients, on loopback: onvif-zeep-async, aiohttp with
digest auth, raw WS-Discovery over UDP, and a schema check of every ONVIF answer."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import cv2
import numpy as np
import onvif
import pytest
from aiohttp import DigestAuthMiddleware
from lxml import etree
from onvif import ONVIFCamera
from onvif.exceptions import ONVIFAuthError, ONVIFError
from onvif.util import is_auth_error
from zeep.exceptions import Fault

from adapters.simulator import soap
from adapters.simulator.devices import (
    DISCOVERY_PORT,
    ONVIF_PORT,
    ClockQuirk,
    HostileXml,
    Quirks,
    SimDevice,
)
from adapters.simulator.fleet import FleetCamera
from adapters.simulator.onvif_server import actual_password
from adapters.simulator.server import (
    DEMO_QUIRK_KINDS,
    Recorders,
    Simulator,
    build_devices,
    demo_quirks,
    group_devices,
)
from adapters.simulator.snapshot import camera_hash, read_marker
from adapters.simulator.wsdiscovery_responder import MULTICAST_GROUP

PASSWORD = "s3cret-pw"
TIMEOUT = 15  # onvif-zeep-async's own timeouts are 30/90 s
# A loopback /24 of our own, so parallel test runs of other suites do not collide with ours.
_NET = f"127.{200 + os.getpid() % 50}.7"

NS_WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
NS_WSD = "http://schemas.xmlsoap.org/ws/2005/04/discovery"

ROLES: dict[str, Quirks] = {
    "good": Quirks(),
    "skew": Quirks(clock_skew_s=600.0),
    "wrongpw": Quirks(wrong_password=True),
    "nosnap": Quirks(no_snapshot_uri=True),
    "snaphost": Quirks(snapshot_host="0.0.0.0"),
    "creds": Quirks(rtsp_credentials_in_uri=True),
    "hang": Quirks(hang=True),
    "flap": Quirks(),
    "slow": Quirks(extra_delay_s=0.3),
    **{f"hostile-{mode.value}": Quirks(hostile_xml=mode) for mode in HostileXml},
    "rtsponly": Quirks(),
    **{f"clock-{q.value}": Quirks(clock_quirk=q) for q in ClockQuirk},
    "info-utf8": Quirks(device_info_invalid_utf8=True),
    "deep": Quirks(deep_nesting=True),
    "string-structure": Quirks(string_for_structure=True),
}


def _camera(index: int, role: str) -> FleetCamera:
    return FleetCamera(
        id=f"test-{role}",
        network="governance",
        category="sharp-eyes",
        name=f"Test Rd #{index}",
        address=f"{_NET}.{index}",
        lat=31.08,
        lon=121.3,
        place="Test Rd, Dongjing",
    )


@pytest.fixture(scope="module")
async def sim() -> AsyncIterator[Simulator]:
    devices = [
        SimDevice(
            camera=_camera(i, role),
            password=PASSWORD,
            quirks=Quirks(**vars(quirks)),
            onvif=role != "rtsponly",
        )
        for i, (role, quirks) in enumerate(ROLES.items(), start=10)
    ]
    async with Simulator(devices, answer_delay_s=0.0) as simulator:
        yield simulator


def dev(sim: Simulator, role: str) -> SimDevice:
    return sim.device(f"test-{role}")


def camera_for(device: SimDevice, *, password: str = PASSWORD, adjust: bool = False) -> ONVIFCamera:
    return ONVIFCamera(device.address, ONVIF_PORT, device.username, password, adjust_time=adjust)


# --------------------------------------------------------------------------- raw SOAP helpers


def security_header(
    username: str,
    password: str,
    *,
    created: dt.datetime | None = None,
    nonce: bytes | None = None,
    digest: bool = True,
) -> str:
    nonce = nonce if nonce is not None else os.urandom(16)
    stamp = (created or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    if digest:
        value = soap.password_digest(nonce, stamp, password)
        ptype = soap.PASSWORD_DIGEST
    else:
        value, ptype = password, soap.PASSWORD_TEXT
    return (
        f'<wsse:Security xmlns:wsse="{soap.NS_WSSE}" xmlns:wsu="{soap.NS_WSU}">'
        f"<wsse:UsernameToken><wsse:Username>{username}</wsse:Username>"
        f'<wsse:Password Type="{ptype}">{value}</wsse:Password>'
        f"<wsse:Nonce>{base64.b64encode(nonce).decode()}</wsse:Nonce>"
        f"<wsu:Created>{stamp}</wsu:Created></wsse:UsernameToken></wsse:Security>"
    )


def soap_message(operation: str, header: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{soap.NS_ENV}"'
        f' xmlns:tds="{soap.NS_TDS}" xmlns:trt="{soap.NS_TRT}" xmlns:tt="{soap.NS_TT}">'
        f"<s:Header>{header}</s:Header><s:Body>{operation}</s:Body></s:Envelope>"
    ).encode()


async def post_soap(
    session: aiohttp.ClientSession, device: SimDevice, path: str, message: bytes
) -> tuple[int, bytes]:
    url = f"http://{device.address}:{ONVIF_PORT}{path}"
    async with session.post(
        url, data=message, headers={"Content-Type": "application/soap+xml; charset=utf-8"}
    ) as response:
        return response.status, await response.read()


def parse_answer(data: bytes) -> etree._Element:
    root = soap.safe_fromstring(data, 10_000_000)
    body = root.find(f"{{{soap.NS_ENV}}}Body")
    assert body is not None
    return body[0]


def fault_subcodes(answer: etree._Element) -> list[str]:
    assert etree.QName(answer).localname == "Fault"
    return [str(v.text) for v in answer.iter(f"{{{soap.NS_ENV}}}Value")]


def subcode_names(fault: Fault) -> list[str]:
    return [etree.QName(code).localname for code in fault.subcodes or []]


@pytest.fixture(scope="module")
def schemas() -> dict[str, etree.XMLSchema]:
    """The ONVIF schemas shipped with onvif-zeep-async: the device and media WSDL types."""
    wsdl_dir = Path(onvif.__file__).parent / "wsdl"
    result = {}
    for namespace, name in ((soap.NS_TDS, "devicemgmt.wsdl"), (soap.NS_TRT, "media.wsdl")):
        parser = etree.XMLParser(no_network=True, resolve_entities=False)
        wsdl = etree.parse(str(wsdl_dir / name), parser)
        schema_el = wsdl.find(".//{http://www.w3.org/2001/XMLSchema}schema")
        assert schema_el is not None
        tree = etree.fromstring(etree.tostring(schema_el), parser, base_url=str(wsdl_dir / name))
        result[namespace] = etree.XMLSchema(tree)
    return result


@pytest.fixture(scope="module")
def discovery_schema() -> etree.XMLSchema:
    """WS-Discovery 2005/04, as bundled with onvif-zeep-async (its addressing import made local)."""
    wsdl_dir = Path(onvif.__file__).parent / "wsdl"
    source = (wsdl_dir / "ws-discovery.xsd").read_bytes()
    source = source.replace(
        b'schemaLocation="http://schemas.xmlsoap.org/ws/2004/08/addressing"',
        b'schemaLocation="./addressing"',
    )
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    base = str(wsdl_dir / "ws-discovery.xsd")
    return etree.XMLSchema(etree.fromstring(source, parser, base_url=base))


# --------------------------------------------------------------------------- ONVIF


async def test_onvif_client_enriches_a_camera(sim: Simulator) -> None:
    device = dev(sim, "good")
    camera = camera_for(device)
    try:
        async with asyncio.timeout(TIMEOUT):
            await camera.update_xaddrs()
            assert camera.xaddrs[soap.NS_TRT] == device.media_uri
            devicemgmt = await camera.create_devicemgmt_service()
            info = await devicemgmt.GetDeviceInformation()
            assert (info.Manufacturer, info.Model, info.FirmwareVersion) == (
                device.vendor,
                device.model,
                device.firmware,
            )
            assert info.SerialNumber == device.serial
            assert info.HardwareId == soap.hardware_id(device)
            interfaces = await devicemgmt.GetNetworkInterfaces()
            assert interfaces[0].Info.HwAddress == device.mac
            assert interfaces[0].IPv4.Config.Manual[0].Address == device.address
            services = await devicemgmt.GetServices({"IncludeCapability": True})
            assert {s.Namespace for s in services} == {soap.NS_TDS, soap.NS_TRT}
            capabilities = await camera.get_capabilities()
            assert capabilities is not None
            assert capabilities["Media"]["XAddr"] == device.media_uri
            assert capabilities["PTZ"] is None

            media = await camera.create_media_service()
            profiles = await media.GetProfiles()
            assert [
                (
                    p.VideoEncoderConfiguration.Encoding,
                    p.VideoEncoderConfiguration.Resolution.Width,
                    p.VideoEncoderConfiguration.Resolution.Height,
                    p.VideoEncoderConfiguration.RateControl.FrameRateLimit,
                )
                for p in profiles
            ] == [("H264", 1920, 1080, 25), ("H264", 640, 360, 15)]
            for profile in profiles:
                uri = await media.GetStreamUri(
                    {
                        "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
                        "ProfileToken": profile.token,
                    }
                )
                assert uri.Uri == device.stream_uri
                snapshot_uri = await camera.get_snapshot_uri(profile.token)
                assert snapshot_uri == f"http://{device.address}:{ONVIF_PORT}/onvif/snapshot.jpg"
            jpeg = await camera.get_snapshot(profiles[0].token)  # the library's own digest auth
            assert jpeg is not None and jpeg[:2] == b"\xff\xd8"
    finally:
        await camera.close()


async def test_every_answer_is_valid_against_the_onvif_schemas(
    sim: Simulator, schemas: dict[str, etree.XMLSchema]
) -> None:
    device = dev(sim, "good")
    requests = [
        (soap.DEVICE_SERVICE_PATH, "<tds:GetSystemDateAndTime/>"),
        (
            soap.DEVICE_SERVICE_PATH,
            "<tds:GetCapabilities><tds:Category>All</tds:Category></tds:GetCapabilities>",
        ),
        (
            soap.DEVICE_SERVICE_PATH,
            "<tds:GetServices><tds:IncludeCapability>true"
            "</tds:IncludeCapability></tds:GetServices>",
        ),
        (
            soap.DEVICE_SERVICE_PATH,
            "<tds:GetServices><tds:IncludeCapability>false"
            "</tds:IncludeCapability></tds:GetServices>",
        ),
        (soap.DEVICE_SERVICE_PATH, "<tds:GetDeviceInformation/>"),
        (soap.DEVICE_SERVICE_PATH, "<tds:GetNetworkInterfaces/>"),
        (soap.MEDIA_SERVICE_PATH, "<trt:GetProfiles/>"),
        (
            soap.MEDIA_SERVICE_PATH,
            "<trt:GetStreamUri><trt:StreamSetup><tt:Stream>RTP-Unicast"
            "</tt:Stream><tt:Transport><tt:Protocol>RTSP</tt:Protocol></tt:Transport>"
            "</trt:StreamSetup><trt:ProfileToken>Profile_2</trt:ProfileToken></trt:GetStreamUri>",
        ),
        (
            soap.MEDIA_SERVICE_PATH,
            "<trt:GetSnapshotUri><trt:ProfileToken>Profile_1"
            "</trt:ProfileToken></trt:GetSnapshotUri>",
        ),
    ]
    async with aiohttp.ClientSession() as session:
        for path, operation in requests:
            header = security_header(device.username, PASSWORD)
            status, data = await post_soap(session, device, path, soap_message(operation, header))
            assert status == 200, data
            answer = parse_answer(data)
            namespace = etree.QName(answer).namespace
            assert namespace is not None
            schema = schemas[namespace]
            document = etree.fromstring(etree.tostring(answer))
            assert schema.validate(document), (operation, schema.error_log)


async def test_wrong_password_is_rejected_as_cameras_do(sim: Simulator) -> None:
    device = dev(sim, "wrongpw")  # its real password is not the one on file
    camera = camera_for(device, password=device.password)
    try:
        async with asyncio.timeout(TIMEOUT):
            with pytest.raises((ONVIFAuthError, ONVIFError, Fault)) as caught:
                await camera.update_xaddrs()
            assert isinstance(caught.value, Fault) and is_auth_error(caught.value)
    finally:
        await camera.close()
    right = camera_for(device, password=actual_password(device))
    try:
        async with asyncio.timeout(TIMEOUT):
            await right.update_xaddrs()
    finally:
        await right.close()

    async with aiohttp.ClientSession() as session:
        header = security_header(device.username, device.password)
        message = soap_message("<tds:GetDeviceInformation/>", header)
        status, data = await post_soap(session, device, soap.DEVICE_SERVICE_PATH, message)
    assert status == 400
    assert fault_subcodes(parse_answer(data)) == ["env:Sender", "ter:NotAuthorized"]


async def test_skewed_clock_needs_adjust_time(sim: Simulator) -> None:
    device = dev(sim, "skew")
    naive = camera_for(device)
    try:
        async with asyncio.timeout(TIMEOUT):
            devicemgmt = await naive.create_devicemgmt_service()
            clock = (await devicemgmt.GetSystemDateAndTime()).UTCDateTime  # no auth needed
            reported = dt.datetime(
                clock.Date.Year,
                clock.Date.Month,
                clock.Date.Day,
                clock.Time.Hour,
                clock.Time.Minute,
                clock.Time.Second,
                tzinfo=dt.UTC,
            )
            offset = (reported - dt.datetime.now(dt.UTC)).total_seconds()
            assert abs(offset - device.quirks.clock_skew_s) < 3
            with pytest.raises(Fault) as caught:
                await naive.update_xaddrs()
            assert is_auth_error(caught.value)
    finally:
        await naive.close()
    adjusted = camera_for(device, adjust=True)
    try:
        async with asyncio.timeout(TIMEOUT):
            await adjusted.update_xaddrs()
            devicemgmt = await adjusted.create_devicemgmt_service()
            assert (await devicemgmt.GetDeviceInformation()).SerialNumber == device.serial
    finally:
        await adjusted.close()


async def test_ws_security_nonce_created_and_type_are_enforced(sim: Simulator) -> None:
    device = dev(sim, "good")
    operation = "<tds:GetDeviceInformation/>"
    path = soap.DEVICE_SERVICE_PATH
    async with aiohttp.ClientSession() as session:
        header = security_header(device.username, PASSWORD)
        assert (await post_soap(session, device, path, soap_message(operation, header)))[0] == 200
        replay = await post_soap(session, device, path, soap_message(operation, header))
        assert replay[0] == 400, "a replayed nonce must be refused"
        stale = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=6)
        header = security_header(device.username, PASSWORD, created=stale)
        assert (await post_soap(session, device, path, soap_message(operation, header)))[0] == 400
        future = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=4)
        header = security_header(device.username, PASSWORD, created=future)
        assert (await post_soap(session, device, path, soap_message(operation, header)))[0] == 200
        header = security_header(device.username, PASSWORD, digest=False)
        assert (await post_soap(session, device, path, soap_message(operation, header)))[0] == 400
        header = security_header("intruder", PASSWORD)
        assert (await post_soap(session, device, path, soap_message(operation, header)))[0] == 400
        status, _ = await post_soap(session, device, path, soap_message(operation))
        assert status == 400
        # what a request carries is parsed safely: a DTD is refused before anything else
        evil = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]>' + soap_message(operation)[38:]
        status, data = await post_soap(session, device, path, evil)
        assert status == 400 and "ter:WellFormed" in fault_subcodes(parse_answer(data))
        status, _ = await post_soap(session, device, path, b"<x>" * 30_000)
        assert status == 413


async def test_unknown_operation_and_missing_snapshot_uri_fault(sim: Simulator) -> None:
    device = dev(sim, "nosnap")
    camera = camera_for(device)
    try:
        async with asyncio.timeout(TIMEOUT):
            await camera.update_xaddrs()
            devicemgmt = await camera.create_devicemgmt_service()
            with pytest.raises(Fault) as caught:
                await devicemgmt.GetHostname()
            assert "ActionNotSupported" in subcode_names(caught.value)
            media = await camera.create_media_service()
            with pytest.raises(Fault) as caught:
                await media.GetSnapshotUri({"ProfileToken": "Profile_1"})
            assert "ActionNotSupported" in subcode_names(caught.value)
            assert await camera.get_snapshot_uri("Profile_1") is None
            with pytest.raises(Fault) as caught:
                await media.GetStreamUri(
                    {
                        "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
                        "ProfileToken": "nope",
                    }
                )
            assert subcode_names(caught.value) == ["InvalidArgVal", "NoProfile"]
    finally:
        await camera.close()


async def test_uri_quirks(sim: Simulator) -> None:
    snaphost, creds = dev(sim, "snaphost"), dev(sim, "creds")
    for device in (snaphost, creds):
        camera = camera_for(device)
        try:
            async with asyncio.timeout(TIMEOUT):
                await camera.update_xaddrs()
                media = await camera.create_media_service()
                snapshot = await camera.get_snapshot_uri("Profile_1")
                stream = await media.GetStreamUri(
                    {
                        "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
                        "ProfileToken": "Profile_1",
                    }
                )
        finally:
            await camera.close()
        if device is snaphost:
            assert snapshot == f"http://0.0.0.0:{ONVIF_PORT}/onvif/snapshot.jpg"
            assert stream.Uri == device.stream_uri
        else:
            assert stream.Uri == device.stream_uri.replace(
                "rtsp://", f"rtsp://{device.username}:{PASSWORD}@"
            )


async def test_slow_and_hanging_cameras(sim: Simulator) -> None:
    slow, hang, good = dev(sim, "slow"), dev(sim, "hang"), dev(sim, "good")
    message = soap_message("<tds:GetSystemDateAndTime/>")
    async with aiohttp.ClientSession() as session:
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert (await post_soap(session, slow, soap.DEVICE_SERVICE_PATH, message))[0] == 200
        assert loop.time() - started >= slow.quirks.extra_delay_s

        async def hung() -> None:
            async with asyncio.timeout(0.5):
                await post_soap(session, hang, soap.DEVICE_SERVICE_PATH, message)

        pending = asyncio.create_task(hung())
        # the hanging camera costs nobody else anything
        assert (await post_soap(session, good, soap.DEVICE_SERVICE_PATH, message))[0] == 200
        with pytest.raises(TimeoutError):
            await pending


@pytest.mark.parametrize("mode", list(HostileXml))
async def test_hostile_xml_is_served(sim: Simulator, mode: HostileXml) -> None:
    device = dev(sim, f"hostile-{mode.value}")
    message = soap_message("<tds:GetDeviceInformation/>")
    url = f"http://{device.address}:{ONVIF_PORT}{soap.DEVICE_SERVICE_PATH}"
    async with aiohttp.ClientSession() as session, session.post(url, data=message) as response:
        assert response.status == 200
        if mode is HostileXml.huge:
            assert response.content_length is None  # chunked: no length to trust up front
            total = 0
            async for chunk in response.content.iter_chunked(1 << 20):
                total += len(chunk)
            assert total >= 50 * 1024 * 1024
            return
        body = await response.read()
    if mode is HostileXml.billion_laughs:
        assert b'<!ENTITY lol9 "&lol8;' in body and b"&lol9;" in body
    elif mode is HostileXml.external_entity:
        assert b'SYSTEM "file:///etc/passwd"' in body and b"&xxe;" in body
    with pytest.raises(ValueError):
        soap.safe_fromstring(body, 1_000_000)
    # and the ONVIF client gives up on it instead of expanding it
    camera = camera_for(device)
    try:
        async with asyncio.timeout(TIMEOUT):
            devicemgmt = await camera.create_devicemgmt_service()
            with pytest.raises(Exception) as caught:
                await devicemgmt.GetDeviceInformation()
            assert not isinstance(caught.value, TimeoutError)
    finally:
        await camera.close()


# --------------------------------------------------------------------------- impossible answers


async def soap_answer(device: SimDevice, path: str, operation: str) -> tuple[int, bytes]:
    header = security_header(device.username, PASSWORD)
    async with aiohttp.ClientSession() as session:
        return await post_soap(session, device, path, soap_message(operation, header))


def leaf(answer: etree._Element, path: str) -> str | None:
    """The text at `path` ("UTCDateTime/Date/Month") under the answer's SystemDateAndTime."""
    steps = "/".join(f"{{{soap.NS_TT}}}{step}" for step in path.split("/"))
    found = answer.find(f"{{{soap.NS_TDS}}}SystemDateAndTime/{steps}")
    return None if found is None else (found.text or "")


@pytest.mark.parametrize(
    ("quirk", "valid", "expected"),
    [
        (ClockQuirk.month_13, True,
         {"UTCDateTime/Date/Month": "13", "LocalDateTime/Date/Month": "13"}),
        (ClockQuirk.no_date_element, False,
         {"UTCDateTime/Date": None, "LocalDateTime/Date": None}),
        (ClockQuirk.string_for_date, False,
         {"UTCDateTime/Date/Year": None, "LocalDateTime/Date/Year": None}),
        (ClockQuirk.no_utc_datetime, True, {"UTCDateTime": None, "TimeZone/TZ": "CST-8"}),
    ],
)  # fmt: skip
async def test_impossible_clocks_are_served(
    sim: Simulator,
    schemas: dict[str, etree.XMLSchema],
    quirk: ClockQuirk,
    valid: bool,
    expected: dict[str, str | None],
) -> None:
    device = dev(sim, f"clock-{quirk.value}")
    status, data = await soap_answer(
        device, soap.DEVICE_SERVICE_PATH, "<tds:GetSystemDateAndTime/>"
    )
    assert status == 200
    answer = parse_answer(data)
    assert {path: leaf(answer, path) for path in expected} == expected
    if quirk is not ClockQuirk.no_utc_datetime:
        assert (leaf(answer, "UTCDateTime/Time/Hour") or "").isdigit()
    if quirk is ClockQuirk.string_for_date:  # <tt:Date>2024-05-06</tt:Date>
        assert dt.date.fromisoformat(leaf(answer, "UTCDateTime/Date") or "")
    # Month 13 and a missing UTCDateTime are valid against the ONVIF schema (Month is an
    # xs:int, UTCDateTime optional): a client must cope with them. The other two are not.
    document = etree.fromstring(etree.tostring(answer))
    assert schemas[soap.NS_TDS].validate(document) is valid
    if quirk is ClockQuirk.no_utc_datetime:  # LocalDateTime is UTC+8, as POSIX "CST-8" says
        fields = ("Date/Year", "Date/Month", "Date/Day", "Time/Hour", "Time/Minute", "Time/Second")
        year, month, day, hour, minute, second = (
            int(leaf(answer, f"LocalDateTime/{f}") or 0) for f in fields
        )
        local = dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)
        utc = local - dt.timedelta(hours=8)
        assert abs((utc - dt.datetime.now(dt.UTC)).total_seconds()) < 3


async def test_device_information_in_invalid_utf8_is_served(sim: Simulator) -> None:
    device = dev(sim, "info-utf8")
    status, data = await soap_answer(
        device, soap.DEVICE_SERVICE_PATH, "<tds:GetDeviceInformation/>"
    )
    assert status == 200
    vendor = "海康威视 ".encode("gb18030")  # a legacy encoding in an answer declared UTF-8
    assert b"<tds:Manufacturer>" + vendor + device.vendor.encode() in data
    with pytest.raises(UnicodeDecodeError):
        data.decode()
    with pytest.raises(ValueError, match="not well-formed XML"):
        soap.safe_fromstring(data, 1_000_000)
    # Every other answer of that camera is fine.
    status, data = await soap_answer(device, soap.MEDIA_SERVICE_PATH, "<trt:GetProfiles/>")
    assert status == 200 and len(parse_answer(data)) == 2


async def test_deep_nesting_is_served(sim: Simulator) -> None:
    device = dev(sim, "deep")
    status, data = await soap_answer(device, soap.MEDIA_SERVICE_PATH, "<trt:GetProfiles/>")
    assert status == 200
    depth = soap.DEEP_NESTING_DEPTH
    assert depth == 100_000 and b"<x>" * depth + b"</x>" * depth in data
    assert len(data) < 1 << 20  # under a client's 1 MiB answer cap: its parser must refuse it
    with pytest.raises(ValueError, match="Excessive depth in document: 256"):
        soap.safe_fromstring(data, 1 << 20)
    # What a recovering parser (zeep's, with strict=False) makes of it: a silently cut answer,
    # the second profile gone.
    cut = etree.fromstring(data, etree.XMLParser(recover=True, huge_tree=False))
    assert len(cut.findall(f".//{{{soap.NS_TRT}}}Profiles")) == 1


async def test_text_where_a_structure_belongs_is_served(
    sim: Simulator, schemas: dict[str, etree.XMLSchema]
) -> None:
    device = dev(sim, "string-structure")
    status, data = await soap_answer(device, soap.MEDIA_SERVICE_PATH, "<trt:GetProfiles/>")
    assert status == 200
    answer = parse_answer(data)
    resolutions = answer.findall(f".//{{{soap.NS_TT}}}Resolution")
    assert [(r.text, len(r)) for r in resolutions] == [("1920x1080", 0), ("640x360", 0)]
    assert not schemas[soap.NS_TRT].validate(etree.fromstring(etree.tostring(answer)))


# --------------------------------------------------------------------------- snapshots


def snapshot_url(device: SimDevice) -> str:
    return f"http://{device.address}:{ONVIF_PORT}{device.snapshot_path}"


async def test_snapshot_with_digest_auth(sim: Simulator) -> None:
    device = dev(sim, "good")
    middleware = DigestAuthMiddleware(device.username, PASSWORD)
    async with aiohttp.ClientSession(middlewares=(middleware,)) as session:
        for _ in range(2):  # the second request reuses the nonce with nc=2 (preemptive)
            before = dt.datetime.now(dt.UTC)
            async with session.get(snapshot_url(device)) as response:
                assert response.status == 200
                assert response.content_type == "image/jpeg"
                assert response.headers["X-Sim-Camera"] == device.camera.id
                taken = dt.datetime.fromisoformat(response.headers["X-Sim-Time"])
                jpeg = await response.read()
            assert abs((taken - before).total_seconds()) < 5
            image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            assert image is not None and image.shape == (720, 1280, 3)
            marker = read_marker(np.asarray(image, dtype=np.uint8))
            assert marker is not None
            assert marker.camera_hash == camera_hash(device.camera.id)
            assert marker.captured_at == int(taken.timestamp())


async def test_snapshot_refuses_wrong_password_missing_auth_and_replays(sim: Simulator) -> None:
    device = dev(sim, "good")
    url = snapshot_url(device)
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            assert response.status == 401
            challenge = response.headers["WWW-Authenticate"]
        assert challenge.startswith("Digest ") and 'qop="auth"' in challenge
        assert "algorithm=MD5" in challenge
    wrong = DigestAuthMiddleware(device.username, "not-the-password")
    async with (
        aiohttp.ClientSession(middlewares=(wrong,)) as session,
        session.get(url) as response,
    ):
        assert response.status == 401
    # the wrong_password quirk: the password on file is refused, the real one works
    other = dev(sim, "wrongpw")
    for password, status in ((other.password, 401), (actual_password(other), 200)):
        middleware = DigestAuthMiddleware(other.username, password)
        async with (
            aiohttp.ClientSession(middlewares=(middleware,)) as session,
            session.get(snapshot_url(other)) as response,
        ):
            assert response.status == status

    seen: list[str] = []

    async def record(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        response = await handler(request)
        if response.status == 200:
            seen.append(request.headers["Authorization"])
        return response

    right = DigestAuthMiddleware(device.username, PASSWORD)
    async with (
        aiohttp.ClientSession(middlewares=(right, record)) as session,
        session.get(url) as response,
    ):
        assert response.status == 200
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers={"Authorization": seen[0]}) as response,
    ):
        assert response.status == 401, "a replayed Authorization header must be refused"


# --------------------------------------------------------------------------- WS-Discovery


def probe_message(
    types: str | None = "dn:NetworkVideoTransmitter", scopes: str = ""
) -> tuple[str, bytes]:
    message_id = f"urn:uuid:{uuid.uuid4()}"
    types_el = f"<d:Types>{types}</d:Types>" if types is not None else ""
    scopes_el = f"<d:Scopes>{scopes}</d:Scopes>" if scopes else ""
    return message_id, (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<e:Envelope xmlns:e="{soap.NS_ENV}" xmlns:w="{NS_WSA}" xmlns:d="{NS_WSD}"'
        f' xmlns:tds="{soap.NS_TDS}" xmlns:dn="http://www.onvif.org/ver10/network/wsdl"'
        ' xmlns:pr="urn:example:printers">'
        f"<e:Header><w:MessageID>{message_id}</w:MessageID>"
        "<w:To>urn:schemas-xmlsoap-org:ws:2005:04:discovery</w:To>"
        f"<w:Action>{NS_WSD}/Probe</w:Action></e:Header>"
        f"<e:Body><d:Probe>{types_el}{scopes_el}</d:Probe></e:Body></e:Envelope>"
    ).encode()


class UdpClient:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)

    async def probe(self, address: str, message: bytes, wait: float = 1.0) -> list[bytes]:
        loop = asyncio.get_running_loop()
        await loop.sock_sendto(self.sock, message, (address, DISCOVERY_PORT))
        return await self.collect(wait, expect=1)

    async def collect(self, wait: float, expect: int) -> list[bytes]:
        loop = asyncio.get_running_loop()
        answers: list[bytes] = []
        try:
            async with asyncio.timeout(wait):
                while len(answers) < expect:
                    answers.append(await loop.sock_recv(self.sock, 65535))
        except TimeoutError:
            pass
        return answers


@pytest.fixture
def udp() -> Iterator[UdpClient]:
    client = UdpClient()
    yield client
    client.sock.close()


async def test_unicast_probe_gets_a_probe_match(
    sim: Simulator, udp: UdpClient, discovery_schema: etree.XMLSchema
) -> None:
    device = dev(sim, "good")
    message_id, message = probe_message()
    answers = await udp.probe(device.address, message)
    assert len(answers) == 1
    root = soap.safe_fromstring(answers[0], 65535)
    assert root.findtext(f"{{{soap.NS_ENV}}}Header/{{{NS_WSA}}}RelatesTo") == message_id
    assert root.findtext(f"{{{soap.NS_ENV}}}Header/{{{NS_WSA}}}Action") == f"{NS_WSD}/ProbeMatches"
    matches = root.find(f"{{{soap.NS_ENV}}}Body/{{{NS_WSD}}}ProbeMatches")
    assert matches is not None
    document = etree.fromstring(etree.tostring(matches))
    assert discovery_schema.validate(document), discovery_schema.error_log
    match = matches[0]
    address = match.findtext(f"{{{NS_WSA}}}EndpointReference/{{{NS_WSA}}}Address")
    assert address == device.endpoint_reference
    assert match.findtext(f"{{{NS_WSD}}}XAddrs") == device.device_uri
    assert (match.findtext(f"{{{NS_WSD}}}Types") or "").split() == [
        "dn:NetworkVideoTransmitter",
        "tds:Device",
    ]
    assert (match.findtext(f"{{{NS_WSD}}}Scopes") or "").split() == device.scopes
    assert match.findtext(f"{{{NS_WSD}}}MetadataVersion") == "1"

    # no Types at all, or the device type, or a scope it has: answered
    for types, scopes in (
        (None, ""),
        ("tds:Device", ""),
        ("", f"onvif://www.onvif.org/name/{device.camera.id}"),
    ):
        _, message = probe_message(types, scopes)
        assert len(await udp.probe(device.address, message)) == 1, (types, scopes)
    # a printer probe, a scope it lacks, garbage: silence
    for message in (
        probe_message("pr:Printer")[1],
        probe_message(None, "onvif://www.onvif.org/location/city/Elsewhere")[1],
        b"<not a probe",
    ):
        assert await udp.probe(device.address, message, wait=0.3) == []
    # RTSP-only cameras do not speak WS-Discovery
    assert await udp.probe(dev(sim, "rtsponly").address, probe_message()[1], wait=0.3) == []


async def test_multicast_only_on_a_named_interface(udp: UdpClient) -> None:
    devices = [SimDevice(camera=_camera(i, f"mc{i}"), password=PASSWORD) for i in (200, 201)]
    udp.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
    loop = asyncio.get_running_loop()
    async with Simulator(devices, answer_delay_s=0):  # default: no multicast socket at all
        await loop.sock_sendto(udp.sock, probe_message()[1], (MULTICAST_GROUP, DISCOVERY_PORT))
        assert await udp.collect(0.3, expect=1) == []
    try:
        simulator = Simulator(devices, answer_delay_s=0, multicast_interface="lo")
        await simulator.start()
    except OSError as err:
        pytest.skip(f"no multicast on lo here: {err}")
    try:
        await loop.sock_sendto(udp.sock, probe_message()[1], (MULTICAST_GROUP, DISCOVERY_PORT))
        answers = await udp.collect(3.0, expect=2)
    finally:
        await simulator.stop()
    xaddrs = sorted(
        str(soap.safe_fromstring(a, 65535).findtext(f".//{{{NS_WSD}}}XAddrs")) for a in answers
    )
    assert xaddrs == sorted(d.device_uri for d in devices)


async def test_hostile_probe_matches_are_opt_in(sim: Simulator, udp: UdpClient) -> None:
    device = dev(sim, "hostile-billion_laughs")
    answers = await udp.probe(device.address, probe_message()[1])
    assert len(answers) == 1 and b"<!DOCTYPE" not in answers[0]  # ONVIF-only by default
    # a probe carrying a DTD is not answered at all
    evil = probe_message()[1].replace(b"?>", b'?><!DOCTYPE e [<!ENTITY a "b">]>', 1)
    assert await udp.probe(device.address, evil, wait=0.3) == []

    hostile = [
        SimDevice(
            camera=_camera(210, "hostile-udp"),
            password=PASSWORD,
            quirks=Quirks(hostile_xml=HostileXml.billion_laughs),
        )
    ]
    async with Simulator(hostile, answer_delay_s=0, hostile_discovery=True):
        answers = await udp.probe(hostile[0].address, probe_message()[1])
    assert len(answers) == 1 and b"<!ENTITY lol9" in answers[0]


# --------------------------------------------------------------------------- offline


async def test_camera_goes_offline_and_comes_back(sim: Simulator, udp: UdpClient) -> None:
    device = dev(sim, "flap")
    message = soap_message("<tds:GetSystemDateAndTime/>")
    async with aiohttp.ClientSession() as session:
        assert (await post_soap(session, device, soap.DEVICE_SERVICE_PATH, message))[0] == 200
        await sim.set_offline(device.camera.id, True)
        try:
            with pytest.raises(aiohttp.ClientConnectionError):
                await post_soap(session, device, soap.DEVICE_SERVICE_PATH, message)
            with pytest.raises(aiohttp.ClientConnectorError):  # a fresh connection: refused
                async with aiohttp.ClientSession() as fresh:
                    await post_soap(fresh, device, soap.DEVICE_SERVICE_PATH, message)
            assert await udp.probe(device.address, probe_message()[1], wait=0.3) == []
        finally:
            await sim.set_offline(device.camera.id, False)
        assert (await post_soap(session, device, soap.DEVICE_SERVICE_PATH, message))[0] == 200
    assert len(await udp.probe(device.address, probe_message()[1])) == 1
    camera = camera_for(device)
    try:
        async with asyncio.timeout(TIMEOUT):
            await camera.update_xaddrs()
    finally:
        await camera.close()


async def test_rtsp_only_camera_has_no_onvif(sim: Simulator) -> None:
    device = dev(sim, "rtsponly")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectorError):
            await post_soap(session, device, soap.DEVICE_SERVICE_PATH, soap_message("<x/>"))


# --------------------------------------------------------------------------- building fleets


def _fleet(n: int, network: str = "governance") -> list[FleetCamera]:
    return [
        FleetCamera(f"{network}-c-{i:04d}", network, "c", f"C {i}", f"127.9.0.{i}", 0, 0, "p")
        for i in range(n)
    ]


def test_build_devices_and_demo_quirks() -> None:
    fleet = _fleet(450) + _fleet(40, "police")
    passwords = {"governance": "pw-g", "police": "pw-p"}
    devices = build_devices(fleet, passwords, rtsp_only_every=10)
    assert sum(not d.onvif for d in devices) == 49
    assert devices[8].onvif and not devices[9].onvif
    assert {d.password for d in devices if d.camera.network == "police"} == {"pw-p"}
    with pytest.raises(ValueError, match="police"):
        build_devices(fleet, {"governance": "x"})

    plan = demo_quirks(fleet, rtsp_only_every=10)
    assert plan.kinds == demo_quirks(fleet, rtsp_only_every=10).kinds  # deterministic
    devices = build_devices(fleet, passwords, quirks_for=plan, rtsp_only_every=10)
    quirky = {d.camera.id: d for d in devices if d.camera.id in plan.kinds}
    assert all(d.onvif for d in quirky.values())
    kinds = [kind for kind, _ in DEMO_QUIRK_KINDS]
    for network, per_kind in (("governance", 2), ("police", 1)):
        counts = [
            sum(1 for cid, k in plan.kinds.items() if k == kind and cid.startswith(network))
            for kind in kinds
        ]
        assert counts == [per_kind] * len(kinds)
    by_kind = {
        kind: [quirky[c].quirks for c, k in plan.kinds.items() if k == kind] for kind in kinds
    }
    assert all(abs(q.clock_skew_s) > soap.AUTH_WINDOW_S for q in by_kind["clock_skew"])
    assert all(q.snapshot_host == "0.0.0.0" for q in by_kind["snapshot_host_unspecified"])
    assert all((q.snapshot_host or "").startswith("10.") for q in by_kind["snapshot_host_internal"])
    assert all(q.no_snapshot_uri for q in by_kind["no_snapshot_uri"])
    assert all(q.rtsp_credentials_in_uri for q in by_kind["rtsp_credentials_in_uri"])
    assert all(q.extra_delay_s > 0 for q in by_kind["slow"])
    # every device has its own Quirks, so flipping one never flips another
    assert len({id(d.quirks) for d in devices}) == len(devices)


def test_simulator_refuses_non_loopback_addresses() -> None:
    camera = FleetCamera("x", "governance", "c", "X", "10.1.2.3", 0, 0, "p")
    with pytest.raises(ValueError, match="loopback"):
        Simulator([SimDevice(camera=camera, password="p")])


def test_a_fleet_grouped_behind_nvrs_and_encoders_keeps_its_camera_count() -> None:
    cameras = [
        FleetCamera(f"governance.c{i}", "governance", "sharp-eyes", f"c{i}", f"127.1.9.{i}",
                    31.0, 121.0, "x")
        for i in range(1, 101)
    ]  # fmt: skip
    devices = build_devices(cameras, {"governance": "pw"})
    grouped = group_devices(devices, Recorders(nvr_share=0.35, encoder_share=0.1))
    assert sum(d.channels for d in grouped) == 100
    assert sorted({d.channels for d in grouped}) == [1, 4, 16]
    assert [d.model for d in grouped if d.channels == 16] == ["SIM-NVR-16"] * 2  # 32 of 35
    assert len([d for d in grouped if d.channels == 4]) == 2  # 8 of the next 10
    assert len({(d.address, d.port) for d in grouped}) == len(grouped)
