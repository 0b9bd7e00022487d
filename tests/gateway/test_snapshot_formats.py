"""Snapshots that are not JPEGs, end to end through the API (issue 9): the real adapters against
simulated cameras whose snapshot URL answers a PNG, a BMP, an HTML error page, garbage or a PNG
bomb (`Quirks.snapshot_format`), some with a GStreamer RTSP stream behind them.

What an operator gets, and what stays on record:
- a PNG or BMP is converted to JPEG in the network's adapter (edge adapters run the same code):
  `X-Snapshot-Source: camera-http; converted from image/png`, the audit entry's `attempts` and
  `note`, the record's `snapshot_note`;
- an HTML page or garbage is a failed step: the stream serves, the header names the fallback,
  and the camera's HTTP snapshot is not downloaded again for `unusable_http_s` (an injected
  clock moves past it); without a stream, a 502 that says what the camera sent;
- a PNG declaring 100,000 x 100,000 pixels is refused from its header, nothing decoded, and not
  retried over RTSP (as a JPEG bomb).

Address plan: governance narrowed to 127.1.N.0/24 (N = 120 + pid % 20), nothing else inside.
"""

from __future__ import annotations

import ipaddress
import os
import struct
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict

from adapters.config import CredentialRef
from adapters.network import CameraNetworkAdapter
from adapters.simulator.devices import Quirks, SimDevice, SnapshotFormat
from adapters.simulator.fleet import FleetCamera
from adapters.simulator.rtsp_server import RtspCamera, RtspSimulator
from adapters.simulator.server import Simulator
from adapters.simulator.snapshot import camera_hash, read_marker
from adapters.threaded import ThreadedAdapter
from gateway.app import create_app
from gateway.keys import ADAPTERS, TOKENS
from gateway.models import Role
from gateway.settings import DASHBOARD_FIELDS, Settings
from gateway.snapshots import Frame
from gateway.vault import CredentialVault

Factory = Callable[..., Awaitable[TestClient]]  # type: ignore[type-arg]
Headers = dict[str, str]

_N = 120 + os.getpid() % 20
GOV = f"127.1.{_N}"
PASSWORD = "Fmt-n3t/pw:7!"
LIMIT = "over this gateway's limit of 33,177,600"

# camera -> (address, what its snapshot URL answers, its stream's size or None: no stream)
CAMERAS: dict[str, tuple[str, SnapshotFormat, tuple[int, int] | None]] = {
    "fmt-png": (f"{GOV}.10", SnapshotFormat.png, None),
    "fmt-bmp": (f"{GOV}.11", SnapshotFormat.bmp, None),
    "fmt-html": (f"{GOV}.12", SnapshotFormat.html_error, (640, 360)),
    "fmt-garbage": (f"{GOV}.13", SnapshotFormat.garbage, (800, 448)),
    "fmt-html-only": (f"{GOV}.14", SnapshotFormat.html_error, None),
    "fmt-garbage-only": (f"{GOV}.15", SnapshotFormat.garbage, None),
    "fmt-bomb": (f"{GOV}.16", SnapshotFormat.png_bomb, (960, 544)),
}


def full_id(short: str) -> str:
    return f"governance.{short}"


def address(short: str) -> str:
    return CAMERAS[short][0]


# --------------------------------------------------------------------------- the fleet


@dataclass
class Fleet:
    sim: Simulator
    asked: Counter[str] = field(default_factory=Counter)  # snapshots served, per address

    def device(self, short: str) -> SimDevice:
        return next(d for d in self.sim.devices if d.camera.id == short)


