"""The map with a tile service configured (`[dashboard] tile_url`): tiles are asked of that
service and of nothing else, and the page's Content-Security-Policy refuses any other outside
origin. A gateway in this process (no camera fleet needed: three cameras placed by hand) and a
tile server on loopback that answers every tile with the same small PNG."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import cv2
import numpy as np
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from gateway.app import create_app
from gateway.keys import TOKENS
from gateway.models import Role
from gateway.settings import DashboardConfig, Settings
from gateway.vault import CredentialVault
from tests.browser.conftest import ARTEFACTS, needs_browser

with contextlib.suppress(ImportError):  # conftest.SKIP says why; every test here skips
    from playwright.async_api import Browser, expect

pytestmark = needs_browser

ServerFactory = Callable[..., Awaitable[TestServer]]
CAMERAS = [
    ("Gate A", "127.1.0.21", 31.0800, 121.3000),
    ("Gate B", "127.1.0.22", 31.0850, 121.3050),
    ("Gate C", "127.1.0.23", 31.0750, 121.2950),
]


async def tile_server(aiohttp_server: ServerFactory) -> tuple[TestServer, list[str]]:
    ok, png = cv2.imencode(".png", np.full((256, 256, 3), (200, 230, 210), np.uint8))
    assert ok
    asked: list[str] = []

    async def tile(request: web.Request) -> web.Response:
        asked.append(request.path)
        return web.Response(body=png.tobytes(), content_type="image/png")

    app = web.Application()
    app.router.add_get("/tiles/{z}/{x}/{y}.png", tile)
    return await aiohttp_server(app), asked


async def test_tiles_come_from_the_configured_service_only(
    aiohttp_server: ServerFactory, browser: Browser, settings: Settings, vault: CredentialVault
) -> None:
    tiles, asked = await tile_server(aiohttp_server)
    tile_origin = f"http://127.0.0.1:{tiles.port}"
    config = DashboardConfig(tile_url=f"{tile_origin}/tiles/{{z}}/{{x}}/{{y}}.png")
    app = create_app(settings.model_copy(update={"dashboard": config}), vault)
    gateway = await aiohttp_server(app)
    base = str(gateway.make_url("")).rstrip("/")
    admin_token, _ = await app[TOKENS].create("tiles-admin", Role.admin, ["*"], "tests")
    viewer_token, _ = await app[TOKENS].create("tiles-viewer", Role.viewer, ["*"], "tests")
    async with ClientSession(headers={"Authorization": f"Bearer {admin_token}"}) as http:
        for name, address, lat, lon in CAMERAS:
            body: dict[str, Any] = {
                "network": "governance",
                "name": name,
                "category": "sharp-eyes",
                "address": address,
                "location": {"lat": lat, "lon": lon},
            }
            async with http.post(base + "/api/v1/cameras", json=body) as resp:
                assert resp.status == 201, await resp.text()

    context = await browser.new_context(viewport={"width": 1200, "height": 800})
    page = await context.new_page()
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    try:
        await page.goto(base + "/")
        csp = await page.evaluate("fetch('/').then(r => r.headers.get('content-security-policy'))")
        assert f"img-src 'self' blob: data: {tile_origin};" in csp
        await page.fill("#token", viewer_token)
        await page.click("#signin button[type=submit]")
        await page.evaluate("() => { location.hash = '#/map'; }")
        await expect(page.locator("#map[data-tiles=yes] img.maptile").first).to_be_visible()
        await expect(page.locator("#map circle.cam")).to_have_count(len(CAMERAS))
        await page.wait_for_load_state("networkidle")
        assert asked and all(p.startswith("/tiles/") for p in asked)
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(ARTEFACTS / "map-tiles.png"))

        # Any other outside origin is refused by the policy, even from the page's own script.
        violation = await page.evaluate(
            """() => new Promise((resolve) => {
                document.addEventListener('securitypolicyviolation',
                    (e) => resolve(e.blockedURI), {once: true});
                const img = new Image();
                img.src = 'http://127.0.0.2:9/elsewhere.png';
                document.body.append(img);
            })"""
        )
        assert violation.startswith("http://127.0.0.2")
    finally:
        await context.close()
    mine = (base + "/", tile_origin + "/", "http://127.0.0.2:9/elsewhere.png")  # the refused one
    outside = [u for u in requested if not u.startswith(mine)]
    assert not outside, outside
