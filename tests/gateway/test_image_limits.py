"""Decompression bombs (security review, issue 7, finding 4): a 2.9 MB JPEG of 3839x65500 pixels
took the gateway from 162 MB to 1.65 GB on one snapshot request. The size is read from the frame
header and a picture over `snapshots.max_pixels` is refused before anything decodes it: 502 with
a plain detail, the camera's circuit counts it and its record says so.

The bombs here are small real JPEGs with their frame header (SOF) patched: a decoder believes
the header and allocates what it declares, so they behave like the real thing without the test
needing hundreds of MB. Run with `-s` to see the memory numbers.
"""

from __future__ import annotations

import ipaddress
import os
import struct
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from adapters import imaging
from adapters.config import DEFAULT_MAX_PIXELS, MAX_PIXELS_BOUND, SnapshotConfig
from adapters.imaging import BadImage, ImageTooLarge, check_decodable, jpeg_size, render
from gateway.app import create_app
from gateway.keys import SNAPSHOTS, TOKENS
from gateway.models import Role
from gateway.settings import Settings, SnapshotSettings
from gateway.vault import CredentialVault

Factory = Callable[..., Awaitable[TestClient]]  # type: ignore[type-arg]

_X = 200 + os.getpid() % 20  # this run's /24, so concurrent runs do not collide
NET = f"127.1.{_X}"
BOMB_CAM, PROGRESSIVE_CAM, FINE_CAM = f"{NET}.10", f"{NET}.11", f"{NET}.12"
BOMB = (3839, 65500)  # the finding's picture: 251,454,500 pixels
LIMIT_DETAIL = "over this gateway's limit of 33,177,600"


def real_jpeg(width: int = 64, height: int = 48, progressive: bool = False) -> bytes:
    img = np.full((height, width, 3), 120, np.uint8)
    cv2.putText(img, "x", (4, height - 6), cv2.FONT_HERSHEY_SIMPLEX, 1, (255, 255, 255), 2)
    params = [cv2.IMWRITE_JPEG_PROGRESSIVE, 1] if progressive else []
    ok, buf = cv2.imencode(".jpg", img, params)
    assert ok
    return bytes(buf.tobytes())


