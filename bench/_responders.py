"""Clock responders for bench/scale.py: the imported cameras' device services, so that a health
round can probe every camera of a district and not only the simulated ones.

`camgw simulate` serves whole cameras (discovery, snapshots, streams) and holds one socket per
device; a process may hold 20,000 files here, so its 3,308 cameras are what one process can do.
A health probe needs only GetSystemDateAndTime: this process listens on each address of a file
(one per line, loopback only) at one port and answers that call to any POST after `--delay`
seconds, as the simulator does (50 ms). bench/scale.py starts as many of them as the addresses
need (at most PER_PROCESS each). Prints `READY <n>` once listening; stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import signal
import socket
import sys
from pathlib import Path

PER_PROCESS = 16_000  # listening sockets per process (the file limit is 20,000)
_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
    b'xmlns:tds="http://www.onvif.org/ver10/device/wsdl" '
    b'xmlns:tt="http://www.onvif.org/ver10/schema"><s:Body><tds:GetSystemDateAndTimeResponse>'
    b"<tds:SystemDateAndTime><tt:DateTimeType>NTP</tt:DateTimeType>"
    b"<tt:DaylightSavings>false</tt:DaylightSavings></tds:SystemDateAndTime>"
    b"</tds:GetSystemDateAndTimeResponse></s:Body></s:Envelope>"
)
_ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml; charset=utf-8\r\n"
    b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(_BODY)
) + _BODY


class _Clock(asyncio.Protocol):
    """Answers once the request's headers and body are in (the probe's body is small)."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.seen = bytearray()
        self.transport: asyncio.Transport | None = None
        self.answered = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.seen += data
        if not self.answered and b"</s:Envelope>" in self.seen:
            self.answered = True
            asyncio.get_running_loop().call_later(self.delay_s, self._answer)
        elif len(self.seen) > 65536:
            assert self.transport is not None
            self.transport.close()

    def _answer(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_ANSWER)
            self.transport.close()


async def serve(addresses: list[str], port: int, delay_s: float) -> None:
    loop = asyncio.get_running_loop()
    servers = []
    for address in addresses:
        if not ipaddress.ip_address(address).is_loopback:
            raise SystemExit(f"{address}: not a loopback address")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        servers.append(await loop.create_server(lambda: _Clock(delay_s), sock=sock, backlog=64))
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print(f"READY {len(servers)}", flush=True)
    await stop.wait()
    for server in servers:
        server.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("addresses", type=Path, help="file of addresses, one per line")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--delay", type=float, default=0.05)
    args = p.parse_args()
    addresses = args.addresses.read_text().split()
    if len(addresses) > PER_PROCESS:
        p.error(f"{len(addresses):,} addresses: at most {PER_PROCESS:,} per process")
    asyncio.run(serve(addresses, args.port, args.delay))
    return 0


if __name__ == "__main__":
    sys.exit(main())
