"""The OpenAPI document says what the server does (issue 7, finding 14): generated from the same
declarations that route and check requests, and each disagreement found (by hand or by the fuzz
in test_api_fuzz.py) pinned here with the exact answer a user gets."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from gateway.api.endpoint import route_path, shadowed_literals
from gateway.api.openapi import problem_statuses
from gateway.app import ENDPOINTS
from gateway.models import (
    NO_CONTROL_PATTERN,
    NOT_BLANK_PATTERN,
    STREAM_CURSOR_PATTERN,
    AuditQueryParams,
    CameraQuery,
    Name,
    SnapshotQuery,
    Text100,
    iso_datetime,
    stripped_text_pattern,
)
from tests.conftest import Headers, TokenFactory

Client = TestClient[web.Request, web.Application]
PROBLEM = "application/problem+json"


@pytest.fixture
async def doc(client: Client) -> dict[str, Any]:
    resp = await client.get("/api/v1/openapi.json")
    assert resp.status == 200
    data: dict[str, Any] = await resp.json()
    return data


@pytest.fixture
async def admin(client: Client, token: TokenFactory) -> AsyncIterator[Headers]:
    headers = await token("admin")
    body = {
        "id": "governance.doc-1",
        "network": "governance",
        "name": "Doc 1",
        "category": "sharp-eyes",
        "address": "127.1.253.1",
    }
    assert (await client.post("/api/v1/cameras", json=body, headers=headers)).status == 201
    yield headers


def op(doc: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    found: dict[str, Any] = doc["paths"][path][method.lower()]
    return found


def param(doc: dict[str, Any], method: str, path: str, name: str) -> dict[str, Any]:
    return next(p for p in op(doc, method, path)["parameters"] if p["name"] == name)


async def problem(resp: Any, status: int, field: str | None = None) -> dict[str, Any]:
    text = await resp.text()
    assert resp.status == status, text
    assert resp.content_type == PROBLEM
    body: dict[str, Any] = orjson.loads(text)
    if field is not None:
        assert body["field"] == field, body
    return body


# -- the shape of the answers ---------------------------------------------------------------------


async def test_networks_is_documented_and_answered_as_an_array(
    client: Client, doc: dict[str, Any], token: TokenFactory
) -> None:
    ok = op(doc, "GET", "/api/v1/networks")["responses"]["200"]
    schema = ok["content"]["application/json"]["schema"]
    assert schema == {"type": "array", "items": {"$ref": "#/components/schemas/NetworkInfo"}}
    resp = await client.get("/api/v1/networks", headers=await token("viewer", ["police"]))
    body = await resp.json()
    assert [n["id"] for n in body] == ["police"]


async def test_every_status_an_operation_can_answer_is_documented(doc: dict[str, Any]) -> None:
    def statuses(method: str, path: str) -> list[str]:
        return sorted(op(doc, method, path)["responses"])

    assert statuses("GET", "/api/v1/cameras") == ["200", "304", "401", "403", "422", "500", "503"]
    assert statuses("GET", "/api/v1/summary") == ["200", "304", "401", "403", "500", "503"]
    assert statuses("GET", "/api/v1/cameras/{id}/snapshot") == [
        *("200", "401", "403", "404", "422", "429", "500", "502", "503", "504"),
    ]
    assert statuses("PATCH", "/api/v1/cameras/{id}") == [
        *("200", "401", "403", "404", "409", "413", "415", "422", "500", "503"),
    ]
    assert statuses("GET", "/api/v1/networks") == ["200", "401", "500", "503"]  # every role
    assert statuses("GET", "/readyz") == ["200", "500", "503"]
    for path, methods in doc["paths"].items():
        for method, operation in methods.items():
            assert "default" not in operation["responses"], (method, path)
    # Problems are problem+json; 401 says how to authenticate, 429/503 when to come back.
    responses = doc["components"]["responses"]
    assert set(responses["Problem404"]["content"]) == {PROBLEM}
    assert "WWW-Authenticate" in responses["Problem401"]["headers"]
    assert "Retry-After" in responses["Problem429"]["headers"]
    assert "Retry-After" in responses["Problem503"]["headers"]
    readyz = op(doc, "GET", "/readyz")["responses"]["503"]["content"]["application/json"]
    assert readyz["schema"] == {"$ref": "#/components/schemas/Health"}  # not a problem


async def test_media_types_are_the_ones_served(doc: dict[str, Any]) -> None:
    snapshot = op(doc, "GET", "/api/v1/cameras/{id}/snapshot")["responses"]["200"]
    assert set(snapshot["content"]) == {"image/jpeg"}
    metrics = op(doc, "GET", "/metrics")["responses"]["200"]["content"]
    assert metrics == {"text/plain": {"schema": {"type": "string"}}}
    listed = op(doc, "GET", "/api/v1/cameras")["responses"]
    assert "ETag" in listed["200"]["headers"] and "ETag" in listed["304"]["headers"]
    assert "content" not in listed["304"]
    patch = op(doc, "PATCH", "/api/v1/cameras/{id}")["requestBody"]["content"]
    assert set(patch) == {"application/json", "application/merge-patch+json"}
    imported = op(doc, "POST", "/api/v1/cameras/import")["requestBody"]["content"]
    assert imported["text/csv"] == {"schema": {"type": "string"}}
    assert imported["application/csv"] == {"schema": {"type": "string"}}
    rows = imported["application/json"]["schema"]
    assert rows["type"] == "array"
    assert rows["items"]["anyOf"][0] == {"$ref": "#/components/schemas/CameraCreate"}
    created = op(doc, "POST", "/api/v1/cameras")["responses"]["201"]
    assert "Location" in created["headers"]


async def test_non_admins_records_are_shared_cameras_with_the_record_rules(
    doc: dict[str, Any],
) -> None:
    one = op(doc, "GET", "/api/v1/cameras/{id}")["responses"]["200"]["content"]
    assert one["application/json"]["schema"] == {"$ref": "#/components/schemas/SharedCamera"}
    shared = doc["components"]["schemas"]["SharedCamera"]
    assert shared["required"] == ["id", "network"]  # a network may share nothing else
    address = shared["properties"]["address"]["anyOf"][0]
    assert address == {"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}
    name = shared["properties"]["name"]["anyOf"][0]
    assert name["pattern"] == stripped_text_pattern(200, 1)


def _keywords(node: Any, found: set[str], in_properties: bool = False) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if not in_properties:
                found.add(key)
            containers = ("properties", "patternProperties", "$defs", "schemas", "headers")
            _keywords(value, found, key in containers)
    elif isinstance(node, list):
        for item in node:
            _keywords(item, found)


async def test_schemas_use_json_schema_keywords_only(doc: dict[str, Any]) -> None:
    """Width bounds were once written as `ge`/`le` (pydantic's names): no validator reads
    those, so the document allowed any width."""
    found: set[str] = set()
    _keywords(doc["components"]["schemas"], found, in_properties=True)
    for methods in doc["paths"].values():
        for operation in methods.values():
            for p in operation.get("parameters", []):
                _keywords(p["schema"], found)
    allowed = {
        *(
            "type",
            "properties",
            "required",
            "additionalProperties",
            "items",
            "anyOf",
            "oneOf",
            "not",
        ),
        *("enum", "const", "pattern", "format", "minimum", "maximum", "minLength", "maxLength"),
        *("minItems", "maxItems", "default", "title", "description", "$ref"),
        *("patternProperties", "writeOnly", "format"),
    }
    assert found <= allowed, found - allowed
    width = param(doc, "GET", "/api/v1/cameras/{id}/snapshot", "width")["schema"]
    assert (width["minimum"], width["maximum"]) == (16, 7680)


async def test_query_parameters_are_never_null_and_unknown_ones_are_refused(
    client: Client, admin: Headers, doc: dict[str, Any]
) -> None:
    for name in ("network", "status", "q", "cursor"):
        schema = param(doc, "GET", "/api/v1/cameras", name)["schema"]
        assert "anyOf" not in schema and "default" not in schema, (name, schema)
    listed = op(doc, "GET", "/api/v1/cameras")
    assert "not listed here are refused (422)" in listed["description"]
    resp = await client.get("/api/v1/cameras?colour=red", headers=admin)
    await problem(resp, 422, "colour")


# -- routes and path parameters -------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE", "PUT"])
async def test_a_405_on_the_import_route_names_only_its_own_method(
    client: Client, admin: Headers, method: str
) -> None:
    """/cameras/import used to match /cameras/{id} too: GET answered 404 for "camera
    import", and a PUT's 405 advertised GET, PATCH, DELETE of the camera route."""
    resp = await client.request(method, "/api/v1/cameras/import", headers=admin)
    body = await problem(resp, 405)
    assert body["status"] == 405
    assert resp.headers["Allow"] == "POST"


async def test_ids_that_only_begin_like_the_import_route_are_camera_ids(
    client: Client, admin: Headers, token: TokenFactory
) -> None:
    await problem(await client.get("/api/v1/cameras/importer", headers=admin), 404)
    operator = await token("operator")
    resp = await client.get("/api/v1/cameras/import/snapshot", headers=operator)
    await problem(resp, 404)  # a camera called "import" (there is none), not the import route


def test_route_regex_excludes_exactly_the_sibling_literals() -> None:
    paths = [ep.path for ep in ENDPOINTS]
    assert shadowed_literals("/api/v1/cameras/{id}", paths) == {"id": ("import",)}
    assert shadowed_literals("/api/v1/cameras/{id}/snapshot", paths) == {}
    assert shadowed_literals("/api/v1/jobs/{id}", paths) == {}
    pattern = route_path("/api/v1/cameras/{id}", paths).split("{id:", 1)[1][:-1]
    assert not re.fullmatch(pattern, "import")
    assert re.fullmatch(pattern, "import2") and re.fullmatch(pattern, "governance.import")


async def test_path_parameters_carry_the_server_patterns(doc: dict[str, Any]) -> None:
    camera = param(doc, "GET", "/api/v1/cameras/{id}", "id")["schema"]
    assert camera == {
        "type": "string",
        "pattern": "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$",
        "not": {"enum": ["import"]},
    }
    network = param(doc, "POST", "/api/v1/networks/{id}/discover", "id")["schema"]
    assert network["pattern"] == "^[a-z0-9][a-z0-9-]{0,31}$"
    job = param(doc, "GET", "/api/v1/jobs/{id}", "id")["schema"]
    assert job["pattern"] == "^job-[0-9a-f]{12}$"


def test_problem_statuses_follow_from_the_declarations() -> None:
    by_action = {ep.action: ep for ep in ENDPOINTS}
    assert problem_statuses(by_action["health"]) == [500]
    assert problem_statuses(by_action["metrics"]) == [401, 500, 503]  # every role may
    assert 403 in problem_statuses(by_action["audit.read"])  # only auditors may
    assert {413, 415, 422} <= set(problem_statuses(by_action["camera.import"]))


# -- query values: exactly as strict as the document ----------------------------------------------


@pytest.mark.parametrize("limit", ["+5", " 5", "5.0", "5_0", "٥", ""])
async def test_an_integer_query_value_is_decimal_digits(
    client: Client, admin: Headers, limit: str
) -> None:
    """pydantic also took `+5`, ` 5`, `5.0` and `5_0`, none of them an `integer` as sent."""
    resp = await client.get("/api/v1/cameras", params={"limit": limit}, headers=admin)
    body = await problem(resp, 422, "limit")
    assert "decimal digits" in body["detail"] or "valid integer" in body["detail"]
    assert (await client.get("/api/v1/cameras?limit=0005", headers=admin)).status == 200


async def test_query_text_is_measured_as_sent_and_refuses_control_characters(
    client: Client, admin: Headers, doc: dict[str, Any]
) -> None:
    """`q` was stripped before its length was checked, so the document's maxLength 100 was
    stricter than the server; a leading newline was stripped and accepted, an inner one not."""
    padded = "  " + "x" * 100
    resp = await client.get("/api/v1/cameras", params={"q": padded}, headers=admin)
    await problem(resp, 422, "q")
    resp = await client.get("/api/v1/cameras", params={"q": "\ngate"}, headers=admin)
    body = await problem(resp, 422, "q")
    assert body["detail"] == "`q`: Value error, must not contain control characters"
    resp = await client.get("/api/v1/cameras", params={"q": " Doc "}, headers=admin)
    assert [c["id"] for c in (await resp.json())["items"]] == ["governance.doc-1"]  # trimmed
    q = param(doc, "GET", "/api/v1/cameras", "q")["schema"]
    assert q == {"type": "string", "maxLength": 100, "pattern": NO_CONTROL_PATTERN}


async def test_a_blank_snapshot_reason_is_refused(
    client: Client, admin: Headers, doc: dict[str, Any]
) -> None:
    """A reason of spaces passed as "at least 1 character" in the document; the server took
    it as empty after stripping and answered a 422 the document did not predict."""
    url = "/api/v1/cameras/governance.doc-1/snapshot"
    resp = await client.get(url, params={"reason": " \u3000 "}, headers=admin)
    body = await problem(resp, 422, "reason")
    assert body["detail"] == "`reason`: Value error, must not be blank"
    reason = param(doc, "GET", "/api/v1/cameras/{id}/snapshot", "reason")["schema"]
    assert reason["pattern"] == NOT_BLANK_PATTERN


@pytest.mark.parametrize(
    ("since", "status"),
    [
        ("2024-05-01t08:00:00z", 200),  # RFC 3339 allows lower case; was 422
        ("2024-05-01T08:00:00.123456789+08:00", 200),
        ("1970-01-01T00:30:00+01:00", 200),  # before the epoch in UTC: from the start
        ("2999-12-31T23:59:59-05:00", 200),
        ("20240501T080000Z", 422),  # ISO 8601 basic format, not a date-time; was 200
        ("2024-05-01T08Z", 422),  # was 200
        ("2024-W18-3T08:00:00Z", 422),  # was 200
        ("2024-05-01T08:00:00+0800", 422),  # was 200
        ("2024-02-30T08:00:00Z", 422),
        ("2024-05-01T23:59:60Z", 422),  # leap seconds are not taken (documented)
        ("1969-12-31T23:59:59Z", 422),
        ("3000-01-01T00:00:00Z", 422),
    ],
)
async def test_since_is_an_rfc3339_date_time(
    client: Client, token: TokenFactory, since: str, status: int
) -> None:
    auditor = await token("auditor")
    resp = await client.get("/api/v1/audit", params={"since": since}, headers=auditor)
    if status == 200:
        assert resp.status == 200, await resp.text()
    else:
        await problem(resp, 422, "since")


@pytest.mark.parametrize("cursor", ["01-1", "1-01", "١-1", "0-0", "18446744073709551616-1"])
async def test_an_audit_cursor_is_a_stream_id_as_redis_writes_it(
    client: Client, token: TokenFactory, cursor: str
) -> None:
    """`\\d` in the server's pattern took any Unicode digit (Arabic-Indic `1-1` reached Redis)."""
    auditor = await token("auditor")
    resp = await client.get("/api/v1/audit", params={"cursor": cursor}, headers=auditor)
    await problem(resp, 422, "cursor")


async def test_audit_actor_refuses_control_characters(client: Client, token: TokenFactory) -> None:
    auditor = await token("auditor")
    resp = await client.get("/api/v1/audit", params={"actor": "bob\x01"}, headers=auditor)
    await problem(resp, 422, "actor")


async def test_a_list_cursor_of_an_impossible_length_is_refused_by_the_document_too(
    client: Client, admin: Headers, doc: dict[str, Any]
) -> None:
    pattern = param(doc, "GET", "/api/v1/cameras", "cursor")["schema"]["pattern"]
    assert not re.search(pattern, "A") and not re.search(pattern, "ABCDE")
    assert re.search(pattern, "AB") and re.search(pattern, "ABCD")
    await problem(await client.get("/api/v1/cameras?cursor=ABCDE", headers=admin), 422, "cursor")


# -- bodies ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"location": {"lat": "12.5", "lon": 120}}, "location.lat"),  # was stored as 12.5
        ({"location": {"lat": 12.5, "lon": True}}, "location.lon"),  # was stored as 1.0
        ({"address": 2130836737}, "address"),  # 127.1.253.1 as a number; was accepted
        ({"address": "fe80::1%eth0"}, "address"),
        ({"tags": ["north gate"]}, "tags[0]"),  # no spaces (tags in any script are fine)
    ],
)
async def test_body_values_are_the_json_types_the_document_names(
    client: Client, admin: Headers, change: dict[str, Any], field: str
) -> None:
    resp = await client.patch("/api/v1/cameras/governance.doc-1", json=change, headers=admin)
    await problem(resp, 422, field)