def bomb(width: int, height: int, progressive: bool = False) -> bytes:
    """A real small JPEG whose frame header (SOF0, or SOF2) declares width x height."""
    data = bytearray(real_jpeg(progressive=progressive))
    sof = data.find(b"\xff\xc2" if progressive else b"\xff\xc0")
    assert sof > 0
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def peak_rss_reset() -> int:
    """Reset the process's peak RSS (VmHWM) to its current RSS; return that, in MB."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_mb("VmRSS")


def peak_rss() -> int:
    return _status_mb("VmHWM")


def _status_mb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) // 1024
    raise AssertionError(f"no {field} in /proc/self/status")


# --------------------------------------------------------------------------- the setting


def test_max_pixels_default_and_bounds() -> None:
    assert DEFAULT_MAX_PIXELS == 7680 * 4320 == 33_177_600  # 8K UHD
    assert SnapshotConfig().max_pixels == DEFAULT_MAX_PIXELS
    assert SnapshotSettings().max_pixels == DEFAULT_MAX_PIXELS  # the gateway's inherits it
    assert SnapshotSettings(max_pixels=MAX_PIXELS_BOUND).max_pixels == MAX_PIXELS_BOUND
    for wrong in (0, 320 * 240 - 1, MAX_PIXELS_BOUND + 1):
        with pytest.raises(ValueError, match="max_pixels"):
            SnapshotSettings(max_pixels=wrong)


def test_opencv_fence_is_set_before_cv2_loads() -> None:
    """OpenCV reads OPENCV_IO_MAX_IMAGE_PIXELS once, when it loads: importing adapters.imaging
    (or adapters.rtsp) first sets it, so imdecode itself refuses a picture over the bound
    (a second line behind the header check; `render` turns its refusal into BadImage)."""
    code = textwrap.dedent(
        f"""
        import os, sys
        import adapters.imaging as imaging
        import cv2, numpy as np
        assert os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] == "{MAX_PIXELS_BOUND}"
        data = bytes.fromhex(sys.stdin.readline())
        try:
            imaging.render(data, 16384, 16384, ["watermark"])
        except imaging.BadImage as exc:
            print("refused:", exc)
        else:
            print("decoded")
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM"):
                print("peak MB", int(line.split()[1]) // 1024)
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_IO_MAX_IMAGE_PIXELS"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=bomb(16384, 16384).hex() + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    ).stdout
    print(out)
    assert "refused: does not decode" in out
    peak = int(out.split("peak MB")[1])
    assert peak < 400, f"the 16384x16384 bomb was decoded: peak {peak} MB"  # it would be ~800


# --------------------------------------------------------------------------- imaging


def test_jpeg_size_refuses_a_bomb_from_its_header() -> None:
    with pytest.raises(ImageTooLarge) as caught:
        jpeg_size(bomb(*BOMB))
    assert str(caught.value) == f"a picture of 3839x65500 pixels, {LIMIT_DETAIL}"
    assert (caught.value.width, caught.value.height, caught.value.limit) == (
        3839,
        65500,
        DEFAULT_MAX_PIXELS,
    )
    assert isinstance(caught.value, BadImage)


def test_jpeg_size_limit_is_inclusive_and_configurable() -> None:
    assert jpeg_size(bomb(7680, 4320)) == (7680, 4320)  # 8K UHD: exactly the default
    with pytest.raises(ImageTooLarge, match="7681x4320 pixels"):
        jpeg_size(bomb(7681, 4320))
    assert jpeg_size(bomb(100, 100), max_pixels=10_000) == (100, 100)
    with pytest.raises(ImageTooLarge, match=r"^a picture of 100x101 pixels, .* of 10,000$"):
        jpeg_size(bomb(100, 101), max_pixels=10_000)
    assert jpeg_size(bomb(65535, 65535), max_pixels=None) == (65535, 65535)  # a pure probe
    with pytest.raises(ImageTooLarge, match="65535x65535"):
        jpeg_size(bomb(65535, 65535, progressive=True))  # SOF2


def test_check_decodable_refuses_before_decoding() -> None:
    """The scan of these bombs is 64x48: had anything decoded it, the answer would be a
    different BadImage ("does not decode", or a size that disagrees), not ImageTooLarge."""
    for data in (bomb(*BOMB), bomb(*BOMB, progressive=True), bomb(40000, 40000)):
        with pytest.raises(ImageTooLarge):
            check_decodable(data)
        with pytest.raises(ImageTooLarge, match="limit of 76,800"):
            check_decodable(data, 320 * 240)
    assert check_decodable(real_jpeg(), 64 * 48) == (64, 48)


def test_check_decodable_refuses_a_header_that_disagrees_with_the_picture(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whatever a frame-header parser gets wrong, the picture the decoder sees must be the size
    the limit was checked against."""
    monkeypatch.setattr(imaging, "_frame_header", lambda _data: (64, 16))
    with pytest.raises(BadImage, match=r"header says 64x16 pixels but the picture decodes to 8x6"):
        check_decodable(real_jpeg(64, 48))


def test_render_decodes_no_more_than_the_output_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A quarter-size or smaller output is decoded at 1/8 or 1/4 scale by libjpeg."""
    data = real_jpeg(2048, 1024)
    calls: list[int] = []
    decode = cv2.imdecode

    def counted(buf: Any, mode: int) -> Any:
        calls.append(mode)
        return decode(buf, mode)

    monkeypatch.setattr(cv2, "imdecode", counted)
    for width in (256, 512, 1024, 2048):
        out = render(data, 2048, width, ["wm"])
        assert jpeg_size(out) == (width, width // 2)
    assert calls == [
        cv2.IMREAD_REDUCED_COLOR_8,
        cv2.IMREAD_REDUCED_COLOR_4,
        cv2.IMREAD_REDUCED_COLOR_2,
        cv2.IMREAD_COLOR,
    ]


# --------------------------------------------------------------------------- end to end


class RecordingExecutor(ThreadPoolExecutor):
    """The snapshot service's image workers, recording what they were given to run."""

    def __init__(self, workers: int) -> None:
        super().__init__(workers, "test-image")
        self.calls: Counter[str] = Counter()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.calls[getattr(fn, "__name__", repr(fn))] += 1
        return super().submit(fn, *args, **kwargs)


@pytest.fixture(scope="module")
def pictures() -> dict[str, bytes]:
    return {
        BOMB_CAM: bomb(*BOMB),
        PROGRESSIVE_CAM: bomb(*BOMB, progressive=True),
        FINE_CAM: real_jpeg(1280, 720),
    }


@pytest.fixture(scope="module")
async def cameras(pictures: dict[str, bytes]) -> AsyncIterator[Counter[str]]:
    """HTTP snapshot servers without authentication, one per camera address."""
    hits: Counter[str] = Counter()

    async def snapshot(request: web.Request) -> web.Response:
        sock = request.transport.get_extra_info("sockname") if request.transport else None
        address = sock[0] if sock else "?"
        hits[address] += 1
        return web.Response(body=pictures[address], content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/snap.jpg", snapshot)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    for address in pictures:
        await web.TCPSite(runner, address, 8000).start()
    yield hits
    await runner.cleanup()


def narrowed(settings: Settings) -> Settings:
    """Governance narrowed to this run's /24, no background health rounds."""
    data = settings.model_dump()
    for net in data["networks"]:
        if net["id"] == "governance":
            net["cidrs"] = [ipaddress.ip_network(f"{NET}.0/24")]
            net["discovery"] |= {"health_interval_s": 0, "wsdiscovery_targets": []}
    data["snapshots"] |= {"breaker_failures": 3, "timeout_s": 2.0}
    return Settings.model_validate(data)


async def test_a_jpeg_bomb_is_refused_from_its_header_and_marks_the_camera(
    aiohttp_client: Factory,
    settings: Settings,
    vault: CredentialVault,
    cameras: Counter[str],
) -> None:
    client = await aiohttp_client(create_app(narrowed(settings), vault))
    admin_secret, _ = await client.app[TOKENS].create("bomb-admin", Role.admin, ["*"], "tests")
    operator, _ = await client.app[TOKENS].create("bomb-op", Role.operator, ["*"], "tests")
    admin = {"Authorization": f"Bearer {admin_secret}"}
    service = client.app[SNAPSHOTS]
    service.executor.shutdown()
    service.executor = workers = RecordingExecutor(2)

    async def register(address: str) -> str:
        body = {
            "network": "governance",
            "name": f"bomb test {address}",
            "category": "sharp-eyes",
            "address": address,
            "snapshot_uri": f"http://{address}:8000/snap.jpg",
        }
        resp = await client.post("/api/v1/cameras", json=body, headers=admin)
        assert resp.status == 201, await resp.text()
        return str((await resp.json())["id"])

    async def snap(cam_id: str) -> tuple[int, bytes]:
        async with client.get(
            f"/api/v1/cameras/{cam_id}/snapshot",
            params={"reason": "INC-7"},
            headers={"Authorization": f"Bearer {operator}"},
        ) as resp:
            return resp.status, await resp.read()

    # a picture within the limit is served (and decoded, downscaled, watermarked) as before
    fine = await register(FINE_CAM)
    status, body = await snap(fine)
    assert status == 200, body[:300]
    assert jpeg_size(body) == (1280, 720)
    workers.calls.clear()

    for address in (BOMB_CAM, PROGRESSIVE_CAM):
        cam_id = await register(address)
        before = peak_rss_reset()
        for _ in range(3):  # the breaker's threshold
            status, body = await snap(cam_id)
            assert status == 502, body[:300]
            problem = orjson.loads(body)
            assert problem["detail"] == (
                f"camera {cam_id} sent a picture of 3839x65500 pixels, {LIMIT_DETAIL}"
            )
        growth = peak_rss() - before
        print(f"\n{address}: RSS {before} MB, peak during 3 requests +{growth} MB")
        assert growth < 100, f"peak RSS grew by {growth} MB: the bomb was decoded"
        assert cameras[address] == 3
        # refused by the network's adapter from the header (adapters.imaging.usable_jpeg, in
        # its workers): nothing reached the gateway's image workers, nothing was rendered
        assert workers.calls == {}, workers.calls
        workers.calls.clear()

        resp = await client.get(f"/api/v1/cameras/{cam_id}", headers=admin)
        record = await resp.json()
        assert record["status"] == "degraded"
        assert record["last_error"] == f"snapshot: a picture of 3839x65500 pixels, {LIMIT_DETAIL}"
        status, body = await snap(cam_id)  # the circuit is open now: the camera is left alone
        assert status == 503, body[:300]
        assert cameras[address] == 3
