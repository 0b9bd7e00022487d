"""The camera API as the dashboard and an admin use it: CRUD, conflicts, filters, paging,
conditional GET with gzip, the summary table, the network list and the OpenAPI document."""

from __future__ import annotations

import gzip
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.keys import CATALOG, REGISTRY
from gateway.models import CameraStatus
from tests.conftest import Headers, TokenFactory

Client = TestClient[web.Request, web.Application]

IDENTITY = {"Accept-Encoding": "identity"}
PROBLEM = "application/problem+json"

# A network's cameras live in its CIDR: governance 127.1/16, police 127.2/16.
NETWORK_PREFIX = {"governance": "127.1", "police": "127.2"}
CATEGORY_NETWORK = {
    "sharp-eyes": "governance",
    "smart-security": "governance",
    "road-blindspot": "governance",
    "public-security": "police",
    "micro-checkpoint": "police",
    "traffic": "police",
}


def cam(n: int, category: str = "sharp-eyes", **over: Any) -> dict[str, Any]:
    network = CATEGORY_NETWORK[category]
    body: dict[str, Any] = {
        "id": f"{network}.cam-{n:03d}",
        "network": network,
        "name": f"Camera {n}",
        "category": category,
        "address": f"{NETWORK_PREFIX[network]}.0.{n}",
    }
    return body | over


async def create(client: Client, admin: Headers, body: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post("/api/v1/cameras", json=body, headers=admin)
    assert resp.status == 201, await resp.text()
    data: dict[str, Any] = await resp.json()
    return data


async def import_json(client: Client, admin: Headers, rows: list[dict[str, Any]]) -> list[str]:
    resp = await client.post("/api/v1/cameras/import", json=rows, headers=admin)
    assert resp.status == 200, await resp.text()
    result = await resp.json()
    assert result["failed"] == 0, result["errors"]
    ids: list[str] = result["ids"]
    return ids


async def set_status(client: Client, short_id: str, status: str) -> None:
    """What a discovery run does to a record's status (there is no API to set it)."""
    registry = client.app[REGISTRY]
    snap = await client.app[CATALOG].current()
    cam_id = next(i for i in snap.by_id if i.endswith(f".{short_id}"))
    current = await registry.get(cam_id)
    assert current is not None
    changed = current.model_copy(update={"status": CameraStatus(status), "rev": current.rev + 1})
    client.app[CATALOG].note_version(await registry.replace(changed, current.rev))


async def list_ids(client: Client, headers: Headers, query: str = "") -> list[str]:
    resp = await client.get(f"/api/v1/cameras{query}", headers=headers)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    if "limit=" not in query:
        assert body["total"] == len(body["items"])
    # Without the network prefix (`governance.cam-001` -> `cam-001`), for readable assertions.
    return [c["id"].split(".", 1)[1] for c in body["items"]]


async def assert_problem(resp: aiohttp.ClientResponse, status: int, field: str | None) -> dict:  # type: ignore[type-arg]
    assert resp.status == status, await resp.text()
    assert resp.content_type == PROBLEM
    problem = await resp.json(content_type=PROBLEM)
    assert problem["status"] == status
    assert problem["detail"]
    if field is not None:
        assert problem["field"] == field, problem
    return problem  # type: ignore[no-any-return]


# -- create, get, patch, delete ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("category", "department", "carrier", "project"),
    [
        ("sharp-eyes", "Political-Legal Committee", "China Telecom", "Sharp Eyes project"),
        (
            "road-blindspot",
            "Town Safety Office",
            "China Unicom",
            "Road monitoring blind-spot filling",
        ),
        ("traffic", "Traffic Police 2nd Brigade", "China Telecom", "Traffic cameras"),
    ],
)
async def test_create_returns_location_and_category_defaults(
    client: Client, token: TokenFactory, category: str, department: str, carrier: str, project: str
) -> None:
    admin = await token("admin")
    body = cam(7, category)
    del body["id"]
    resp = await client.post("/api/v1/cameras", json=body, headers=admin)
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    assert created["id"].startswith(f"{body['network']}.")  # generated ids are network-scoped
    assert resp.headers["Location"] == f"/api/v1/cameras/{created['id']}"
    assert (created["department"], created["carrier"], created["project"]) == (
        department,
        carrier,
        project,
    )
    assert created["source"] == "registered"
    assert created["status"] == "unknown"
    assert created["rev"] == 1
    assert created["created_at"] == created["updated_at"]

    fetched = await client.get(resp.headers["Location"], headers=admin)
    assert fetched.status == 200
    assert await fetched.json() == created


