"""In-process networks' adapters in a child process (adapters/process.py): the gateway sees the
same adapter, while the camera reads' CPU work leaves its interpreter.

Three parts: exceptions across the socket (no process); the protocol against a scripted adapter
built in the child (flow control, cancellation, a killed child, a crash loop, the gateway's
exit); and the real `CameraNetworkAdapter` in the child against the real simulator on loopback
(127.1.225.0/24, 127.1.226.0/24), compared with the same adapter in this process.

Every wait is on a condition with a bounded timeout (`eventually`), never on a fixed sleep.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np
import pytest
from aiohttp import web

import adapters.onvif
import adapters.rtsp.errors
from adapters.base import (
    AdapterError,
    AdapterUnavailable,
    CameraAuthError,
    CameraFailed,
    CameraProtocolError,
    CameraRead,
    CameraUnreachable,
    Discovered,
    DiscoveryDone,
    DiscoveryEvent,
    DiscoveryProgress,
    Failure,
    SnapshotFailed,
    SnapshotRequest,
    Target,
    failure_kind,
)
from adapters.config import DiscoveryConfig
from adapters.imaging import BadImage, ImageTooLarge, NotAPicture
from adapters.network import AdapterSpec, CameraNetworkAdapter
from adapters.process import _WINDOW, AdapterProcess, dump_exception, load_exception
from adapters.simulator.devices import ONVIF_PORT, Quirks, SimDevice
from adapters.simulator.fleet import FleetCamera
from adapters.simulator.server import Simulator, build_devices
from adapters.simulator.snapshot import camera_hash, read_marker
from adapters.uris import UriCredentials

from .scripted_adapter import PICTURE_BYTES, Scripted, ScriptedSpec

T = TypeVar("T")

NETWORK = "governance"
SLOW = "police"  # a second network in the same child: slow cameras, one read at a time
PASSWORD = "proc-Adapter-pw-4Kz"
BASE, SLOW_BASE = "127.1.225", "127.1.226"
SLOW_CAMERAS = 30
REF_KEY = b"r" * 32
ROOT = Path(__file__).resolve().parents[2]


async def eventually(
    check: Callable[[], Awaitable[T | None]], within_s: float = 10.0, what: str = ""
) -> T:
    """`check()`'s first truthy answer; fails after `within_s`."""
    deadline = time.monotonic() + within_s
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within_s} s: {what}")
        await asyncio.sleep(0.02)


# --------------------------------------------------------------------------- exceptions


def _subclasses(cls: type[BaseException]) -> set[type[BaseException]]:
    out = {cls}
    for sub in cls.__subclasses__():
        out |= _subclasses(sub)
    return out


def _example(cls: type[BaseException]) -> BaseException:
    """An instance as the adapters raise it (the classes whose __init__ takes more)."""
    if cls is SnapshotFailed:
        return SnapshotFailed(
            [
                ("camera HTTP snapshot", CameraAuthError("digest refused")),
                ("RTSP grab", adapters.rtsp.errors.GrabTimeout("no keyframe within 4s")),
            ]
        )
    if cls is adapters.rtsp.errors.FrameTooLarge:
        return cls(7680, 4320, 1_000_000)
    if cls is adapters.onvif.CallFailed:
        return cls("GetProfiles", "no profiles", "KeyError")
    if cls is ImageTooLarge:
        return cls(9000, 9000, 33_177_600)
    if cls is NotAPicture:
        return cls("text/html", "", "image/jpeg")
    return cls(f"camera 127.1.0.5: {cls.__name__} on the way")


def test_every_adapter_error_round_trips_with_its_type_message_and_attributes() -> None:
    classes = {c for c in _subclasses(AdapterError) if c.__module__.startswith("adapters.")}
    classes |= _subclasses(BadImage)  # the gateway maps these too (snapshot refusals, 502s)
    assert len(classes) >= 20, sorted(c.__name__ for c in classes)
    for cls in classes:
        exc = _example(cls)
        back = load_exception(dump_exception(exc))
        assert type(back) is cls, cls
        assert str(back) == str(exc) and back.args == exc.args, cls
        if isinstance(exc, SnapshotFailed):
            assert isinstance(back, SnapshotFailed)
            assert [(n, type(e), str(e)) for n, e in back.steps] == [
                (n, type(e), str(e)) for n, e in exc.steps
            ]
        else:
            assert back.__dict__ == exc.__dict__, cls
        if isinstance(exc, AdapterError):
            assert isinstance(back, AdapterError) and failure_kind(back) is failure_kind(exc)


