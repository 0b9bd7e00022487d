"""Real devices' ONVIF answers, read by camgw's own code.

tests/data/onvif/<device>/<Operation>.xml are answers recorded from cameras of several vendors
(Axis, Hikvision and a Hikvision OEM, TRENDnet, Pelco, Dahua and Lorex, Uniview OEMs, XiongMai,
D-Link, Milesight, two generic Chinese firmwares; sources and licences in SOURCES.md). A tiny
SOAP server on 127.6.9.0/24 answers each call with the recorded file (a SOAP fault when the
device's recording lacks it), and the answers go through what a live camera's do:
onvif-zeep-async with camgw's capped transport and well-formedness check (`OnvifClient`), then
camgw's parsers.

- per call, table-driven: what a user would notice in each answer (manufacturer, model,
  firmware, serial; the media service and PTZ/events; the services; every profile's token,
  encoding, resolution, frame rate and video source; stream and snapshot URIs as camgw stores
  them; the camera's clock, and its LocalDateTime read in its own POSIX time zone);
- per device, `OnvifClient.enrich` end to end against every device whose recording has the
  calls enrichment needs (clock, capabilities, profiles), each device on its own loopback
  address and on the port its capabilities advertise (camgw only ever talks to the address
  that answered, on the advertised port; most advertise 80).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from lxml import etree

from adapters import onvif
from adapters.base import Target
from adapters.onvif import OnvifClient, clock_offset, posix_tz_offset
from adapters.uris import UriCredentials

DATA = Path(__file__).resolve().parent.parent / "data" / "onvif"
HOST = "127.6.9.1"  # the per-call server; enrichment uses 127.6.9.10 and up, one per device
NETWORK = "governance"
CREDS = UriCredentials("admin", "captures-pw-7Hq")

FAULT = b"""<?xml version="1.0" encoding="UTF-8"?>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"
  xmlns:ter="http://www.onvif.org/ver10/error"><s:Body><s:Fault>
<s:Code><s:Value>s:Receiver</s:Value><s:Subcode><s:Value>ter:ActionNotSupported</s:Value>
</s:Subcode></s:Code><s:Reason><s:Text xml:lang="en">not in the recording</s:Text></s:Reason>
</s:Fault></s:Body></s:Envelope>"""

MEDIA = "http://www.onvif.org/ver10/media/wsdl"


# --------------------------------------------------------------------------- the answers' server


def _operation(body: bytes) -> str:
    """The operation a request (from our own client) calls: the Body's first element."""
    root = etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True))
    soap_body = next(e for e in root if etree.QName(e).localname == "Body")
    return str(etree.QName(soap_body[0]).localname)


def _answer(device: str, operation: str) -> web.Response:
    recorded = DATA / device / f"{operation}.xml"
    if not recorded.is_file():
        return web.Response(status=400, body=FAULT, content_type="application/soap+xml")
    return web.Response(
        body=recorded.read_bytes(), content_type="application/soap+xml", charset="utf-8"
    )


@asynccontextmanager
async def serving(
    handler: Callable[[web.Request], Any], address: str, port: int = 0
) -> AsyncIterator[int]:
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, address, port).start()
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


@pytest.fixture(scope="module")
async def answers() -> AsyncIterator[str]:
    """http://127.6.9.1:<port>/<device>: answers every call with <device>'s recording."""

    async def handle(request: web.Request) -> web.Response:
        return _answer(request.match_info["tail"], _operation(await request.read()))

    async with serving(handle, HOST) as port:
        yield f"http://{HOST}:{port}"


@pytest.fixture(scope="module")
async def client() -> AsyncIterator[OnvifClient]:
    async with OnvifClient(timeout_s=5.0) as c:
        yield c


CALLS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    # the calls exactly as OnvifClient.enrich makes them
    "GetSystemDateAndTime": ("devicemgmt", lambda s: s.GetSystemDateAndTime()),
    "GetCapabilities": ("devicemgmt", lambda s: s.GetCapabilities(Category="All")),
    "GetDeviceInformation": ("devicemgmt", lambda s: s.GetDeviceInformation()),
    "GetServices": ("devicemgmt", lambda s: s.GetServices(IncludeCapability=False)),
    "GetProfiles": ("media", lambda s: s.GetProfiles()),
    "GetStreamUri": (
        "media",
        lambda s: s.GetStreamUri(StreamSetup=onvif._STREAM_SETUP, ProfileToken="recorded"),
    ),
    "GetSnapshotUri": ("media", lambda s: s.GetSnapshotUri(ProfileToken="recorded")),
}


async def ask(client: OnvifClient, answers: str, device: str, operation: str) -> Any:
    """`operation`'s answer from `device`'s recording, as zeep parses it for camgw."""
    assert (DATA / device / f"{operation}.xml").is_file(), f"no {device}/{operation}.xml"
    service, call = CALLS[operation]
    proxy = await client._service(service, f"{answers}/{device}", CREDS, None)
    return await onvif._step(operation, call(proxy))