async def test_create_keeps_given_owner_fields_and_hides_credentials(
    client: Client, token: TokenFactory
) -> None:
    admin = await token("admin")
    body = cam(
        3,
        department="Community committee",
        carrier="",
        stream_uri="rtsp://127.1.0.3:554/Streaming/Channels/101",
        credentials={"username": "admin", "password": "hunter2-Secret"},
        location={"lat": 31.08, "lon": 121.3, "address": "East gate"},
        tags=["gate", "east"],
    )
    resp = await client.post("/api/v1/cameras", json=body, headers=admin)
    assert resp.status == 201, await resp.text()
    text = await resp.text()
    assert "hunter2-Secret" not in text
    created = orjson.loads(text)
    assert created["department"] == "Community committee"
    assert created["carrier"] == ""  # an explicit empty value is not replaced by the default
    assert created["project"] == "Sharp Eyes project"
    assert created["has_credentials"] is True
    assert "credentials" not in created
    assert created["profiles"][0]["stream_uri"] == body["stream_uri"]
    assert created["location"] == body["location"]
    assert created["tags"] == ["gate", "east"]
    got = await client.get("/api/v1/cameras/governance.cam-003", headers=admin)
    assert "hunter2-Secret" not in await got.text()


async def test_get_unknown_camera_is_404_problem(client: Client, token: TokenFactory) -> None:
    admin = await token("admin")
    resp = await client.get("/api/v1/cameras/governance.cam-nope", headers=admin)
    await assert_problem(resp, 404, None)


async def test_patch_is_a_json_merge_patch(client: Client, token: TokenFactory) -> None:
    admin = await token("admin")
    created = await create(
        client,
        admin,
        cam(
            4,
            department="Community committee",
            location={"lat": 31.08, "lon": 121.3, "address": "North gate"},
            tags=["gate"],
            stream_uri="rtsp://127.1.0.4/main",
        ),
    )
    url = f"/api/v1/cameras/{created['id']}"

    resp = await client.patch(
        url,
        json={"name": "North gate", "department": None, "location": None, "tags": None},
        headers=admin,
    )
    assert resp.status == 200, await resp.text()
    patched = await resp.json()
    assert patched["name"] == "North gate"
    assert patched["department"] == ""  # null clears an optional text field
    assert patched["location"] is None
    assert patched["tags"] == []
    # Fields the patch did not name are untouched.
    for same in ("carrier", "project", "category", "address", "profiles", "created_at"):
        assert patched[same] == created[same], same
    assert patched["rev"] == created["rev"] + 1
    assert patched["updated_at"] > created["updated_at"]

    resp = await client.patch(url, json={"tags": ["a", "b"], "stream_uri": None}, headers=admin)
    assert resp.status == 200, await resp.text()
    again = await resp.json()
    assert again["tags"] == ["a", "b"]
    assert again["profiles"] == []
    assert again["name"] == "North gate"

    fetched = await (await client.get(url, headers=admin)).json()
    assert fetched == again


async def test_patch_accepts_the_merge_patch_media_type(
    client: Client, token: TokenFactory
) -> None:
    admin = await token("admin")
    created = await create(client, admin, cam(12, tags=["a"]))
    resp = await client.patch(
        f"/api/v1/cameras/{created['id']}",
        data=b'{"tags": null, "carrier": "China Mobile"}',
        headers=admin | {"Content-Type": "application/merge-patch+json"},
    )
    assert resp.status == 200, await resp.text()
    patched = await resp.json()
    assert (patched["tags"], patched["carrier"]) == ([], "China Mobile")


async def test_patch_cannot_null_a_required_field(client: Client, token: TokenFactory) -> None:
    admin = await token("admin")
    created = await create(client, admin, cam(5))
    url = f"/api/v1/cameras/{created['id']}"
    resp = await client.patch(url, json={"name": None}, headers=admin)
    await assert_problem(resp, 422, "name")
    assert await (await client.get(url, headers=admin)).json() == created


