"""The one middleware: request id, errors to problem+json, metrics, headers.

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
async def edge(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id (the client's, if sane), errors to problem+json, a count per route and the
    Server header, in one layer: every middleware costs each request, and the 304 path of the
    camera list is worth a few microseconds."""
    given = request.headers.get("X-Request-Id", "")
    request_id = given if _CLIENT_ID.match(given) else f"{_PREFIX}-{next(_COUNTER)}"
    request[REQUEST_ID] = request_id
    started = time.perf_counter()
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _http_problem(exc, request.path)
    except CamgwError as exc:
        if exc.status >= 500:
            log.error(
                "request failed",
                extra={"request_id": request_id, "error": exc.detail},
                exc_info=exc.__cause__ is not None,
            )
        response = exc.response(request.path)
    except Exception:
        log.exception("unhandled error", extra={"request_id": request_id})
        response = CamgwError("an internal error occurred; quote the X-Request-Id").response(
            request.path
        )
    route = request.match_info.route.name or "unmatched"
    request.app[METRICS].http.observe(
        route, request.method, response.status, time.perf_counter() - started
    )
    headers = response.headers
    headers["X-Request-Id"] = request_id
    headers["Server"] = "camgw"  # nothing about the Python and aiohttp versions behind it
    return response


def _http_problem(exc: web.HTTPException, instance: str) -> web.Response:
    body = CamgwError.problem(CamgwError(exc.reason), instance)
    body.update(type=f"urn:camgw:problem:http-{exc.status}", title=exc.reason, status=exc.status)
    headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
    return web.Response(
        status=exc.status, body=orjson.dumps(body), content_type=PROBLEM_JSON, headers=headers
    )
