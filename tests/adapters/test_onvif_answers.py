"""Reading one camera's ONVIF answers: whatever a camera says, the outcome is its record (with
"unknown" for what it garbled) or its own attributed failure, never an exception of another type.

Table-driven tests of the parsing helpers of adapters/onvif.py (clock, POSIX time zones, values
of the wrong kind, well-formedness), and of the error boundary: any exception type raised while
one call is fetched or parsed becomes that call's `CallFailed`. The same against the real
simulator on 127.1.221.0/26 (the quirk modes themselves are exercised end to end in
test_discovery_e2e.py and tests/gateway/test_discovery_api.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from lxml import etree

from adapters import onvif
from adapters.base import CameraUnreachable, Discovered, Profile, Target
from adapters.onvif import (
    CallFailed,
    OnvifClient,
    check_answer_xml,
    clock_offset,
    describe_exception,
    posix_tz_offset,
    redact,
)
from adapters.simulator import soap
from adapters.simulator.devices import ONVIF_PORT, ClockQuirk, Quirks, SimDevice
from adapters.simulator.fleet import FleetCamera
from adapters.simulator.server import Simulator, build_devices
from adapters.uris import UriCredentials

NOW = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
PASSWORD = "answers-pw-8Kd%x"
NETWORK = "governance"


def ns(**fields: Any) -> SimpleNamespace:
    return SimpleNamespace(**fields)


def when(
    year: Any = 2024, month: Any = 5, day: Any = 6, hour: Any = 7, minute: Any = 8, second: Any = 9
) -> SimpleNamespace:
    """An ONVIF DateTime as zeep gives it."""
    return ns(
        Date=ns(Year=year, Month=month, Day=day), Time=ns(Hour=hour, Minute=minute, Second=second)
    )


class Exploding:
    """A value whose every attribute access raises (a proxy gone wrong, a hostile object)."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"no {name} here")


# --------------------------------------------------------------------------- the clock

CLOCKS: list[tuple[str, Any, float, str | None]] = [
    ("utc", ns(UTCDateTime=when()), 0.0, None),
    ("utc ahead", ns(UTCDateTime=when(minute=18)), 600.0, None),
    ("year as text", ns(UTCDateTime=when(year="2024")), 0.0, None),
    ("leap second", ns(UTCDateTime=when(second=60)), 50.0, None),
    ("month 13", ns(UTCDateTime=when(month=13)), 0.0,
     "camera clock unusable (ValueError: month must be in 1..12)"),
    ("hour 25", ns(UTCDateTime=when(hour=25)), 0.0,
     "camera clock unusable (ValueError: hour must be in 0..23)"),
    ("day 0", ns(UTCDateTime=when(day=0)), 0.0,
     "camera clock unusable (ValueError: day is out of range for month)"),
    ("no Date", ns(UTCDateTime=ns(Date=None, Time=when().Time)), 0.0,
     "camera clock unusable (ValueError: UTCDateTime has no Date)"),
    ("no Time", ns(UTCDateTime=ns(Date=when().Date)), 0.0,
     "camera clock unusable (ValueError: UTCDateTime has no Time)"),
    ("text for Date", ns(UTCDateTime=ns(Date="2024-05-06", Time=when().Time)), 0.0,
     "camera clock unusable (ValueError: UTCDateTime has no Date/Year)"),
    ("text for UTCDateTime", ns(UTCDateTime="2024-05-06T07:08:09Z"), 0.0,
     "camera clock unusable (ValueError: UTCDateTime has no Date)"),
    ("structure for Month", ns(UTCDateTime=when(month=ns(Value=5))), 0.0,
     "camera clock unusable (TypeError: UTCDateTime Date/Month is not a number)"),
    ("Month not a number", ns(UTCDateTime=when(month="May")), 0.0,
     "camera clock unusable (ValueError: invalid literal for int() with base 10: 'May')"),
    ("huge year", ns(UTCDateTime=when(year=10**30)), 0.0,
     "camera clock unusable (OverflowError: Python int too large to convert to C long)"),
    ("exploding", ns(UTCDateTime=ns(Date=Exploding(), Time=when().Time)), 0.0,
     "camera clock unusable (ValueError: UTCDateTime has no Date/Year)"),
    ("nothing", ns(), 0.0,
     "camera clock unusable (ValueError: neither UTCDateTime nor LocalDateTime)"),
    ("no answer", None, 0.0,
     "camera clock unusable (ValueError: neither UTCDateTime nor LocalDateTime)"),
    ("local in CST-8", ns(LocalDateTime=when(hour=15), TimeZone=ns(TZ="CST-8")), 0.0,
     "camera clock: no UTCDateTime, LocalDateTime read in CST-8 (UTC+08:00)"),
    ("local in GMT+05:30", ns(LocalDateTime=when(hour=1, minute=38), TimeZone=ns(TZ="GMT+05:30")),
     0.0, "camera clock: no UTCDateTime, LocalDateTime read in GMT+05:30 (UTC-05:30)"),
    ("local in EST5EDT, DST on",
     ns(LocalDateTime=when(hour=3), TimeZone=ns(TZ="EST5EDT,M3.2.0,M11.1.0"), DaylightSavings=True),
     0.0, "camera clock: no UTCDateTime, LocalDateTime read in EST5EDT,M3.2.0,M11.1.0 (UTC-04:00)"),
    ("local, zone not POSIX", ns(LocalDateTime=when(hour=15), TimeZone=ns(TZ="Asia/Shanghai")),
     8 * 3600.0, "camera clock: no UTCDateTime, LocalDateTime taken as UTC "
     "(time zone 'Asia/Shanghai' not understood)"),
    ("local, no zone", ns(LocalDateTime=when()), 0.0,
     "camera clock: no UTCDateTime, LocalDateTime taken as UTC (no time zone)"),
    ("local, month 13", ns(LocalDateTime=when(month=13), TimeZone=ns(TZ="CST-8")), 0.0,
     "camera clock unusable (ValueError: month must be in 1..12)"),
]  # fmt: skip