async def test_patch_and_delete_unknown_camera_are_404(client: Client, token: TokenFactory) -> None:
    admin = await token("admin")
    resp = await client.patch(
        "/api/v1/cameras/governance.cam-nope", json={"name": "x"}, headers=admin
    )
    await assert_problem(resp, 404, None)
    resp = await client.delete("/api/v1/cameras/governance.cam-nope", headers=admin)
    await assert_problem(resp, 404, None)


async def test_delete_then_404_and_address_is_free_again(
    client: Client, token: TokenFactory
) -> None:
    admin = await token("admin")
    await create(client, admin, cam(6))
    resp = await client.delete("/api/v1/cameras/governance.cam-006", headers=admin)
    assert resp.status == 204
    assert await resp.read() == b""
    resp = await client.get("/api/v1/cameras/governance.cam-006", headers=admin)
    await assert_problem(resp, 404, None)
    resp = await client.delete("/api/v1/cameras/governance.cam-006", headers=admin)
    await assert_problem(resp, 404, None)
    assert await list_ids(client, admin) == []
    # The address it held can be registered again, by another camera.
    await create(client, admin, cam(6, id="governance.cam-006b"))
    assert await list_ids(client, admin) == ["cam-006b"]


# -- conflicts --------------------------------------------------------------------------------


async def test_duplicate_id_is_409(client: Client, token: TokenFactory) -> None:
    admin = await token("admin")
    first = await create(client, admin, cam(8))
    resp = await client.post(
        "/api/v1/cameras", json=cam(8, address="127.1.0.99", name="Other"), headers=admin
    )
    await assert_problem(resp, 409, "id")
    assert (
        await (await client.get("/api/v1/cameras/governance.cam-008", headers=admin)).json()
        == first
    )
    assert await list_ids(client, admin) == ["cam-008"]


async def test_duplicate_address_in_a_network_is_409(client: Client, token: TokenFactory) -> None:
    admin = await token("admin")
    await create(client, admin, cam(9))
    resp = await client.post(
        "/api/v1/cameras",
        json=cam(9, id="governance.cam-other", category="smart-security"),
        headers=admin,
    )
    problem = await assert_problem(resp, 409, "address")
    assert "cam-009" in problem["detail"]  # says who holds it
    assert await list_ids(client, admin) == ["cam-009"]


async def test_patch_onto_a_taken_address_is_409(client: Client, token: TokenFactory) -> None:
    admin = await token("admin")
    await create(client, admin, cam(10))
    second = await create(client, admin, cam(11))
    resp = await client.patch(
        "/api/v1/cameras/governance.cam-011", json={"address": "127.1.0.10"}, headers=admin
    )
    await assert_problem(resp, 409, "address")
    assert (
        await (await client.get("/api/v1/cameras/governance.cam-011", headers=admin)).json()
        == second
    )


# -- filters and paging -----------------------------------------------------------------------


async def test_filters(client: Client, token: TokenFactory) -> None:
    admin = await token("admin")
    await import_json(
        client,
        admin,
        [
            cam(1, "sharp-eyes", name="School gate", tags=["school"]),
            cam(2, "smart-security", location={"lat": 31.1, "lon": 121.3, "address": "Market St"}),
            cam(3, "road-blindspot"),
            cam(4, "public-security"),
            cam(5, "traffic", department="Town Safety Office", carrier="Unicom Dongjing"),
        ],
    )
    await set_status(client, "cam-002", "online")
    await set_status(client, "cam-004", "online")
    await set_status(client, "cam-005", "offline")

    assert await list_ids(client, admin, "?network=governance") == ["cam-001", "cam-002", "cam-003"]
    assert await list_ids(client, admin, "?network=police") == ["cam-004", "cam-005"]
    assert await list_ids(client, admin, "?network=gov-affairs") == []
    assert await list_ids(client, admin, "?status=online") == ["cam-002", "cam-004"]
    assert await list_ids(client, admin, "?status=unknown") == ["cam-001", "cam-003"]
    assert await list_ids(client, admin, "?category=traffic") == ["cam-005"]
    assert await list_ids(client, admin, "?department=Town%20Safety%20Office") == [
        "cam-003",
        "cam-005",
    ]
    assert await list_ids(client, admin, "?department=Police") == ["cam-004"]
    assert await list_ids(client, admin, "?carrier=Unicom%20Dongjing") == ["cam-005"]
    assert await list_ids(client, admin, "?carrier=Unicom") == []  # (exact, as department)
    # Filters combine.
    assert await list_ids(client, admin, "?network=police&status=online") == ["cam-004"]
    # q: case-insensitive substring of name, tags, location address, department, id, address.
    assert await list_ids(client, admin, "?q=SCHOOL%20gate") == ["cam-001"]
    assert await list_ids(client, admin, "?q=market") == ["cam-002"]
    assert await list_ids(client, admin, "?q=political-legal") == ["cam-001", "cam-002"]
    assert await list_ids(client, admin, "?q=127.2.0.5") == ["cam-005"]
    assert await list_ids(client, admin, "?q=no-such-thing") == []


