"""Bad input of every kind gets a clear application/problem+json 4xx naming the failing field,
never leaks a secret it carried, and leaves the registry exactly as it was."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.conftest import Headers, TokenFactory

Client = TestClient[web.Request, web.Application]

PROBLEM = "application/problem+json"
IDENTITY = {"Accept-Encoding": "identity"}
JSON = {"Content-Type": "application/json"}
TEN_MB = 10 * 1024 * 1024
PASSWORD = "Pa55-w0rd-XYZ"

GOOD = {
    "network": "governance",
    "name": "Gate 1",
    "category": "sharp-eyes",
    "address": "127.1.0.10",
}


def body(**over: Any) -> bytes:
    data = {k: v for k, v in (GOOD | over).items() if v is not ...}
    return orjson.dumps(data)


async def list_body(client: Client, admin: Headers) -> bytes:
    resp = await client.get("/api/v1/cameras", headers=admin | IDENTITY)
    assert resp.status == 200
    return await resp.read()


@pytest.fixture
async def admin(client: Client, token: TokenFactory) -> AsyncIterator[Headers]:
    """An admin, and one camera already registered (which no bad request may change)."""
    headers = await token("admin")
    seed = {**GOOD, "id": "governance.seed", "address": "127.1.0.1", "tags": ["seed"]}
    resp = await client.post("/api/v1/cameras", json=seed, headers=headers)
    assert resp.status == 201
    before = await list_body(client, headers)
    yield headers
    assert await list_body(client, headers) == before, "a refused request changed the registry"


async def problem_of(resp: Any, status: int, field: str | None) -> dict[str, Any]:
    text = await resp.text()
    assert resp.status == status, text
    assert resp.content_type == PROBLEM
    problem: dict[str, Any] = orjson.loads(text)
    assert problem["status"] == status
    assert problem["title"]
    assert problem["detail"]
    assert problem["type"].startswith("urn:camgw:problem:")
    if field is not None:
        assert problem.get("field") == field, problem
        assert field in [e["field"] for e in problem.get("errors", [])] or status != 422
    return problem


CREATE_CASES: list[tuple[str, bytes, str]] = [
    ("malformed JSON", b'{"network": "governance", "name": ', "body"),
    ("not an object", b'["governance"]', "body"),
    ("JSON null", b"null", "body"),
    ("name of the wrong type", body(name=5), "name"),
    ("tags of the wrong type", body(tags="a,b"), "tags"),
    ("address not an IP", body(address="camera-1.local"), "address"),
    ("unknown field", body(owner="someone"), "owner"),
    ("missing required field", body(category=...), "category"),
    ("empty name", body(name="   "), "name"),
    ("name too long", body(name="x" * 201), "name"),
    ("address outside the network's CIDRs", body(address="10.0.0.10"), "address"),
    ("address of another network", body(address="127.2.0.10"), "address"),
    ("IPv6 address on an IPv4 network", body(address="::1"), "address"),
    ("unknown network", body(network="internet"), "network"),
    ("network id not a slug", body(network="Police Net"), "network"),
    ("unknown category", body(category="drone"), "category"),
    ("category of another network", body(category="traffic"), "category"),
    ("bell character in the name", body(name="Gate\x07 1"), "name"),
    ("line break in the name", body(name="Gate\n1"), "name"),
    ("escape in the department", body(department="\x1b[31mred"), "department"),
    ("latitude out of range", body(location={"lat": 91, "lon": 121.3}), "location.lat"),
    ("longitude out of range", body(location={"lat": 31, "lon": -181}), "location.lon"),
    ("latitude missing", body(location={"lon": 121.3}), "location.lat"),
    ("bad tag", body(tags=["ok", "not ok"]), "tags[1]"),
    ("id with a slash", body(id="a/b"), "id"),
    ("stream URI of an unknown scheme", body(stream_uri="ftp://127.1.0.10/x"), "stream_uri"),
    ("stream URI host outside the CIDRs", body(stream_uri="rtsp://10.0.0.1/x"), "stream_uri"),
    ("snapshot URI by host name", body(snapshot_uri="http://cam.local/s.jpg"), "snapshot_uri"),
    ("credentials without a password", body(credentials={"username": "a"}), "credentials.password"),
]


@pytest.mark.parametrize(
    ("raw", "field"), [c[1:] for c in CREATE_CASES], ids=[c[0] for c in CREATE_CASES]
)
async def test_bad_create_is_refused(
    client: Client, admin: Headers, raw: bytes, field: str
) -> None:
    resp = await client.post("/api/v1/cameras", data=raw, headers=admin | JSON)
    await problem_of(resp, 422, field)


@pytest.mark.parametrize(
    "uri",
    [
        f"rtsp://admin:{PASSWORD}@127.1.0.10:554/Streaming/Channels/101",
        f"rtsp://admin:{PASSWORD}@[::1]:554/live",
        f"http://admin:{PASSWORD}@127.1.0.10/ISAPI/Streaming/channels/101/picture",
        f"rtsp://{PASSWORD}@127.1.0.10/live",
    ],
)
@pytest.mark.parametrize("field", ["stream_uri", "snapshot_uri"])
async def test_credentials_in_a_uri_are_refused_without_echoing_them(
    client: Client, admin: Headers, token: TokenFactory, uri: str, field: str
) -> None:
    resp = await client.post("/api/v1/cameras", data=body(**{field: uri}), headers=admin | JSON)
    problem = await problem_of(resp, 422, field)
    assert PASSWORD not in await resp.text()
    assert all(PASSWORD not in value for value in resp.headers.values())
    assert "credentials" in problem["detail"]
    # Nor does the refusal's audit entry hold it.
    auditor = await token("auditor")
    trail = await client.get("/api/v1/audit", headers=auditor)
    assert trail.status == 200
    assert PASSWORD not in await trail.text()


async def test_a_secret_in_the_credentials_field_is_not_echoed_on_error(
    client: Client, admin: Headers
) -> None:
    creds = {"username": "admin", "password": PASSWORD, "extra": 1}
    resp = await client.post("/api/v1/cameras", data=body(credentials=creds), headers=admin | JSON)
    await problem_of(resp, 422, "credentials.extra")
    assert PASSWORD not in await resp.text()


PATCH_CASES: list[tuple[str, bytes, str]] = [
    ("malformed JSON", b"{", "body"),
    ("unknown field", b'{"colour": "red"}', "colour"),
    ("network cannot be patched", b'{"network": "police"}', "network"),
    ("wrong type", b'{"tags": "a"}', "tags"),
    ("name may not be null", b'{"name": null}', "name"),
    ("address may not be null", b'{"address": null}', "address"),
    ("address outside the CIDRs", b'{"address": "127.3.0.1"}', "address"),
    ("category of another network", b'{"category": "micro-checkpoint"}', "category"),
    ("control character", b'{"carrier": "China\\u0000Telecom"}', "carrier"),
    ("latitude out of range", b'{"location": {"lat": -90.5, "lon": 0}}', "location.lat"),
    ("credentials in the URI", f'{{"stream_uri": "rtsp://u:{PASSWORD}@127.1.0.1/"}}'.encode(),
     "stream_uri"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "field"), [c[1:] for c in PATCH_CASES], ids=[c[0] for c in PATCH_CASES]
)
async def test_bad_patch_is_refused(client: Client, admin: Headers, raw: bytes, field: str) -> None:
    resp = await client.patch("/api/v1/cameras/governance.seed", data=raw, headers=admin | JSON)
    await problem_of(resp, 422, field)
    assert PASSWORD not in await resp.text()


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/api/v1/cameras", "text/plain"),
        ("/api/v1/cameras", "application/x-www-form-urlencoded"),
        ("/api/v1/cameras", "text/csv"),
        ("/api/v1/cameras/import", "application/xml"),
        ("/api/v1/cameras/import", "multipart/form-data; boundary=x"),
    ],
)
async def test_wrong_content_type_is_415(
    client: Client, admin: Headers, path: str, content_type: str
) -> None:
    resp = await client.post(path, data=body(), headers=admin | {"Content-Type": content_type})
    problem = await problem_of(resp, 415, None)
    assert "application/json" in problem["detail"]  # says what to send instead


async def test_patch_with_wrong_content_type_is_415(client: Client, admin: Headers) -> None:
    resp = await client.patch(
        "/api/v1/cameras/governance.seed",
        data=b"name=x",
        headers=admin | {"Content-Type": "text/plain"},
    )
    await problem_of(resp, 415, None)


@pytest.mark.parametrize(
    ("path", "content_type"),
    [("/api/v1/cameras", "application/json"), ("/api/v1/cameras/import", "text/csv")],
)
async def test_ten_megabyte_body_is_413(
    client: Client, admin: Headers, path: str, content_type: str
) -> None:
    big = io.BytesIO(b"[" + b" " * TEN_MB + b"]")
    resp = await client.post(path, data=big, headers=admin | {"Content-Type": content_type})
    assert resp.request_info.headers["Content-Length"] == str(TEN_MB + 2)
    await problem_of(resp, 413, None)


async def test_ten_megabyte_chunked_body_is_413(client: Client, admin: Headers) -> None:
    """No Content-Length to refuse early on: the gateway stops reading at its limit."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "'
        for _ in range(TEN_MB // 65536):
            yield b"x" * 65536
        yield b'"}'

    resp = await client.post(
        "/api/v1/cameras/import",
        data=chunks(),
        headers=admin | {"Content-Type": "application/json"},
    )
    await problem_of(resp, 413, None)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("network=governance&network=police", "network"),
        ("limit=5&limit=6", "limit"),
        ("q=a&q=a", "q"),
    ],
)
async def test_duplicate_query_parameter_is_422(
    client: Client, admin: Headers, query: str, field: str
) -> None:
    resp = await client.get(f"/api/v1/cameras?{query}", headers=admin)
    problem = await problem_of(resp, 422, field)
    assert "once" in problem["detail"]


