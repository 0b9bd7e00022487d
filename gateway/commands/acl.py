"""`camgw acl`: the Redis ACL users, one per edge adapter and one for the gateway (docs/edge.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError
from redis.exceptions import NoPermissionError

from adapters.redis_link import RedisLink

from .common import run_with_redis
from .context import Context

if TYPE_CHECKING:
    from redis.asyncio import Redis


def acl(args: argparse.Namespace, ctx: Context) -> int:
    """ACL-file lines on stdout; new passwords (shown once) and notes on stderr."""
    from .. import acl as redis_acl

    settings = ctx.settings
    given: dict[str, Path] = {}
    for item in args.password_file:
        user, sep, file = item.partition("=")
        if not sep or not user or not file:
            print(f"camgw: --password-file wants USER=FILE, not {item!r}", file=sys.stderr)
            return 2
        given[user] = Path(file)
    users = redis_acl.users_for(settings, args.all_networks)
    try:
        creds = redis_acl.credentials(users, given, args.password_dir)
    except (ValueError, OSError) as exc:
        print(f"camgw: {exc}", file=sys.stderr)
        return 2
    if len(users) == 1:
        print(
            'camgw: no network has mode = "edge": only the gateway\'s user '
            "(--all-networks: one user per configured network)",
            file=sys.stderr,
        )
    for cred in creds:
        print(cred.user.line(cred.password_hash))
    for cred in creds:
        if cred.generated is not None:
            print(f"password of {cred.user.name}: {cred.generated}", file=sys.stderr)
        elif cred.written_to is not None:
            print(f"password of {cred.user.name} written to {cred.written_to}", file=sys.stderr)
    if any(c.generated for c in creds):
        print("(passwords shown once, store them now; Redis keeps only hashes)", file=sys.stderr)
    if not args.apply:
        return 0
    link: RedisLink = settings.redis
    if link.cluster:
        print(
            "camgw: --apply on a cluster would reach one node, but a cluster's ACL users are each "
            "node's own: add the lines above to the ACL file of every node, masters and "
            "replicas (docs/deployment.md, District: Redis Cluster)",
            file=sys.stderr,
        )
        return 2
    if args.admin_user or args.admin_password_env or args.admin_password_file:
        try:
            link = RedisLink.model_validate(
                settings.redis.model_dump()
                | {
                    "username": args.admin_user,
                    "password_env": args.admin_password_env,
                    "password_file": args.admin_password_file,
                }
            )
        except ValidationError as exc:
            print(f"camgw: admin login: {exc}", file=sys.stderr)
            return 2

    async def work(client: Redis) -> int:
        try:
            saved = await redis_acl.apply(client, creds)
        except NoPermissionError:
            print(
                f"camgw: ACL user {link.username or 'default'} may not change ACL users; log in "
                "as an admin with --admin-user and --admin-password-env/--admin-password-file",
                file=sys.stderr,
            )
            return 1
        print(f"applied {len(creds)} ACL users to {link.url}; {saved}", file=sys.stderr)
        if await redis_acl.default_user_open(client):
            print(
                "camgw: warning: the default user is on without a password, so anyone who "
                "reaches this Redis has every right; turn it off (ACL SETUSER default off) once "
                "an admin user of your own exists",
                file=sys.stderr,
            )
        return 0

    return run_with_redis(ctx, work, link)