def test_every_recording_is_in_a_table() -> None:
    recorded = {(f.parent.name, f.stem) for f in DATA.glob("*/*.xml")}
    tabled = {
        *((r[0], "GetDeviceInformation") for r in DEVICE_INFORMATION),
        *((r[0], "GetCapabilities") for r in CAPABILITIES),
        *((r[0], "GetServices") for r in SERVICES),
        *((r[0], "GetProfiles") for r in PROFILES),
        *((r[0], "GetStreamUri") for r in STREAM_URIS),
        *((r[0], "GetSnapshotUri") for r in SNAPSHOT_URIS),
        *((r[0], "GetSystemDateAndTime") for r in CLOCKS),
    }
    assert recorded == tabled
    vendors = {r[1] for r in DEVICE_INFORMATION} | {"Dahua", "Lorex"}
    assert len(vendors - {None, "NONE", "ONVIF", "H264", "ONVIF_IPNC"}) >= 5


# --------------------------------------------------------------------------- GetDeviceInformation

# (device, Manufacturer, Model, FirmwareVersion, SerialNumber, HardwareId), as camgw keeps them:
# what the camera says, verbatim, None when empty. OEM firmwares fill Manufacturer with what
# they have ("ONVIF", "NONE", the codec...), and camgw does not guess behind it.
DEVICE_INFORMATION: list[tuple[str, str | None, str, str, str, str]] = [
    ("axis-q6045e", "AXIS", "AXIS Q6045-E", "5.55.1.2", "00408CFAB754", "1C9.2"),
    ("axis-m2025le", "AXIS", "M2025-LE", "9.80.3.13", "B8A44F26437D", "727"),
    ("hikvision-ds2df7276", "HIKVISION", "DS-2DF7276-AEL", "V5.1.6 build 140401",
     "DS-2DF7276-AEL20140613CCWR468714298B", "88"),
    ("trendnet-tvip320pi", "TRENDnet", "TV-IP320PI", "V5.3.4 build 160830",
     "TV-IP320PI20161206AAWR863642784", "88"),
    ("hikvision-oem-enp1a14", "ONVIF", "ENP1A14-IR/25X", "V5.5.3 build 180822",
     "ENP1A14-IR/25X20190430AAWRD14878498W", "88"),
    ("pelco-d6230l", "Pelco", "D6230L", "2.9.0.4.9340-A0.0", "J250117", "00:04:7d:0e:b8:5c"),
    ("uniview-sunba-performance", "SUNBA", "Performance-Series",
     "QIPC-B2202.3.73.C06290.NB.230628", "210231T2H63235000045", "Performance-Series"),
    ("uniview-oem-gx728mf", "NONE", "GX728MF-IR28", "IPC_G6106-B0005P11D1812C03",
     "210235T8HQ3197000191", "GX728MF-IR28"),
    ("xiongmai-xm530", "H264", "XM530_50X50-WG_8M",
     "V5.00.R02.L5330747.10010.349917..ONVIF 16.12", "f0d2d8a9c5380a0f", "00001"),
    ("dlink-dcs6511", "D-Link Corporation", "DCS-6511", "1.16.00", "F07D68099FCA",
     "F07D68099FCA"),
    ("generic-ipd-h4k8m05", None, "IPD-H4K8M05-BS", "V1.04.10-190309", "071D3E36963F", "1.0"),
    ("ipnc-ipg8150pss", "ONVIF_IPNC", "IPG-8150PSS", "1.3.0-20210203CN-PT",
     "I207215E7840DFDA9877E8B", "8FE1887A-72EE-403f-9385-5a58aed534cf"),
    ("milesight-msc8165", "Milesight Technology Co.,Ltd.", "MS-C8165-PE", "61.8.0.3-r8",
     "EM82V102329001403", "V1.0"),
]  # fmt: skip


@pytest.mark.parametrize(("device", "vendor", "model", "firmware", "serial", "hardware_id"),
                         DEVICE_INFORMATION, ids=[r[0] for r in DEVICE_INFORMATION])  # fmt: skip
async def test_device_information(
    client: OnvifClient,
    answers: str,
    device: str,
    vendor: str | None,
    model: str,
    firmware: str,
    serial: str,
    hardware_id: str,
) -> None:
    info = onvif._device_info(await ask(client, answers, device, "GetDeviceInformation"))
    assert info == {
        "Manufacturer": vendor,
        "Model": model,
        "FirmwareVersion": firmware,
        "SerialNumber": serial,
        "HardwareId": hardware_id,
    }


# --------------------------------------------------------------------------- GetCapabilities

# (device, the media XAddr advertised, PTZ, events): camgw talks to the media service on the
# address that answered, keeping the advertised port and path.
CAPABILITIES: list[tuple[str, str, bool, bool]] = [
    ("axis-q6045e", "http://192.168.0.19/onvif/services", True, True),
    ("hikvision-ds2df7276", "http://10.10.1.60/onvif/Media", True, True),
    ("trendnet-tvip320pi", "http://10.10.1.67/onvif/Media", False, True),
    ("hikvision-oem-enp1a14", "http://192.168.1.182/onvif/Media", True, True),
    ("pelco-d6230l", "http://10.10.1.66/onvif/media_service", True, True),
    ("dahua-ipc", "http://192.168.1.123/onvif/media_service", False, True),
    ("uniview-sunba-performance", "http://162.191.54.181:80/onvif/media", True, True),
    ("uniview-oem-gx728mf", "http://192.168.1.127:80/onvif/media", False, True),
    ("xiongmai-xm530", "http://192.168.15.40:8899/onvif/Media", True, True),
    ("dlink-dcs6511", "http://192.168.1.33:80/onvif/device_service", False, True),
    ("generic-ipd-h4k8m05", "http://192.168.15.40:8999/onvif/media_service", True, True),
    ("ipnc-ipg8150pss", "http://10.200.1.2/onvif/media_service", True, True),
]


