"""/api/v1/openapi.json, generated from the endpoint declarations and their pydantic models.

Nothing here is written by hand per operation: the routes, their parameters (with the patterns
and bounds the server checks), the bodies and their media types, and every status an operation
can answer come from the `Endpoint` declarations (api/*.py) that also route and guard the
requests. Which problem statuses an operation can answer follows from what it declares:

- a token (`permission`): 401; 403 when some role lacks the permission; 503 (token lookup)
- a query model: 422 (a value out of bounds, an unknown or repeated parameter)
- a body: 413, 415, 422
- `errors`: what its handler answers besides (404, 409, 429, 502, 504 ...)
- every operation: 500 (nothing foreseen; the body says only to quote the X-Request-Id)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from ..errors import PROBLEM_JSON
from ..models import Role
from ..policy import ROLE_PERMISSIONS
from .endpoint import Endpoint, shadowed_literals

_REF = "#/components/schemas/{model}"

_DESCRIPTIONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "Done; no content",
    304: "Not modified: the representation named in If-None-Match is still current",
    401: "No token, or not a valid one (unknown, malformed or revoked)",
    403: "The token's role may not do this, or the network is not granted to it",
    404: "Not found (also for what exists in a network the token is not granted)",
    409: "Conflict: a duplicate id or address, or a concurrent change",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Invalid input; `field` names the first failing field",
    429: "Rate limit reached; Retry-After says when to come back",
    500: "Internal error; quote the X-Request-Id",
    502: "The camera answered wrongly",
    503: "Unavailable (the registry, or a camera's circuit is open); Retry-After",
    504: "The camera did not answer in time",
}

_STRING = {"schema": {"type": "string"}}
_HEADERS: dict[str, Any] = {
    "X-Request-Id": {
        "description": "The request's id (the client's, if it sent a sane one)",
        "required": True,
        **_STRING,
    },
    "WWW-Authenticate": {"description": "`Bearer`", "required": True, **_STRING},
    "Retry-After": {"description": "Seconds", "required": True, **_STRING},
    "Location": {"description": "The new resource", "required": True, **_STRING},
    "ETag": {"description": "Strong validator of this representation", "required": True, **_STRING},
}
_PROBLEM_HEADERS = {401: ("WWW-Authenticate",), 429: ("Retry-After",), 503: ("Retry-After",)}


def _headers(*names: str) -> dict[str, Any]:
    return {n: {"$ref": f"#/components/headers/{n}"} for n in ("X-Request-Id", *names)}


_PROBLEM_SCHEMA = {
    "type": "object",
    "description": "Problem details (RFC 9457); members beyond these may be added",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "field": {"type": "string", "description": "First failing field (422, some 403 and 409)"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
        "retry_after": {"type": "integer", "description": "Seconds (429, 503)"},
    },
}

_QUERY_NOTE = "Query parameters not listed here are refused (422), and so is one given twice."


def problem_statuses(ep: Endpoint) -> list[int]:
    """Every problem status the endpoint can answer, from what it declares."""
    statuses = {500, *ep.errors}
    if ep.permission is not None:
        statuses |= {401, 503}
        if any(ep.permission not in granted for granted in ROLE_PERMISSIONS.values()):
            statuses.add(403)
    if ep.query is not None:
        statuses.add(422)
    if _has_body(ep):
        statuses |= {413, 415, 422}
    return sorted(statuses)


def _has_body(ep: Endpoint) -> bool:
    return ep.body is not None or ep.body_rows or ep.body_types != ("application/json",)


def build(endpoints: Iterable[Endpoint], version: str) -> dict[str, Any]:
    eps = list(endpoints)
    models: set[type[BaseModel]] = set()
    for ep in eps:
        declared = (ep.body, ep.response, ep.query, ep.path_params, *(m for _, m in ep.answers))
        models.update(m for m in declared if m is not None)
    modes: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (m, "validation") for m in sorted(models, key=lambda m: m.__name__)
    ]
    refs, top = models_json_schema(modes, ref_template=_REF)
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    schemas["Problem"] = _PROBLEM_SCHEMA
    all_paths = [ep.path for ep in eps]
    problems: dict[str, Any] = {}
    paths: dict[str, dict[str, Any]] = {}
    for ep in eps:
        op = _operation(ep, refs, schemas, shadowed_literals(ep.path, all_paths))
        for status in problem_statuses(ep):
            problems[f"Problem{status}"] = _problem_response(status)
        methods = paths.setdefault(ep.path, {})
        if ep.method.lower() in methods:
            raise ValueError(f"{ep.method} {ep.path} is declared twice")
        methods[ep.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "camgw",
            "version": version,
            "description": "Camera-network unification gateway API",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": dict(sorted(problems.items())),
            "headers": _HEADERS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _operation(
    ep: Endpoint,
    refs: dict[Any, Any],
    schemas: dict[str, Any],
    shadowed: dict[str, tuple[str, ...]],
) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": ep.action, "summary": ep.summary}
    notes: list[str] = []
    params = _path_parameters(ep, schemas, shadowed)
    if ep.query is not None:
        params += _query_parameters(schemas[ep.query.__name__])
        notes.append(_QUERY_NOTE)
    if params:
        op["parameters"] = params
    if _has_body(ep):
        op["requestBody"] = {"required": True, "content": _body_content(ep, refs)}
    op["responses"] = _responses(ep, refs)
    if ep.permission is not None:
        op["security"] = [{"bearer": []}]
        roles = [r.value for r in Role if ep.permission in ROLE_PERMISSIONS[r]]
        notes.insert(0, f"Roles: {', '.join(roles)} (a token whose role may {ep.permission}).")
    if notes:
        op["description"] = " ".join(notes)
    return op


def _path_parameters(
    ep: Endpoint, schemas: dict[str, Any], shadowed: dict[str, tuple[str, ...]]
) -> list[dict[str, Any]]:
    names = [seg[1:-1] for seg in ep.path.split("/") if seg.startswith("{")]
    if not names:
        return []
    if ep.path_params is None:
        raise ValueError(f"{ep.method} {ep.path}: declare path_params for {names}")
    props = schemas[ep.path_params.__name__]["properties"]
    if set(props) != set(names):
        raise ValueError(f"{ep.method} {ep.path}: path_params must have exactly {names}")
    params = []
    for name in names:
        schema = _bare(props[name])
        if name in shadowed:
            schema["not"] = {"enum": list(shadowed[name])}
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return params


def _query_parameters(schema: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(schema.get("required", []))
    params = []
    for name, prop in schema["properties"].items():
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
        if "description" in prop:
            param["description"] = prop["description"]
        param["schema"] = _bare(_not_null(prop))
        params.append(param)
    return params


def _not_null(prop: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or text, never JSON null: `X | None` is documented as X."""
    options = prop.get("anyOf")
    if options is None:
        return prop
    kept = [o for o in options if o != {"type": "null"}]
    rest = {k: v for k, v in prop.items() if k != "anyOf"}
    if rest.get("default", ...) is None:
        del rest["default"]
    return {**rest, **kept[0]} if len(kept) == 1 else {**rest, "anyOf": kept}


