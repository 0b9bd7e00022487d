"""/api/v1/me: who the caller's token says it is, so that a client (the dashboard) shows each
role only what it may do, without trying every endpoint first."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from ..keys import PRINCIPAL, SETTINGS
from ..models import Model, Role
from ..policy import ROLE_PERMISSIONS, Permission
from .endpoint import Endpoint
from .http import json_response


class Caller(Model):
    name: str = Field(description="The token's name")
    token_id: str = Field(description="The token's id (never its secret)")
    role: Role
    networks: list[str] = Field(description="Ids of the configured networks the token sees")
    all_networks: bool = Field(description="Granted `*`: every network, present and future")
    permissions: list[str] = Field(description="What the role may do, by permission name")


async def get_me(request: web.Request) -> web.StreamResponse:
    who = request[PRINCIPAL]
    caller = Caller(
        name=who.name,
        token_id=who.token_id,
        role=who.role,
        networks=list(who.visible(request.app[SETTINGS])),
        all_networks=who.networks is None,
        permissions=sorted(p.name for p in ROLE_PERMISSIONS[who.role]),
    )
    return json_response(caller, headers={"Cache-Control": "private, no-store"})


ENDPOINTS = [
    Endpoint(
        "GET",
        "/api/v1/me",
        get_me,
        "The caller: its token's name, role, networks and permissions",
        "me.get",
        Permission.read_networks,  # every role has it
        response=Caller,
    ),
]