@pytest.mark.parametrize(("device", "media", "ptz", "events"), CAPABILITIES,
                         ids=[r[0] for r in CAPABILITIES])  # fmt: skip
async def test_capabilities(
    client: OnvifClient, answers: str, device: str, media: str, ptz: bool, events: bool
) -> None:
    caps = await ask(client, answers, device, "GetCapabilities")
    assert onvif._xaddr(caps, "Media") == media
    assert (onvif._xaddr(caps, "PTZ") is not None, onvif._xaddr(caps, "Events") is not None) == (
        ptz,
        events,
    )
    notes: list[str] = []
    used = onvif._media_url(caps, f"http://{HOST}/onvif/device_service", HOST, notes)
    parts = urlsplit(media)
    port = f":{parts.port}" if parts.port else ""
    assert used == f"http://{HOST}{port}{parts.path}"
    assert notes == [f"media host {parts.hostname} replaced by {HOST}"]


# --------------------------------------------------------------------------- GetServices

# (device, how many services, the media service as camgw keeps it: on the answering address)
SERVICES: list[tuple[str, int, str | None]] = [
    ("axis-m2025le", 16, f"http://{HOST}/onvif/services"),
    ("hikvision-ds2df7276", 7, f"http://{HOST}/onvif/Media"),
    ("trendnet-tvip320pi", 9, f"http://{HOST}/onvif/Media"),
    ("hikvision-oem-enp1a14", 11, f"http://{HOST}/onvif/Media"),
    ("pelco-d6230l", 22, f"http://{HOST}/onvif/media_service"),
    ("uniview-sunba-performance", 13, f"http://{HOST}:80/onvif/media"),
    ("uniview-oem-gx728mf", 8, f"http://{HOST}:80/onvif/media"),
    ("xiongmai-xm530", 6, f"http://{HOST}:8899/onvif/Media"),
    ("generic-ipd-h4k8m05", 7, f"http://{HOST}:8999/onvif/media_service"),
    ("ipnc-ipg8150pss", 8, f"http://{HOST}/onvif/media_service"),
]


@pytest.mark.parametrize(("device", "count", "media"), SERVICES, ids=[r[0] for r in SERVICES])
async def test_services(
    client: OnvifClient, answers: str, device: str, count: int, media: str | None
) -> None:
    notes: list[str] = []
    services = onvif._services(await ask(client, answers, device, "GetServices"), HOST, notes)
    assert (len(services), services.get(MEDIA)) == (count, media)
    assert "http://www.onvif.org/ver10/device/wsdl" in services
    assert all(urlsplit(url).hostname == HOST for url in services.values())
    assert notes == []


# --------------------------------------------------------------------------- GetProfiles

# (token, name, encoding, width, height, frame rate limit, video source token)
P = tuple[str, str, str | None, int | None, int | None, float | None, str | None]

