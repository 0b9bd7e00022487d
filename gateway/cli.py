"""`camgw`: serve, demo, token create|list|revoke, import, audit tail|verify|export, keygen."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
from aiohttp import ClientSession, ClientTimeout, web
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoPermissionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from adapters.base import NetworkAdapter
from adapters.files import raise_nofile_limit
from adapters.redis_link import RedisLink, RedisLinkError, explain
from adapters.simulator.server import (
    Recorders,
    Simulator,
    build_devices,
    demo_quirks,
    group_devices,
)

from . import acl, adapter_cli, logs
from .app import create_app, in_process_adapter, redis_client
from .audit import AuditEvent, AuditLog, AuditQuery
from .audit_archive import verify_file
from .audit_chain import CHAIN_PURPOSE, Break
from .auth import TokenStore
from .catalog import Catalog
from .demo import (
    cli_actor,
    demo_tokens,
    ensure_demo_passwords,
    fleet_for,
    network_passwords,
    seed_registry,
    with_inventories,
    write_rtsp_inventories,
    write_token_file,
)
from .discovery import DiscoveryService
from .errors import CamgwError
from .keys import DISCOVERY, REGISTRY, TOKENS
from .models import DiscoveryJob, Role, iso_datetime
from .redis_server import RedisServer
from .registry import Registry
from .settings import Settings, load_settings
from .vault import CredentialVault, VaultError, create_key_file, load_key

log = logging.getLogger("camgw")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logs.setup(os.environ.get("CAMGW_LOG_LEVEL", "INFO"))
    if not getattr(args, "needs_settings", True):  # `camgw adapter`: its own config only
        result_of_adapter: int = args.func(args)
        return result_of_adapter
    try:
        settings = load_settings(args.config)
    except (OSError, ValidationError, ValueError) as exc:
        print(f"camgw: bad configuration: {exc}", file=sys.stderr)
        return 2
    try:
        result: int = args.func(args, settings)
    except (VaultError, RuntimeError) as exc:
        print(f"camgw: {exc}", file=sys.stderr)
        return 1
    return result


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="camgw", description=__doc__)
    p.add_argument("--config", type=Path, default=None, help="config file (CAMGW_CONFIG)")
    sub = p.add_subparsers(required=True, metavar="command")

    s = sub.add_parser("serve", help="run the gateway")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.set_defaults(func=cmd_serve)

    d = sub.add_parser("demo", help="private Redis + demo fleet + gateway, printing tokens")
    d.add_argument("--var", type=Path, default=Path("var"), help="state directory")
    d.add_argument("--scale", type=float, default=0.05, help="fleet size vs the inventory")
    d.add_argument("--port", type=int)
    d.set_defaults(func=cmd_demo)

    t = sub.add_parser("token", help="manage API tokens").add_subparsers(required=True)
    tc = t.add_parser("create", help="create a token and print it once")
    tc.add_argument("--role", required=True, choices=[r.value for r in Role])
    tc.add_argument("--networks", required=True, help="comma-separated ids, or '*' for all")
    tc.add_argument("--name", required=True)
    tc.set_defaults(func=cmd_token_create)
    tl = t.add_parser("list", help="list tokens (never their secrets)")
    tl.set_defaults(func=cmd_token_list)
    tr = t.add_parser("revoke", help="revoke a token by id")
    tr.add_argument("id")
    tr.set_defaults(func=cmd_token_revoke)

    i = sub.add_parser("import", help="import a CSV or JSON file through the API")
    i.add_argument("file", type=Path)
    i.add_argument("--url", default=os.environ.get("CAMGW_URL", "http://127.0.0.1:8080"))
    i.set_defaults(func=cmd_import)

    _audit_parsers(sub)

    sm = sub.add_parser("simulate", help="serve the simulated camera fleet on loopback")
    sm.add_argument("--scale", type=float, default=0.05, help="fleet size vs the inventory")
    sm.add_argument("--delay", type=float, default=0.05, help="seconds before each answer")
    sm.add_argument("--quirks", action="store_true", help="give a few cameras each quirk")
    sm.add_argument("--rtsp-only-every", type=int, default=25, help="every Nth camera RTSP-only")
    sm.add_argument("--no-rtsp", action="store_true", help="no GStreamer RTSP streams")
    sm.add_argument("--inventory-dir", type=Path, help="write RTSP-only inventories (CSV) here")
    sm.add_argument(
        "--nvr-share", type=float, default=0.0, help="share of cameras behind 16-channel NVRs"
    )
    sm.add_argument(
        "--encoder-share",
        type=float,
        default=0.0,
        help="share of cameras behind 4-channel encoders",
    )
    sm.set_defaults(func=cmd_simulate)

    dc = sub.add_parser("discover", help="run one discovery with a progress bar")
    dc.add_argument("--network", required=True)
    dc.set_defaults(func=cmd_discover)

    adapter_cli.register(sub)

    k = sub.add_parser("keygen", help="create the credential key file")
    k.set_defaults(func=cmd_keygen)
    _acl_parser(sub)
    return p


def _audit_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    a = sub.add_parser("audit", help="read and check the audit trail").add_subparsers(required=True)
    at = a.add_parser("tail", help="print the newest entries as JSON lines")
    at.add_argument("-n", type=int, default=20)
    at.set_defaults(func=cmd_audit_tail)
    av = a.add_parser("verify", help="check the chain (archive, then stream; or one export file)")
    av.add_argument("--archive-dir", type=Path, help="archive segments (default: [audit])")
    av.add_argument("--file", type=Path, help="verify this export or segment file only")
    av.set_defaults(func=cmd_audit_verify)
    ae = a.add_parser("export", help="entries since a time as a verifiable JSON Lines file")
    ae.add_argument("--since", required=True, help="ISO 8601 date-time, e.g. 2024-05-01T00:00Z")
    ae.add_argument("--out", type=Path, help="file to write (default: stdout)")
    ae.add_argument("--archive-dir", type=Path, help="archive segments (default: [audit])")
    ae.set_defaults(func=cmd_audit_export)


# -- serve / demo ------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    vault = CredentialVault(load_key(settings.secrets.key_file))
    _run_app(settings, vault, args.host or settings.server.host, args.port or settings.server.port)
    return 0


def _run_app(
    settings: Settings,
    vault: CredentialVault,
    host: str,
    port: int,
    on_ready: Callable[[web.Application], Awaitable[None]] | None = None,
) -> None:
    raise_nofile_limit()  # every network's discovery may hold concurrency x 4 connections
    app = create_app(settings, vault)
    if on_ready is not None:
        app.on_startup.append(on_ready)  # after the cleanup contexts: every service is up
    web.run_app(
        app,
        host=host,
        port=port,
        access_log=logging.getLogger("camgw.access") if settings.server.access_log else None,
        access_log_class=logs.AccessLogger,
        print=None,
    )


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Private Redis, the simulated fleet as a child process, the gateway discovering it."""
    var: Path = args.var.resolve()
    key_file = var / "camgw.key"
    if not key_file.exists():
        create_key_file(key_file)
    ensure_demo_passwords(settings)  # the simulator child inherits them
    with contextlib.ExitStack() as stack:
        url = settings.redis.url
        if not os.environ.get("REDIS_URL"):
            port = int(os.environ.get("CAMGW_REDIS_PORT", "6390"))
            server = RedisServer(var / "redis", port=port).start()
            stack.callback(server.stop)
            url = server.url
        inventories = var / "inventory"
        sim = _start_simulator(args.scale, inventories)
        stack.callback(_stop_child, sim)
        settings = with_inventories(
            settings, {p.stem: p for p in sorted(inventories.glob("*.csv"))}
        ).model_copy(
            update={
                "redis": settings.redis.model_copy(update={"url": url}),
                "secrets": settings.secrets.model_copy(update={"key_file": key_file}),
                "audit": settings.audit.model_copy(update={"archive_dir": var / "audit"}),
            }
        )
        vault = CredentialVault(load_key(key_file))
        port = args.port or settings.server.port
        base = f"http://{settings.server.host}:{port}"

        async def prepare(app: web.Application) -> None:
            registry, tokens_store = app[REGISTRY], app[TOKENS]
            fleet = fleet_for(settings, args.scale)
            added = await seed_registry(registry, settings, fleet)
            tokens = await demo_tokens(tokens_store, settings)
            write_token_file(var / "demo-tokens.txt", tokens)
            for network in sorted({c.network for c in fleet}):
                app[DISCOVERY].start(network, "demo")
            print(
                f"\ncamgw demo: {base}  (registry: {url}; {len(fleet)} simulated cameras, "
                f"{added} newly registered; discovery running)"
            )
            print(f"  OpenAPI: {base}/api/v1/openapi.json")
            for role, token in tokens.items():
                print(f"  {role:<24} {token}")
            print(
                f'  try: curl -H "Authorization: Bearer <viewer token>" {base}/api/v1/summary'
                f"\n  tokens are also in {var / 'demo-tokens.txt'}\n",
                flush=True,
            )

        _run_app(settings, vault, settings.server.host, port, prepare)
    return 0


