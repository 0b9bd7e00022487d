"""GB/T 28181 (issue 14): catalog ingestion of a 10,000-channel lower platform, and the latency
of a 2022 image snapshot after the device's upload finishes, in process, against a private
redis-server on 127.0.0.1 (started and stopped here).

Setup: the gateway app (shipped config, `[gb28181]` enabled on loopback, one 2022-edition
platform mapped to `police`) served on a free port; the simulated lower platform
(adapters/simulator/gb28181.py) on the same event loop, over UDP, answering the catalog query
in pages of `--page` items, each after camgw's 200 for the one before.

- ingestion: from the REGISTER to every channel a camera record (the catalog applied), per
  page size; baseline in the same run: the same cameras written by `Registry.create_many`
  directly (the registry's floor, no SIP, no XML).
- snapshot: `--snapshots` GET /api/v1/cameras/{id}/snapshot of distinct channels (no cache),
  through each path: a 2022 platform's image snapshot and a 2016 platform's live INVITE;
  after-upload latency = response received minus the moment the simulator sent
  UploadSnapShotFinished; and the whole request. min / median / max.

The simulator shares the loop (and the core) with the gateway: its XML building and uploads are
in the figures. Aims (issue 14): 10,000 channels within 30 s; a snapshot within 100 ms of the
upload finishing.

    .venv/bin/python bench/gb28181.py                     # 10,000 channels, pages of 10 and 30
    .venv/bin/python bench/gb28181.py --channels 2000 --page 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from aiohttp import web
from common import exit_on_sigterm, header_lines, markdown_table, progress

from adapters.gb28181.config import LowerPlatform, SipServiceConfig
from adapters.simulator.gb28181 import LowerPlatformSim, make_channels
from gateway.app import adapters_for, create_app
from gateway.audit import AuditEvent
from gateway.gb28181 import GB28181, GbGateway, camera_id
from gateway.keys import REGISTRY, TOKENS
from gateway.models import Role
from gateway.redis_server import RedisServer
from gateway.settings import DEFAULT_CONFIG, Settings, load_settings
from gateway.vault import CredentialVault

PLATFORM = "31011700002000000002"  # 2022 edition
OLD_PLATFORM = "31011700002000000003"  # 2016 edition (snapshots by live INVITE)
DOMAIN = "3101170000"
PASSWORD = "bench-password"


def settings_for(redis_url: str, prefix: str) -> Settings:
    base = load_settings(DEFAULT_CONFIG, use_env=False)
    lower = tuple(
        LowerPlatform.model_validate(
            {
                "id": pid,
                "domain": DOMAIN,
                "network": "police",
                "category": "public-security",
                "edition": edition,
                "password_env": "CAMGW_BENCH_GB_PASSWORD",
                "cidrs": ["127.0.0.0/8"],
            }
        )
        for pid, edition in ((PLATFORM, "2022"), (OLD_PLATFORM, "2016"))
    )
    gb = SipServiceConfig(
        enabled=True, udp_port=0, tcp_port=0, snapshot_upload_port=0, platforms=lower
    )
    redis = base.redis.model_copy(update={"url": redis_url, "prefix": prefix})
    return base.model_copy(update={"redis": redis, "gb28181": gb})


async def serve(settings: Settings) -> tuple[web.AppRunner, str]:
    app = create_app(settings, CredentialVault(os.urandom(32)), lambda a: adapters_for(a, "loop"))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


async def ingestion(redis_url: str, channels: int, page: int, run: int) -> float:
    runner, _ = await serve(settings_for(redis_url, f"gbbench{run}"))
    try:
        gw: GbGateway = runner.app[GB28181]
        sim = LowerPlatformSim(
            PLATFORM,
            DOMAIN,
            PASSWORD,
            ("127.0.0.1", gw.transports.ports["udp"]),
            edition="2022",
            channels=make_channels(DOMAIN, channels),
            page_size=page,
        )
        await sim.start()
        try:
            started = time.perf_counter()
            reply = await sim.register()
            if reply.status != 200:
                raise RuntimeError(f"registration refused: {reply.status} {reply.reason}")
            async with asyncio.timeout(300):
                await gw.catalog_applied[PLATFORM].wait()
                await gw.settle()
            took = time.perf_counter() - started
        finally:
            await sim.stop()
        registry = runner.app[REGISTRY]
        stored = await registry.redis.scard(f"{registry.keys.prefix}:gb28181:ch:{PLATFORM}")
        if stored != channels:
            raise RuntimeError(f"{stored} of {channels} channels stored")
        return took
    finally:
        await runner.cleanup()


async def baseline(redis_url: str, channels: int, run: int) -> float:
    """The same records written by Registry.create_many directly (audited, as the service)."""
    runner, _ = await serve(settings_for(redis_url, f"gbbase{run}"))
    try:
        gw: GbGateway = runner.app[GB28181]
        lower = gw.config.platforms[0]
        now = datetime.now(UTC)
        cams = [gw._camera(lower, "2022", c, now) for c in make_channels(DOMAIN, channels)]
        items = [
            (
                c,
                None,
                AuditEvent(
                    actor=f"gb28181:{PLATFORM}",
                    role="platform",
                    action="gb28181.channel.catalog",
                    target=c.id,
                    network="police",
                    outcome="ok",
                    status=200,
                ),
            )
            for c in cams
        ]
        started = time.perf_counter()
        results = await runner.app[REGISTRY].create_many(items)  # type: ignore[arg-type]
        took = time.perf_counter() - started
        if not all(isinstance(r, int) for r in results):
            raise RuntimeError("baseline writes refused")
        return took
    finally:
        await runner.cleanup()


async def snapshots(
    redis_url: str, count: int, platform: str = PLATFORM
) -> tuple[list[float], list[float]]:
    """Snapshots of `count` distinct channels of a 2022 platform (after-upload latency and
    whole request) or of a 2016 one (whole request; no upload: the first list is empty)."""
    runner, base = await serve(settings_for(redis_url, f"gbsnap{platform[-1]}"))
    try:
        gw: GbGateway = runner.app[GB28181]
        sim = LowerPlatformSim(
            platform,
            DOMAIN,
            PASSWORD,
            ("127.0.0.1", gw.transports.ports["udp"]),
            edition="2022" if platform == PLATFORM else "2016",
            channels=make_channels(DOMAIN, count),
            page_size=20,
        )
        await sim.start()
        secret, _ = await runner.app[TOKENS].create("bench-op", Role.operator, ["police"], "bench")
        headers = {"Authorization": f"Bearer {secret}"}
        after: list[float] = []
        whole: list[float] = []
        try:
            await sim.register()
            async with asyncio.timeout(120):
                await gw.catalog_applied[platform].wait()
                await gw.settle()
            async with aiohttp.ClientSession() as http:
                for ch in sim.channels:
                    url = f"{base}/api/v1/cameras/{camera_id('police', ch.device_id)}/snapshot"
                    started = time.perf_counter()
                    async with http.get(url, params={"reason": "BENCH-1"}, headers=headers) as r:
                        body = await r.read()
                    done = time.perf_counter()
                    if r.status != 200 or not body.startswith(b"\xff\xd8"):
                        raise RuntimeError(f"snapshot answered {r.status}: {body[:200]!r}")
                    if sim.finish_sent_at:
                        after.append(done - sim.finish_sent_at[-1])
                    whole.append(done - started)
        finally:
            await sim.stop()
        return after, whole
    finally:
        await runner.cleanup()


def ms(values: list[float]) -> list[str]:
    return [
        f"{min(values) * 1e3:.1f}",
        f"{statistics.median(values) * 1e3:.1f}",
        f"{max(values) * 1e3:.1f}",
    ]


async def main(args: argparse.Namespace) -> int:
    os.environ["CAMGW_BENCH_GB_PASSWORD"] = PASSWORD
    with tempfile.TemporaryDirectory(prefix="camgw-gb-bench-") as tmp:
        redis = RedisServer(Path(tmp) / "redis", appendonly=False).start()
        try:
            rows: list[list[str]] = []
            run = 0
            for page in args.page:
                times = []
                for _ in range(args.runs):
                    run += 1
                    progress(f"ingestion: {args.channels} channels, pages of {page} (run {run})")
                    times.append(await ingestion(redis.url, args.channels, page, run))
                rows.append(
                    [
                        f"catalog over SIP, pages of {page}",
                        *ms(times),
                        f"{args.channels / statistics.median(times):,.0f}",
                    ]
                )
            base_times = []
            for i in range(args.runs):
                progress(f"baseline: Registry.create_many of {args.channels} (run {i + 1})")
                base_times.append(await baseline(redis.url, args.channels, i))
            rows.append(
                [
                    "baseline: Registry.create_many",
                    *ms(base_times),
                    f"{args.channels / statistics.median(base_times):,.0f}",
                ]
            )
            progress(f"snapshots: {args.snapshots} of distinct channels, 2022 image snapshot")
            after, whole = await snapshots(redis.url, args.snapshots)
            progress(f"snapshots: {args.snapshots} of distinct channels, 2016 live INVITE")
            _, live = await snapshots(redis.url, args.snapshots, OLD_PLATFORM)
        finally:
            redis.stop()
    print("\n".join(header_lines()))
    print(
        f"\n## GB/T 28181 catalog ingestion: {args.channels:,} channels, one platform "
        f"({args.runs} runs each)\n"
    )
    print(markdown_table(["path", "min ms", "median ms", "max ms", "channels/s (median)"], rows))
    print(f"\n## GB/T 28181 snapshots ({len(whole)} distinct channels per path, no cache)\n")
    print(
        markdown_table(
            ["path and measure", "min ms", "median ms", "max ms"],
            [
                ["2022: UploadSnapShotFinished sent -> JPEG received", *ms(after)],
                ["2022: whole request (command, upload, finish, policy, watermark)", *ms(whole)],
                [
                    "2016: whole request (INVITE, RTP until a keyframe, BYE, decode, policy)",
                    *ms(live),
                ],
            ],
        )
    )
    return 0


if __name__ == "__main__":
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--channels", type=int, default=10_000)
    parser.add_argument("--page", type=int, nargs="+", default=[10, 30])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--snapshots", type=int, default=15)  # police: 20 a minute
    sys.exit(asyncio.run(main(parser.parse_args())))
