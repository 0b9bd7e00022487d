"""Simulated cameras for the namespace test, run inside a camera network's namespace:

    ip netns exec NS python -m tests.integration.cameras SPEC.json

SPEC holds the fleet (`FleetCamera` fields), the network's password and the answer delay.
The addresses are the namespace's own (not loopback), hence `allow_non_loopback`. Prints
"READY" once every camera answers, then serves until SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path

import orjson

from adapters.simulator.fleet import FleetCamera
from adapters.simulator.server import Simulator, build_devices


async def serve(spec: dict[str, object]) -> None:
    fleet = [FleetCamera(**c) for c in spec["cameras"]]  # type: ignore[attr-defined]
    devices = build_devices(fleet, {str(spec["network"]): str(spec["password"])})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with Simulator(
        devices,
        answer_delay_s=float(spec["delay_s"]),  # type: ignore[arg-type]
        allow_non_loopback=True,
        serve_rtsp=False,
    ):
        print("READY", flush=True)
        await stop.wait()


def main() -> None:
    spec = orjson.loads(Path(sys.argv[1]).read_bytes())
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(spec))


if __name__ == "__main__":
    main()
