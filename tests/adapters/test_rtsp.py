"""RTSP inspection (adapters.rtsp), frame grabs (adapters.rtsp.grab: our RTSP/RTP client, FFmpeg
decoding bytes in memory), warm streams (adapters.stream_pool) and the GStreamer RTSP camera
simulator (adapters.simulator.rtsp_server), against real GStreamer servers and scripted fakes on
127.2.250.0/24: redirects and foreign hosts refused, hanging cameras isolated, garbage and
oversized media rejected clearly.

Nothing here is skipped: without Debian's GStreamer packages the simulator fixture fails with the
apt-get line that fixes it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import ipaddress
import re
import struct
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from adapters.httpauth import digest_response, parse_challenge
from adapters.rtsp import (
    MAX_RESPONSE_BYTES,
    DecodeError,
    GrabTimeout,
    RtspAuthError,
    RtspConnectionError,
    RtspError,
    RtspProtocolError,
    RtspTimeout,
    decode_gop,
    describe,
    gop_to_jpeg,
    grab_frame,
    grab_jpeg,
    open_stream,
    parse_h264_sps,
    parse_sdp,
)
from adapters.simulator.devices import Quirks, SimDevice
from adapters.simulator.fleet import FleetCamera
from adapters.simulator.rtsp_server import (
    INSTALL_HINT,
    GStreamerMissingError,
    RtspCamera,
    RtspSimulator,
    RtspSimulatorError,
)
from adapters.stream_pool import StreamPool
from tests.adapters.test_rtp import Sender, idr, p_slice, rtp

CAM1, CAM2 = "police-rtsp-0001", "police-rtsp-0002"
PW1, PW2 = "Cam1-s3cret!pw", "Cam2:p@ss/word"  # reserved characters on purpose
FAKE_HOST = "127.2.250.20"
CLOSED = "127.2.250.99"  # nothing listens there


@pytest.fixture(scope="module")
async def sim() -> AsyncIterator[RtspSimulator]:
    cameras = [
        RtspCamera(CAM1, "127.2.250.1", "admin", PW1),  # digest (the default)
        RtspCamera(CAM2, "127.2.250.2", "operator", PW2, auth="basic"),
    ]
    simulator = RtspSimulator(cameras)
    await simulator.start()  # raises GStreamerMissingError with the apt-get line if needed
    yield simulator
    await simulator.stop()


# --------------------------------------------------------------------------------------------
# describe() against GStreamer's RTSP server


async def test_describe_reports_h264_720p_with_digest(sim: RtspSimulator) -> None:
    info = await describe(sim.url(CAM1), "admin", PW1, timeout=5)
    assert (info.codec, info.width, info.height) == ("H264", 1280, 720)
    assert info.fps == 25
    assert info.auth == "digest"
    assert info.profile == "Baseline"
    assert "DESCRIBE" in info.methods
    assert info.uri == "rtsp://127.2.250.1:8554/stream1"


async def test_describe_with_basic_auth_only_when_allowed(sim: RtspSimulator) -> None:
    """Basic sends the password in clear over plain RTSP: refused unless the network opted in."""
    with pytest.raises(RtspAuthError) as caught:
        await describe(sim.url(CAM2), "operator", PW2, timeout=5)
    assert str(caught.value) == (
        "rtsp://127.2.250.2:8554/stream1: DESCRIBE: the camera asks for Basic authentication "
        "over plain RTSP, which this network does not allow (allow_basic_over_http)"
    )
    info = await describe(sim.url(CAM2), "operator", PW2, timeout=5, allow_basic=True)
    assert (info.codec, info.width, info.height, info.auth) == ("H264", 1280, 720, "basic")


async def test_credentials_in_uri_are_used_and_never_returned(sim: RtspSimulator) -> None:
    uri = sim.url(CAM2, with_credentials=True)
    assert uri.startswith("rtsp://operator:Cam2%3Ap%40ss%2Fword@127.2.250.2:8554/")
    info = await describe(uri, timeout=5, allow_basic=True)
    assert (info.codec, info.width, info.height) == ("H264", 1280, 720)
    assert info.uri == "rtsp://127.2.250.2:8554/stream1"
    assert PW2 not in repr(info) and "Cam2" not in repr(info) and "operator" not in repr(info)


async def test_wrong_password_is_an_auth_error_without_the_password(sim: RtspSimulator) -> None:
    wrong = "Wr0ng-Passw0rd-XYZ"
    with pytest.raises(RtspAuthError) as caught:
        await describe(sim.url(CAM1), "admin", wrong, timeout=5)
    text = f"{caught.value!s} {caught.value!r} {caught.value.args}"
    assert wrong not in text and PW1 not in text
    assert "refused" in str(caught.value) and "127.2.250.1" in str(caught.value)
    # the same through a URI with embedded (wrong) credentials
    with pytest.raises(RtspAuthError) as caught:
        await describe(f"rtsp://admin:{wrong}@127.2.250.1:8554/stream1", timeout=5)
    assert wrong not in f"{caught.value!s} {caught.value!r}"


async def test_no_credentials_for_a_protected_camera(sim: RtspSimulator) -> None:
    with pytest.raises(RtspAuthError, match="no credentials"):
        await describe(sim.url(CAM1), timeout=5)


async def test_unknown_path_is_a_clear_error(sim: RtspSimulator) -> None:
    with pytest.raises(RtspError) as caught:
        await describe("rtsp://127.2.250.1:8554/nope", "admin", PW1, timeout=5)
    assert not isinstance(caught.value, RtspTimeout)
    assert "404" in str(caught.value)


async def test_closed_port_fails_fast_and_clearly() -> None:
    started = time.monotonic()
    with pytest.raises(RtspConnectionError, match="connection refused") as caught:
        await describe(f"rtsp://admin:secret-pw@{CLOSED}:8554/stream1", timeout=5)
    assert time.monotonic() - started < 1.0
    assert "secret-pw" not in str(caught.value)
    assert isinstance(caught.value, RtspError)


# --------------------------------------------------------------------------------------------
# scripted fake servers: hang, garbage, oversized, digest with qop, stale nonces

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
FakeServer = Callable[[Handler], Awaitable[str]]


@pytest.fixture
async def fake_server() -> AsyncIterator[FakeServer]:
    servers: list[asyncio.Server] = []
    writers: list[asyncio.StreamWriter] = []
    tasks: list[asyncio.Task[None]] = []

    async def start(handler: Handler) -> str:
        async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            task = asyncio.current_task()
            assert task is not None
            tasks.append(task)
            # CancelledError too: Python 3.11's start_server logs a cancelled handler as an error
            with contextlib.suppress(
                ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError
            ):
                await handler(reader, writer)

        server = await asyncio.start_server(tracked, FAKE_HOST, 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"rtsp://{FAKE_HOST}:{port}/stream1"

    yield start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for writer in writers:
        writer.close()
    for server in servers:
        server.close()
        await server.wait_closed()


async def _read_request(reader: asyncio.StreamReader) -> dict[str, str]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    lines = head.split("\r\n")
    req = {"_line": lines[0]}
    for line in lines[1:]:
        if ":" in line:
            key, value = line.split(":", 1)
            req[key.strip().lower()] = value.strip()
    return req


_SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=fake\r\nt=0 0\r\n"
    "m=video 0 RTP/AVP 97\r\na=rtpmap:97 H265/90000\r\na=framesize:97 1920-1080\r\n"
    "a=framerate:12.5\r\nm=audio 0 RTP/AVP 0\r\n"
)


def _ok(cseq: str, body: str = "", content_type: str = "application/sdp") -> bytes:
    headers = f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n"
    if body:
        headers += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
    return (headers + "\r\n" + body).encode()


async def test_server_that_never_answers_times_out_within_the_timeout(
    fake_server: FakeServer,
) -> None:
    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        await asyncio.sleep(30)

    uri = await fake_server(hang)
    started = time.monotonic()
    with pytest.raises(RtspTimeout, match=r"no answer to OPTIONS within 0\.5s"):
        await describe(uri, "admin", "pw", timeout=0.5)
    elapsed = time.monotonic() - started
    assert 0.45 <= elapsed < 1.5, elapsed


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(b"\x00\xff\xfe garbage \x13\x37 not rtsp at all", id="binary"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", id="http"),
        pytest.param(b"RTSP/1.0 2x0 OK\r\nCSeq: 1\r\n\r\n", id="bad-status"),
        pytest.param(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nno colon here\r\n\r\n", id="bad-header"),
        pytest.param(b"RTSP/1.0 200 OK\r\nCSeq: 7\r\n\r\n", id="wrong-cseq"),
        pytest.param(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nX-Pad: " + b"a" * 100_000, id="huge-head"),
        pytest.param(
            b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Length: 9999999\r\n\r\n", id="huge-body"
        ),
    ],
)
async def test_garbage_answers_are_protocol_errors(fake_server: FakeServer, answer: bytes) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(answer)
        await writer.drain()
        await asyncio.sleep(30)  # and keep the connection open: we must not wait for more

    uri = await fake_server(garbage)
    started = time.monotonic()
    with pytest.raises(RtspProtocolError):
        await describe(uri, "admin", "pw", timeout=3)
    assert time.monotonic() - started < 1.0


async def test_non_sdp_describe_answer_is_a_protocol_error(fake_server: FakeServer) -> None:
    async def html(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(2):
            req = await _read_request(reader)
            if req["_line"].startswith("OPTIONS"):
                writer.write(_ok(req["cseq"]))
            else:
                writer.write(_ok(req["cseq"], "<html></html>", "text/html"))
        await writer.drain()

    with pytest.raises(RtspProtocolError, match="not SDP"):
        await describe(await fake_server(html), timeout=3)


@pytest.mark.parametrize("unavailable", [1, 2])
async def test_describe_answered_503_is_retried_once(
    fake_server: FakeServer, unavailable: int
) -> None:
    """GStreamer's server answers 503 to a DESCRIBE that comes while the shared media is still
    being torn down after its previous client."""
    count = 0

    async def camera(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        while True:
            req = await _read_request(reader)
            if req["_line"].startswith("DESCRIBE"):
                count += 1
                if count <= unavailable:
                    writer.write(f"RTSP/1.0 503 Busy\r\nCSeq: {req['cseq']}\r\n\r\n".encode())
                else:
                    writer.write(_ok(req["cseq"], _SDP))
            else:
                writer.write(_ok(req["cseq"]))
            await writer.drain()

    uri = await fake_server(camera)
    if unavailable == 1:
        info = await describe(uri, timeout=3)
        assert info.codec == "H265" and count == 2
    else:
        with pytest.raises(RtspError, match="DESCRIBE: 503 Busy"):
            await describe(uri, timeout=3)
        assert count == 2


async def test_digest_with_qop_opaque_and_a_stale_nonce(fake_server: FakeServer) -> None:
    """OPTIONS is challenged (qop=auth, opaque); DESCRIBE's nonce then goes stale once."""
    nonces = iter(["nonce-one", "nonce-two"])
    seen: list[dict[str, str]] = []
    expected_uri: list[str] = []

    def valid(req: dict[str, str], method: str, nonce: str) -> bool:
        auth = req.get("authorization", "")
        if not auth.startswith("Digest "):
            return False
        _, p = parse_challenge(auth)
        seen.append(p)
        ha1 = hashlib.md5(b"admin:cams:pw-qop").hexdigest()
        ha2 = hashlib.md5(f"{method}:{p['uri']}".encode()).hexdigest()
        want = hashlib.md5(f"{ha1}:{nonce}:{p['nc']}:{p['cnonce']}:auth:{ha2}".encode()).hexdigest()
        return p["response"] == want and p["opaque"] == "op4que" and p["uri"] == expected_uri[0]

    async def camera(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonce = next(nonces)
        while True:
            req = await _read_request(reader)
            method = req["_line"].split()[0]
            cseq = req["cseq"]
            if valid(req, method, nonce):
                body = _SDP if method == "DESCRIBE" else ""
                writer.write(_ok(cseq, body))
                if method == "OPTIONS":  # rotate the nonce: DESCRIBE will be told it is stale
                    nonce = next(nonces)
            else:
                stale = ', stale="true"' if seen else ""
                writer.write(
                    f"RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq}\r\n"
                    'WWW-Authenticate: Basic realm="cams"\r\n'
                    f'WWW-Authenticate: Digest realm="cams", nonce="{nonce}", qop="auth,auth-int",'
                    f' opaque="op4que"{stale}\r\n\r\n'.encode()
                )
            await writer.drain()

    uri = await fake_server(camera)
    expected_uri.append(uri)
    info = await describe(uri, "admin", "pw-qop", timeout=3)
    assert (info.codec, info.width, info.height, info.fps) == ("H265", 1920, 1080, 12.5)
    assert info.audio_codec == "PCMU"
    assert info.auth == "digest"
    assert seen and all(p.get("qop") == "auth" for p in seen)


async def test_wrong_password_against_a_challenging_fake(fake_server: FakeServer) -> None:
    async def camera(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            req = await _read_request(reader)
            writer.write(
                f"RTSP/1.0 401 Unauthorized\r\nCSeq: {req['cseq']}\r\n"
                'WWW-Authenticate: Digest realm="x", nonce="n"\r\n\r\n'.encode()
            )
            await writer.drain()

    with pytest.raises(RtspAuthError, match="credentials refused") as caught:
        await describe(await fake_server(camera), "admin", "hunter2-secret", timeout=3)
    assert "hunter2" not in str(caught.value)


async def test_camera_that_closes_the_connection_after_a_401(fake_server: FakeServer) -> None:
    """Many cameras hang up after a challenge, without saying `Connection: close`."""
    connections: list[int] = []

    async def camera(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        while True:
            req = await _read_request(reader)
            if "authorization" not in req:
                writer.write(
                    f"RTSP/1.0 401 Unauthorized\r\nCSeq: {req['cseq']}\r\n"
                    'WWW-Authenticate: Basic realm="cam"\r\n\r\n'.encode()
                )
                await writer.drain()
                writer.close()
                return
            expected = "Basic " + base64.b64encode(b"admin:pw").decode()
            assert req["authorization"] == expected
            body = _SDP if req["_line"].startswith("DESCRIBE") else ""
            writer.write(_ok(req["cseq"], body))
            await writer.drain()

    info = await describe(await fake_server(camera), "admin", "pw", timeout=3, allow_basic=True)
    assert (info.auth, info.codec) == ("basic", "H265")
    assert len(connections) == 2


async def test_unsupported_auth_scheme(fake_server: FakeServer) -> None:
    async def camera(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        req = await _read_request(reader)
        writer.write(
            f"RTSP/1.0 401 Unauthorized\r\nCSeq: {req['cseq']}\r\n"
            'WWW-Authenticate: Digest realm="x", nonce="n", algorithm=SHA-512-256\r\n\r\n'.encode()
        )
        await writer.drain()
        await asyncio.sleep(30)

    with pytest.raises(RtspAuthError, match="unsupported authentication scheme"):
        await describe(await fake_server(camera), "admin", "pw", timeout=3)


async def test_digest_sha256_is_chosen_over_md5_offered_first(fake_server: FakeServer) -> None:
    """RFC 7616 section 3.7: one challenge per algorithm. We answer the strongest we support,
    whatever the order, and the camera checks it with SHA-256."""
    seen: list[str] = []

    def valid(req: dict[str, str], method: str) -> bool:
        auth = req.get("authorization", "")
        scheme, p = parse_challenge(auth)
        if scheme != "digest" or p.get("algorithm") != "SHA-256":
            return False

        def h(text: str) -> str:
            return hashlib.sha256(text.encode()).hexdigest()

        ha1, ha2 = h("admin:cams:pw-sha"), h(f"{method}:{p['uri']}")
        want = h(f"{ha1}:n256:{p['nc']}:{p['cnonce']}:auth:{ha2}")
        return p["response"] == want

    async def camera(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            req = await _read_request(reader)
            method = req["_line"].split()[0]
            seen.append(req.get("authorization", ""))
            if valid(req, method):
                writer.write(_ok(req["cseq"], _SDP if method == "DESCRIBE" else ""))
            else:
                writer.write(
                    f"RTSP/1.0 401 Unauthorized\r\nCSeq: {req['cseq']}\r\n"
                    'WWW-Authenticate: Digest realm="cams", nonce="n5", qop="auth", algorithm=MD5'
                    "\r\n"
                    'WWW-Authenticate: Digest realm="cams", nonce="n256", qop="auth", '
                    "algorithm=SHA-256\r\n\r\n".encode()
                )
            await writer.drain()

    info = await describe(await fake_server(camera), "admin", "pw-sha", timeout=3)
    assert (info.auth, info.codec) == ("digest", "H265")
    answered = [a for a in seen if a]
    assert answered and all("algorithm=SHA-256" in a for a in answered)
    assert not any("pw-sha" in a for a in seen)


async def test_basic_only_camera_never_gets_the_password_unless_allowed(
    fake_server: FakeServer,
) -> None:
    authorizations: list[str | None] = []

    async def camera(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            req = await _read_request(reader)
            authorizations.append(req.get("authorization"))
            if req.get("authorization") == "Basic " + base64.b64encode(b"admin:pw-b").decode():
                body = _SDP if req["_line"].startswith("DESCRIBE") else ""
                writer.write(_ok(req["cseq"], body))
            else:
                writer.write(
                    f"RTSP/1.0 401 Unauthorized\r\nCSeq: {req['cseq']}\r\n"
                    'WWW-Authenticate: Basic realm="cam"\r\n\r\n'.encode()
                )
            await writer.drain()

    uri = await fake_server(camera)
    with pytest.raises(RtspAuthError) as caught:
        await describe(uri, "admin", "pw-b", timeout=3)
    assert str(caught.value) == (
        f"{uri}: OPTIONS: the camera asks for Basic authentication over plain RTSP, which this "
        "network does not allow (allow_basic_over_http)"
    )
    assert authorizations == [None]  # one unauthenticated OPTIONS, nothing after it
    with pytest.raises(RtspAuthError) as caught:
        await open_stream(uri, "admin", "pw-b", allowed=loopback, timeout=3)
    assert str(caught.value) == (
        "OPTIONS: the camera asks for Basic authentication over plain RTSP, which this "
        "network does not allow (allow_basic_over_http)"
    )
    assert authorizations == [None, None]
    info = await describe(uri, "admin", "pw-b", timeout=3, allow_basic=True)
    assert info.auth == "basic" and authorizations[2:4] == [None, authorizations[3]]
    assert authorizations[3] is not None and authorizations[3].startswith("Basic ")


async def test_bad_uris() -> None:
    with pytest.raises(RtspError, match="not an rtsp"):
        await describe("http://127.2.250.1/stream1", timeout=1)
    with pytest.raises(RtspError, match="invalid port"):
        await describe("rtsp://127.2.250.1:99999/stream1", timeout=1)


# --------------------------------------------------------------------------------------------
# digest, SDP and SPS parsing


def test_digest_response_matches_rfc2617_example() -> None:
    assert (
        digest_response(
            username="Mufasa",
            password="Circle Of Life",
            realm="testrealm@host.com",
            nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
            method="GET",
            uri="/dir/index.html",
            qop="auth",
            nc="00000001",
            cnonce="0a4f113b",
        )
        == "6629fae49393a05397450978507c4ef1"
    )


def test_parse_challenge_quoted_and_bare_values() -> None:
    scheme, params = parse_challenge(
        'Digest realm="a \\"q\\" b", nonce=abc123, qop="auth", stale=TRUE'
    )
    assert scheme == "digest"
    assert params == {"realm": 'a "q" b', "nonce": "abc123", "qop": "auth", "stale": "TRUE"}


# x264 (GStreamer simulator) SPS: baseline 1280x720 and 640x360 (the latter needs cropping)
SPS_720P = "Z0LAH9oBQBbsBagICAoAAAMAAgAAAwBlHjBlQA=="
SPS_360P = "Z0LAFtoCgL/lwFqDAwNSgAAAAwCAAAAPR4sXUA=="


def test_sps_of_real_streams() -> None:
    sps = parse_h264_sps(base64.b64decode(SPS_720P))
    assert (sps.width, sps.height, sps.fps, sps.profile, sps.level) == (
        1280,
        720,
        25,
        "Baseline",
        3.1,
    )
    sps = parse_h264_sps(base64.b64decode(SPS_360P))
    assert (sps.width, sps.height, sps.fps) == (640, 360, 15)


class _BitWriter:
    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, n: int, value: int) -> None:
        self.bits += [(value >> (n - 1 - i)) & 1 for i in range(n)]

    def ue(self, value: int) -> None:
        code = value + 1
        self.u(code.bit_length() - 1, 0)
        self.u(code.bit_length(), code)

    def se(self, value: int) -> None:
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def nal(self) -> bytes:
        bits = [*self.bits, 1]  # rbsp_stop_one_bit
        bits += [0] * (-len(bits) % 8)
        raw = bytes(int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8))
        escaped = re.sub(rb"\x00\x00(?=[\x00-\x03])", b"\x00\x00\x03", raw)  # emulation prevention
        return b"\x67" + escaped


def _high_profile_sps(frame_mbs_only: int) -> bytes:
    w = _BitWriter()
    w.u(8, 100)  # High
    w.u(8, 0)
    w.u(8, 40)
    w.ue(0)  # sps id
    w.ue(1)  # 4:2:0
    w.ue(0)
    w.ue(0)
    w.u(1, 0)
    w.u(1, 1)  # scaling matrix present
    for i in range(8):
        w.u(1, 1 if i in (0, 6) else 0)
        if i in (0, 6):
            for j in range(16 if i < 6 else 64):
                w.se(3 if j == 0 else -1 if j < 10 else 0)
    w.ue(0)  # log2_max_frame_num_minus4
    w.ue(1)  # poc type 1
    w.u(1, 0)
    w.se(-1)
    w.se(2)
    w.ue(2)
    w.se(1)
    w.se(-1)
    w.ue(4)  # refs
    w.u(1, 0)
    w.ue(119)  # 120 MBs wide = 1920
    w.ue(67 if frame_mbs_only else 33)  # 68 MB rows, or 34 field map-unit rows
    w.u(1, frame_mbs_only)
    if not frame_mbs_only:
        w.u(1, 1)
    w.u(1, 1)
    w.u(1, 1)  # cropping
    for crop in (0, 0, 0, 4 if frame_mbs_only else 2):
        w.ue(crop)
    w.u(1, 1)  # VUI
    w.u(1, 1)
    w.u(8, 255)
    w.u(16, 1)
    w.u(16, 1)
    w.u(1, 0)
    w.u(1, 1)
    w.u(3, 5)
    w.u(1, 0)
    w.u(1, 1)
    w.u(24, 0x010101)
    w.u(1, 1)
    w.ue(0)
    w.ue(0)
    w.u(1, 1)  # timing
    w.u(32, 1)  # num_units_in_tick: 31 zero bits, so the NAL needs an emulation-prevention byte
    w.u(32, 50)
    w.u(1, 1)
    return w.nal()


@pytest.mark.parametrize("frame_mbs_only", [1, 0], ids=["progressive", "interlaced"])
def test_sps_high_profile_scaling_lists_cropping_vui(frame_mbs_only: int) -> None:
    nal = _high_profile_sps(frame_mbs_only)
    assert b"\x00\x00\x03" in nal  # the escaping path is exercised
    sps = parse_h264_sps(nal)
    assert (sps.width, sps.height, sps.profile, sps.level) == (1920, 1080, "High", 4.0)
    assert sps.fps == 25


@pytest.mark.parametrize(
    "nal",
    [b"", b"\x68\xce\x3c\x80", b"\x67\x42", b"\x67" + b"\x00" * 40, b"\x67\x64\x00\x28\xff"],
)
def test_sps_garbage_raises_value_error(nal: bytes) -> None:
    with pytest.raises(ValueError):
        parse_h264_sps(nal)


def test_sdp_fallbacks() -> None:
    sdp = (
        "v=0\r\ns=x\r\nm=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/16000/1\r\n"
        "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
        "a=fmtp:96 packetization-mode=1;sprop-parameter-sets=bm90IGFuIFNQUw==,aM48gA==\r\n"
        "a=x-dimensions:704,576\r\na=x-framerate:25\r\n"
    )
    video = parse_sdp(sdp)
    assert (video.codec, video.width, video.height, video.fps) == ("H264", 704, 576, 25)
    assert video.audio_codec == "MPEG4-GENERIC"
    mjpeg = parse_sdp("v=0\r\nm=video 0 RTP/AVP 26\r\n")
    assert (mjpeg.codec, mjpeg.width) == ("JPEG", None)
    with pytest.raises(ValueError):
        parse_sdp("<html>")


def test_response_bound_is_64_kib() -> None:
    assert MAX_RESPONSE_BYTES == 64 * 1024


# --------------------------------------------------------------------------------------------
# frame grabs: our RTSP client fetches the H.264 (RtspPlayer), OpenCV decodes bytes only


def loopback(host: str) -> bool:
    """The `allowed` check of these tests: all of 127.0.0.0/8 (so a refusal below is the
    client's own rule, not the range check)."""
    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network("127.0.0.0/8")
    except ValueError:
        return False


async def test_cold_grab_from_the_simulator(
    sim: RtspSimulator, capfd: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    frame = await grab_frame(sim.url(CAM1), "admin", PW1, allowed=loopback, timeout_s=5)
    cold = time.monotonic() - started
    print(
        f"\ncold RTSP grab (720p25 H.264, 1 s GOP, RTP over TCP, IDR decoded): {cold * 1000:.0f} ms"
    )
    assert frame.shape == (720, 1280, 3)
    assert frame.dtype == np.uint8
    assert float(frame.std()) > 20  # a test pattern, not a blank frame
    assert cold < 1.5
    out, err = capfd.readouterr()
    assert PW1 not in out + err
    print(out, end="")


async def test_grab_basic_auth_with_credentials_in_the_uri_only_when_allowed(
    sim: RtspSimulator,
) -> None:
    with pytest.raises(RtspAuthError) as caught:
        await grab_jpeg(sim.url(CAM2, with_credentials=True), allowed=loopback, timeout_s=5)
    assert str(caught.value) == (
        "DESCRIBE: the camera asks for Basic authentication over plain RTSP, which this network "
        "does not allow (allow_basic_over_http)"
    )
    uri = sim.url(CAM2, with_credentials=True)
    async with await open_stream(uri, allowed=loopback, timeout=5, allow_basic=True) as player:
        gop = await player.keyframe()
    with ThreadPoolExecutor(max_workers=1) as pool:
        jpeg = await asyncio.get_running_loop().run_in_executor(pool, gop_to_jpeg, gop, 85)
    assert jpeg[:2] == b"\xff\xd8"
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape == (720, 1280, 3)


async def test_warm_grabs_are_faster_and_fresh(sim: RtspSimulator) -> None:
    with ThreadPoolExecutor(max_workers=2) as executor:
        pool = StreamPool(executor, max_streams=2, idle_s=5.0)
        try:
            started = time.monotonic()
            jpeg, taken_at, warm = await pool.jpeg(
                sim.url(CAM1), "admin", PW1, allowed=loopback, timeout_s=5
            )
            cold = time.monotonic() - started
            assert not warm and _size(jpeg) == (720, 1280)
            assert pool.is_warm(sim.url(CAM1), "admin", PW1)
            warm_times, stamps = [], [taken_at]
            for _ in range(10):
                await asyncio.sleep(0.15)
                started = time.monotonic()
                jpeg, taken_at, warm = await pool.jpeg(
                    sim.url(CAM1), "admin", PW1, allowed=loopback, timeout_s=5
                )
                warm_times.append(time.monotonic() - started)
                assert warm and _size(jpeg) == (720, 1280)
                assert time.time() - taken_at < 0.5  # the newest frame, not the keyframe
                stamps.append(taken_at)
            assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
            warm_times.sort()
            p50, worst = warm_times[len(warm_times) // 2], warm_times[-1]
            print(
                f"\nRTSP grab through StreamPool (720p25, 1 s GOP): cold {cold * 1000:.0f} ms,"
                f" warm p50 {p50 * 1000:.0f} ms, max {worst * 1000:.0f} ms"
            )
            assert p50 < 0.1 and worst < 0.3 and p50 < cold
        finally:
            await pool.close()
        assert len(pool) == 0


async def test_a_warm_stream_closes_when_idle(sim: RtspSimulator) -> None:
    with ThreadPoolExecutor(max_workers=1) as executor:
        pool = StreamPool(executor, max_streams=1, idle_s=0.3)
        try:
            await pool.jpeg(sim.url(CAM1), "admin", PW1, allowed=loopback, timeout_s=5)
            assert len(pool) == 1
            await asyncio.sleep(0.8)
            assert len(pool) == 0 and not pool.is_warm(sim.url(CAM1), "admin", PW1)
            _, _, warm = await pool.jpeg(sim.url(CAM1), "admin", PW1, allowed=loopback, timeout_s=5)
            assert not warm
        finally:
            await pool.close()


async def test_grab_with_wrong_password_is_a_clean_error(
    sim: RtspSimulator, capfd: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(RtspAuthError, match="DESCRIBE: credentials refused") as caught:
        await grab_frame(sim.url(CAM1), "admin", "Wr0ng-grab-pw", allowed=loopback, timeout_s=5)
    text = f"{caught.value!s} {caught.value!r}"
    assert "Wr0ng-grab-pw" not in text and "127.2.250.1" not in text and "rtsp://" not in text
    out, err = capfd.readouterr()
    assert "Wr0ng-grab-pw" not in out + err


async def test_grab_closed_port_fails_fast() -> None:
    started = time.monotonic()
    with pytest.raises(RtspConnectionError, match="connection refused") as caught:
        await grab_frame(f"rtsp://a:b@{CLOSED}:8554/stream1", allowed=loopback, timeout_s=5)
    assert time.monotonic() - started < 1.0
    assert CLOSED not in str(caught.value)


# -- never a host outside the network ---------------------------------------------------------

OTHER_HOST = "127.2.250.21"  # another loopback address: a redirect's or Content-Base's target


@dataclass
class Listener:
    """Counts TCP connections to another loopback address."""

    uri: str
    connections: int = 0


@pytest.fixture
async def other_host() -> AsyncIterator[Listener]:
    writers: list[asyncio.StreamWriter] = []
    listener = Listener("")

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        listener.connections += 1
        writers.append(writer)

    server = await asyncio.start_server(accept, OTHER_HOST, 0)
    listener.uri = f"rtsp://{OTHER_HOST}:{server.sockets[0].getsockname()[1]}/stream1"
    yield listener
    for writer in writers:
        writer.close()
    server.close()
    await server.wait_closed()


H264_SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=fake\r\nt=0 0\r\na=control:*\r\n"
    "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
    f"a=fmtp:96 packetization-mode=1;sprop-parameter-sets={SPS_720P},aM48gA==\r\n"
    "a=control:track1\r\n"
)

Media = Callable[[asyncio.StreamWriter], Awaitable[None]]


def fake_camera(
    seen: list[str],
    *,
    describe_answer: Callable[[str], bytes] | None = None,
    play_extra: bytes = b"",
    media_first: bool = False,
    media: Media | None = None,
    hang_at: str | None = None,
) -> Handler:
    """A scripted RTSP camera: OPTIONS, DESCRIBE (H.264, sprop), SETUP (interleaved 0-1), PLAY
    (then `media`, while it keeps answering: keep-alives, TEARDOWN). `seen`: request lines."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        media_task: asyncio.Task[None] | None = None
        try:
            while True:
                req = await _read_request(reader)
                method, cseq = req["_line"].split()[0], req["cseq"]
                seen.append(req["_line"])
                if method == hang_at:  # never answer; note when the client hangs up
                    while await reader.read(65536):
                        pass
                    seen.append("EOF")
                    return
                if method == "DESCRIBE":
                    if describe_answer is not None:
                        writer.write(describe_answer(cseq))
                    else:
                        writer.write(_ok(cseq, H264_SDP))
                elif method == "SETUP":
                    writer.write(
                        f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n"
                        "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n"
                        "Session: fake-1;timeout=60\r\n\r\n".encode()
                    )
                elif method == "PLAY":
                    answer = f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n\r\n".encode()
                    writer.write(play_extra + answer if media_first else answer + play_extra)
                    if media is not None:
                        media_task = asyncio.create_task(_quietly(media(writer)))
                elif method == "GET_PARAMETER":  # with a body the client must skip
                    writer.write(_ok(cseq, "x: 1\r\n", "text/parameters"))
                elif method == "TEARDOWN":
                    writer.write(_ok(cseq))
                else:
                    public = "OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER, TEARDOWN"
                    writer.write(
                        f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nPublic: {public}\r\n\r\n".encode()
                    )
                await writer.drain()
        finally:
            if media_task is not None:
                media_task.cancel()

    return serve


async def _quietly(coro: Awaitable[None]) -> None:
    with contextlib.suppress(ConnectionError, asyncio.CancelledError):
        await coro


def interleaved(data: bytes, channel: int = 0) -> bytes:
    return b"$" + bytes([channel]) + struct.pack("!H", len(data)) + data


def synthetic_stream(frames: int, idr_size: int = 3000, p_size: int = 400) -> bytes:
    """Interleaved RTP of a structurally valid (not decodable) H.264 stream: an IDR with its
    parameter sets, then P frames; RTCP-like noise on channel 1 in between."""
    send = Sender()
    out = b"".join(interleaved(p) for p in send.access_unit(idr(idr_size), params=True))
    for i in range(frames - 1):
        out += interleaved(b"\x81\xc8\x00\x06" + b"\x00" * 24, channel=1)
        out += b"".join(interleaved(p) for p in send.access_unit(p_slice(p_size, tag=i)))
    return out


def _redirect(status: int, target: str) -> Callable[[str], bytes]:
    def answer(cseq: str) -> bytes:
        return f"RTSP/1.0 {status} Moved\r\nCSeq: {cseq}\r\nLocation: {target}\r\n\r\n".encode()

    return answer


@pytest.mark.parametrize("status", [301, 302, 303, 305, 307])
async def test_describe_redirect_is_refused_and_its_target_never_contacted(
    fake_server: FakeServer, other_host: Listener, status: int
) -> None:
    seen: list[str] = []
    uri = await fake_server(fake_camera(seen, describe_answer=_redirect(status, other_host.uri)))
    started = time.monotonic()
    with pytest.raises(RtspProtocolError) as caught:
        await grab_frame(uri, "admin", "pw", allowed=loopback, timeout_s=3)
    assert time.monotonic() - started < 0.5  # refused, not timed out
    assert str(caught.value) == f"DESCRIBE: redirect refused ({status}, not followed)"
    with pytest.raises(RtspProtocolError, match="redirect refused"):  # inspection too
        await describe(uri, "admin", "pw", timeout=3)
    await asyncio.sleep(0.1)
    assert other_host.connections == 0
    assert [line.split()[0] for line in seen] == ["OPTIONS", "DESCRIBE"] * 2


def _sdp_answer(sdp: str, content_base: str | None = None) -> Callable[[str], bytes]:
    def answer(cseq: str) -> bytes:
        head = f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Type: application/sdp\r\n"
        if content_base:
            head += f"Content-Base: {content_base}\r\n"
        return f"{head}Content-Length: {len(sdp)}\r\n\r\n{sdp}".encode()

    return answer


@pytest.mark.parametrize("where", ["content-base", "media-control", "session-control"])
async def test_urls_naming_another_host_are_refused(
    fake_server: FakeServer, other_host: Listener, where: str
) -> None:
    elsewhere = other_host.uri + "/"
    sdp, base = H264_SDP, None
    if where == "content-base":
        base = elsewhere
    elif where == "media-control":
        sdp = sdp.replace("a=control:track1", f"a=control:{elsewhere}track1")
    else:
        sdp = sdp.replace("a=control:*", f"a=control:{elsewhere}")
    seen: list[str] = []
    uri = await fake_server(fake_camera(seen, describe_answer=_sdp_answer(sdp, base)))
    with pytest.raises(RtspProtocolError, match="names another host: refused") as caught:
        await grab_frame(uri, "admin", "pw", allowed=loopback, timeout_s=3)
    assert OTHER_HOST not in str(caught.value) and FAKE_HOST not in str(caught.value)
    assert "SETUP" not in " ".join(seen)
    await asyncio.sleep(0.1)
    assert other_host.connections == 0


async def test_a_host_outside_the_allowed_ranges_is_never_contacted(
    fake_server: FakeServer,
) -> None:
    seen: list[str] = []
    uri = await fake_server(fake_camera(seen))
    with pytest.raises(RtspProtocolError, match="outside the allowed address ranges"):
        await grab_frame(uri, "admin", "pw", allowed=lambda host: False, timeout_s=3)
    with ThreadPoolExecutor(max_workers=1) as executor:
        pool = StreamPool(executor)
        with pytest.raises(RtspProtocolError, match="outside the allowed"):
            await pool.jpeg(uri, allowed=lambda host: host != FAKE_HOST, timeout_s=3)
        await pool.close()
    await asyncio.sleep(0.1)
    assert seen == []


# -- a hanging camera holds up nobody else -----------------------------------------------------


async def test_a_camera_hanging_at_describe_does_not_delay_healthy_grabs(
    sim: RtspSimulator, fake_server: FakeServer
) -> None:
    """With OpenCV opening rtsp:// itself, this camera held OpenCV's process-wide open lock for
    its whole timeout and every other cold grab waited behind it."""
    seen: list[str] = []
    uri = await fake_server(fake_camera(seen, hang_at="DESCRIBE"))
    started = time.monotonic()
    hanging = asyncio.create_task(grab_frame(uri, "admin", "pw", allowed=loopback, timeout_s=2.5))
    await asyncio.sleep(0.2)
    assert seen[-1].startswith("DESCRIBE")
    latencies: list[float] = []
    with ThreadPoolExecutor(max_workers=2) as executor:
        pool = StreamPool(executor, max_streams=2)
        try:
            t0 = time.monotonic()
            frame = await grab_frame(sim.url(CAM1), "admin", PW1, allowed=loopback, timeout_s=5)
            latencies.append(time.monotonic() - t0)
            assert frame.shape == (720, 1280, 3)
            for _ in range(6):  # a cold, then warm grabs through the pool
                t0 = time.monotonic()
                jpeg, _, _ = await pool.jpeg(
                    sim.url(CAM1), "admin", PW1, allowed=loopback, timeout_s=5
                )
                latencies.append(time.monotonic() - t0)
                assert _size(jpeg) == (720, 1280)
                await asyncio.sleep(0.1)
        finally:
            await pool.close()
    assert not hanging.done()  # all that happened while the hanging one was pending
    print(
        "\nhealthy grabs while a camera hangs at DESCRIBE: "
        + ", ".join(f"{t * 1000:.0f}" for t in latencies)
        + " ms"
    )
    assert max(latencies) < 1.0
    with pytest.raises((GrabTimeout, RtspTimeout), match=r"no answer to DESCRIBE within 2\.5s"):
        await hanging
    assert 2.4 < time.monotonic() - started < 3.5


async def test_a_pending_grab_can_be_cancelled(fake_server: FakeServer) -> None:
    seen: list[str] = []
    uri = await fake_server(fake_camera(seen, hang_at="DESCRIBE"))
    grab = asyncio.create_task(grab_frame(uri, "admin", "pw", allowed=loopback, timeout_s=10))
    await asyncio.sleep(0.2)
    assert seen[-1].startswith("DESCRIBE")
    started = time.monotonic()
    grab.cancel()
    with pytest.raises(asyncio.CancelledError):
        await grab
    assert time.monotonic() - started < 0.1
    await asyncio.sleep(0.05)
    assert seen[-1] == "EOF"  # the connection was closed, not abandoned


async def test_decodes_in_threads_are_not_held_up_by_a_hanging_grab(
    sim: RtspSimulator, fake_server: FakeServer
) -> None:
    """FFmpeg decodes GOPs in threads while our client waits on a hanging camera: the wait is
    an asyncio wait, no process-wide lock is held."""
    async with await open_stream(
        sim.url(CAM1), "admin", PW1, allowed=loopback, timeout=5
    ) as player:
        await player.keyframe()
        until = time.monotonic() + 0.6
        await player.run(lambda: None, lambda: time.monotonic() > until)
        gop = player.gop()
    assert gop is not None and gop.frames >= 10

    def timed_decode() -> float:
        started = time.perf_counter()
        frame = decode_gop(gop)
        assert frame.shape == (720, 1280, 3)
        return time.perf_counter() - started

    loop = asyncio.get_running_loop()
    seen: list[str] = []
    uri = await fake_server(fake_camera(seen, hang_at="DESCRIBE"))
    with ThreadPoolExecutor(max_workers=4) as executor:
        idle = await asyncio.gather(
            *(loop.run_in_executor(executor, timed_decode) for _ in range(4))
        )
        hanging = asyncio.create_task(grab_frame(uri, "admin", "pw", allowed=loopback, timeout_s=2))
        await asyncio.sleep(0.2)
        during = await asyncio.gather(
            *(loop.run_in_executor(executor, timed_decode) for _ in range(4))
        )
        assert not hanging.done()
    print(
        f"\n4 concurrent decodes of a {gop.frames}-frame 720p GOP: idle "
        + ", ".join(f"{t * 1000:.0f}" for t in idle)
        + " ms; while a grab hangs at DESCRIBE "
        + ", ".join(f"{t * 1000:.0f}" for t in during)
        + " ms"
    )
    assert max(during) < 0.5
    with pytest.raises((GrabTimeout, RtspTimeout)):
        await hanging


# -- garbage and oversized media ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("after_play", "says"),
    [
        pytest.param(interleaved(b"\x00" * 40), "media: not an RTP packet (version 0)", id="rtp"),
        pytest.param(
            b"\x00\xff garbage, not interleaved", "garbage among the interleaved", id="raw"
        ),
        pytest.param(
            interleaved(rtp(1, 1, b"\x60\x01\x02")), "not an H.264 payload (NAL type 0)", id="nal"
        ),
        pytest.param(
            interleaved(rtp(1, 1, b"\x7c\x85\x00\x01" + b"\x00" * 20))
            + b"RTSP/1.0 200 OK\r\nX: "
            + b"a" * 70_000,
            "headers exceed",
            id="huge-message",
        ),
        pytest.param(synthetic_stream(1, idr_size=70_000), "larger than 65536 bytes", id="big-idr"),
    ],
)
async def test_garbage_or_oversized_media_is_a_clear_error(
    fake_server: FakeServer, after_play: bytes, says: str
) -> None:
    seen: list[str] = []
    uri = await fake_server(fake_camera(seen, play_extra=after_play))
    started = time.monotonic()
    with pytest.raises(RtspProtocolError, match=re.escape(says)) as caught:
        await grab_frame(uri, "admin", "pw", allowed=loopback, timeout_s=3, max_gop_bytes=64 << 10)
    assert time.monotonic() - started < 1.0
    assert FAKE_HOST not in str(caught.value)
    await asyncio.sleep(0.05)
    assert seen[-1].startswith("TEARDOWN")


async def test_undecodable_h264_is_a_decode_error_after_teardown(fake_server: FakeServer) -> None:
    seen: list[str] = []
    uri = await fake_server(fake_camera(seen, play_extra=synthetic_stream(3)))
    with pytest.raises(DecodeError, match="did not decode"):
        await grab_frame(uri, "admin", "pw", allowed=loopback, timeout_s=3)
    assert [line.split()[0] for line in seen] == [
        "OPTIONS",
        "DESCRIBE",
        "SETUP",
        "PLAY",
        "TEARDOWN",
    ]
    assert seen[2] == f"SETUP {uri}/track1 RTSP/1.0"  # relative control, resolved
    assert seen[3] == f"PLAY {uri} RTSP/1.0"  # the aggregate (a=control:*)


async def test_media_before_the_answer_to_play_is_kept(fake_server: FakeServer) -> None:
    """Some servers start sending RTP before answering PLAY: those packets count (here they
    make a structurally valid, undecodable stream: the error comes from the decoder)."""
    seen: list[str] = []
    uri = await fake_server(fake_camera(seen, play_extra=synthetic_stream(2), media_first=True))
    with pytest.raises(DecodeError):
        await grab_frame(uri, "admin", "pw", allowed=loopback, timeout_s=2)


def _video_sdp(*media: tuple[int, str]) -> str:
    """An SDP with these video media descriptions: (payload type, its attribute lines)."""
    head = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=fake\r\nt=0 0\r\na=control:*\r\n"
    return head + "".join(
        f"m=video 0 RTP/AVP {pt}\r\n{attrs}a=control:track{i}\r\n"
        for i, (pt, attrs) in enumerate(media, 1)
    )


MPEG4 = (97, "a=rtpmap:97 MP4V-ES/90000\r\n")
H265 = (
    96,
    "a=rtpmap:96 H265/90000\r\n"
    "a=fmtp:96 sprop-vps=QAEMAf//AWAAAAMAkAAAAwAAAwBdugJA;"
    "sprop-sps=QgEBAWAAAAMAkAAAAwAAAwBdoAKAgC0WW6Skwv/wABAAFqAgICCAAAADAIAAAAyE;"
    "sprop-pps=RAHAcYMS\r\n",
)
H265_SDP = _video_sdp(H265)
MJPEG_SDP = _video_sdp((26, "a=rtpmap:26 JPEG/90000\r\n"))


@pytest.mark.parametrize(
    ("sdp", "says"),
    [
        pytest.param(
            _video_sdp(MPEG4),
            "DESCRIBE: no H.264, H.265 or MJPEG video track (video: MP4V-ES)",
            id="mpeg4",
        ),
        pytest.param(
            H265_SDP.replace("sprop-pps=", "sprop-max-don-diff=1;sprop-pps="),
            "DESCRIBE: H.265 sprop-max-don-diff 1 (reordered transmission) not supported",
            id="h265-don",
        ),
        pytest.param(
            H264_SDP.replace("packetization-mode=1", "packetization-mode=2"),
            "DESCRIBE: H.264 packetization-mode 2 not supported",
            id="h264-interleaved",
        ),
    ],
)
async def test_what_we_cannot_depacketize_is_refused_before_setup(
    fake_server: FakeServer, sdp: str, says: str
) -> None:
    seen: list[str] = []
    uri = await fake_server(fake_camera(seen, describe_answer=_sdp_answer(sdp)))
    with pytest.raises(RtspProtocolError) as caught:
        await grab_frame(uri, "admin", "pw", allowed=loopback, timeout_s=3)
    assert str(caught.value) == says
    assert [line.split()[0] for line in seen] == ["OPTIONS", "DESCRIBE"]


async def test_the_first_video_track_we_decode_is_chosen(fake_server: FakeServer) -> None:
    sdp = _video_sdp(MPEG4, H265)
    seen: list[str] = []
    uri = await fake_server(fake_camera(seen, describe_answer=_sdp_answer(sdp)))
    with pytest.raises(GrabTimeout):  # no media: we only look at the SETUP
        await grab_frame(uri, "admin", "pw", allowed=loopback, timeout_s=0.5)
    assert seen[2] == f"SETUP {uri}/track2 RTSP/1.0"


def _h265_fu(start: bool, end: bool, body: bytes) -> bytes:
    return bytes([49 << 1, 1, (0x80 if start else 0) | (0x40 if end else 0) | 19]) + body


def _jpeg_packet(kind: int, offset: int, body: bytes) -> bytes:
    return b"\x00" + offset.to_bytes(3, "big") + bytes([kind, 50, 40, 30]) + body


@pytest.mark.parametrize(
    ("sdp", "after_play", "says"),
    [
        pytest.param(
            H265_SDP,
            interleaved(rtp(1, 1, _h265_fu(True, False, b"")[:3])),
            "media: truncated H.265 fragmentation unit",
            id="h265-fu",
        ),
        pytest.param(
            H265_SDP,
            interleaved(rtp(1, 1, bytes([48 << 1, 1, 0x00, 0x40]) + b"\x40\x01")),
            "media: malformed H.265 aggregation packet",
            id="h265-ap",
        ),
        pytest.param(
            H265_SDP,
            b"".join(
                interleaved(rtp(i, 1, _h265_fu(i == 1, False, b"\x5a" * 1400)))
                for i in range(1, 60)
            ),
            "media: H.265 NAL unit larger than 65536 bytes",
            id="h265-endless-fu",
        ),
        pytest.param(
            MJPEG_SDP,
            interleaved(rtp(1, 1, _jpeg_packet(2, 0, b"scan"), pt=26)),
            "media: RTP/JPEG type 2 not supported",
            id="jpeg-type",
        ),
        pytest.param(
            MJPEG_SDP,
            b"".join(
                interleaved(rtp(i, 1, _jpeg_packet(1, 1400 * i, b"\x5a" * 1400), pt=26))
                for i in range(60)
            ),
            "media: JPEG picture larger than 65536 bytes",
            id="jpeg-oversized",
        ),
    ],
)
async def test_hostile_h265_and_mjpeg_media_is_a_clear_error(
    fake_server: FakeServer, sdp: str, after_play: bytes, says: str
) -> None:
    seen: list[str] = []
    uri = await fake_server(
        fake_camera(seen, describe_answer=_sdp_answer(sdp), play_extra=after_play)
    )
    started = time.monotonic()
    with pytest.raises(RtspProtocolError, match=re.escape(says)) as caught:
        await grab_frame(uri, "admin", "pw", allowed=loopback, timeout_s=3, max_gop_bytes=64 << 10)
    assert time.monotonic() - started < 1.0
    assert FAKE_HOST not in str(caught.value)
    await asyncio.sleep(0.05)
    assert seen[-1].startswith("TEARDOWN")


async def test_a_pool_without_warm_streams_grabs_cold(sim: RtspSimulator) -> None:
    with ThreadPoolExecutor(max_workers=1) as executor:
        pool = StreamPool(executor, max_streams=0)
        for _ in range(2):
            jpeg, taken_at, warm = await pool.jpeg(
                sim.url(CAM1), "admin", PW1, allowed=loopback, timeout_s=5
            )
            assert not warm and _size(jpeg) == (720, 1280)
            assert time.time() - taken_at < 1.0
        assert len(pool) == 0
        await pool.close()


async def test_an_oversized_gop_in_a_warm_stream_is_dropped_with_a_clear_error(
    fake_server: FakeServer,
) -> None:
    """An IDR, then P frames beyond the GOP cap (sent with the PLAY answer), then silence:
    the GOP is dropped, memory stays bounded, and a snapshot says why it has no frame."""
    seen: list[str] = []
    media = synthetic_stream(8, idr_size=8000, p_size=3000)
    uri = await fake_server(fake_camera(seen, play_extra=media))
    with ThreadPoolExecutor(max_workers=1) as executor:
        pool = StreamPool(executor, max_streams=1, max_gop_bytes=16 << 10)
        try:
            with pytest.raises(GrabTimeout, match=r"GOPs over 16384 bytes or damaged, dropped"):
                await pool.jpeg(uri, "admin", "pw", allowed=loopback, timeout_s=1)
            stream = next(iter(pool._streams.values()))
            assert stream.player.stream is not None
            assert stream.player.stream.dropped_gops == 1
            assert stream.player.stream.gop_bytes <= 16 << 10
        finally:
            await pool.close()
    assert seen[-1].startswith("TEARDOWN")


async def test_keepalives_are_sent_and_their_answers_skipped(fake_server: FakeServer) -> None:
    async def media(writer: asyncio.StreamWriter) -> None:
        send = Sender()
        writer.write(b"".join(interleaved(p) for p in send.access_unit(idr(), params=True)))
        for i in range(1000):
            writer.write(b"".join(interleaved(p) for p in send.access_unit(p_slice(tag=i % 256))))
            await writer.drain()
            await asyncio.sleep(0.02)

    seen: list[str] = []
    uri = await fake_server(fake_camera(seen, media=media))
    async with await open_stream(uri, "admin", "pw", allowed=loopback, timeout=3) as player:
        assert player.session_id == "fake-1" and "GET_PARAMETER" in player.methods
        player.session_timeout_s = 0.2  # keep-alive every 0.1 s
        player._next_keepalive = 0.0
        frames = 0

        def count() -> None:
            nonlocal frames
            frames += 1

        until = time.monotonic() + 0.6
        await player.run(count, lambda: time.monotonic() > until)
        gop = player.gop()
    assert frames >= 15 and gop is not None and gop.frames == frames
    methods = [line.split()[0] for line in seen]
    assert methods.count("GET_PARAMETER") >= 4
    await asyncio.sleep(0.05)
    assert methods[-1] == "TEARDOWN" or seen[-1].startswith("TEARDOWN")


def _size(jpeg: bytes) -> tuple[int, int]:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image.shape[0], image.shape[1]


# --------------------------------------------------------------------------------------------
# the simulator itself


def test_simulator_urls(sim: RtspSimulator) -> None:
    assert sim.url(CAM1) == "rtsp://127.2.250.1:8554/stream1"
    assert sim.url(CAM1, with_credentials=True) == (
        "rtsp://admin:Cam1-s3cret%21pw@127.2.250.1:8554/stream1"
    )
    assert PW1 not in repr(sim.cameras[CAM1])
    assert sim.running


async def test_missing_gstreamer_names_the_debian_packages() -> None:
    """The venv's own python has no PyGObject: exactly the situation of a fresh machine."""
    simulator = RtspSimulator([RtspCamera("x-1", "127.2.250.3", "a", "b")], python=sys.executable)
    with pytest.raises(GStreamerMissingError) as caught:
        await simulator.start()
    assert "python3-gi" in str(caught.value) and INSTALL_HINT in str(caught.value)
    assert not simulator.running


async def test_stop_is_clean_and_idempotent() -> None:
    simulator = RtspSimulator([RtspCamera("x-2", "127.2.250.4", "a", "b", auth="none")])
    await simulator.start()
    info = await describe(simulator.url("x-2"), timeout=5)
    assert info.auth == "none" and info.width == 1280
    await simulator.stop()
    assert simulator.returncode == 0  # SIGTERM is a clean exit
    await simulator.stop()
    assert not simulator.running
    with pytest.raises(RtspConnectionError):
        await describe(simulator.url("x-2"), timeout=2)


async def test_port_clash_is_reported() -> None:
    first = RtspSimulator([RtspCamera("x-3", "127.2.250.5", "a", "b")])
    second = RtspSimulator([RtspCamera("x-4", "127.2.250.5", "a", "b")])
    async with first:
        with pytest.raises(RtspSimulatorError, match="cannot listen"):
            await second.start()
    assert not first.running and not second.running


async def test_camera_goes_offline_and_comes_back(sim: RtspSimulator) -> None:
    await sim.set_offline(CAM2, True)
    try:
        assert sim.offline == {CAM2}
        with pytest.raises(RtspConnectionError, match="refused"):
            await describe(sim.url(CAM2), "operator", PW2, timeout=2)
        info = await describe(sim.url(CAM1), "admin", PW1, timeout=5)  # the other one is fine
        assert info.width == 1280
    finally:
        await sim.set_offline(CAM2, False)
    assert sim.offline == set()
    info = await describe(sim.url(CAM2), "operator", PW2, timeout=5, allow_basic=True)
    assert (info.codec, info.width, info.height) == ("H264", 1280, 720)
    with pytest.raises(KeyError):
        await sim.set_offline("no-such-camera", True)


async def test_simulated_devices_with_the_wrong_password_quirk() -> None:
    def device(camera_id: str, address: str, quirks: Quirks) -> SimDevice:
        camera = FleetCamera(camera_id, "police", "traffic", camera_id, address, 31.0, 121.3, "x")
        return SimDevice(camera, password="on-file-pw", onvif=False, quirks=quirks)

    good = device("police-traffic-9001", "127.2.250.6", Quirks())
    rotated = device("police-traffic-9002", "127.2.250.7", Quirks(wrong_password=True))
    cameras = [RtspCamera.from_device(good), RtspCamera.from_device(rotated)]
    async with RtspSimulator(cameras) as simulator:
        assert simulator.url(good.camera.id) == good.stream_uri
        info = await describe(good.stream_uri, good.username, good.password, timeout=5)
        assert info.codec == "H264"
        with pytest.raises(RtspAuthError):
            await describe(rotated.stream_uri, rotated.username, rotated.password, timeout=5)
