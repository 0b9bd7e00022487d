"""SOAP 1.2 / ONVIF messages for the camera simulator, and WS-Security UsernameToken checking.

Answers are built from string templates (cheap: the benchmarks push thousands of cameras through
the simulator) and are valid against the ONVIF schemas bundled with onvif-zeep-async
(`onvif/wsdl/devicemgmt.wsdl`, `media.wsdl`, `onvif.xsd`); the test suite validates them. Quirks
make some of them impossible on purpose (a Month of 13, no Date, text where a structure belongs,
bytes that are not UTF-8, 100,000-deep nesting), as real cameras do.

Requests are parsed with lxml with entity resolution, network access and DTDs refused, and a size
cap, as a camera's embedded web server should (but rarely does).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote, urlsplit, urlunsplit
from xml.sax.saxutils import escape

from lxml import etree

from .devices import ClockQuirk, HostileXml, SimDevice

NS_ENV: Final = "http://www.w3.org/2003/05/soap-envelope"
NS_ENV_11: Final = "http://schemas.xmlsoap.org/soap/envelope/"
NS_TT: Final = "http://www.onvif.org/ver10/schema"
NS_TDS: Final = "http://www.onvif.org/ver10/device/wsdl"
NS_TRT: Final = "http://www.onvif.org/ver10/media/wsdl"
NS_TER: Final = "http://www.onvif.org/ver10/error"
NS_WSSE: Final = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
NS_WSU: Final = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
_UT_PROFILE: Final = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
)
PASSWORD_DIGEST: Final = _UT_PROFILE + "#PasswordDigest"
PASSWORD_TEXT: Final = _UT_PROFILE + "#PasswordText"

CONTENT_TYPE: Final = "application/soap+xml"
MAX_REQUEST_BYTES: Final = 64 * 1024  # an ONVIF request is a few KB; anything bigger is refused
AUTH_WINDOW_S: Final = 300.0  # Created must be within +-5 min of the device's clock
NONCE_CACHE_MAX: Final = 50_000  # per device; the oldest are forgotten first beyond this
DEVICE_TIMEZONE: Final = "CST-8"  # POSIX TZ of Shanghai; LocalDateTime is UTC+8
_LOCAL_OFFSET: Final = dt.timedelta(hours=8)

HUGE_BODY_BYTES: Final = 50 * 1024 * 1024
DEEP_NESTING_DEPTH: Final = 100_000  # the deep_nesting quirk: 700 KB, under a 1 MiB answer cap
_HUGE_CHUNK: Final = 64 * 1024

_ENVELOPE_OPEN: Final = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    f'<env:Envelope xmlns:env="{NS_ENV}" xmlns:ter="{NS_TER}" xmlns:tt="{NS_TT}"'
    f' xmlns:tds="{NS_TDS}" xmlns:trt="{NS_TRT}"><env:Body>'
)
_ENVELOPE_CLOSE: Final = "</env:Body></env:Envelope>"

DEVICE_SERVICE_PATH: Final = "/onvif/device_service"
MEDIA_SERVICE_PATH: Final = "/onvif/media_service"


# --------------------------------------------------------------------------- faults


class SoapFault(Exception):
    """A SOAP 1.2 fault: `code` is Sender/Receiver/VersionMismatch, subcodes are ter: names."""

    def __init__(
        self,
        code: str,
        subcodes: Sequence[str],
        reason: str,
        http_status: int,
    ) -> None:
        super().__init__(reason)
        self.code = code
        self.subcodes = tuple(subcodes)
        self.reason = reason
        self.http_status = http_status


def not_authorized() -> SoapFault:
    # What real cameras say, whatever the cause (bad password, stale Created, replayed nonce).
    return SoapFault("Sender", ["ter:NotAuthorized"], "Sender not Authorized", 400)


def action_not_supported(what: str = "") -> SoapFault:
    reason = "Optional Action Not Implemented" + (f": {what}" if what else "")
    return SoapFault("Receiver", ["ter:ActionNotSupported"], reason, 500)


def no_profile(token: str) -> SoapFault:
    return SoapFault(
        "Sender", ["ter:InvalidArgVal", "ter:NoProfile"], f"No such profile: {token}", 400
    )


def not_well_formed(reason: str = "XML Well-formed violation") -> SoapFault:
    return SoapFault("Sender", ["ter:WellFormed"], reason, 400)


def fault_body(fault: SoapFault) -> str:
    sub = ""
    for subcode in reversed(fault.subcodes):
        sub = f"<env:Subcode><env:Value>{subcode}</env:Value>{sub}</env:Subcode>"
    return (
        f"<env:Fault><env:Code><env:Value>env:{fault.code}</env:Value>{sub}</env:Code>"
        f'<env:Reason><env:Text xml:lang="en">{escape(fault.reason)}</env:Text></env:Reason>'
        "</env:Fault>"
    )


def envelope(body: str | bytes) -> bytes:
    """A SOAP envelope around `body`; bytes go in as they are (even when not valid UTF-8)."""
    if isinstance(body, bytes):
        return _ENVELOPE_OPEN.encode() + body + _ENVELOPE_CLOSE.encode()
    return (_ENVELOPE_OPEN + body + _ENVELOPE_CLOSE).encode()


def fault_envelope(fault: SoapFault) -> bytes:
    return envelope(fault_body(fault))


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True, slots=True)
class SoapRequest:
    namespace: str  # of the operation element (the first child of Body)
    operation: str  # its local name
    body: etree._Element  # the operation element
    header: etree._Element | None


def _safe_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_pis=True,
        collect_ids=False,
    )


def safe_fromstring(data: bytes, max_bytes: int) -> etree._Element:
    """Parse untrusted XML: size-capped, no DTD at all, no entities, no network.

    Raises `ValueError` on anything else than plain, well-formed, DTD-free XML.
    """
    if len(data) > max_bytes:
        raise ValueError(f"XML larger than {max_bytes} bytes")
    try:
        root = etree.fromstring(data, _safe_parser())
    except etree.XMLSyntaxError as err:
        raise ValueError(f"not well-formed XML: {err}") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise ValueError("a DTD is not accepted")
    return root


def parse_request(data: bytes, max_bytes: int = MAX_REQUEST_BYTES) -> SoapRequest:
    try:
        root = safe_fromstring(data, max_bytes)
    except ValueError as err:
        raise not_well_formed(str(err)) from None
    root_q = etree.QName(root)
    if root_q.localname != "Envelope" or root_q.namespace not in (NS_ENV, NS_ENV_11):
        raise not_well_formed("not a SOAP envelope")
    if root_q.namespace == NS_ENV_11:  # we speak SOAP 1.2 only, as the ONVIF WSDLs bind it
        raise SoapFault("VersionMismatch", [], "SOAP 1.2 required", 400)
    header = root.find(f"{{{NS_ENV}}}Header")
    body = root.find(f"{{{NS_ENV}}}Body")
    if body is None:
        raise not_well_formed("no SOAP Body")
    op = next((child for child in body if isinstance(child.tag, str)), None)
    if op is None:
        raise action_not_supported("empty Body")
    op_q = etree.QName(op)
    return SoapRequest(op_q.namespace or "", op_q.localname, op, header)


def child_text(element: etree._Element, namespace: str, name: str) -> str | None:
    found = element.find(f"{{{namespace}}}{name}")
    if found is None or found.text is None:
        return None
    return str(found.text).strip()


# --------------------------------------------------------------------------- WS-Security


class NonceCache:
    """Nonces accepted recently by one device: a nonce is refused while it is remembered."""

    def __init__(self, ttl_s: float = 2 * AUTH_WINDOW_S, max_entries: int = NONCE_CACHE_MAX):
        self._ttl = ttl_s
        self._max = max_entries
        self._seen: OrderedDict[str, float] = OrderedDict()  # nonce -> expiry (monotonic)

    def _prune(self, now: float) -> None:
        while self._seen:
            nonce, expiry = next(iter(self._seen.items()))
            if expiry > now and len(self._seen) <= self._max:
                break
            del self._seen[nonce]

    def seen(self, nonce: str) -> bool:
        now = time.monotonic()
        self._prune(now)
        return nonce in self._seen

    def add(self, nonce: str) -> None:
        self._seen[nonce] = time.monotonic() + self._ttl
        self._prune(time.monotonic())

    def __len__(self) -> int:
        return len(self._seen)


def password_digest(nonce: bytes, created: str, password: str) -> str:
    """WS-Security UsernameToken digest: Base64(SHA1(nonce + created + password))."""
    raw = hashlib.sha1(nonce + created.encode() + password.encode()).digest()
    return base64.b64encode(raw).decode("ascii")


def parse_created(text: str) -> float:
    """A wsu:Created xs:dateTime as a POSIX timestamp; no zone means UTC."""
    when = dt.datetime.fromisoformat(text)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


class AuthError(Exception):
    """Why a UsernameToken was refused (for the simulator's log; the client sees NotAuthorized)."""


def verify_username_token(
    header: etree._Element | None,
    *,
    username: str,
    password: str,
    device_now: float,
    nonces: NonceCache,
) -> None:
    """Check a WS-Security UsernameToken (PasswordDigest) against one device. Raises AuthError."""
    if header is None:
        raise AuthError("no SOAP header")
    token = header.find(f"{{{NS_WSSE}}}Security/{{{NS_WSSE}}}UsernameToken")
    if token is None:
        raise AuthError("no wsse:UsernameToken")
    user = child_text(token, NS_WSSE, "Username")
    password_el = token.find(f"{{{NS_WSSE}}}Password")
    nonce_text = child_text(token, NS_WSSE, "Nonce")
    created = child_text(token, NS_WSU, "Created")
    if password_el is None or password_el.text is None:
        raise AuthError("no wsse:Password")
    if password_el.get("Type") != PASSWORD_DIGEST:
        raise AuthError("PasswordDigest required")
    if not nonce_text or not created:
        raise AuthError("Nonce and Created required with PasswordDigest")
    try:
        nonce = base64.b64decode(nonce_text, validate=True)
        created_ts = parse_created(created)
    except (binascii.Error, ValueError):
        raise AuthError("malformed Nonce or Created") from None
    if abs(created_ts - device_now) > AUTH_WINDOW_S:
        raise AuthError(f"Created {created} outside +-{AUTH_WINDOW_S:.0f}s of the device clock")
    if nonces.seen(nonce_text):
        raise AuthError("nonce replayed")
    expected = password_digest(nonce, created, password)
    supplied = str(password_el.text).strip()
    ok_user = hmac.compare_digest((user or "").encode(), username.encode())
    ok_digest = hmac.compare_digest(expected.encode(), supplied.encode())
    if not (ok_user and ok_digest):
        raise AuthError("wrong username or password")
    nonces.add(nonce_text)


# --------------------------------------------------------------------------- device service


def _datetime_xml(when: dt.datetime, quirk: ClockQuirk | None = None) -> str:
    time_xml = (
        f"<tt:Time><tt:Hour>{when.hour}</tt:Hour><tt:Minute>{when.minute}</tt:Minute>"
        f"<tt:Second>{when.second}</tt:Second></tt:Time>"
    )
    if quirk is ClockQuirk.no_date_element:
        return time_xml
    if quirk is ClockQuirk.string_for_date:
        return f"{time_xml}<tt:Date>{when.date().isoformat()}</tt:Date>"
    month = 13 if quirk is ClockQuirk.month_13 else when.month
    return (
        f"{time_xml}<tt:Date><tt:Year>{when.year}</tt:Year><tt:Month>{month}</tt:Month>"
        f"<tt:Day>{when.day}</tt:Day></tt:Date>"
    )


def device_clock(device: SimDevice) -> float:
    """The device's idea of now (POSIX seconds): true time plus its skew."""
    return time.time() + device.quirks.clock_skew_s


def get_system_date_and_time(device: SimDevice) -> str:
    now = dt.datetime.fromtimestamp(device_clock(device), dt.UTC)
    kind = "Manual" if device.quirks.clock_skew_s else "NTP"  # a skewed camera lost its NTP
    quirk = device.quirks.clock_quirk
    utc = (
        ""  # some cameras only know their local time (and, with luck, their zone)
        if quirk is ClockQuirk.no_utc_datetime
        else f"<tt:UTCDateTime>{_datetime_xml(now, quirk)}</tt:UTCDateTime>"
    )
    return (
        "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>"
        f"<tt:DateTimeType>{kind}</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings>"
        f"<tt:TimeZone><tt:TZ>{DEVICE_TIMEZONE}</tt:TZ></tt:TimeZone>{utc}"
        f"<tt:LocalDateTime>{_datetime_xml(now + _LOCAL_OFFSET, quirk)}</tt:LocalDateTime>"
        "</tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"
    )


_CAPABILITY_CATEGORIES = ("All", "Analytics", "Device", "Events", "Imaging", "Media", "PTZ")


def get_capabilities(device: SimDevice, request: etree._Element) -> str:
    wanted = {
        str(el.text).strip() for el in request.findall(f"{{{NS_TDS}}}Category") if el.text
    } or {"All"}
    if not wanted <= set(_CAPABILITY_CATEGORIES):
        raise SoapFault("Sender", ["ter:InvalidArgVal"], "unknown capability category", 400)
    parts: list[str] = []
    if wanted & {"All", "Device"}:
        parts.append(
            f"<tt:Device><tt:XAddr>{escape(device.device_uri)}</tt:XAddr>"
            "<tt:Network><tt:IPFilter>false</tt:IPFilter>"
            "<tt:ZeroConfiguration>false</tt:ZeroConfiguration>"
            "<tt:IPVersion6>false</tt:IPVersion6><tt:DynDNS>false</tt:DynDNS></tt:Network>"
            "<tt:System><tt:DiscoveryResolve>false</tt:DiscoveryResolve>"
            "<tt:DiscoveryBye>false</tt:DiscoveryBye>"
            "<tt:RemoteDiscovery>false</tt:RemoteDiscovery>"
            "<tt:SystemBackup>false</tt:SystemBackup><tt:SystemLogging>false</tt:SystemLogging>"
            "<tt:FirmwareUpgrade>false</tt:FirmwareUpgrade>"
            "<tt:SupportedVersions><tt:Major>2</tt:Major><tt:Minor>40</tt:Minor>"
            "</tt:SupportedVersions></tt:System>"
            "<tt:IO><tt:InputConnectors>0</tt:InputConnectors>"
            "<tt:RelayOutputs>0</tt:RelayOutputs></tt:IO>"
            "<tt:Security><tt:TLS1.1>false</tt:TLS1.1><tt:TLS1.2>false</tt:TLS1.2>"
            "<tt:OnboardKeyGeneration>false</tt:OnboardKeyGeneration>"
            "<tt:AccessPolicyConfig>false</tt:AccessPolicyConfig>"
            "<tt:X.509Token>false</tt:X.509Token><tt:SAMLToken>false</tt:SAMLToken>"
            "<tt:KerberosToken>false</tt:KerberosToken><tt:RELToken>false</tt:RELToken>"
            "</tt:Security></tt:Device>"
        )
    if wanted & {"All", "Media"}:
        parts.append(
            f"<tt:Media><tt:XAddr>{escape(device.media_uri)}</tt:XAddr>"
            "<tt:StreamingCapabilities><tt:RTPMulticast>false</tt:RTPMulticast>"
            "<tt:RTP_TCP>true</tt:RTP_TCP><tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP>"
            "</tt:StreamingCapabilities></tt:Media>"
        )
    if not parts:  # only categories this camera lacks (no analytics, events, imaging, PTZ)
        raise SoapFault(
            "Receiver", ["ter:ActionNotSupported", "ter:NoSuchService"], "No such service", 500
        )
    return (
        "<tds:GetCapabilitiesResponse><tds:Capabilities>"
        + "".join(parts)
        + "</tds:Capabilities></tds:GetCapabilitiesResponse>"
    )


def _version(major: int, minor: int) -> str:
    return f"<tds:Version><tt:Major>{major}</tt:Major><tt:Minor>{minor}</tt:Minor></tds:Version>"


def get_services(device: SimDevice, request: etree._Element) -> str:
    include = (child_text(request, NS_TDS, "IncludeCapability") or "false").lower() in (
        "true",
        "1",
    )
    device_caps = media_caps = ""
    if include:
        device_caps = (
            "<tds:Capabilities><tds:Capabilities>"
            '<tds:Network IPFilter="false" ZeroConfiguration="false" IPVersion6="false"'
            ' DynDNS="false" NTP="1"/>'
            '<tds:Security TLS1.2="false" UsernameToken="true" HttpDigest="true"/>'
            '<tds:System DiscoveryResolve="false" DiscoveryBye="false" RemoteDiscovery="false"'
            ' SystemBackup="false" SystemLogging="false" FirmwareUpgrade="false"/>'
            "</tds:Capabilities></tds:Capabilities>"
        )
        snapshot = "false" if device.quirks.no_snapshot_uri else "true"
        media_caps = (
            "<tds:Capabilities>"
            f'<trt:Capabilities SnapshotUri="{snapshot}" Rotation="false" OSD="false">'
            '<trt:ProfileCapabilities MaximumNumberOfProfiles="2"/>'
            '<trt:StreamingCapabilities RTPMulticast="false" RTP_TCP="true" RTP_RTSP_TCP="true"/>'
            "</trt:Capabilities></tds:Capabilities>"
        )
    return (
        "<tds:GetServicesResponse>"
        f"<tds:Service><tds:Namespace>{NS_TDS}</tds:Namespace>"
        f"<tds:XAddr>{escape(device.device_uri)}</tds:XAddr>{device_caps}{_version(2, 40)}"
        "</tds:Service>"
        f"<tds:Service><tds:Namespace>{NS_TRT}</tds:Namespace>"
        f"<tds:XAddr>{escape(device.media_uri)}</tds:XAddr>{media_caps}{_version(2, 40)}"
        "</tds:Service>"
        "</tds:GetServicesResponse>"
    )


def hardware_id(device: SimDevice) -> str:
    return "HW" + hashlib.sha1(("hw" + device.model).encode()).hexdigest()[:6].upper()


# The device_info_invalid_utf8 quirk: a vendor name in a legacy encoding, sent as UTF-8.
LEGACY_VENDOR: Final = "海康威视 ".encode("gb18030")


def get_device_information(device: SimDevice) -> str | bytes:
    answer = (
        "<tds:GetDeviceInformationResponse>"
        f"<tds:Manufacturer>{escape(device.vendor)}</tds:Manufacturer>"
        f"<tds:Model>{escape(device.model)}</tds:Model>"
        f"<tds:FirmwareVersion>{escape(device.firmware)}</tds:FirmwareVersion>"
        f"<tds:SerialNumber>{escape(device.serial)}</tds:SerialNumber>"
        f"<tds:HardwareId>{escape(hardware_id(device))}</tds:HardwareId>"
        "</tds:GetDeviceInformationResponse>"
    )
    if device.quirks.device_info_invalid_utf8:
        tag = b"<tds:Manufacturer>"
        return answer.encode().replace(tag, tag + LEGACY_VENDOR, 1)
    return answer


NETWORK_PREFIX_LENGTH: Final = 16  # each network gets a /16 of loopback in the demo


def get_network_interfaces(device: SimDevice) -> str:
    return (
        '<tds:GetNetworkInterfacesResponse><tds:NetworkInterfaces token="eth0">'
        "<tt:Enabled>true</tt:Enabled>"
        f"<tt:Info><tt:Name>eth0</tt:Name><tt:HwAddress>{device.mac}</tt:HwAddress>"
        "<tt:MTU>1500</tt:MTU></tt:Info>"
        "<tt:Link><tt:AdminSettings><tt:AutoNegotiation>true</tt:AutoNegotiation>"
        "<tt:Speed>100</tt:Speed><tt:Duplex>Full</tt:Duplex></tt:AdminSettings>"
        "<tt:OperSettings><tt:AutoNegotiation>true</tt:AutoNegotiation>"
        "<tt:Speed>100</tt:Speed><tt:Duplex>Full</tt:Duplex></tt:OperSettings>"
        "<tt:InterfaceType>6</tt:InterfaceType></tt:Link>"
        "<tt:IPv4><tt:Enabled>true</tt:Enabled><tt:Config>"
        f"<tt:Manual><tt:Address>{escape(device.address)}</tt:Address>"
        f"<tt:PrefixLength>{NETWORK_PREFIX_LENGTH}</tt:PrefixLength></tt:Manual>"
        "<tt:DHCP>false</tt:DHCP></tt:Config></tt:IPv4>"
        "</tds:NetworkInterfaces></tds:GetNetworkInterfacesResponse>"
    )


# --------------------------------------------------------------------------- media service


@dataclass(frozen=True, slots=True)
class ProfileSpec:
    token: str
    name: str
    encoder_token: str
    width: int
    height: int
    fps: int
    bitrate_kbps: int
    gov_length: int
    h264_profile: str


PROFILES: Final = (
    ProfileSpec("Profile_1", "mainStream", "VideoEncoder_1", 1920, 1080, 25, 4096, 50, "Main"),
    ProfileSpec("Profile_2", "subStream", "VideoEncoder_2", 640, 360, 15, 512, 30, "Main"),
)


def profile_token(profile: ProfileSpec, channel: int, channels: int) -> str:
    """Profile_1, Profile_2 on a camera; Profile_101, Profile_102, Profile_201... on an NVR
    (the channel, then the stream: as Hikvision numbers them)."""
    if channels == 1:
        return profile.token
    return f"Profile_{channel}{PROFILES.index(profile) + 1:02d}"


def _profile_xml(
    profile: ProfileSpec,
    *,
    resolution_text: bool = False,
    extension: str = "",
    channel: int = 1,
    channels: int = 1,
) -> str:
    resolution = (
        f"{profile.width}x{profile.height}"  # string_for_structure: text, not Width/Height
        if resolution_text
        else f"<tt:Width>{profile.width}</tt:Width><tt:Height>{profile.height}</tt:Height>"
    )
    token = profile_token(profile, channel, channels)
    return (
        f'<trt:Profiles token="{token}" fixed="true">'
        f"<tt:Name>{profile.name}</tt:Name>"
        f'<tt:VideoSourceConfiguration token="VideoSourceConfig_{channel}">'
        f"<tt:Name>VideoSourceConfig_{channel}</tt:Name>"
        f"<tt:UseCount>{len(PROFILES)}</tt:UseCount>"
        f"<tt:SourceToken>VideoSource_{channel}</tt:SourceToken>"
        '<tt:Bounds x="0" y="0" width="1920" height="1080"/>'
        "</tt:VideoSourceConfiguration>"
        f'<tt:VideoEncoderConfiguration token="{profile.encoder_token}">'
        f"<tt:Name>{profile.encoder_token}</tt:Name><tt:UseCount>1</tt:UseCount>"
        "<tt:Encoding>H264</tt:Encoding>"
        f"<tt:Resolution>{resolution}</tt:Resolution>"
        "<tt:Quality>5</tt:Quality>"
        f"<tt:RateControl><tt:FrameRateLimit>{profile.fps}</tt:FrameRateLimit>"
        "<tt:EncodingInterval>1</tt:EncodingInterval>"
        f"<tt:BitrateLimit>{profile.bitrate_kbps}</tt:BitrateLimit></tt:RateControl>"
        f"<tt:H264><tt:GovLength>{profile.gov_length}</tt:GovLength>"
        f"<tt:H264Profile>{profile.h264_profile}</tt:H264Profile></tt:H264>"
        "<tt:Multicast><tt:Address><tt:Type>IPv4</tt:Type>"
        "<tt:IPv4Address>0.0.0.0</tt:IPv4Address></tt:Address>"
        "<tt:Port>0</tt:Port><tt:TTL>5</tt:TTL><tt:AutoStart>false</tt:AutoStart></tt:Multicast>"
        "<tt:SessionTimeout>PT60S</tt:SessionTimeout>"
        "</tt:VideoEncoderConfiguration>"
        f"{extension}</trt:Profiles>"
    )


_PROFILES_RESPONSE: Final = (
    "<trt:GetProfilesResponse>"
    + "".join(_profile_xml(p) for p in PROFILES)
    + "</trt:GetProfilesResponse>"
)


def _deep_extension() -> str:
    """The deep_nesting quirk: a vendor extension nested DEEP_NESTING_DEPTH elements deep."""
    return (
        "<tt:Extension>"
        + "<x>" * DEEP_NESTING_DEPTH
        + "</x>" * DEEP_NESTING_DEPTH
        + "</tt:Extension>"
    )


def get_profiles(device: SimDevice) -> str:
    quirks = device.quirks
    if device.channels > 1:
        profiles = "".join(
            _profile_xml(p, channel=ch, channels=device.channels)
            for ch in range(1, device.channels + 1)
            for p in PROFILES
        )
        return f"<trt:GetProfilesResponse>{profiles}</trt:GetProfilesResponse>"
    if not (quirks.deep_nesting or quirks.string_for_structure):
        return _PROFILES_RESPONSE
    deep = _deep_extension() if quirks.deep_nesting else ""  # in the first profile only
    profiles = "".join(
        _profile_xml(p, resolution_text=quirks.string_for_structure, extension="" if i else deep)
        for i, p in enumerate(PROFILES)
    )
    return f"<trt:GetProfilesResponse>{profiles}</trt:GetProfilesResponse>"


def _requested_profile(device: SimDevice, request: etree._Element) -> tuple[ProfileSpec, int]:
    """The profile asked for, and its channel."""
    token = child_text(request, NS_TRT, "ProfileToken") or ""
    for channel in range(1, device.channels + 1):
        for profile in PROFILES:
            if profile_token(profile, channel, device.channels) == token:
                return profile, channel
    raise no_profile(token)


def _media_uri(tag: str, uri: str) -> str:
    return (
        f"<trt:{tag}><trt:MediaUri><tt:Uri>{escape(uri)}</tt:Uri>"
        "<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect>"
        "<tt:InvalidAfterReboot>false</tt:InvalidAfterReboot>"
        f"<tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:{tag}>"
    )


def with_userinfo(uri: str, username: str, password: str) -> str:
    parts = urlsplit(uri)
    userinfo = f"{quote(username, safe='')}:{quote(password, safe='')}"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{parts.netloc}"))


def stream_uri(device: SimDevice, password: str) -> str:
    """What GetStreamUri reports (every profile: the simulator's RTSP server has one stream)."""
    if device.quirks.rtsp_credentials_in_uri:
        return with_userinfo(device.stream_uri, device.username, password)
    return device.stream_uri


def snapshot_uri(device: SimDevice, channel: int = 1) -> str:
    """What GetSnapshotUri reports, wrong host included; the real one is on the device address."""
    host = device.quirks.snapshot_host or device.address
    return f"http://{host}:{device.port}{device.channel_snapshot_path(channel)}"


def get_stream_uri(device: SimDevice, request: etree._Element, password: str) -> str:
    _requested_profile(device, request)  # (every channel: the device's one simulated stream)
    return _media_uri("GetStreamUriResponse", stream_uri(device, password))


def get_snapshot_uri(device: SimDevice, request: etree._Element) -> str:
    _, channel = _requested_profile(device, request)
    if device.quirks.no_snapshot_uri:
        raise action_not_supported("GetSnapshotUri")
    return _media_uri("GetSnapshotUriResponse", snapshot_uri(device, channel))


# --------------------------------------------------------------------------- hostile answers

_LAUGHS: Final = "".join(
    f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10)
)
_HOSTILE_OPEN: Final = (
    f'<env:Envelope xmlns:env="{NS_ENV}" xmlns:tds="{NS_TDS}"><env:Body>'
    "<tds:GetDeviceInformationResponse><tds:Manufacturer>"
)
_HOSTILE_CLOSE: Final = (
    "</tds:Manufacturer><tds:Model>x</tds:Model><tds:FirmwareVersion>x</tds:FirmwareVersion>"
    "<tds:SerialNumber>x</tds:SerialNumber><tds:HardwareId>x</tds:HardwareId>"
    "</tds:GetDeviceInformationResponse></env:Body></env:Envelope>"
)

