"""WS-Discovery (ONVIF Core 7.3, WS-Discovery 2005/04) Probe / ProbeMatches over asyncio UDP.

Unicast probes go to each configured target; a multicast probe is sent only on an interface the
config names explicitly. Answers are hostile input: parsed with defusedxml (no DTDs, no
entities), size-capped, matched to our MessageID, and dropped when they come from outside the
network's CIDRs.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import struct
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit
from xml.etree.ElementTree import Element

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from .base import Target

log = logging.getLogger(__name__)

PORT = 3702
MULTICAST_GROUP = "239.255.255.250"
MAX_DATAGRAM = 65_535
_SEND_BATCH = 128  # datagrams per tick, so a burst never overflows the receive buffer

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "d": "http://schemas.xmlsoap.org/ws/2005/04/discovery",
}

PROBE = """<?xml version="1.0" encoding="UTF-8"?>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" \
xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" \
xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" \
xmlns:dn="http://www.onvif.org/ver10/network/wsdl">
<s:Header>
<a:Action s:mustUnderstand="1">http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</a:Action>
<a:MessageID>{message_id}</a:MessageID>
<a:ReplyTo><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo>
<a:To s:mustUnderstand="1">urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To>
</s:Header>
<s:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></s:Body>
</s:Envelope>"""


@dataclass(frozen=True, slots=True)
class ProbeMatch:
    endpoint_reference: str
    xaddrs: tuple[str, ...]
    scopes: tuple[str, ...]
    types: tuple[str, ...]


@dataclass(slots=True)
class ProbeResult:
    targets: list[Target] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # "address: reason"


def probe_message(message_id: str) -> bytes:
    return PROBE.format(message_id=message_id).encode()


def parse_probe_matches(data: bytes, message_id: str) -> list[ProbeMatch]:
    """ProbeMatches answering our probe; raises ValueError for anything else."""
    if len(data) > MAX_DATAGRAM:
        raise ValueError("datagram too large")
    try:
        root = SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (DefusedXmlException, SafeET.ParseError) as exc:
        raise ValueError(f"not acceptable XML ({type(exc).__name__})") from exc
    relates = root.findtext("s:Header/a:RelatesTo", default="", namespaces=NS).strip()
    if relates != message_id:
        raise ValueError("answer to another probe")
    matches = []
    for m in root.iterfind("s:Body/d:ProbeMatches/d:ProbeMatch", NS):
        ref = m.findtext("a:EndpointReference/a:Address", default="", namespaces=NS).strip()
        if not ref:
            continue
        matches.append(
            ProbeMatch(
                endpoint_reference=ref[:200],
                xaddrs=_words(m, "d:XAddrs"),
                scopes=_words(m, "d:Scopes"),
                types=_words(m, "d:Types"),
            )
        )
    return matches


def _words(el: Element, path: str) -> tuple[str, ...]:
    return tuple((el.findtext(path, default="", namespaces=NS) or "").split())[:32]


class _Collector(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, str], None]) -> None:
        self.on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self.on_datagram(data, str(addr[0]))

    def error_received(self, exc: Exception) -> None:  # ICMP unreachable from a silent host
        log.debug("probe error", extra={"error": type(exc).__name__})


async def probe(
    unicast: Iterable[str],
    *,
    allowed: Callable[[str], bool],
    wait_s: float = 2.0,
    multicast_interface: str | None = None,
    port: int = PORT,
) -> ProbeResult:
    """Probe every unicast address (and the multicast group on the named interface only),
    collect ProbeMatches for `wait_s`, and return one Target per endpoint reference."""
    message_id = f"urn:uuid:{uuid.uuid4()}"
    result = ProbeResult()
    seen: set[str] = set()

    def on_datagram(data: bytes, source: str) -> None:
        if not allowed(source):
            result.ignored.append(f"{source}: outside the network's CIDRs")
            log.warning("ws-discovery answer ignored", extra={"source": source, "why": "cidr"})
            return
        try:
            matches = parse_probe_matches(data, message_id)
        except ValueError as exc:
            result.ignored.append(f"{source}: {exc}")
            log.warning("ws-discovery answer ignored", extra={"source": source, "why": str(exc)})
            return
        for m in matches:
            if m.endpoint_reference in seen:
                continue
            seen.add(m.endpoint_reference)
            result.targets.append(_target(source, m))

    loop = asyncio.get_running_loop()
    sock = _socket(multicast_interface)
    transport, _ = await loop.create_datagram_endpoint(lambda: _Collector(on_datagram), sock=sock)
    try:
        message = probe_message(message_id)
        for i, address in enumerate(unicast):
            transport.sendto(message, (address, port))
            if i % _SEND_BATCH == _SEND_BATCH - 1:
                await asyncio.sleep(0.002)
        if multicast_interface:
            transport.sendto(message, (MULTICAST_GROUP, port))
        await asyncio.sleep(wait_s)
    finally:
        transport.close()
    return result


def _target(source: str, m: ProbeMatch) -> Target:
    port = 80
    for xaddr in m.xaddrs:
        parts = urlsplit(xaddr)
        if parts.hostname == source:
            port = parts.port or 80
            break
    return Target(
        address=source,
        port=port,
        endpoint_reference=m.endpoint_reference,
        xaddrs=m.xaddrs,
        scopes=m.scopes,
        source="ws-discovery",
    )


def _socket(multicast_interface: str | None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    if multicast_interface:
        index = socket.if_nametoindex(multicast_interface)  # raises OSError for a bad name
        mreqn = struct.pack("4s4si", b"\0" * 4, b"\0" * 4, index)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        sock.bind(("", 0))
    else:
        # Nothing multicast can leave this socket: it is bound to loopback-or-unicast use only.
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 0)
        sock.bind(("0.0.0.0", 0))
    sock.setblocking(False)
    return sock


def expand_targets(entries: Iterable[str], limit: int = 65_536) -> list[str]:
    """'127.1.1.5' or '127.1.0.0/22' -> host addresses (bounded)."""
    out: list[str] = []
    for entry in entries:
        net = ipaddress.ip_network(entry, strict=False)
        hosts = [net.network_address] if net.num_addresses == 1 else net.hosts()
        for host in hosts:
            out.append(str(host))
            if len(out) > limit:
                raise ValueError(f"more than {limit} probe targets")
    return out
