"""What the commands share: failures as sentences, a Redis client that fails in one sentence
naming the registry, the vault, and the CLI's own audit entries."""

from __future__ import annotations

import asyncio
import getpass
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, NoReturn

from adapters.redis_link import RedisLink, RedisLinkError, connect, explain
from adapters.vault import CredentialVault, load_key

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from ..audit import AuditLog
    from ..settings import Settings
    from .context import Context


class Fail(Exception):
    """A command's failure: one or two sentences and the exit code (1: it did not work,
    2: it was asked wrongly)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def fail(message: str, code: int = 1) -> NoReturn:
    raise Fail(message, code)


def say(message: str) -> None:
    """A line for the person at the terminal (stderr), prefixed like every CLI message."""
    print(f"camgw: {message}", file=sys.stderr, flush=True)


def cli_actor() -> str:
    """Who the audit trail names for a command: the user and host that ran it."""
    return f"cli:{getpass.getuser()}@{socket.gethostname()}"


def run_with_redis(
    ctx: Context, work: Callable[[Redis], Awaitable[int]], link: RedisLink | None = None
) -> int:
    """Run `work` with a client on `link` (default: the registry, `[redis]`); an unreachable,
    refusing or misconfigured Redis is one sentence naming it and what to do, exit 1."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import NoPermissionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    link = link or ctx.settings.redis
    say(f"registry {link.shown} ({ctx.source})")

    async def run() -> int:
        client = connect(link, max_connections=8)
        try:
            return await work(client)
        finally:
            await client.aclose()

    from ..errors import CamgwError

    try:
        return asyncio.run(run())
    except RedisLinkError as exc:
        fail(str(exc))
    except (RedisConnectionError, RedisTimeoutError, NoPermissionError) as exc:
        fail(unreachable(exc, link, ctx))
    except CamgwError as exc:  # the registry's own wrapping of a Redis error, or a refusal
        cause = exc.__cause__
        if isinstance(cause, (RedisConnectionError, RedisTimeoutError, NoPermissionError)):
            fail(unreachable(cause, link, ctx))
        fail(exc.detail)


def unreachable(exc: BaseException, link: RedisLink, ctx: Context) -> str:
    sentence = explain(exc, link)
    text = str(exc).lower()
    if "refused" in text or "connecting to" in text or "name or service" in text:
        return (
            f"the registry {link.shown} ({ctx.source}) does not answer: {_reason(exc)}. "
            f"{ctx.start_hint}"
        )
    return sentence


def _reason(exc: BaseException) -> str:
    text = str(exc)
    if "connect call failed" in text.lower() or "refused" in text.lower():
        return "connection refused"
    return text.rsplit(". ", 1)[-1].rstrip(".") if ". " in text else text.rstrip(".")


def vault(settings: Settings) -> CredentialVault:
    """The deployment's key: it opens stored credentials and keys the audit chain, so a CLI
    entry is sealed like a gateway's."""
    return CredentialVault(load_key(settings.secrets.key_file))


def audit_log(client: Redis, settings: Settings, key: CredentialVault) -> AuditLog:
    from ..audit import AuditLog

    return AuditLog(client, settings.redis.prefix, key, settings.audit)


async def audit(
    log: AuditLog, action: str, target: str, detail: str, ok: bool = True, role: str = "admin"
) -> None:
    """One entry for what a command did, attributed to the user who ran it."""
    from ..audit import AuditEvent

    await log.append(
        AuditEvent(
            actor=cli_actor(),
            role=role,
            action=action,
            target=target,
            outcome="ok" if ok else "not_found",
            status=200 if ok else 404,
            detail=detail,
        )
    )
