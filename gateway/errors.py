"""The gateway's error tree and its one mapping to HTTP (RFC 9457 problem+json).

    CamgwError                       500  anything we did not foresee (never shows internals)
    ├── Unauthorized                 401  no token, or not a valid one
    ├── Forbidden                    403  the role lacks the right, or the network is not granted
    ├── NotFound                     404  also for cameras in networks the caller may not see
    ├── Conflict                     409  duplicate id or address, concurrent edit
    ├── PayloadTooLarge              413
    ├── UnsupportedMediaType         415
    ├── Invalid                      422  carries FieldError(field path, message) for each failure
    ├── TooManyRequests              429  a rate limit; Retry-After
    ├── BadGateway                   502  the camera answered wrongly (auth, garbage, not a JPEG)
    ├── Unavailable                  503  Redis unreachable, a camera's circuit open; Retry-After
    └── GatewayTimeout               504  the camera did not answer in time

Messages are written for the caller and never echo input values: an input may hold a password.
Library errors are translated at the boundary (`from_validation_error`, `redis_errors`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import orjson
from pydantic import ValidationError
from redis.exceptions import RedisError

if TYPE_CHECKING:
    from aiohttp import web

PROBLEM_JSON = "application/problem+json"


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class CamgwError(Exception):
    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str = "", **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra
        self.audited = False  # already in the audit stream (don't append it twice)
        self.audit_network = ""  # the network the refusal concerns, for its auditors
        self.audit_detail = self.detail  # what the audit log records (may say more)

    def problem(self, instance: str = "") -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"urn:camgw:problem:{self.slug}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body

    def response(self, instance: str = "") -> web.Response:
        from aiohttp import web  # noqa: PLC0415  (the CLI raises these errors without a server)

        return web.Response(
            status=self.status,
            body=orjson.dumps(self.problem(instance)),
            content_type=PROBLEM_JSON,
            headers=self.headers(),
        )

    def headers(self) -> dict[str, str]:
        return {}


class Unauthorized(CamgwError):
    status, slug, title = 401, "unauthorized", "Authentication required"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="camgw"'}


class Forbidden(CamgwError):
    status, slug, title = 403, "forbidden", "Not allowed"


class NotFound(CamgwError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(CamgwError):
    status, slug, title = 409, "conflict", "Conflict"


class StaleLease(Conflict):
    """A write made under a lease that has since passed to another replica (gateway/lease.py):
    refused, so a paused holder cannot overwrite what its successor wrote."""

    slug, title = "stale-lease", "Lease passed to another replica"


class PayloadTooLarge(CamgwError):
    status, slug, title = 413, "payload-too-large", "Request body too large"


class UnsupportedMediaType(CamgwError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class Invalid(CamgwError):
    status, slug, title = 422, "validation", "Invalid input"

    def __init__(self, errors: list[FieldError], detail: str = "") -> None:
        first = errors[0] if errors else FieldError("", "invalid")
        where = f"`{first.field}`: " if first.field else ""
        super().__init__(
            detail or f"{where}{first.message}",
            field=first.field,
            errors=[e.as_dict() for e in errors],
        )
        self.errors = errors


class TooManyRequests(CamgwError):
    status, slug, title = 429, "rate-limited", "Too many requests"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.extra.get("retry_after", 60))}


class BadGateway(CamgwError):
    status, slug, title = 502, "bad-gateway", "The camera answered wrongly"


class Unavailable(CamgwError):
    status, slug, title = 503, "unavailable", "Service unavailable"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.extra.get("retry_after", 1))}


class GatewayTimeout(CamgwError):
    status, slug, title = 504, "gateway-timeout", "The camera did not answer in time"


def field_path(loc: tuple[int | str, ...]) -> str:
    """('location', 'lat') -> 'location.lat'; ('tags', 2) -> 'tags[2]'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def field_errors(exc: ValidationError, prefix: tuple[int | str, ...] = ()) -> list[FieldError]:
    """Pydantic errors as field paths and messages, dropping `input` (it may hold a secret)."""
    return [FieldError(field_path(prefix + tuple(e["loc"])), e["msg"]) for e in exc.errors()]


def from_validation_error(exc: ValidationError) -> Invalid:
    """A request body's errors; one about the body as a whole (not JSON, not an object) names
    `body`, so every 422 says where the problem is."""
    return Invalid([FieldError(e.field or "body", e.message) for e in field_errors(exc)])


@contextmanager
def redis_errors() -> Iterator[None]:
    """Redis trouble becomes a 503 without the connection string (it may hold a password)."""
    try:
        yield
    except RedisError as exc:
        raise Unavailable("the registry is unreachable; retry shortly") from exc
