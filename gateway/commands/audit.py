"""`camgw audit tail|verify|export`: read and check the audit trail; reading it is audited."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .common import audit_log, cli_actor, fail, run_with_redis, vault
from .context import Context

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from ..audit import AuditLog
    from ..audit_chain import Break


def tail(args: argparse.Namespace, ctx: Context) -> int:
    """The newest `-n` entries, oldest first, as JSON lines; with `-f`, then every new entry
    as it is written, until interrupted."""
    from ..audit import AuditQuery

    if args.n < 0:
        fail("-n wants a count of 0 or more", 2)
    key = vault(ctx.settings)

    async def work(client: Redis) -> int:
        log = audit_log(client, ctx.settings, key)
        page = await log.query(AuditQuery(limit=max(args.n, 1)))
        shown = page.items[: args.n]
        for entry in reversed(shown):
            print(entry.model_dump_json(), flush=True)
        newest = page.items[0].id if page.items else "0"
        await _read(log, "tail", f"newest {args.n}" + (", following" if args.f else ""), len(shown))
        if args.f:
            async for entry in log.follow(newest):
                print(entry.model_dump_json(), flush=True)
        return 0

    return run_with_redis(ctx, work)


def verify(args: argparse.Namespace, ctx: Context) -> int:
    """Exit 0 with "audit trail intact: ..." or 1 with the first broken or missing link."""
    from ..audit_archive import verify_file
    from ..audit_chain import CHAIN_PURPOSE

    key = vault(ctx.settings)
    if args.file is not None:
        try:
            return _verdict(verify_file(args.file, key.derive(CHAIN_PURPOSE)))
        except OSError as exc:
            fail(f"cannot read {args.file}: {exc.strerror or exc}", 2)

    async def work(client: Redis) -> int:
        return _verdict(await audit_log(client, ctx.settings, key).verify(args.archive_dir))

    return run_with_redis(ctx, work)


def export(args: argparse.Namespace, ctx: Context) -> int:
    from ..models import iso_datetime

    try:
        since = iso_datetime(args.since)
    except ValueError as exc:
        fail(f"--since {exc}", 2)
    key = vault(ctx.settings)
    out_path: Path | None = args.out

    async def work(client: Redis) -> int:
        log = audit_log(client, ctx.settings, key)
        with contextlib.ExitStack() as stack:
            try:
                out = stack.enter_context(out_path.open("wb")) if out_path else sys.stdout.buffer
            except OSError as exc:
                fail(f"cannot write {out_path}: {exc.strerror or exc}", 2)
            count = await log.export(since, out, args.archive_dir, exported_by=cli_actor())
            out.flush()
        await _read(log, "export", f"since {since.isoformat()}", count)
        print(f"exported {count} entries since {since.isoformat()}", file=sys.stderr)
        return 0

    return run_with_redis(ctx, work)


def _verdict(result: Break | str) -> int:
    from ..audit_chain import Break

    if isinstance(result, Break):
        print(result.sentence)
        return 1
    print(result)
    return 0


async def _read(log: AuditLog, via: str, what: str, returned: int) -> None:
    """Reading the trail from the command line is recorded like reading it through the API."""
    from ..audit import AuditEvent

    await log.append(
        AuditEvent(
            actor=cli_actor(),
            role="cli",
            action="audit.read",
            target="",
            outcome="ok",
            status=200,
            detail=f"{via}: {what}",
            extra={"via": via, "returned": str(returned)},
        )
    )