async def test_control_characters_in_query_are_422(client: Client, admin: Headers) -> None:
    resp = await client.get("/api/v1/cameras", params={"q": "gate\x00"}, headers=admin)
    await problem_of(resp, 422, "q")


async def test_import_with_only_bad_rows_changes_nothing(client: Client, admin: Headers) -> None:
    rows = [
        {**GOOD, "address": "10.0.0.1"},
        {**GOOD, "address": "127.1.0.1"},  # the seed camera's address
        {**GOOD, "id": "governance.seed", "address": "127.1.0.2"},  # the seed camera's id
    ]
    resp = await client.post("/api/v1/cameras/import", json=rows, headers=admin)
    assert resp.status == 200
    result = await resp.json()
    assert (result["created"], result["failed"]) == (0, 3)
    assert [(e["row"], e["field"]) for e in result["errors"]] == [
        (1, "address"),
        (2, "address"),
        (3, "id"),
    ]


async def test_json_import_row_with_odd_keys(client: Client, admin: Headers) -> None:
    """A row's keys are the caller's: none of them may confuse the importer into a 500."""
    rows = [{**GOOD, "_extra": 5}, {**GOOD, "_extra": "x", "address": "127.1.0.3"}]
    resp = await client.post("/api/v1/cameras/import", json=rows, headers=admin)
    assert resp.status == 200, await resp.text()
    result = await resp.json()
    assert (result["created"], result["failed"]) == (0, 2)
    assert [e["field"] for e in result["errors"]] == ["_extra", "_extra"]