@pytest.mark.parametrize(("answer", "offset", "note"), [c[1:] for c in CLOCKS],
                         ids=[c[0] for c in CLOCKS])  # fmt: skip
def test_clock_offset(answer: Any, offset: float, note: str | None) -> None:
    assert clock_offset(answer, NOW) == (offset, note)


TIME_ZONES: list[tuple[str, bool, float | None]] = [
    ("CST-8", False, 8.0),
    ("CST-8", True, 8.0),  # no DST part: DaylightSavings changes nothing
    ("CST-8:00:00", False, 8.0),
    ("GMT+05:30", False, -5.5),
    ("IST-5:30", False, 5.5),
    ("<+0545>-5:45", False, 5.75),
    ("UTC0", False, 0.0),
    ("EST5EDT,M3.2.0,M11.1.0", False, -5.0),
    ("EST5EDT,M3.2.0,M11.1.0", True, -4.0),
    ("CET-1CEST-2,M3.5.0,M10.5.0/3", True, 2.0),
    (" CST-8 ", False, 8.0),
    ("Asia/Shanghai", False, None),
    ("", False, None),
    ("CST", False, None),  # no offset
    ("CS-8", False, None),  # a name has three letters at least
    ("CST-25", False, None),
    ("CST-8:61", False, None),
    ("CST-8" + "X" * 64, False, None),  # longer than any real zone
    ("CST-8\n", False, 8.0),
]


@pytest.mark.parametrize(("tz", "dst", "hours"), TIME_ZONES)
def test_posix_time_zones(tz: str, dst: bool, hours: float | None) -> None:
    offset = posix_tz_offset(tz, dst)
    assert (offset.total_seconds() / 3600 if offset is not None else None) == hours


# --------------------------------------------------------------------------- values of any kind

H264 = ns(Encoding="H264", Resolution=ns(Width=1920, Height=1080),
          RateControl=ns(FrameRateLimit=25))  # fmt: skip

