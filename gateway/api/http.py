"""Request and response plumbing shared by the endpoints: bounded bodies, validated queries,
JSON out, and conditional GET (ETag / 304 / gzip) for cached bodies."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar, cast

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from ..catalog import Body, Catalog
from ..errors import (
    FieldError,
    Invalid,
    PayloadTooLarge,
    UnsupportedMediaType,
    field_errors,
    from_validation_error,
)
from ..keys import BODY, QUERY_CACHE

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

_READ_CHUNK = 64 * 1024
# A body from this size on is written a chunk at a time (LargeBody).
LARGE_BODY = 1024 * 1024
_WRITE_CHUNK = 256 * 1024


async def read_body(request: web.Request, limit: int, types: tuple[str, ...]) -> bytes:
    """The body, refused early when its declared or actual size passes `limit`."""
    if request.content_type not in types:
        raise UnsupportedMediaType(f"send one of: {', '.join(types)}")
    declared = request.content_length
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"body of {declared} bytes exceeds the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(_READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body exceeds the {limit}-byte limit")
        chunks.append(chunk)
    body = request[BODY] = b"".join(chunks)  # kept for attributing a refusal (api/scope.py)
    return body


async def read_model(
    request: web.Request, model: type[M], limit: int, types: tuple[str, ...] = ("application/json",)
) -> M:
    raw = await read_body(request, limit, types)
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise from_validation_error(exc) from exc


def parse_query(request: web.Request, model: type[M]) -> M:
    params: dict[str, str] = {}
    for key, value in request.query.items():
        if key in params:
            raise Invalid([FieldError(key, "may be given only once")])
        params[key] = value
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise Invalid(field_errors(exc)) from exc


_QUERY_CACHE_MAX = 1024


def cached_query(request: web.Request, model: type[M]) -> M:
    """`parse_query`, memoised per raw query string: dashboards and operators repeat the same
    few queries many times a second. Query models are frozen, so sharing them is safe."""
    return cached_parse(request, model, lambda: parse_query(request, model))


def cached_parse(request: web.Request, kind: object, parse: Callable[[], T]) -> T:
    """Memoise `parse()` per (kind, raw query string); what it returns must be immutable."""
    cache = request.app[QUERY_CACHE]
    key = (kind, request.query_string)
    hit = cache.get(key)
    if hit is None:
        hit = parse()
        if len(cache) >= _QUERY_CACHE_MAX:
            cache.clear()
        cache[key] = hit
    return cast(T, hit)


def json_response(
    data: BaseModel | Sequence[BaseModel] | dict[str, object],
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> web.Response:
    if isinstance(data, BaseModel):
        body = data.model_dump_json().encode()
    elif isinstance(data, Sequence):
        body = b"[" + b",".join(m.model_dump_json().encode() for m in data) + b"]"
    else:
        body = orjson.dumps(data)
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)


def raw_json(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)


_REVALIDATE = {"Cache-Control": "private, no-cache", "Vary": "Accept-Encoding, Authorization"}


class LargeBody(web.StreamResponse):
    """A large JSON body written a chunk at a time, each once the connection has taken most of
    the one before. Written whole, what the socket had not yet taken stayed in the transport, a
    copy per connection: 64 dashboards answered a changed page of 10,000 cameras (14.7 MB) at
    once held ~900 MB (gateway RSS peaks of 1.4-1.6 GiB at 100,000 cameras, bench/scale.py).
    Headers (ETag, X-Request-Id, ...) are set as on any response until it is sent."""

    def __init__(self, request: web.Request, body: bytes, headers: dict[str, str]) -> None:
        super().__init__(headers=headers)
        self.content_type = "application/json"
        self.content_length = len(body)
        self._data: bytes | None = None if request.method == "HEAD" else body

    async def write_eof(self, data: bytes = b"") -> None:
        body, self._data = self._data, None  # (once, however often this is called)
        if body is not None:
            view = memoryview(body)
            for at in range(0, len(view), _WRITE_CHUNK):
                await self.write(view[at : at + _WRITE_CHUNK])  # (drains past 64 KiB)
        await super().write_eof(data)


def json_body(request: web.Request, body: bytes, headers: dict[str, str]) -> web.StreamResponse:
    """`body` as the answer: whole when small, a chunk at a time from LARGE_BODY bytes."""
    if len(body) >= LARGE_BODY:
        return LargeBody(request, body, headers)
    return raw_json(body, headers=headers)


async def conditional(request: web.Request, catalog: Catalog, body: Body) -> web.StreamResponse:
    """Strong ETag per representation; 304 when the client already holds it (either
    representation: If-None-Match compares weakly, RFC 9110 13.1.2)."""
    gz = len(body.data) >= 1024 and "gzip" in request.headers.get("Accept-Encoding", "")
    etag = body.etag_gz if gz else body.etag
    headers = {"ETag": etag, **_REVALIDATE}
    inm = request.headers.get("If-None-Match")
    if inm is not None and (body.etag in inm or body.etag_gz in inm or inm.strip() == "*"):
        return web.Response(status=304, headers=headers)
    if gz:
        headers["Content-Encoding"] = "gzip"
        return json_body(request, await catalog.gzipped(body), headers)
    return json_body(request, body.data, headers)