async def test_bad_filter_values_are_422(client: Client, token: TokenFactory) -> None:
    admin = await token("admin")
    for query, field in [
        ("?status=broken", "status"),
        ("?limit=0", "limit"),
        ("?limit=many", "limit"),
        ("?network=Not%20A%20Slug", "network"),
        ("?colour=red", "colour"),
    ]:
        resp = await client.get(f"/api/v1/cameras{query}", headers=admin)
        await assert_problem(resp, 422, field)


async def test_pagination_walks_every_camera_once(client: Client, token: TokenFactory) -> None:
    admin = await token("admin")
    rows = [cam(n) for n in range(1, 21)] + [cam(n, "traffic") for n in range(21, 26)]
    created = await import_json(client, admin, rows)
    assert len(created) == 25

    seen: list[str] = []
    sizes: list[int] = []
    cursor: str | None = None
    for _ in range(10):
        query = "?limit=7" + (f"&cursor={cursor}" if cursor else "")
        body = await (await client.get(f"/api/v1/cameras{query}", headers=admin)).json()
        assert body["total"] == 25
        seen += [c["id"] for c in body["items"]]
        sizes.append(len(body["items"]))
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sizes == [7, 7, 7, 4]
    assert seen == sorted(created)  # in id order, no duplicates, no gaps

    # Paging a filtered list: the filter applies to every page and to `total`.
    seen = []
    cursor = None
    for _ in range(10):
        query = "?network=police&limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = await (await client.get(f"/api/v1/cameras{query}", headers=admin)).json()
        assert body["total"] == 5
        seen += [c["id"] for c in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"police.cam-{n:03d}" for n in range(21, 26)]


async def test_cursor_survives_a_deletion_of_a_seen_camera(
    client: Client, token: TokenFactory
) -> None:
    admin = await token("admin")
    await import_json(client, admin, [cam(n) for n in range(1, 7)])
    first = await (await client.get("/api/v1/cameras?limit=3", headers=admin)).json()
    assert [c["id"] for c in first["items"]] == [f"governance.cam-00{n}" for n in (1, 2, 3)]
    resp = await client.delete("/api/v1/cameras/governance.cam-002", headers=admin)
    assert resp.status == 204
    rest = await list_ids(client, admin, f"?limit=3&cursor={first['next_cursor']}")
    assert rest == ["cam-004", "cam-005", "cam-006"]


@pytest.mark.parametrize("cursor", ["not*base64", "_w", "A", "x" * 201])
async def test_bad_cursor_is_422(client: Client, token: TokenFactory, cursor: str) -> None:
    admin = await token("admin")
    resp = await client.get("/api/v1/cameras", params={"cursor": cursor}, headers=admin)
    await assert_problem(resp, 422, "cursor")


# -- conditional GET and gzip -----------------------------------------------------------------


