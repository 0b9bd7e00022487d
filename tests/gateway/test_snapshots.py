"""GET /api/v1/cameras/{id}/snapshot end to end: the real adapters (gateway.app.default_adapters)
against the camera simulator (ONVIF snapshots behind HTTP digest), GStreamer RTSP cameras and a
few hostile HTTP servers, all on loopback. Cameras are registered through the API.

Address plan: each network narrowed to a /24 of its own (N = 230 + pid % 20, so that two runs of
the suite at once do not collide), so nothing else on the shipped /16s counts as "inside":

    127.1.N.0/24  governance (watermark)      simulated cameras, hostile servers, bulk fleet
    127.2.N.0/24  police (reason required)    one simulated camera
    127.3.N.0/24  gov-affairs (no watermark)  simulated camera, a hanging server
    127.4.N.5     outside every network: a listener that must never see a connection

Pictures are identified by the marker the simulator draws (`read_marker`), which survives the
gateway's downscale, watermark and re-encode; RTSP cameras by their stream size (each is given
its own).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import logging
import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import cv2
import numpy as np
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict

from adapters.config import CredentialRef
from adapters.simulator.devices import Quirks, SimDevice
from adapters.simulator.fleet import FleetCamera
from adapters.simulator.rtsp_server import RtspCamera, RtspSimulator
from adapters.simulator.server import Simulator
from adapters.simulator.snapshot import camera_hash, read_marker, render_snapshot
from gateway.app import create_app
from gateway.keys import CATALOG, REGISTRY, SNAPSHOTS, TOKENS
from gateway.logs import JsonFormatter
from gateway.models import Role, StreamProfile
from gateway.settings import Settings
from gateway.snapshots import Frame
from gateway.vault import CredentialVault

Factory = Callable[..., Awaitable[TestClient]]  # type: ignore[type-arg]
Headers = dict[str, str]

_N = 230 + os.getpid() % 20
GOV, POL, GA = f"127.1.{_N}", f"127.2.{_N}", f"127.3.{_N}"
OUTSIDE = f"127.4.{_N}.5"  # in no network's ranges
PREFIXES = {"governance": GOV, "police": POL, "gov-affairs": GA}
CATEGORY = {"governance": "sharp-eyes", "police": "public-security", "gov-affairs": "unclassified"}

# Reserved characters on purpose: they must survive URI quoting and never show up anywhere.
PASSWORDS = {"governance": "Gov-n3t/pw:x1!", "police": "Pol1ce#pw@2", "gov-affairs": "GA-pw%33"}
CAM_PASSWORD = "Own-cam/s3cret:9"  # a camera with its own credentials (the `credentials` field)

GOOD1, GOOD2, CRED, WRONGPW = f"{GOV}.10", f"{GOV}.11", f"{GOV}.12", f"{GOV}.13"
HANG, SLOW, RTSP_ONLY, HTTP_FAILS, BREAKER, BAD_JPEG = (f"{GOV}.{i}" for i in range(14, 20))
GARBAGE, CORRUPT, OVERSIZED, PNG, REDIRECT, REDIRECT_TARGET, TCP_HANG, REDIRECT_SAME = (
    f"{GOV}.{i}" for i in range(30, 38)
)
RTSP_REDIRECT, RTSP_HANG, FORCED, RTSP_REDIRECT_LATE = (f"{GOV}.{i}" for i in range(38, 42))
BULK = [f"{GOV}.{100 + i}" for i in range(24)]
POL1, GA1, GA_TCP_HANG = f"{POL}.10", f"{GA}.10", f"{GA}.36"

RTSP_SIZES = {
    RTSP_ONLY: (640, 360),
    HTTP_FAILS: (800, 448),
    BAD_JPEG: (1024, 576),
    WRONGPW: (960, 544),
}
MAX_BYTES = 256 << 10


NETWORK_OF = {"gov": "governance", "pol": "police", "ga": "gov-affairs"}


def full_id(short: str) -> str:
    """The registry id of a test camera: ids are scoped by network (`gov-good-1` is
    `governance.gov-good-1`); the simulator's device keeps the short one (its picture marker)."""
    return f"{NETWORK_OF[short.split('-', 1)[0]]}.{short}"


def snap_uri(address: str, path: str = "/onvif/snapshot.jpg") -> str:
    return f"http://{address}:8000{path}"


def stream_uri(address: str) -> str:
    return f"rtsp://{address}:8554/stream1"


# --------------------------------------------------------------------------- the fleet


def _device(
    cam_id: str,
    network: str,
    address: str,
    password: str,
    quirks: Quirks | None = None,
    *,
    onvif: bool = True,
) -> SimDevice:
    camera = FleetCamera(
        cam_id, network, CATEGORY[network], f"{cam_id} road", address, 31.08, 121.3, "Test Rd"
    )
    return SimDevice(camera=camera, password=password, onvif=onvif, quirks=quirks or Quirks())


@dataclass
class Fleet:
    sim: Simulator
    rtsp: RtspSimulator
    requests: Counter[str] = field(default_factory=Counter)  # snapshot requests per address
    served: Counter[str] = field(default_factory=Counter)  # JPEGs the simulator sent
    authorized: Counter[str] = field(default_factory=Counter)  # requests with credentials

    def device(self, address: str) -> SimDevice:
        return next(d for d in self.sim.devices if d.address == address)


@pytest.fixture(scope="module")
async def fleet() -> AsyncIterator[Fleet]:
    gov = PASSWORDS["governance"]
    devices = [
        _device("gov-good-1", "governance", GOOD1, gov),
        _device("gov-good-2", "governance", GOOD2, gov),
        _device("gov-cred", "governance", CRED, CAM_PASSWORD),
        _device("gov-wrongpw", "governance", WRONGPW, gov, Quirks(wrong_password=True)),
        _device("gov-hang", "governance", HANG, gov, Quirks(hang=True)),
        _device("gov-slow", "governance", SLOW, gov, Quirks(extra_delay_s=0.6)),
        _device("gov-rtsp", "governance", RTSP_ONLY, gov, onvif=False),
        _device("gov-httpfails", "governance", HTTP_FAILS, gov),
        _device("gov-breaker", "governance", BREAKER, gov),
        _device("gov-badjpeg", "governance", BAD_JPEG, gov, onvif=False),  # HTTP: a fake below
        *(_device(f"gov-bulk-{i:02d}", "governance", a, gov) for i, a in enumerate(BULK)),
        _device("pol-good", "police", POL1, PASSWORDS["police"]),
        _device("ga-good", "gov-affairs", GA1, PASSWORDS["gov-affairs"]),
    ]
    sim = Simulator(devices, answer_delay_s=0.05, serve_rtsp=False)
    result = Fleet(
        sim,
        RtspSimulator(
            [
                RtspCamera.from_device(d, width=w, height=h)
                for d in devices
                for a, (w, h) in RTSP_SIZES.items()
                if d.address == a
            ]
        ),
    )
    inner = sim._onvif._handle_snapshot  # count what reaches the camera, before it starts

    async def counted(request: web.Request) -> web.StreamResponse:
        sock = request.transport.get_extra_info("sockname") if request.transport else None
        address = sock[0] if sock else "?"
        result.requests[address] += 1
        if "Authorization" in request.headers:
            result.authorized[address] += 1
        response = await inner(request)
        if response.status == 200:
            result.served[address] += 1
        return response

    sim._onvif._handle_snapshot = counted  # type: ignore[method-assign]
    async with sim, result.rtsp:
        yield result


