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

from adapters.remote_config import AdapterConfig, ConfigError, load_adapter_config
from adapters.vault import CredentialVault, VaultError, create_key_file, load_key


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


def run(args: argparse.Namespace, _: object = None) -> int:
    from adapters.files import raise_nofile_limit
    from adapters.redis_link import RedisLinkError, check, connect
    from adapters.remote import EdgeRunner

    cfg = _config(args)
    vault = _vault(cfg)
    raise_nofile_limit()  # its discovery may hold concurrency x 4 connections

    async def serve() -> None:
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

    asyncio.run(serve())
    return 0


def keygen(args: argparse.Namespace, _: object = None) -> int:
    cfg = _config(args)
    if cfg.key_file.exists():
        print(f"camgw adapter: {cfg.key_file} exists; refusing to replace it", file=sys.stderr)
        return 1
    create_key_file(cfg.key_file)
    print(f"wrote {cfg.key_file} (mode 600)")
    return 0


def credentials(args: argparse.Namespace, _: object = None) -> int:
    from adapters.remote import seal_credentials
    from adapters.uris import UriCredentials

    cfg = _config(args)
    password = sys.stdin.readline().rstrip("\n")
    if not password:
        print("camgw adapter: give the password on standard input", file=sys.stderr)
        return 2
    seal_credentials(cfg, _vault(cfg), args.ref, UriCredentials(args.username, password))
    print(f"credentials of camera {args.ref} sealed in {cfg.state_dir / 'credentials.json'}")
    return 0


def verify(args: argparse.Namespace, _: object = None) -> int:
    from adapters.audit_log import LOG_PURPOSE
    from adapters.audit_log import check as check_log

    cfg = _config(args)
    verdict = check_log(cfg.state_dir / "log", _vault(cfg).derive(LOG_PURPOSE))
    print(verdict.sentence)
    return 0 if verdict.ok else 1
