"""How late the event loop runs while a worker thread computes, at CPython's default GIL switch
interval (5 ms) and at the one `camgw serve` and its adapter processes set (adapters/gil.py).

The gateway's worker threads (catalog rebuilds, a district's health verdicts, /metrics) compute
while the event loop serves sockets. The loop gives the GIL up at every select and socket call
and must get it back from the computing thread each time: at the default interval that wait is
up to 5 ms, several times in one pass of the loop. In process, no network beyond loopback: an
asyncio loop answering a TCP echo client as fast as it can, the gateway's own LoopDelay sampler
(every 20 ms here), and one thread parsing camera records with orjson, as a catalog rebuild
does. The two intervals alternate, `--runs` each, `--seconds` per run; the thread's records per
second show what the shorter interval costs it.

    .venv/bin/python bench/loop_gil.py [--runs 3] [--seconds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time

import orjson
from common import header_lines, markdown_table, percentile, progress

from adapters.gil import SWITCH_INTERVAL_S
from gateway.loop_monitor import BUCKETS, LoopDelay

DEFAULT_S = 0.005  # CPython's own
RECORD = orjson.dumps(
    {
        "id": "governance.cam-00001",
        "network": "governance",
        "name": "东泾路 North gate",
        "status": "online",
        "location": {"lat": 31.04, "lon": 121.22, "address": "东泾路 1号"},
        "tags": ["gate", "入口"],
        "profiles": [{"token": f"p{i}", "stream_uri": "rtsp://127.1.0.1/s"} for i in range(4)],
    }
)


def compute(stop: threading.Event, done: list[int]) -> None:
    """Parse records and keep a field of each, as a catalog rebuild does, until told to stop."""
    while not stop.is_set():
        kept = [orjson.loads(RECORD)["name"] for _ in range(1000)]
        done[0] += len(kept)


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(4096):
        writer.write(data)
        await writer.drain()
    writer.close()


async def one_run(interval_s: float, seconds: float) -> tuple[list[float], float]:
    """Loop delays (s) and the thread's records per second."""
    sys.setswitchinterval(interval_s)
    delays: list[float] = []
    monitor = LoopDelay(interval_s=0.02)
    observe = monitor.observe
    monitor.observe = lambda d: (delays.append(d), observe(d))  # type: ignore[method-assign]
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    stop, done = threading.Event(), [0]
    thread = threading.Thread(target=compute, args=(stop, done))
    sampler = asyncio.create_task(monitor.run())
    thread.start()
    started = time.perf_counter()
    try:
        while time.perf_counter() - started < seconds:
            writer.write(b"x" * 512)
            await writer.drain()
            await reader.readexactly(512)
    finally:
        stop.set()
        thread.join()
        sampler.cancel()
        writer.close()
        server.close()
        await server.wait_closed()
        sys.setswitchinterval(DEFAULT_S)
    return delays, done[0] / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    results: dict[float, list[tuple[list[float], float]]] = {DEFAULT_S: [], SWITCH_INTERVAL_S: []}
    for n in range(1, args.runs + 1):
        for interval, runs in results.items():
            progress(f"loop_gil: run {n}/{args.runs}, switch interval {interval * 1000:g} ms")
            runs.append(asyncio.run(one_run(interval, args.seconds)))
    rows = []
    for interval, runs in results.items():
        delays = [d for run, _ in runs for d in run]
        rate = statistics.median(r for _, r in runs)
        rows.append(
            [
                f"{interval * 1000:g}" + (" (CPython's default)" if interval == DEFAULT_S else ""),
                f"{percentile(delays, 50) * 1000:.1f}",
                f"{percentile(delays, 99) * 1000:.1f}",
                f"{max(delays) * 1000:.1f}",
                f"{rate:,.0f}",
            ]
        )
    base = statistics.median(r for _, r in results[DEFAULT_S])
    ours = statistics.median(r for _, r in results[SWITCH_INTERVAL_S])
    print("\n".join(header_lines()))
    print(
        f"loop delay while a thread parses records: {args.runs} runs of {args.seconds:g} s per "
        f"interval, alternating; the loop echoes 512 bytes over loopback as fast as it can"
    )
    columns = ["switch interval ms", "loop delay p50 ms", "p99 ms", "max ms", "thread records/s"]
    print(markdown_table(columns, rows))
    p99 = percentile([d for run, _ in results[SWITCH_INTERVAL_S] for d in run], 99)
    print(
        f"at {SWITCH_INTERVAL_S * 1000:g} ms the thread parses {ours / base:.0%} of its records "
        f"at 5 ms; loop delay p99 {p99 * 1000:.1f} ms against the 20 ms aim "
        f"({'met' if p99 < BUCKETS[5] else 'missed'})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