PROFILES: list[tuple[str, Any, Profile]] = [
    ("whole", ns(Name="main", VideoEncoderConfiguration=H264),
     Profile("t", "main", "H264", 1920, 1080, 25.0)),
    ("text for Resolution",
     ns(Name="main", VideoEncoderConfiguration=ns(Encoding="H264", Resolution="1920x1080")),
     Profile("t", "main", "H264")),
    ("text for the encoder", ns(Name="main", VideoEncoderConfiguration="H264 1080p"),
     Profile("t", "main")),
    ("structure for Name and Encoding",
     ns(Name=ns(x=1), VideoEncoderConfiguration=ns(Encoding=ns(y=2))), Profile("t")),
    ("impossible numbers",
     ns(VideoEncoderConfiguration=ns(Resolution=ns(Width=-1, Height=10**9),
                                     RateControl=ns(FrameRateLimit=float("nan"))))
     , Profile("t")),
    ("numbers as text",
     ns(VideoEncoderConfiguration=ns(Resolution=ns(Width="640", Height=" 360 "),
                                     RateControl=ns(FrameRateLimit=Decimal("12.5")))),
     Profile("t", width=640, height=360, fps=12.5)),
    ("infinite and boolean",
     ns(VideoEncoderConfiguration=ns(Resolution=ns(Width=float("inf"), Height=True),
                                     RateControl=ns(FrameRateLimit="fast")))
     , Profile("t")),
    ("exploding", Exploding(), Profile("t")),
    ("text for the profile", "Profile_1", Profile("t")),
]  # fmt: skip


@pytest.mark.parametrize(("answer", "expected"), [p[1:] for p in PROFILES],
                         ids=[p[0] for p in PROFILES])  # fmt: skip
def test_a_profile_keeps_what_it_can_and_leaves_the_rest_unknown(
    answer: Any, expected: Profile
) -> None:
    assert onvif._profile("t", answer) == expected


@pytest.mark.parametrize(
    ("answer", "tokens", "notes"),
    [
        ([ns(token="P1"), ns(token="P2")], ["P1", "P2"], []),
        (ns(token="P1"), ["P1"], []),  # one profile, not in a list
        (None, [], []),
        ("Profile_1", [], ["GetProfiles: a profile without a usable token ignored"]),
        (
            [ns(token=None), ns(token="x" * 65), ns(token="P2")],
            ["P2"],
            ["GetProfiles: a profile without a usable token ignored"] * 2,
        ),
    ],
)
def test_profiles_without_a_token_are_ignored(
    answer: Any, tokens: list[str], notes: list[str]
) -> None:
    seen: list[str] = []
    assert [t for t, _ in onvif._profiles(answer, seen)] == tokens
    assert seen == notes


@pytest.mark.parametrize(
    ("answer", "mac"),
    [
        ([ns(Info=ns(HwAddress="02:AB:cd:00:11:22"))], "02:ab:cd:00:11:22"),
        ([ns(Info=ns(HwAddress="02-ab-cd-00-11-22"))], "02:ab:cd:00:11:22"),
        (ns(Info=ns(HwAddress="02:ab:cd:00:11:22")), "02:ab:cd:00:11:22"),
        ([ns(Info=ns(HwAddress="zz:zz:zz:zz:zz:zz"))], None),
        ([ns(Info="eth0 02:ab:cd:00:11:22")], None),
        ([ns(Info=None), ns(Info=ns(HwAddress="02:ab:cd:00:11:23"))], "02:ab:cd:00:11:23"),
        ("02:ab:cd:00:11:22", None),
        ([Exploding()], None),
        (None, None),
    ],
)
def test_mac_address(answer: Any, mac: str | None) -> None:
    assert onvif._mac(answer) == mac


def test_services_keep_the_usable_ones_on_the_answering_host() -> None:
    answer = [
        ns(Namespace="ns:device", XAddr="http://10.0.0.1/onvif/device_service"),
        ns(Namespace="ns:media", XAddr="http://[broken/onvif/media"),
        ns(Namespace="ns:events", XAddr="http://127.1.221.9:99999/onvif/events"),
        ns(Namespace=ns(x=1), XAddr="http://127.1.221.9/onvif/x"),
        "ns:ptz http://127.1.221.9/onvif/ptz",
        Exploding(),
    ]
    assert onvif._services(answer, "127.1.221.9", []) == {
        "ns:device": "http://127.1.221.9/onvif/device_service"
    }