@pytest.fixture(scope="module")
async def fleet() -> AsyncIterator[Fleet]:
    devices = [
        SimDevice(
            camera=FleetCamera(short, "governance", "sharp-eyes", short, addr, 31.0, 121.3, "Rd"),
            password=PASSWORD,
            quirks=Quirks(snapshot_format=fmt),
        )
        for short, (addr, fmt, _) in CAMERAS.items()
    ]
    sim = Simulator(devices, answer_delay_s=0.0, serve_rtsp=False)
    streams = RtspSimulator(
        [
            RtspCamera.from_device(d, width=size[0], height=size[1])
            for d in devices
            if (size := CAMERAS[d.camera.id][2]) is not None
        ]
    )
    result = Fleet(sim)
    inner = sim._onvif._handle_snapshot

    async def counted(request: web.Request) -> web.StreamResponse:
        sock = request.transport.get_extra_info("sockname") if request.transport else None
        response = await inner(request)
        if response.status == 200:  # past the digest challenge: the answer was sent
            result.asked[sock[0] if sock else "?"] += 1
        return response

    sim._onvif._handle_snapshot = counted  # type: ignore[method-assign]
    async with sim, streams:
        yield result


# --------------------------------------------------------------------------- the gateway


@dataclass
class Gateway:
    client: TestClient  # type: ignore[type-arg]
    admin: Headers
    operator: Headers

    @property
    def adapter(self) -> CameraNetworkAdapter:
        adapter = self.client.app[ADAPTERS]["governance"]
        inner = adapter.inner if isinstance(adapter, ThreadedAdapter) else adapter
        assert isinstance(inner, CameraNetworkAdapter)
        return inner

    async def token(self, role: str) -> Headers:
        secret, _ = await self.client.app[TOKENS].create(f"fmt-{role}", Role(role), ["*"], "t")
        return {"Authorization": f"Bearer {secret}"}

    async def register(self, short: str) -> None:
        addr, _, stream = CAMERAS[short]
        body: dict[str, Any] = {
            "id": full_id(short),
            "network": "governance",
            "name": f"{short} road",
            "category": "sharp-eyes",
            "address": addr,
            "snapshot_uri": f"http://{addr}:8000/onvif/snapshot.jpg",
            "stream_uri": f"rtsp://{addr}:8554/stream1" if stream else None,
            "credentials": {"username": "admin", "password": PASSWORD},
        }
        resp = await self.client.post("/api/v1/cameras", json=body, headers=self.admin)
        assert resp.status == 201, await resp.text()

    async def snap(self, short: str, request_id: str) -> tuple[int, CIMultiDict[str], bytes]:
        headers = self.operator | {"X-Request-Id": request_id}
        url = f"/api/v1/cameras/{full_id(short)}/snapshot"
        async with self.client.get(url, headers=headers) as resp:
            return resp.status, CIMultiDict(resp.headers), await resp.read()

    async def camera(self, short: str, headers: Headers | None = None) -> dict[str, Any]:
        url = f"/api/v1/cameras/{full_id(short)}"
        resp = await self.client.get(url, headers=headers or self.admin)
        assert resp.status == 200, await resp.text()
        return await resp.json()  # type: ignore[no-any-return]

    async def audited(self, request_id: str) -> dict[str, Any]:
        auditor = await self.token("auditor")
        resp = await self.client.get("/api/v1/audit", params={"limit": "1000"}, headers=auditor)
        assert resp.status == 200
        items = (await resp.json())["items"]
        return next(e for e in items if e["request_id"] == request_id)


MakeGateway = Callable[..., Awaitable[Gateway]]


@pytest.fixture
def gateway(
    aiohttp_client: Factory, settings: Settings, vault: CredentialVault, tmp_path: Path
) -> MakeGateway:
    """Governance narrowed to this module's /24; no frame cache, no pacing (every request is a
    fetch), a quick circuit breaker."""

    async def make(share: tuple[str, ...] = DASHBOARD_FIELDS) -> Gateway:
        data = settings.model_dump()
        secret = tmp_path / "governance.pw"
        secret.write_text(PASSWORD + "\n")
        for net in data["networks"]:
            net["discovery"] |= {"wsdiscovery_targets": [], "health_interval_s": 0}
            if net["id"] == "governance":
                net["cidrs"] = [ipaddress.ip_network(f"{GOV}.0/24")]
                net["credentials"] = CredentialRef(password_file=secret).model_dump()
                net["sharing"] |= {
                    "cache_ttl_s": 0.0,
                    "rate_limit_per_minute": 10_000,
                    "share": share,
                }
        data["snapshots"] |= {
            "min_interval_s": 0.0,
            "timeout_s": 2.0,
            "rtsp_timeout_s": 3.0,
            "breaker_failures": 3,
        }
        client = await aiohttp_client(create_app(Settings.model_validate(data), vault))
        admin, _ = await client.app[TOKENS].create("fmt-admin", Role.admin, ["*"], "t")
        operator, _ = await client.app[TOKENS].create("fmt-op", Role.operator, ["*"], "t")
        return Gateway(
            client,
            {"Authorization": f"Bearer {admin}"},
            {"Authorization": f"Bearer {operator}"},
        )

    return make


