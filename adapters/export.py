"""The owner's export policy: what of a network's cameras may leave its adapter (docs/edge.md,
"The owner decides what leaves").

Pure decisions over `adapters.wire` models, no I/O. The adapter applies them inside the network,
before anything is written to its outbox; the gateway's own sharing policy applies on top, never
instead.

- `is_shared` / `exported`: which cameras leave at all (address ranges, inventory categories) and,
  for those, a copy of the record with the withheld fields removed and coordinates coarsened.
- `reveals`: whether another text bound for the outbox (a failure reason, a probe error) would
  reveal a withheld value.
- `SnapshotGate`: whether a snapshot may be taken (at all, hours, reason, per-requester rate
  limit) and at what width.

Withholding is complete: a withheld value appears nowhere in the exported record, in any form we
can recognise, and every field that would name it goes too. The rules (`exported`):

- `address` withholds every URI (device, services, snapshot, streams: a URI is how the camera is
  reached), and any text that contains the address (dotted, dashed or underscored IPv4; IPv6
  compressed or exploded; IPv4-mapped), a host named by one of the camera's URIs, any IP address
  literal at all (a camera's other, internal addresses are its addresses too) or any URL with a
  host.
- `mac` also withholds any text with the MAC in any common spelling (`aa:bb..`, `aa-bb..`,
  `aabb..`, `aabb.ccdd.eeff`) - an endpoint reference `urn:uuid:...-aabbccddeeff` embeds it - and
  any IPv6 address whose interface identifier is the MAC's EUI-64 (SLAAC): when that is the
  camera's own address, the address and its URIs go as above.
- `model` also withholds `hardware` (the ONVIF hardware scope names the model; the gateway takes it
  for the model when there is none).
- `location` withholds the text and lat/lon, and any text with a number near either coordinate,
  or a coordinate-like pair, at any precision finer than whole degrees.
- `coordinate_decimals` rounds lat/lon and withholds any text that carries them more precisely
  (a number near either coordinate, or a coordinate-like pair, with more decimals).
- `endpoint_reference` also withholds text containing its UUID (with or without hyphens).
- `clock` sets `clock_offset_s` to 0 and withholds the notes about the camera's clock.
- Every other withheld value (name, vendor, firmware, serial, hardware id, URIs) is matched as a
  case-insensitive substring, also percent-encoded and with spaces as `_` or `+`.
- Whatever still carries a withheld value after that is withheld with it: a plain field becomes
  None, a note or a service is dropped, a profile loses its name or stream URI (or is dropped when
  its token names the value). If the address itself had to go this way (a camera named by its
  address whose name is withheld), the `address` rule applies in full.

`ref` and the capability booleans (`ptz`, `audio`, `events`, `rtsp_only`) always leave.
Over-withholding is the failure mode chosen: a short or common withheld value (a vendor called
"IP") takes every text that contains it.
"""

from __future__ import annotations

import ipaddress
import itertools
import math
import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Final, Literal, Self
from urllib.parse import quote, quote_plus, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .wire import CameraInfo, Snapshot

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# The record fields an owner may withhold, in the order errors list them.
WITHHOLDABLE: Final = (
    "address",
    "name",
    "location",
    "vendor",
    "model",
    "firmware",
    "serial",
    "mac",
    "hardware_id",
    "endpoint_reference",
    "device_uri",
    "services",
    "stream_uris",
    "snapshot_uri",
    "clock",
    "notes",
)
# Withholding the address withholds these too: every URI names the host it reaches.
_URI_FIELDS: Final = frozenset({"device_uri", "services", "stream_uris", "snapshot_uri"})

Category = Annotated[str, Field(min_length=1, max_length=100)]
FieldName = Annotated[str, Field(max_length=32)]
HoursWindow = Annotated[str, Field(max_length=16)]

_WINDOW = re.compile(r"(\d\d):(\d\d)-(\d\d):(\d\d)")


# -- the policy ----------------------------------------------------------------------------------


