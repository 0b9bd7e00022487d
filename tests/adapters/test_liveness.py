"""The health probe without a SOAP stack (adapters/liveness.py): a camera whose device service
answers GetSystemDateAndTime is alive; one that refuses the connection, closes without an
answer, answers a fault, an HTTP error, or bytes that are not the clock's answer is not, each
with the reason the operator sees in the camera's last_error; a flood is read no further than
MAX_ANSWER. Against a real camera simulator and a hostile server on loopback."""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from adapters import network
from adapters.base import CameraProtocolError, CameraTimeout, CameraUnreachable, Target
from adapters.config import DiscoveryConfig
from adapters.liveness import MAX_ANSWER, ClockProbe, clock_answers, probe_clocks, request_bytes
from adapters.network import AdapterSpec, CameraNetworkAdapter
from adapters.onvif import device_url
from adapters.simulator.devices import ONVIF_PORT
from adapters.simulator.fleet import FleetCamera
from adapters.simulator.server import SimDevice, Simulator

ADDRESS = "127.77.0.10"
Reply = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def test_a_simulated_camera_answers_the_clock_probe() -> None:
    cam = FleetCamera(
        id="t", network="governance", category="sharp-eyes", name="x", address=ADDRESS,
        lat=31.0, lon=121.0, place="x",
    )  # fmt: skip
    async with Simulator([SimDevice(camera=cam, password="pw")], 0.0, serve_rtsp=False):
        target = Target(address=ADDRESS, port=ONVIF_PORT)
        await clock_answers(ADDRESS, ONVIF_PORT, device_url(target))  # no exception: alive


def test_the_request_names_the_call_and_never_credentials() -> None:
    raw = request_bytes("http://admin:secret@127.0.0.5:8000/onvif/device_service?x=1")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /onvif/device_service?x=1 HTTP/1.1\r\nHost: 127.0.0.5:8000\r\n")
    assert b"secret" not in raw and b"admin" not in raw
    assert b"<tds:GetSystemDateAndTime/>" in body
    assert f"Content-Length: {len(body)}".encode() in head


@pytest.fixture
async def hostile() -> AsyncIterator[Callable[[Reply], Awaitable[int]]]:
    servers: list[asyncio.Server] = []

    async def serve(reply: Reply) -> int:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"</s:Envelope>")
            try:
                await reply(reader, writer)
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        port: int = server.sockets[0].getsockname()[1]
        return port

    yield serve
    for server in servers:
        server.close()
        await server.wait_closed()