def _start_simulator(scale: float, inventories: Path) -> subprocess.Popen[str]:
    """`camgw simulate` as a child: its event loop and CPU stay apart from the gateway's."""
    cmd = [
        sys.executable,
        "-m",
        "gateway",
        "simulate",
        "--scale",
        str(scale),
        "--quirks",
        "--inventory-dir",
        str(inventories),
    ]
    child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    line = child.stdout.readline()
    if not line.startswith("READY"):
        _stop_child(child)
        raise RuntimeError("the camera simulator did not start (see its log above)")
    print(f"simulator: {line.strip()}", flush=True)
    return child


def _stop_child(child: subprocess.Popen[str]) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()


# -- tokens ------------------------------------------------------------------------------


def _with_redis(
    settings: Settings, work: Callable[[Redis], Awaitable[int]], link: RedisLink | None = None
) -> int:
    """Run `work` with a client on `link` (default: `[redis]`, TLS and ACL user included); a
    link that cannot be made is one sentence naming the setting, exit 1."""
    link = link or settings.redis

    async def run() -> int:
        client = redis_client(link)
        try:
            return await work(client)
        finally:
            await client.aclose()

    try:
        return asyncio.run(run())
    except RedisLinkError as exc:
        print(f"camgw: {exc}", file=sys.stderr)
    except (RedisConnectionError, RedisTimeoutError, NoPermissionError) as exc:
        print(f"camgw: {explain(exc, link)}", file=sys.stderr)
    return 1


