"""/api/v1/openapi.json, generated from the endpoint declarations and their pydantic models."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from .endpoint import Endpoint

_REF = "#/components/schemas/{model}"
_PROBLEM = {
    "description": "Problem details (RFC 9457)",
    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
}
_PROBLEM_SCHEMA = {
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "field": {"type": "string", "description": "First failing field (422)"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}


def build(endpoints: Iterable[Endpoint], version: str) -> dict[str, Any]:
    eps = list(endpoints)
    models: set[type[BaseModel]] = set()
    for ep in eps:
        models.update(m for m in (ep.body, ep.response, ep.query) if m is not None)
    modes: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (m, "validation") for m in sorted(models, key=lambda m: m.__name__)
    ]
    refs, top = models_json_schema(modes, ref_template=_REF)
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    schemas["Problem"] = _PROBLEM_SCHEMA
    paths: dict[str, dict[str, Any]] = {}
    for ep in eps:
        paths.setdefault(ep.path, {})[ep.method.lower()] = _operation(ep, refs, schemas)
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
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _operation(ep: Endpoint, refs: dict[Any, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": ep.action, "summary": ep.summary}
    params = []
    if "{id}" in ep.path:
        params.append({"name": "id", "in": "path", "required": True, "schema": {"type": "string"}})
    if ep.query is not None:
        schema = schemas[ep.query.__name__]
        required = set(schema.get("required", []))
        for name, prop in schema["properties"].items():
            params.append(
                {"name": name, "in": "query", "required": name in required, "schema": prop}
            )
    if params:
        op["parameters"] = params
    if ep.body is not None or ep.body_types != ("application/json",):
        content: dict[str, Any] = {t: {} for t in ep.body_types}
        if ep.body is not None:
            schema = {"schema": refs[(ep.body, "validation")]}
            content.update({t: schema for t in ep.body_types if t.endswith("json")})
        op["requestBody"] = {"required": True, "content": content}
    ok: dict[str, Any] = {"description": "OK"}
    if ep.response is not None and ep.status != 204:
        ok["content"] = {ep.produces: {"schema": refs[(ep.response, "validation")]}}
    op["responses"] = {str(ep.status): ok, "default": _PROBLEM}
    if ep.permission is not None:
        op["security"] = [{"bearer": []}]
        op["description"] = f"Needs a token whose role may {ep.permission.value}."
    return op


def handler(doc: dict[str, Any]) -> Any:
    body = orjson.dumps(doc)

    async def openapi(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, content_type="application/json")

    return openapi
