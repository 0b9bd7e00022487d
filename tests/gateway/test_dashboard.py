"""The dashboard's serving side (issue 13): its files at `/` and `/static/` without a token, the
API still behind one, the Content-Security-Policy built from `[dashboard] tile_url`, and the two
endpoints the page needs beside the rest of the API (`/api/v1/me`, `/api/v1/audit-chain`).
What the page does with them is tested in a real browser: tests/browser/."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient
from pydantic import ValidationError

from gateway.app import create_app
from gateway.dashboard import WEB_DIR, content_security_policy, load_assets
from gateway.settings import DashboardConfig, Settings
from gateway.vault import CredentialVault
from tests.conftest import TokenFactory

Factory = Callable[..., Awaitable[TestClient]]  # type: ignore[type-arg]


async def test_the_page_and_its_files_need_no_token_and_the_api_still_does(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    page = await client.get("/")
    assert page.status == 200
    assert page.content_type == "text/html"
    html = await page.text()
    assert '<script type="module" src="/static/js/app.js">' in html
    assert "<script>" not in html  # nothing inline: the CSP forbids it
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert "img-src 'self' blob: data:;" in csp  # no tile service configured: nothing outside
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    js = await client.get("/static/js/app.js")
    assert js.status == 200 and js.content_type == "text/javascript"
    again = await client.get("/static/js/app.js", headers={"If-None-Match": js.headers["ETag"]})
    assert again.status == 304
    assert (await client.get("/static/js/nothing.js")).status == 404
    assert (await client.get("/static/../settings.py")).status == 404
    assert (await client.get("/api/v1/summary")).status == 401


def test_every_shipped_file_is_served_and_loads_nothing_from_outside() -> None:
    assets = load_assets(DashboardConfig())
    shipped = {p for p in WEB_DIR.rglob("*") if p.is_file()}
    assert len(assets) == len(shipped)
    for path, asset in assets.items():
        text = asset.body.decode()
        for outside in ("http://", "https://", "//cdn", "@import"):
            assert outside not in text.replace("http://www.w3.org/2000/svg", ""), path


def test_the_tile_url_is_the_only_origin_the_policy_allows() -> None:
    config = DashboardConfig(tile_url="https://tiles.gov.example:8443/osm/{z}/{x}/{y}.png")
    assert config.tile_origin == "https://tiles.gov.example:8443"
    csp = content_security_policy(config)
    assert "img-src 'self' blob: data: https://tiles.gov.example:8443;" in csp
    assert csp.count("tiles.gov.example") == 1
    page = load_assets(config)["/"].body.decode()
    assert 'content="https://tiles.gov.example:8443/osm/{z}/{x}/{y}.png"' in page


@pytest.mark.parametrize(
    "url",
    [
        "ftp://tiles.example/{z}/{x}/{y}.png",
        "https://tiles.example/{z}/{x}.png",
        "https://{s}.tiles.example/{z}/{x}/{y}.png",
        "https://tiles.example/{z}/{x}/{y}.png; script-src *",
        "https://user:pw@tiles.example/{z}/{x}/{y}.png",
        'https://tiles.example/{z}/{x}/{y}.png"><script>',
    ],
)
def test_a_tile_url_that_could_widen_the_policy_is_refused(url: str) -> None:
    with pytest.raises(ValidationError):
        DashboardConfig(tile_url=url)


async def test_the_dashboard_can_be_turned_off(
    aiohttp_client: Factory, settings: Settings, vault: CredentialVault
) -> None:
    off = settings.model_copy(update={"dashboard": DashboardConfig(enabled=False)})
    client = await aiohttp_client(create_app(off, vault))
    assert (await client.get("/")).status == 404
    assert (await client.get("/healthz")).status == 200


async def test_me_tells_the_caller_its_role_and_networks(
    client: TestClient,  # type: ignore[type-arg]
    token: TokenFactory,
) -> None:
    viewer = await token("viewer", ["governance"], name="wall")
    resp = await client.get("/api/v1/me", headers=viewer)
    assert resp.status == 200
    me = await resp.json()
    assert me["name"] == "wall" and me["role"] == "viewer"
    assert me["networks"] == ["governance"] and me["all_networks"] is False
    assert "read_cameras" in me["permissions"] and "snapshot" not in me["permissions"]
    assert "cgw_" not in await resp.text()
    auditor = await (await client.get("/api/v1/me", headers=await token("auditor"))).json()
    assert auditor["all_networks"] is True
    assert "read_audit" in auditor["permissions"] and "read_cameras" not in auditor["permissions"]
    assert (await client.get("/api/v1/me")).status == 401


async def test_an_auditor_verifies_the_chain_and_the_check_is_recorded(
    client: TestClient,  # type: ignore[type-arg]
    token: TokenFactory,
) -> None:
    admin, auditor = await token("admin"), await token("auditor")
    cam = {"network": "governance", "name": "G", "category": "sharp-eyes", "address": "127.1.0.9"}
    assert (await client.post("/api/v1/cameras", json=cam, headers=admin)).status == 201
    assert (await client.get("/api/v1/audit-chain", headers=admin)).status == 403
    resp = await client.get("/api/v1/audit-chain", headers=auditor)
    assert resp.status == 200
    status = await resp.json()
    assert status["intact"] is True and status["broken_at"] is None
    assert "intact" in status["detail"]
    trail = await (await client.get("/api/v1/audit", headers=auditor)).json()
    assert trail["items"][0]["action"] == "audit.verify"
    # asked again within the minute: the same walk's answer (the trail is not walked again)
    again = await (await client.get("/api/v1/audit-chain", headers=auditor)).json()
    assert again == status


async def test_files_are_gzipped_for_a_browser_and_revalidated_either_way(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    plain = await client.get("/static/js/app.js", headers={"Accept-Encoding": "identity"})
    packed = await client.get("/static/js/app.js", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in plain.headers
    assert packed.headers["Content-Encoding"] == "gzip"
    assert await packed.read() == await plain.read()  # aiohttp's client unpacks it
    assert packed.headers["ETag"] != plain.headers["ETag"]
    for etag in (plain.headers["ETag"], packed.headers["ETag"]):
        again = await client.get(
            "/static/js/app.js", headers={"If-None-Match": etag, "Accept-Encoding": "gzip"}
        )
        assert again.status == 304
