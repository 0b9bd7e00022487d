"""WS-Discovery (2005/04, SOAP 1.2 over UDP) for the simulated ONVIF devices.

Each ONVIF device gets a UDP socket on (device.address, DISCOVERY_PORT) that answers unicast
Probes with a ProbeMatches from that address: RelatesTo the probe's MessageID, the device's
endpoint reference, types `dn:NetworkVideoTransmitter tds:Device`, its scopes, XAddrs and
metadata version. Only probes asking for no type, NetworkVideoTransmitter or Device (and whose
scopes, if any, the device has) are answered; offline devices stay silent.

Multicast (239.255.255.250:3702) is off unless an interface name is given explicitly: then one
socket joins the group on that interface only, and each online device answers a multicast probe
from its own unicast socket after a random delay (up to `multicast_max_delay_s`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import socket
import struct
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, cast
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from lxml import etree

from . import soap
from .devices import DISCOVERY_PORT, HostileXml, SimDevice

log = logging.getLogger("camgw.simulator.wsdiscovery")

MULTICAST_GROUP: Final = "239.255.255.250"
NS_WSA: Final = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
NS_WSD: Final = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
NS_DN: Final = "http://www.onvif.org/ver10/network/wsdl"
ACTION_PROBE: Final = f"{NS_WSD}/Probe"
ACTION_PROBE_MATCHES: Final = f"{NS_WSD}/ProbeMatches"
WSA_ANONYMOUS: Final = f"{NS_WSA}/role/anonymous"
MATCH_RFC3986: Final = f"{NS_WSD}/rfc3986"
MATCH_STRCMP: Final = f"{NS_WSD}/strcmp0"
MAX_PROBE_BYTES: Final = 32 * 1024
DEVICE_TYPES: Final = frozenset({(NS_DN, "NetworkVideoTransmitter"), (soap.NS_TDS, "Device")})
METADATA_VERSION: Final = 1


# --------------------------------------------------------------------------- probes


@dataclass(frozen=True, slots=True)
class Probe:
    message_id: str
    types: frozenset[tuple[str, str]]  # (namespace, local name); empty: any type
    scopes: tuple[str, ...]
    match_by: str


def _resolve_qnames(element: etree._Element) -> frozenset[tuple[str, str]] | None:
    """A whitespace-separated list of QNames, resolved with the element's namespaces."""
    result: set[tuple[str, str]] = set()
    nsmap = element.nsmap
    for token in (element.text or "").split():
        prefix, _, local = token.rpartition(":")
        namespace = nsmap.get(prefix or None)
        if namespace is None or not local:
            return None  # an unresolvable type matches nothing we are
        result.add((namespace, local))
    return frozenset(result)


def parse_probe(data: bytes) -> Probe | None:
    """A Probe from a datagram, or None if it is not a well-formed, DTD-free WS-Discovery Probe."""
    try:
        root = soap.safe_fromstring(data, MAX_PROBE_BYTES)
    except ValueError:
        return None
    if etree.QName(root).localname != "Envelope" or etree.QName(root).namespace not in (
        soap.NS_ENV,
        soap.NS_ENV_11,
    ):
        return None
    env = etree.QName(root).namespace
    header = root.find(f"{{{env}}}Header")
    probe = root.find(f"{{{env}}}Body/{{{NS_WSD}}}Probe")
    if header is None or probe is None:
        return None
    action = soap.child_text(header, NS_WSA, "Action")
    message_id = soap.child_text(header, NS_WSA, "MessageID")
    if action != ACTION_PROBE or not message_id:
        return None
    types_el = probe.find(f"{{{NS_WSD}}}Types")
    types = _resolve_qnames(types_el) if types_el is not None else frozenset()
    if types is None:
        types = frozenset({("", "unresolvable")})
    scopes_el = probe.find(f"{{{NS_WSD}}}Scopes")
    scopes = tuple((scopes_el.text or "").split()) if scopes_el is not None else ()
    match_by = scopes_el.get("MatchBy", MATCH_RFC3986) if scopes_el is not None else MATCH_RFC3986
    return Probe(message_id, types, scopes, match_by)


