"""One declaration per endpoint drives routing, authentication, refusal auditing and OpenAPI."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from functools import wraps

from aiohttp import web
from pydantic import BaseModel

from ..audit import AuditEvent
from ..errors import CamgwError, Forbidden, Unauthorized
from ..keys import AUDIT, METRICS, PRINCIPAL, REQUEST_ID, TOKENS
from ..policy import Permission, Principal

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
    audit_failures: bool = False  # changes: every refusal and failure goes to the audit log


def add_routes(app: web.Application, endpoints: Iterable[Endpoint]) -> None:
    for ep in endpoints:
        app.router.add_route(ep.method, ep.path, _guarded(ep), name=ep.action.replace(".", "_"))


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
            if (ep.audit_failures or exc.status in (401, 403)) and not exc.audited:
                await audit_refusal(request, ep.action, exc)
            raise

    return handler


async def authenticate(request: web.Request) -> Principal:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        request.app[METRICS].refused.labels("no_token").inc()
        raise Unauthorized("send `Authorization: Bearer <token>`")
    who = await request.app[TOKENS].resolve(token.strip())
    if who is None:
        request.app[METRICS].refused.labels("bad_token").inc()
        raise Unauthorized("the token is not valid (unknown, malformed or revoked)")
    request[PRINCIPAL] = who
    return who


async def audit_refusal(
    request: web.Request, action: str, exc: CamgwError, target: str = "", network: str = ""
) -> None:
    who = request.get(PRINCIPAL)
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