def _answer(status: bytes, body: bytes) -> Reply:
    async def reply(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()

    return reply


@pytest.fixture(params=["epoll", "asyncio"])
def path(request: pytest.FixtureRequest) -> str:
    """Each answer through both probes: the health round's epoll loop (probe_clocks, in a
    worker thread) and the asyncio one (clock_answers), which must judge alike."""
    return str(request.param)


async def _probe(port: int, path: str = "epoll") -> None:
    url = f"http://127.0.0.1:{port}/onvif/device_service"
    if path == "asyncio":
        await clock_answers("127.0.0.1", port, url)
        return
    probes = [ClockProbe("127.0.0.1", port, url)]
    (outcome,) = await asyncio.to_thread(probe_clocks, probes, 4, 5.0)
    if outcome.error is not None:
        raise outcome.error
    assert outcome.latency_ms > 0


CLOCK = b"<s:Envelope><s:Body><tds:GetSystemDateAndTimeResponse/></s:Body></s:Envelope>"


async def test_a_clock_answer_is_alive(
    hostile: Callable[[Reply], Awaitable[int]], path: str
) -> None:
    await _probe(await hostile(_answer(b"200 OK", CLOCK)), path)


@pytest.mark.parametrize(
    ("reply", "error", "message"),
    [
        (_answer(b"500 Internal", b"<s:Fault/>"), CameraProtocolError,
         "GetSystemDateAndTime: HTTP 500 in the answer"),
        (_answer(b"401 Unauthorized", b""), CameraProtocolError,
         "GetSystemDateAndTime: HTTP 401 in the answer"),
        (_answer(b"200 OK", b"<html>router login</html>"), CameraProtocolError,
         "GetSystemDateAndTime: no clock in the answer"),
        (_answer(b"200 OK", b"\x00" * (MAX_ANSWER * 4)), CameraProtocolError,
         "GetSystemDateAndTime: no clock in the answer"),
        (_answer(b"", b""), CameraProtocolError, "GetSystemDateAndTime: HTTP ? in the answer"),
    ],
    ids=["fault", "auth", "not-soap", "flood", "garbage-status"],
)  # fmt: skip
async def test_an_answer_that_is_not_the_clock_is_not_alive(
    hostile: Callable[[Reply], Awaitable[int]], reply: Reply, error: type, message: str, path: str
) -> None:
    port = await hostile(reply)
    with pytest.raises(error) as caught:
        await _probe(port, path)
    assert str(caught.value) == message


async def test_no_answer_is_unreachable(
    hostile: Callable[[Reply], Awaitable[int]], path: str
) -> None:
    async def close(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        return None

    with pytest.raises(CameraUnreachable) as caught:
        await _probe(await hostile(close), path)
    assert str(caught.value) == "device service: closed without an answer"


async def test_a_refused_connection_is_unreachable(path: str) -> None:
    with pytest.raises(CameraUnreachable) as caught:
        await _probe(1, path)  # (nothing listens on port 1 of loopback)
    assert str(caught.value) == "device service: ConnectionRefusedError"


async def test_a_device_that_never_answers_times_out_and_the_others_still_answer(
    hostile: Callable[[Reply], Awaitable[int]],
) -> None:
    """Four devices answer, then one is silent: it ends as a timeout and each of the others
    gets its own answer, in order. The clock is the test's: it stands still until the silent
    device has the connection, then jumps past the 5 s limit (one probe at a time, so the
    others are done by then)."""
    silent, reached = asyncio.Event(), threading.Event()

    async def hang(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reached.set()
        await silent.wait()

    good = await hostile(_answer(b"200 OK", CLOCK))
    bad = await hostile(hang)
    probes = [
        ClockProbe("127.0.0.1", port, f"http://127.0.0.1:{port}/onvif/device_service")
        for port in (good, good, good, good, bad)
    ]
    outcomes = await asyncio.to_thread(
        probe_clocks, probes, 1, 5.0, None, lambda: 100.0 if reached.is_set() else 0.0
    )
    silent.set()
    assert [str(o.error) if o.error else "ok" for o in outcomes] == [
        "ok", "ok", "ok", "ok", "timeout"
    ]  # fmt: skip
    assert isinstance(outcomes[4].error, CameraTimeout)


async def test_a_stopped_round_ends_its_unanswered_probes_at_once(
    hostile: Callable[[Reply], Awaitable[int]],
) -> None:
    silent = asyncio.Event()

    async def hang(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await silent.wait()

    port = await hostile(hang)
    probes = [ClockProbe("127.0.0.1", port, f"http://127.0.0.1:{port}/x")] * 3
    stop = threading.Event()
    stop.set()
    outcomes = await asyncio.to_thread(probe_clocks, probes, 3, 3600.0, stop)
    silent.set()
    assert [str(o.error) for o in outcomes] == ["timeout"] * 3


@pytest.mark.parametrize("in_thread", [False, True], ids=["town", "district"])
async def test_a_recorders_channels_are_one_probe_each_with_its_own_result(
    hostile: Callable[[Reply], Awaitable[int]],
    monkeypatch: pytest.MonkeyPatch,
    in_thread: bool,
) -> None:
    """A 16-channel NVR answers one probe per round for all its channels (its device service
    is theirs); each channel still gets its own result, and another device its own probe.
    Alike when the round is sorted and answered in a thread (a district's, over LOOP_ITEMS)."""
    if in_thread:
        monkeypatch.setattr(network, "LOOP_ITEMS", 0)
    calls = {"nvr": 0, "camera": 0}

    def counted(name: str, status: bytes, body: bytes) -> Reply:
        inner = _answer(status, body)

        async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            calls[name] += 1
            await inner(reader, writer)

        return reply

    nvr = await hostile(counted("nvr", b"200 OK", CLOCK))
    cam = await hostile(counted("camera", b"500 Internal Server Error", b"oops"))
    url = f"http://127.0.0.1:{nvr}/onvif/device_service"
    channels = [Target("127.0.0.1", nvr, xaddrs=(url,), ref=f"nvr-ch{i}") for i in range(16)]
    camera = Target("127.0.0.1", cam, ref="camera")
    adapter = CameraNetworkAdapter(
        AdapterSpec(
            "governance",
            (ipaddress.ip_network("127.0.0.0/8"),),
            DiscoveryConfig.model_validate({"timeout_s": 2.0, "health_interval_s": 0}),
            None,
        )
    )
    try:
        results = await adapter.probe([*channels[:8], camera, *channels[8:]])
    finally:
        await adapter.close()
    assert calls == {"nvr": 1, "camera": 1}
    assert [(r.ref, r.ok) for r in results] == [
        *((f"nvr-ch{i}", True) for i in range(8)),
        ("camera", False),
        *((f"nvr-ch{i}", True) for i in range(8, 16)),
    ]
    assert results[8].error == "GetSystemDateAndTime: HTTP 500 in the answer"