def _bare(schema: dict[str, Any]) -> dict[str, Any]:
    """A parameter's schema without what belongs to the parameter (title, description)."""
    return {k: v for k, v in schema.items() if k not in ("title", "description")}


def _body_content(ep: Endpoint, refs: dict[Any, Any]) -> dict[str, Any]:
    content: dict[str, Any] = {}
    for media_type in ep.body_types:
        if not media_type.endswith("json"):
            content[media_type] = {"schema": {"type": "string"}}
        elif ep.body is None:
            content[media_type] = {}
        elif ep.body_rows:
            row = refs[(ep.body, "validation")]
            content[media_type] = {
                "schema": {
                    "type": "array",
                    "description": f"Rows, each a {ep.body.__name__}; a row that is not one "
                    "is reported in the answer's `errors`, not refused",
                    "items": {"anyOf": [row, {}]},
                }
            }
        else:
            content[media_type] = {"schema": refs[(ep.body, "validation")]}
    return content


def _responses(ep: Endpoint, refs: dict[Any, Any]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    headers = ["ETag"] if ep.conditional else []
    if ep.status in (201, 202):
        headers.append("Location")
    ok: dict[str, Any] = {"description": _DESCRIPTIONS[ep.status], "headers": _headers(*headers)}
    if ep.status != 204:
        if ep.response is not None:
            schema = refs[(ep.response, "validation")]
            if ep.many:
                schema = {"type": "array", "items": schema}
            ok["content"] = {ep.produces: {"schema": schema}}
        elif ep.produces.startswith("text/"):
            ok["content"] = {ep.produces: {"schema": {"type": "string"}}}
        else:
            ok["content"] = {ep.produces: {}}  # binary (a JPEG): no schema to validate against
        for media_type in ep.also_produces:
            text = media_type.startswith("text/")
            ok["content"][media_type] = {"schema": {"type": "string"}} if text else {}
    responses[str(ep.status)] = ok
    if ep.conditional:
        responses["304"] = {"description": _DESCRIPTIONS[304], "headers": _headers("ETag")}
    for status, model in ep.answers:
        responses[str(status)] = {
            "description": _DESCRIPTIONS[status],
            "headers": _headers(),
            "content": {"application/json": {"schema": refs[(model, "validation")]}},
        }
    for status in problem_statuses(ep):
        if str(status) in responses:
            raise ValueError(f"{ep.method} {ep.path}: {status} declared twice")
        responses[str(status)] = {"$ref": f"#/components/responses/Problem{status}"}
    return dict(sorted(responses.items()))


def _problem_response(status: int) -> dict[str, Any]:
    return {
        "description": _DESCRIPTIONS[status],
        "headers": _headers(*_PROBLEM_HEADERS.get(status, ())),
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def handler(doc: dict[str, Any]) -> Any:
    body = orjson.dumps(doc)

    async def openapi(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, content_type="application/json")

    return openapi
