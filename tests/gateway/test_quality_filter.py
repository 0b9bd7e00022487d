"""The camera list filtered by the quality verdict (issue 15): `image=ok|suspect|faulty` on
GET /api/v1/cameras, only where the caller is shown `image`, a bad value refused naming the
field, and the parameter in the OpenAPI document."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.keys import TOKENS
from gateway.models import ImageFault, ImageQuality, ImageStatus, Role
from gateway.quality import QUALITY
from gateway.settings import Settings
from gateway.vault import CredentialVault
from tests.conftest import Headers

Client = TestClient[web.Request, web.Application]
PROBLEM = "application/problem+json"
VERDICTS = {
    "governance.f-1": ImageStatus.faulty,
    "governance.f-2": ImageStatus.suspect,
    "governance.f-3": ImageStatus.ok,
    "governance.f-4": None,  # never judged
    "police.f-1": ImageStatus.faulty,
}


def _sharing_image(settings: Settings) -> Settings:
    """governance shows non-admins the verdict; police does not (its shipped share list)."""
    networks = []
    for net in settings.networks:
        if net.id == "governance":
            sharing = net.sharing.model_copy(update={"share": (*net.sharing.share, "image")})
            networks.append(net.model_copy(update={"sharing": sharing}))
        else:
            networks.append(net)
    return settings.model_copy(update={"networks": tuple(networks)})


@pytest.fixture
async def client(
    aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings, vault: CredentialVault
) -> AsyncIterator[Client]:
    client = await aiohttp_client(create_app(_sharing_image(settings), vault))
    admin = await _token(client, "admin", ["*"])
    for n, (cam_id, status) in enumerate(VERDICTS.items()):
        network = cam_id.split(".")[0]
        octet = "1" if network == "governance" else "2"
        category = "sharp-eyes" if network == "governance" else "public-security"
        body = {
            "id": cam_id,
            "network": network,
            "name": cam_id,
            "category": category,
            "address": f"127.{octet}.243.{n + 1}",
        }
        resp = await client.post("/api/v1/cameras", json=body, headers=admin)
        assert resp.status == 201, await resp.text()
        if status is not None:
            failing = [] if status is ImageStatus.ok else [ImageFault(check="dark", level=status)]
            verdict = ImageQuality(status=status, failing=failing, since=datetime.now(UTC))
            assert await client.app[QUALITY]._store(cam_id, verdict, None) == 1
    yield client


async def _token(client: Client, role: str, networks: list[str]) -> Headers:
    secret, _ = await client.app[TOKENS].create(f"t-{role}", Role(role), networks, "tests")
    return {"Authorization": f"Bearer {secret}"}


async def _ids(client: Client, headers: Headers, **params: str) -> list[str]:
    resp = await client.get("/api/v1/cameras", params=params, headers=headers)
    assert resp.status == 200, await resp.text()
    body: Any = await resp.json()
    return [c["id"] for c in body["items"]]


async def test_the_list_is_filtered_by_verdict(client: Client) -> None:
    admin = await _token(client, "admin", ["*"])
    assert await _ids(client, admin, image="faulty") == ["governance.f-1", "police.f-1"]
    assert await _ids(client, admin, image="suspect") == ["governance.f-2"]
    assert await _ids(client, admin, image="ok") == ["governance.f-3"]
    assert await _ids(client, admin, image="faulty", network="police") == ["police.f-1"]

    # a viewer of both networks: police does not show `image`, so its faulty camera is not
    # found by the filter (an unshared field is not learnt through a filter either)
    viewer = await _token(client, "viewer", ["*"])
    assert await _ids(client, viewer, image="faulty") == ["governance.f-1"]


async def test_a_bad_verdict_is_refused_naming_the_field(client: Client) -> None:
    viewer = await _token(client, "viewer", ["*"])
    resp = await client.get("/api/v1/cameras", params={"image": "broken"}, headers=viewer)
    assert resp.status == 422
    assert resp.content_type == PROBLEM
    problem = await resp.json(content_type=PROBLEM)
    assert problem["field"] == "image"
    assert problem["detail"] == "`image`: Input should be 'ok', 'suspect' or 'faulty'"


async def test_the_filter_is_in_the_openapi_document(client: Client) -> None:
    resp = await client.get("/api/v1/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    params = {p["name"]: p for p in doc["paths"]["/api/v1/cameras"]["get"]["parameters"]}
    schema = params["image"]["schema"]
    assert params["image"]["required"] is False
    enum = schema.get("enum") or doc["components"]["schemas"]["ImageStatus"]["enum"]
    assert enum == ["ok", "suspect", "faulty"]
