"""What a simulated camera is: identity, credentials, and the quirks and faults real fleets have.

The simulator serves these; tests flip their quirks at run time (a camera goes offline, starts
hanging, comes back) through the `SimDevice` objects they hold.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from .faults import PictureFault
from .fleet import FleetCamera
from .scene import Period

ONVIF_PORT = 8000  # each device listens on its own loopback address, this port
RTSP_PORT = 8554
DISCOVERY_PORT = 3702
SIM_USERNAME = "admin"


class HostileXml(StrEnum):
    billion_laughs = "billion_laughs"  # nested entity expansion in a DTD
    external_entity = "external_entity"  # <!ENTITY x SYSTEM "file:///etc/passwd">
    huge = "huge"  # a 50 MB SOAP body
    malformed = "malformed"  # not XML at all / truncated


class ClockQuirk(StrEnum):
    """GetSystemDateAndTime answers that are valid SOAP but impossible or incomplete."""

    month_13 = "month_13"  # UTCDateTime (and LocalDateTime) say Month 13
    no_date_element = "no_date_element"  # UTCDateTime has a Time but no Date
    string_for_date = "string_for_date"  # <tt:Date>2024-05-06</tt:Date>: text, not a structure
    no_utc_datetime = "no_utc_datetime"  # only LocalDateTime, with the TimeZone "CST-8"


class SnapshotAuth(StrEnum):
    """How the snapshot URL challenges (`digest_auth`)."""

    digest_md5 = "digest_md5"  # Digest, MD5: what most cameras offer
    digest_sha256 = "digest_sha256"  # Digest, SHA-256 only
    digest_sha256_md5 = "digest_sha256_md5"  # two challenges, SHA-256 first (RFC 7616 3.7)
    basic = "basic"  # Basic only: the password in clear over plain HTTP

    @property
    def algorithms(self) -> tuple[str, ...]:
        """The Digest algorithms challenged, preferred first (none for Basic)."""
        return {
            SnapshotAuth.digest_md5: ("MD5",),
            SnapshotAuth.digest_sha256: ("SHA-256",),
            SnapshotAuth.digest_sha256_md5: ("SHA-256", "MD5"),
            SnapshotAuth.basic: (),
        }[self]


class SnapshotFormat(StrEnum):
    """What the snapshot URL answers (200 every time), as firmware in the field does
    (`snapshot.snapshot_answer`)."""

    jpeg = "jpeg"  # the picture as a JPEG: what ONVIF asks for
    png = "png"  # the picture as a PNG, sent as image/png
    bmp = "bmp"  # the picture as an uncompressed BMP, sent as image/bmp
    html_error = "html_error"  # an HTML error page ("snapshot disabled"), sent as text/html
    garbage = "garbage"  # random bytes, sent as image/jpeg
    png_bomb = "png_bomb"  # a 1 kB PNG whose header declares 100,000 x 100,000 pixels


@dataclass
class Quirks:
    """Per-device misbehaviour. Defaults describe a well-behaved camera."""

    clock_skew_s: float = 0.0  # camera clock minus true time
    snapshot_host: str | None = None  # report this host in GetSnapshotUri (e.g. "0.0.0.0")
    no_snapshot_uri: bool = False  # GetSnapshotUri faults: use the RTSP path
    rtsp_credentials_in_uri: bool = False  # GetStreamUri returns rtsp://user:pass@host/...
    extra_delay_s: float = 0.0  # on top of the simulator's answer delay
    hang: bool = False  # accept the connection, never answer
    offline: bool = False  # refuse connections (port closed) and ignore probes
    hostile_xml: HostileXml | None = None  # SOAP answers are hostile
    malformed_call: str | None = None  # this one operation answers with broken XML
    wrong_password: bool = False  # the device's password differs from the one on file
    clock_quirk: ClockQuirk | None = None  # GetSystemDateAndTime impossible or incomplete
    device_info_invalid_utf8: bool = False  # GetDeviceInformation's body is not valid UTF-8
    deep_nesting: bool = False  # GetProfiles answers with elements nested 100,000 deep
    string_for_structure: bool = False  # GetProfiles: text where Resolution's structure belongs
    snapshot_auth: SnapshotAuth = SnapshotAuth.digest_md5  # how the snapshot URL challenges
    snapshot_format: SnapshotFormat = SnapshotFormat.jpeg  # what the snapshot URL answers
    # A street scene instead of the marker frame, with a picture fault or none (scene.py,
    # faults.py): what the quality diagnosis is tested against. Flip it to switch a fault on/off.
    picture: Picture | None = None


@dataclass
class Picture:
    """What a camera's snapshot shows when it shows a street: day or night, and its fault."""

    period: Period = Period.day
    fault: PictureFault | None = None


@dataclass
class SimDevice:
    camera: FleetCamera
    password: str
    username: str = SIM_USERNAME
    onvif: bool = True  # False: an RTSP-only camera (no ONVIF, no WS-Discovery)
    vendor: str = "Camgw Simulated"
    model: str = "SIM-IPC-2MP"
    firmware: str = "V5.7.3 build 230601"
    quirks: Quirks = field(default_factory=Quirks)
    codec: Literal["h264", "h265", "mjpeg"] = "h264"  # of its RTSP stream (rtsp_server.Codec)
    port: int = ONVIF_PORT  # its ONVIF port: devices behind one address (port forwards) differ
    channels: int = 1  # video sources: an NVR's or an encoder's channels, each a camera

    @property
    def address(self) -> str:
        return self.camera.address

    @property
    def serial(self) -> str:
        return "SN" + hashlib.sha1(self.camera.id.encode()).hexdigest()[:12].upper()

    @property
    def mac(self) -> str:
        digest = hashlib.sha1(("mac" + self.camera.id).encode()).digest()
        return ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))  # locally administered

    @property
    def endpoint_reference(self) -> str:
        return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'camgw-sim/' + self.camera.id)}"

    @property
    def device_uri(self) -> str:
        return f"http://{self.address}:{self.port}/onvif/device_service"

    @property
    def media_uri(self) -> str:
        return f"http://{self.address}:{self.port}/onvif/media_service"

    @property
    def snapshot_path(self) -> str:
        return "/onvif/snapshot.jpg"

    def channel_snapshot_path(self, channel: int) -> str:
        """Each channel's picture (a device of one channel: `snapshot_path`)."""
        return self.snapshot_path if self.channels == 1 else f"/onvif/snapshot/{channel}.jpg"

    @property
    def stream_uri(self) -> str:
        return f"rtsp://{self.address}:{RTSP_PORT}/stream1"

    @property
    def scopes(self) -> list[str]:
        return [
            "onvif://www.onvif.org/type/video_encoder",
            "onvif://www.onvif.org/Profile/Streaming",
            f"onvif://www.onvif.org/name/{self.camera.id}",
            f"onvif://www.onvif.org/hardware/{self.model}",
            "onvif://www.onvif.org/location/city/Dongjing",
        ]