@pytest.mark.parametrize(
    ("uri", "clean", "notes"),
    [
        ("rtsp://127.1.221.9:554/s1", "rtsp://127.1.221.9:554/s1", []),
        ("rtsp://0.0.0.0/s1", "rtsp://127.1.221.9/s1",
         ["stream host 0.0.0.0 replaced by 127.1.221.9"]),
        ("rtsp://[::1/s1", None, ["stream URI unusable (ValueError: Invalid IPv6 URL)"]),
        ("rtsp://127.1.221.9:70000/s1", None,
         ["stream URI unusable (ValueError: Port out of range 0-65535)"]),
        ("javascript:alert(1)", None, ["stream URI with scheme 'javascript' ignored"]),
        (None, None, []),
    ],
)  # fmt: skip
def test_stream_uris(uri: str | None, clean: str | None, notes: list[str]) -> None:
    seen: list[str] = []
    assert onvif._clean_uri(uri, "127.1.221.9", seen, "stream") == (clean, None)
    assert seen == notes


@pytest.mark.parametrize(
    ("caps", "url", "notes"),
    [
        (ns(Media=ns(XAddr="http://127.1.221.9/onvif/media")),
         "http://127.1.221.9/onvif/media", []),
        (ns(Media=ns(XAddr="http://0.0.0.0/m")), "http://127.1.221.9/m",
         ["media host 0.0.0.0 replaced by 127.1.221.9"]),
        (ns(Media="http://127.1.221.9/onvif/media"), "http://127.1.221.9/onvif/device_service", []),
        (ns(Media=ns(XAddr="file:///etc/passwd")), "http://127.1.221.9/onvif/device_service",
         ["GetCapabilities: media XAddr unusable (ValueError: not an http(s) URL)"]),
        (ns(Media=ns(XAddr="http://[x/m")), "http://127.1.221.9/onvif/device_service",
         ["GetCapabilities: media XAddr unusable (ValueError: Invalid IPv6 URL)"]),
        ("capabilities", "http://127.1.221.9/onvif/device_service", []),
        (None, "http://127.1.221.9/onvif/device_service", []),
    ],
)  # fmt: skip
def test_media_service_address(caps: Any, url: str, notes: list[str]) -> None:
    seen: list[str] = []
    device = "http://127.1.221.9/onvif/device_service"
    assert onvif._media_url(caps, device, "127.1.221.9", seen) == url
    assert seen == notes


@pytest.mark.parametrize(
    ("info", "vendor", "serial"),
    [
        (ns(Manufacturer=" Acme ", SerialNumber=12345), "Acme", "12345"),
        (ns(Manufacturer="", SerialNumber=ns(x=1)), None, None),
        ("Acme IPC", None, None),
        (None, None, None),
        (ns(Manufacturer="A" * 300), "A" * 100, None),
    ],
)
def test_device_information(info: Any, vendor: str | None, serial: str | None) -> None:
    about = onvif._device_info(info)
    assert (about["Manufacturer"], about["SerialNumber"]) == (vendor, serial)


# --------------------------------------------------------------------------- answers as bytes

_OPEN = f'<?xml version="1.0" encoding="UTF-8"?>\n<e:Envelope xmlns:e="{soap.NS_ENV}"><e:Body>'
_CLOSE = "</e:Body></e:Envelope>"


def _doc(body: str | bytes) -> bytes:
    return _OPEN.encode() + (body.encode() if isinstance(body, str) else body) + _CLOSE.encode()


ANSWERS: list[tuple[str, bytes, str | None]] = [
    ("plain", _doc("<a>Acme</a>"), None),
    ("leading newline", b"\r\n" + _doc("<a/>"), None),
    ("empty", b"", None),
    ("255 deep", _doc("<x>" * 254 + "</x>" * 254), None),
    ("100,000 deep", _doc("<x>" * 100_000 + "</x>" * 100_000),
     "XMLSyntaxError: Excessive depth in document: 256, use XML_PARSE_HUGE option, "
     "line 2, column 835"),
    ("invalid UTF-8", _doc(b"<a>" + "海康".encode("gb18030") + b"</a>"),
     "XMLSyntaxError: Invalid bytes in character encoding, line 2, column 74"),
    ("billion laughs", soap.BILLION_LAUGHS, "DTDForbidden"),
    ("external entity", soap.EXTERNAL_ENTITY, "DTDForbidden"),
    ("truncated", soap.MALFORMED,
     "XMLSyntaxError: Invalid character: Char 0x0 out of allowed range, line 2, column 74"),
    ("not XML", b"<html><body>401<br></body></html>",
     "XMLSyntaxError: Opening and ending tag mismatch: br line 1 and body, line 1, column 27"),
]  # fmt: skip


