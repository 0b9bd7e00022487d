"""`camgw import FILE`: a CSV or JSON file of cameras through the gateway's API (so it is
authorised, validated and audited like any other import), with a readable per-row report."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import Any

import orjson

from .common import fail, say
from .context import Context


def import_file(args: argparse.Namespace, ctx: Context) -> int:
    from aiohttp import ClientError, ClientSession, ClientTimeout

    path: Path = args.file
    try:
        body = path.read_bytes()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror or exc}", 2)
    url = _api_url(args, ctx)
    token = _token(ctx)
    ctype = "application/json" if path.suffix.lower() == ".json" else "text/csv"

    async def run() -> tuple[int, Any]:
        async with (
            ClientSession(timeout=ClientTimeout(total=300)) as http,
            http.post(
                f"{url}/api/v1/cameras/import",
                data=body,
                headers={"Authorization": f"Bearer {token}", "Content-Type": ctype},
            ) as resp,
        ):
            raw = await resp.read()
        try:
            return resp.status, orjson.loads(raw)
        except orjson.JSONDecodeError:
            return resp.status, {"detail": raw[:200].decode(errors="replace")}

    try:
        status, answer = asyncio.run(run())
    except (ClientError, OSError, TimeoutError) as exc:
        fail(
            f"the gateway at {url} does not answer ({exc or type(exc).__name__}): is it running? "
            "(`make run`, or name it with --url or CAMGW_URL)"
        )
    if args.json:
        print(orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode())
    if status != 200:
        detail = answer.get("detail") if isinstance(answer, dict) else None
        fail(f"import refused ({status}): {detail or answer}")
    if not args.json:
        print(report(path, answer))
    return 0 if answer.get("failed") == 0 else 1


def report(path: Path, answer: dict[str, Any]) -> str:
    """What the import did, then one line per refused field of each refused row."""
    created, failed = answer.get("created", 0), answer.get("failed", 0)
    lines = [f"{path}: {created} cameras imported, {failed} rows refused"]
    for row in answer.get("errors", []):
        where = f"line {row['line']}" if row.get("line") else f"row {row.get('row')}"
        details = row.get("errors") or [row]
        for d in details:
            lines.append(f"  {where}: {d.get('message') or d.get('reason')}")
    return "\n".join(lines)


def _api_url(args: argparse.Namespace, ctx: Context) -> str:
    if args.url:
        return str(args.url).rstrip("/")
    if os.environ.get("CAMGW_URL"):
        return os.environ["CAMGW_URL"].rstrip("/")
    if ctx.demo is not None:
        return ctx.demo.api_url
    server = ctx.settings.server
    return f"http://{server.host}:{server.port}"


def _token(ctx: Context) -> str:
    """CAMGW_TOKEN; beside a running demo, its admin token (said)."""
    token = os.environ.get("CAMGW_TOKEN")
    if token:
        return token
    if ctx.demo is not None:
        try:
            rows = ctx.demo.tokens_file.read_text().splitlines()
        except OSError:
            rows = []
        for row in rows:
            role, _, value = row.partition("\t")
            if role == "admin" and value:
                say(f"as the demo's admin ({ctx.demo.tokens_file}; CAMGW_TOKEN to use another)")
                return value
    fail("set CAMGW_TOKEN to an admin token (`camgw token create --role admin ...`)", 2)