# --------------------------------------------------------------------------- hostile servers


@dataclass
class Fakes:
    hits: Counter[str] = field(default_factory=Counter)  # HTTP requests per address
    connections: Counter[str] = field(default_factory=Counter)  # raw TCP accepts per host:port
    held: list[asyncio.StreamWriter] = field(default_factory=list)  # accepted, never answered
    real: bytes = field(
        default_factory=lambda: render_snapshot("fake", "governance", "fake", datetime.now(UTC))
    )

    async def http(self, request: web.Request) -> web.StreamResponse:
        """Misbehaving snapshot servers, one per address."""
        sock = request.transport.get_extra_info("sockname") if request.transport else None
        address = sock[0] if sock else "?"
        self.hits[address] += 1
        if address == GARBAGE:
            return web.Response(body=b"<html>no picture today</html>", content_type="image/jpeg")
        if address in (CORRUPT, BAD_JPEG):  # a real JPEG's headers, half its scan
            return web.Response(body=self.real[: len(self.real) // 2], content_type="image/jpeg")
        if address == PNG:
            return web.Response(body=_png(), content_type="image/png")
        if address == REDIRECT:
            raise web.HTTPFound(snap_uri(REDIRECT_TARGET, "/snap.jpg"))
        if address == REDIRECT_SAME and request.path != "/moved.jpg":
            raise web.HTTPFound("/moved.jpg")  # same host: followed
        if address in (REDIRECT_TARGET, REDIRECT_SAME):
            return web.Response(body=self.real, content_type="image/jpeg")
        if address == OVERSIZED:  # chunked: no Content-Length to refuse it by
            response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            with contextlib.suppress(ConnectionError):
                await response.write(self.real[:4096])
                for _ in range(64):
                    await response.write(b"\0" * 65536)
                await response.write_eof()
            return response
        raise web.HTTPNotFound()

    def silent(self, host: str, port: int) -> Callable[..., Awaitable[None]]:
        """Accept the connection, count it, never answer."""

        async def accept(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections[f"{host}:{port}"] += 1
            self.held.append(writer)

        return accept


def _png() -> bytes:
    ok, buf = cv2.imencode(".png", np.full((90, 160, 3), 80, np.uint8))
    assert ok
    return bytes(buf.tobytes())


def _rtsp_redirect(late: bool) -> Callable[..., Awaitable[None]]:
    """An RTSP server that answers 302 to the outside listener: every request, or (late) only
    DESCRIBE, after a proper answer to OPTIONS."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while head := await reader.readuntil(b"\r\n\r\n"):
                lines = head.split(b"\r\n")
                cseq = next((x[5:].strip() for x in lines if x.lower().startswith(b"cseq:")), b"1")
                if late and lines[0].startswith(b"OPTIONS"):
                    answer = b"RTSP/1.0 200 OK\r\nPublic: OPTIONS, DESCRIBE, SETUP, PLAY"
                else:
                    answer = b"RTSP/1.0 302 Moved\r\nLocation: " + stream_uri(OUTSIDE).encode()
                writer.write(answer + b"\r\nCSeq: " + cseq + b"\r\n\r\n")
                await writer.drain()
        writer.close()

    return serve


@pytest.fixture(scope="module")
async def fakes() -> AsyncIterator[Fakes]:
    state = Fakes()
    app = web.Application()
    app.router.add_get("/{tail:.*}", state.http)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    http = (GARBAGE, CORRUPT, OVERSIZED, PNG, REDIRECT, REDIRECT_TARGET, REDIRECT_SAME, BAD_JPEG)
    for address in http:
        await web.TCPSite(runner, address, 8000).start()
    servers = [
        await asyncio.start_server(_rtsp_redirect(late=False), RTSP_REDIRECT, 8554),
        await asyncio.start_server(_rtsp_redirect(late=True), RTSP_REDIRECT_LATE, 8554),
    ]
    for host, port in (
        (TCP_HANG, 8000),
        (RTSP_HANG, 8554),
        (GA_TCP_HANG, 8000),
        (OUTSIDE, 8000),
        (OUTSIDE, 8554),
    ):
        servers.append(await asyncio.start_server(state.silent(host, port), host, port))
    yield state
    for writer in state.held:
        writer.close()
    for server in servers:
        server.close()
    await runner.cleanup()


# --------------------------------------------------------------------------- the gateway


def configure(
    settings: Settings,
    tmp_path: Path,
    sharing: dict[str, dict[str, Any]] | None = None,
    discovery: dict[str, dict[str, Any]] | None = None,
    **snapshots: Any,
) -> Settings:
    """The shipped config narrowed to this module's ranges, with file-held network passwords,
    short timeouts, a quick circuit breaker and (unless a test says otherwise) no rate limit."""
    networks = []
    for net in settings.networks:
        secret = tmp_path / f"{net.id}.pw"
        secret.write_text(PASSWORDS[net.id] + "\n")
        policy = {"rate_limit_per_minute": 10_000, **(sharing or {}).get(net.id, {})}
        networks.append(
            net.model_copy(
                update={
                    "cidrs": (ipaddress.ip_network(f"{PREFIXES[net.id]}.0/24"),),
                    "credentials": CredentialRef(username="admin", password_file=secret),
                    "sharing": net.sharing.model_copy(update=policy),
                    "discovery": net.discovery.model_copy(
                        update={
                            "wsdiscovery_targets": (),
                            "health_interval_s": 0,
                            **(discovery or {}).get(net.id, {}),
                        }
                    ),
                }
            ).model_dump()
        )
    limits = {
        "timeout_s": 1.0,
        "connect_timeout_s": 0.5,
        "rtsp_timeout_s": 3.0,
        "max_bytes": MAX_BYTES,
        "min_interval_s": 0.2,
        "breaker_failures": 3,
        "breaker_backoff_s": 0.5,
        "breaker_max_backoff_s": 2.0,
        **snapshots,
    }
    data = settings.model_dump()
    data["networks"] = networks
    data["snapshots"] = data["snapshots"] | limits
    return Settings.model_validate(data)


@dataclass
class Gateway:
    client: TestClient  # type: ignore[type-arg]
    admin: Headers

    @property
    def app(self) -> web.Application:
        return self.client.app

    async def token(self, role: str, networks: list[str] | None = None, name: str = "") -> Headers:
        secret, _ = await self.app[TOKENS].create(
            name or f"snap-{role}", Role(role), networks or ["*"], "tests"
        )
        return {"Authorization": f"Bearer {secret}"}

    async def register(
        self,
        cam_id: str,
        network: str,
        address: str,
        *,
        snapshot: str | None = None,
        stream: str | None = None,
        credentials: tuple[str, str] | Literal["network"] | None = "network",
    ) -> dict[str, Any]:
        """Register a camera as an admin does. By default the admin gives it the network's
        password as its own (the network-wide password is only offered to a camera discovery
        has read at its address); `credentials=None` registers it without any."""
        assert full_id(cam_id).startswith(f"{network}.")
        if credentials == "network":
            credentials = ("admin", PASSWORDS[network])
        body: dict[str, Any] = {
            "id": full_id(cam_id),
            "network": network,
            "name": f"{cam_id} road",
            "category": CATEGORY[network],
            "address": address,
            "snapshot_uri": snapshot,
            "stream_uri": stream,
        }
        if credentials:
            body["credentials"] = {"username": credentials[0], "password": credentials[1]}
        resp = await self.client.post("/api/v1/cameras", json=body, headers=self.admin)
        assert resp.status == 201, await resp.text()
        return await resp.json()  # type: ignore[no-any-return]

    async def snap(
        self, cam_id: str, headers: Headers, **params: Any
    ) -> tuple[int, CIMultiDict[str], bytes]:
        query = {k: str(v) for k, v in params.items()}
        async with self.client.get(
            f"/api/v1/cameras/{full_id(cam_id)}/snapshot", params=query, headers=headers
        ) as resp:
            return resp.status, CIMultiDict(resp.headers), await resp.read()

    async def camera(self, cam_id: str) -> dict[str, Any]:
        resp = await self.client.get(f"/api/v1/cameras/{full_id(cam_id)}", headers=self.admin)
        assert resp.status == 200
        return await resp.json()  # type: ignore[no-any-return]

    @property
    def fetches(self) -> int:
        return self.app[SNAPSHOTS].upstream_fetches

    async def audited(self, request_id: str) -> dict[str, Any]:
        """The snapshot audit entry of one request (what the client was not told is here)."""
        auditor = await self.token("auditor", name="snap-auditor")
        resp = await self.client.get("/api/v1/audit", params={"limit": "1000"}, headers=auditor)
        assert resp.status == 200
        items = (await resp.json())["items"]
        return next(e for e in items if e["request_id"] == request_id and "snapshot" in e["action"])


MakeGateway = Callable[..., Awaitable[Gateway]]


@pytest.fixture
def gateway(
    aiohttp_client: Factory, settings: Settings, vault: CredentialVault, tmp_path: Path
) -> MakeGateway:
    """`await gateway(sharing=..., **snapshot_limits)`, or `await gateway(config)` for a second
    gateway on the same Redis prefix."""

    async def make(
        config: Settings | None = None,
        sharing: dict[str, dict[str, Any]] | None = None,
        discovery: dict[str, dict[str, Any]] | None = None,
        **snapshots: Any,
    ) -> Gateway:
        cfg = config or configure(settings, tmp_path, sharing, discovery, **snapshots)
        client = await aiohttp_client(create_app(cfg, vault))
        secret, _ = await client.app[TOKENS].create("snap-admin", Role.admin, ["*"], "tests")
        return Gateway(client, {"Authorization": f"Bearer {secret}"})

    return make


def decode(jpeg: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None, "not a decodable JPEG"
    return img


def marker_of(jpeg: bytes) -> int:
    marker = read_marker(decode(jpeg))
    assert marker is not None, "no simulator marker in the picture"
    return marker.camera_hash


def problem(status: int, headers: CIMultiDict[str], body: bytes) -> dict[str, Any]:
    assert headers["Content-Type"].startswith("application/problem+json"), (status, body)
    data: dict[str, Any] = orjson.loads(body)
    assert data["status"] == status
    return data


def leaks(text: str) -> list[str]:
    """Secrets (and their usual encodings) found in `text`."""
    found = []
    for pw in (*PASSWORDS.values(), CAM_PASSWORD):
        forms = {pw, quote(pw, safe=""), base64.b64encode(f"admin:{pw}".encode()).decode()}
        found += [f for f in forms if f in text]
    return found


# --------------------------------------------------------------------------- the picture


async def test_the_requested_cameras_picture_with_its_headers_and_width(
    fleet: Fleet, gateway: MakeGateway
) -> None:
    gw = await gateway(sharing={"police": {"max_width": 640}})
    for cam_id, net, addr in (
        ("gov-good-1", "governance", GOOD1),
        ("gov-good-2", "governance", GOOD2),
        ("pol-good", "police", POL1),
    ):
        await gw.register(cam_id, net, addr, snapshot=snap_uri(addr))
    op = await gw.token("operator")

    before = time.time()
    results = await asyncio.gather(
        gw.snap("gov-good-1", op),
        gw.snap("gov-good-2", op),
        gw.snap("pol-good", op, reason="INC-1"),
    )
    for (status, headers, body), cam_id in zip(
        results, ("gov-good-1", "gov-good-2", "pol-good"), strict=True
    ):
        assert status == 200, body
        assert headers["Content-Type"] == "image/jpeg"
        assert headers["X-Snapshot-Source"] == "camera-http"
        assert headers["X-Snapshot-Cache"] == "miss"
        assert headers["Cache-Control"] == "no-store"
        assert marker_of(body) == camera_hash(cam_id)
        taken = datetime.fromisoformat(headers["X-Snapshot-Taken-At"]).timestamp()
        assert before - 1 <= taken <= time.time() + 1
        marker = read_marker(decode(body))
        assert marker is not None and abs(marker.captured_at - taken) < 2

    status, headers, _ = await gw.snap("gov-good-1", op)
    assert (status, headers["X-Snapshot-Cache"]) == (200, "hit")
    assert headers["X-Snapshot-Taken-At"] == results[0][1]["X-Snapshot-Taken-At"]

    _, _, small = await gw.snap("gov-good-1", op, width=320)
    assert decode(small).shape[:2] == (180, 320)
    assert marker_of(small) == camera_hash("gov-good-1")
    _, _, big = await gw.snap("gov-good-1", op, width=4000)
    assert decode(big).shape[1] == 1280  # never upscaled
    # police's policy here: at most 640 wide, whatever is asked
    for width, expected in ((None, 640), (1000, 640), (200, 200)):
        params = {"reason": "INC-1"} | ({"width": width} if width else {})
        status, _, body = await gw.snap("pol-good", op, **params)
        assert status == 200 and decode(body).shape[1] == expected
        assert marker_of(body) == camera_hash("pol-good")
    status, headers, body = await gw.snap("gov-good-1", op, width=8)
    assert status == 422 and problem(status, headers, body)["field"] == "width"


async def test_rtsp_fallback_cache_and_warm_stream(
    fleet: Fleet, fakes: Fakes, gateway: MakeGateway
) -> None:
    gw = await gateway(sharing={"governance": {"cache_ttl_s": 1.5}}, min_interval_s=0.2)
    await gw.register("gov-rtsp", "governance", RTSP_ONLY, stream=stream_uri(RTSP_ONLY))
    await gw.register(
        "gov-httpfails",
        "governance",
        HTTP_FAILS,
        snapshot=snap_uri(HTTP_FAILS, "/no/such.jpg"),
        stream=stream_uri(HTTP_FAILS),
    )
    op = await gw.token("operator")

    started = time.perf_counter()
    status, headers, body = await gw.snap("gov-rtsp", op)
    cold = time.perf_counter() - started
    assert status == 200, body
    assert (headers["X-Snapshot-Source"], headers["X-Snapshot-Cache"]) == ("rtsp-grab", "miss")
    assert decode(body).shape[:2] == (360, 640)  # the stream of *this* camera

    status, again, _ = await gw.snap("gov-rtsp", op)  # soon after: the cache
    assert (status, again["X-Snapshot-Cache"], again["X-Snapshot-Source"]) == (
        200,
        "hit",
        "rtsp-grab",
    )
    assert again["X-Snapshot-Taken-At"] == headers["X-Snapshot-Taken-At"]

    status, headers, body = await gw.snap("gov-httpfails", op)  # HTTP 404, then the stream
    assert status == 200, body
    # a fallback is named; how HTTP failed is not (the audit says)
    assert headers["X-Snapshot-Source"] == (
        "rtsp-grab; fallback: the HTTP snapshot gave no usable picture"
    )
    assert decode(body).shape[:2] == (448, 800)
    assert fleet.requests[HTTP_FAILS] == 0  # 404 came from the router, not the snapshot handler

    # An HTTP snapshot that arrives but does not decode is a failed step too
    await gw.register(
        "gov-badjpeg",
        "governance",
        BAD_JPEG,
        snapshot=snap_uri(BAD_JPEG),
        stream=stream_uri(BAD_JPEG),
    )
    hits = fakes.hits[BAD_JPEG]
    status, headers, body = await gw.snap("gov-badjpeg", op)
    assert status == 200, body
    assert headers["X-Snapshot-Source"] == (
        "rtsp-grab; fallback: the HTTP snapshot answers a JPEG that does not decode"
    )
    assert decode(body).shape[:2] == (576, 1024)
    assert fakes.hits[BAD_JPEG] == hits + 1

    await asyncio.sleep(1.6)  # past the cache lifetime; the stream stays open (warm)
    started = time.perf_counter()
    status, headers, body = await gw.snap("gov-rtsp", op)
    warm = time.perf_counter() - started
    assert (status, headers["X-Snapshot-Cache"], headers["X-Snapshot-Source"]) == (
        200,
        "miss",
        "rtsp-grab",
    )
    assert decode(body).shape[:2] == (360, 640)
    print(f"RTSP grab: cold {cold * 1000:.0f} ms, warm {warm * 1000:.0f} ms")
    assert warm < cold


async def test_watermark_where_the_policy_says(fleet: Fleet, gateway: MakeGateway) -> None:
    gw = await gateway()
    await gw.register("gov-good-1", "governance", GOOD1, snapshot=snap_uri(GOOD1))
    await gw.register("ga-good", "gov-affairs", GA1, snapshot=snap_uri(GA1))
    alice = await gw.token("operator", name="alice")
    bob = await gw.token("operator", name="bob")
    cache = gw.app[SNAPSHOTS].cache

    _, h_alice, marked = await gw.snap("gov-good-1", alice)
    _, h_bob, marked_bob = await gw.snap("gov-good-1", bob)
    assert h_bob["X-Snapshot-Taken-At"] == h_alice["X-Snapshot-Taken-At"]  # the same frame
    frame = cache.get(("frame", full_id("gov-good-1")))
    assert isinstance(frame, Frame)
    original, shown = decode(frame.jpeg).astype(int), decode(marked).astype(int)
    bottom = np.abs(shown[-60:] - original[-60:]).mean()
    top = np.abs(shown[:200] - original[:200]).mean()
    print(f"watermark: bottom strip differs by {bottom:.1f}, top by {top:.2f}")
    assert bottom > 15 and top < 3, (bottom, top)  # a darkened strip with text, nothing else
    assert marked != marked_bob  # who looked is burned in: each operator gets their own copy
    assert marker_of(marked) == marker_of(marked_bob) == camera_hash("gov-good-1")

    _, _, plain = await gw.snap("ga-good", alice)
    frame = cache.get(("frame", full_id("ga-good")))
    assert isinstance(frame, Frame)
    assert plain == frame.jpeg  # gov-affairs: no watermark, the camera's own bytes
    _, _, plain_small = await gw.snap("ga-good", alice, width=640)
    scaled = cv2.resize(decode(frame.jpeg), (640, 360), interpolation=cv2.INTER_AREA)
    assert np.abs(decode(plain_small)[-30:].astype(int) - scaled[-30:].astype(int)).mean() < 3


async def test_reason_required_and_rate_limit(fleet: Fleet, gateway: MakeGateway) -> None:
    gw = await gateway(sharing={"governance": {"rate_limit_per_minute": 3}})
    await gw.register("pol-good", "police", POL1, snapshot=snap_uri(POL1))
    await gw.register("gov-good-1", "governance", GOOD1, snapshot=snap_uri(GOOD1))
    op = await gw.token("operator")

    status, headers, body = await gw.snap("pol-good", op)
    p = problem(422, headers, body)
    assert status == 422 and p["field"] == "reason" and "reason" in p["detail"]
    status, _, body = await gw.snap("pol-good", op, reason="INC-2024-0042")
    assert status == 200 and marker_of(body) == camera_hash("pol-good")

    if time.time() % 60 > 55:  # the limit is per calendar minute: do not straddle one
        await asyncio.sleep(61 - time.time() % 60)
    for _ in range(3):
        assert (await gw.snap("gov-good-1", op))[0] == 200
    status, headers, body = await gw.snap("gov-good-1", op)
    assert status == 429
    assert 1 <= int(headers["Retry-After"]) <= 60
    assert "3" in problem(429, headers, body)["detail"]
    other = await gw.token("operator")  # per operator: someone else is not held back
    assert (await gw.snap("gov-good-1", other))[0] == 200
    assert (await gw.snap("pol-good", op, reason="INC-1"))[0] == 200  # per network too


async def test_roles_and_grants(fleet: Fleet, gateway: MakeGateway) -> None:
    gw = await gateway()
    await gw.register("gov-good-1", "governance", GOOD1, snapshot=snap_uri(GOOD1))
    status, headers, body = await gw.snap("gov-good-1", await gw.token("viewer"))
    assert status == 403 and problem(403, headers, body)["title"]
    status, headers, body = await gw.snap("gov-good-1", await gw.token("auditor"))
    assert status == 403
    for role in ("operator", "admin"):
        status, _, body = await gw.snap("gov-good-1", await gw.token(role, ["governance"]))
        assert status == 200 and marker_of(body) == camera_hash("gov-good-1")

    police_only = await gw.token("operator", ["police"])
    status, headers, denied = await gw.snap("gov-good-1", police_only)
    _, missing_headers, missing = await gw.snap("gov-nope-1", police_only)
    assert status == 404
    same = problem(404, headers, denied)
    other = problem(404, missing_headers, missing)
    assert {k: str(v).replace("gov-good-1", "X") for k, v in same.items()} == {
        k: str(v).replace("gov-nope-1", "X") for k, v in other.items()
    }
    assert fleet.served[GOOD1] >= 2


# --------------------------------------------------------------------------- single flight


async def test_a_hundred_requests_one_upstream_fetch(fleet: Fleet, gateway: MakeGateway) -> None:
    gw = await gateway()
    await gw.register("gov-good-2", "governance", GOOD2, snapshot=snap_uri(GOOD2))
    op = await gw.token("operator")
    served = fleet.served[GOOD2]
    results = await asyncio.gather(*(gw.snap("gov-good-2", op) for _ in range(100)))
    assert [r[0] for r in results] == [200] * 100
    caches = Counter(r[1]["X-Snapshot-Cache"] for r in results)
    assert caches["miss"] == 1 and caches["miss"] + caches["shared"] + caches["hit"] == 100
    assert len({r[1]["X-Snapshot-Taken-At"] for r in results}) == 1
    assert marker_of(results[0][2]) == marker_of(results[-1][2]) == camera_hash("gov-good-2")
    assert gw.fetches == 1
    assert fleet.served[GOOD2] - served == 1


async def test_two_gateways_on_one_redis_fetch_once(
    fleet: Fleet, gateway: MakeGateway, settings: Settings, tmp_path: Path
) -> None:
    config = configure(settings, tmp_path)
    a, b = await gateway(config), await gateway(config)
    await a.register("gov-good-1", "governance", GOOD1, snapshot=snap_uri(GOOD1))
    op = await a.token("operator")
    served = fleet.served[GOOD1]
    results = await asyncio.gather(*(gw.snap("gov-good-1", op) for _ in range(40) for gw in (a, b)))
    assert [r[0] for r in results] == [200] * 80
    assert len({r[1]["X-Snapshot-Taken-At"] for r in results}) == 1
    assert a.fetches + b.fetches == 1
    assert fleet.served[GOOD1] - served == 1
    assert marker_of(results[1][2]) == camera_hash("gov-good-1")


# --------------------------------------------------------------------------- faulty cameras


FAULTS = {  # camera id -> (address, where it is fetched from, status, what the audit says)
    "gov-hang": (HANG, "http", 502, "camera HTTP snapshot: snapshot: timed out"),
    "gov-tcphang": (TCP_HANG, "http", 502, "camera HTTP snapshot: snapshot: timed out"),
    "gov-slow": (SLOW, "http", 502, "camera HTTP snapshot: snapshot: timed out"),
    "gov-rtsphang": (RTSP_HANG, "rtsp", 502, "RTSP grab: "),
    "gov-garbage": (
        GARBAGE,
        "http",
        502,
        "answered its snapshot request with an HTML page, not a picture (sent as image/jpeg)",
    ),
    "gov-corrupt": (
        CORRUPT,
        "http",
        502,
        "answered its snapshot request with a JPEG that does not decode",
    ),
    "gov-oversized": (OVERSIZED, "http", 502, f"camera HTTP snapshot: answer exceeds {MAX_BYTES}"),
    "gov-redirect": (
        REDIRECT,
        "http",
        502,
        "camera HTTP snapshot: snapshot: redirect to another host refused",
    ),
    "gov-wrongpw": (
        WRONGPW,
        "both",
        502,
        "camera HTTP snapshot: snapshot: credentials refused (401); RTSP grab: ",
    ),
}


async def test_faulty_cameras_fail_clearly_while_healthy_ones_flow(  # noqa: PLR0915
    fleet: Fleet, fakes: Fakes, gateway: MakeGateway
) -> None:
    gw = await gateway(sharing={"governance": {"cache_ttl_s": 0.0}}, min_interval_s=0.0)
    await gw.register("gov-good-1", "governance", GOOD1, snapshot=snap_uri(GOOD1))
    await gw.register("gov-rtsp", "governance", RTSP_ONLY, stream=stream_uri(RTSP_ONLY))
    for cam_id, (address, sources, _, _) in FAULTS.items():
        snapshot = snap_uri(address) if sources in ("http", "both") else None
        stream = stream_uri(address) if sources in ("rtsp", "both") else None
        await gw.register(cam_id, "governance", address, snapshot=snapshot, stream=stream)
    op = await gw.token("operator")
    done = asyncio.Event()
    latencies: list[float] = []

    async def healthy() -> None:
        while not done.is_set():
            started = time.perf_counter()
            status, headers, body = await gw.snap("gov-good-1", op)
            latencies.append(time.perf_counter() - started)
            assert status == 200 and headers["X-Snapshot-Cache"] == "miss"
            assert marker_of(body) == camera_hash("gov-good-1")

    async def faulty(cam_id: str) -> tuple[str, float, int, CIMultiDict[str], bytes]:
        started = time.perf_counter()
        status, headers, body = await gw.snap(cam_id, op | {"X-Request-Id": f"fault-{cam_id}"})
        return cam_id, time.perf_counter() - started, status, headers, body

    async def healthy_stream() -> float:  # a cold RTSP grab while another stream hangs
        await asyncio.sleep(0.3)
        started = time.perf_counter()
        status, headers, body = await gw.snap("gov-rtsp", op)
        assert status == 200 and headers["X-Snapshot-Source"] == "rtsp-grab", body
        assert decode(body).shape[:2] == (360, 640)
        return time.perf_counter() - started

    flow = asyncio.create_task(healthy())
    await asyncio.sleep(0.1)
    fetches, slow = fleet.served[GOOD1], fleet.requests[SLOW]
    stream_took, *results = await asyncio.gather(healthy_stream(), *(faulty(c) for c in FAULTS))
    done.set()
    await flow

    for cam_id, took, status, headers, body in results:
        _, _, expected, says = FAULTS[cam_id]
        p = problem(status, headers, body)
        entry = await gw.audited(f"fault-{cam_id}")
        print(f"{cam_id:14} {status} {took * 1000:6.0f} ms  {entry['detail']}")
        assert status == expected, (cam_id, p)
        if says.startswith("answered"):
            # What the camera sent, when it is no picture, is said plainly (it tells nothing
            # about the network); the PNG and BMP that some firmware sends are converted
            # (test_snapshot_formats.py).
            told = f"camera {full_id(cam_id)} {says}"
            assert p["detail"].startswith(told), p
            assert p["detail"].endswith(", and has no RTSP stream to fall back on"), p
            assert entry["detail"] == p["detail"], entry
        else:
            # The client learns that the camera gave no picture, not how (refused, reset and
            # timed out told apart would make the gateway a port scanner); the audit says
            # which step failed and how.
            assert p["detail"] == (
                f"camera {full_id(cam_id)} did not deliver a picture; the audit log and the "
                "gateway's log say why"
            )
            assert entry["detail"].startswith(f"camera {full_id(cam_id)}: {says}"), entry
        text = body.decode() + str(headers)
        assert "127." not in text and "8000" not in text and not leaks(text), text
        assert took < 4.5
    # each answer of the slow camera came within timeout_s, the digest handshake (two) did not
    assert fleet.requests[SLOW] - slow == 2
    assert fakes.hits[REDIRECT] == 1 and fakes.hits[REDIRECT_TARGET] == 0
    # a redirect on the same host is followed
    await gw.register("gov-moved", "governance", REDIRECT_SAME, snapshot=snap_uri(REDIRECT_SAME))
    status, _, body = await gw.snap("gov-moved", op)
    assert status == 200 and marker_of(body) == camera_hash("fake")
    assert fakes.connections[f"{TCP_HANG}:8000"] >= 1
    print(f"healthy camera meanwhile: {len(latencies)} fetches, max {max(latencies) * 1000:.0f} ms")
    assert len(latencies) >= 5 and fleet.served[GOOD1] - fetches >= 5
    assert max(latencies) < 1.0
    print(f"healthy RTSP camera (cold) meanwhile: {stream_took * 1000:.0f} ms")
    assert stream_took < 1.5


async def test_circuit_breaker_opens_reports_and_recovers(
    fleet: Fleet, gateway: MakeGateway
) -> None:
    gw = await gateway(min_interval_s=0.0)
    await gw.register("gov-breaker", "governance", BREAKER, snapshot=snap_uri(BREAKER))
    op = await gw.token("operator")
    device = fleet.device(BREAKER)
    device.quirks.wrong_password = True
    try:
        for _ in range(3):
            status, _, body = await gw.snap("gov-breaker", op)
            assert status == 502, body
        cam = await gw.camera("gov-breaker")
        assert cam["status"] == "degraded"
        assert cam["last_error"].startswith("snapshot:")
        assert "credentials refused" in cam["last_error"] and "127." not in cam["last_error"]

        seen, fetches = fleet.requests[BREAKER], gw.fetches
        started = time.perf_counter()
        status, headers, body = await gw.snap("gov-breaker", op)
        assert status == 503 and time.perf_counter() - started < 0.5
        assert int(headers["Retry-After"]) >= 1
        assert "circuit" in problem(503, headers, body)["detail"]
        assert (fleet.requests[BREAKER], gw.fetches) == (seen, fetches)  # no upstream attempt
    finally:
        device.quirks.wrong_password = False

    await asyncio.sleep(0.6)  # the backoff (0.5 s) passes
    status, headers, body = await gw.snap("gov-breaker", op)
    assert status == 200 and marker_of(body) == camera_hash("gov-breaker")
    cam = await gw.camera("gov-breaker")
    assert cam["status"] == "online" and cam["last_error"] is None


# --------------------------------------------------------------------------- SSRF


async def test_no_snapshot_from_outside_the_networks_ranges(
    fleet: Fleet, fakes: Fakes, gateway: MakeGateway
) -> None:
    gw = await gateway()
    for field_name, uris, says in (
        ("snapshot_uri", {"snapshot_uri": snap_uri(OUTSIDE)}, "must name the camera's own address"),
        ("stream_uri", {"stream_uri": stream_uri(OUTSIDE)}, "must name the camera's own address"),
        # Inside the network's ranges, but another host: its credentials must not go there.
        ("snapshot_uri", {"snapshot_uri": snap_uri(GOOD1)}, "must name the camera's own address"),
        # The camera's own address, on a port neither its device nor the config names.
        (
            "snapshot_uri",
            {"snapshot_uri": f"http://{FORCED}:2222/snap.jpg"},
            "port 2222 is neither advertised by the camera's device nor allowed by network "
            "'governance' (access.camera_ports)",
        ),
    ):
        body = {
            "id": full_id("gov-ssrf"),
            "network": "governance",
            "name": "x",
            "category": "sharp-eyes",
            "address": FORCED,
            **uris,
        }
        resp = await gw.client.post("/api/v1/cameras", json=body, headers=gw.admin)
        assert resp.status == 422
        p = await resp.json()
        assert (p["field"], p["errors"][0]["message"]) == (field_name, says)

    await gw.register(
        "gov-ssrf", "governance", FORCED, snapshot=snap_uri(FORCED), stream=stream_uri(FORCED)
    )
    registry = gw.app[REGISTRY]
    current = await registry.get(full_id("gov-ssrf"))
    assert current is not None
    forced = current.model_copy(
        update={  # written into Redis past every check, as someone with Redis access might
            "snapshot_uri": snap_uri(OUTSIDE),
            "profiles": [StreamProfile(token="main", stream_uri=stream_uri(OUTSIDE))],
            "rev": current.rev + 1,
        }
    )
    await registry.redis.set(registry.keys.cam(full_id("gov-ssrf")), forced.model_dump_json())
    gw.app[CATALOG].note_version(await registry.redis.incr(registry.keys.version))
    before = dict(fakes.connections)
    op = await gw.token("operator")
    status, headers, body = await gw.snap("gov-ssrf", op | {"X-Request-Id": "ssrf-1"})
    problem(status, headers, body)
    assert status == 502
    assert "outside the network's ranges" in (await gw.audited("ssrf-1"))["detail"]
    assert OUTSIDE not in body.decode()
    await asyncio.sleep(0.2)
    assert dict(fakes.connections) == before  # not even a TCP connect

    # A stream inside the network that redirects elsewhere is not followed either
    await gw.register(
        "gov-rtsp-moved", "governance", RTSP_REDIRECT, stream=stream_uri(RTSP_REDIRECT)
    )
    status, headers, body = await gw.snap("gov-rtsp-moved", op | {"X-Request-Id": "ssrf-2"})
    problem(status, headers, body)
    assert status == 502
    detail = (await gw.audited("ssrf-2"))["detail"]
    assert "OPTIONS: redirect refused (302, not followed)" in detail, detail
    assert "127." not in body.decode()
    await asyncio.sleep(0.2)
    assert dict(fakes.connections) == before


async def test_a_stream_redirected_at_describe_is_not_followed(
    fleet: Fleet, fakes: Fakes, gateway: MakeGateway
) -> None:
    """OPTIONS answered properly, DESCRIBE redirected outside the network: refused at once."""
    gw = await gateway(rtsp_timeout_s=1.0)
    address = RTSP_REDIRECT_LATE
    await gw.register("gov-rtsp-moved-late", "governance", address, stream=stream_uri(address))
    before = fakes.connections[f"{OUTSIDE}:8554"]
    started = time.perf_counter()
    op = await gw.token("operator") | {"X-Request-Id": "late-redirect"}
    status, headers, body = await gw.snap("gov-rtsp-moved-late", op)
    p = problem(status, headers, body)
    assert status == 502, p
    detail = (await gw.audited("late-redirect"))["detail"]
    assert "RTSP grab: DESCRIBE: redirect refused (302, not followed)" in detail, detail
    assert "127." not in body.decode() and "8554" not in body.decode()
    assert time.perf_counter() - started < 0.5  # refused, not timed out
    await asyncio.sleep(0.2)
    assert fakes.connections[f"{OUTSIDE}:8554"] == before  # no connection outside the network


# --------------------------------------------------------------------------- credentials


async def test_the_network_password_goes_only_to_cameras_discovery_read_there(
    fleet: Fleet, gateway: MakeGateway
) -> None:
    """Issue 7, finding 1: a camera an admin registered gets the network-wide password only
    once discovery has found and read a device at its address."""
    gw = await gateway(
        min_interval_s=0.0,
        sharing={"governance": {"cache_ttl_s": 0.0}},
        discovery={"governance": {"static_hosts": (f"{GOOD2}:8000",)}},
    )
    await gw.register("gov-good-2", "governance", GOOD2, snapshot=snap_uri(GOOD2), credentials=None)
    op = await gw.token("operator")
    asked, authorized = fleet.requests[GOOD2], fleet.authorized[GOOD2]
    status, _, body = await gw.snap("gov-good-2", op | {"X-Request-Id": "unread-1"})
    assert status == 502, body
    assert fleet.requests[GOOD2] > asked  # the camera was asked ...
    assert fleet.authorized[GOOD2] == authorized  # ... and given no credential at all
    assert "credentials" in (await gw.audited("unread-1"))["detail"]

    resp = await gw.client.post("/api/v1/networks/governance/discover", headers=gw.admin)
    assert resp.status == 202
    job_url = resp.headers["Location"]
    for _ in range(200):
        job = await (await gw.client.get(job_url, headers=gw.admin)).json()
        if job["state"] != "running":
            break
        await asyncio.sleep(0.05)
    assert (job["state"], job["progress"]["enriched"]) == ("done", 1), job
    cam = await gw.camera("gov-good-2")
    assert cam["device"]["address"] == GOOD2 and 8000 in cam["device"]["ports"]
    status, _, body = await gw.snap("gov-good-2", op)
    assert status == 200 and marker_of(body) == camera_hash("gov-good-2")
    assert fleet.authorized[GOOD2] > authorized


async def test_credentials_stay_with_the_camera_they_were_given_for(
    fleet: Fleet, gateway: MakeGateway
) -> None:
    """Issue 7, finding 1: an admin cannot aim a camera's password at another host."""
    gw = await gateway(min_interval_s=0.0, sharing={"governance": {"cache_ttl_s": 0.0}})
    await gw.register(
        "gov-cred", "governance", CRED, snapshot=snap_uri(CRED), credentials=("admin", CAM_PASSWORD)
    )
    op = await gw.token("operator")
    assert (await gw.snap("gov-cred", op))[0] == 200

    url = f"/api/v1/cameras/{full_id('gov-cred')}"
    # Another host of the network for the snapshot: refused, whoever would listen there.
    resp = await gw.client.patch(url, json={"snapshot_uri": snap_uri(GOOD1)}, headers=gw.admin)
    assert resp.status == 422
    assert (await resp.json())["errors"][0] == {
        "field": "snapshot_uri",
        "message": "must name the camera's own address",
    }
    # Moving the camera to another address: its credentials stay behind.
    resp = await gw.client.patch(
        url, json={"address": GOOD1, "snapshot_uri": snap_uri(GOOD1)}, headers=gw.admin
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["has_credentials"] is False
    assert await gw.app[REGISTRY].credentials(full_id("gov-cred")) is None
    asked, authorized = fleet.requests[GOOD1], fleet.authorized[GOOD1]
    status, _, body = await gw.snap("gov-cred", op)
    assert status == 502, body
    assert fleet.requests[GOOD1] > asked and fleet.authorized[GOOD1] == authorized
    # ... unless the same request brings new ones.
    resp = await gw.client.patch(
        url,
        json={"address": CRED, "snapshot_uri": snap_uri(CRED),
              "credentials": {"username": "admin", "password": CAM_PASSWORD}},
        headers=gw.admin,
    )  # fmt: skip
    assert resp.status == 200 and (await resp.json())["has_credentials"] is True
    status, _, body = await gw.snap("gov-cred", op)
    assert status == 200 and marker_of(body) == camera_hash("gov-cred")


# --------------------------------------------------------------------------- audit


async def test_every_snapshot_request_is_audited(
    fleet: Fleet, fakes: Fakes, gateway: MakeGateway
) -> None:
    gw = await gateway(sharing={"governance": {"rate_limit_per_minute": 2}})
    await gw.register("gov-good-1", "governance", GOOD1, snapshot=snap_uri(GOOD1))
    await gw.register("pol-good", "police", POL1, snapshot=snap_uri(POL1))
    refused = f"{GA}.30"  # nothing listens there
    await gw.register("ga-refused", "gov-affairs", refused, snapshot=snap_uri(refused))
    await gw.register("ga-hang", "gov-affairs", GA_TCP_HANG, snapshot=snap_uri(GA_TCP_HANG))
    op = await gw.token("operator", name="carol")
    police_only = await gw.token("operator", ["police"], name="dave")
    if time.time() % 60 > 55:
        await asyncio.sleep(61 - time.time() % 60)

    calls = [  # (request id, headers, camera, params, expected status, outcome, network)
        ("a-ok", op, "gov-good-1", {}, 200, "ok", "governance"),
        ("a-hit", op, "gov-good-1", {"width": 320}, 200, "ok", "governance"),
        ("a-429", op, "gov-good-1", {}, 429, "denied", "governance"),
        ("a-missing", op, "gov-nope", {}, 404, "not_found", ""),
        ("a-hidden", police_only, "gov-good-1", {}, 404, "not_found", "governance"),
        ("a-noreason", op, "pol-good", {}, 422, "invalid", "police"),
        ("a-reason", op, "pol-good", {"reason": "INC-77"}, 200, "ok", "police"),
        ("a-refused", op, "ga-refused", {}, 502, "error", "gov-affairs"),
        ("a-hang", op, "ga-hang", {}, 502, "error", "gov-affairs"),
    ]
    for rid, headers, cam_id, params, status, _, _ in calls:
        got, resp_headers, _ = await gw.snap(cam_id, headers | {"X-Request-Id": rid}, **params)
        assert got == status, rid
        assert resp_headers["X-Request-Id"] == rid

    auditor = await gw.token("auditor")
    resp = await gw.client.get("/api/v1/audit", params={"limit": "1000"}, headers=auditor)
    assert resp.status == 200
    entries = {
        e["request_id"]: e for e in (await resp.json())["items"] if e["action"] == "camera.snapshot"
    }
    for rid, headers, cam_id, params, status, outcome, network in calls:
        e = entries[rid]
        name = "dave" if headers is police_only else "carol"
        assert e["actor"].startswith(f"{name}#")
        assert (e["target"], e["network"], e["status"], e["outcome"]) == (
            full_id(cam_id),
            network,
            status,
            outcome,
        ), rid
        extra = e["extra"]
        assert extra["reason"] == params.get("reason", ""), rid
        assert float(extra["latency_ms"]) >= 0
        assert set(extra) >= {"source", "bytes"}, (rid, extra)
        if status == 200:
            assert extra["source"] == "camera-http" and int(extra["bytes"]) > 1000
        else:
            assert int(extra["bytes"]) == 0
        assert not leaks(str(e))
    assert entries["a-hit"]["extra"]["cache"] == "hit"


# --------------------------------------------------------------------------- secrets


async def test_no_credential_in_any_response_header_or_log(
    fleet: Fleet,
    gateway: MakeGateway,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    gw = await gateway(min_interval_s=0.0)
    await gw.register(
        "gov-cred", "governance", CRED, snapshot=snap_uri(CRED), credentials=("admin", CAM_PASSWORD)
    )
    await gw.register("gov-rtsp", "governance", RTSP_ONLY, stream=stream_uri(RTSP_ONLY))
    await gw.register(
        "gov-wrongpw", "governance", WRONGPW, snapshot=snap_uri(WRONGPW), stream=stream_uri(WRONGPW)
    )
    await gw.register(
        "gov-wrongcred",
        "governance",
        GOOD2,
        snapshot=snap_uri(GOOD2),
        credentials=("admin", CAM_PASSWORD),
    )  # its own, wrong: the network's works
    await gw.register("pol-good", "police", POL1, snapshot=snap_uri(POL1))
    op = await gw.token("operator")

    seen: list[str] = []
    for cam_id, params, status in (
        ("gov-cred", {}, 200),
        ("gov-rtsp", {}, 200),
        ("gov-wrongpw", {}, 502),
        ("gov-wrongcred", {}, 502),
        ("pol-good", {"reason": "INC-9"}, 200),
        ("pol-good", {}, 422),
    ):
        got, headers, body = await gw.snap(cam_id, op, **params)
        assert got == status, (cam_id, body)
        if got == 200:
            seen.append(str(headers))
        else:
            seen.append(body.decode() + str(headers))
    for cam_id in ("gov-cred", "gov-wrongcred", "pol-good"):
        cam = await gw.camera(cam_id)
        seen.append(str(cam))
    auditor = await gw.token("auditor")
    seen.append(await (await gw.client.get("/api/v1/audit", headers=auditor)).text())
    for text in seen:
        assert not leaks(text), text

    formatter = JsonFormatter()
    assert any(r.name.startswith("gateway.snapshots") for r in caplog.records)
    for record in caplog.records:
        line = formatter.format(record)
        assert not leaks(line), line
    out, err = capfd.readouterr()  # OpenCV/FFmpeg write straight to the process's stderr
    assert not leaks(out + err), err


# --------------------------------------------------------------------------- memory


async def test_cache_is_bounded_in_bytes(fleet: Fleet, gateway: MakeGateway) -> None:
    limit = 1 << 20
    gw = await gateway(cache_bytes=limit)
    for i, address in enumerate(BULK):
        await gw.register(f"gov-bulk-{i:02d}", "governance", address, snapshot=snap_uri(address))
    op = await gw.token("operator")
    cache = gw.app[SNAPSHOTS].cache
    total, peak = 0, 0
    for i in range(len(BULK)):
        for width in (None, 640):
            status, _, body = await gw.snap(
                f"gov-bulk-{i:02d}", op, **({"width": width} if width else {})
            )
            assert status == 200 and marker_of(body) == camera_hash(f"gov-bulk-{i:02d}")
            total += len(body)
            peak = max(peak, cache.size)
            assert cache.size <= limit
    assert total > 2 * limit  # far more went through than the cache may hold
    assert peak > limit // 2  # and the cache was used, not just kept empty
    assert cache.size == sum(size for _, size in cache._items.values())


async def test_an_incident_takes_each_cameras_picture_under_its_reason(
    fleet: Fleet, gateway: MakeGateway
) -> None:
    gw = await gateway()
    for short, network, address in (
        ("gov-good-1", "governance", GOOD1),
        ("gov-good-2", "governance", GOOD2),
        ("gov-wrongpw", "governance", WRONGPW),
        ("pol-good", "police", POL1),
    ):
        await gw.register(short, network, address, snapshot=snap_uri(address))
    for short, north_m in (("gov-good-1", 120), ("gov-good-2", 40)):
        at = {"lat": round(31.08 + north_m / 111_320, 6), "lon": 121.3}
        resp = await gw.client.patch(
            f"/api/v1/cameras/{full_id(short)}", json={"location": at}, headers=gw.admin
        )
        assert resp.status == 200
    op = await gw.token("operator", ["governance"], name="op-wang")
    named = ["gov-good-1", "gov-good-2", "gov-wrongpw", "pol-good"]
    body = {"reason": "INC-7 manhole cover", "cameras": [full_id(c) for c in named]}
    resp = await gw.client.post("/api/v1/snapshots", json=body, headers=op)
    assert resp.status == 200, await resp.text()
    answer = await resp.json()
    status = {i["camera"]: i["status"] for i in answer["items"]}
    assert status == {
        full_id("gov-good-1"): 200,
        full_id("gov-good-2"): 200,
        full_id("gov-wrongpw"): 502,  # the camera refused: its own item says so
        full_id("pol-good"): 404,  # not granted to this operator: as if it did not exist
    }
    assert (answer["taken"], answer["refused"]) == (2, 2)
    for item in answer["items"][:2]:
        jpeg = base64.b64decode(item["jpeg_base64"])
        assert marker_of(jpeg) == camera_hash(item["camera"].split(".", 1)[1])
        assert item["source"].startswith("camera-http")
    assert answer["items"][3]["error"] == f"camera {full_id('pol-good')} not found"

    near = {"reason": "INC-8 street vending", "near": {"lat": 31.08, "lon": 121.3}}
    resp = await gw.client.post("/api/v1/snapshots", json=near, headers=op)
    placed = await resp.json()
    assert [(i["camera"], i["status"]) for i in placed["items"]] == [
        (full_id("gov-good-2"), 200),
        (full_id("gov-good-1"), 200),
    ]
    assert [round(i["distance_m"]) for i in placed["items"]] == [40, 120]

    auditor = await gw.token("auditor", name="snap-auditor")
    resp = await gw.client.get(
        "/api/v1/audit", params={"reason": "INC-7 manhole cover"}, headers=auditor
    )
    entries = (await resp.json())["items"]
    assert sorted((e["target"], e["status"]) for e in entries) == sorted(status.items())
    assert {(e["action"], e["actor"].split("#")[0]) for e in entries} == {
        ("camera.snapshot", "op-wang")
    }

    both = {**body, "near": {"lat": 31.08, "lon": 121.3}}
    resp = await gw.client.post("/api/v1/snapshots", json=both, headers=op)
    assert resp.status == 422
    [error] = (await resp.json())["errors"]
    assert (error["field"], error["message"]) == ("near", "give either cameras or near, not both")