async def test_etag_and_304(client: Client, token: TokenFactory) -> None:
    admin = await token("admin")
    await create(client, admin, cam(1))
    first = await client.get("/api/v1/cameras", headers=admin | IDENTITY)
    second = await client.get("/api/v1/cameras", headers=admin | IDENTITY)
    etag = first.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')  # strong
    assert second.headers["ETag"] == etag
    assert await first.read() == await second.read()

    cached = await client.get("/api/v1/cameras", headers=admin | IDENTITY | {"If-None-Match": etag})
    assert cached.status == 304
    assert await cached.read() == b""
    assert cached.headers["ETag"] == etag

    # A different filter is a different representation.
    other = await client.get(
        "/api/v1/cameras?network=police", headers=admin | IDENTITY | {"If-None-Match": etag}
    )
    assert other.status == 200
    assert other.headers["ETag"] != etag

    await create(client, admin, cam(2))
    changed = await client.get(
        "/api/v1/cameras", headers=admin | IDENTITY | {"If-None-Match": etag}
    )
    assert changed.status == 200
    assert changed.headers["ETag"] != etag
    assert len((await changed.json())["items"]) == 2


async def test_gzip_representation(client: Client, token: TokenFactory) -> None:
    admin = await token("admin")
    await import_json(client, admin, [cam(n) for n in range(1, 11)])
    plain = await client.get("/api/v1/cameras", headers=admin | IDENTITY)
    assert plain.status == 200
    assert "Content-Encoding" not in plain.headers
    plain_body = await plain.read()
    assert len(plain_body) > 1024  # large enough to be worth compressing

    url = client.make_url("/api/v1/cameras")
    async with aiohttp.ClientSession(auto_decompress=False) as raw:
        zipped = await raw.get(url, headers=admin | {"Accept-Encoding": "gzip"})
        assert zipped.status == 200
        assert zipped.headers["Content-Encoding"] == "gzip"
        assert "Accept-Encoding" in zipped.headers["Vary"]
        zipped_body = await zipped.read()
        assert len(zipped_body) < len(plain_body)
        assert gzip.decompress(zipped_body) == plain_body
        assert orjson.loads(gzip.decompress(zipped_body)) == orjson.loads(plain_body)

        gz_etag = zipped.headers["ETag"]
        assert gz_etag != plain.headers["ETag"]
        again = await raw.get(url, headers=admin | {"Accept-Encoding": "gzip"})
        assert again.headers["ETag"] == gz_etag
        await again.read()
        cached = await raw.get(
            url, headers=admin | {"Accept-Encoding": "gzip", "If-None-Match": gz_etag}
        )
        assert cached.status == 304
        assert await cached.read() == b""


# -- summary and networks ---------------------------------------------------------------------


async def _small_town(client: Client, admin: Headers) -> None:
    await import_json(
        client,
        admin,
        [
            cam(1, "sharp-eyes"),
            cam(2, "sharp-eyes"),
            cam(3, "road-blindspot"),
            cam(4, "traffic"),
            cam(5, "public-security"),
        ],
    )
    await set_status(client, "cam-001", "online")
    await set_status(client, "cam-004", "online")
    await set_status(client, "cam-005", "offline")


async def test_summary_counts(client: Client, token: TokenFactory) -> None:
    admin = await token("admin")
    await _small_town(client, admin)
    resp = await client.get("/api/v1/summary", headers=admin)
    assert resp.status == 200
    summary = await resp.json()
    assert summary["total"] == 5
    cells = {
        (c["network"], c["category"], c["status"]): c["count"]
        for c in summary["by_network_category_status"]
    }
    assert cells == {
        ("governance", "sharp-eyes", "online"): 1,
        ("governance", "sharp-eyes", "unknown"): 1,
        ("governance", "road-blindspot", "unknown"): 1,
        ("police", "traffic", "online"): 1,
        ("police", "public-security", "offline"): 1,
    }
    assert summary["by_department"] == {
        "Police": 1,
        "Political-Legal Committee": 2,
        "Town Safety Office": 1,
        "Traffic Police 2nd Brigade": 1,
    }
    assert summary["by_carrier"] == {"China Telecom": 4, "China Unicom": 1}
    assert summary["by_status"] == {"offline": 1, "online": 2, "unknown": 2}
    inventory = {row["category"]: row for row in summary["inventory"]}
    assert set(CATEGORY_NETWORK) <= set(inventory)
    assert sum(row["planned"] for row in inventory.values()) == 3308  # the town's table
    assert (inventory["sharp-eyes"]["planned"], inventory["sharp-eyes"]["registered"]) == (943, 2)
    assert inventory["sharp-eyes"]["online"] == 1
    assert inventory["sharp-eyes"]["category_name_zh"] == "雪亮工程"
    assert (inventory["traffic"]["planned"], inventory["traffic"]["registered"]) == (10, 1)
    assert (
        inventory["micro-checkpoint"]["planned"],
        inventory["micro-checkpoint"]["registered"],
    ) == (
        180,
        0,
    )
    assert inventory["road-blindspot"]["carrier"] == "China Unicom"