# (device, its profiles in order, audio in a profile). Every device recorded has one video
# source: its profiles (main, sub, third stream; H.264 and JPEG) all name the same SourceToken.
PROFILES: list[tuple[str, list[P], bool]] = [
    ("axis-q6045e", [
        ("profile_1_h264", "profile_1 h264", "H264", 1280, 720, 30.0, "0"),
        ("profile_1_jpeg", "profile_1 jpeg", "JPEG", 1280, 720, 30.0, "0")], False),
    ("axis-m2025le", [
        ("profile_1_h264", "profile_1 h264", "H264", 1920, 1080, 30.0, "0"),
        ("profile_1_jpeg", "profile_1 jpeg", "JPEG", 1920, 1080, 30.0, "0")], False),
    ("hikvision-ds2df7276", [
        ("Profile_1", "mainStream", "H264", 1280, 720, 10.0, "VideoSource_1"),
        ("Profile_2", "subStream", "H264", 704, 480, 30.0, "VideoSource_1"),
        ("Profile_3", "thirdStream", "H264", 704, 480, 30.0, "VideoSource_1")], True),
    ("trendnet-tvip320pi", [
        ("Profile_1", "mainStream", "H264", 1280, 720, 30.0, "VideoSource_1"),
        ("Profile_2", "subStream", "JPEG", 352, 240, 30.0, "VideoSource_1")], False),
    # H.265; the third stream is off: an encoder configuration without encoding or resolution
    ("hikvision-oem-enp1a14", [
        ("Profile_1", "mainStream", "H265", 2560, 1440, 25.0, "VideoSource_1"),
        ("Profile_2", "subStream", "H265", 704, 480, 10.0, "VideoSource_1"),
        ("Profile_3", "thirdStream", None, None, None, None, "VideoSource_1")], True),
    ("pelco-d6230l", [
        ("0", "Primary", "H264", 1920, 1080, 30.0, "0"),
        ("1", "Secondary", "JPEG", 1920, 1080, 5.0, "0")], False),
    # the first profile's encoder configuration is a name and a use count, nothing else
    ("lorex-dahua-oem", [
        ("Profile000", "Profile000", None, None, None, None, "VideoSource000"),
        ("Profile001", "Profile001", "H264", 704, 480, 30.0, "VideoSource000")], True),
    ("uniview-sunba-performance", [
        ("media_profile1", "media_profile1", "H264", 2592, 1944, 12.0, "video_source"),
        ("media_profile2", "media_profile2", "H264", 720, 576, 25.0, "video_source"),
        ("media_profile3", "media_profile3", "H264", 352, 288, 25.0, "video_source")], True),
    ("uniview-oem-gx728mf", [
        ("media_profile1", "media_profile1", "H264", 3840, 2160, 20.0, "video_source"),
        ("media_profile2", "media_profile2", "H264", 720, 576, 20.0, "video_source"),
        ("media_profile3", "media_profile3", "H264", 352, 288, 20.0, "video_source")], False),
    ("xiongmai-xm530", [
        ("000", "Profile_000", "H264", 2592, 1944, 12.0, "000"),
        ("001", "Profile_001", "H264", 704, 480, 12.0, "000")], True),
    ("dlink-dcs6511", [
        ("Profile1", "Profile1", "H264", 1280, 1024, 7.0, "VideoSource0"),
        ("Profile2", "Profile2", "H264", 640, 480, 30.0, "VideoSource0")], True),
    ("generic-ipd-h4k8m05", [
        ("MainStream", "MainStream", "H264", 2592, 1944, 25.0, "VI_CH0"),
        ("SubStream", "SubStream", "H264", 640, 480, 25.0, "VI_CH0")], False),
    ("ipnc-ipg8150pss", [
        ("PROFILE_000", "PROFILE_000", "H264", 2560, 1920, 20.0, "VideoSourceToken"),
        ("PROFILE_001", "PROFILE_001", "H264", 800, 448, 20.0, "VideoSourceToken")], True),
]  # fmt: skip


@pytest.mark.parametrize(("device", "expected", "audio"), PROFILES, ids=[r[0] for r in PROFILES])
async def test_profiles(
    client: OnvifClient, answers: str, device: str, expected: list[P], audio: bool
) -> None:
    notes: list[str] = []
    profiles = onvif._profiles(await ask(client, answers, device, "GetProfiles"), notes)
    read = []
    for token, p in profiles:
        profile = onvif._profile(token, p)
        source = onvif._scalar(onvif._attr(p, "VideoSourceConfiguration"), "SourceToken")
        read.append(
            (profile.token, profile.name, profile.codec, profile.width, profile.height,
             profile.fps, source)
        )  # fmt: skip
    assert read == expected
    assert any(onvif._attr(p, "AudioEncoderConfiguration") is not None for _, p in profiles) is (
        audio
    )
    assert notes == []


# --------------------------------------------------------------------------- stream and snapshot

# (device, the URI as camgw keeps it: on the answering address, no credentials; the
# credentials it carried; notes)
STREAM_URIS: list[tuple[str, str, UriCredentials | None, list[str]]] = [
    ("axis-q6045e", f"rtsp://{HOST}/onvif-media/media.amp"
     "?profile=profile_1_jpeg&sessiontimeout=60&streamtype=unicast", None,
     [f"stream host 192.168.0.19 replaced by {HOST}"]),
    ("hikvision-ds2df7276",
     f"rtsp://{HOST}:554/Streaming/Channels/3?transportmode=unicast&profile=Profile_3", None,
     [f"stream host 10.10.1.60 replaced by {HOST}"]),
    ("trendnet-tvip320pi",
     f"rtsp://{HOST}:554/Streaming/Channels/102?transportmode=unicast&profile=Profile_2", None,
     [f"stream host 10.10.1.67 replaced by {HOST}"]),
    # asked for RTP-Unicast, answers with its multicast URI
    ("hikvision-oem-enp1a14",
     f"rtsp://{HOST}:554/Streaming/Channels/101?transportmode=mcast&profile=Profile_1", None,
     [f"stream host 192.168.1.182 replaced by {HOST}"]),
    ("pelco-d6230l", f"rtsp://{HOST}/stream2_v", None,
     [f"stream host 10.10.1.66 replaced by {HOST}"]),
    ("dahua-ipc",
     f"rtsp://{HOST}:554/cam/realmonitor?channel=1&subtype=1&unicast=true&proto=Onvif", None,
     [f"stream host 192.168.1.123 replaced by {HOST}"]),
    ("generic-ipd-h4k8m05", f"rtsp://{HOST}:554/1/h264major", None,
     [f"stream host 192.168.15.40 replaced by {HOST}"]),
    ("ipnc-ipg8150pss", f"rtsp://{HOST}/live/0/MAIN", None,
     [f"stream host 10.200.1.2 replaced by {HOST}"]),
]  # fmt: skip

