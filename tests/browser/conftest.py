"""The dashboard in a real browser: Debian's Chromium, headless, driven by Playwright for Python
(never a browser Playwright downloads), against `camgw demo --scale 0.01` (its own Redis, the
simulated fleet on loopback, one token per role) started for the module in a temporary
directory. Every request a page makes is recorded; screenshots of each view are written to
$CAMGW_ARTEFACTS (default tests/artefacts/browser, git-ignored).

Without Chromium (`make test` installs it with Debian's `chromium` package) or Playwright the
tests skip, saying which is missing (`pytest -rs` shows it).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import ClientConnectionError, ClientSession

from gateway.redis_server import free_port
from tests.gateway.test_cli_demo import clean_env

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CAMGW_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARTEFACTS = Path(os.environ.get("CAMGW_ARTEFACTS") or ROOT / "tests" / "artefacts") / "browser"

try:
    from playwright.async_api import Browser, Page, Request, async_playwright
except ImportError:  # every test here skips, saying so (SKIP)
    async_playwright = None


def _why_not() -> str | None:
    if async_playwright is None:
        return "Playwright for Python is not installed (pip install -e '.[test]'; make test does)"
    if not Path(CHROMIUM).exists():
        return (
            f"no Chromium at {CHROMIUM}: install Debian's `chromium` package (make test does, as "
            "root) or set CAMGW_CHROMIUM"
        )
    return None


SKIP = _why_not()  # the browser tests' modules: pytestmark = pytest.mark.skipif(SKIP ...)
needs_browser = pytest.mark.skipif(SKIP is not None, reason=SKIP or "")


@dataclass
class Gateway:
    cwd: Path
    url: str
    tokens: dict[str, str]

    async def api(self, role: str, path: str, method: str = "GET", **kw: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"}
        async with (
            ClientSession() as s,
            s.request(method, self.url + path, headers=headers, **kw) as r,
        ):
            body = await r.read()
            is_json = r.content_type.endswith("json")
            return r.status, orjson.loads(body) if is_json and body else body


@pytest.fixture(scope="package")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    cwd = tmp_path_factory.mktemp("dashboard")
    port, redis_port = free_port(), free_port()
    proc, _ = await _start_demo(cwd, port, redis_port)
    assert proc.stderr is not None
    drain = asyncio.create_task(proc.stderr.read())  # its warnings never fill the pipe
    try:
        tokens = dict(
            line.split("\t") for line in (cwd / "var/demo-tokens.txt").read_text().splitlines()
        )
        gw = Gateway(cwd, f"http://127.0.0.1:{port}", tokens)
        await _discoveries_done(gw)
        yield gw
    finally:
        if proc.returncode is None:
            proc.terminate()
            async with asyncio.timeout(30):
                await proc.wait()
        await drain


# another demo's simulator (tests/gateway/test_cli_demo.py) may hold the same addresses
_BUSY_WAIT_S = 180


async def _start_demo(
    cwd: Path, port: int, redis_port: int
) -> tuple[asyncio.subprocess.Process, list[str]]:
    """`camgw demo`, up to its banner. The simulator's fixed loopback addresses may be held by
    another demo on this machine (another test run): then it is tried again until they are free."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _BUSY_WAIT_S
    while True:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            "demo",
            "--scale",
            "0.01",
            "--port",
            str(port),
            cwd=cwd,
            env=clean_env(CAMGW_REDIS_PORT=str(redis_port), CAMGW_LOG_LEVEL="WARNING"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stderr is not None
        banner: list[str] = []
        async with asyncio.timeout(120):
            while not any(line.startswith("  tokens are also in") for line in banner):
                line = (await proc.stdout.readline()).decode()
                if not line:
                    break
                banner.append(line)
        if banner and banner[-1].startswith("  tokens are also in"):
            return proc, banner
        err = (await proc.stderr.read()).decode()
        await proc.wait()
        if "address already in use" in err and loop.time() < deadline:
            await asyncio.sleep(3)
            continue
        raise AssertionError(f"the demo ended before its banner: {banner} {err}")


async def _discoveries_done(gw: Gateway) -> None:
    """The demo's first discovery of each network has finished (cameras online, and a
    discovery the tests start is not refused as already running)."""
    async with asyncio.timeout(90):
        while True:
            try:  # the banner is printed as the gateway starts, just before it listens
                _, nets = await gw.api("admin", "/api/v1/networks")
            except ClientConnectionError:
                nets = None
            if nets is not None and all(n["adapter"]["state"] != "running" for n in nets):
                return
            await asyncio.sleep(0.3)


@pytest.fixture(scope="package")
async def browser() -> AsyncIterator[Browser]:
    if SKIP is not None or async_playwright is None:
        pytest.skip(SKIP or "")
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield b
        await b.close()


@dataclass
class Session:
    """A page and every request it made."""

    page: Page
    gateway: Gateway
    requests: list[str] = field(default_factory=list)

    async def sign_in(self, role: str) -> None:
        await self.page.goto(self.gateway.url + "/")
        await self.page.fill("#token", self.gateway.tokens[role])
        await self.page.click("#signin button[type=submit]")
        await self.page.wait_for_selector("#nav a")

    async def go(self, view: str) -> None:
        await self.page.evaluate("(v) => { location.hash = v; }", f"#/{view}")

    async def shot(self, name: str) -> None:
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(ARTEFACTS / f"{name}.png"), full_page=True)

    def foreign(self) -> list[str]:
        """Requests to anything but the gateway (blob: and data: URLs are the page's own)."""
        ok = (self.gateway.url + "/", "blob:", "data:")
        return [u for u in self.requests if not u.startswith(ok)]


@pytest.fixture
async def session(browser: Browser, gateway: Gateway) -> AsyncIterator[Session]:
    context = await browser.new_context(viewport={"width": 1400, "height": 900}, locale="zh-CN")
    page = await context.new_page()
    s = Session(page, gateway)

    def record(request: Request) -> None:
        s.requests.append(request.url)

    page.on("request", record)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield s
    await context.close()
    assert not errors, f"script errors in the page: {errors}"
    assert not s.foreign(), f"the page asked something other than the gateway: {s.foreign()}"