class _WithHook(CameraProtocolError):
    pass


def test_an_exception_that_does_not_pickle_becomes_an_adapter_error() -> None:
    class Local(Exception):  # not importable by the other side
        pass

    back = load_exception(dump_exception(Local("boom at 127.1.0.5")))
    assert type(back) is AdapterError and str(back) == "Local: boom at 127.1.0.5"
    hooked = _WithHook("answered with a hook")
    hooked.hook = lambda: None  # type: ignore[attr-defined]
    back = load_exception(dump_exception(hooked))
    assert type(back) is AdapterError and str(back) == "_WithHook: answered with a hook"
    assert type(load_exception(b"not a pickle")) is AdapterError


# --------------------------------------------------------------------------- the protocol


async def state(process: AdapterProcess) -> dict[str, Any]:
    [result] = await process.adapter(NETWORK).probe([Target("state")])
    assert result.error is not None
    parsed: dict[str, Any] = json.loads(result.error)
    return parsed


@pytest.fixture(scope="module")
async def shared() -> AsyncIterator[AdapterProcess]:
    """One child for the tests that leave it running."""
    process = AdapterProcess([ScriptedSpec()], factory=Scripted, niceness=0)
    yield process
    await process.stop()


@pytest.fixture
async def scripted() -> AsyncIterator[AdapterProcess]:
    """A child of the test's own (to kill, stop, crash)."""
    process = AdapterProcess([ScriptedSpec()], factory=Scripted, niceness=0)
    yield process
    await process.stop()


async def test_calls_discovery_and_errors_cross_over(shared: AdapterProcess) -> None:
    adapter = shared.adapter(NETWORK)
    assert adapter.network == NETWORK
    got = [e async for e in adapter.discover("200")]
    assert got == [DiscoveryProgress(found=i) for i in range(1, 201)] + [DiscoveryDone()]
    assert (await state(shared))["pid"] == shared.pid != os.getpid()
    big = await adapter.snapshot(SnapshotRequest("ok", None, None, None))
    assert len(big.jpeg) == PICTURE_BYTES + 4 and big.source == "camera-http"
    with pytest.raises(SnapshotFailed) as failed:
        await adapter.snapshot(SnapshotRequest("failed", None, None, None))
    assert [(n, type(e), str(e)) for n, e in failed.value.steps] == [
        ("camera HTTP snapshot", CameraUnreachable, "refused")
    ]
    with pytest.raises(AdapterError, match=r"^Odd: an odd failure$"):
        await adapter.snapshot(SnapshotRequest("local", None, None, None))
    await adapter.close()
    assert (await state(shared))["closed"] is True


async def test_discovery_is_flow_controlled_and_closing_it_stops_the_childs_stream(
    shared: AdapterProcess,
) -> None:
    """The child sends at most _WINDOW events the consumer has not taken; closing the iterator
    ends the child's stream (its `finally` runs there)."""
    before = await state(shared)
    sent0, closed0 = before["sent"], before["streams_closed"]
    stream = shared.adapter(NETWORK).discover("100000")
    assert await anext(stream) == DiscoveryProgress(found=1)
    # One event taken, none acknowledged yet (acks go in batches of 16): the child has sent its
    # window, and the next event waits for credit (read from the adapter, not sent).
    await eventually(lambda: _sent_at_least(shared, sent0 + _WINDOW + 1), what="the window")
    for _ in range(3):  # round trips: the child's loop has had every chance to send more
        assert (await state(shared))["sent"] == sent0 + _WINDOW + 1
    for _ in range(16):
        await anext(stream)
    await anext(stream)  # the 17th take acknowledges 16: 16 more may come
    await eventually(lambda: _sent_at_least(shared, sent0 + _WINDOW + 17), what="16 more")
    assert (await state(shared))["sent"] == sent0 + _WINDOW + 17
    await stream.aclose()  # type: ignore[attr-defined]
    await eventually(lambda: _streams_closed(shared, closed0 + 1), what="the stream closed")
    assert (await state(shared))["sent"] == sent0 + _WINDOW + 17


