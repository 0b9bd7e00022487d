"""One declaration per endpoint drives routing, authentication, refusal auditing and OpenAPI."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import wraps

from aiohttp import web
from pydantic import BaseModel

from ..audit import AuditEvent
from ..errors import CamgwError, Forbidden, Unauthorized
from ..keys import AUDIT, METRICS, PRINCIPAL, REQUEST_ID, TOKENS
from ..models import Camera
from ..policy import Permission, Principal
from .scope import NetworksOf, networks_of

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_OUTCOMES = {
    401: "denied",
    403: "denied",
    404: "not_found",
    409: "conflict",
    413: "invalid",
    415: "invalid",
    422: "invalid",
}


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    action: str  # the audit action, e.g. "camera.create"
    permission: Permission | None  # None: no token needed
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    body_types: tuple[str, ...] = ("application/json",)
    response: type[BaseModel] | None = None
    status: int = 200
    produces: str = "application/json"
    # Other media types of the 200 answer, chosen by a query parameter (`format=csv`): each
    # documented beside `produces` (text as a string, anything else without a schema).
    also_produces: tuple[str, ...] = ()
    audit_failures: bool = False  # changes: every refusal and failure goes to the audit log
    network: NetworksOf | None = None  # which network(s) a refused request concerns (scope.py)
    # What the OpenAPI document says (openapi.py), beside what the fields above imply:
    path_params: type[BaseModel] | None = None  # one field per `{name}` in `path`
    body_rows: bool = False  # a JSON body is an array of `body` rows, each judged on its own
    many: bool = False  # the answer is an array of `response`
    conditional: bool = False  # strong ETag; `If-None-Match` answered 304
    errors: tuple[int, ...] = ()  # problem statuses the handler itself answers
    answers: tuple[tuple[int, type[BaseModel]], ...] = ()  # other non-problem answers


def add_routes(app: web.Application, endpoints: Iterable[Endpoint]) -> None:
    eps = list(endpoints)
    paths = [ep.path for ep in eps]
    for ep in eps:
        app.router.add_route(
            ep.method, route_path(ep.path, paths), _guarded(ep), name=ep.action.replace(".", "_")
        )


_SEGMENT = re.compile(r"^\{([_a-zA-Z][_a-zA-Z0-9]*)\}$")


def shadowed_literals(path: str, paths: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """For each `{name}` segment of `path`, the literal segments of other routes that the
    parameter would otherwise also match (`/cameras/{id}` and `/cameras/import`): the parameter
    never takes those values, so the literal route's methods are the only ones its path has
    (a 405 there names them alone) and the document says so (`not: {enum: [...]}`)."""
    parts = path.split("/")
    found: dict[str, list[str]] = {}
    for i, part in enumerate(parts):
        if (m := _SEGMENT.match(part)) is None:
            continue
        for other in paths:
            theirs = other.split("/")
            if (
                len(theirs) == len(parts)
                and theirs[:i] == parts[:i]
                and theirs[i + 1 :] == parts[i + 1 :]
                and not _SEGMENT.match(theirs[i])
            ):
                found.setdefault(m[1], []).append(theirs[i])
    return {name: tuple(dict.fromkeys(words)) for name, words in found.items()}


def route_path(path: str, paths: Sequence[str]) -> str:
    """The aiohttp route for `path`: a `{name}` that could match another route's literal gets
    a regex that excludes it (aiohttp's default segment is `[^{}/]+`; braces are written as
    escapes, since aiohttp's route parser reads a literal brace as the end of the pattern)."""
    for name, words in shadowed_literals(path, paths).items():
        alternatives = "|".join(re.escape(w) for w in words)
        path = path.replace(
            "{" + name + "}", "{" + name + ":(?!(?:" + alternatives + ")(?:/|\\Z))[^/\\x7b\\x7d]+}"
        )
    return path


def _guarded(ep: Endpoint) -> Handler:
    if ep.permission is None:
        return ep.handler
    permission = ep.permission

    @wraps(ep.handler)
    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            who = await authenticate(request)
            if not who.can(permission):
                request.app[METRICS].refused.labels("role").inc()
                raise Forbidden(f"role {who.role.value} may not {permission.value}")
            return await ep.handler(request)
        except CamgwError as exc:
            # 401s are counted per source and minute (no Redis write here); the rest appended,
            # filed under each network the request concerns (one entry per network).
            if (ep.audit_failures or exc.status in (401, 403)) and not exc.audited:
                known = (exc.audit_network,) if exc.audit_network else ()
                for network in known or await networks_of(request, ep.network) or ("",):
                    await audit_refusal(request, ep.action, exc, network=network)
            raise

    return handler


class NotAuthenticated(Unauthorized):
    """A 401, with why (the metric's label, and the reason counted in the audit)."""

    def __init__(self, detail: str, reason: str) -> None:
        super().__init__(detail)
        self.reason = reason


async def authenticate(request: web.Request) -> Principal:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        request.app[METRICS].refused.labels("no_token").inc()
        raise NotAuthenticated("send `Authorization: Bearer <token>`", "no_token")
    who = await request.app[TOKENS].resolve(token.strip())
    if who is None:
        request.app[METRICS].refused.labels("bad_token").inc()
        raise NotAuthenticated(
            "the token is not valid (unknown, malformed or revoked)", "bad_token"
        )
    request[PRINCIPAL] = who
    return who


async def audit_done(
    request: web.Request, action: str, camera: Camera, status: int, extra: dict[str, str]
) -> None:
    """One entry for an action the request's caller carried out on `camera`."""
    who = request[PRINCIPAL]
    await request.app[AUDIT].append(
        AuditEvent(
            actor=who.actor,
            role=who.role.value,
            action=action,
            target=camera.id,
            network=camera.network,
            outcome="ok",
            status=status,
            request_id=request.get(REQUEST_ID, ""),
            extra=extra,
        )
    )


async def audit_refusal(
    request: web.Request, action: str, exc: CamgwError, target: str = "", network: str = ""
) -> None:
    """One entry per refusal of a known caller. A refusal of an unknown one (401) is only
    counted, per source address and minute, and written as one `auth.refused` entry when the
    minute is over: a flood of unauthenticated requests makes one entry, not a flood that
    pushes older entries out, and no path it sends is stored beyond a few bounded samples."""
    who = request.get(PRINCIPAL)
    if who is None and exc.status == 401:
        reason = exc.reason if isinstance(exc, NotAuthenticated) else "unauthenticated"
        request.app[AUDIT].refusals.note(request.remote or "", request.path, reason)
        return
    await request.app[AUDIT].append(
        AuditEvent(
            actor=who.actor if who else "anonymous",
            role=who.role.value if who else "",
            action=action,
            target=target or request.match_info.get("id", "") or request.path,
            network=network or exc.audit_network,
            outcome=_OUTCOMES.get(exc.status, "error"),
            status=exc.status,
            detail=exc.detail[:300],
            request_id=request.get(REQUEST_ID, ""),
        )
    )