@pytest.mark.parametrize(("content", "error"), [a[1:] for a in ANSWERS],
                         ids=[a[0] for a in ANSWERS])  # fmt: skip
def test_an_answer_must_be_well_formed_xml_within_limits(content: bytes, error: str | None) -> None:
    if error is None:
        check_answer_xml(content)
        return
    with pytest.raises(Exception) as caught:
        check_answer_xml(content)
    assert describe_exception(caught.value) == error


# --------------------------------------------------------------------------- the error boundary


def _unicode_error() -> UnicodeDecodeError:
    return UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")


def _syntax_error() -> etree.XMLSyntaxError:
    try:
        etree.fromstring(b"<a><b></a>")
    except etree.XMLSyntaxError as exc:
        return exc
    raise AssertionError("parsed")


class Weird(Exception):
    pass


RAISED: list[tuple[Callable[[], BaseException], str]] = [
    (lambda: ValueError("month must be in 1..12"), "ValueError: month must be in 1..12"),
    (lambda: AttributeError("'str' object has no attribute 'Year'"),
     "AttributeError: 'str' object has no attribute 'Year'"),
    (lambda: TypeError("int() argument must be a string"),
     "TypeError: int() argument must be a string"),
    (lambda: RecursionError("maximum recursion depth exceeded"),
     "RecursionError: maximum recursion depth exceeded"),
    (_unicode_error,
     "UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"),
    (_syntax_error,
     "XMLSyntaxError: Opening and ending tag mismatch: b line 1 and a, line 1, column 11"),
    (lambda: KeyError("Date"), "KeyError: 'Date'"),
    (Weird, "Weird"),
    (MemoryError, "MemoryError"),
    (lambda: ValueError("x" * 500), "ValueError: " + "x" * 157 + "..."),
    (lambda: ValueError("first line\nContent: b'<env:Envelope>...'"), "ValueError: first line"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "what"), RAISED)
async def test_any_exception_of_a_call_is_that_calls_unusable_answer(
    make: Callable[[], BaseException], what: str
) -> None:
    async def call() -> str:
        raise make()

    with pytest.raises(CallFailed) as caught:
        await onvif._step("GetSystemDateAndTime", call())
    assert str(caught.value) == f"GetSystemDateAndTime: unusable answer ({what})"
    assert (caught.value.call, caught.value.cause) == ("GetSystemDateAndTime", what)

    notes: list[str] = []
    assert await onvif._optional("GetDeviceInformation", call(), notes) is None
    assert notes == [f"GetDeviceInformation unusable: {what}"]


@pytest.mark.parametrize(
    ("error", "kind", "message"),
    [
        (TimeoutError(), CameraUnreachable, "GetDeviceInformation: TimeoutError"),
        (ConnectionResetError(), CameraUnreachable, "GetDeviceInformation: ConnectionResetError"),
    ],
)
async def test_an_optional_call_still_fails_the_camera_when_it_does_not_answer(
    error: Exception, kind: type[Exception], message: str
) -> None:
    async def call() -> None:
        raise error

    with pytest.raises(kind) as caught:
        await onvif._optional("GetDeviceInformation", call(), [])
    assert str(caught.value) == message


def test_reasons_never_carry_the_password() -> None:
    creds = UriCredentials("admin", PASSWORD)
    echoed = f"rtsp://admin:{PASSWORD}@x/ and rtsp://admin:answers-pw-8Kd%25x@x/"
    assert redact(echoed, creds) == "rtsp://admin:***@x/ and rtsp://admin:***@x/"
    assert redact("no secret here", creds) == "no secret here"
    assert redact("a b c", UriCredentials("admin", "b")) == "a b c"  # too short to look for


# --------------------------------------------------------------------------- against the simulator