async def _sent_at_least(process: AdapterProcess, n: int) -> bool:
    return bool((await state(process))["sent"] >= n)


async def _streams_closed(process: AdapterProcess, n: int) -> bool:
    return bool((await state(process))["streams_closed"] == n)


async def test_cancelling_a_caller_cancels_its_call_in_the_child(shared: AdapterProcess) -> None:
    call = asyncio.create_task(shared.adapter(NETWORK).probe([Target("hang")]))
    await eventually(lambda: _hanging(shared, 1), what="the call hanging in the child")
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await eventually(lambda: _hanging(shared, 0), what="the child's call cancelled")


async def _hanging(process: AdapterProcess, n: int) -> bool:
    return bool((await state(process))["hanging"] == n)


async def test_a_killed_child_fails_pending_calls_and_the_next_call_starts_another(
    scripted: AdapterProcess, caplog: pytest.LogCaptureFixture
) -> None:
    adapter = scripted.adapter(NETWORK)
    call = asyncio.create_task(adapter.probe([Target("hang")]))
    stream = adapter.discover("100000")
    await anext(stream)
    await eventually(lambda: _hanging(scripted, 1), what="the call hanging in the child")
    first = scripted.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    with pytest.raises(AdapterUnavailable) as pending:
        await asyncio.wait_for(call, 10)
    message = str(pending.value)
    assert f"(pid {first}) was killed by SIGKILL (exit code -9)" in message
    with pytest.raises(AdapterUnavailable, match="SIGKILL"):  # the stream, too
        while True:
            await asyncio.wait_for(anext(stream), 10)
    assert any("SIGKILL" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)
    assert not _alive(first)
    # The next call starts a new child (the first restart at once).
    assert (await state(scripted))["pid"] == scripted.pid not in (None, first)
    assert scripted.starts == 2


async def test_a_crash_loop_is_slowed_down_by_a_backoff(scripted: AdapterProcess) -> None:
    adapter = scripted.adapter(NETWORK)
    for _ in range(2):  # two young deaths in a row
        await scripted.start()
        with pytest.raises(AdapterUnavailable, match=r"exited with code 3"):
            await adapter.snapshot(SnapshotRequest("exit", None, None, None))
    with pytest.raises(AdapterUnavailable, match=r"died 2 times in a row; the next one starts in"):
        await state(scripted)
    assert scripted.starts == 2  # not a third while backing off
    await eventually(lambda: _answers(scripted), within_s=5, what="a child after the backoff")
    assert scripted.starts == 3


async def _answers(process: AdapterProcess) -> bool:
    try:
        return bool(await state(process))
    except AdapterUnavailable:
        return False


async def test_stop_ends_the_child_and_no_other_starts(scripted: AdapterProcess) -> None:
    await scripted.start()
    pid = scripted.pid
    assert pid is not None and _alive(pid)
    await scripted.stop()
    assert scripted.pid is None and not _alive(pid)
    with pytest.raises(AdapterUnavailable, match="stopped"):
        await state(scripted)