SNAPSHOT_URIS: list[tuple[str, str, UriCredentials | None, list[str]]] = [
    ("axis-q6045e", f"http://{HOST}/onvif-cgi/jpg/image.cgi?resolution=1280x720&compression=20",
     None, [f"snapshot host 192.168.0.19 replaced by {HOST}"]),
    ("hikvision-ds2df7276", f"http://{HOST}/onvif/snapshot", None,
     [f"snapshot host 10.10.1.60 replaced by {HOST}"]),
    ("trendnet-tvip320pi", f"http://{HOST}/onvif-http/snapshot?Profile_2", None,
     [f"snapshot host 10.10.1.67 replaced by {HOST}"]),
    ("hikvision-oem-enp1a14", f"http://{HOST}/onvif-http/snapshot?Profile_1", None,
     [f"snapshot host 192.168.1.182 replaced by {HOST}"]),
    ("pelco-d6230l", f"http://{HOST}/jpeg", None,
     [f"snapshot host 10.10.1.66 replaced by {HOST}"]),
    ("dahua-ipc", f"http://{HOST}/onvifsnapshot/media_service/snapshot?channel=1&subtype=1",
     None, [f"snapshot host 192.168.1.123 replaced by {HOST}"]),
    ("uniview-sunba-performance", f"http://{HOST}:80/LAPI/V1.0/Media/Video/Streams/0/Snapshot",
     None, [f"snapshot host 162.191.54.181 replaced by {HOST}"]),
    ("uniview-oem-gx728mf", f"http://{HOST}:85/images/snapshot.jpg", None,
     [f"snapshot host 192.168.1.127 replaced by {HOST}"]),
    # the camera's user and password in the query (the recording's password is redacted):
    # they leave the URI like userinfo does, and are handed over to be sealed
    ("xiongmai-xm530", f"http://{HOST}/webcapture.jpg?command=snap&channel=1",
     UriCredentials("admin", "REDACTED"),
     [f"snapshot host 192.168.15.40 replaced by {HOST}",
      "credentials removed from the snapshot URI"]),
    ("dlink-dcs6511", f"http://{HOST}/dms?nowprofileid=1", None,
     [f"snapshot host 192.168.1.33 replaced by {HOST}"]),
    ("generic-ipd-h4k8m05", f"http://{HOST}/jpgimage/1/image.jpg", None,
     [f"snapshot host 192.168.15.40 replaced by {HOST}"]),
    ("ipnc-ipg8150pss", f"http://{HOST}:80/SnapShot_Ch0.jpg", None,
     [f"snapshot host 10.200.1.2 replaced by {HOST}"]),
]  # fmt: skip


MEDIA_URIS = [
    *(("GetStreamUri", "stream", *row) for row in STREAM_URIS),
    *(("GetSnapshotUri", "snapshot", *row) for row in SNAPSHOT_URIS),
]


@pytest.mark.parametrize(("operation", "what", "device", "uri", "creds", "notes"), MEDIA_URIS,
                         ids=[f"{r[1]}-{r[2]}" for r in MEDIA_URIS])  # fmt: skip
async def test_media_uris(
    client: OnvifClient,
    answers: str,
    operation: str,
    what: str,
    device: str,
    uri: str,
    creds: UriCredentials | None,
    notes: list[str],
) -> None:
    answer = await ask(client, answers, device, operation)
    noted: list[str] = []
    assert onvif._clean_uri(onvif._scalar(answer, "Uri"), HOST, noted, what) == (uri, creds)
    assert noted == notes


# The XiongMai answer's shape with the other names cameras use for the same thing; the rest of
# the query stays as the camera wrote it.
QUERY_CREDENTIALS: list[tuple[str, str, UriCredentials | None]] = [
    ("http://h/webcapture.jpg?command=snap&channel=1&user=admin&password=p%40ss",
     "http://h/webcapture.jpg?command=snap&channel=1", UriCredentials("admin", "p@ss")),
    ("http://h/cgi-bin/CGIProxy.fcgi?cmd=snapPicture2&usr=op&pwd=x1",
     "http://h/cgi-bin/CGIProxy.fcgi?cmd=snapPicture2", UriCredentials("op", "x1")),
    ("http://h/cgi-bin/api.cgi?cmd=Snap&channel=0&rs=abc&User=admin&Password=y2",
     "http://h/cgi-bin/api.cgi?cmd=Snap&channel=0&rs=abc", UriCredentials("admin", "y2")),
    ("http://h/snap.jpg?pwd=z3", "http://h/snap.jpg", UriCredentials("", "z3")),
    ("http://h/snap.jpg?user=admin&password=", "http://h/snap.jpg", None),  # nothing to keep
    ("http://h/onvif-http/snapshot?Profile_1", "http://h/onvif-http/snapshot?Profile_1", None),
    ("http://h/snap.jpg?user=admin", "http://h/snap.jpg?user=admin", None),  # no password
]  # fmt: skip


@pytest.mark.parametrize(("uri", "clean", "creds"), QUERY_CREDENTIALS)
def test_credentials_in_the_query_leave_the_uri(
    uri: str, clean: str, creds: UriCredentials | None
) -> None:
    assert onvif._query_credentials(uri) == (clean, creds)


