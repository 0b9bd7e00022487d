from __future__ import annotations

from aiohttp.test_utils import TestClient

from tests.conftest import TokenFactory

CAM = {"network": "governance", "name": "Gate 1", "category": "sharp-eyes", "address": "127.1.0.10"}


async def test_create_then_list(client: TestClient, token: TokenFactory) -> None:  # type: ignore[type-arg]
    admin = await token("admin")
    resp = await client.post("/api/v1/cameras", json=CAM, headers=admin)
    assert resp.status == 201, await resp.text()
    cam = await resp.json()
    assert cam["department"] == "Political-Legal Committee"
    resp = await client.get("/api/v1/cameras", headers=admin)
    body = await resp.json()
    assert [c["id"] for c in body["items"]] == [cam["id"]]