def decode(jpeg: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None, "not a decodable JPEG"
    return img


def problem(status: int, headers: CIMultiDict[str], body: bytes) -> dict[str, Any]:
    assert headers["Content-Type"].startswith("application/problem+json"), (status, body)
    data: dict[str, Any] = orjson.loads(body)
    assert data["status"] == status
    return data


# --------------------------------------------------------------------------- converted


@pytest.mark.parametrize(
    ("short", "media_type", "described"),
    [("fmt-png", "image/png", "a PNG"), ("fmt-bmp", "image/bmp", "a BMP")],
)
async def test_a_png_or_bmp_snapshot_is_converted_and_says_so(
    fleet: Fleet, gateway: MakeGateway, short: str, media_type: str, described: str
) -> None:
    gw = await gateway()
    await gw.register(short)
    status, headers, body = await gw.snap(short, f"conv-{short}")
    assert status == 200, body
    assert headers["Content-Type"] == "image/jpeg"
    assert headers["X-Snapshot-Source"] == f"camera-http; converted from {media_type}"
    marker = read_marker(decode(body))  # the camera's own picture, watermarked
    assert marker is not None and marker.camera_hash == camera_hash(short)
    assert decode(body).shape[:2] == (720, 1280)

    entry = await gw.audited(f"conv-{short}")
    assert (entry["status"], entry["outcome"]) == (200, "ok")
    assert entry["extra"]["source"] == "camera-http"
    assert entry["extra"]["note"] == f"converted from {media_type}"
    assert entry["extra"]["attempts"] == (
        f"camera HTTP snapshot: {described} of 1280x720 pixels, converted to JPEG"
    )
    cam = await gw.camera(short)
    assert cam["snapshot_note"] == f"camera-http; converted from {media_type}"
    assert (cam["status"], cam["last_error"]) == ("unknown", None)  # a success, not a fault

    # The firmware is fixed: a plain JPEG, and the record's note goes.
    device = fleet.device(short)
    device.quirks.snapshot_format = SnapshotFormat.jpeg
    try:
        status, headers, body = await gw.snap(short, f"fixed-{short}")
    finally:
        device.quirks.snapshot_format = CAMERAS[short][1]
    assert (status, headers["X-Snapshot-Source"]) == (200, "camera-http")
    assert (await gw.audited(f"fixed-{short}"))["extra"]["attempts"] == ""
    assert (await gw.camera(short))["snapshot_note"] is None


@pytest.mark.parametrize("shown", [False, True])
async def test_the_note_is_shared_only_where_the_networks_policy_lists_it(
    fleet: Fleet, gateway: MakeGateway, shown: bool
) -> None:
    """`snapshot_note` is a record field like any other: a network shares it with viewers only
    by listing it in `sharing.share` (an allow-list, so a new field is never shared unasked)."""
    share = (*DASHBOARD_FIELDS, "snapshot_note") if shown else DASHBOARD_FIELDS
    gw = await gateway(share=share)
    await gw.register("fmt-png")
    assert (await gw.snap("fmt-png", "shared"))[0] == 200
    seen = await gw.camera("fmt-png", await gw.token("viewer"))
    assert seen.get("snapshot_note", "not shared") == (
        "camera-http; converted from image/png" if shown else "not shared"
    )
    admin_view = await gw.camera("fmt-png")
    assert admin_view["snapshot_note"] == "camera-http; converted from image/png"


# --------------------------------------------------------------------------- not a picture


@pytest.mark.parametrize(
    ("short", "what", "attempt"),
    [
        ("fmt-html", "an HTML page, not a picture", "an HTML page, not a picture"),
        (
            "fmt-garbage",
            "unrecognised bytes, not a picture",
            "unrecognised bytes, not a picture (sent as image/jpeg)",
        ),
    ],
)
async def test_an_unusable_answer_falls_back_to_rtsp_and_is_not_fetched_again_for_a_while(
    fleet: Fleet, gateway: MakeGateway, short: str, what: str, attempt: str
) -> None:
    gw = await gateway()
    await gw.register(short)
    now = [1000.0]
    gw.adapter.unusable_http.clock = lambda: now[0]
    ttl = gw.adapter.unusable_http.ttl_s
    assert ttl == 300  # snapshots.unusable_http_s, the default
    addr, _, size = CAMERAS[short]
    assert size is not None
    fallback = f"rtsp-grab; fallback: the HTTP snapshot answers {what}"

    asked = fleet.asked[addr]
    status, headers, body = await gw.snap(short, f"{short}-1")
    assert status == 200, body
    assert headers["X-Snapshot-Source"] == fallback
    assert decode(body).shape[:2] == (size[1], size[0])  # this camera's stream
    assert fleet.asked[addr] == asked + 1
    entry = await gw.audited(f"{short}-1")
    assert entry["extra"]["source"] == "rtsp-grab"
    assert entry["extra"]["attempts"] == f"camera HTTP snapshot: {attempt}"
    cam = await gw.camera(short)
    assert cam["snapshot_note"] == fallback
    assert cam["last_error"] is None

    # Every request is a fetch here (no cache): the stream serves; HTTP is not asked.
    for i in (2, 3):
        now[0] += 100
        status, headers, body = await gw.snap(short, f"{short}-{i}")
        assert (status, headers["X-Snapshot-Source"]) == (200, fallback)
        left = ttl - 100 * (i - 1)
        assert (await gw.audited(f"{short}-{i}"))["extra"]["attempts"] == (
            f"camera HTTP snapshot: not asked: it answered {what}; asked again in {left:.0f} s"
        )
    assert fleet.asked[addr] == asked + 1

    now[0] += 100  # unusable_http_s is over: HTTP is asked again (and still answers badly)
    status, headers, _ = await gw.snap(short, f"{short}-4")
    assert (status, headers["X-Snapshot-Source"]) == (200, fallback)
    assert fleet.asked[addr] == asked + 2
    entry = await gw.audited(f"{short}-4")
    assert entry["extra"]["attempts"] == f"camera HTTP snapshot: {attempt}"

    # Fixed, and asked again once the memory lapses: a plain JPEG; the note goes.
    device = fleet.device(short)
    device.quirks.snapshot_format = SnapshotFormat.jpeg
    try:
        now[0] += ttl + 1
        status, headers, body = await gw.snap(short, f"{short}-5")
    finally:
        device.quirks.snapshot_format = CAMERAS[short][1]
    assert (status, headers["X-Snapshot-Source"]) == (200, "camera-http")
    marker = read_marker(decode(body))
    assert marker is not None and marker.camera_hash == camera_hash(short)
    assert (await gw.camera(short))["snapshot_note"] is None
    assert len(gw.adapter.unusable_http) == 0


@pytest.mark.parametrize(
    ("short", "sent"),
    [
        ("fmt-html-only", "an HTML page, not a picture"),
        ("fmt-garbage-only", "unrecognised bytes, not a picture (sent as image/jpeg)"),
    ],
)
async def test_an_unusable_answer_without_a_stream_is_a_502_that_says_what_came(
    fleet: Fleet, gateway: MakeGateway, short: str, sent: str
) -> None:
    gw = await gateway()
    await gw.register(short)
    addr = address(short)
    asked = fleet.asked[addr]
    detail = (
        f"camera {full_id(short)} answered its snapshot request with {sent}, and has no RTSP "
        "stream to fall back on"
    )
    for i in range(3):  # the breaker's threshold; nothing to fall back on, so HTTP each time
        status, headers, body = await gw.snap(short, f"{short}-{i}")
        assert problem(status, headers, body)["detail"] == detail
        assert status == 502
        entry = await gw.audited(f"{short}-{i}")
        assert (entry["status"], entry["outcome"], entry["detail"]) == (502, "error", detail)
        assert entry["extra"]["attempts"] == "" and entry["extra"]["bytes"] == "0"
    assert fleet.asked[addr] == asked + 3
    cam = await gw.camera(short)
    assert (cam["status"], cam["last_error"]) == ("degraded", f"snapshot: {sent}")
    assert cam["snapshot_note"] is None  # a failure is last_error's, not a note


# --------------------------------------------------------------------------- bombs


def _peak_rss_reset() -> int:
    Path("/proc/self/clear_refs").write_text("5")
    return _status_mb("VmRSS")


def _status_mb(name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1]) // 1024
    raise AssertionError(f"no {name} in /proc/self/status")