# --------------------------------------------------------------------------- the camera's clock

# (device, its UTCDateTime, its TZ, its DaylightSavings flag, its LocalDateTime minus
# UTCDateTime in hours (None: it sends no LocalDateTime)). Cameras set DaylightSavings when DST
# is enabled, not only while it is in effect (Axis, Hikvision, Uniview: true in February and
# early March); the TZ's own transition rules say whether it is.
CLOCKS: list[tuple[str, dt.datetime, str, bool, float | None]] = [
    ("axis-q6045e", dt.datetime(2018, 2, 27, 23, 9, 59), "MST7MDT,M3.2.0,M11.1.0", True, -7),
    ("hikvision-ds2df7276", dt.datetime(2018, 2, 27, 18, 28, 1),
     "CST7:00:00DST01:00:00,M3.2.0/02:00:00,M11.1.0/02:00:00", True, -7),
    ("trendnet-tvip320pi", dt.datetime(2018, 2, 27, 18, 36, 51),
     "CST+7:00:00DST01:00:00,M3.2.0/02:00:00,M11.1.0/02:00:00", True, -7),
    ("hikvision-oem-enp1a14", dt.datetime(2023, 3, 6, 14, 13, 45),
     "EST+5:00:00EDT04:00:00,M3.5.0/01:00:00,M10.5.0/02:00:00", True, -5),
    ("pelco-d6230l", dt.datetime(2018, 2, 27, 18, 10, 11), "MST7MDT,M3.2.0,M11.1.0", False, None),
    ("uniview-sunba-performance", dt.datetime(2024, 4, 5, 17, 16, 28), "CST5:00:00", False, -5),
    ("uniview-oem-gx728mf", dt.datetime(2023, 3, 8, 0, 27, 9), "CST5CDT,M3.2.0/2,M11.1.0/2",
     True, -5),
    # a zone camgw does not read (and the camera ignores its own DST: CDT was in effect)
    ("xiongmai-xm530", dt.datetime(2025, 4, 27, 1, 27, 42), "CST6CDT:", True, -6),
    ("dlink-dcs6511", dt.datetime(2023, 3, 7, 16, 14, 53), "COT5", True, -5),
    ("generic-ipd-h4k8m05", dt.datetime(2025, 4, 6, 17, 38, 53), "AST4ADT", False, -4),
    ("ipnc-ipg8150pss", dt.datetime(2024, 2, 20, 13, 13, 1), "CST-08:00", False, 8),
]  # fmt: skip


@pytest.mark.parametrize(("device", "utc", "tz", "dst", "local_hours"), CLOCKS,
                         ids=[r[0] for r in CLOCKS])  # fmt: skip
async def test_clock(
    client: OnvifClient,
    answers: str,
    device: str,
    utc: dt.datetime,
    tz: str,
    dst: bool,
    local_hours: float | None,
) -> None:
    answer = await ask(client, answers, device, "GetSystemDateAndTime")
    assert (onvif._scalar(onvif._attr(answer, "TimeZone"), "TZ"), answer.DaylightSavings) == (
        tz,
        dst,
    )
    at = utc.replace(tzinfo=dt.UTC)
    assert clock_offset(answer, at) == (0.0, None)
    assert clock_offset(answer, at - dt.timedelta(seconds=90)) == (90.0, None)

    # Without its UTCDateTime, camgw reads the LocalDateTime in the camera's own zone: the
    # camera's answer says what that reading must give.
    answer.UTCDateTime = None
    offset, note = clock_offset(answer, at)
    if local_hours is None:
        assert note == "camera clock unusable (ValueError: neither UTCDateTime nor LocalDateTime)"
        return
    zone = posix_tz_offset(tz, dst, at=utc + dt.timedelta(hours=local_hours))
    if zone is None:  # not understood: taken as UTC, and noted
        assert (offset, note) == (
            local_hours * 3600,
            "camera clock: no UTCDateTime, "
            f"LocalDateTime taken as UTC (time zone {tz!r} not understood)",
        )
        return
    assert zone == dt.timedelta(hours=local_hours)
    sign = "-" if local_hours < 0 else "+"
    label = f"UTC{sign}{abs(int(local_hours)):02d}:00"
    assert (offset, note) == (
        0.0,
        f"camera clock: no UTCDateTime, LocalDateTime read in {tz} ({label})",
    )