BILLION_LAUGHS: Final = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    f'<!DOCTYPE env:Envelope [<!ENTITY lol0 "lol">{_LAUGHS}]>\n'
    f"{_HOSTILE_OPEN}&lol9;{_HOSTILE_CLOSE}"
).encode()

EXTERNAL_ENTITY: Final = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<!DOCTYPE env:Envelope [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
    f"{_HOSTILE_OPEN}&xxe;{_HOSTILE_CLOSE}"
).encode()

# Cut off inside the Body, then binary junk: even a recovering parser finds no answer in it.
MALFORMED: Final = (
    f'<?xml version="1.0" encoding="UTF-8"?>\n<env:Envelope xmlns:env="{NS_ENV}"><env:Bo'
).encode() + b"\x00\xff<<\x1b[0m garbage &amp"


def hostile_chunks(mode: HostileXml) -> Iterator[bytes]:
    """The body of a hostile answer, in chunks; `huge` is ~50 MB, never held in memory at once."""
    if mode is HostileXml.billion_laughs:
        yield BILLION_LAUGHS
    elif mode is HostileXml.external_entity:
        yield EXTERNAL_ENTITY
    elif mode is HostileXml.malformed:
        yield MALFORMED
    else:
        head = ('<?xml version="1.0" encoding="UTF-8"?>\n' + _HOSTILE_OPEN).encode()
        tail = _HOSTILE_CLOSE.encode()
        filler = b"A" * _HUGE_CHUNK
        yield head
        remaining = HUGE_BODY_BYTES - len(head) - len(tail)
        while remaining > 0:
            yield filler[: min(remaining, _HUGE_CHUNK)]
            remaining -= _HUGE_CHUNK
        yield tail
