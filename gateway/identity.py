"""Which registry keys a camera claims: where it answers (its *site*) and who it is (its
*identities*). The rule lives here only; the Lua scripts store and check what these compute
(and remember, per record, what it claimed, so that they release exactly that).

A camera is one video source of a device. Several cameras may share an address: an NVR's or
an encoder's channels (one device, several sources), or devices behind one address on
different ports (port forwarding, several ONVIF services). So:

- site: `{network}|{address}` for a record with no known port (registered through the API),
  `{network}|{address}|{port}` for one discovery read (its device service or stream port), and
  `|ch={token}` after either for one channel of a multi-channel device. One record per site.
- identities: the adapter's ref (already a channel's own), the WS-Discovery endpoint reference
  and serial+MAC (a device's: with the channel appended for a channel of several).
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.base import Discovered

from .models import Camera


@dataclass(frozen=True, slots=True)
class Keys:
    site: str | None  # None: the address is withheld (an edge network's policy)
    identities: tuple[str, ...]
    strong: tuple[str, ...]  # the device's own identity (endpoint reference, serial+MAC)


def _suffix(token: str | None, channels: int) -> str:
    if not token or channels < 2:
        return ""
    return "|ch=" + token.replace("%", "%25").replace("|", "%7C")


def keys(
    network: str,
    address: str | None,
    port: int | None,
    *,
    ref: str | None = None,
    endpoint_reference: str | None = None,
    serial: str | None = None,
    mac: str | None = None,
    channel: str | None = None,
    channels: int = 1,
) -> Keys:
    suffix = _suffix(channel, channels)
    site = None
    if address is not None:
        site = f"{network}|{address}" + (f"|{port}" if port else "") + suffix
    strong = []
    if endpoint_reference:
        strong.append(f"{network}|ref|{endpoint_reference}{suffix}")
    if serial and mac:
        strong.append(f"{network}|hw|{serial}|{mac}{suffix}")
    own = [f"{network}|edge|{ref}"] if ref else []
    return Keys(site, (*own, *strong), tuple(strong))


def of_camera(cam: Camera) -> Keys:
    ch = cam.channel
    return keys(
        cam.network,
        str(cam.address) if cam.address is not None else None,
        cam.device.port if cam.device else None,
        ref=cam.device.ref if cam.device else None,
        endpoint_reference=cam.onvif.endpoint_reference if cam.onvif else None,
        serial=cam.serial,
        mac=cam.mac,
        channel=ch.token if ch else None,
        channels=ch.of if ch else 1,
    )


def of_discovered(d: Discovered) -> Keys:
    return keys(
        d.network,
        d.address,
        d.port,
        ref=d.ref,
        endpoint_reference=d.endpoint_reference,
        serial=d.serial,
        mac=d.mac,
        channel=d.channel,
        channels=d.channels,
    )


def bare_site(network: str, address: str | None) -> str | None:
    """The site of a record registered without a port (and of records written before sites
    had ports): discovery finds such a record by address alone."""
    return None if address is None else f"{network}|{address}"
