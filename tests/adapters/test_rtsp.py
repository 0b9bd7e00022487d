"""RTSP inspection (adapters.rtsp), frame grabs (adapters.rtsp_grab) and the GStreamer RTSP camera
simulator (adapters.simulator.rtsp_server), against real GStreamer servers and scripted fakes on
127.2.250.0/24.

Nothing here is skipped: without Debian's GStreamer packages the simulator fixture fails with the
apt-get line that fixes it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import re
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from adapters.httpauth import digest_response, parse_challenge
from adapters.rtsp import (
    MAX_RESPONSE_BYTES,
    RtspAuthError,
    RtspConnectionError,
    RtspError,
    RtspProtocolError,
    RtspTimeout,
    describe,
    parse_h264_sps,
    parse_sdp,
)
from adapters.rtsp_grab import GrabError, grab_frame, grab_jpeg, with_credentials
from adapters.simulator.devices import Quirks, SimDevice
from adapters.simulator.fleet import FleetCamera
from adapters.simulator.rtsp_server import (
    INSTALL_HINT,
    GStreamerMissingError,
    RtspCamera,
    RtspSimulator,
    RtspSimulatorError,
)

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


async def test_describe_with_basic_auth(sim: RtspSimulator) -> None:
    info = await describe(sim.url(CAM2), "operator", PW2, timeout=5)
    assert (info.codec, info.width, info.height, info.auth) == ("H264", 1280, 720, "basic")


async def test_credentials_in_uri_are_used_and_never_returned(sim: RtspSimulator) -> None:
    uri = sim.url(CAM2, with_credentials=True)
    assert uri.startswith("rtsp://operator:Cam2%3Ap%40ss%2Fword@127.2.250.2:8554/")
    info = await describe(uri, timeout=5)
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

    info = await describe(await fake_server(camera), "admin", "pw", timeout=3)
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
# frame grabs with OpenCV/FFmpeg


async def test_grab_frame_cold(sim: RtspSimulator, capfd: pytest.CaptureFixture[str]) -> None:
    uri = sim.url(CAM1, with_credentials=True)
    started = time.monotonic()
    frame = await asyncio.to_thread(grab_frame, uri, 5.0)
    cold = time.monotonic() - started
    print(f"\ncold RTSP grab (720p25 H.264, 1 s GOP, TCP, reduced probing): {cold * 1000:.0f} ms")
    assert frame.shape == (720, 1280, 3)
    assert frame.dtype == np.uint8
    assert float(frame.std()) > 20  # a test pattern, not a blank frame
    out, err = capfd.readouterr()
    assert PW1 not in out + err
    print(out, end="")


async def test_grab_jpeg_in_an_executor(sim: RtspSimulator) -> None:
    uri = with_credentials(sim.url(CAM2), "operator", PW2)
    with ThreadPoolExecutor(max_workers=2) as pool:
        jpeg = await grab_jpeg(uri, 5.0, pool)
    assert jpeg[:2] == b"\xff\xd8"
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape == (720, 1280, 3)


async def test_grab_with_wrong_password_is_a_clean_error(
    sim: RtspSimulator, capfd: pytest.CaptureFixture[str]
) -> None:
    uri = with_credentials(sim.url(CAM1), "admin", "Wr0ng-grab-pw")
    with pytest.raises(GrabError) as caught:
        await asyncio.to_thread(grab_frame, uri, 5.0)
    assert "Wr0ng-grab-pw" not in str(caught.value)
    out, err = capfd.readouterr()  # what FFmpeg and OpenCV print on their own
    assert "Wr0ng-grab-pw" not in out + err
    assert "rtsp://127.2.250.1:8554/stream1" in str(caught.value)


async def test_grab_closed_port_fails_fast() -> None:
    started = time.monotonic()
    with pytest.raises(GrabError):
        await asyncio.to_thread(grab_frame, f"rtsp://a:b@{CLOSED}:8554/stream1", 5.0)
    assert time.monotonic() - started < 2.0


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
    info = await describe(sim.url(CAM2), "operator", PW2, timeout=5)
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
