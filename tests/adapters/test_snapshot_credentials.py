"""A camera's credentials go only to that camera (issue 7, finding 1), enforced by the network
adapter itself: even a forged record in Redis cannot send a password to a host an admin chose.

Real loopback servers (aiohttp for HTTP, asyncio for RTSP) record every Authorization header
they receive; the adapter is the real `CameraNetworkAdapter`. The camera's own address and the
"other host" are both inside the network's range, so the range check lets every request through
and only the credential rules decide what is sent. Addresses: 127.1.X.0/24, X from the pid, so
concurrent runs do not collide.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import cv2
import numpy as np
import pytest
from aiohttp import hdrs, web
from multidict import CIMultiDict

from adapters.base import SnapshotFailed, SnapshotRequest
from adapters.config import AccessConfig, DiscoveryConfig, SnapshotConfig
from adapters.httpauth import digest_response, parse_challenge
from adapters.network import AdapterSpec, CameraNetworkAdapter
from adapters.simulator.devices import ONVIF_PORT, Quirks, SimDevice, SnapshotAuth
from adapters.simulator.fleet import FleetCamera
from adapters.simulator.onvif_server import OnvifServer
from adapters.uris import UriCredentials

X = os.getpid() % 20 + 200
NET = f"127.1.{X}"
CAMERA = f"{NET}.1"  # the camera the request is for
OTHER = f"{NET}.2"  # another host inside the network's range
SIM_BASE = 20  # simulated devices: {NET}.20 and up

OWN = UriCredentials("admin", "Own-Camera-pw-7")
NETWORK = UriCredentials("admin", "Network-Wide-pw-9")
PASSWORDS = (OWN.password, NETWORK.password)
# A real (tiny) JPEG: the adapter checks that what it serves decodes (issue 9).
JPEG = bytes(cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8))[1].tobytes())

WITHHELD_HOST = "credentials withheld: the URI names a host other than the camera's own address"
WITHHELD_NETWORK = (
    "credentials withheld: the camera has none of its own, and the network's are offered only "
    "to a device that discovery found and read at this address"
)
BASIC_HTTP = (
    "camera HTTP snapshot: snapshot: the camera asks for Basic authentication over plain HTTP, "
    "which this network does not allow (allow_basic_over_http)"
)


def withheld_port(port: int) -> str:
    return (
        f"credentials withheld: port {port} is neither one the camera's device advertised nor "
        "one of the network's camera_ports"
    )


# --------------------------------------------------------------------------- fake HTTP cameras


@dataclass
class HttpCamera:
    """Challenges (Digest with `algorithms`, or Basic), checks against `password`, records
    every Authorization header (None: the request carried none)."""

    password: str
    scheme: str = "digest"
    algorithms: tuple[str, ...] = ("SHA-256", "MD5")  # RFC 7616 section 3.7: both, SHA first
    seen: list[str | None] = field(default_factory=list)
    nonce: str = field(default_factory=lambda: os.urandom(12).hex())

    def accepts(self, header: str | None) -> bool:
        if header is None:
            return False
        if self.scheme == "basic":
            token = base64.b64encode(f"{OWN.username}:{self.password}".encode()).decode()
            return header == f"Basic {token}"
        return digest_password(header, self.nonce, self.algorithms, (self.password,)) is not None

    def challenges(self) -> list[str]:
        if self.scheme == "basic":
            return ['Basic realm="fake"']
        return [
            f'Digest realm="fake", qop="auth", algorithm={a}, nonce="{self.nonce}"'
            for a in self.algorithms
        ]

    async def handle(self, request: web.Request) -> web.Response:
        header = request.headers.get(hdrs.AUTHORIZATION)
        self.seen.append(header)
        if self.accepts(header):
            return web.Response(body=JPEG, content_type="image/jpeg")
        headers = CIMultiDict((hdrs.WWW_AUTHENTICATE, c) for c in self.challenges())
        return web.Response(status=401, headers=headers)


def digest_password(
    header: str, nonce: str, algorithms: tuple[str, ...], passwords: tuple[str, ...]
) -> str | None:
    """Which of `passwords` (for user admin, realm "fake", GET) made this Digest answer."""
    scheme, p = parse_challenge(header)
    algorithm = p.get("algorithm", "MD5")
    if scheme != "digest" or algorithm not in algorithms or p.get("nonce") != nonce:
        return None
    for password in passwords:
        expected = digest_response(
            username=p.get("username", ""),
            password=password,
            realm="fake",
            nonce=nonce,
            method="GET",
            uri=p.get("uri", ""),
            qop=p.get("qop"),
            nc=p.get("nc", ""),
            cnonce=p.get("cnonce", ""),
            algorithm=algorithm,
        )
        if p.get("username") == OWN.username and p.get("response") == expected:
            return password
    return None


ServeHttp = Callable[[str, HttpCamera], Awaitable[int]]


@pytest.fixture
async def serve_http() -> AsyncIterator[ServeHttp]:
    """`port = await serve_http(address, camera)`: the camera on an ephemeral port."""
    runners: list[web.AppRunner] = []

    async def start(address: str, camera: HttpCamera) -> int:
        app = web.Application()
        app.router.add_get("/{tail:.*}", camera.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        runners.append(runner)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, 0))
        await web.SockSite(runner, sock).start()
        port: int = sock.getsockname()[1]
        return port

    yield start
    for runner in runners:
        await runner.cleanup()


# --------------------------------------------------------------------------- the adapter

MakeAdapter = Callable[..., CameraNetworkAdapter]


@pytest.fixture
async def make_adapter() -> AsyncIterator[MakeAdapter]:
    adapters: list[CameraNetworkAdapter] = []

    def make(
        *,
        camera_ports: tuple[int, ...] = (),
        allow_basic_over_http: bool = False,
        warm_streams: int = 0,
    ) -> CameraNetworkAdapter:
        spec = AdapterSpec(
            network="governance",
            cidrs=(ipaddress.ip_network(f"{NET}.0/24"),),
            discovery=DiscoveryConfig(),
            credentials=NETWORK,
            snapshots=SnapshotConfig(timeout_s=3, rtsp_timeout_s=2, warm_streams=warm_streams),
            access=AccessConfig(
                camera_ports=camera_ports, allow_basic_over_http=allow_basic_over_http
            ),
        )
        adapter = CameraNetworkAdapter(spec)
        adapters.append(adapter)
        return adapter

    yield make
    for adapter in adapters:
        await adapter.close()


def request(
    snapshot: str | None = None,
    stream: str | None = None,
    *,
    credentials: UriCredentials | None = OWN,
    network_credentials: bool = False,
    ports: tuple[int, ...] = (),
) -> SnapshotRequest:
    return SnapshotRequest(
        camera_id="governance-cam-1",
        address=CAMERA,
        snapshot_uri=snapshot,
        stream_uri=stream,
        credentials=credentials,
        network_credentials=network_credentials,
        credential_ports=frozenset(ports),
    )


async def failure(adapter: CameraNetworkAdapter, req: SnapshotRequest) -> str:
    """The message a user gets (the gateway's 502 detail), checked to carry no secret."""
    with pytest.raises(SnapshotFailed) as caught:
        await adapter.snapshot(req)
    text = f"{caught.value!s} {caught.value!r}"
    assert not any(pw in text for pw in PASSWORDS)
    assert NET not in text
    return str(caught.value)


def never_sent_a_password(seen: list[str | None]) -> None:
    assert seen and all(header is None for header in seen), seen


# --------------------------------------------------------------------------- HTTP snapshots


async def test_a_snapshot_uri_naming_another_host_gets_no_credentials(
    serve_http: ServeHttp, make_adapter: MakeAdapter
) -> None:
    other = HttpCamera(OWN.password)
    port = await serve_http(OTHER, other)
    adapter = make_adapter(camera_ports=(port,))
    uri = f"http://{OTHER}:{port}/snap.jpg"
    for req in (
        request(uri),  # the camera's own credentials
        request(uri, credentials=None, network_credentials=True),  # the network's
        request(uri, ports=(port,)),  # a port the device advertised does not make it its host
    ):
        message = await failure(adapter, req)
        assert message == (
            f"camera HTTP snapshot: snapshot: the camera asks for authentication; {WITHHELD_HOST}"
        )
    never_sent_a_password(other.seen)
    assert len(other.seen) == 3

    # the same request, to the camera's own address, is answered (the SHA-256 challenge)
    own = HttpCamera(OWN.password)
    own_port = await serve_http(CAMERA, own)
    result = await make_adapter(camera_ports=(own_port,)).snapshot(
        request(f"http://{CAMERA}:{own_port}/snap.jpg")
    )
    assert result.jpeg == JPEG and result.source == "camera-http"
    assert own.seen[0] is None and own.seen[1] is not None
    assert own.seen[1].startswith("Digest ") and "algorithm=SHA-256" in own.seen[1]


async def test_the_cameras_own_address_on_an_unlisted_port_gets_no_credentials(
    serve_http: ServeHttp, make_adapter: MakeAdapter
) -> None:
    camera = HttpCamera(OWN.password)
    port = await serve_http(CAMERA, camera)
    listed = port + 1 if port < 65535 else port - 1
    adapter = make_adapter(camera_ports=(listed,))
    uri = f"http://{CAMERA}:{port}/snap.jpg"
    message = await failure(adapter, request(uri, ports=(listed,)))
    assert message == (
        f"camera HTTP snapshot: snapshot: the camera asks for authentication; {withheld_port(port)}"
    )
    never_sent_a_password(camera.seen)

    # advertised by the camera's device (discovery), or listed in the network's config: sent
    assert (await adapter.snapshot(request(uri, ports=(port,)))).jpeg == JPEG
    configured = make_adapter(camera_ports=(80, port))
    assert (await configured.snapshot(request(uri))).jpeg == JPEG
    answered = [h for h in camera.seen if h is not None]
    assert len(answered) == 2 and all(h.startswith("Digest ") for h in answered)


async def test_the_network_password_goes_only_where_discovery_read_the_device(
    serve_http: ServeHttp, make_adapter: MakeAdapter
) -> None:
    camera = HttpCamera(NETWORK.password)
    port = await serve_http(CAMERA, camera)
    adapter = make_adapter(camera_ports=(port,))
    uri = f"http://{CAMERA}:{port}/snap.jpg"
    message = await failure(adapter, request(uri, credentials=None, network_credentials=False))
    assert message == (
        f"camera HTTP snapshot: snapshot: the camera asks for authentication; {WITHHELD_NETWORK}"
    )
    never_sent_a_password(camera.seen)

    result = await adapter.snapshot(request(uri, credentials=None, network_credentials=True))
    assert result.jpeg == JPEG
    assert camera.seen[-1] is not None
    made_with = digest_password(camera.seen[-1], camera.nonce, camera.algorithms, PASSWORDS)
    assert made_with == NETWORK.password


async def test_basic_over_plain_http_only_when_the_network_opts_in(
    serve_http: ServeHttp, make_adapter: MakeAdapter
) -> None:
    camera = HttpCamera(OWN.password, scheme="basic")
    port = await serve_http(CAMERA, camera)
    uri = f"http://{CAMERA}:{port}/snap.jpg"
    message = await failure(make_adapter(camera_ports=(port,)), request(uri))
    assert message == BASIC_HTTP
    never_sent_a_password(camera.seen)  # neither Basic nor anything else

    allowing = make_adapter(camera_ports=(port,), allow_basic_over_http=True)
    assert (await allowing.snapshot(request(uri))).jpeg == JPEG
    token = base64.b64encode(f"admin:{OWN.password}".encode()).decode()
    assert camera.seen[-1] == f"Basic {token}"


async def test_a_kept_digest_session_never_answers_with_other_credentials_or_origins(
    serve_http: ServeHttp, make_adapter: MakeAdapter
) -> None:
    """The adapter keeps each camera's digest session between snapshots (no 401 round trip);
    it must not carry one camera's password into a request that may not have it."""
    camera = HttpCamera(NETWORK.password)
    port = await serve_http(CAMERA, camera)
    second = HttpCamera(OWN.password)
    second_port = await serve_http(CAMERA, second)
    adapter = make_adapter(camera_ports=(port, second_port))
    uri = f"http://{CAMERA}:{port}/snap.jpg"

    await adapter.snapshot(request(uri, credentials=None, network_credentials=True))
    assert camera.seen[0] is None and camera.seen[1] is not None  # challenged once
    await adapter.snapshot(request(uri, credentials=None, network_credentials=True))
    assert len(camera.seen) == 3 and camera.seen[2] is not None  # the kept session, up front

    # the network's password is no longer offered: nothing goes, not even the kept session
    del camera.seen[:]
    await failure(adapter, request(uri, credentials=None, network_credentials=False))
    never_sent_a_password(camera.seen)

    # the camera's own credentials now (same user name): the kept session is not reused
    camera.password = OWN.password
    del camera.seen[:]
    assert (await adapter.snapshot(request(uri))).jpeg == JPEG
    answered = [h for h in camera.seen if h is not None]
    assert answered
    made_with = [digest_password(h, camera.nonce, camera.algorithms, PASSWORDS) for h in answered]
    assert made_with == [OWN.password] * len(answered)

    # another origin (the camera's other port) starts its own session
    assert (await adapter.snapshot(request(f"http://{CAMERA}:{second_port}/s.jpg"))).jpeg
    assert second.seen[0] is None


# --------------------------------------------------------------------------- the simulator


@pytest.fixture(scope="module")
async def simulated() -> AsyncIterator[dict[SnapshotAuth, SimDevice]]:
    devices: dict[SnapshotAuth, SimDevice] = {}
    for i, mode in enumerate(SnapshotAuth):
        address = f"{NET}.{SIM_BASE + i}"
        camera = FleetCamera(f"sim-{mode.value}", "governance", "c", mode.value, address, 0, 0, "")
        devices[mode] = SimDevice(camera, OWN.password, quirks=Quirks(snapshot_auth=mode))
    server = OnvifServer(devices.values(), answer_delay_s=0.0, jpeg_workers=1)
    await server.start()
    yield devices
    await server.stop()


def sim_request(device: SimDevice) -> SnapshotRequest:
    uri = f"http://{device.address}:{ONVIF_PORT}{device.snapshot_path}"
    return SnapshotRequest(
        camera_id=device.camera.id,
        address=device.address,
        snapshot_uri=uri,
        stream_uri=None,
        credentials=OWN,
        credential_ports=frozenset({ONVIF_PORT}),
    )


@pytest.mark.parametrize("mode", [SnapshotAuth.digest_sha256, SnapshotAuth.digest_sha256_md5])
async def test_sha256_digest_simulator_cameras_end_to_end(
    simulated: dict[SnapshotAuth, SimDevice], make_adapter: MakeAdapter, mode: SnapshotAuth
) -> None:
    adapter = make_adapter()
    for _ in range(2):  # the second one authenticates up front with the kept session
        result = await adapter.snapshot(sim_request(simulated[mode]))
        image = cv2.imdecode(np.frombuffer(result.jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape[2] == 3
    assert [a.algorithm for a in adapter._auth_sessions.values()] == ["SHA-256"]


async def test_basic_only_simulator_camera(
    simulated: dict[SnapshotAuth, SimDevice], make_adapter: MakeAdapter
) -> None:
    device = simulated[SnapshotAuth.basic]
    assert await failure(make_adapter(), sim_request(device)) == BASIC_HTTP
    result = await make_adapter(allow_basic_over_http=True).snapshot(sim_request(device))
    assert result.jpeg[:2] == b"\xff\xd8"


# --------------------------------------------------------------------------- RTSP grabs


@dataclass
class RtspCamera:
    """Challenges every request (Digest SHA-256 and MD5, or Basic), records Authorization
    headers; answers OPTIONS once authenticated and DESCRIBE with 404 (no media needed)."""

    scheme: str = "digest"
    seen: list[str | None] = field(default_factory=list)

    def challenge(self) -> str:
        if self.scheme == "basic":
            return 'WWW-Authenticate: Basic realm="fake"'
        return "\r\n".join(
            f'WWW-Authenticate: Digest realm="fake", qop="auth", algorithm={a}, nonce="n-rtsp"'
            for a in ("SHA-256", "MD5")
        )

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode()
                lines = head.split("\r\n")
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (x.partition(":") for x in lines[1:])
                }
                cseq = headers.get("cseq", "0")
                auth = headers.get("authorization")
                self.seen.append(auth)
                if auth is None:
                    answer = f"RTSP/1.0 401 Unauthorized\r\n{self.challenge()}"
                elif lines[0].startswith("OPTIONS"):
                    answer = "RTSP/1.0 200 OK\r\nPublic: OPTIONS, DESCRIBE, SETUP, PLAY"
                else:
                    answer = "RTSP/1.0 404 Not Found"
                writer.write(f"{answer}\r\nCSeq: {cseq}\r\n\r\n".encode())
                await writer.drain()
        writer.close()


ServeRtsp = Callable[[str, RtspCamera], Awaitable[int]]


@pytest.fixture
async def serve_rtsp() -> AsyncIterator[ServeRtsp]:
    servers: list[asyncio.Server] = []

    async def start(address: str, camera: RtspCamera) -> int:
        server = await asyncio.start_server(camera.serve, address, 0)
        servers.append(server)
        port: int = server.sockets[0].getsockname()[1]
        return port

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("warm_streams", [0, 2], ids=["cold", "warm-pool"])
async def test_rtsp_credentials_only_to_the_cameras_own_address_and_ports(
    serve_rtsp: ServeRtsp, make_adapter: MakeAdapter, warm_streams: int
) -> None:
    other = RtspCamera()
    other_port = await serve_rtsp(OTHER, other)
    own = RtspCamera()
    port = await serve_rtsp(CAMERA, own)
    adapter = make_adapter(camera_ports=(other_port,), warm_streams=warm_streams)

    stream = f"rtsp://{OTHER}:{other_port}/stream1"
    assert await failure(adapter, request(stream=stream)) == (
        f"RTSP grab: the camera asks for authentication; {WITHHELD_HOST}"
    )
    never_sent_a_password(other.seen)

    stream = f"rtsp://{CAMERA}:{port}/stream1"
    assert await failure(adapter, request(stream=stream)) == (
        f"RTSP grab: the camera asks for authentication; {withheld_port(port)}"
    )
    assert await failure(adapter, request(stream=stream, credentials=None, ports=(port,))) == (
        f"RTSP grab: the camera asks for authentication; {WITHHELD_NETWORK}"
    )
    never_sent_a_password(own.seen)

    # advertised port, own address: the credentials answer the SHA-256 challenge
    assert await failure(adapter, request(stream=stream, ports=(port,))) == (
        "RTSP grab: DESCRIBE: no such stream (404)"
    )
    answered = [h for h in own.seen if h is not None]
    assert answered and all(h.startswith("Digest ") and "algorithm=SHA-256" in h for h in answered)


async def test_rtsp_basic_only_camera_gets_nothing_over_plain_rtsp(
    serve_rtsp: ServeRtsp, make_adapter: MakeAdapter
) -> None:
    camera = RtspCamera(scheme="basic")
    port = await serve_rtsp(CAMERA, camera)
    adapter = make_adapter(camera_ports=(port,))
    stream = f"rtsp://{CAMERA}:{port}/stream1"
    assert await failure(adapter, request(stream=stream)) == (
        "RTSP grab: OPTIONS: the camera asks for Basic authentication over plain RTSP, which "
        "this network does not allow (allow_basic_over_http)"
    )
    never_sent_a_password(camera.seen)
