"""WS-Discovery (ONVIF Core 7.3, WS-Discovery 2005/04) Probe / ProbeMatches over asyncio UDP.

Unicast probes go to each configured target; a multicast probe is sent only on an interface the
config names explicitly. Answers are hostile input: parsed with defusedxml (no DTDs, no
entities), size-capped, matched to our MessageID, and dropped when they come from outside the
network's CIDRs.

Targets (`wsdiscovery_targets`, checked when the config loads with `parse_target`): an address,
a CIDR (every host of it), or one host with its own port (`127.1.0.5:3703`, `[fd00::5]:3703`);
the others are probed on the network's `wsdiscovery_port` (3702 by default). IPv4 and IPv6.
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
from typing import NamedTuple
from urllib.parse import urlsplit
from xml.etree.ElementTree import Element

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from .base import Target

log = logging.getLogger(__name__)

PORT = 3702
MULTICAST_GROUP = "239.255.255.250"
MAX_DATAGRAM = 65_535
MAX_TARGETS = 65_536  # addresses one network's probe round may name, all entries together
_SEND_BATCH = 128  # datagrams per tick, so a burst never overflows the receive buffer
_DRAIN_MAX = 1_024  # datagrams read per wake-up, so that one flood cannot hold the loop
_SEND_TRIES = 100  # 5 ms apart: a send buffer still full after half a second is given up

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


IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network


class Endpoint(NamedTuple):
    """Where one unicast probe goes."""

    address: str
    port: int


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


def _drain(sock: socket.socket, on_datagram: Callable[[bytes, str], None]) -> None:
    """Read every datagram waiting (up to _DRAIN_MAX). asyncio's datagram transport reads one
    per loop iteration: on a loop busy with a health round of thousands of probes, thousands of
    answers arriving together overflowed the receive buffer and whole cameras went unfound."""
    for _ in range(_DRAIN_MAX):
        try:
            data, addr = sock.recvfrom(MAX_DATAGRAM)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # ICMP unreachable from a silent host, reported on the socket
            log.debug("probe error", extra={"error": type(exc).__name__})
            continue
        on_datagram(data, str(addr[0]))


async def _send(sock: socket.socket, message: bytes, to: tuple[str, int]) -> None:
    """sendto on a non-blocking socket; a full send buffer is waited out briefly, a refused
    destination skipped (it is only a probe)."""
    for _ in range(_SEND_TRIES):
        try:
            sock.sendto(message, to)
            return
        except (BlockingIOError, InterruptedError):
            await asyncio.sleep(0.005)
        except OSError as exc:
            log.debug("probe not sent", extra={"to": to[0], "error": type(exc).__name__})
            return


async def probe(
    unicast: Iterable[str | Endpoint],
    *,
    allowed: Callable[[str], bool],
    wait_s: float = 2.0,
    multicast_interface: str | None = None,
    port: int = PORT,
) -> ProbeResult:
    """Probe every unicast target (an address, probed on `port`, or an `Endpoint` with its
    own) and the multicast group on the named interface only (on `port`); collect
    ProbeMatches for `wait_s`, and return one Target per endpoint reference."""
    message_id = f"urn:uuid:{uuid.uuid4()}"
    result = ProbeResult()
    seen: set[str] = set()
    answered: set[str] = set()  # sources heard from, useful or not (the probe is repeated)

    def on_datagram(data: bytes, source: str) -> None:
        first = source not in answered
        answered.add(source)
        if not allowed(source):
            if first:
                result.ignored.append(f"{source}: outside the network's CIDRs")
                log.warning("ws-discovery answer ignored", extra={"source": source, "why": "cidr"})
            return
        try:
            matches = parse_probe_matches(data, message_id)
        except ValueError as exc:
            if first:
                result.ignored.append(f"{source}: {exc}")
                log.warning(
                    "ws-discovery answer ignored", extra={"source": source, "why": str(exc)}
                )
            return
        for m in matches:
            if m.endpoint_reference in seen:
                continue
            seen.add(m.endpoint_reference)
            result.targets.append(_target(source, m))

    loop = asyncio.get_running_loop()
    targets = [t if isinstance(t, Endpoint) else Endpoint(t, port) for t in unicast]
    families = {_family(t.address) for t in targets}
    if multicast_interface or not targets:
        families.add(socket.AF_INET)
    socks: dict[int, socket.socket] = {}
    try:
        for family in sorted(families):
            socks[family] = sock = _socket(family, multicast_interface)
            loop.add_reader(sock.fileno(), _drain, sock, on_datagram)
        message = probe_message(message_id)

        async def send_all(to: list[Endpoint]) -> None:
            for i, (address, to_port) in enumerate(to):
                await _send(socks[_family(address)], message, (address, to_port))
                if i % _SEND_BATCH == _SEND_BATCH - 1:
                    await asyncio.sleep(0.002)
            if multicast_interface:
                await _send(socks[socket.AF_INET], message, (MULTICAST_GROUP, port))

        await send_all(targets)
        # UDP may lose a probe or its answer: half-way through, the targets that have not
        # answered are probed once more (WS-Discovery's UNICAST_UDP_REPEAT), the multicast
        # group too; answers already counted are not counted twice (endpoint references).
        await asyncio.sleep(wait_s / 2)
        await send_all([t for t in targets if t.address not in answered])
        await asyncio.sleep(wait_s / 2)
    finally:
        for sock in socks.values():
            loop.remove_reader(sock.fileno())
            sock.close()
    return result


def _family(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


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


def _socket(family: int, multicast_interface: str | None) -> socket.socket:
    """One socket per address family. The multicast probe (IPv4 only) goes out on the named
    interface alone; no other socket can send a multicast datagram off the host."""
    index = 0
    if multicast_interface and family == socket.AF_INET:
        try:
            index = socket.if_nametoindex(multicast_interface)
        except OSError:
            raise ValueError(
                f"multicast_interface {multicast_interface!r}: no such interface on this host"
            ) from None
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 0)
            sock.bind(("::", 0))
        elif index:
            mreqn = struct.pack("4s4si", b"\0" * 4, b"\0" * 4, index)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
            sock.bind(("", 0))
        else:
            # Nothing multicast can leave this socket: it is for unicast probes only.
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 0)
            sock.bind(("0.0.0.0", 0))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


# -- targets -------------------------------------------------------------------------------------


def split_host_port(text: str) -> tuple[str, int | None]:
    """'a.b.c.d:port' and '[v6]:port' -> (host, port); anything else -> (text, None). Raises
    ValueError for a port that is not a number from 1 to 65535."""
    host, port = text, ""
    if text.startswith("["):
        inside, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError("not an address: an IPv6 address in brackets is '[address]:port'")
        host, port = inside, rest[1:] if rest else ""
        if not rest:
            return host, None
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        return text, None
    if not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise ValueError(f"port {port!r} is not a number from 1 to 65535")
    return host, int(port)


def parse_target(entry: str) -> tuple[IPNet, int | None]:
    """One `wsdiscovery_targets` entry -> (the addresses, its own port or None). Raises
    ValueError naming what is wrong (a host name, a CIDR with host bits or a port, a multicast
    or otherwise non-unicast address, an IPv6 zone, a bad port)."""
    if entry != entry.strip() or not entry:
        raise ValueError("not an address: surrounding spaces, or empty")
    host, port = split_host_port(entry)
    if "%" in host:
        raise ValueError("names an IPv6 zone; give the address alone")
    if "/" in host and port is not None:
        raise ValueError(
            "a port goes with one address, not a range (wsdiscovery_port sets the port of "
            "the whole network)"
        )
    try:
        net = ipaddress.ip_network(host, strict=True)
    except ValueError:
        try:
            loose = ipaddress.ip_network(host, strict=False)
        except ValueError:
            raise ValueError(
                "not an address, a CIDR or address:port (names are not resolved; IPv6 with a "
                "port is '[address]:port')"
            ) from None
        raise ValueError(f"has host bits set: the range is {loose}") from None
    first = net.network_address
    if first.is_multicast:
        raise ValueError(
            "is a multicast address; a multicast probe is sent only on multicast_interface"
        )
    if net.num_addresses == 1 and (
        first.is_unspecified or first == ipaddress.IPv4Address("255.255.255.255")
    ):
        raise ValueError("is not an address a camera can have")
    return net, port


def count_targets(entries: Iterable[str]) -> int:
    """At most how many addresses `entries` name (each a valid `parse_target` entry)."""
    return sum(parse_target(e)[0].num_addresses for e in entries)


def endpoints(entries: Iterable[str], port: int = PORT, limit: int = MAX_TARGETS) -> list[Endpoint]:
    """Every host the entries name, each with its port (its own, else `port`), once; at most
    `limit` of them. Entries are `parse_target`'s (the config checked them when it loaded)."""
    out: dict[Endpoint, None] = {}
    for entry in entries:
        net, own = parse_target(entry)
        hosts = [net.network_address] if net.num_addresses == 1 else net.hosts()
        for host in hosts:
            out[Endpoint(str(host), own or port)] = None
            if len(out) > limit:
                raise ValueError(f"more than {limit} probe targets")
    return list(out)