class ExportPolicy(BaseModel):
    """What a network's owner lets leave its adapter (`[export]` of the adapter's config). The
    defaults share everything the camera said, snapshots allowed, no limits: the owner tightens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    share_cidrs: tuple[IPNetwork, ...] | None = Field(
        None,
        max_length=1024,
        description="Only cameras whose address is in one of these ranges leave (unset: every "
        "camera; an empty list: none). A camera whose address is unknown or not an IP address "
        "leaves only when neither this nor withhold_cidrs is set",
    )
    withhold_cidrs: tuple[IPNetwork, ...] = Field(
        (),
        max_length=1024,
        description="Cameras whose address is in one of these ranges never leave (wins over "
        "share_cidrs)",
    )
    share_categories: tuple[Category, ...] | None = Field(
        None,
        max_length=256,
        description="Only cameras the adapter's inventory puts in one of these categories leave "
        "(unset: every camera; compared case-insensitively). A camera with no category does not "
        "leave when this is set",
    )
    withhold_categories: tuple[Category, ...] = Field(
        (),
        max_length=256,
        description="Cameras in one of these categories never leave (wins over share_categories)",
    )
    withhold: tuple[FieldName, ...] = Field(
        (),
        max_length=64,
        description="Record fields that never leave, with everything that would reveal them: "
        + ", ".join(WITHHOLDABLE),
    )
    coordinate_decimals: int | None = Field(
        None,
        ge=0,
        le=6,
        description="Round lat/lon to this many decimals (2: about 1 km; unset: exact)",
    )
    snapshots: bool = Field(True, description="Whether snapshots may be taken at all")
    diagnosis: bool = Field(
        True,
        description="Whether the adapter judges its cameras' pictures for the town's quality "
        "rounds (only the verdict leaves, never the picture: allowed whatever `snapshots` says)",
    )
    max_width: int | None = Field(
        None, ge=16, le=7680, description="Largest snapshot width produced (unset: the camera's)"
    )
    hours: tuple[HoursWindow, ...] = Field(
        (),
        max_length=24,
        description='When snapshots may be taken: "HH:MM-HH:MM" windows in `timezone`, start '
        'included, end excluded; a window may cross midnight ("22:00-06:00"); "24:00" ends a '
        "day (empty: always)",
    )
    timezone: str | None = Field(
        None,
        max_length=64,
        description='The IANA time zone of `hours`, e.g. "Asia/Shanghai" (required with hours)',
    )
    reason_required: bool = Field(
        False, description="Snapshots need a reason (an incident or ticket reference)"
    )
    rate_limit_per_minute: int | None = Field(
        None,
        ge=1,
        le=10_000,
        description="Snapshots per requester in any 60 seconds (unset: no limit)",
    )

    @field_validator("withhold")
    @classmethod
    def _known_fields(cls, withhold: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [f for f in withhold if f not in WITHHOLDABLE]
        if unknown:
            raise ValueError(
                f"unknown field {unknown[0]!r} in withhold; the fields are: "
                + ", ".join(WITHHOLDABLE)
            )
        return tuple(f for f in WITHHOLDABLE if f in withhold)

    @field_validator("hours")
    @classmethod
    def _windows(cls, hours: tuple[str, ...]) -> tuple[str, ...]:
        for text in hours:
            window(text)
        return hours

    @field_validator("timezone")
    @classmethod
    def _zone(cls, name: str | None) -> str | None:
        if name is not None:
            try:
                ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError, OSError):
                raise ValueError(f"unknown time zone {name!r}") from None
        return name

    @model_validator(mode="after")
    def _hours_have_a_zone(self) -> Self:
        if self.hours and self.timezone is None:
            raise ValueError('hours need a timezone, e.g. "Asia/Shanghai"')
        return self


def window(text: str) -> tuple[int, int]:
    """Parse "HH:MM-HH:MM" as (start, end) minutes of the day; end may be 1440 ("24:00") and smaller
    than start (the window crosses midnight). Raises ValueError naming the window."""
    match = _WINDOW.fullmatch(text)
    if match is None:
        raise ValueError(f'hours window {text!r} is not "HH:MM-HH:MM" (e.g. "07:00-22:00")')
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2 != 0):
        raise ValueError(f"hours window {text!r} names a time that does not exist")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end:
        raise ValueError(f"hours window {text!r} is empty; leave hours empty for always")
    return start, end


# -- which cameras leave -------------------------------------------------------------------------


def is_shared(camera: CameraInfo, policy: ExportPolicy, *, category: str | None = None) -> bool:
    """Whether `camera` leaves at all; `category` is the one the adapter's own inventory gives it
    (None: not in the inventory). The adapter also refuses snapshots and probes of a camera that
    does not leave."""
    return _address_shared(camera.address, policy) and _category_shared(category, policy)


def _address_shared(address: str | None, policy: ExportPolicy) -> bool:
    if policy.share_cidrs is None and not policy.withhold_cidrs:
        return True
    ip = _parse_ip(address) if address else None
    if ip is None:  # ranges constrain, and this camera cannot be placed in them: fail closed
        return False
    if policy.share_cidrs is not None and not _in_any(ip, policy.share_cidrs):
        return False
    return not _in_any(ip, policy.withhold_cidrs)


def _category_shared(category: str | None, policy: ExportPolicy) -> bool:
    if category is None:
        return policy.share_categories is None
    name = category.strip().casefold()
    if policy.share_categories is not None and name not in {
        c.strip().casefold() for c in policy.share_categories
    }:
        return False
    return name not in {c.strip().casefold() for c in policy.withhold_categories}


def _parse_ip(text: str) -> IPAddress | None:
    host = text.strip().removeprefix("[").removesuffix("]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _in_any(ip: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    candidates: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        candidates.append(ip.ipv4_mapped)
    return any(c.version == n.version and c in n for c in candidates for n in networks)


# -- what of them leaves -------------------------------------------------------------------------


def exported(
    camera: CameraInfo, policy: ExportPolicy, *, category: str | None = None
) -> CameraInfo | None:
    """What of `camera` may leave the adapter: None when it is not shared at all (`is_shared`),
    else a copy without the withheld fields and whatever would reveal them (see the module's
    docstring), coordinates coarsened."""
    if not is_shared(camera, policy, category=category):
        return None
    withheld = set(policy.withhold)
    out = _without(camera, withheld, policy.coordinate_decimals)
    if out.address is None and camera.address is not None and "address" not in withheld:
        # The address carried another withheld value: it is withheld, with all that names it.
        out = _without(camera, withheld | {"address"}, policy.coordinate_decimals)
    return out


def _without(camera: CameraInfo, withheld: set[str], decimals: int | None) -> CameraInfo:
    if "address" in withheld:
        withheld = withheld | _URI_FIELDS
    leaks = _Leaks(camera, withheld, decimals)
    data: dict[str, Any] = camera.model_dump()

    for name in withheld:
        _blank(data, name)
    if decimals is not None:
        for axis in ("lat", "lon"):
            if data[axis] is not None:
                data[axis] = round(data[axis], decimals)

    for key in (
        "address",
        "endpoint_reference",
        "device_uri",
        "name",
        "location",
        "hardware",
        "vendor",
        "model",
        "firmware",
        "serial",
        "mac",
        "hardware_id",
        "snapshot_uri",
    ):
        if data[key] is not None and leaks(data[key]):
            data[key] = None
    if leaks(data["source"]):
        data["source"] = "edge"
    data["services"] = {
        ns: uri for ns, uri in data["services"].items() if not leaks(ns) and not leaks(uri)
    }
    profiles = []
    for profile in data["profiles"]:
        if leaks(profile["token"]):
            continue
        if leaks(profile["name"]):
            profile["name"] = ""
        for key in ("codec", "stream_uri"):
            if profile[key] is not None and leaks(profile[key]):
                profile[key] = None
        profiles.append(profile)
    data["profiles"] = profiles
    data["notes"] = [n for n in data["notes"] if not leaks(n) and not leaks.about_clock(n)]
    return CameraInfo.model_validate(data)


def reveals(text: str, camera: CameraInfo, policy: ExportPolicy) -> bool:
    """Whether `text` (a failure reason, a probe error, a log line bound for the outbox) would
    reveal something the policy withholds from `camera`; the adapter then sends a generic text
    instead."""
    withheld = set(policy.withhold)
    if "address" in withheld:
        withheld |= _URI_FIELDS
    leaks = _Leaks(camera, withheld, policy.coordinate_decimals)
    return leaks(text) or leaks.about_clock(text)


def _blank(data: dict[str, Any], name: str) -> None:
    if name == "location":
        data["location"] = data["lat"] = data["lon"] = None
    elif name == "model":
        data["model"] = data["hardware"] = None
    elif name == "services":
        data["services"] = {}
    elif name == "stream_uris":
        for profile in data["profiles"]:
            profile["stream_uri"] = None
    elif name == "clock":
        data["clock_offset_s"] = 0.0  # the notes about the clock go in the scrub
    elif name == "notes":
        data["notes"] = []
    else:
        data[name] = None


_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)")
_URL_HOST = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s?#]", re.IGNORECASE)
_HEX_RUN = re.compile(r"[0-9A-Fa-f:.]{2,}")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_NUMBER = re.compile(r"(?<![\d.])-?\d{1,3}\.(\d+)(?!\.?\d)")
_BETWEEN_PAIR = re.compile(r"[°NSEWnsew]?\s*[,;/]?\s*")
_CLOCK = re.compile(r"clock|skew|time ?zone|utc|localdatetime", re.IGNORECASE)


class _Leaks:
    """Whether a text would reveal something withheld from `camera`."""

    def __init__(self, camera: CameraInfo, withheld: set[str], decimals: int | None) -> None:
        self.secrets = _secrets(camera, withheld)
        self.any_ip = "address" in withheld
        self.eui64 = _eui64(camera.mac) if "mac" in withheld and camera.mac else None
        self.clock = "clock" in withheld
        # Coordinates: finer than `allowed` decimals must not appear, near the camera's own.
        self.allowed: int | None = 0 if "location" in withheld else decimals
        self.coordinates = tuple(abs(c) for c in (camera.lat, camera.lon) if c is not None)

    def __call__(self, text: str) -> bool:
        low = text.casefold()
        if any(secret in low for secret in self.secrets):
            return True
        if self.any_ip and _URL_HOST.search(text):
            return True
        if self.any_ip or self.eui64 is not None:
            for ip in _ip_literals(text):
                if self.any_ip or (ip.version == 6 and ip.packed[8:] == self.eui64):
                    return True
        return self.allowed is not None and self._coordinates(text)

    def about_clock(self, note: str) -> bool:
        return self.clock and _CLOCK.search(note) is not None

    def _coordinates(self, text: str) -> bool:
        assert self.allowed is not None
        allowed = self.allowed
        finer = [m for m in _NUMBER.finditer(text) if len(m.group(1)) > allowed]
        tolerance = 10.0**-allowed
        for m in finer:
            value = abs(float(m.group()))
            if any(abs(value - c) < tolerance for c in self.coordinates):
                return True
        for first, second in itertools.pairwise(finer):
            if (
                _BETWEEN_PAIR.fullmatch(text, first.end(), second.start())
                and abs(float(first.group())) <= 90
                and abs(float(second.group())) <= 180
            ):
                return True
        return False


def _secrets(camera: CameraInfo, withheld: set[str]) -> frozenset[str]:
    """Every spelling of every withheld value, case-folded."""
    out: set[str] = set()
    if "address" in withheld and camera.address:
        out |= _address_forms(camera.address)
        for uri in _uris(camera):
            host = _host(uri)
            if host:
                out |= _address_forms(host)
    for name in ("name", "location", "vendor", "firmware", "serial", "hardware_id"):
        value = getattr(camera, name)
        if name in withheld and value:
            out |= _forms(value)
    if "model" in withheld:
        for value in (camera.model, camera.hardware):
            if value:
                out |= _forms(value)
    if "mac" in withheld and camera.mac:
        out |= _mac_forms(camera.mac)
    if "endpoint_reference" in withheld and camera.endpoint_reference:
        out |= _forms(camera.endpoint_reference)
        for uuid in _UUID.findall(camera.endpoint_reference.casefold()):
            out |= {uuid, uuid.replace("-", "")}
    if "device_uri" in withheld and camera.device_uri:
        out |= _forms(camera.device_uri)
    if "services" in withheld:
        for uri in camera.services.values():
            out |= _forms(uri)
    if "stream_uris" in withheld:
        for profile in camera.profiles:
            if profile.stream_uri:
                out |= _forms(profile.stream_uri)
    if "snapshot_uri" in withheld and camera.snapshot_uri:
        out |= _forms(camera.snapshot_uri)
    return frozenset(s for s in out if s)


def _forms(value: str) -> set[str]:
    v = value.strip()
    if not v:
        return set()
    forms = {v, quote(v, safe=""), quote(v, safe="/:@"), quote_plus(v), v.replace(" ", "_")}
    return {f.casefold() for f in forms}


def _address_forms(address: str) -> set[str]:
    out = _forms(address)
    ip = _parse_ip(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        out |= _address_forms(str(ip.ipv4_mapped))
    if isinstance(ip, ipaddress.IPv4Address):
        dotted = str(ip)
        out |= {dotted, dotted.replace(".", "-"), dotted.replace(".", "_")}
    elif isinstance(ip, ipaddress.IPv6Address):
        out |= {ip.compressed, ip.exploded}
    return {f.casefold() for f in out}


def _mac_forms(mac: str) -> set[str]:
    out = _forms(mac)
    digits = re.sub(r"[^0-9a-f]", "", mac.casefold())
    if len(digits) == 12:
        pairs = [digits[i : i + 2] for i in range(0, 12, 2)]
        out |= {":".join(pairs), "-".join(pairs), digits, ".".join(pairs)}
        out.add(".".join(digits[i : i + 4] for i in range(0, 12, 4)))  # aabb.ccdd.eeff
        eui = _eui64(mac)
        if eui is not None:  # the interface identifier of a SLAAC address, as IPv6 writes it
            groups = [int.from_bytes(eui[i : i + 2], "big") for i in range(0, 8, 2)]
            out.add(":".join(f"{g:x}" for g in groups))
    return out


def _eui64(mac: str) -> bytes | None:
    digits = re.sub(r"[^0-9a-f]", "", mac.casefold())
    if len(digits) != 12:
        return None
    raw = bytes.fromhex(digits)
    return bytes([raw[0] ^ 0x02]) + raw[1:3] + b"\xff\xfe" + raw[3:]


def _uris(camera: CameraInfo) -> Iterator[str]:
    if camera.device_uri:
        yield camera.device_uri
    yield from camera.services.values()
    if camera.snapshot_uri:
        yield camera.snapshot_uri
    for profile in camera.profiles:
        if profile.stream_uri:
            yield profile.stream_uri


def _host(uri: str) -> str | None:
    try:
        return urlsplit(uri).hostname
    except ValueError:
        return None


def _ip_literals(text: str) -> Iterator[IPAddress]:
    for match in _IPV4.finditer(text):
        ip = _parse_ip(match.group())
        if ip is not None:
            yield ip
    for match in _HEX_RUN.finditer(text):
        run = match.group().strip(".")
        if run.count(":") >= 2:
            ip = _parse_ip(run)
            if ip is not None:
                yield ip


# -- snapshots -----------------------------------------------------------------------------------

RefusedBy = Literal["snapshots", "hours", "reason", "rate_limit", "requesters"]


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the owner's policy refuses a snapshot: `reason` is short and a user can read it
    (answered as `snapshot.failed` kind `refused`); `retry_after_s` for the rate limits."""

    rule: RefusedBy
    reason: str
    retry_after_s: int | None = None


