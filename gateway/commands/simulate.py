"""`camgw simulate`: the simulated camera fleet alone, on loopback (the demo runs it as a
child; benchmarks and tests run it on their own)."""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from .common import fail
from .context import Context, with_password_files


def simulate(args: argparse.Namespace, ctx: Context) -> int:
    from adapters.simulator.server import (
        Recorders,
        Simulator,
        build_devices,
        demo_quirks,
        group_devices,
    )

    from ..demo import fleet_for, network_passwords, write_rtsp_inventories

    settings = with_password_files(ctx.settings, _password_files(args.password_file))
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


def _password_files(given: list[str]) -> dict[str, Path]:
    out = {}
    for item in given:
        network, sep, path = item.partition("=")
        if not sep or not network or not path:
            fail(f"--password-file wants NETWORK=FILE, not {item!r}", 2)
        out[network] = Path(path)
    return out