async def test_tags_may_be_written_in_any_script(
    client: Client, admin: Headers, doc: dict[str, Any]
) -> None:
    resp = await client.patch(
        "/api/v1/cameras/governance.doc-1", json={"tags": ["学校", "north-gate"]}, headers=admin
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["tags"] == ["学校", "north-gate"]
    tags = doc["components"]["schemas"]["CameraPatch"]["properties"]["tags"]["anyOf"]
    pattern = next(t for t in tags if t.get("type") == "array")["items"]["pattern"]
    assert re.search(pattern, "学校") and not re.search(pattern, "north gate")


async def test_a_patch_may_not_null_what_every_record_has(doc: dict[str, Any]) -> None:
    patch = doc["components"]["schemas"]["CameraPatch"]["properties"]
    for field in ("name", "category", "address"):  # records.patch_errors refuses null (422)
        assert "anyOf" not in patch[field] or {"type": "null"} not in patch[field]["anyOf"]
        assert "default" not in patch[field]
    assert {"type": "null"} in patch["department"]["anyOf"]  # null clears this one


# -- each documented pattern is its validator -----------------------------------------------------

_SAMPLES = [*map(chr, range(0x250)), *"\u0085\u00a0\u1680\u2000\u200a\u200b\u2028\u2029"]
_SAMPLES += [*"\u202f\u205f\u3000\ufeff\ud7ff\ue000\uffff", "\U0001f600"]


def _accepts(model: type[BaseModel], field: str, value: str) -> bool:
    try:
        model.model_validate({field: value})
    except ValidationError:
        return False
    return True


class _Text100(BaseModel):
    v: Text100


class _Name(BaseModel):
    v: Name


@pytest.mark.parametrize(
    ("model", "field", "pattern", "bound"),
    [
        (CameraQuery, "q", NO_CONTROL_PATTERN, 100),
        (SnapshotQuery, "reason", NOT_BLANK_PATTERN, 200),
        (AuditQueryParams, "actor", NO_CONTROL_PATTERN, 200),
        (_Text100, "v", stripped_text_pattern(100), None),
        (_Name, "v", stripped_text_pattern(200, 1), None),
    ],
)
def test_text_patterns_agree_with_the_validators(
    model: type[BaseModel], field: str, pattern: str, bound: int | None
) -> None:
    """Every character alone, between letters and at either end, and lengths at the bound."""
    regex = re.compile(pattern)
    for ch in _SAMPLES:
        for value in (ch, f"a{ch}b", f"{ch}ab", f"ab{ch}", f"{ch}{'x' * 99}{ch}"):
            # ECMA-262's `$` is the end of the text; Python's also matches before a final \n.
            found = regex.search(value)
            fits = found is not None and found.end() == len(value)
            fits = fits and (bound is None or len(value) <= bound)
            assert fits == _accepts(model, field, value), (model.__name__, repr(value))


@settings(max_examples=300, deadline=None, database=None)
@given(st.from_regex(r"\A[0-9]{1,21}-[0-9]{1,21}\Z") | st.text(max_size=30))
def test_the_audit_cursor_pattern_is_its_validator(cursor: str) -> None:
    fits = re.fullmatch(STREAM_CURSOR_PATTERN, cursor) is not None
    assert fits == _accepts(AuditQueryParams, "cursor", cursor)


@settings(max_examples=300, deadline=None, database=None)
@given(
    st.datetimes(
        min_value=datetime(1970, 1, 2),
        max_value=datetime(2999, 12, 30),
    ),
    st.sampled_from(["Z", "z", "+08:00", "-05:30", "+00:00"]),
    st.sampled_from(["", ".5", ".123456", ".123456789"]),
)
def test_every_rfc3339_date_time_in_the_documented_years_is_taken(
    when: datetime, zone: str, fraction: str
) -> None:
    text = when.strftime("%Y-%m-%dT%H:%M:%S") + fraction + zone
    assert iso_datetime(text).year in (when.year - 1, when.year, when.year + 1)
