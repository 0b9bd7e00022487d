"""RTSP frame grabs per codec (H.264, H.265, MJPEG): cold and warm, at the adapter's seam.

What `adapters.network` does for a snapshot from a stream, without the gateway around it:
`grab_jpeg` (cold: OPTIONS, DESCRIBE, SETUP, PLAY, the first keyframe, TEARDOWN, decode and
encode in a thread) and `StreamPool.jpeg` (warm: the stream kept playing, its newest frame).
Against the GStreamer RTSP simulator (x264enc, x265enc, jpegenc; 720p25, 1 s GOPs) on
127.2.253.0/24, the simulator pinned to one core and this process (the adapter) to the other.

Cases, per codec, per run:
- cold, camera idle: a camera nobody watches (its encoder starts on demand, so the first frame
  is a keyframe); a fresh camera for each grab, one encoder at a time.
- cold, camera streaming: another viewer keeps the camera streaming (as a real camera always
  is): the grab joins anywhere in the GOP (a seeded random wait) and waits for the next
  keyframe: ~0.5 s on average with 1 s GOPs, whatever the codec (MJPEG: every frame is one).
- warm: the next requests to a stream in the pool, one every 100 ms (2.5 frame intervals: each
  finds a newer frame), as bench/snapshots.py spaces them.
- adapter CPU: this process's CPU time over the warm requests (decoding ahead while watched,
  plus converting and encoding each answer), and over 2 s of the same warm stream unwatched.

Each figure is min / median / max over the runs of the per-run p50 (p99 for the warm p99).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import av
from common import (
    LOAD_CORE,
    SERVER_CORE,
    BenchError,
    can_pin,
    exit_on_sigterm,
    fmt_spread,
    header_lines,
    markdown_table,
    percentile,
    progress,
)

from adapters.rtsp import RtspPlayer, grab_jpeg, open_stream
from adapters.simulator.rtsp_server import Codec, RtspCamera, RtspSimulator, check_gstreamer
from adapters.stream_pool import DECODE_AHEAD_S, StreamPool

CODECS: tuple[Codec, ...] = ("h264", "h265", "mjpeg")
NAMES = {"h264": "H.264", "h265": "H.265", "mjpeg": "MJPEG"}
PASSWORD = "bench-rtsp-pw"
WARM_SPACING_S = 0.1
SETTLE_S = 1.0  # between cold grabs: the previous camera's encoder stops
AIMS = {"h265": (0.5, 0.020)}  # cold (camera idle) p50 < 0.5 s, warm p50 < 20 ms


def allowed(host: str) -> bool:
    return host.startswith("127.")


@dataclass
class Figures:
    cold_idle: list[float] = field(default_factory=list)  # per-run p50, s
    cold_streaming: list[float] = field(default_factory=list)
    warm_p50: list[float] = field(default_factory=list)
    warm_p99: list[float] = field(default_factory=list)
    warm_new: list[float] = field(default_factory=list)  # requests answered with a newer frame
    cpu_watched: list[float] = field(default_factory=list)  # fraction of a core
    cpu_unwatched: list[float] = field(default_factory=list)
    jpeg_bytes: list[int] = field(default_factory=list)


def cameras(runs: int, cold_grabs: int) -> list[RtspCamera]:
    """Per codec: runs x cold_grabs idle cameras, one streaming camera per run, one warm one."""
    out, n = [], 0
    for codec in CODECS:
        names = [f"idle-{r}-{g}" for r in range(runs) for g in range(cold_grabs)]
        names += [f"streaming-{r}" for r in range(runs)] + ["warm"]
        for name in names:
            n += 1
            address = f"127.2.253.{n}"
            out.append(RtspCamera(f"{codec}-{name}", address, "admin", PASSWORD, codec=codec))
    if n > 254:
        raise BenchError("too many cameras for 127.2.253.0/24: fewer --runs or --cold-grabs")
    return out


async def timed(make: Callable[[], Awaitable[bytes]]) -> tuple[float, bytes]:
    started = time.perf_counter()
    data = await make()
    return time.perf_counter() - started, data


async def keep_streaming(player: RtspPlayer, stop: asyncio.Event) -> None:
    await player.run(lambda: None, stop.is_set)


async def one_run(
    sim: RtspSimulator, run: int, args: argparse.Namespace, figures: dict[str, Figures]
) -> None:
    executor = ThreadPoolExecutor(2, thread_name_prefix="bench-rtsp")
    phase = random.Random(run)  # where in the GOP a grab joins a streaming camera
    try:
        for codec in CODECS:
            fig = figures[codec]
            # cold, camera idle
            times = []
            for g in range(args.cold_grabs):
                await asyncio.sleep(SETTLE_S)
                uri = sim.url(f"{codec}-idle-{run}-{g}")
                seconds, data = await timed(
                    lambda uri=uri: grab_jpeg(
                        uri, "admin", PASSWORD, allowed=allowed, executor=executor
                    )
                )
                times.append(seconds)
                fig.jpeg_bytes.append(len(data))
            fig.cold_idle.append(statistics.median(times))
            progress(f"run {run + 1} {codec}: cold idle " + _ms_list(times))
            # cold, camera streaming to another viewer
            await asyncio.sleep(SETTLE_S)
            uri = sim.url(f"{codec}-streaming-{run}")
            times = []
            async with await open_stream(uri, "admin", PASSWORD, allowed=allowed) as viewer:
                await viewer.keyframe()
                stop = asyncio.Event()
                keeper = asyncio.create_task(keep_streaming(viewer, stop))
                try:
                    for _ in range(args.cold_grabs):
                        await asyncio.sleep(phase.uniform(0.1, 1.1))  # anywhere in the GOP
                        seconds, _ = await timed(
                            lambda uri=uri: grab_jpeg(
                                uri, "admin", PASSWORD, allowed=allowed, executor=executor
                            )
                        )
                        times.append(seconds)
                finally:
                    stop.set()
                    keeper.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await keeper
            fig.cold_streaming.append(statistics.median(times))
            progress(f"run {run + 1} {codec}: cold streaming " + _ms_list(times))
            # warm
            await asyncio.sleep(SETTLE_S)
            await warm(sim.url(f"{codec}-warm"), executor, args, fig)
            progress(
                f"run {run + 1} {codec}: warm p50 {fig.warm_p50[-1] * 1000:.1f} ms, "
                f"CPU {fig.cpu_watched[-1]:.0%} watched, {fig.cpu_unwatched[-1]:.0%} unwatched"
            )
    finally:
        executor.shutdown(wait=True)


async def warm(
    uri: str, executor: ThreadPoolExecutor, args: argparse.Namespace, fig: Figures
) -> None:
    pool = StreamPool(executor, max_streams=1, idle_s=60.0)
    try:
        taken: set[float] = set()

        async def grab() -> bytes:
            data, taken_at, _ = await pool.jpeg(
                uri, "admin", PASSWORD, allowed=allowed, timeout_s=5
            )
            taken.add(taken_at)
            return data

        await grab()  # opens the stream (a cold grab through the pool)
        await asyncio.sleep(1.0)
        times = []
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for _ in range(args.warm_requests):
            await asyncio.sleep(WARM_SPACING_S)
            seconds, _ = await timed(grab)
            times.append(seconds)
        fig.cpu_watched.append((time.process_time() - cpu0) / (time.perf_counter() - wall0))
        fig.warm_new.append((len(taken) - 1) / args.warm_requests)  # a newer frame each?
        if fig.warm_new[-1] < 0.5:
            raise BenchError(f"{uri}: {len(taken) - 1} new frames for {args.warm_requests}")
        fig.warm_p50.append(percentile(times, 50))
        fig.warm_p99.append(percentile(times, 99))
        await asyncio.sleep(DECODE_AHEAD_S + 0.5)  # no longer watched: decoding stops
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(2.0)
        fig.cpu_unwatched.append((time.process_time() - cpu0) / (time.perf_counter() - wall0))
        if not pool.is_warm(uri, "admin", PASSWORD):
            raise BenchError(f"{uri}: the warm stream closed during the benchmark")
    finally:
        await pool.close()


def _ms_list(times: list[float]) -> str:
    return ", ".join(f"{t * 1000:.0f}" for t in times) + " ms"


def pin_simulator(pid: int | None) -> None:
    """Every thread of the simulator onto LOAD_CORE (threads it starts later inherit it)."""
    if pid is None:
        return
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(int(task), {LOAD_CORE})


async def bench(args: argparse.Namespace) -> dict[str, Figures]:
    figures = {codec: Figures() for codec in CODECS}
    pinned = can_pin()
    if pinned:  # the simulator inherits LOAD_CORE; this process then moves to SERVER_CORE
        os.sched_setaffinity(0, {LOAD_CORE})
    sim = RtspSimulator(cameras(args.runs, args.cold_grabs))
    await sim.start()
    try:
        if pinned:
            pin_simulator(sim.pid)
            os.sched_setaffinity(0, {SERVER_CORE})
        for run in range(args.runs):
            await one_run(sim, run, args, figures)
    finally:
        await sim.stop()
    return figures


def report(
    figures: dict[str, Figures], args: argparse.Namespace, gst: str, header: list[str]
) -> str:
    rows = []
    for codec in CODECS:
        fig = figures[codec]
        rows.append(
            [
                NAMES[codec],
                fmt_spread((t * 1000 for t in fig.cold_idle), ",.0f"),
                fmt_spread((t * 1000 for t in fig.cold_streaming), ",.0f"),
                fmt_spread((t * 1000 for t in fig.warm_p50), ".1f"),
                fmt_spread((t * 1000 for t in fig.warm_p99), ".1f"),
                fmt_spread(fig.warm_new, ".0%"),
                fmt_spread(fig.cpu_watched, ".0%"),
                fmt_spread(fig.cpu_unwatched, ".1%"),
                f"{statistics.median(fig.jpeg_bytes) / 1000:.0f}",
            ]
        )
    table = markdown_table(
        [
            "codec",
            "cold, camera idle: p50 ms",
            "cold, camera streaming: p50 ms",
            "warm p50 ms",
            "warm p99 ms",
            "warm: newer frame",
            "adapter CPU, watched",
            "adapter CPU, unwatched",
            "JPEG kB",
        ],
        rows,
    )
    libavcodec = ".".join(map(str, av.library_versions["libavcodec"]))
    lines = [
        "# RTSP grabs per codec (bench/rtsp_codecs.py)",
        "",
        *header,
        f"PyAV {av.__version__} (libavcodec {libavcodec}),"
        f" {gst}; simulator: 720p25, 1 s GOPs, x264enc/x265enc ultrafast zerolatency,"
        " jpegenc quality 85",
        f"{args.runs} runs; per run and codec {args.cold_grabs} cold grabs per case, "
        f"{args.warm_requests} warm requests {WARM_SPACING_S * 1000:.0f} ms apart; "
        "cells: min / median / max over runs of the per-run p50 (p99)",
        "",
        table,
        "",
        "CPU: this process (our RTSP client, depacketizing, decoding, JPEG encoding) as a "
        "fraction of one core; watched = while polled every 100 ms (frames decoded as they "
        f"arrive), unwatched = the same warm stream {DECODE_AHEAD_S:g} s after its last request "
        "(reading packets only). MJPEG answers are the camera's own JPEG (quality 85), others "
        "are encoded at quality 85.",
    ]
    for codec, (cold_aim, warm_aim) in AIMS.items():
        fig = figures[codec]
        cold = statistics.median(fig.cold_idle)
        warm_p50 = statistics.median(fig.warm_p50)
        lines.append(
            f"aim {NAMES[codec]} cold (camera idle) p50 < {cold_aim * 1000:.0f} ms: "
            f"{cold * 1000:.0f} ms, {'aim met' if cold < cold_aim else 'aim missed'}; "
            f"warm p50 < {warm_aim * 1000:.0f} ms: {warm_p50 * 1000:.1f} ms, "
            f"{'aim met' if warm_p50 < warm_aim else 'aim missed'}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=3, help="rounds (>= 3)")
    p.add_argument("--cold-grabs", type=int, default=5, help="cold grabs per case and run")
    p.add_argument("--warm-requests", type=int, default=30, help="warm requests per run")
    args = p.parse_args(argv)
    if args.runs < 3:
        p.error("--runs must be at least 3")
    exit_on_sigterm()
    header = header_lines()  # before this process pins itself to one core
    gst = asyncio.run(check_gstreamer())
    figures = asyncio.run(bench(args))
    print(report(figures, args, gst, header), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
