"""The authorization matrix: who may call what, and what each caller gets to see.

Every token in the matrix is granted only the `governance` network, so each networked endpoint is
tried against a granted network (governance) and an ungranted one (police). The police network's
owner shares where a camera is and whether it works, never how to reach it (`share` in config).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.keys import TOKENS
from gateway.settings import Settings
from gateway.vault import CredentialVault
from tests.conftest import Headers, TokenFactory

PROBLEM = "application/problem+json"
POLICE_REDACTED = (
    "address",
    "onvif",
    "profiles",
    "snapshot_uri",
    "serial",
    "mac",
    "hardware_id",
    "firmware",
)


def camera(net: str, n: int) -> dict[str, Any]:
    """Camera `n` of a network: governance cameras on 127.1/16, police ones on 127.2/16."""
    octet = {"governance": 1, "police": 2}[net]
    category = {"governance": "sharp-eyes", "police": "micro-checkpoint"}[net]
    address = f"127.{octet}.0.{10 + n}"
    return {
        "id": f"{net}.cam-{n}",
        "network": net,
        "name": f"{net} camera {n}",
        "category": category,
        "address": address,
        "stream_uri": f"rtsp://{address}:554/main",
        "snapshot_uri": f"http://{address}/snapshot.jpg",
        "location": {"lat": 31.0 + n / 100, "lon": 121.2, "address": f"Dongjing road {n}"},
        "tags": ["authz"],
    }


GOV, POL = camera("governance", 1), camera("police", 1)


@dataclass
class World:
    """One governance and one police camera, registered by an all-network admin."""

    client: TestClient  # type: ignore[type-arg]
    token: TokenFactory
    root: Headers  # admin on every network: checks what really happened

    async def headers(self, who: str) -> Headers:
        if who == "none":
            return {}
        if who == "bad":
            return {"Authorization": "Bearer cgw_00000000_not-a-real-token"}
        if who == "revoked":
            headers = await self.token("viewer", ["governance"], name="soon-revoked")
            ok = await self.client.get("/api/v1/cameras", headers=headers)
            assert ok.status == 200  # works (and is cached) before it is revoked
            token_id = headers["Authorization"].split("_")[1]
            assert await self.client.app[TOKENS].revoke(token_id)
            return headers
        return await self.token(who, ["governance"], name=f"gov-{who}")

    async def exists(self, cam_id: str) -> bool:
        resp = await self.client.get(f"/api/v1/cameras/{cam_id}", headers=self.root)
        return resp.status == 200


@pytest.fixture
async def world(client: TestClient, token: TokenFactory) -> World:  # type: ignore[type-arg]
    root = await token("admin", ["*"], name="root-admin")
    for cam in (GOV, POL):
        resp = await client.post("/api/v1/cameras", json=cam, headers=root)
        assert resp.status == 201, await resp.text()
    return World(client, token, root)


# -- the matrix ------------------------------------------------------------------------------

WHO = ("viewer", "operator", "admin", "auditor", "none", "bad", "revoked")
NETWORKED = ("list", "get", "create", "patch", "delete", "import", "summary", "networks")
NETWORKED += ("audit", "metrics")
PUBLIC = ("healthz", "readyz", "openapi")

# Expected status for a governance-only token: (granted network, ungranted network).
SAME = {"ok": (200, 200), "forbidden": (403, 403)}
EXPECTED: dict[str, dict[str, tuple[int, int]]] = {
    "viewer": {
        "list": SAME["ok"],
        "get": (200, 404),
        "create": SAME["forbidden"],
        "patch": SAME["forbidden"],
        "delete": SAME["forbidden"],
        "import": SAME["forbidden"],
        "summary": SAME["ok"],
        "networks": SAME["ok"],
        "audit": SAME["forbidden"],
        "metrics": SAME["ok"],
    },
    "admin": {
        "list": SAME["ok"],
        "get": (200, 404),
        "create": (201, 403),
        "patch": (200, 404),
        "delete": (204, 404),
        "import": SAME["ok"],  # per-row results: the police row is refused inside the 200
        "summary": SAME["ok"],
        "networks": SAME["ok"],
        "audit": SAME["forbidden"],  # separation of duties: admins do not read the trail
        "metrics": SAME["ok"],
    },
    "auditor": {
        "list": SAME["forbidden"],
        "get": SAME["forbidden"],
        "create": SAME["forbidden"],
        "patch": SAME["forbidden"],
        "delete": SAME["forbidden"],
        "import": SAME["forbidden"],
        "summary": SAME["forbidden"],
        "networks": SAME["ok"],
        "audit": SAME["ok"],
        "metrics": SAME["ok"],
    },
}
EXPECTED["operator"] = EXPECTED["viewer"]
for _who in ("none", "bad", "revoked"):
    EXPECTED[_who] = {ep: (401, 401) for ep in NETWORKED}


def _cases() -> list[Any]:
    cases = []
    for who in WHO:
        for ep in NETWORKED:
            for granted in (True, False):
                net = "governance" if granted else "police"
                cases.append(pytest.param(who, ep, granted, id=f"{who}-{ep}-{net}"))
        for ep in PUBLIC:
            cases.append(pytest.param(who, ep, True, id=f"{who}-{ep}"))
    return cases


def _request(ep: str, granted: bool) -> tuple[str, str, dict[str, Any]]:
    """Method, path and request kwargs of an endpoint aimed at the granted or ungranted network."""
    existing = GOV if granted else POL
    fresh = camera(existing["network"], 2)
    cam_path = f"/api/v1/cameras/{existing['id']}"
    return {
        "list": ("GET", "/api/v1/cameras", {}),
        "get": ("GET", cam_path, {}),
        "create": ("POST", "/api/v1/cameras", {"json": fresh}),
        "patch": ("PATCH", cam_path, {"json": {"name": "renamed by matrix"}}),
        "delete": ("DELETE", cam_path, {}),
        "import": ("POST", "/api/v1/cameras/import", {"json": [fresh]}),
        "summary": ("GET", "/api/v1/summary", {}),
        "networks": ("GET", "/api/v1/networks", {}),
        "audit": ("GET", "/api/v1/audit", {}),
        "metrics": ("GET", "/metrics", {}),
        "healthz": ("GET", "/healthz", {}),
        "readyz": ("GET", "/readyz", {}),
        "openapi": ("GET", "/api/v1/openapi.json", {}),
    }[ep]


@pytest.mark.parametrize(("who", "ep", "granted"), _cases())
async def test_matrix(world: World, who: str, ep: str, granted: bool) -> None:
    headers = await world.headers(who)
    method, path, kwargs = _request(ep, granted)
    resp = await world.client.request(method, path, headers=headers, **kwargs)
    expected = 200 if ep in PUBLIC else EXPECTED[who][ep][0 if granted else 1]
    text = await resp.text()
    assert resp.status == expected, f"{method} {path} as {who}: {resp.status} {text}"
    if resp.status >= 400:
        assert resp.content_type == PROBLEM
        problem = await resp.json()
        assert problem["status"] == resp.status
        if resp.status == 401:
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    await _check_effect(world, ep, granted, resp.status, text)


async def _check_effect(world: World, ep: str, granted: bool, status: int, text: str) -> None:
    """What the caller saw, and what really happened to the registry."""
    net = "governance" if granted else "police"
    existing = GOV if granted else POL
    fresh = camera(net, 2)
    body: Any = orjson.loads(text) if status == 200 and ep != "metrics" else None
    if ep == "list" and status == 200:
        ids = [c["id"] for c in body["items"]]
        assert (existing["id"] in ids) is granted
        assert body["total"] == len(ids)
    elif ep in ("create", "import"):
        created = status == 201 or (status == 200 and body["created"] == 1)
        assert created is (status in (200, 201) and granted)
        assert await world.exists(fresh["id"]) is created
        if ep == "import" and status == 200 and not granted:
            assert body["failed"] == 1
            assert body["errors"][0]["field"] == "network"
    elif ep == "patch":
        resp = await world.client.get(f"/api/v1/cameras/{existing['id']}", headers=world.root)
        renamed = (await resp.json())["name"] == "renamed by matrix"
        assert renamed is (status == 200)
    elif ep == "delete":
        assert await world.exists(existing["id"]) is (status != 204)
    elif ep == "summary" and status == 200:
        networks = {cell["network"] for cell in body["by_network_category_status"]}
        assert (net in networks) is granted
    elif ep == "networks" and status == 200:
        assert ("police" in [n["id"] for n in body]) is False
        assert [n["id"] for n in body] == ["governance"]
    elif ep == "audit" and status == 200:
        targets = {e["target"] for e in body["items"]}
        assert (existing["id"] in targets) is granted
        assert {e["network"] for e in body["items"]} <= {"governance"}
    elif ep == "metrics" and status == 200:
        assert ('network="police"' in text) is False
        assert 'network="governance"' in text


# -- seeing: lists, summary, networks, one camera ----------------------------------------------


async def test_viewer_granted_governance_sees_no_police_camera_anywhere(world: World) -> None:
    c = world.client
    viewer = await world.token("viewer", ["governance"])

    page = await (await c.get("/api/v1/cameras", headers=viewer)).json()
    assert [cam["id"] for cam in page["items"]] == [GOV["id"]]
    assert page["total"] == 1
    for query in ("network=police", "category=micro-checkpoint", "department=Police", "q=police"):
        resp = await c.get(f"/api/v1/cameras?{query}", headers=viewer)
        assert resp.status == 200
        assert (await resp.json())["items"] == [], query

    summary = await (await c.get("/api/v1/summary", headers=viewer)).json()
    assert summary["total"] == 1
    assert {cell["network"] for cell in summary["by_network_category_status"]} == {"governance"}
    assert "Police" not in summary["by_department"]
    assert sum(summary["by_carrier"].values()) == 1
    assert sum(summary["by_status"].values()) == 1
    inventory = {row["category"]: row for row in summary["inventory"]}
    # Categories of no network (unclassified discoveries) are nobody's secret.
    assert {row["network"] for row in inventory.values()} - {""} == {"governance"}
    assert not {"public-security", "micro-checkpoint", "traffic"} & inventory.keys()
    assert inventory["sharp-eyes"]["registered"] == 1

    networks = await (await c.get("/api/v1/networks", headers=viewer)).json()
    assert [(n["id"], n["cameras"]) for n in networks] == [("governance", 1)]

    # The same summary for an all-network viewer does count the police camera.
    everyone = await world.token("viewer", ["*"])
    full = await (await c.get("/api/v1/summary", headers=everyone)).json()
    assert full["total"] == 2
    assert full["by_department"]["Police"] == 1


async def test_ungranted_camera_is_indistinguishable_from_a_missing_one(world: World) -> None:
    c = world.client
    for role in ("viewer", "operator", "admin"):
        headers = await world.token(role, ["governance"])
        for method, kwargs in (("GET", {}), ("PATCH", {"json": {"name": "x"}}), ("DELETE", {})):
            if role != "admin" and method != "GET":
                continue
            hidden = await c.request(
                method, f"/api/v1/cameras/{POL['id']}", headers=headers, **kwargs
            )
            missing = await c.request(method, "/api/v1/cameras/pol-404", headers=headers, **kwargs)
            assert hidden.status == missing.status == 404, (role, method)
            assert hidden.content_type == missing.content_type == PROBLEM
            shown = (await hidden.text()).replace(POL["id"], "ID")
            absent = (await missing.text()).replace("pol-404", "ID")
            assert shown == absent, (role, method)
            assert set(hidden.headers) - {"Date", "X-Request-Id"} == set(missing.headers) - {
                "Date",
                "X-Request-Id",
            }
    assert await world.exists(POL["id"])


async def test_admin_granted_governance_cannot_touch_police_cameras(world: World) -> None:
    c = world.client
    admin = await world.token("admin", ["governance"])

    resp = await c.post("/api/v1/cameras", json=camera("police", 5), headers=admin)
    assert resp.status == 403
    assert (await resp.json())["field"] == "network"
    assert not await world.exists("pol-5")

    resp = await c.patch(f"/api/v1/cameras/{POL['id']}", json={"name": "mine"}, headers=admin)
    assert resp.status == 404
    resp = await c.delete(f"/api/v1/cameras/{POL['id']}", headers=admin)
    assert resp.status == 404
    record = await (await c.get(f"/api/v1/cameras/{POL['id']}", headers=world.root)).json()
    assert record["name"] == POL["name"]
    assert record["rev"] == 1

    # Its own network works.
    resp = await c.post("/api/v1/cameras", json=camera("governance", 5), headers=admin)
    assert resp.status == 201


async def test_metrics_count_cameras_of_granted_networks_only(world: World) -> None:
    c = world.client
    everyone = await (await c.get("/metrics", headers=world.root)).text()
    assert 'camgw_cameras{network="police",status="unknown"} 1.0' in everyone
    assert 'camgw_cameras{network="governance",status="unknown"} 1.0' in everyone
    viewer = await world.token("viewer", ["governance"])
    limited = await (await c.get("/metrics", headers=viewer)).text()
    assert 'camgw_cameras{network="governance",status="unknown"} 1.0' in limited
    assert "police" not in limited
    assert "camgw_http_requests_total" in limited  # the rest of the exposition is still there


# -- redaction ---------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["viewer", "operator"])
async def test_non_admins_get_police_records_redacted(world: World, role: str) -> None:
    c = world.client
    headers = await world.token(role, ["*"])
    one = await (await c.get(f"/api/v1/cameras/{POL['id']}", headers=headers)).json()
    page = await (await c.get("/api/v1/cameras", headers=headers)).json()
    listed = {cam["id"]: cam for cam in page["items"]}
    for record in (one, listed[POL["id"]]):
        assert not set(POLICE_REDACTED) & record.keys(), record
        # Where it is and whether it works still leave the network.
        assert record["location"]["address"] == POL["location"]["address"]
        assert record["status"] == "unknown"
        assert record["name"] == POL["name"]
    assert POL["address"] not in await (await c.get("/api/v1/cameras", headers=headers)).text()

    # Governance shares everything.
    gov = listed[GOV["id"]]
    assert gov["address"] == GOV["address"]
    assert gov["snapshot_uri"] == GOV["snapshot_uri"]
    assert gov["profiles"][0]["stream_uri"] == GOV["stream_uri"]


async def test_admins_see_full_police_records(world: World) -> None:
    c = world.client
    one = await (await c.get(f"/api/v1/cameras/{POL['id']}", headers=world.root)).json()
    page = await (await c.get("/api/v1/cameras", headers=world.root)).json()
    listed = {cam["id"]: cam for cam in page["items"]}
    for record in (one, listed[POL["id"]]):
        assert record["address"] == POL["address"]
        assert record["snapshot_uri"] == POL["snapshot_uri"]
        assert record["profiles"][0]["stream_uri"] == POL["stream_uri"]
        assert {"firmware", "serial", "mac", "hardware_id", "onvif"} <= record.keys()


async def test_redacted_fields_cannot_be_found_by_search(world: World) -> None:
    """`q` must not match what the caller is not shown: else the address leaks by probing."""
    c = world.client
    viewer = await world.token("viewer", ["*"])
    for probe in (POL["address"], "127.2.0"):
        resp = await c.get("/api/v1/cameras", params={"q": probe}, headers=viewer)
        assert (await resp.json())["items"] == [], probe
    # ...while admins, who see the address, can search by it,
    resp = await c.get("/api/v1/cameras", params={"q": POL["address"]}, headers=world.root)
    assert [cam["id"] for cam in (await resp.json())["items"]] == [POL["id"]]
    # and a viewer still finds governance cameras by address and police ones by name.
    resp = await c.get("/api/v1/cameras", params={"q": GOV["address"]}, headers=viewer)
    assert [cam["id"] for cam in (await resp.json())["items"]] == [GOV["id"]]
    resp = await c.get("/api/v1/cameras", params={"q": "police camera"}, headers=viewer)
    assert [cam["id"] for cam in (await resp.json())["items"]] == [POL["id"]]


# -- auditors ----------------------------------------------------------------------------------


async def test_auditor_reads_only_entries_of_granted_networks(world: World) -> None:
    c = world.client
    gov_admin = await world.token("admin", ["governance"])
    await c.patch(f"/api/v1/cameras/{GOV['id']}", json={"name": "patched"}, headers=gov_admin)
    await c.patch(f"/api/v1/cameras/{POL['id']}", json={"name": "patched"}, headers=world.root)

    gov_auditor = await world.token("auditor", ["governance"])
    page = await (await c.get("/api/v1/audit?limit=1000", headers=gov_auditor)).json()
    assert page["items"], "the auditor's own network has entries"
    assert {e["network"] for e in page["items"]} == {"governance"}
    assert {(e["action"], e["target"]) for e in page["items"]} >= {
        ("camera.create", GOV["id"]),
        ("camera.update", GOV["id"]),
    }
    for query in ("network=police", f"camera={POL['id']}"):
        resp = await c.get(f"/api/v1/audit?{query}", headers=gov_auditor)
        assert resp.status == 200
        assert (await resp.json())["items"] == [], query

    all_auditor = await world.token("auditor", ["*"])
    page = await (await c.get("/api/v1/audit?limit=1000", headers=all_auditor)).json()
    assert {"governance", "police"} <= {e["network"] for e in page["items"]}


# -- revocation --------------------------------------------------------------------------------


async def test_revocation_takes_effect_at_once(world: World) -> None:
    c = world.client
    headers = await world.token("viewer", ["*"], name="leaving")
    token_id = headers["Authorization"].split("_")[1]
    assert (await c.get("/api/v1/cameras", headers=headers)).status == 200
    assert (await c.get("/api/v1/summary", headers=headers)).status == 200

    assert await c.app[TOKENS].revoke(token_id)
    for path in ("/api/v1/cameras", "/api/v1/summary", f"/api/v1/cameras/{GOV['id']}"):
        resp = await c.get(path, headers=headers)
        assert resp.status == 401, path
    assert token_id not in [t.id for t in await c.app[TOKENS].list()]


async def test_revocation_reaches_every_gateway_sharing_the_redis(
    world: World,
    aiohttp_client: Callable[..., Awaitable[TestClient]],  # type: ignore[type-arg]
    settings: Settings,
    vault: CredentialVault,
) -> None:
    """A second gateway on the same Redis caches the token too; the revocation event clears it."""
    other = await aiohttp_client(create_app(settings, vault))
    headers = await world.token("viewer", ["*"], name="two-gateways")
    token_id = headers["Authorization"].split("_")[1]
    assert (await other.get("/api/v1/cameras", headers=headers)).status == 200

    assert await world.client.app[TOKENS].revoke(token_id)
    status = 200
    for _ in range(100):  # the event travels through Redis pub/sub: allow it a moment
        status = (await other.get("/api/v1/cameras", headers=headers)).status
        if status == 401:
            break
        await asyncio.sleep(0.01)
    assert status == 401


async def test_malformed_authorization_headers_are_401(world: World) -> None:
    c = world.client
    real = (await world.token("admin", ["*"]))["Authorization"].split(" ", 1)[1]
    for value in (
        "",
        "Bearer",
        "Bearer ",
        f"Basic {real}",
        f"Token {real}",
        f"Bearer {real}x",
        f"Bearer {real[:-1]}",
        "Bearer cgw_",
        "Bearer " + "a" * 4000,
    ):
        resp = await c.get("/api/v1/cameras", headers={"Authorization": value})
        assert resp.status == 401, value
        assert resp.content_type == PROBLEM
