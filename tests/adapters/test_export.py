"""The owner's export policy (adapters/export.py): which cameras leave, what of them, and when a
snapshot may be taken. Withholding is checked on what would be written to the outbox: the
encoded `camera.read` message must not contain a withheld value in any spelling."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest
from pydantic import ValidationError

from adapters import wire
from adapters.export import (
    WITHHOLDABLE,
    ExportPolicy,
    Refusal,
    SnapshotGate,
    exported,
    is_shared,
    reveals,
    window,
)
from adapters.wire import CameraInfo, ProfileInfo

REF = "0123456789abcdef0123456789abcdef"
ADDRESS = "127.2.0.5"
MAC = "02:a1:b2:c3:d4:e5"
UUID = "6b1f3c2e-9d4a-4e1b-8c7f-02a1b2c3d4e5"  # a node field that is the MAC, as cameras do
DEVICE = f"http://{ADDRESS}/onvif/device_service"
MEDIA = f"http://{ADDRESS}/onvif/media_service"
STREAM_MAIN = f"rtsp://{ADDRESS}:554/Streaming/Channels/101"
STREAM_SUB = f"rtsp://{ADDRESS}:554/live/Gate%203%20north/sub"
SNAPSHOT = f"http://{ADDRESS}/ISAPI/Streaming/channels/101/picture"
NEUTRAL = "GetServices answered slowly"


def camera(**changes: Any) -> CameraInfo:
    """A camera that says everything, several times over (every value also sits in a note)."""
    fields: dict[str, Any] = {
        "ref": REF,
        "address": ADDRESS,
        "source": "ws-discovery",
        "endpoint_reference": f"urn:uuid:{UUID}",
        "device_uri": DEVICE,
        "name": "Gate 3 north",
        "location": "Dongjing Rd 12",
        "lat": 31.230416,
        "lon": 121.473701,
        "hardware": "DS-2CD2143G2-I",
        "vendor": "Hikvision",
        "model": "DS-2CD2143G2-I",
        "firmware": "V5.7.3 build 230601",
        "serial": "SN4F2A9C1B7E3D",
        "mac": MAC,
        "hardware_id": "HW-7Q3K9",
        "services": {
            "http://www.onvif.org/ver10/device/wsdl": DEVICE,
            "http://www.onvif.org/ver10/media/wsdl": MEDIA,
        },
        "clock_offset_s": 3600.0,
        "profiles": [
            ProfileInfo(
                token="main",
                name="mainStream",
                codec="H264",
                width=2560,
                height=1440,
                fps=25,
                stream_uri=STREAM_MAIN,
            ),
            ProfileInfo(
                token="sub",
                name="Gate_3_north sub",
                codec="H265",
                width=640,
                height=360,
                fps=15,
                stream_uri=STREAM_SUB,
            ),
        ],
        "snapshot_uri": SNAPSHOT,
        "ptz": True,
        "audio": True,
        "events": True,
        "notes": [
            NEUTRAL,
            f"snapshot host 0.0.0.0 replaced by {ADDRESS}",
            "clock skew +3600 s compensated",
            "Gate 3 north: cabinet door open",
            "firmware V5.7.3 build 230601 drops RTSP keep-alives",
            "label says sn4f2a9c1b7e3d",
            "hikvision web UI on port 80",
            "HardwareId hw-7q3k9",
            f"probe answered by {UUID}",
            "MAC 02-A1-B2-C3-D4-E5 seen on the switch",
            "installed at Dongjing Rd 12",
            "GPS 31.2304 121.4737",
            "model ds-2cd2143g2-i",
            f"stream {STREAM_MAIN} slow",
            f"media service {MEDIA}",
            f"device {DEVICE}",
            f"snapshot {SNAPSHOT}",
        ],
    }
    fields.update(changes)
    return CameraInfo(**fields)


def leaving(out: CameraInfo | None) -> str:
    """What the adapter would write to its outbox for this camera, case-folded."""
    assert out is not None
    entry = wire.encode(wire.CameraRead(job="job-1", camera=out))
    return entry["m"].decode().casefold()


def export(withhold: tuple[str, ...] = (), **policy: Any) -> CameraInfo:
    out = exported(camera(), ExportPolicy(withhold=withhold, **policy))
    assert out is not None
    return out


# -- withheld fields -----------------------------------------------------------------------------

URIS_GONE = ("device_uri", "services", "snapshot_uri", "stream_uris")


def _uris_gone(out: CameraInfo) -> bool:
    return (
        out.device_uri is None
        and out.services == {}
        and out.snapshot_uri is None
        and all(p.stream_uri is None for p in out.profiles)
    )


# field withheld -> values that must appear nowhere, and what else must hold of the result
WITHHELD: list[tuple[str, tuple[str, ...], Any]] = [
    (
        "address",
        (ADDRESS, "127-2-0-5", "0.0.0.0"),
        lambda o: o.address is None and _uris_gone(o) and o.profiles[0].codec == "H264",
    ),
    (
        "name",
        ("Gate 3 north", "Gate_3_north", "Gate%203%20north"),
        lambda o: (
            o.name is None
            and o.profiles[1].name == ""
            and o.profiles[1].stream_uri is None
            and o.profiles[0].stream_uri == STREAM_MAIN
        ),
    ),
    (
        "location",
        ("Dongjing Rd 12", "31.23", "121.47"),
        lambda o: o.location is None and o.lat is None and o.lon is None,
    ),
    ("vendor", ("hikvision",), lambda o: o.vendor is None and o.model is not None),
    ("model", ("DS-2CD2143G2-I",), lambda o: o.model is None and o.hardware is None),
    ("firmware", ("V5.7.3 build 230601",), lambda o: o.firmware is None),
    ("serial", ("SN4F2A9C1B7E3D",), lambda o: o.serial is None),
    (
        "mac",
        (MAC, "02-a1-b2-c3-d4-e5", "02a1b2c3d4e5"),
        lambda o: o.mac is None and o.endpoint_reference is None and o.address == ADDRESS,
    ),
    ("hardware_id", ("HW-7Q3K9",), lambda o: o.hardware_id is None),
    (
        "endpoint_reference",
        (UUID, UUID.replace("-", "")),
        lambda o: o.endpoint_reference is None and o.mac == MAC,
    ),
    (
        "device_uri",
        (DEVICE,),
        # the device service is the same URL: it goes, the media service stays
        lambda o: o.device_uri is None and list(o.services.values()) == [MEDIA],
    ),
    (
        "services",
        (DEVICE, MEDIA),
        lambda o: o.services == {} and o.device_uri is None and o.snapshot_uri == SNAPSHOT,
    ),
    (
        "stream_uris",
        (STREAM_MAIN, STREAM_SUB),
        lambda o: (
            [(p.token, p.codec, p.width, p.height, p.fps, p.stream_uri) for p in o.profiles]
            == [("main", "H264", 2560, 1440, 25.0, None), ("sub", "H265", 640, 360, 15.0, None)]
            and o.snapshot_uri == SNAPSHOT
        ),
    ),
    ("snapshot_uri", (SNAPSHOT,), lambda o: o.snapshot_uri is None and o.device_uri == DEVICE),
    ("clock", ("+3600", "skew"), lambda o: o.clock_offset_s == 0.0),
    ("notes", (NEUTRAL, "cabinet"), lambda o: o.notes == []),
]


def test_the_table_covers_every_withholdable_field() -> None:
    assert [field for field, _, _ in WITHHELD] == list(WITHHOLDABLE)


@pytest.mark.parametrize(("field", "secrets", "holds"), WITHHELD, ids=[w[0] for w in WITHHELD])
def test_a_withheld_field_appears_nowhere(field: str, secrets: tuple[str, ...], holds: Any) -> None:
    out = export((field,))
    sent = leaving(out)
    for secret in secrets:
        assert secret.casefold() not in sent, f"{secret!r} leaked with {field} withheld"
    assert holds(out)
    # the rest leaves: ref, capabilities, and what names nothing withheld
    assert (out.ref, out.ptz, out.audio, out.events, out.rtsp_only) == (
        REF,
        True,
        True,
        True,
        False,
    )
    assert (NEUTRAL in out.notes) == (field != "notes")
    assert [p.token for p in out.profiles] == ["main", "sub"]


def test_the_default_policy_sends_the_camera_unchanged() -> None:
    assert exported(camera(), ExportPolicy()) == camera()


def test_everything_withheld_leaves_ref_capabilities_and_profile_shapes() -> None:
    out = export(WITHHOLDABLE)
    assert out == CameraInfo(
        ref=REF,
        source="ws-discovery",
        profiles=[
            ProfileInfo(
                token="main", name="mainStream", codec="H264", width=2560, height=1440, fps=25
            ),
            ProfileInfo(token="sub", codec="H265", width=640, height=360, fps=15),
        ],
        ptz=True,
        audio=True,
        events=True,
    )


# -- leak rules ----------------------------------------------------------------------------------

LEAKS: list[tuple[str, tuple[str, ...], dict[str, Any], tuple[str, ...]]] = [
    (
        "address in every text and spelling",
        ("address",),
        {
            "name": f"cam {ADDRESS}",
            "location": "pole 127-2-0-5",
            "endpoint_reference": f"http://{ADDRESS}/onvif/device_service",
            "hardware": "ip_127_2_0_5",
            "notes": [NEUTRAL, "host ip-127-2-0-5.cams.local", "answered from 127.2.0.5:80"],
        },
        (ADDRESS, "127-2-0-5", "127_2_0_5"),
    ),
    (
        "address: other addresses, hosts and URLs of the camera",
        ("address",),
        {
            "snapshot_uri": "http://cam-gate3.police.local/snap.jpg",
            "notes": [
                NEUTRAL,
                "internal address 10.9.8.7 advertised",
                "resolved cam-gate3.police.local",
                "redirected to https://nvr.police.local/cams",
                "IPv6 fd00:9::7 also answers",
            ],
        },
        (ADDRESS, "10.9.8.7", "cam-gate3", "nvr.police", "fd00:9::7"),
    ),
    (
        "IPv6 address compressed and exploded",
        ("address",),
        {
            "address": "fd00:2::5",
            "device_uri": "http://[fd00:2::5]/onvif/device_service",
            "notes": [NEUTRAL, "fd00:0002:0000:0000:0000:0000:0000:0005 replied"],
        },
        ("fd00:2::5", "fd00:0002:0000:0000:0000:0000:0000:0005"),
    ),
    (
        "IPv4-mapped IPv6 address",
        ("address",),
        {"address": f"::ffff:{ADDRESS}", "notes": [NEUTRAL, f"seen as {ADDRESS}"]},
        (ADDRESS, "::ffff:"),
    ),
    (
        "MAC in a SLAAC address (EUI-64) takes the address and its URIs",
        ("mac",),
        {
            "address": "fe80::a1:b2ff:fec3:d4e5",
            "device_uri": "http://[fe80::a1:b2ff:fec3:d4e5]/onvif/device_service",
            "notes": [NEUTRAL, "Cisco says 02a1.b2c3.d4e5", "link-local fe80::a1:b2ff:fec3:d4e5"],
        },
        ("a1:b2ff:fec3:d4e5", "02a1.b2c3.d4e5", "02a1b2c3d4e5", "02:a1:b2"),
    ),
    (
        "a SLAAC address only the EUI-64 reveals (a zero group compresses away)",
        ("mac",),
        {
            "mac": "02:00:5e:00:53:01",
            "address": "fe80::5eff:fe00:5301",
            "endpoint_reference": None,
            "notes": [NEUTRAL, "also answers on fe80:0:0:0:0:5eff:fe00:5301%eth0"],
        },
        ("5eff:fe00:5301", "02:00:5e:00:53:01"),
    ),
    (
        "the hardware scope names the model",
        ("model",),
        {"hardware": "IPC Bullet 4MP", "notes": [NEUTRAL, "scope hardware/IPC_Bullet_4MP"]},
        ("DS-2CD2143G2-I", "IPC Bullet 4MP", "IPC_Bullet_4MP"),
    ),
    (
        "serial inside the endpoint reference, hardware id, token and URIs",
        ("serial",),
        {
            "endpoint_reference": "urn:serial:SN4F2A9C1B7E3D",
            "hardware_id": "HW/SN4F2A9C1B7E3D",
            "snapshot_uri": f"http://{ADDRESS}/snap.jpg?sn=SN4F2A9C1B7E3D",
            "profiles": [
                ProfileInfo(token="main"),
                ProfileInfo(token="sn4f2a9c1b7e3d-sub", stream_uri=STREAM_SUB),
            ],
        },
        ("SN4F2A9C1B7E3D",),
    ),
    (
        "a name with spaces in a URI, percent-encoded, and in a scope",
        ("name",),
        {
            "name": "东京路口 3号",
            "snapshot_uri": f"http://{ADDRESS}/{quote('东京路口 3号')}.jpg",
            "notes": [NEUTRAL, "scope onvif://www.onvif.org/name/东京路口_3号"],
        },
        ("东京路口 3号", "东京路口_3号", quote("东京路口 3号").casefold()),
    ),
    (
        "a name equal to the address takes the address and every URI",
        ("name",),
        {"name": ADDRESS},
        (ADDRESS,),
    ),
    (
        "location: coordinates in any text",
        ("location",),
        {"name": "Gate (31.2304N, 121.4737E)", "notes": [NEUTRAL, "pole at 31.2, 121.5"]},
        ("31.23", "121.47", "31.2", "121.5"),
    ),
    (
        "clock notes",
        ("clock",),
        {
            "clock_offset_s": -28800.0,
            "notes": [
                NEUTRAL,
                "camera clock: no UTCDateTime, LocalDateTime read in CST-8 (UTC+08:00)",
                "clock skew -28800 s compensated",
            ],
        },
        ("28800", "cst-8", "utc"),
    ),
]


@pytest.mark.parametrize(
    ("withhold", "changes", "secrets"), [c[1:] for c in LEAKS], ids=[c[0] for c in LEAKS]
)
def test_what_would_reveal_a_withheld_value_is_withheld(
    withhold: tuple[str, ...], changes: dict[str, Any], secrets: tuple[str, ...]
) -> None:
    out = exported(camera(**changes), ExportPolicy(withhold=withhold))
    sent = leaving(out)
    for secret in secrets:
        assert secret.casefold() not in sent, f"{secret!r} leaked"
    assert out is not None
    assert out.ref == REF
    assert NEUTRAL in out.notes


@pytest.mark.parametrize(
    "changes",
    [{"name": ADDRESS}, {"address": "fe80::a1:b2ff:fec3:d4e5"}],
    ids=["name-is-address", "slaac-address"],
)
def test_an_address_that_leaks_goes_with_everything_that_names_it(
    changes: dict[str, Any],
) -> None:
    withhold = "name" if "name" in changes else "mac"
    out = exported(camera(**changes), ExportPolicy(withhold=(withhold,)))
    assert out is not None
    assert out.address is None
    assert _uris_gone(out)
    assert out.vendor == "Hikvision"


def test_a_profile_whose_token_names_a_withheld_value_is_dropped() -> None:
    cam = camera(profiles=[ProfileInfo(token="main"), ProfileInfo(token="SN4F2A9C1B7E3D")])
    out = exported(cam, ExportPolicy(withhold=("serial",)))
    assert out is not None
    assert [p.token for p in out.profiles] == ["main"]


def test_unknown_values_withhold_nothing_else() -> None:
    cam = camera(serial=None, mac=None, name="", hardware_id=None)
    out = exported(cam, ExportPolicy(withhold=("serial", "mac", "name", "hardware_id")))
    assert out is not None
    assert out.endpoint_reference == f"urn:uuid:{UUID}"
    assert out.notes == cam.notes
    assert out.name is None


@pytest.mark.parametrize(
    ("text", "withhold", "revealing"),
    [
        (f"camera {ADDRESS}: connection refused", ("address",), True),
        ("camera at 10.9.8.7: connection refused", ("address",), True),
        (f"GET {SNAPSHOT}: 401", ("snapshot_uri",), True),
        (f"GET {SNAPSHOT}: 401", ("serial",), False),
        ("device SN4F2A9C1B7E3D refused the credentials", ("serial",), True),
        ("camera clock 3600 s ahead", ("clock",), True),
        ("GetProfiles timed out after 5 s", tuple(WITHHOLDABLE), False),
        (f"camera {ADDRESS}: connection refused", (), False),
    ],
)
def test_reveals_screens_other_texts_bound_for_the_outbox(
    text: str, withhold: tuple[str, ...], revealing: bool
) -> None:
    assert reveals(text, camera(), ExportPolicy(withhold=withhold)) is revealing


# -- coarsened coordinates -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("decimals", "lat", "lon", "gone", "kept"),
    [
        (None, 31.230416, 121.473701, (), ("GPS 31.2304 121.4737", "31.230416,121.473701")),
        (6, 31.230416, 121.473701, (), ("GPS 31.2304 121.4737", "31.230416,121.473701")),
        (4, 31.2304, 121.4737, ("31.230416,121.473701",), ("GPS 31.2304 121.4737",)),
        (2, 31.23, 121.47, ("GPS 31.2304 121.4737", "31.230416,121.473701"), ("near 31.23",)),
        (0, 31.0, 121.0, ("GPS 31.2304 121.4737", "31.230416,121.473701", "near 31.23"), ()),
    ],
)
def test_coordinates_are_rounded_and_finer_ones_withheld_everywhere(
    decimals: int | None,
    lat: float,
    lon: float,
    gone: tuple[str, ...],
    kept: tuple[str, ...],
) -> None:
    texts = ["GPS 31.2304 121.4737", "31.230416,121.473701", "near 31.23"]
    cam = camera(location="31.230416,121.473701", notes=[NEUTRAL, *texts[::2]])
    out = exported(cam, ExportPolicy(coordinate_decimals=decimals))
    assert out is not None
    assert (out.lat, out.lon) == (lat, lon)
    shown = [out.location or "", *out.notes]
    for text in gone:
        assert text not in shown
    for text in kept:
        assert text in shown
    assert NEUTRAL in out.notes
    assert out.firmware == "V5.7.3 build 230601"  # a version is not a coordinate
    assert out.address == ADDRESS  # nor an address
    if decimals is not None and decimals < 6:
        assert "31.230416" not in leaving(out)


def test_coordinates_of_a_southern_western_camera_round_too() -> None:
    cam = camera(lat=-33.868820, lon=-151.209290, notes=[NEUTRAL, "at -33.86882, -151.20929"])
    out = exported(cam, ExportPolicy(coordinate_decimals=1))
    assert out is not None
    assert (out.lat, out.lon, out.notes) == (-33.9, -151.2, [NEUTRAL])


# -- which cameras leave -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "share", "withhold", "shared"),
    [
        (ADDRESS, None, [], True),
        (ADDRESS, ["127.2.0.0/16"], [], True),
        (ADDRESS, ["127.1.0.0/16", "127.3.0.0/16"], [], False),
        (ADDRESS, [], [], False),
        (ADDRESS, None, ["127.2.0.0/24"], False),
        (ADDRESS, ["127.2.0.0/16"], ["127.2.9.0/24"], True),
        ("127.2.9.1", ["127.2.0.0/16"], ["127.2.9.0/24"], False),
        (f"::ffff:{ADDRESS}", ["127.2.0.0/16"], [], True),
        ("fd00:2::5", ["fd00:2::/32"], [], True),
        ("fd00:2::5%eth0", ["fd00:2::/32"], [], True),
        ("[fd00:2::5]", ["127.2.0.0/16"], [], False),
        (None, None, [], True),
        (None, ["127.2.0.0/16"], [], False),
        ("cam-gate3.police.local", None, [], True),
        ("cam-gate3.police.local", None, ["10.0.0.0/8"], False),
    ],
)
def test_address_ranges(
    address: str | None, share: list[str] | None, withhold: list[str], shared: bool
) -> None:
    policy = ExportPolicy.model_validate({"share_cidrs": share, "withhold_cidrs": withhold})
    cam = camera(address=address)
    assert is_shared(cam, policy) is shared
    assert (exported(cam, policy) is not None) is shared


@pytest.mark.parametrize(
    ("category", "share", "withhold", "shared"),
    [
        ("checkpoint", None, [], True),
        ("checkpoint", ["checkpoint", "traffic"], [], True),
        ("Checkpoint ", ["checkpoint"], [], True),
        ("school", ["checkpoint", "traffic"], [], False),
        ("checkpoint", None, ["checkpoint"], False),
        ("checkpoint", ["checkpoint"], ["checkpoint"], False),
        ("雪亮工程", ["雪亮工程"], [], True),
        (None, None, [], True),
        (None, None, ["checkpoint"], True),
        (None, ["checkpoint"], [], False),
    ],
)
def test_categories(
    category: str | None, share: list[str] | None, withhold: list[str], shared: bool
) -> None:
    policy = ExportPolicy.model_validate(
        {"share_categories": share, "withhold_categories": withhold}
    )
    assert is_shared(camera(), policy, category=category) is shared
    assert (exported(camera(), policy, category=category) is None) is not shared


def test_ranges_and_categories_must_both_allow() -> None:
    policy = ExportPolicy.model_validate(
        {"share_cidrs": ["127.2.0.0/16"], "share_categories": ["traffic"]}
    )
    assert is_shared(camera(), policy, category="traffic")
    assert not is_shared(camera(), policy, category="school")
    assert not is_shared(camera(address="127.1.0.5"), policy, category="traffic")


# -- snapshots -----------------------------------------------------------------------------------


class Clock:
    """Wall and monotonic time, moved by the test."""

    def __init__(self, wall: float = 0.0, mono: float = 0.0) -> None:
        self.now, self.mono_now = wall, mono

    def wall(self) -> float:
        return self.now

    def mono(self) -> float:
        return self.mono_now


def at(iso: str) -> float:
    return datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp()


def snap(
    requester: str = "ops-wall#1a2b", reason: str = "", width: int | None = None
) -> wire.Snapshot:
    return wire.Snapshot(
        request="req-1",
        ref=REF,
        requester=requester,
        role="operator",
        reason=reason,
        width=width,
        deadline=2e9,
    )


def gate(clock: Clock | None = None, **kwargs: Any) -> SnapshotGate:
    clock = clock or Clock()
    return SnapshotGate("police", clock=clock.wall, monotonic=clock.mono, **kwargs)


def test_the_default_policy_allows_snapshots() -> None:
    assert gate().decide(snap(), ExportPolicy()) is None


def test_a_network_that_shares_no_snapshots() -> None:
    policy = ExportPolicy(snapshots=False, reason_required=True, rate_limit_per_minute=1)
    assert gate().decide(snap(), policy) == Refusal(
        "snapshots", "the police network shares no snapshots"
    )


@pytest.mark.parametrize(
    ("hours", "zone", "when", "allowed"),
    [
        (["07:00-22:00"], "Asia/Shanghai", "2024-05-01T23:30", True),  # 07:30 local
        (["07:00-22:00"], "Asia/Shanghai", "2024-05-01T22:59", False),  # 06:59
        (["07:00-22:00"], "Asia/Shanghai", "2024-05-01T13:59", True),  # 21:59
        (["07:00-22:00"], "Asia/Shanghai", "2024-05-01T14:00", False),  # 22:00: end excluded
        (["07:00-22:00"], "UTC", "2024-05-01T14:00", True),  # the same instant elsewhere
        (["22:00-06:00"], "Asia/Shanghai", "2024-05-01T14:00", True),  # 22:00
        (["22:00-06:00"], "Asia/Shanghai", "2024-05-01T16:00", True),  # 00:00
        (["22:00-06:00"], "Asia/Shanghai", "2024-05-01T21:59", True),  # 05:59
        (["22:00-06:00"], "Asia/Shanghai", "2024-05-01T22:00", False),  # 06:00
        (["22:00-06:00"], "Asia/Shanghai", "2024-05-01T06:00", False),  # 14:00
        (["22:00-06:00"], "UTC", "2024-05-01T14:00", False),
        (["08:00-09:00"], "Europe/Berlin", "2024-07-01T06:30", True),  # 08:30 CEST
        (["08:00-09:00"], "Europe/Berlin", "2024-01-15T06:30", False),  # 07:30 CET
        (["07:00-12:00", "14:00-24:00"], "Asia/Shanghai", "2024-05-01T05:00", False),  # 13:00
        (["07:00-12:00", "14:00-24:00"], "Asia/Shanghai", "2024-05-01T15:59", True),  # 23:59
        (["00:00-24:00"], "Asia/Shanghai", "2024-05-01T16:00", True),
    ],
)
def test_hours_in_the_adapters_time_zone(
    hours: list[str], zone: str, when: str, allowed: bool
) -> None:
    policy = ExportPolicy(hours=tuple(hours), timezone=zone)
    refusal = gate(Clock(wall=at(when))).decide(snap(), policy)
    if allowed:
        assert refusal is None
    else:
        assert refusal == Refusal("hours", f"snapshots are shared {', '.join(hours)} ({zone})")


def test_the_hours_message() -> None:
    policy = ExportPolicy(hours=("07:00-22:00",), timezone="Asia/Shanghai")
    refusal = gate(Clock(wall=at("2024-05-01T15:00"))).decide(snap(), policy)
    assert refusal is not None
    assert refusal.reason == "snapshots are shared 07:00-22:00 (Asia/Shanghai)"


@pytest.mark.parametrize(
    ("reason", "allowed"), [("", False), ("   ", False), ("ticket 4711", True)]
)
def test_a_reason_when_required(reason: str, allowed: bool) -> None:
    refusal = gate().decide(snap(reason=reason), ExportPolicy(reason_required=True))
    assert refusal == (
        None if allowed else Refusal("reason", "the police network requires a reason")
    )


@pytest.mark.parametrize(
    ("asked", "max_width", "width"),
    [
        (None, None, None),
        (None, 1280, 1280),
        (640, 1280, 640),
        (1920, 1280, 1280),
        (640, None, 640),
    ],
)
def test_width(asked: int | None, max_width: int | None, width: int | None) -> None:
    assert gate().width(snap(width=asked), ExportPolicy(max_width=max_width)) == width


def rate_limited(limit: int, wait: int) -> Refusal:
    noun = "snapshot" if limit == 1 else "snapshots"
    return Refusal(
        "rate_limit", f"at most {limit} {noun} a minute per requester; retry in {wait} s", wait
    )


def test_rate_limit_per_requester_in_a_sliding_minute() -> None:
    clock = Clock()
    g = gate(clock)
    policy = ExportPolicy(rate_limit_per_minute=3)

    def take(t: float, requester: str = "a") -> Refusal | None:
        clock.mono_now = t
        return g.decide(snap(requester), policy)

    assert [take(0.0), take(0.5), take(10.0)] == [None, None, None]
    assert take(20.0) == rate_limited(3, 41)  # second 0 (two) frees at 61 s
    assert take(20.0, "b") is None  # per requester
    assert take(60.9) == rate_limited(3, 1)
    assert take(61.0) is None  # second 0 expired: one in the window (10 s) + this one
    assert take(61.5) is None
    assert take(62.0) == rate_limited(3, 9)  # second 10 frees at 71 s
    assert take(71.0) is None


def test_refused_requests_do_not_count() -> None:
    clock = Clock()
    g = gate(clock)
    policy = ExportPolicy(rate_limit_per_minute=1, reason_required=True)
    for _ in range(5):
        assert g.decide(snap(reason=""), policy) is not None  # no reason: refused, not counted
    assert g.decide(snap(reason="ticket 1"), policy) is None
    assert g.decide(snap(reason="ticket 1"), policy) == rate_limited(1, 61)
    clock.mono_now = 30.0
    assert g.decide(snap(reason="ticket 1"), policy) == rate_limited(1, 31)  # not pushed back


def test_never_more_than_the_limit_in_any_sixty_seconds() -> None:
    clock = Clock()
    g = gate(clock)
    policy = ExportPolicy(rate_limit_per_minute=7)
    allowed: list[float] = []
    for step in range(1600):  # every 0.2 s for 320 s
        clock.mono_now = step * 0.2
        if g.decide(snap(), policy) is None:
            allowed.append(clock.mono_now)
    assert all(sum(1 for u in allowed if t - 60 < u <= t) <= 7 for t in allowed)
    assert len(allowed) >= 7 * 5  # and it does let them through, every minute or so


def test_idle_requesters_are_forgotten_and_memory_is_bounded() -> None:
    clock = Clock()
    g = gate(clock, max_requesters=2)
    policy = ExportPolicy(rate_limit_per_minute=5)
    assert g.decide(snap("a"), policy) is None
    clock.mono_now = 10.0
    assert g.decide(snap("b"), policy) is None
    clock.mono_now = 20.0
    assert g.decide(snap("c"), policy) == Refusal(
        "requesters", "too many requesters in the last minute; retry in 41 s", 41
    )
    assert g.decide(snap("a"), policy) is None  # known requesters go on
    clock.mono_now = 71.0  # b idle (its second 10 expired); a is not (second 20)
    assert g.decide(snap("c"), policy) is None
    assert g.requesters == 2
    clock.mono_now = 500.0
    assert g.decide(snap("d"), policy) is None
    assert g.requesters == 1


def test_no_rate_limit_remembers_no_one() -> None:
    g = gate()
    for i in range(100):
        assert g.decide(snap(f"op{i}"), ExportPolicy()) is None
    assert g.requesters == 0


def test_checks_run_in_order() -> None:
    clock = Clock(wall=at("2024-05-01T15:00"))  # 23:00 in Shanghai
    policy = ExportPolicy(hours=("07:00-22:00",), timezone="Asia/Shanghai", reason_required=True)
    refusal = gate(clock).decide(snap(reason=""), policy)
    assert refusal is not None and refusal.rule == "hours"


# -- configuration -------------------------------------------------------------------------------

ALLOWED = ", ".join(WITHHOLDABLE)


@pytest.mark.parametrize(
    ("config", "loc", "msg"),
    [
        (
            {"withhold": ["address", "adress"]},
            ("withhold",),
            f"Value error, unknown field 'adress' in withhold; the fields are: {ALLOWED}",
        ),
        (
            {"hours": ["7:00-22:00"], "timezone": "Asia/Shanghai"},
            ("hours",),
            'Value error, hours window \'7:00-22:00\' is not "HH:MM-HH:MM" (e.g. "07:00-22:00")',
        ),
        (
            {"hours": ["07:00 - 22:00"], "timezone": "Asia/Shanghai"},
            ("hours",),
            'Value error, hours window \'07:00 - 22:00\' is not "HH:MM-HH:MM" (e.g. "07:00-22:00")',
        ),
        (
            {"hours": ["07:00-25:00"], "timezone": "Asia/Shanghai"},
            ("hours",),
            "Value error, hours window '07:00-25:00' names a time that does not exist",
        ),
        (
            {"hours": ["24:00-06:00"], "timezone": "Asia/Shanghai"},
            ("hours",),
            "Value error, hours window '24:00-06:00' names a time that does not exist",
        ),
        (
            {"hours": ["07:60-08:00"], "timezone": "Asia/Shanghai"},
            ("hours",),
            "Value error, hours window '07:60-08:00' names a time that does not exist",
        ),
        (
            {"hours": ["08:00-08:00"], "timezone": "Asia/Shanghai"},
            ("hours",),
            "Value error, hours window '08:00-08:00' is empty; leave hours empty for always",
        ),
        (
            {"hours": ["07:00-22:00"]},
            (),
            'Value error, hours need a timezone, e.g. "Asia/Shanghai"',
        ),
        (
            {"timezone": "Asia/Shangai"},
            ("timezone",),
            "Value error, unknown time zone 'Asia/Shangai'",
        ),
        (
            {"timezone": "../../etc/passwd"},
            ("timezone",),
            "Value error, unknown time zone '../../etc/passwd'",
        ),
        ({"timezone": "Asia"}, ("timezone",), "Value error, unknown time zone 'Asia'"),
        (
            {"coordinate_decimals": 7},
            ("coordinate_decimals",),
            "Input should be less than or equal to 6",
        ),
        (
            {"coordinate_decimals": -1},
            ("coordinate_decimals",),
            "Input should be greater than or equal to 0",
        ),
        ({"max_width": 8000}, ("max_width",), "Input should be less than or equal to 7680"),
        (
            {"rate_limit_per_minute": 0},
            ("rate_limit_per_minute",),
            "Input should be greater than or equal to 1",
        ),
        ({"snapshot": False}, ("snapshot",), "Extra inputs are not permitted"),
        (
            {"share_categories": [""]},
            ("share_categories", 0),
            "String should have at least 1 character",
        ),
    ],
)
def test_configuration_errors(config: dict[str, Any], loc: tuple[Any, ...], msg: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ExportPolicy.model_validate(config)
    error = caught.value.errors()[0]
    assert (error["loc"], error["msg"]) == (loc, msg)


def test_a_range_with_host_bits_is_an_error() -> None:
    with pytest.raises(ValidationError) as caught:
        ExportPolicy.model_validate({"share_cidrs": ["127.2.0.5/16"]})
    assert caught.value.errors()[0]["loc"][:2] == ("share_cidrs", 0)


def test_a_policy_from_toml() -> None:
    text = """
    share_cidrs = ["127.2.0.0/16"]
    withhold_cidrs = ["127.2.9.0/24"]
    withhold_categories = ["checkpoint"]
    withhold = ["notes", "serial", "address", "serial"]
    coordinate_decimals = 3
    max_width = 1280
    hours = ["07:00-22:00"]
    timezone = "Asia/Shanghai"
    reason_required = true
    rate_limit_per_minute = 10
    """
    policy = ExportPolicy.model_validate(tomllib.loads(text))
    assert policy.withhold == ("address", "serial", "notes")  # known order, once each
    assert policy.snapshots is True
    with pytest.raises(ValidationError):
        policy.snapshots = False  # type: ignore[misc]


def test_every_field_is_described() -> None:
    assert all(f.description for f in ExportPolicy.model_fields.values())


@pytest.mark.parametrize(
    ("text", "minutes"),
    [("07:00-22:00", (420, 1320)), ("22:00-06:00", (1320, 360)), ("00:00-24:00", (0, 1440))],
)
def test_window(text: str, minutes: tuple[int, int]) -> None:
    assert window(text) == minutes
