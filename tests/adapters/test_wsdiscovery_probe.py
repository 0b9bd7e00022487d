"""WS-Discovery probes over lossy UDP and on a busy loop: what discovery finds when probes or
answers are lost, and when thousands of answers arrive while the loop is busy with other work
(a health round), as they do in a district registry."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import SimpleNamespace

from adapters.simulator.wsdiscovery_responder import parse_probe, probe_matches_xml
from adapters.wsdiscovery import Endpoint, probe

HOST = "127.1.199.10"


def _match(relates_to: str, n: int, host: str) -> bytes:
    device = SimpleNamespace(
        scopes=("onvif://www.onvif.org/type/video_encoder",),
        endpoint_reference=f"urn:uuid:00000000-0000-4000-8000-{n:012d}",
        device_uri=f"http://{host}:8000/onvif/device_service",
    )
    return probe_matches_xml(device, relates_to, 1, n)  # type: ignore[arg-type]


@asynccontextmanager
async def responder(
    answer: Callable[[int, str, socket.socket, tuple[str, int]], None],
) -> AsyncIterator[int]:
    """A UDP socket on HOST that calls `answer(probe number, message id, sock, sender)` for
    every probe it receives; yields its port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    count = 0

    def on_readable() -> None:
        nonlocal count
        try:
            data, sender = sock.recvfrom(65_535)
        except BlockingIOError:
            return
        found = parse_probe(data)
        assert found is not None
        count += 1
        answer(count, found.message_id, sock, sender)

    loop.add_reader(sock.fileno(), on_readable)
    try:
        yield sock.getsockname()[1]
    finally:
        loop.remove_reader(sock.fileno())
        sock.close()


async def test_a_lost_probe_is_repeated_and_the_camera_found() -> None:
    """UDP lost the first probe (or its answer): the repeated probe finds the camera."""
    heard: list[int] = []

    def second_only(n: int, message_id: str, sock: socket.socket, to: tuple[str, int]) -> None:
        heard.append(n)
        if n >= 2:
            sock.sendto(_match(message_id, 1, HOST), to)

    async with responder(second_only) as port:
        result = await probe([Endpoint(HOST, port)], allowed=lambda _: True, wait_s=0.4)
    assert heard == [1, 2]
    assert [(t.address, t.endpoint_reference) for t in result.targets] == [
        (HOST, "urn:uuid:00000000-0000-4000-8000-000000000001")
    ]


async def test_a_camera_that_answered_is_not_probed_again_nor_counted_twice() -> None:
    heard: list[int] = []

    def always(n: int, message_id: str, sock: socket.socket, to: tuple[str, int]) -> None:
        heard.append(n)
        sock.sendto(_match(message_id, 1, HOST), to)

    async with responder(always) as port:
        result = await probe([Endpoint(HOST, port)], allowed=lambda _: True, wait_s=0.4)
    assert heard == [1] and len(result.targets) == 1


async def test_thousands_of_answers_on_a_busy_loop_are_all_read() -> None:
    """3,000 answers (an NVR-dense network) arrive while 200 other tasks keep the loop busy,
    as a health round of a district's cameras does: every one is read, none dropped by a full
    receive buffer."""
    flood = 3_000
    sending: list[asyncio.Task[None]] = []

    async def send_flood(message_id: str, sock: socket.socket, to: tuple[str, int]) -> None:
        for n in range(1, flood + 1):
            sock.sendto(_match(message_id, n, HOST), to)
            if n % 300 == 0:  # the answers of 300 cameras at a time, one burst a loop turn
                await asyncio.sleep(0.01)

    def answer(n: int, message_id: str, sock: socket.socket, to: tuple[str, int]) -> None:
        if n == 1:
            sending.append(asyncio.create_task(send_flood(message_id, sock, to)))

    stop = asyncio.Event()

    async def busy() -> None:  # ~0.1 ms of CPU, then yield: 200 of them ~20 ms per iteration
        while not stop.is_set():
            deadline = time.perf_counter() + 0.0001
            while time.perf_counter() < deadline:
                pass
            await asyncio.sleep(0)

    workers = [asyncio.create_task(busy()) for _ in range(200)]
    try:
        async with responder(answer) as port:
            result = await probe([Endpoint(HOST, port)], allowed=lambda _: True, wait_s=2.0)
    finally:
        stop.set()
        await asyncio.gather(*workers, *sending)
    assert len(result.targets) == flood
    assert not result.ignored
