"""`camgw token create|list|revoke`: API tokens, each change audited."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from .common import audit, audit_log, cli_actor, fail, run_with_redis, vault
from .context import Context

if TYPE_CHECKING:
    from redis.asyncio import Redis


def create(args: argparse.Namespace, ctx: Context) -> int:
    from ..auth import TokenStore
    from ..models import Role

    settings = ctx.settings
    networks = [n.strip() for n in args.networks.split(",") if n.strip()]
    unknown = [n for n in networks if n != "*" and n not in settings.network_by_id]
    if unknown or not networks:
        fail(
            f"unknown network(s): {', '.join(unknown) or '(none given)'}; "
            f"configured: {', '.join(settings.network_by_id)}",
            2,
        )
    key = vault(settings)  # before anything changes: no token without its audit entry

    async def work(client: Redis) -> int:
        tokens = TokenStore(client, settings.redis.prefix)
        token, info = await tokens.create(args.name, Role(args.role), networks, cli_actor())
        await audit(
            audit_log(client, settings, key),
            "token.create",
            info.id,
            f"{info.name}: {info.role.value} on {','.join(info.networks)}",
        )
        print(token)
        print(f"(token {info.id} for {info.name}; shown once, store it now)", file=sys.stderr)
        return 0

    return run_with_redis(ctx, work)


HEADER = ("ID", "ROLE", "NETWORKS", "NAME", "CREATED", "BY")


def list_(args: argparse.Namespace, ctx: Context) -> int:
    """One tab-separated row per token, under a header row; never a secret."""
    from ..auth import TokenStore

    async def work(client: Redis) -> int:
        rows = [
            (
                info.id,
                info.role.value,
                ",".join(info.networks),
                info.name,
                f"{info.created_at:%Y-%m-%d %H:%M}",
                info.created_by,
            )
            for info in await TokenStore(client, ctx.settings.redis.prefix).list()
        ]
        if not rows:
            print("no tokens", file=sys.stderr)
            return 0
        for row in [HEADER, *rows]:
            print("\t".join(row))
        return 0

    return run_with_redis(ctx, work)


def revoke(args: argparse.Namespace, ctx: Context) -> int:
    from ..auth import TokenStore

    settings = ctx.settings
    key = vault(settings)  # before anything changes: no revocation without its entry

    async def work(client: Redis) -> int:
        removed = await TokenStore(client, settings.redis.prefix).revoke(args.id)
        await audit(
            audit_log(client, settings, key),
            "token.revoke",
            args.id,
            "" if removed else "no such token",
            ok=removed,
        )
        if not removed:
            fail(f"no token {args.id} (`camgw token list` shows them)")
        print(f"revoked {args.id}")
        return 0

    return run_with_redis(ctx, work)
