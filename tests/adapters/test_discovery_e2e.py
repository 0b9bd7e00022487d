"""Discovery end to end at the adapter level: the real `CameraNetworkAdapter` (WS-Discovery, ONVIF
through onvif-zeep-async, RTSP DESCRIBE) against the real simulator on loopback.

Every quirk a simulated camera can have ends in a correct `Discovered` record or in a `Failure`
that names the camera and the step; hostile answers cost neither a crash nor memory; a hanging
camera costs its own budget and nothing more. The gateway's side (records, jobs, the API) is in
tests/gateway/test_discovery_api.py.

Each test serves its own loopback /26 (127.1.200.0/24, 127.1.201.0/24) so simulators never share
a port, even when the suite runs other simulators in the same process.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from aiohttp import web

from adapters.base import (
    CameraFailed,
    CameraRead,
    Discovered,
    DiscoveryDone,
    DiscoveryProgress,
    Failure,
    Target,
)
from adapters.config import DiscoveryConfig
from adapters.network import AdapterSpec, CameraNetworkAdapter
from adapters.onvif import OnvifClient
from adapters.pacing import FIRST_WINDOW
from adapters.simulator.devices import (
    ONVIF_PORT,
    RTSP_PORT,
    ClockQuirk,
    HostileXml,
    Quirks,
    SimDevice,
)
from adapters.simulator.fleet import FleetCamera
from adapters.simulator.server import Simulator, build_devices
from adapters.uris import UriCredentials, credentials_fingerprint
from adapters.wsdiscovery import probe

NETWORK = "governance"
PASSWORD = "e2e-Adapter-pw-7Qx"
GOVERNANCE = ipaddress.ip_network("127.1.0.0/16")
# Which credentials read a camera (or were refused): `make_adapter`'s, keyed with its ref_key (b"").
FINGERPRINT = credentials_fingerprint(b"", UriCredentials("admin", PASSWORD))
MIB = 1 << 20


# --------------------------------------------------------------------------- helpers


def fleet(
    base: str, roles: dict[str, Quirks], *, start: int = 1, rtsp_only_every: int = 0
) -> list[SimDevice]:
    """One simulated camera per role at `base`.start, `base`.start+1, ...; id `e2e-<role>`."""
    cameras = [
        FleetCamera(
            id=f"e2e-{role}",
            network=NETWORK,
            category="sharp-eyes",
            name=role,
            address=f"{base}.{start + i}",
            lat=31.08,
            lon=121.3,
            place="Test Rd, Dongjing",
        )
        for i, role in enumerate(roles)
    ]
    return build_devices(
        cameras,
        {NETWORK: PASSWORD},
        quirks_for=lambda c: replace(roles[c.name]),  # a copy per device: tests flip them
        rtsp_only_every=rtsp_only_every,
    )


def make_adapter(
    *,
    cidrs: Sequence[str] = (str(GOVERNANCE),),
    password: str | None = PASSWORD,
    **discovery: object,
) -> CameraNetworkAdapter:
    cfg: dict[str, object] = {
        "onvif_port": ONVIF_PORT,
        "timeout_s": 1.0,
        "camera_budget_s": 3.0,
        "probe_wait_s": 0.5,
        "health_interval_s": 0,
    }
    cfg.update(discovery)
    return CameraNetworkAdapter(
        AdapterSpec(
            NETWORK,
            tuple(ipaddress.ip_network(c) for c in cidrs),
            DiscoveryConfig.model_validate(cfg),
            UriCredentials("admin", password) if password else None,
        )
    )


@dataclass
class Counts:
    found: int = 0
    enriched: int = 0
    failed: int = 0
    ignored: int = 0


@dataclass
class Run:
    records: dict[str, Discovered] = field(default_factory=dict)  # by address
    failures: dict[str, Failure] = field(default_factory=dict)  # by address
    enriched_at: dict[str, float] = field(default_factory=dict)  # seconds after the start
    failed_at: dict[str, float] = field(default_factory=dict)  # seconds after the start
    progress: Counts = field(default_factory=Counts)
    elapsed_s: float = 0.0
    done: DiscoveryDone | None = None


async def discover(adapter: CameraNetworkAdapter) -> Run:
    """Every event of one run, as the gateway takes them: each camera once, done last."""
    run = Run()
    started = time.perf_counter()
    async for event in adapter.discover("job-test"):
        assert run.done is None, "an event after DiscoveryDone"
        if isinstance(event, CameraRead):
            d = event.camera
            assert d.address and d.address not in run.records, f"{d.address} reported twice"
            run.records[d.address] = d
            run.enriched_at[d.address] = time.perf_counter() - started
            run.progress.enriched += 1
        elif isinstance(event, CameraFailed):
            f = event.failure
            assert f.address and f.address not in run.failures, f"{f.address} failed twice"
            run.failures[f.address] = f
            run.failed_at[f.address] = time.perf_counter() - started
            run.progress.failed += 1
        elif isinstance(event, DiscoveryProgress):
            run.progress.found, run.progress.ignored = event.found, event.ignored
        else:
            run.done = event
    run.elapsed_s = time.perf_counter() - started
    assert run.done is not None, "no DiscoveryDone"
    return run


@asynccontextmanager
async def running(adapter: CameraNetworkAdapter) -> AsyncIterator[CameraNetworkAdapter]:
    try:
        yield adapter
    finally:
        await adapter.close()


def uris(d: Discovered) -> list[str]:
    found = [p.stream_uri for p in d.profiles if p.stream_uri]
    found += [u for u in (d.device_uri, d.snapshot_uri) if u]
    return found + list(d.services.values())


def rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


# --------------------------------------------------------------------------- quirks

QUIRKS: dict[str, Quirks] = {
    "good": Quirks(),
    "skew-ahead": Quirks(clock_skew_s=600.0),
    "skew-behind": Quirks(clock_skew_s=-540.0),
    "snap-unspecified": Quirks(snapshot_host="0.0.0.0"),
    "snap-internal": Quirks(snapshot_host="10.23.4.5"),
    "no-snapshot": Quirks(no_snapshot_uri=True),
    "creds-in-uri": Quirks(rtsp_credentials_in_uri=True),
    "slow": Quirks(extra_delay_s=0.3),  # 4 rounds x 0.3 s: within the 3 s budget
    "too-slow": Quirks(extra_delay_s=0.8),  # each answer in time, the camera not
    "hang": Quirks(hang=True),
    "offline": Quirks(offline=True),
    "wrong-password": Quirks(wrong_password=True),
}
ENRICHED = ("good", "skew-ahead", "skew-behind", "snap-unspecified", "snap-internal",
            "no-snapshot", "creds-in-uri", "slow")  # fmt: skip
FAILED = ("too-slow", "hang", "wrong-password")


@dataclass
class QuirkRun:
    run: Run
    devices: dict[str, SimDevice]  # by role

    def record(self, role: str) -> Discovered:
        address = self.devices[role].address
        assert address in self.run.records, f"{role}: {self.run.failures.get(address)}"
        return self.run.records[address]

    def failure(self, role: str) -> Failure:
        address = self.devices[role].address
        assert address in self.run.failures, f"{role} was not reported as a failure"
        return self.run.failures[address]


@pytest.fixture(scope="module")
async def quirky() -> AsyncIterator[QuirkRun]:
    """One discovery of a fleet with every quirk (3.5 s: the too-slow camera's budget)."""
    devices = fleet("127.1.200", QUIRKS)
    async with (
        Simulator(devices, answer_delay_s=0.01, serve_rtsp=False),
        running(make_adapter(wsdiscovery_targets=("127.1.200.0/26",))) as adapter,
    ):
        run = await discover(adapter)
    yield QuirkRun(run, {d.camera.name: d for d in devices})


def test_every_quirk_ends_in_a_record_or_an_attributed_error(quirky: QuirkRun) -> None:
    run, dev = quirky.run, quirky.devices
    assert set(run.records) == {dev[r].address for r in ENRICHED}
    assert set(run.failures) == {dev[r].address for r in FAILED}
    assert (run.progress.found, run.progress.enriched, run.progress.failed) == (11, 8, 3)
    assert run.progress.ignored == 0
    for f in run.failures.values():
        assert f.network == NETWORK and f.reason and f.kind in {"timeout", "auth"}
        assert PASSWORD not in f.reason and PASSWORD not in repr(f)
        # The credentials refused are named by their fingerprint, on an auth failure only.
        assert f.credentials_fp == (FINGERPRINT if f.kind == "auth" else None)
    # Offline: silent on WS-Discovery, so not found (and never reported as a failure).
    assert dev["offline"].address not in run.records | run.failures


@pytest.mark.parametrize("role", ENRICHED)
def test_what_a_quirky_camera_says_about_itself(quirky: QuirkRun, role: str) -> None:
    d, device = quirky.record(role), quirky.devices[role]
    assert d.network == NETWORK and d.source == "ws-discovery"
    assert d.endpoint_reference == device.endpoint_reference
    assert d.name == device.camera.id  # from the name scope
    assert (d.vendor, d.model, d.firmware) == (device.vendor, device.model, device.firmware)
    assert (d.serial, d.mac) == (device.serial, device.mac)
    assert d.device_uri == device.device_uri
    assert d.profiles and all(p.codec == "H264" and p.width and p.height for p in d.profiles)
    for uri in uris(d):  # every host the gateway will contact is the one that answered
        assert urlsplit(uri).hostname == device.address, uri
        assert "@" not in uri and PASSWORD not in uri, uri
    assert PASSWORD not in repr(d)
    assert d.uri_credentials is None  # nothing but the network's own credentials seen
    assert d.credentials_fp == FINGERPRINT and PASSWORD not in FINGERPRINT


def test_clock_skew_is_compensated_and_reported(quirky: QuirkRun) -> None:
    assert quirky.record("skew-ahead").clock_offset_s == pytest.approx(600, abs=2)
    assert quirky.record("skew-behind").clock_offset_s == pytest.approx(-540, abs=2)
    assert abs(quirky.record("good").clock_offset_s) < 2
    assert any("clock skew" in n for n in quirky.record("skew-ahead").notes)
    assert not any("clock skew" in n for n in quirky.record("good").notes)


@pytest.mark.parametrize(("role", "bad"), [("snap-unspecified", "0.0.0.0"),
                                           ("snap-internal", "10.23.4.5")])  # fmt: skip
def test_a_wrong_snapshot_host_is_replaced_by_the_cameras_address(
    quirky: QuirkRun, role: str, bad: str
) -> None:
    d = quirky.record(role)
    assert d.snapshot_uri == f"http://{d.address}:{ONVIF_PORT}/onvif/snapshot.jpg"
    assert any(f"snapshot host {bad} replaced" in n for n in d.notes), d.notes


def test_no_snapshot_uri_is_read_whole_and_marked_for_rtsp(quirky: QuirkRun) -> None:
    d = quirky.record("no-snapshot")
    assert d.snapshot_uri is None and d.profiles and d.vendor
    assert any("RTSP" in n for n in d.notes)


def test_credentials_in_the_stream_uri_are_stripped(quirky: QuirkRun) -> None:
    d = quirky.record("creds-in-uri")
    expected = quirky.devices["creds-in-uri"].stream_uri  # rtsp://host:8554/stream1
    assert [p.stream_uri for p in d.profiles] == [expected] * len(d.profiles)
    assert any("credentials removed" in n for n in d.notes)
    assert d.uri_credentials is None  # the network's own: nothing to keep


def test_slow_cameras_within_and_beyond_the_budget(quirky: QuirkRun) -> None:
    assert quirky.record("slow").vendor == quirky.devices["slow"].vendor
    too_slow = quirky.failure("too-slow")
    assert (too_slow.kind, too_slow.reason) == ("timeout", "no complete answer within 3 s")
    assert too_slow.address == quirky.devices["too-slow"].address
    assert too_slow.endpoint_reference == quirky.devices["too-slow"].endpoint_reference


def test_a_hanging_camera_is_a_timeout(quirky: QuirkRun) -> None:
    hang = quirky.failure("hang")
    assert hang.kind == "timeout" and hang.reason == "GetSystemDateAndTime: TimeoutError"


def test_a_wrong_password_is_an_auth_failure_without_the_password(quirky: QuirkRun) -> None:
    wrong = quirky.failure("wrong-password")
    assert (wrong.kind, wrong.reason) == ("auth", "GetCapabilities: credentials refused")


async def test_a_hanging_camera_costs_only_its_own_budget() -> None:
    roles = {f"fast-{i}": Quirks() for i in range(6)}
    roles |= {"hang-1": Quirks(hang=True), "hang-2": Quirks(hang=True)}
    roles |= {"crawl": Quirks(extra_delay_s=0.8)}
    devices = fleet("127.1.200", roles, start=65)
    fast = [d.address for d in devices if d.camera.id.startswith("e2e-fast")]
    budget = 3.0
    async with Simulator(devices, answer_delay_s=0.01, serve_rtsp=False):
        async with running(make_adapter(wsdiscovery_targets=tuple(fast))) as adapter:
            alone = await discover(adapter)
        async with running(make_adapter(wsdiscovery_targets=("127.1.200.64/26",))) as adapter:
            mixed = await discover(adapter)

    assert set(alone.records) == set(fast) and not alone.failures
    assert set(mixed.records) == set(fast) and len(mixed.failures) == 3
    assert {f.kind for f in mixed.failures.values()} == {"timeout"}
    # The fast cameras are read in about the same time with the hanging ones as without them.
    slowest_alone = max(alone.enriched_at.values())
    slowest_mixed = max(mixed.enriched_at[a] for a in fast)
    assert slowest_mixed < min(slowest_alone + 1.0, budget), (slowest_alone, slowest_mixed)
    # And the whole discovery waits for the hanging ones no longer than their budget.
    probe_wait = 0.5
    assert mixed.elapsed_s < probe_wait + budget + 1.0, mixed.elapsed_s
    assert mixed.elapsed_s >= probe_wait + budget - 0.1  # the crawler used its budget up


async def test_hanging_cameras_first_in_line_do_not_hold_back_the_rest() -> None:
    """Reads start in a window that opens with time while the loop keeps up (pacing.py): more
    hanging cameras than the first window, listed first, still leave room for the others."""
    hanging = {f"hang-{i}": Quirks(hang=True) for i in range(FIRST_WINDOW + 8)}
    devices = fleet("127.1.200", hanging | {f"fast-{i}": Quirks() for i in range(6)}, start=10)
    async with Simulator(devices, answer_delay_s=0.01, serve_rtsp=False):
        hosts = tuple(d.address for d in devices)  # (read in this order: the hanging first)
        # (3 s per call: the window opens on a loop that keeps time, and the first reads'
        # client set-up holds this process's loop a while on a busy machine)
        async with running(make_adapter(static_hosts=hosts, timeout_s=3.0)) as adapter:
            run = await discover(adapter)
    fast = {d.address for d in devices if d.camera.id.startswith("e2e-fast")}
    assert set(run.records) == fast
    assert {f.kind for f in run.failures.values()} == {"timeout"}
    assert len(run.failures) == len(hanging)
    assert max(run.enriched_at.values()) < min(run.failed_at.values())


# --------------------------------------------------------------------------- hostile input


async def test_hostile_xml_is_rejected_without_crash_or_memory_growth() -> None:
    roles = {"good": Quirks()} | {f"hostile-{m.value}": Quirks(hostile_xml=m) for m in HostileXml}
    devices = fleet("127.1.200", roles, start=129)
    good = devices[0].address
    by_mode = {d.quirks.hostile_xml: d.address for d in devices}
    async with Simulator(devices, answer_delay_s=0.0, serve_rtsp=False):
        # Warm up (WSDLs parsed, pools allocated) so the measurement sees only the hostile part.
        async with running(make_adapter(static_hosts=(good,))) as adapter:
            warm = await discover(adapter)
        assert set(warm.records) == {good}
        before = rss_mib()
        async with running(make_adapter(wsdiscovery_targets=("127.1.200.128/26",))) as adapter:
            run = await discover(adapter)
            after = rss_mib()
            # The adapter still works after all that.
            again = await discover(adapter)

    assert set(run.records) == {good} and set(again.records) == {good}
    assert after - before < 30, f"RSS grew {after - before:.1f} MiB ({before:.0f} -> {after:.0f})"
    expected = {
        HostileXml.billion_laughs: "DTDForbidden",
        HostileXml.external_entity: "DTDForbidden",
        HostileXml.huge: f"answer exceeds {MIB} bytes",  # cut by the response cap
        HostileXml.malformed: "unusable answer",
    }
    for mode, reason in expected.items():
        f = run.failures[by_mode[mode]]
        assert f.kind == "read", (mode, f)
        assert reason in f.reason and f.reason.startswith("GetSystemDateAndTime:"), (mode, f)
    assert run.elapsed_s < 3.0  # none of them held a slot until a timeout


async def test_hostile_probe_matches_are_ignored_and_counted() -> None:
    roles = {"good": Quirks()} | {f"hostile-{m.value}": Quirks(hostile_xml=m) for m in HostileXml}
    devices = fleet("127.1.200", roles, start=161)
    async with (
        Simulator(devices, answer_delay_s=0.0, serve_rtsp=False, hostile_discovery=True),
        running(make_adapter(wsdiscovery_targets=("127.1.200.160/27",))) as adapter,
    ):
        run = await discover(adapter)
    assert set(run.records) == {devices[0].address} and not run.failures
    assert (run.progress.found, run.progress.ignored) == (1, len(HostileXml))


# --------------------------------------------------------------------------- impossible answers

# Valid SOAP with impossible values (issue 7, finding 3): each is its own camera's problem.
IMPOSSIBLE: dict[str, Quirks] = {
    "good-1": Quirks(),
    "good-2": Quirks(),
    "good-3": Quirks(),
    "month-13": Quirks(clock_quirk=ClockQuirk.month_13),
    "no-date": Quirks(clock_quirk=ClockQuirk.no_date_element),
    "string-date": Quirks(clock_quirk=ClockQuirk.string_for_date),
    # Only LocalDateTime and TimeZone "CST-8"; 10 minutes fast, so only a correct reading of the
    # zone (UTC+8) gives the offset that lets its WS-Security digest through.
    "local-time": Quirks(clock_quirk=ClockQuirk.no_utc_datetime, clock_skew_s=600.0),
    "info-invalid-utf8": Quirks(device_info_invalid_utf8=True),
    "string-resolution": Quirks(string_for_structure=True),
    "deep-nesting": Quirks(deep_nesting=True),
}
GOOD = ("good-1", "good-2", "good-3")
NO_CLOCK = {
    "month-13": "camera clock unusable (ValueError: month must be in 1..12)",
    "no-date": "camera clock unusable (ValueError: UTCDateTime has no Date)",
    "string-date": "camera clock unusable (ValueError: UTCDateTime has no Date)",
}
LOCAL_TIME_NOTE = "camera clock: no UTCDateTime, LocalDateTime read in CST-8 (UTC+08:00)"
INVALID_UTF8_NOTE = (
    "GetDeviceInformation unusable: XMLSyntaxError: Invalid bytes in character encoding, "
    "line 2, column 320"
)
DEEP_REASON = (
    "GetProfiles: unusable answer (XMLSyntaxError: Excessive depth in document: 256, "
    "use XML_PARSE_HUGE option, line 2, column 2148)"
)


@pytest.fixture(scope="module")
async def impossible() -> AsyncIterator[QuirkRun]:
    """One discovery of three good cameras and one camera per impossible answer."""
    devices = fleet("127.1.201", IMPOSSIBLE, start=65)
    async with (
        Simulator(devices, answer_delay_s=0.01, serve_rtsp=False),
        running(make_adapter(wsdiscovery_targets=("127.1.201.64/26",))) as adapter,
    ):
        run = await discover(adapter)
    yield QuirkRun(run, {d.camera.name: d for d in devices})


def test_impossible_answers_fail_only_their_own_camera(impossible: QuirkRun) -> None:
    run, dev = impossible.run, impossible.devices
    assert set(run.records) == {d.address for r, d in dev.items() if r != "deep-nesting"}
    deep = impossible.failure("deep-nesting")
    assert (deep.kind, deep.reason) == ("read", DEEP_REASON)
    assert (deep.network, deep.endpoint_reference) == (
        NETWORK,
        dev["deep-nesting"].endpoint_reference,
    )
    assert set(run.failures) == {deep.address}
    assert (run.progress.found, run.progress.enriched, run.progress.failed) == (10, 9, 1)
    # The 100,000-deep answer was refused at once: nobody waited for a timeout.
    assert run.elapsed_s < 2.0
    for role in GOOD:
        d = impossible.record(role)
        assert d.notes == () and d.vendor == dev[role].vendor and abs(d.clock_offset_s) < 2


@pytest.mark.parametrize("role", sorted(NO_CLOCK))
def test_an_impossible_clock_loses_the_clock_and_nothing_else(
    impossible: QuirkRun, role: str
) -> None:
    d, device = impossible.record(role), impossible.devices[role]
    assert d.clock_offset_s == 0.0 and d.notes == (NO_CLOCK[role],)
    assert (d.vendor, d.serial, d.mac) == (device.vendor, device.serial, device.mac)
    assert [(p.width, p.height) for p in d.profiles] == [(1920, 1080), (640, 360)]
    assert d.snapshot_uri == f"http://{device.address}:{ONVIF_PORT}/onvif/snapshot.jpg"


def test_local_time_is_read_in_the_cameras_posix_zone(impossible: QuirkRun) -> None:
    d, device = impossible.record("local-time"), impossible.devices["local-time"]
    assert d.clock_offset_s == pytest.approx(600, abs=2)
    assert d.notes[0] == LOCAL_TIME_NOTE and d.notes[1].startswith("clock skew +")
    assert len(d.notes) == 2
    assert (d.vendor, d.serial) == (device.vendor, device.serial)  # authenticated: skew right


def test_device_information_in_invalid_utf8_leaves_the_identity_unknown(
    impossible: QuirkRun,
) -> None:
    d, device = impossible.record("info-invalid-utf8"), impossible.devices["info-invalid-utf8"]
    assert (d.vendor, d.model, d.firmware, d.serial, d.hardware_id) == (None,) * 5
    assert d.notes == (INVALID_UTF8_NOTE,)
    assert d.mac == device.mac and d.endpoint_reference == device.endpoint_reference
    assert len(d.profiles) == 2 and d.snapshot_uri


def test_text_where_a_resolution_belongs_leaves_the_resolution_unknown(
    impossible: QuirkRun,
) -> None:
    d, device = impossible.record("string-resolution"), impossible.devices["string-resolution"]
    assert [(p.codec, p.width, p.height, p.fps) for p in d.profiles] == [
        ("H264", None, None, 25.0),
        ("H264", None, None, 15.0),
    ]
    assert [p.stream_uri for p in d.profiles] == [device.stream_uri] * 2
    assert d.vendor == device.vendor and d.notes == ()


async def test_a_100k_deep_answer_is_refused_quickly_and_without_memory() -> None:
    roles = {"good": Quirks()} | {f"deep-{i}": Quirks(deep_nesting=True) for i in range(4)}
    devices = fleet("127.1.201", roles, start=129)
    async with Simulator(devices, answer_delay_s=0.0, serve_rtsp=False):
        async with running(make_adapter(static_hosts=(devices[0].address,))) as adapter:
            assert set((await discover(adapter)).records) == {devices[0].address}  # warm up
        before = rss_mib()
        async with running(make_adapter(wsdiscovery_targets=("127.1.201.128/26",))) as adapter:
            run = await discover(adapter)
            after = rss_mib()
    assert set(run.records) == {devices[0].address}
    assert {a: (f.kind, f.reason) for a, f in run.failures.items()} == {
        d.address: ("read", DEEP_REASON) for d in devices[1:]
    }
    assert after - before < 30, f"RSS grew {after - before:.1f} MiB"
    assert run.elapsed_s < 2.0


# --------------------------------------------------------------------------- nothing escapes


async def test_closing_the_events_stops_every_read() -> None:
    """The consumer stops taking events (the gateway gave up on the job): the reads still in
    flight are cancelled, none keeps talking to cameras afterwards."""
    roles = {f"cam-{i}": Quirks(extra_delay_s=0.2) for i in range(4)}
    devices = fleet("127.1.201", roles, start=193)
    sim = Simulator(devices, answer_delay_s=0.01, serve_rtsp=False)
    asked: list[str] = []
    inner = sim._onvif._handle_soap  # count what reaches the cameras, before they start

    async def counted(request: web.Request) -> web.StreamResponse:
        asked.append(request.path)
        return await inner(request)

    sim._onvif._handle_soap = counted  # type: ignore[method-assign]
    async with (
        sim,
        running(make_adapter(static_hosts=tuple(d.address for d in devices))) as adapter,
    ):
        events = adapter.discover("job-closed")
        assert await anext(events) == DiscoveryProgress(found=4, ignored=0)
        await asyncio.sleep(0.05)  # the four reads are under way
        await events.aclose()
        closed_at = len(asked)
        await asyncio.sleep(0.6)  # longer than any answer takes
    assert closed_at > 0 and len(asked) == closed_at  # nothing asked after the close


async def test_an_unforeseen_exception_is_that_cameras_read_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    roles = {f"cam-{i}": Quirks() for i in range(4)}
    devices = fleet("127.1.201", roles, start=200)
    broken = devices[2].address
    enrich = OnvifClient.enrich

    async def flaky(
        self: object,
        network: str,
        target: Target,
        creds: UriCredentials,
        budget: asyncio.Timeout | None = None,
    ) -> list[Discovered]:
        if target.address == broken:
            raise KeyError("Date")  # what no adapter code foresaw
        return await enrich(self, network, target, creds, budget)  # type: ignore[arg-type]

    monkeypatch.setattr(OnvifClient, "enrich", flaky)
    async with (
        Simulator(devices, answer_delay_s=0.01, serve_rtsp=False),
        running(make_adapter(static_hosts=tuple(d.address for d in devices))) as adapter,
    ):
        run = await discover(adapter)
        settled = len(run.records)
        await asyncio.sleep(0.1)  # nothing keeps writing after discover() returned
    assert set(run.records) == {d.address for d in devices} - {broken}
    assert len(run.records) == settled
    assert {a: (f.kind, f.reason) for a, f in run.failures.items()} == {
        broken: ("read", "ONVIF: unusable answer (KeyError: 'Date')")
    }


# --------------------------------------------------------------------------- CIDRs


async def test_answers_from_outside_the_networks_cidrs_are_ignored() -> None:
    roles = {f"inside-{i}": Quirks() for i in range(3)}
    roles |= {f"outside-{i}": Quirks(wrong_password=True) for i in range(3)}
    devices = fleet("127.1.200", roles, start=193)  # .193-.195 inside, .196-.198 outside
    inside = [d.address for d in devices[:3]]
    outside = [d.address for d in devices[3:]]
    cidrs = ("127.1.200.192/30",)  # the network's cameras: .192-.195
    adapter = make_adapter(
        cidrs=cidrs,
        wsdiscovery_targets=("127.1.200.192/26",),  # probes reach outside too
        static_hosts=(outside[0], f"{outside[1]}:{ONVIF_PORT}"),
    )
    async with Simulator(devices, answer_delay_s=0.0, serve_rtsp=False), running(adapter):
        run = await discover(adapter)
        # The same probe without the adapter's target filter: outside answers do arrive, and
        # the adapter's CIDR check drops and counts them.
        raw = await probe([d.address for d in devices], allowed=adapter.allowed, wait_s=0.5)

    assert set(run.records) == set(inside)
    # Outside cameras were never contacted (their wrong password would show as auth failures);
    # the static hosts outside the CIDRs are refused, named, and counted.
    assert {a: (f.kind, f.reason) for a, f in run.failures.items()} == {
        outside[0]: ("targets", "outside the network's CIDRs"),
        outside[1]: ("targets", "outside the network's CIDRs"),
    }
    assert run.progress.ignored == 2 and run.progress.found == 3
    assert sorted(t.address for t in raw.targets) == sorted(inside)
    assert sorted(raw.ignored) == sorted(f"{a}: outside the network's CIDRs" for a in outside)


# --------------------------------------------------------------------------- RTSP-only


async def test_rtsp_only_cameras_from_a_csv_inventory(tmp_path: Path) -> None:
    roles = {f"cam-{i}": Quirks() for i in range(6)}
    roles["cam-5"] = Quirks(wrong_password=True)  # RTSP-only too (every 3rd): refused
    devices = fleet("127.1.201", roles, rtsp_only_every=3)
    rtsp_only = [d for d in devices if not d.onvif]
    onvif = [d for d in devices if d.onvif]
    assert [d.camera.id for d in rtsp_only] == ["e2e-cam-2", "e2e-cam-5"]
    offline_rtsp = "127.1.201.40"  # an inventory row whose camera is not there at all
    inventory = tmp_path / "inventory.csv"
    rows = ["address,port,kind,name,rtsp_uri"]
    rows += [f"{d.address},,rtsp,Gate {d.camera.id},{d.stream_uri}" for d in rtsp_only]
    rows += [f"{offline_rtsp},,rtsp,Gone,rtsp://{offline_rtsp}:{RTSP_PORT}/stream1"]
    rows += [f"{onvif[0].address},{ONVIF_PORT},onvif,From CSV,"]  # also found by WS-Discovery
    inventory.write_text("\n".join(rows) + "\n")

    async with (
        Simulator(devices, answer_delay_s=0.0, serve_rtsp=True),
        running(
            make_adapter(
                wsdiscovery_targets=("127.1.201.0/26",), csv_inventory=inventory, timeout_s=2.0
            )
        ) as adapter,
    ):
        run = await discover(adapter)

    good_rtsp, refused_rtsp = rtsp_only
    assert set(run.records) == {d.address for d in [*onvif, good_rtsp]}
    d = run.records[good_rtsp.address]
    assert d.rtsp_only and d.source == "csv" and d.name == f"Gate {good_rtsp.camera.id}"
    [profile] = d.profiles
    assert (profile.codec, profile.width, profile.height) == ("H264", 1280, 720)
    assert profile.stream_uri == good_rtsp.stream_uri  # no credentials inside
    # WS-Discovery's answer wins over the CSV row for the same address (it has the identity).
    from_csv = run.records[onvif[0].address]
    assert from_csv.source == "ws-discovery" and from_csv.endpoint_reference
    # The refused and the absent RTSP cameras are failures that say so.
    refused = run.failures[refused_rtsp.address]
    assert refused.kind == "auth" and PASSWORD not in refused.reason
    gone = run.failures[offline_rtsp]
    assert gone.kind == "unreachable" and offline_rtsp in gone.reason
    # Which credentials read each camera, or were refused (RTSP as ONVIF); none when unanswered.
    assert {r.credentials_fp for r in run.records.values()} == {FINGERPRINT}
    assert (refused.credentials_fp, gone.credentials_fp) == (FINGERPRINT, None)
    assert set(run.failures) == {refused_rtsp.address, offline_rtsp}
