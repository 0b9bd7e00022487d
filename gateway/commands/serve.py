"""`camgw serve`: the gateway, on the registry its settings name."""

from __future__ import annotations

import argparse
import errno
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from .common import fail, vault
from .context import Context

if TYPE_CHECKING:
    from aiohttp import web

    from ..settings import Settings
    from ..vault import CredentialVault

log = logging.getLogger("camgw")


def serve(args: argparse.Namespace, ctx: Context) -> int:
    settings = ctx.settings
    host, port = args.host or settings.server.host, args.port or settings.server.port
    run_app(ctx, vault(settings), host, port)
    return 0


def run_app(
    ctx: Context,
    key: CredentialVault,
    host: str,
    port: int,
    on_ready: Callable[[web.Application], Awaitable[None]] | None = None,
    settings: Settings | None = None,
) -> None:
    """The gateway until SIGINT/SIGTERM; a port already in use is one sentence."""
    from aiohttp import web

    from adapters.files import raise_nofile_limit
    from adapters.gil import favour_the_loop

    from .. import memory
    from ..access_log import AccessLogger
    from ..app import create_app

    settings = settings or ctx.settings
    raise_nofile_limit()  # every network's discovery may hold concurrency x 4 connections
    memory.tune()  # before any worker thread: see gateway/memory.py
    favour_the_loop()
    log.info(
        "registry %s (settings: %s)",
        settings.redis.shown,
        ctx.source,
        extra={"registry": settings.redis.shown, "settings": ctx.source},
    )
    app = create_app(settings, key)
    if on_ready is not None:
        app.on_startup.append(on_ready)  # after the cleanup contexts: every service is up
    try:
        web.run_app(
            app,
            host=host,
            port=port,
            access_log=logging.getLogger("camgw.access") if settings.server.access_log else None,
            access_log_class=AccessLogger,
            print=lambda _text: log.info(
                "listening on http://%s:%d", host, port, extra={"url": f"http://{host}:{port}"}
            ),
        )
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            fail(
                f"port {port} on {host} is in use: another camgw (a demo?) or another program "
                "listens there; stop it, or choose another with --port"
            )
        if exc.errno == errno.EADDRNOTAVAIL:
            fail(f"cannot listen on {host}: no such address on this machine ([server] host)")
        raise