@pytest.fixture(scope="module")
async def cameras() -> AsyncIterator[dict[str, SimDevice]]:
    roles = {"good": Quirks(), "month-13": Quirks(clock_quirk=ClockQuirk.month_13)}
    fleet = [
        FleetCamera(f"answers-{role}", NETWORK, "sharp-eyes", role, f"127.1.221.{i}",
                    31.08, 121.3, "Test Rd")
        for i, role in enumerate(roles, start=1)
    ]  # fmt: skip
    devices = build_devices(fleet, {NETWORK: PASSWORD}, quirks_for=lambda c: roles[c.name])
    async with Simulator(devices, answer_delay_s=0.0, serve_rtsp=False):
        yield {d.camera.name: d for d in devices}


async def enrich(device: SimDevice) -> Discovered:
    """The device's one camera (a camera of one video source)."""
    async with OnvifClient(timeout_s=2.0) as client:
        [camera] = await client.enrich(
            NETWORK, Target(device.address, ONVIF_PORT), UriCredentials("admin", PASSWORD)
        )
        return camera


def _raise(exc: BaseException) -> Callable[..., Any]:
    def explode(*args: object) -> Any:
        raise exc

    return explode


@pytest.mark.parametrize(
    ("helper", "error", "reason"),
    [
        ("_profile", RecursionError("maximum recursion depth exceeded"),
         "GetProfiles: unusable answer (RecursionError: maximum recursion depth exceeded)"),
        ("_media_url", AttributeError("'str' object has no attribute 'XAddr'"),
         "GetCapabilities: unusable answer "
         "(AttributeError: 'str' object has no attribute 'XAddr')"),
        ("clock_offset", _unicode_error(),
         "GetSystemDateAndTime: unusable answer (UnicodeDecodeError: 'utf-8' codec can't "
         "decode byte 0xff in position 0: invalid start byte)"),
        ("_clean_uri", KeyError("Uri"), "GetStreamUri: unusable answer (KeyError: 'Uri')"),
    ],
)  # fmt: skip
async def test_an_unforeseen_error_while_parsing_is_the_calls_failure(
    cameras: dict[str, SimDevice],
    monkeypatch: pytest.MonkeyPatch,
    helper: str,
    error: Exception,
    reason: str,
) -> None:
    monkeypatch.setattr(onvif, helper, _raise(error))
    with pytest.raises(CallFailed) as caught:
        await enrich(cameras["good"])
    assert str(caught.value) == reason


@pytest.mark.parametrize(
    ("helper", "note"),
    [
        ("_mac", "GetNetworkInterfaces unusable: TypeError: unforeseen"),
        ("_services", "GetServices unusable: TypeError: unforeseen"),
        ("_device_info", "GetDeviceInformation unusable: TypeError: unforeseen"),
    ],
)
async def test_an_unforeseen_error_in_an_optional_answer_loses_only_that_value(
    cameras: dict[str, SimDevice], monkeypatch: pytest.MonkeyPatch, helper: str, note: str
) -> None:
    monkeypatch.setattr(onvif, helper, _raise(TypeError("unforeseen")))
    found = await enrich(cameras["good"])
    assert found.notes == (note,)
    assert len(found.profiles) == 2 and found.snapshot_uri  # the rest of the camera is read


async def test_a_camera_with_an_impossible_date_is_read_without_its_clock(
    cameras: dict[str, SimDevice],
) -> None:
    device = cameras["month-13"]
    found = await enrich(device)
    assert found.clock_offset_s == 0.0
    assert found.notes == ("camera clock unusable (ValueError: month must be in 1..12)",)
    assert (found.vendor, found.serial) == (device.vendor, device.serial)
    assert [(p.width, p.height) for p in found.profiles] == [(1920, 1080), (640, 360)]


async def test_a_failed_call_cancels_the_calls_still_running() -> None:
    never = asyncio.Event()
    cancelled: list[str] = []

    async def waiting(name: str) -> str:
        try:
            await never.wait()
        except asyncio.CancelledError:
            cancelled.append(name)
            raise
        return name

    async def broken() -> str:
        await asyncio.sleep(0)
        raise CallFailed("GetProfiles", "unusable answer (X)")

    with pytest.raises(CallFailed):
        await onvif._together(waiting("GetServices"), broken(), waiting("GetNetworkInterfaces"))
    for _ in range(3):
        await asyncio.sleep(0)
    assert sorted(cancelled) == ["GetNetworkInterfaces", "GetServices"]
    assert await onvif._together(asyncio.sleep(0, "a"), asyncio.sleep(0, "b")) == ["a", "b"]