# The recorded zones through the year: their rules, not the DaylightSavings flag, say whether
# DST is on (a southern zone's DST spans the new year).
SEASONS: list[tuple[str, bool, dt.datetime, float]] = [
    ("MST7MDT,M3.2.0,M11.1.0", True, dt.datetime(2018, 2, 27, 16, 9), -7),
    ("MST7MDT,M3.2.0,M11.1.0", False, dt.datetime(2018, 7, 1, 12, 0), -6),
    ("MST7MDT,M3.2.0,M11.1.0", True, dt.datetime(2018, 3, 11, 1, 59), -7),
    ("MST7MDT,M3.2.0,M11.1.0", True, dt.datetime(2018, 3, 11, 2, 0), -6),
    ("EST+5:00:00EDT04:00:00,M3.5.0/01:00:00,M10.5.0/02:00:00", True,
     dt.datetime(2023, 3, 26, 0, 59), -5),
    ("EST+5:00:00EDT04:00:00,M3.5.0/01:00:00,M10.5.0/02:00:00", True,
     dt.datetime(2023, 3, 26, 1, 0), -4),
    ("CST5CDT,M3.2.0/2,M11.1.0/2", True, dt.datetime(2023, 11, 5, 1, 59), -4),
    ("CST5CDT,M3.2.0/2,M11.1.0/2", True, dt.datetime(2023, 11, 5, 2, 0), -5),
    ("AEST-10AEDT,M10.1.0,M4.1.0/3", False, dt.datetime(2024, 1, 15), 11),
    ("AEST-10AEDT,M10.1.0,M4.1.0/3", True, dt.datetime(2024, 6, 15), 10),
    ("CST7:00:00DST01:00:00,M3.2.0/02:00:00,M11.1.0/02:00:00", True,
     dt.datetime(2018, 2, 27, 11, 28), -7),
    ("AST4ADT", True, dt.datetime(2025, 1, 1), -3),  # no rules: the flag decides
    ("AST4ADT", False, dt.datetime(2025, 7, 1), -4),
    ("EST5EDT,J60,J300", True, dt.datetime(2024, 1, 1), -4),  # rules not of the M form: the flag
]  # fmt: skip


@pytest.mark.parametrize(("tz", "dst", "at", "hours"), SEASONS)
def test_transition_rules_decide_daylight_saving_time(
    tz: str, dst: bool, at: dt.datetime, hours: float
) -> None:
    assert posix_tz_offset(tz, dst, at=at) == dt.timedelta(hours=hours)


# --------------------------------------------------------------------------- enrich, end to end


def _media_port(device: str) -> int:
    """The port the device's capabilities advertise for its media service (camgw keeps it)."""
    caps = (DATA / device / "GetCapabilities.xml").read_text(encoding="utf-8")
    match = re.search(r"<(?:\w+:)?Media>\s*<(?:\w+:)?XAddr>([^<]+)<", caps)
    assert match is not None
    return urlsplit(match.group(1)).port or 80


# (device, vendor, model, serial, profiles as (token, codec, width, height), stream URI of each
# profile (the server answers every GetStreamUri with the one recorded), snapshot URI, PTZ,
# events, audio, hosts the camera advertised that camgw replaced). The address is `@`.
Encoded = tuple[str, str | None, int | None, int | None]
ENRICHED: list[
    tuple[str, str | None, str, str, list[Encoded], str | None, str, tuple[bool, bool, bool], str]
] = [
    ("axis-q6045e", "AXIS", "AXIS Q6045-E", "00408CFAB754",
     [("profile_1_h264", "H264", 1280, 720), ("profile_1_jpeg", "JPEG", 1280, 720)],
     "rtsp://@/onvif-media/media.amp?profile=profile_1_jpeg&sessiontimeout=60&streamtype=unicast",
     "http://@/onvif-cgi/jpg/image.cgi?resolution=1280x720&compression=20",
     (True, True, False), "192.168.0.19"),
    ("hikvision-ds2df7276", "HIKVISION", "DS-2DF7276-AEL", "DS-2DF7276-AEL20140613CCWR468714298B",
     [("Profile_1", "H264", 1280, 720), ("Profile_2", "H264", 704, 480),
      ("Profile_3", "H264", 704, 480)],
     "rtsp://@:554/Streaming/Channels/3?transportmode=unicast&profile=Profile_3",
     "http://@/onvif/snapshot", (True, True, True), "10.10.1.60"),
    ("trendnet-tvip320pi", "TRENDnet", "TV-IP320PI", "TV-IP320PI20161206AAWR863642784",
     [("Profile_1", "H264", 1280, 720), ("Profile_2", "JPEG", 352, 240)],
     "rtsp://@:554/Streaming/Channels/102?transportmode=unicast&profile=Profile_2",
     "http://@/onvif-http/snapshot?Profile_2", (False, True, False), "10.10.1.67"),
    ("hikvision-oem-enp1a14", "ONVIF", "ENP1A14-IR/25X", "ENP1A14-IR/25X20190430AAWRD14878498W",
     [("Profile_1", "H265", 2560, 1440), ("Profile_2", "H265", 704, 480),
      ("Profile_3", None, None, None)],
     "rtsp://@:554/Streaming/Channels/101?transportmode=mcast&profile=Profile_1",
     "http://@/onvif-http/snapshot?Profile_1", (True, True, True), "192.168.1.182"),
    ("pelco-d6230l", "Pelco", "D6230L", "J250117",
     [("0", "H264", 1920, 1080), ("1", "JPEG", 1920, 1080)],
     "rtsp://@/stream2_v", "http://@/jpeg", (True, True, False), "10.10.1.66"),
    ("uniview-sunba-performance", "SUNBA", "Performance-Series", "210231T2H63235000045",
     [("media_profile1", "H264", 2592, 1944), ("media_profile2", "H264", 720, 576),
      ("media_profile3", "H264", 352, 288)],
     None, "http://@:80/LAPI/V1.0/Media/Video/Streams/0/Snapshot", (True, True, True),
     "162.191.54.181"),
    ("uniview-oem-gx728mf", "NONE", "GX728MF-IR28", "210235T8HQ3197000191",
     [("media_profile1", "H264", 3840, 2160), ("media_profile2", "H264", 720, 576),
      ("media_profile3", "H264", 352, 288)],
     None, "http://@:85/images/snapshot.jpg", (False, True, False), "192.168.1.127"),
    ("xiongmai-xm530", "H264", "XM530_50X50-WG_8M", "f0d2d8a9c5380a0f",
     [("000", "H264", 2592, 1944), ("001", "H264", 704, 480)],
     None, "http://@/webcapture.jpg?command=snap&channel=1", (True, True, True),
     "192.168.15.40"),
    ("dlink-dcs6511", "D-Link Corporation", "DCS-6511", "F07D68099FCA",
     [("Profile1", "H264", 1280, 1024), ("Profile2", "H264", 640, 480)],
     None, "http://@/dms?nowprofileid=1", (False, True, True), "192.168.1.33"),
    ("generic-ipd-h4k8m05", None, "IPD-H4K8M05-BS", "071D3E36963F",
     [("MainStream", "H264", 2592, 1944), ("SubStream", "H264", 640, 480)],
     "rtsp://@:554/1/h264major", "http://@/jpgimage/1/image.jpg", (True, True, False),
     "192.168.15.40"),
    ("ipnc-ipg8150pss", "ONVIF_IPNC", "IPG-8150PSS", "I207215E7840DFDA9877E8B",
     [("PROFILE_000", "H264", 2560, 1920), ("PROFILE_001", "H264", 800, 448)],
     "rtsp://@/live/0/MAIN", "http://@:80/SnapShot_Ch0.jpg", (True, True, True), "10.200.1.2"),
]  # fmt: skip


