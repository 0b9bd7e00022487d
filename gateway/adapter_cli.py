"""`camgw adapter`: one network's edge adapter, run on a machine inside that network
(docs/edge.md). It reads only its own config file (no gateway config on that machine).

    camgw adapter --network police --config /etc/camgw/police-adapter.toml
    camgw adapter --network police --config FILE keygen
    camgw adapter --network police --config FILE credentials --ref REF --username U  (stdin: pw)
    camgw adapter --network police --config FILE audit verify
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path

from adapters.audit_log import LOG_PURPOSE
from adapters.audit_log import check as check_log
from adapters.files import raise_nofile_limit
from adapters.redis_link import RedisLinkError, check, connect
from adapters.remote import EdgeRunner, seal_credentials
from adapters.remote_config import AdapterConfig, ConfigError, load_adapter_config
from adapters.uris import UriCredentials
from adapters.vault import CredentialVault, VaultError, create_key_file, load_key


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("adapter", help="run one network's edge adapter (inside that network)")
    p.add_argument("--network", required=True, help="the network's id")
    p.add_argument(
        "--config", dest="adapter_config", type=Path, required=True, help="the adapter's file"
    )
    p.set_defaults(func=cmd_run, needs_settings=False)
    actions = p.add_subparsers(dest="adapter_action")
    k = actions.add_parser("keygen", help="create the adapter's key file")
    k.set_defaults(func=cmd_keygen)
    c = actions.add_parser("credentials", help="keep a camera's own credentials (stdin: password)")
    c.add_argument("--ref", required=True, help="the camera's ref (the record's device.ref)")
    c.add_argument("--username", required=True)
    c.set_defaults(func=cmd_credentials)
    a = actions.add_parser("audit", help="the adapter's own log").add_subparsers(required=True)
    v = a.add_parser("verify", help="check its hash chain; the first broken or missing link")
    v.set_defaults(func=cmd_verify)


def _config(args: argparse.Namespace) -> AdapterConfig:
    try:
        return load_adapter_config(args.adapter_config, args.network)
    except ConfigError as exc:
        raise SystemExit(f"camgw adapter: {exc}") from None


def _vault(cfg: AdapterConfig) -> CredentialVault:
    try:
        return CredentialVault(load_key(cfg.key_file))
    except VaultError as exc:
        raise SystemExit(f"camgw adapter: {exc}") from None


def cmd_run(args: argparse.Namespace, _: object = None) -> int:
    cfg = _config(args)
    vault = _vault(cfg)
    raise_nofile_limit()  # its discovery may hold concurrency x 4 connections

    async def run() -> None:
        try:
            redis = connect(cfg.redis)
            await check(redis, cfg.redis)
        except RedisLinkError as exc:
            raise SystemExit(f"camgw adapter: {exc}") from None
        runner = EdgeRunner(cfg, redis, vault)
        task = asyncio.create_task(runner.run())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        print(f"camgw adapter: network {cfg.network}, outbound to the registry", flush=True)
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await redis.aclose()

    asyncio.run(run())
    return 0


def cmd_keygen(args: argparse.Namespace, _: object = None) -> int:
    cfg = _config(args)
    if cfg.key_file.exists():
        print(f"camgw adapter: {cfg.key_file} exists; refusing to replace it", file=sys.stderr)
        return 1
    create_key_file(cfg.key_file)
    print(f"wrote {cfg.key_file} (mode 600)")
    return 0


def cmd_credentials(args: argparse.Namespace, _: object = None) -> int:
    cfg = _config(args)
    password = sys.stdin.readline().rstrip("\n")
    if not password:
        print("camgw adapter: give the password on standard input", file=sys.stderr)
        return 2
    seal_credentials(cfg, _vault(cfg), args.ref, UriCredentials(args.username, password))
    print(f"credentials of camera {args.ref} sealed in {cfg.state_dir / 'credentials.json'}")
    return 0


def cmd_verify(args: argparse.Namespace, _: object = None) -> int:
    cfg = _config(args)
    verdict = check_log(cfg.state_dir / "log", _vault(cfg).derive(LOG_PURPOSE))
    print(verdict.sentence)
    return 0 if verdict.ok else 1