def cmd_token_create(args: argparse.Namespace, settings: Settings) -> int:
    networks = [n.strip() for n in args.networks.split(",") if n.strip()]
    unknown = [n for n in networks if n != "*" and n not in settings.network_by_id]
    if unknown or not networks:
        print(
            f"camgw: unknown network(s): {', '.join(unknown) or '(none given)'}; "
            f"configured: {', '.join(settings.network_by_id)}",
            file=sys.stderr,
        )
        return 2
    vault = _vault(settings)  # before anything changes: no token without its audit entry

    async def work(client: Redis) -> int:
        tokens = TokenStore(client, settings.redis.prefix)
        token, info = await tokens.create(args.name, Role(args.role), networks, cli_actor())
        await _audit(
            _audit_log(client, settings, vault),
            "token.create",
            info.id,
            f"{info.name}: {info.role.value} on {','.join(info.networks)}",
        )
        print(token)
        print(f"(token {info.id} for {info.name}; shown once, store it now)", file=sys.stderr)
        return 0

    return _with_redis(settings, work)


def cmd_token_list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(client: Redis) -> int:
        for info in await TokenStore(client, settings.redis.prefix).list():
            print(
                f"{info.id}\t{info.role.value:<8}\t{','.join(info.networks):<30}\t{info.name}"
                f"\t{info.created_at:%Y-%m-%d %H:%M}\t{info.created_by}"
            )
        return 0

    return _with_redis(settings, work)