def test_every_device_that_can_be_enriched_is() -> None:
    complete = {
        d.name
        for d in DATA.iterdir()
        if all((d / f"{op}.xml").is_file() for op in ("GetSystemDateAndTime", "GetCapabilities",
                                                        "GetProfiles"))
    }  # fmt: skip
    assert complete == {r[0] for r in ENRICHED}


@pytest.mark.parametrize(
    ("index", "device", "vendor", "model", "serial", "profiles", "stream", "snapshot", "flags",
     "advertised"),
    [(i, *row) for i, row in enumerate(ENRICHED, start=10)], ids=[r[0] for r in ENRICHED],
)  # fmt: skip
async def test_enrich(
    client: OnvifClient,
    index: int,
    device: str,
    vendor: str | None,
    model: str,
    serial: str,
    profiles: list[Encoded],
    stream: str | None,
    snapshot: str,
    flags: tuple[bool, bool, bool],
    advertised: str,
) -> None:
    address, port = f"127.6.9.{index}", _media_port(device)
    calls: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        operation = _operation(await request.read())
        calls.append(operation)
        return _answer(device, operation)

    try:
        async with serving(handle, address, port):
            cameras = await client.enrich(NETWORK, Target(address, port), CREDS)
    except PermissionError:
        pytest.skip(f"binding {address}:{port} needs privileges (the camera's advertised port)")

    assert len(cameras) == 1  # one video source: one camera
    camera = cameras[0]
    assert (camera.vendor, camera.model, camera.serial) == (vendor, model, serial)
    assert [(p.token, p.codec, p.width, p.height) for p in camera.profiles] == profiles
    at = stream.replace("@", address) if stream else None
    assert [p.stream_uri for p in camera.profiles] == [at] * len(profiles)
    assert camera.snapshot_uri == snapshot.replace("@", address)
    assert (camera.ptz, camera.events, camera.audio) == flags
    assert camera.uri_credentials == (
        UriCredentials("admin", "REDACTED") if device == "xiongmai-xm530" else None
    )
    assert camera.device_uri == f"http://{address}:{port}/onvif/device_service"

    # the clock is the recording's: years behind, compensated (WS-Security's Created follows)
    utc = next(r[1] for r in CLOCKS if r[0] == device).replace(tzinfo=dt.UTC)
    assert abs(camera.clock_offset_s - (utc - dt.datetime.now(dt.UTC)).total_seconds()) < 60
    skew = [n for n in camera.notes if n.startswith("clock skew ")]
    assert len(skew) == 1 and skew[0].endswith(" s compensated")
    replaced = f"host {advertised} replaced by {address}"
    expected = [f"media {replaced}"]
    expected += [f"stream {replaced}"] * (len(profiles) if stream else 0)
    expected += [f"snapshot {replaced}"]
    if device == "xiongmai-xm530":
        expected.append("credentials removed from the snapshot URI")
    assert [n for n in camera.notes if n not in skew] == expected
    assert CREDS.password not in repr(camera)

    assert calls.count("GetStreamUri") == len(profiles)
    assert {"GetSystemDateAndTime", "GetCapabilities", "GetProfiles", "GetSnapshotUri"} <= set(
        calls
    )
