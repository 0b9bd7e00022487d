"""Two gateways sharing one Redis: a change or a revocation on one is seen by the other."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.keys import CATALOG, TOKENS
from gateway.models import Role
from gateway.settings import Settings
from gateway.vault import CredentialVault

Factory = Callable[..., Awaitable[TestClient]]  # type: ignore[type-arg]

CAM = {"network": "governance", "name": "Gate", "category": "sharp-eyes", "address": "127.1.0.20"}


async def _eventually(check: Callable[[], Awaitable[bool]], within_s: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def _live(client: TestClient) -> bool:  # type: ignore[type-arg]
    return client.app[CATALOG].live_version is not None


async def test_change_on_one_gateway_shows_on_the_other(
    aiohttp_client: Factory, settings: Settings, vault: CredentialVault
) -> None:
    a = await aiohttp_client(create_app(settings, vault))
    b = await aiohttp_client(create_app(settings, vault))
    await _eventually(lambda: _live(b))
    secret, _ = await a.app[TOKENS].create("t", Role.admin, ["*"], "tests")
    auth = {"Authorization": f"Bearer {secret}"}

    first = await b.get("/api/v1/cameras", headers=auth)
    etag = first.headers["ETag"]
    assert (await first.json())["total"] == 0

    assert (await a.post("/api/v1/cameras", json=CAM, headers=auth)).status == 201

    async def b_sees_it() -> bool:
        resp = await b.get("/api/v1/cameras", headers=auth | {"If-None-Match": etag})
        return resp.status == 200 and (await resp.json())["total"] == 1

    await _eventually(b_sees_it)


async def test_revocation_on_one_gateway_applies_to_the_other_at_once(
    aiohttp_client: Factory, settings: Settings, vault: CredentialVault
) -> None:
    a = await aiohttp_client(create_app(settings, vault))
    b = await aiohttp_client(create_app(settings, vault))
    await _eventually(lambda: _live(b))
    secret, info = await a.app[TOKENS].create("t", Role.viewer, ["*"], "tests")
    auth = {"Authorization": f"Bearer {secret}"}
    assert (await b.get("/api/v1/cameras", headers=auth)).status == 200  # now cached in b

    await a.app[TOKENS].revoke(info.id)

    async def b_refuses() -> bool:
        return (await b.get("/api/v1/cameras", headers=auth)).status == 401

    await _eventually(b_refuses, within_s=1.0)  # far below the 30 s cache lifetime
