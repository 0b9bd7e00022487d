"""Cameras near an incident: `near=lat,lon&radius=` on the camera list, across the caller's
networks, nearest first, each placed by the location its network shares (and never by one it
does not share), with how exactly its coordinates place it."""

from __future__ import annotations

import math
from typing import Any

from aiohttp.test_utils import TestClient

from gateway.keys import REDIS, REGISTRY, TOKENS
from gateway.models import Role
from gateway.settings import Settings
from gateway.vault import CredentialVault
from tests.conftest import TokenFactory
from tests.gateway.test_discovery_merge import Factory, _app
from tests.gateway.test_lifecycle import _create

Client = TestClient  # type: ignore[type-arg]
MANHOLE = (31.08000, 121.30000)  # where the missing manhole cover is reported


def _north_east(metres_n: float, metres_e: float) -> tuple[float, float]:
    lat = MANHOLE[0] + metres_n / 111_320
    lon = MANHOLE[1] + metres_e / (111_320 * math.cos(math.radians(MANHOLE[0])))
    return round(lat, 6), round(lon, 6)


def _camera(name: str, network: str, address: str, at: tuple[float, float]) -> dict[str, Any]:
    category = {"governance": "sharp-eyes", "police": "public-security"}[network]
    return {
        "network": network,
        "name": name,
        "category": category,
        "address": address,
        "location": {"lat": at[0], "lon": at[1]},
    }


async def _register(client: Client, admin: dict[str, str], body: dict[str, Any]) -> str:
    return str((await _create(client, admin, body))["id"])


async def _near(client: Client, headers: dict[str, str], query: str) -> Any:
    resp = await client.get(
        f"/api/v1/cameras?near={MANHOLE[0]},{MANHOLE[1]}&{query}", headers=headers
    )
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_cameras_within_the_radius_across_networks_nearest_first(
    client: Client, token: TokenFactory
) -> None:
    admin = await token("admin")
    ids = {
        "gate-80m": await _register(
            client, admin, _camera("gate", "governance", "127.1.0.41", _north_east(80, 0))
        ),
        "crossing-150m": await _register(
            client, admin, _camera("crossing", "police", "127.2.0.42", _north_east(0, -150))
        ),
        "market-400m": await _register(
            client, admin, _camera("market", "governance", "127.1.0.43", _north_east(-240, 320))
        ),
        "far-2km": await _register(
            client, admin, _camera("far", "governance", "127.1.0.44", _north_east(2000, 0))
        ),
    }
    page = await _near(client, admin, "radius=500")
    assert [c["id"] for c in page["items"]] == [
        ids["gate-80m"],
        ids["crossing-150m"],
        ids["market-400m"],
    ]
    distances = page["near"]["distance_m"]
    for key, expected in (("gate-80m", 80), ("crossing-150m", 150), ("market-400m", 400)):
        assert abs(distances[ids[key]] - expected) < 1.0, (key, distances[ids[key]])
    assert page["total"] == 3 and page["next_cursor"] is None
    assert page["near"]["unplaced"] == {}
    assert set(page["near"]["precision_m"].values()) == {0.1}  # six decimals: ~0.06 m

    # The list's filters apply, and grants: a governance-only viewer never sees the police one.
    police_only = await _near(client, admin, "radius=500&network=police")
    assert [c["id"] for c in police_only["items"]] == [ids["crossing-150m"]]
    viewer = await token("viewer", ["governance"])
    seen = await _near(client, viewer, "radius=1000")
    assert [c["id"] for c in seen["items"]] == [ids["gate-80m"], ids["market-400m"]]
    assert await _near(client, admin, "radius=50") == {
        "version": page["version"],
        "total": 0,
        "next_cursor": None,
        "near": {
            "lat": MANHOLE[0],
            "lon": MANHOLE[1],
            "radius_m": 50,
            "distance_m": {},
            "precision_m": {},
            "unplaced": {},
        },
        "items": [],
    }

    # A camera moved or decommissioned moves or leaves the answer.
    moved = {"location": {"lat": _north_east(0, 30)[0], "lon": _north_east(0, 30)[1]}}
    resp = await client.patch(f"/api/v1/cameras/{ids['far-2km']}", json=moved, headers=admin)
    assert resp.status == 200
    gone = {"lifecycle": "decommissioned"}
    resp = await client.patch(f"/api/v1/cameras/{ids['gate-80m']}", json=gone, headers=admin)
    assert resp.status == 200
    again = await _near(client, admin, "radius=500")
    assert [c["id"] for c in again["items"]][:2] == [ids["far-2km"], ids["crossing-150m"]]