def cmd_token_revoke(args: argparse.Namespace, settings: Settings) -> int:
    vault = _vault(settings)  # before anything changes: no revocation without its entry

    async def work(client: Redis) -> int:
        removed = await TokenStore(client, settings.redis.prefix).revoke(args.id)
        await _audit(
            _audit_log(client, settings, vault),
            "token.revoke",
            args.id,
            "" if removed else "no such token",
            ok=removed,
        )
        if not removed:
            print(f"camgw: no token {args.id}", file=sys.stderr)
            return 1
        print(f"revoked {args.id}")
        return 0

    return _with_redis(settings, work)


def _vault(settings: Settings) -> CredentialVault:
    """The key file also keys the audit chain: a CLI entry is sealed like a gateway's."""
    return CredentialVault(load_key(settings.secrets.key_file))


def _audit_log(client: Redis, settings: Settings, vault: CredentialVault) -> AuditLog:
    return AuditLog(client, settings.redis.prefix, vault, settings.audit)


async def _audit(audit: AuditLog, action: str, target: str, detail: str, ok: bool = True) -> None:
    await audit.append(
        AuditEvent(
            actor=cli_actor(),
            role="admin",
            action=action,
            target=target,
            outcome="ok" if ok else "not_found",
            status=200 if ok else 404,
            detail=detail,
        )
    )


# -- simulate ----------------------------------------------------------------------------


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    fleet = fleet_for(settings, args.scale)
    quirks = demo_quirks(fleet, rtsp_only_every=args.rtsp_only_every) if args.quirks else None
    devices = build_devices(fleet, network_passwords(settings), quirks, args.rtsp_only_every)
    devices = group_devices(devices, Recorders(args.nvr_share, args.encoder_share))
    if args.inventory_dir:
        write_rtsp_inventories(devices, args.inventory_dir)

    async def serve() -> None:
        async with Simulator(devices, args.delay, serve_rtsp=not args.no_rtsp) as sim:
            rtsp_only = len(sim.rtsp_only_devices)
            cameras = sum(d.channels for d in devices)
            print(
                f"READY {cameras} cameras ({rtsp_only} RTSP-only) on {len(devices)} devices",
                flush=True,
            )
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()

    asyncio.run(serve())
    return 0


# -- discover ----------------------------------------------------------------------------


def cmd_discover(args: argparse.Namespace, settings: Settings) -> int:
    if args.network not in settings.network_by_id:
        print(
            f"camgw: unknown network {args.network!r}; configured: "
            f"{', '.join(settings.network_by_id)}",
            file=sys.stderr,
        )
        return 2
    if settings.network_by_id[args.network].mode == "edge":
        print(
            f"camgw: network {args.network!r} is reached by its edge adapter; start its "
            "discovery through the gateway (POST /api/v1/networks/{id}/discover)",
            file=sys.stderr,
        )
        return 2
    vault = CredentialVault(load_key(settings.secrets.key_file))
    one = settings.model_copy(update={"networks": (settings.network_by_id[args.network],)})

    async def work(client: Redis) -> int:
        audit = _audit_log(client, settings, vault)
        registry = Registry(client, settings, vault, audit)
        adapters: dict[str, NetworkAdapter] = {
            n.id: in_process_adapter(n, settings, vault) for n in one.networks
        }
        service = DiscoveryService(
            settings, client, registry, Catalog(registry, settings), audit, adapters
        )
        try:
            job = service.start(args.network, cli_actor())
            task = service.state[args.network].task
            assert task is not None
            while not task.done():
                _progress_bar(job)
                await asyncio.wait([task], timeout=0.2)
            job = task.result()
        finally:
            await asyncio.gather(*(a.close() for a in adapters.values()))
        _progress_bar(job)
        print(file=sys.stderr)
        print(discovery_summary(job))
        return 0 if job.state == "done" else 1

    return _with_redis(settings, work)