async def test_summary_only_counts_granted_networks(client: Client, token: TokenFactory) -> None:
    admin = await token("admin")
    await _small_town(client, admin)
    viewer = await token("viewer", ["governance"])
    summary = await (await client.get("/api/v1/summary", headers=viewer)).json()
    assert summary["total"] == 3
    assert {c["network"] for c in summary["by_network_category_status"]} == {"governance"}
    assert "Police" not in summary["by_department"]
    # Rows of the police categories are not shown; categories of no network are.
    assert "police" not in {row["network"] for row in summary["inventory"]}
    assert "sharp-eyes" in {row["category"] for row in summary["inventory"]}


async def test_summary_etag_changes_with_the_registry(client: Client, token: TokenFactory) -> None:
    admin = await token("admin")
    await create(client, admin, cam(1))
    first = await client.get("/api/v1/summary", headers=admin | IDENTITY)
    etag = first.headers["ETag"]
    cached = await client.get("/api/v1/summary", headers=admin | IDENTITY | {"If-None-Match": etag})
    assert cached.status == 304
    await create(client, admin, cam(2))
    fresh = await client.get("/api/v1/summary", headers=admin | IDENTITY | {"If-None-Match": etag})
    assert fresh.status == 200
    assert (await fresh.json())["total"] == 2


async def test_networks_list_counts(client: Client, token: TokenFactory) -> None:
    admin = await token("admin")
    await _small_town(client, admin)
    resp = await client.get("/api/v1/networks", headers=admin)
    assert resp.status == 200
    networks = {n["id"]: n for n in await resp.json()}
    assert list(networks) == ["governance", "police", "gov-affairs"]
    assert networks["governance"]["cameras"] == 3
    assert networks["governance"]["by_status"] == {"online": 1, "unknown": 2}
    assert networks["governance"]["name_zh"] == "综治网"
    assert networks["governance"]["cidrs"] == ["127.1.0.0/16"]
    assert networks["police"]["cameras"] == 2
    assert networks["police"]["by_status"] == {"online": 1, "offline": 1}
    assert networks["police"]["reason_required"] is True
    assert networks["gov-affairs"]["cameras"] == 0

    viewer = await token("viewer", ["police"])
    only = await (await client.get("/api/v1/networks", headers=viewer)).json()
    assert [n["id"] for n in only] == ["police"]


# -- OpenAPI ----------------------------------------------------------------------------------


async def test_openapi_document_lists_the_api(client: Client) -> None:
    resp = await client.get("/api/v1/openapi.json")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    doc = await resp.json()
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    expected = {
        "/api/v1/cameras": {"get", "post"},
        "/api/v1/cameras/{id}": {"get", "patch", "delete"},
        "/api/v1/cameras/import": {"post"},
        "/api/v1/summary": {"get"},
        "/api/v1/networks": {"get"},
        "/api/v1/audit": {"get"},
    }
    for path, methods in expected.items():
        assert path in paths, path
        assert methods <= set(paths[path]), (path, set(paths[path]))
    listing = paths["/api/v1/cameras"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {
        "network",
        "status",
        "category",
        "department",
        "q",
        "limit",
        "cursor",
    }
    create_schema = paths["/api/v1/cameras"]["post"]["requestBody"]["content"]["application/json"]
    assert create_schema["schema"]["$ref"].endswith("/CameraCreate")
    assert "CameraCreate" in doc["components"]["schemas"]
    assert "201" in paths["/api/v1/cameras"]["post"]["responses"]
    patch_body = paths["/api/v1/cameras/{id}"]["patch"]["requestBody"]["content"]
    assert patch_body["application/merge-patch+json"]["schema"]["$ref"].endswith("/CameraPatch")