def _scope_matches(wanted: str, have: str, match_by: str) -> bool:
    if match_by == MATCH_STRCMP:
        return wanted == have
    if match_by != MATCH_RFC3986:
        return False  # an unsupported rule matches nothing (WS-Discovery 5.1)
    w, h = urlsplit(wanted), urlsplit(have)
    if (w.scheme.lower(), w.netloc.lower()) != (h.scheme.lower(), h.netloc.lower()):
        return False
    w_segments = [s for s in w.path.split("/") if s]
    h_segments = [s for s in h.path.split("/") if s]
    return h_segments[: len(w_segments)] == w_segments


def probe_matches_device(probe: Probe, device: SimDevice) -> bool:
    if probe.types and not probe.types <= DEVICE_TYPES:
        return False
    return all(
        any(_scope_matches(want, have, probe.match_by) for have in device.scopes)
        for want in probe.scopes
    )


def probe_matches_xml(
    device: SimDevice, relates_to: str, instance_id: int, message_number: int
) -> bytes:
    scopes = " ".join(device.scopes)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<env:Envelope xmlns:env="{soap.NS_ENV}" xmlns:wsa="{NS_WSA}" xmlns:d="{NS_WSD}"'
        f' xmlns:dn="{NS_DN}" xmlns:tds="{soap.NS_TDS}">'
        "<env:Header>"
        f"<wsa:MessageID>urn:uuid:{uuid.uuid4()}</wsa:MessageID>"
        f"<wsa:RelatesTo>{escape(relates_to)}</wsa:RelatesTo>"
        f'<wsa:To env:mustUnderstand="true">{WSA_ANONYMOUS}</wsa:To>'
        f'<wsa:Action env:mustUnderstand="true">{ACTION_PROBE_MATCHES}</wsa:Action>'
        f'<d:AppSequence InstanceId="{instance_id}" MessageNumber="{message_number}"/>'
        "</env:Header>"
        "<env:Body><d:ProbeMatches><d:ProbeMatch>"
        "<wsa:EndpointReference>"
        f"<wsa:Address>{escape(device.endpoint_reference)}</wsa:Address>"
        "</wsa:EndpointReference>"
        "<d:Types>dn:NetworkVideoTransmitter tds:Device</d:Types>"
        f"<d:Scopes>{escape(scopes)}</d:Scopes>"
        f"<d:XAddrs>{escape(device.device_uri)}</d:XAddrs>"
        f"<d:MetadataVersion>{METADATA_VERSION}</d:MetadataVersion>"
        "</d:ProbeMatch></d:ProbeMatches></env:Body></env:Envelope>"
    ).encode()


_MAX_DATAGRAM: Final = 65_000


def _hostile_datagram(mode: HostileXml) -> bytes:
    if mode is HostileXml.huge:  # as big as a UDP datagram gets
        head = (
            b'<?xml version="1.0" encoding="UTF-8"?>\n<e:Envelope xmlns:e="' + soap.NS_ENV.encode()
        )
        tail = b"--></e:Envelope>"
        return head + b'"><!--' + b"A" * (_MAX_DATAGRAM - len(head) - 6 - len(tail)) + tail
    return b"".join(soap.hostile_chunks(mode))


# --------------------------------------------------------------------------- sockets


