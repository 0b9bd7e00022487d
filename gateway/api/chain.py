"""/api/v1/audit-chain: whether the audit trail's hash chain is intact, as `camgw audit verify`
says, for auditors (the dashboard's audit view). The walk is shared: at most one a minute per
gateway, whoever asks; each asking is recorded like every read of the trail."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from weakref import WeakKeyDictionary

from aiohttp import web
from pydantic import Field

from ..audit import AuditEvent, AuditLog
from ..audit_chain import Break
from ..keys import AUDIT, PRINCIPAL, REQUEST_ID
from ..models import Model
from ..policy import Permission
from .endpoint import Endpoint
from .http import json_response


class ChainStatus(Model):
    intact: bool
    detail: str = Field(description="The summary, or the first broken or missing link")
    broken_at: int | None = Field(None, description="The seq of the first broken link")
    checked_at: datetime = Field(description="When this gateway last walked the chain")


# A walk of the whole trail costs as much as `camgw audit verify`; a dashboard left open on
# the audit view, or several auditors, share one walk a minute (per gateway process).
_CHECKED_FOR_S = 60.0


@dataclass
class _Check:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    at: float = 0.0
    status: ChainStatus | None = None


_CHECKS: WeakKeyDictionary[AuditLog, _Check] = WeakKeyDictionary()


async def _checked(audit: AuditLog) -> ChainStatus:
    check = _CHECKS.setdefault(audit, _Check())
    async with check.lock:
        if check.status is None or time.monotonic() - check.at > _CHECKED_FOR_S:
            result = await audit.verify()
            now = datetime.now(UTC)
            if isinstance(result, Break):
                check.status = ChainStatus(
                    intact=False, detail=result.sentence, broken_at=result.seq, checked_at=now
                )
            else:
                check.status = ChainStatus(intact=True, detail=result, checked_at=now)
            check.at = time.monotonic()
        return check.status


async def verify_chain(request: web.Request) -> web.StreamResponse:
    """The whole trail (archive, then stream) against its links and head, as `camgw audit
    verify` does, at most once a minute; asking is recorded (`audit.verify`) like every read
    of the trail."""
    who, audit = request[PRINCIPAL], request.app[AUDIT]
    status = await _checked(audit)
    await audit.append(
        AuditEvent(
            actor=who.actor,
            role=who.role.value,
            action="audit.verify",
            target="",
            network="",
            outcome="ok",
            status=200,
            request_id=request.get(REQUEST_ID, ""),
            extra={
                "intact": str(status.intact).lower(),
                "checked_at": status.checked_at.isoformat(),
            },
        )
    )
    return json_response(status, headers={"Cache-Control": "no-store"})


ENDPOINTS = [
    Endpoint(
        "GET",
        "/api/v1/audit-chain",
        verify_chain,
        "Whether the audit trail's hash chain is intact (as `camgw audit verify`; one walk a "
        "minute per gateway, shared by every caller)",
        "audit.verify",
        Permission.read_audit,
        response=ChainStatus,
    ),
]
