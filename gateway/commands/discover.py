"""`camgw discover --network ID`: one discovery from this process, with a progress bar and a
summary table. The same DiscoveryService as the API's `POST /networks/{id}/discover`, on the
same settings (beside a demo: its camera passwords and RTSP inventories), so the same cameras."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING

from .common import audit_log, cli_actor, fail, run_with_redis, vault
from .context import Context

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from ..models import DiscoveryJob


def discover(args: argparse.Namespace, ctx: Context) -> int:
    settings = ctx.settings
    if args.network not in settings.network_by_id:
        fail(
            f"unknown network {args.network!r}; configured: {', '.join(settings.network_by_id)}",
            2,
        )
    if settings.network_by_id[args.network].mode == "edge":
        fail(
            f"network {args.network!r} is reached by its edge adapter; start its discovery "
            "through the gateway (POST /api/v1/networks/{id}/discover)",
            2,
        )
    from adapters.base import NetworkAdapter

    from ..app import in_process_adapter
    from ..catalog import Catalog
    from ..discovery import DiscoveryService
    from ..registry import Registry

    key = vault(settings)
    network = settings.network_by_id[args.network]

    async def work(client: Redis) -> int:
        audit = audit_log(client, settings, key)
        registry = Registry(client, settings, key, audit)
        adapters: dict[str, NetworkAdapter] = {
            network.id: in_process_adapter(network, settings, key)
        }
        service = DiscoveryService(
            settings, client, registry, Catalog(registry, settings), audit, adapters
        )
        try:
            job = await service.start(args.network, cli_actor())
            # Run here, or (a gateway holds the network's discovery lease) followed there.
            task = asyncio.ensure_future(service.finished(job))
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

    return run_with_redis(ctx, work)


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
        ("ignored", str(p.ignored)),
        *((f"  {reason}", str(n)) for reason, n in sorted(p.ignored_by_reason.items())),
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