class _DeviceEndpoint(asyncio.DatagramProtocol):
    def __init__(self, responder: WsDiscoveryResponder, device: SimDevice) -> None:
        self.responder = responder
        self.device = device
        self.transport: asyncio.DatagramTransport | None = None
        self.message_number = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        probe = parse_probe(data)
        if probe is not None:
            self.answer(probe, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        log.debug("%s: %s", self.device.address, exc)

    def answer(self, probe: Probe, addr: tuple[str, int]) -> None:
        device = self.device
        if self.transport is None or device.quirks.offline:
            return
        if not probe_matches_device(probe, device):
            return
        self.message_number += 1
        hostile = device.quirks.hostile_xml if self.responder.hostile else None
        if hostile is not None:
            payload = _hostile_datagram(hostile)
        else:
            payload = probe_matches_xml(
                device, probe.message_id, self.responder.instance_id, self.message_number
            )
        self.transport.sendto(payload, addr)


class _MulticastEndpoint(asyncio.DatagramProtocol):
    def __init__(self, responder: WsDiscoveryResponder) -> None:
        self.responder = responder

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        probe = parse_probe(data)
        if probe is not None:
            self.responder.answer_multicast(probe, (str(addr[0]), int(addr[1])))


def _udp_socket(address: str, port: int, reuse: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        if reuse:  # needed to coexist with the wildcard multicast socket on the same port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _multicast_socket(interface: str, port: int) -> socket.socket:
    ifindex = socket.if_nametoindex(interface)  # OSError for an unknown interface
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((MULTICAST_GROUP, port))
        mreqn = struct.pack("=4s4si", socket.inet_aton(MULTICAST_GROUP), bytes(4), ifindex)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class WsDiscoveryResponder:
    """Answers WS-Discovery Probes for a set of devices; see the module docstring."""

    def __init__(
        self,
        devices: Iterable[SimDevice],
        *,
        multicast_interface: str | None = None,
        multicast_max_delay_s: float = 0.5,
        port: int = DISCOVERY_PORT,
        hostile: bool = False,
    ) -> None:
        """`hostile`: devices with a `hostile_xml` quirk send hostile ProbeMatches too (by
        default they answer discovery normally and are hostile over ONVIF only)."""
        # One answering socket per address: of devices sharing an address (port forwards to
        # several devices), the first answers probes; the others are found by static lists, as
        # behind a real NAT, which multicast and unicast probes to the outside do not cross.
        first: dict[str, SimDevice] = {}
        for d in devices:
            if d.onvif:
                first.setdefault(d.address, d)
        self.devices = list(first.values())
        self.multicast_interface = multicast_interface
        self.multicast_max_delay_s = multicast_max_delay_s
        self.port = port
        self.hostile = hostile
        self.instance_id = int(time.time())
        self._endpoints: list[_DeviceEndpoint] = []
        self._multicast: asyncio.DatagramTransport | None = None
        self._pending: dict[int, asyncio.TimerHandle] = {}
        self._keys = itertools.count()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        reuse = self.multicast_interface is not None
        try:
            for device in self.devices:
                sock = _udp_socket(device.address, self.port, reuse)
                transport, protocol = await loop.create_datagram_endpoint(
                    lambda d=device: _DeviceEndpoint(self, d),  # type: ignore[misc]
                    sock=sock,
                )
                protocol.transport = transport
                self._endpoints.append(protocol)
            if self.multicast_interface is not None:
                sock = _multicast_socket(self.multicast_interface, self.port)
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _MulticastEndpoint(self), sock=sock
                )
                self._multicast = transport
                log.info("WS-Discovery multicast on interface %s", self.multicast_interface)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        for handle in self._pending.values():
            handle.cancel()
        self._pending.clear()
        for endpoint in self._endpoints:
            if endpoint.transport is not None:
                endpoint.transport.close()
        self._endpoints.clear()
        if self._multicast is not None:
            self._multicast.close()
            self._multicast = None

    def answer_multicast(self, probe: Probe, addr: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        for endpoint in self._endpoints:
            key = next(self._keys)
            delay = random.uniform(0, self.multicast_max_delay_s)
            self._pending[key] = loop.call_later(delay, self._fire, key, endpoint, probe, addr)

    def _fire(
        self, key: int, endpoint: _DeviceEndpoint, probe: Probe, addr: tuple[str, int]
    ) -> None:
        self._pending.pop(key, None)
        with contextlib.suppress(OSError):
            endpoint.answer(probe, addr)
