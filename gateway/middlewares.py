"""The middlewares, outermost first: request id and metrics, then errors to problem+json.

Authentication is per endpoint (see api/endpoint.py), so public endpoints pay nothing for it.
"""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import time

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from .errors import PROBLEM_JSON, CamgwError
from .keys import METRICS, REQUEST_ID

log = logging.getLogger(__name__)

_CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_PREFIX = secrets.token_hex(3)
_COUNTER = itertools.count(1)


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give every request an id (the client's, if sane) and count it per route."""
    given = request.headers.get("X-Request-Id", "")
    request_id = given if _CLIENT_ID.match(given) else f"{_PREFIX}-{next(_COUNTER)}"
    request[REQUEST_ID] = request_id
    started = time.perf_counter()
    response = await handler(request)
    route = request.match_info.route.name or "unmatched"
    request.app[METRICS].http.observe(
        route, request.method, response.status, time.perf_counter() - started
    )
    response.headers["X-Request-Id"] = request_id
    return response


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as application/problem+json; internals never leave at all."""
    try:
        return await handler(request)
    except CamgwError as exc:
        if exc.status >= 500:
            log.error(
                "request failed",
                extra={"request_id": request.get(REQUEST_ID), "error": exc.detail},
                exc_info=exc.__cause__ is not None,
            )
        return exc.response(request.path)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _http_problem(exc, request.path)
    except Exception:
        log.exception("unhandled error", extra={"request_id": request.get(REQUEST_ID)})
        return CamgwError("an internal error occurred; quote the X-Request-Id").response(
            request.path
        )


def _http_problem(exc: web.HTTPException, instance: str) -> web.Response:
    body = CamgwError.problem(CamgwError(exc.reason), instance)
    body.update(type=f"urn:camgw:problem:http-{exc.status}", title=exc.reason, status=exc.status)
    headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
    return web.Response(
        status=exc.status, body=orjson.dumps(body), content_type=PROBLEM_JSON, headers=headers
    )