async def test_a_png_bomb_is_refused_from_its_header_not_decoded_and_not_retried_over_rtsp(
    fleet: Fleet, gateway: MakeGateway
) -> None:
    gw = await gateway()
    await gw.register("fmt-bomb")  # it has a stream: a bomb is not a reason to use it
    before = _peak_rss_reset()
    status, headers, body = await gw.snap("fmt-bomb", "bomb-1")
    growth = _status_mb("VmHWM") - before
    assert status == 502
    detail = f"camera {full_id('fmt-bomb')} sent a picture of 100000x100000 pixels, {LIMIT}"
    assert problem(status, headers, body)["detail"] == detail
    assert (await gw.audited("bomb-1"))["detail"] == detail
    assert growth < 100, f"peak RSS grew by {growth} MB: the bomb was decoded"  # it is 30 GB
    assert len(gw.adapter.unusable_http) == 0  # not an answer to route around: a fault


# --------------------------------------------------------------------------- the frame


def test_a_frame_carries_its_note_and_attempts_between_gateways() -> None:
    frame = Frame(
        b"\xff\xd8jpeg",
        "rtsp-grab",
        1714550400.25,
        640,
        360,
        "fallback: the HTTP snapshot answers an HTML page, not a picture",
        ("camera HTTP snapshot: an HTML page, not a picture", "x|y"),
    )
    back = Frame.unpack(frame.pack())
    assert (back.jpeg, back.source, back.taken_at, back.width, back.height) == (
        b"\xff\xd8jpeg",
        "rtsp-grab",
        1714550400.25,
        640,
        360,
    )
    assert (back.note, back.attempts) == (frame.note, frame.attempts)
    assert back.header == (
        "rtsp-grab; fallback: the HTTP snapshot answers an HTML page, not a picture"
    )
    # what a gateway of the previous version publishes
    head = b"camera-http|1714550400.25|1280|720"
    old = Frame.unpack(struct.pack(">H", len(head)) + head + b"\xff\xd8jpeg")
    assert (old.source, old.width, old.note, old.attempts, old.header) == (
        "camera-http",
        1280,
        None,
        (),
        "camera-http",
    )


def test_the_source_header_is_one_printable_bounded_line() -> None:
    plain = Frame(b"", "rtsp-grab", 0.0, 1, 1, attempts=("camera HTTP snapshot: timed out",))
    assert plain.header == "rtsp-grab; fallback: the HTTP snapshot gave no usable picture"
    assert Frame(b"", "rtsp-grab", 0.0, 1, 1).header == "rtsp-grab"  # an RTSP-only camera
    hostile = Frame(b"", "camera-http", 0.0, 1, 1, note="converted\r\nSet-Cookie: x=1 " + "é" * 300)
    assert hostile.header.startswith("camera-http; converted??Set-Cookie: x=1 ???")
    assert len(hostile.header) == 200