def test_the_child_does_not_outlive_the_gateway(tmp_path: Path) -> None:
    """A gateway process that dies (SIGKILL: no cleanup at all) leaves no adapter process:
    the child sees its socket's EOF and exits."""
    script = tmp_path / "gateway.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio, os, signal, sys
            sys.path.insert(0, sys.argv[1])
            from tests.adapters.scripted_adapter import Scripted, ScriptedSpec
            from adapters.process import AdapterProcess

            async def main() -> None:
                process = AdapterProcess([ScriptedSpec()], factory=Scripted, niceness=0)
                await process.start()
                print(process.pid, flush=True)
                await asyncio.sleep(60)

            if __name__ == "__main__":
                asyncio.run(main())
            """
        )
    )
    gateway = subprocess.Popen(
        [sys.executable, str(script), str(ROOT)], stdout=subprocess.PIPE, cwd=ROOT
    )
    try:
        assert gateway.stdout is not None
        child = int(gateway.stdout.readline())
        assert _alive(child)
        gateway.kill()
        gateway.wait(10)
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child), "the adapter process outlived its gateway"
    finally:
        gateway.kill()
        gateway.wait(10)
        if gateway.stdout is not None:
            gateway.stdout.close()


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent to reap it has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


# --------------------------------------------------------------------------- the real adapter


def real_spec(network: str, cidr: str, **discovery: object) -> AdapterSpec:
    cfg: dict[str, object] = {
        "wsdiscovery_targets": (cidr,),
        "onvif_port": ONVIF_PORT,
        "timeout_s": 1.0,
        "camera_budget_s": 3.0,
        "probe_wait_s": 0.5,
        "health_interval_s": 0,
        **discovery,
    }
    return AdapterSpec(
        network,
        (ipaddress.ip_network(cidr),),
        DiscoveryConfig.model_validate(cfg),
        UriCredentials("admin", PASSWORD),
        ref_key=REF_KEY,
    )


ROLES: dict[str, Quirks] = {
    "good": Quirks(),
    "good-2": Quirks(),
    "skew": Quirks(clock_skew_s=-420.0),
    "no-snapshot": Quirks(no_snapshot_uri=True),
    "wrong-password": Quirks(wrong_password=True),
    "offline": Quirks(offline=True),
}


@dataclass
class Fleet:
    sim: Simulator
    devices: dict[str, SimDevice]  # by role (NETWORK)
    process: AdapterProcess
    here: dict[str, CameraNetworkAdapter]  # the same specs, in this process
    soap: Counter[str]  # SOAP requests by device address


@pytest.fixture(scope="module")
async def fleet() -> AsyncIterator[Fleet]:
    cameras = [
        FleetCamera(f"proc-{role}", NETWORK, "sharp-eyes", role, f"{BASE}.{i}", 31.08, 121.3, "")
        for i, role in enumerate(ROLES, start=1)
    ]
    cameras += [
        FleetCamera(
            f"slow-{i}", SLOW, "public-security", f"slow {i}", f"{SLOW_BASE}.{i}", 31, 121, ""
        )
        for i in range(1, SLOW_CAMERAS + 1)
    ]
    devices = build_devices(
        cameras,
        {NETWORK: PASSWORD, SLOW: PASSWORD},
        quirks_for=lambda c: replace(ROLES.get(c.name, Quirks(extra_delay_s=0.1))),
    )
    sim = Simulator(devices, answer_delay_s=0.01, serve_rtsp=False)
    soap: Counter[str] = Counter()
    inner = sim._onvif._handle_soap

    async def counted(request: web.Request) -> web.StreamResponse:
        soap[request.host.split(":")[0]] += 1
        return await inner(request)

    sim._onvif._handle_soap = counted  # type: ignore[method-assign]
    specs = [
        real_spec(NETWORK, f"{BASE}.0/26"),
        real_spec(SLOW, f"{SLOW_BASE}.0/26", concurrency=1),
    ]
    process = AdapterProcess(specs, niceness=0)
    here = {s.network: CameraNetworkAdapter(s) for s in specs}
    async with sim:
        await process.start()
        yield Fleet(sim, {d.camera.name: d for d in devices}, process, here, soap)
        for adapter in here.values():
            await adapter.close()
        await process.stop()


def _comparable(camera: Discovered) -> Discovered:
    """Without what the moment of the read changes: the clock offset (a skew note rounds it)."""
    notes = tuple(n for n in camera.notes if not n.startswith("clock skew"))
    return replace(camera, clock_offset_s=round(camera.clock_offset_s / 60), notes=notes)


async def _run(stream: AsyncIterator[DiscoveryEvent]) -> tuple[dict[str, Any], list[Any]]:
    records: dict[str, Discovered] = {}
    failures: dict[str, Failure] = {}
    other: list[Any] = []
    async for event in stream:
        if isinstance(event, CameraRead):
            records[event.camera.address or ""] = _comparable(event.camera)
        elif isinstance(event, CameraFailed):
            failures[event.failure.address or ""] = event.failure
        else:
            other.append(event)
    return {"records": records, "failures": failures}, other


async def test_discovery_through_the_child_finds_what_in_process_finds(fleet: Fleet) -> None:
    here, here_other = await _run(fleet.here[NETWORK].discover("job-here"))
    there, there_other = await _run(fleet.process.adapter(NETWORK).discover("job-there"))
    dev = fleet.devices
    assert set(there["records"]) == {
        dev[r].address for r in ("good", "good-2", "skew", "no-snapshot")
    }
    assert set(there["failures"]) == {dev["wrong-password"].address}  # offline: no answer at all
    assert there == here
    assert there_other == here_other == [DiscoveryProgress(found=5), DiscoveryDone()]
    record = there["records"][dev["good"].address]
    assert record.serial and record.profiles and record.snapshot_uri and record.ref


async def test_probe_through_the_child_answers_as_in_process(fleet: Fleet) -> None:
    targets = [Target(fleet.devices[r].address, ONVIF_PORT) for r in ("good", "offline")]
    here = await fleet.here[NETWORK].probe(targets)
    there = await fleet.process.adapter(NETWORK).probe(targets)
    assert [(r.address, r.ok, r.error) for r in there] == [(r.address, r.ok, r.error) for r in here]
    assert [r.ok for r in there] == [True, False]


def _snapshot_request(fleet: Fleet, role: str) -> SnapshotRequest:
    address = fleet.devices[role].address
    return SnapshotRequest(
        f"proc-{role}",
        address,
        f"http://{address}:{ONVIF_PORT}/onvif/snapshot.jpg",
        None,
        UriCredentials("admin", PASSWORD),
        credential_ports=frozenset({ONVIF_PORT}),
    )


async def test_a_snapshot_through_the_child_is_the_cameras_picture(fleet: Fleet) -> None:
    request = _snapshot_request(fleet, "good")
    here = await fleet.here[NETWORK].snapshot(request)
    there = await fleet.process.adapter(NETWORK).snapshot(request)
    assert there.source == here.source == "camera-http"
    pictures = [
        cv2.imdecode(np.frombuffer(r.jpeg, np.uint8), cv2.IMREAD_COLOR) for r in (here, there)
    ]
    assert pictures[0] is not None and pictures[1] is not None
    assert pictures[1].shape == pictures[0].shape == (720, 1280, 3)
    marker = read_marker(np.asarray(pictures[1], dtype=np.uint8))
    assert marker is not None and marker.camera_hash == camera_hash("proc-good")


@pytest.mark.parametrize("role", ["wrong-password", "offline"])
async def test_a_failure_through_the_child_has_the_same_type_and_message(
    fleet: Fleet, role: str
) -> None:
    request = _snapshot_request(fleet, role)
    with pytest.raises(AdapterError) as here:
        await fleet.here[NETWORK].snapshot(request)
    with pytest.raises(AdapterError) as there:
        await fleet.process.adapter(NETWORK).snapshot(request)
    assert type(there.value) is type(here.value) is SnapshotFailed
    assert str(there.value) == str(here.value)
    assert isinstance(there.value, SnapshotFailed) and isinstance(here.value, SnapshotFailed)
    steps = [(n, type(e), str(e)) for n, e in there.value.steps]
    assert steps == [(n, type(e), str(e)) for n, e in here.value.steps]
    kind = CameraAuthError if role == "wrong-password" else CameraUnreachable
    assert isinstance(there.value.steps[0][1], kind)


async def test_closing_a_discovery_mid_way_stops_the_childs_reads(fleet: Fleet) -> None:
    """The slow network reads one camera at a time (0.1 s per answer): after its first camera
    the reader gives up, and the child stops reading the other 29."""
    slow = {f"{SLOW_BASE}.{i}" for i in range(1, SLOW_CAMERAS + 1)}
    stream = fleet.process.adapter(SLOW).discover("job-cancelled")
    async for event in stream:
        if isinstance(event, CameraRead):
            break
    await stream.aclose()  # type: ignore[attr-defined]

    async def settled() -> int | None:
        before = sum(fleet.soap[a] for a in slow)
        for _ in range(5):  # five round trips to the child and back: nothing more was asked
            await fleet.process.adapter(SLOW).probe([])
        await asyncio.sleep(0.3)  # longer than one answer: a read still going would show
        return before if sum(fleet.soap[a] for a in slow) == before else None

    await eventually(settled, what="the child's reads stopped")
    contacted = {a for a in slow if fleet.soap[a]}
    assert 1 <= len(contacted) <= 3, (
        f"{len(contacted)} of {SLOW_CAMERAS} cameras read after a close"
    )
