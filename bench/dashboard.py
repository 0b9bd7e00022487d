"""An idle dashboard: what a browser left open on one view costs the gateway, in requests and
bytes per minute, when nothing changes (issue 13; aim: under 5 KB a minute).

Setup: a private redis-server and `camgw serve` (bench/common.py GatewayStack), the inventory's
3,308 cameras imported through the API, a viewer token. Between Debian's headless Chromium
(driven by Playwright, never a downloaded browser) and the gateway sits a counting TCP relay:
the bytes are those on the wire in both directions (request and response headers and bodies,
TLS aside), the requests are counted from the request lines the relay forwards. For each view
the page is signed in and opened, left to settle (its first load is reported apart), then left
alone for `--seconds` while the relay counts.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import orjson
from common import (
    BenchError,
    GatewayStack,
    exit_on_sigterm,
    header_lines,
    http_request,
    markdown_table,
    progress,
)

from gateway.demo import fleet_for, fleet_rows

AIM_BYTES_PER_MIN = 5 * 1024
VIEWS = ("summary", "cameras", "map", "bigscreen")
SETTLE_S = 5.0
# The big screen's first rotation (summary, then map) loads what its slides show: past it,
# only revalidations. Slides change every 20 s (wall.js SLIDE_MS).
SETTLE_BIGSCREEN_S = 45.0
_METHODS = rb"(?:GET|POST|HEAD|PUT|PATCH|DELETE|OPTIONS)"
_REQUEST_LINE = re.compile(rb"(?:^|\r\n)" + _METHODS + rb" /[^ ]* HTTP/1\.1")


@dataclass
class Counts:
    requests: int = 0
    up: int = 0  # browser -> gateway
    down: int = 0  # gateway -> browser

    def reset(self) -> None:
        self.requests = self.up = self.down = 0


class Relay:
    """127.0.0.1:port -> the gateway, counting what passes."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.counts = Counts()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, upward: bool) -> None:
            try:
                while chunk := await src.read(65536):
                    if upward:
                        self.counts.up += len(chunk)
                        self.counts.requests += len(_REQUEST_LINE.findall(chunk))
                    else:
                        self.counts.down += len(chunk)
                    dst.write(chunk)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


def register_fleet(gw: GatewayStack, admin: str, scale: float) -> int:
    rows = [
        r.model_dump(mode="json", exclude_none=True)
        for r in fleet_rows(fleet_for(gw.settings(), scale=scale))
    ]
    reply = http_request(
        "POST",
        f"{gw.base}/api/v1/cameras/import",
        headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"},
        body=orjson.dumps(rows),
        timeout=120,
    )
    if reply.status != 200 or orjson.loads(reply.body)["failed"]:
        raise BenchError(f"import answered {reply.status}: {reply.body[:300]!r}")
    return len(rows)


async def measure(
    chromium: str, relay: Relay, token: str, seconds: float
) -> list[tuple[str, Counts, Counts]]:
    from playwright.async_api import async_playwright  # noqa: PLC0415 - only when measuring

    results = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, headless=True)
        for view in VIEWS:
            context = await browser.new_context(viewport={"width": 1920, "height": 1080})
            page = await context.new_page()
            relay.counts.reset()
            await page.goto(f"http://127.0.0.1:{relay.port}/")
            await page.fill("#token", token)
            await page.click("#signin button[type=submit]")
            await page.wait_for_selector("#nav a")
            await page.evaluate("(v) => { location.hash = v; }", f"#/{view}")
            await asyncio.sleep(SETTLE_BIGSCREEN_S if view == "bigscreen" else SETTLE_S)
            first = Counts(relay.counts.requests, relay.counts.up, relay.counts.down)
            relay.counts.reset()
            progress(f"{view}: idle for {seconds:.0f} s")
            await asyncio.sleep(seconds)
            idle = Counts(relay.counts.requests, relay.counts.up, relay.counts.down)
            results.append((view, first, idle))
            await context.close()
        await browser.close()
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=60.0, help="idle time per view")
    p.add_argument("--scale", type=float, default=1.0, help="fleet size vs the inventory")
    p.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = p.parse_args(argv)
    if not Path(args.chromium).exists():
        raise BenchError(f"no Chromium at {args.chromium}: apt-get install chromium")
    exit_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="camgw-bench-dash-") as tmp, ExitStack() as stack:
        progress("starting redis-server and camgw serve")
        gw = GatewayStack(Path(tmp) / "gateway", core=None)
        stack.callback(gw.stop)
        gw.start()
        admin = gw.token("bench-admin", "admin", ["*"])
        viewer = gw.token("bench-viewer", "viewer", ["*"])
        cameras = register_fleet(gw, admin, args.scale)
        progress(f"{cameras} cameras registered; measuring {', '.join(VIEWS)}")

        async def run() -> list[tuple[str, Counts, Counts]]:
            relay = Relay(gw.port)
            await relay.start()
            try:
                return await measure(args.chromium, relay, viewer, args.seconds)
            finally:
                await relay.stop()

        results = asyncio.run(run())
    per_min = 60.0 / args.seconds
    rows = []
    for view, first, idle in results:
        total = (idle.up + idle.down) * per_min
        rows.append(
            [
                view,
                f"{first.requests} req, {(first.up + first.down) / 1024:,.0f} KB",
                f"{idle.requests * per_min:.1f}",
                f"{idle.up * per_min / 1024:.2f} / {idle.down * per_min / 1024:.2f}",
                f"{total / 1024:.2f}",
                "ok" if total < AIM_BYTES_PER_MIN else "MISSED",
            ]
        )
    table = markdown_table(
        [
            "view (viewer)",
            "first load",
            "idle req/min",
            "idle KB/min up / down",
            "idle KB/min",
            "aim < 5 KB/min",
        ],
        rows,
    )
    print(
        "\n".join(
            [
                "## Idle dashboard: what one open browser costs the gateway",
                "",
                *header_lines(),
                f"fleet: {cameras} cameras (imported, status unknown: nothing changes); "
                f"viewer token '*'; headless Chromium {args.chromium}",
                f"bytes on the wire both ways through a counting relay; each view idle "
                f"{args.seconds:.0f} s after a {SETTLE_S:.0f} s settle",
                "",
                table,
                "",
            ]
        )
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        sys.exit(1)