def _progress_bar(job: DiscoveryJob, width: int = 30) -> None:
    p = job.progress
    done = p.enriched + p.failed
    frac = done / p.found if p.found else 0.0
    bar = "#" * int(frac * width)
    print(
        f"\r{job.network} [{bar:<{width}}] {done}/{p.found}  enriched {p.enriched}  "
        f"failed {p.failed}  {job.elapsed_s:6.1f} s",
        end="",
        file=sys.stderr,
        flush=True,
    )


def discovery_summary(job: DiscoveryJob) -> str:
    p = job.progress
    rate = p.enriched / job.elapsed_s if job.elapsed_s else 0.0
    rows = [
        ("network", job.network),
        ("job", job.id),
        ("state", job.state),
        ("found", str(p.found)),
        ("enriched", str(p.enriched)),
        ("failed", str(p.failed)),
        ("ignored (outside CIDRs)", str(p.ignored)),
        ("elapsed", f"{job.elapsed_s:.1f} s"),
        ("cameras/s", f"{rate:.1f}"),
    ]
    if job.error:
        rows.append(("error", job.error))
    by_step: dict[str, list[str]] = {}
    for f in job.failures:
        by_step.setdefault(f"{f.step}: {f.reason}", []).append(f.address)
    for reason, addresses in sorted(by_step.items(), key=lambda kv: -len(kv[1]))[:10]:
        shown = ", ".join(addresses[:3]) + (" ..." if len(addresses) > 3 else "")
        rows.append((f"failed x{len(addresses)}", f"{reason} [{shown}]"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


# -- import / audit / keygen -------------------------------------------------------------


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    token = os.environ.get("CAMGW_TOKEN")
    if not token:
        print("camgw: set CAMGW_TOKEN to an admin token", file=sys.stderr)
        return 2
    ctype = "application/json" if args.file.suffix.lower() == ".json" else "text/csv"

    async def run() -> int:
        async with (
            ClientSession(timeout=ClientTimeout(total=300)) as http,
            http.post(
                f"{args.url}/api/v1/cameras/import",
                data=args.file.read_bytes(),
                headers={"Authorization": f"Bearer {token}", "Content-Type": ctype},
            ) as resp,
        ):
            body = await resp.json(content_type=None)
        print(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
        return 0 if resp.status == 200 and body.get("failed") == 0 else 1

    return asyncio.run(run())


def cmd_audit_tail(args: argparse.Namespace, settings: Settings) -> int:
    vault = _vault(settings)

    async def work(client: Redis) -> int:
        audit = _audit_log(client, settings, vault)
        page = await audit.query(AuditQuery(limit=args.n))
        for entry in reversed(page.items):
            print(entry.model_dump_json())
        await _audit_read(audit, "tail", f"newest {args.n}", len(page.items))
        return 0

    return _audit_command(settings, work)


def cmd_audit_verify(args: argparse.Namespace, settings: Settings) -> int:
    """Exit 0 with "audit trail intact: ..." or 1 with the first broken or missing link."""
    vault = _vault(settings)
    if args.file is not None:
        try:
            return _verdict(verify_file(args.file, vault.derive(CHAIN_PURPOSE)))
        except OSError as exc:
            print(f"camgw: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
            return 2

    async def work(client: Redis) -> int:
        return _verdict(await _audit_log(client, settings, vault).verify(args.archive_dir))

    return _audit_command(settings, work)


def cmd_audit_export(args: argparse.Namespace, settings: Settings) -> int:
    try:
        since = iso_datetime(args.since)
    except ValueError as exc:
        print(f"camgw: --since {exc}", file=sys.stderr)
        return 2
    vault = _vault(settings)

    async def work(client: Redis) -> int:
        audit = _audit_log(client, settings, vault)
        with contextlib.ExitStack() as stack:
            out = stack.enter_context(args.out.open("wb")) if args.out else sys.stdout.buffer
            count = await audit.export(since, out, args.archive_dir, exported_by=cli_actor())
            out.flush()
        await _audit_read(audit, "export", f"since {since.isoformat()}", count)
        print(f"exported {count} entries since {since.isoformat()}", file=sys.stderr)
        return 0

    return _audit_command(settings, work)


def _verdict(result: Break | str) -> int:
    if isinstance(result, Break):
        print(result.sentence)
        return 1
    print(result)
    return 0


async def _audit_read(audit: AuditLog, via: str, what: str, returned: int) -> None:
    """Reading the trail from the command line is recorded like reading it through the API."""
    await audit.append(
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


def _audit_command(settings: Settings, work: Callable[[Redis], Awaitable[int]]) -> int:
    async def guarded(client: Redis) -> int:
        try:
            return await work(client)
        except CamgwError as exc:
            print(f"camgw: {exc.detail}", file=sys.stderr)
            return 1

    return _with_redis(settings, guarded)


def cmd_keygen(args: argparse.Namespace, settings: Settings) -> int:
    path = settings.secrets.key_file
    if path.exists():
        print(
            f"camgw: {path} exists; refusing to replace a key (stored credentials need it)",
            file=sys.stderr,
        )
        return 1
    create_key_file(path)
    print(f"wrote {path} (mode 600)")
    return 0


# -- acl ---------------------------------------------------------------------------------


def _acl_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ac = sub.add_parser(
        "acl",
        help="print (or --apply) the Redis ACL users: one per edge adapter, one for the gateway",
    )
    ac.add_argument(
        "--all-networks", action="store_true", help='every network, not only mode = "edge"'
    )
    ac.add_argument("--apply", action="store_true", help="ACL SETUSER them (and ACL SAVE)")
    ac.add_argument(
        "--password-dir",
        type=Path,
        help="passwords in DIR/<user>.password: kept if there, else generated there (mode 600)",
    )
    ac.add_argument(
        "--password-file",
        action="append",
        default=[],
        metavar="USER=FILE",
        help="this user's password is the first line of FILE (repeatable)",
    )
    ac.add_argument("--admin-user", help="--apply logs in as this ACL user (default: [redis])")
    pw = ac.add_mutually_exclusive_group()
    pw.add_argument("--admin-password-env", metavar="VAR", help="its password's variable")
    pw.add_argument("--admin-password-file", type=Path, metavar="FILE", help="its password file")
    ac.set_defaults(func=cmd_acl)


def cmd_acl(args: argparse.Namespace, settings: Settings) -> int:
    """ACL-file lines on stdout; new passwords (shown once) and notes on stderr."""
    given: dict[str, Path] = {}
    for item in args.password_file:
        user, sep, file = item.partition("=")
        if not sep or not user or not file:
            print(f"camgw: --password-file wants USER=FILE, not {item!r}", file=sys.stderr)
            return 2
        given[user] = Path(file)
    users = acl.users_for(settings, args.all_networks)
    try:
        creds = acl.credentials(users, given, args.password_dir)
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
            saved = await acl.apply(client, creds)
        except NoPermissionError:
            print(
                f"camgw: ACL user {link.username or 'default'} may not change ACL users; log in "
                "as an admin with --admin-user and --admin-password-env/--admin-password-file",
                file=sys.stderr,
            )
            return 1
        print(f"applied {len(creds)} ACL users to {link.url}; {saved}", file=sys.stderr)
        if await acl.default_user_open(client):
            print(
                "camgw: warning: the default user is on without a password, so anyone who "
                "reaches this Redis has every right; turn it off (ACL SETUSER default off) once "
                "an admin user of your own exists",
                file=sys.stderr,
            )
        return 0

    return _with_redis(settings, work, link)


if __name__ == "__main__":
    raise SystemExit(main())