# A request counts for 61 s: requests are counted per whole second of the monotonic clock, and a
# second's count expires when the whole second is more than 60 s old, so no 60 s ever holds more
# than the limit (a slot frees 60 to 61 s after it was used).
_SPAN: Final = 61


class SnapshotGate:
    """The snapshot checks of one network's export policy, with the per-requester counters.

    Rate limit: a sliding window of 60 s over per-second counts (at most 61 counts a
    requester), per `requester` of the request. Only requests the gate allows count. A requester
    with nothing in the window is forgotten; when `max_requesters` are active at once, a new one
    is refused until one goes idle (memory stays bounded, the limit is never lifted).

    `clock` (wall, epoch seconds) places `hours`; `monotonic` drives the rate limit."""

    def __init__(
        self,
        network: str,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        max_requesters: int = 4096,
    ) -> None:
        if max_requesters < 1:
            raise ValueError("max_requesters must be at least 1")
        self.network = network
        self._clock = clock
        self._monotonic = monotonic
        self._max_requesters = max_requesters
        # requester -> [second, count] pairs, oldest first; least recently allowed first
        self._counts: OrderedDict[str, deque[list[int]]] = OrderedDict()

    @property
    def requesters(self) -> int:
        """Requesters currently remembered."""
        return len(self._counts)

    def decide(self, request: Snapshot, policy: ExportPolicy) -> Refusal | None:
        """None when the policy lets this snapshot be taken (it then counts against the
        requester's rate limit), else why not. Checked in order: snapshots at all, hours,
        reason, rate limit."""
        if not policy.snapshots:
            return Refusal("snapshots", f"the {self.network} network shares no snapshots")
        if policy.hours and not _within(policy.hours, policy.timezone or "UTC", self._clock()):
            windows = ", ".join(policy.hours)
            return Refusal("hours", f"snapshots are shared {windows} ({policy.timezone})")
        if policy.reason_required and not request.reason.strip():
            return Refusal("reason", f"the {self.network} network requires a reason")
        if policy.rate_limit_per_minute is not None:
            return self._take(request.requester, policy.rate_limit_per_minute)
        return None

    def width(self, request: Snapshot, policy: ExportPolicy) -> int | None:
        """The width the adapter produces: the smaller of the asked width and `max_width`
        (None: the camera's own)."""
        widths = [w for w in (request.width, policy.max_width) if w is not None]
        return min(widths) if widths else None

    def _take(self, requester: str, limit: int) -> Refusal | None:
        now = self._monotonic()
        self._forget_idle(now)
        counts = self._counts.get(requester)
        if counts is None:
            if len(self._counts) >= self._max_requesters:
                oldest = next(iter(self._counts.values()))
                wait = _wait(oldest[-1][0] + _SPAN - now)
                return Refusal(
                    "requesters",
                    f"too many requesters in the last minute; retry in {wait} s",
                    wait,
                )
            counts = self._counts[requester] = deque()
        else:
            while counts and counts[0][0] + _SPAN <= now:
                counts.popleft()
        used = sum(n for _, n in counts)
        if used >= limit:
            wait = _wait(_frees(counts, used - limit + 1) + _SPAN - now)
            plural = "snapshot" if limit == 1 else "snapshots"
            return Refusal(
                "rate_limit",
                f"at most {limit} {plural} a minute per requester; retry in {wait} s",
                wait,
            )
        second = math.floor(now)
        if counts and counts[-1][0] == second:
            counts[-1][1] += 1
        else:
            counts.append([second, 1])
        self._counts.move_to_end(requester)
        return None

    def _forget_idle(self, now: float) -> None:
        while self._counts:
            requester, counts = next(iter(self._counts.items()))
            if counts and counts[-1][0] + _SPAN > now:
                return
            del self._counts[requester]


def _frees(counts: deque[list[int]], needed: int) -> int:
    """The second whose expiry frees `needed` counts (the oldest go first)."""
    for second, n in counts:
        needed -= n
        if needed <= 0:
            return second
    return counts[-1][0]


def _wait(seconds: float) -> int:
    return max(1, math.ceil(seconds))


def _within(hours: tuple[str, ...], zone: str, now: float) -> bool:
    local = datetime.fromtimestamp(now, ZoneInfo(zone))
    minute = local.hour * 60 + local.minute
    for text in hours:
        start, end = window(text)
        if start < end:
            if start <= minute < end:
                return True
        elif minute >= start or minute < end:
            return True
    return False