async def test_a_network_that_does_not_share_locations_is_not_placed_and_says_so(
    aiohttp_client: Factory, settings: Settings, vault: CredentialVault
) -> None:
    nets = [
        n.model_copy(
            update={
                "sharing": n.sharing.model_copy(
                    update={"share": ("id", "network", "name", "status")}
                )
            }
        )
        if n.id == "police"
        else n
        for n in settings.networks
    ]
    client, admin = await _app(
        aiohttp_client, settings.model_copy(update={"networks": nets}), vault, {}
    )
    gate = await _register(
        client, admin, _camera("gate", "governance", "127.1.0.45", _north_east(10, 0))
    )
    police = await _register(
        client, admin, _camera("crossing", "police", "127.2.0.46", _north_east(5, 0))
    )
    coarse = _camera("old table", "governance", "127.1.0.47", (31.08, 121.3))  # two decimals
    coarse_id = await _register(client, admin, coarse)

    secret, _ = await client.app[TOKENS].create("viewer", Role.viewer, ["*"], "tests")
    viewer = {"Authorization": f"Bearer {secret}"}
    page = await _near(client, viewer, "radius=300")
    assert police not in [c["id"] for c in page["items"]]  # not even as a distance
    assert page["near"]["unplaced"] == {"police": 1}
    assert page["near"]["precision_m"][coarse_id] == 556.6  # half of 0.01 degree
    admin_page = await _near(client, admin, "radius=300")
    # Admins see every record whole: the police camera placed, at 5 m (the coarse one at 0 m).
    assert [c["id"] for c in admin_page["items"]] == [coarse_id, police, gate]


async def test_bad_near_queries_name_the_field(client: Client, token: TokenFactory) -> None:
    admin = await token("admin")
    for query, field in (
        ("near=86,121&radius=100", "near"),  # Redis GEO places nothing beyond 85 degrees
        ("near=31.08;121.3", "near"),
        ("near=31.08,181", "near"),
        ("near=31.08,121.3&radius=50001", "radius"),
        ("near=31.08,121.3&radius=0", "radius"),
    ):
        resp = await client.get(f"/api/v1/cameras?{query}", headers=admin)
        assert resp.status == 422, query
        assert (await resp.json())["errors"][0]["field"] == field, query


async def test_pages_follow_the_distance_order(client: Client, token: TokenFactory) -> None:
    admin = await token("admin")
    ids = [
        await _register(
            client,
            admin,
            _camera(f"c{i}", "governance", f"127.1.0.{50 + i}", _north_east(10 * i, 0)),
        )
        for i in range(1, 6)
    ]
    seen: list[str] = []
    query = "radius=100&limit=2"
    while True:
        page = await _near(client, admin, query)
        seen += [c["id"] for c in page["items"]]
        assert page["total"] == 5
        if page["next_cursor"] is None:
            break
        query = f"radius=100&limit=2&cursor={page['next_cursor']}"
    assert seen == ids


async def test_records_written_before_the_index_are_placed_at_start(
    client: Client, token: TokenFactory
) -> None:
    admin = await token("admin")
    cam = await _register(
        client, admin, _camera("gate", "governance", "127.1.0.48", _north_east(20, 0))
    )
    registry, redis = client.app[REGISTRY], client.app[REDIS]
    await redis.delete(registry.keys.geo("governance"))  # as before the index existed
    assert (await _near(client, admin, "radius=100"))["items"] == []
    assert await registry.index_locations() == 1
    assert [c["id"] for c in (await _near(client, admin, "radius=100"))["items"]] == [cam]
