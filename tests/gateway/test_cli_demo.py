"""The CLI beside a running demo, as the README tells a new operator to use it: every command
finds the demo's registry, key, camera passwords and RTSP inventories through `var/demo.json`,
without flags, and says which registry it uses; failures are sentences.

One demo (`camgw demo --scale 0.01`, its own Redis port and API port) runs in a temporary
directory for the module; every command runs from that directory, as `camgw` would from a
checkout. Addresses: the demo fleet's loopback ranges (127.1/16, 127.2/16, 127.3/16).
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import ClientConnectorError, ClientSession

from gateway.redis_server import free_port

pytestmark = pytest.mark.slow

TOKEN = re.compile(r"^cgw_([0-9a-f]{8})_\S{20,}$")
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    code: int
    out: str
    err: str


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a shell without camgw settings (and the checkout on the path)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAMGW_", "REDIS_"))}
    return env | {"PYTHONPATH": str(ROOT)} | extra


async def camgw(cwd: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        *args,
        cwd=cwd,
        env=env or clean_env(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(120):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


@dataclass
class Demo:
    cwd: Path
    url: str
    redis_port: int
    pid: int
    tokens: dict[str, str]

    def registry_line(self) -> str:
        return f"camgw: registry redis://127.0.0.1:{self.redis_port}/0 (the demo's, var/demo.json)"

    async def api(self, method: str, path: str, token: str, **kw: Any) -> tuple[int, Any]:
        async with (
            ClientSession() as http,
            http.request(
                method, self.url + path, headers={"Authorization": f"Bearer {token}"}, **kw
            ) as resp,
        ):
            return resp.status, await resp.json(content_type=None)


@pytest.fixture(scope="module")
async def demo(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Demo]:
    cwd = tmp_path_factory.mktemp("checkout")
    port, redis_port = free_port(), free_port()
    env = clean_env(CAMGW_REDIS_PORT=str(redis_port), CAMGW_LOG_LEVEL="WARNING")
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
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    banner: list[str] = []
    try:
        async with asyncio.timeout(120):
            while not any(line.startswith("  tokens are also in") for line in banner):
                line = (await proc.stdout.readline()).decode()
                assert line, f"the demo ended before its banner: {banner}"
                banner.append(line)
        tokens = dict(
            line.split("\t") for line in (cwd / "var/demo-tokens.txt").read_text().splitlines()
        )
        yield Demo(cwd, f"http://127.0.0.1:{port}", redis_port, proc.pid, tokens)
    finally:
        if proc.returncode is None:
            proc.terminate()
            async with asyncio.timeout(30):
                await proc.wait()


async def test_token_commands_use_the_demos_registry_and_say_so(demo: Demo) -> None:
    created = await camgw(demo.cwd, "token", "create", "--role", "viewer", "--networks",
                          "governance", "--name", "ops-wall")  # fmt: skip
    assert created.code == 0, created.err
    assert created.err.splitlines()[0] == demo.registry_line()
    token = created.out.strip()
    match = TOKEN.match(token)
    assert match
    status, page = await demo.api("GET", "/api/v1/cameras?limit=5", token)
    assert status == 200 and page["items"]  # the token works on the demo's gateway

    listed = await camgw(demo.cwd, "token", "list")
    assert listed.code == 0, listed.err
    header, *rows = [line.split("\t") for line in listed.out.splitlines()]
    assert header == ["ID", "ROLE", "NETWORKS", "NAME", "CREATED", "BY"]
    assert [match.group(1), "viewer", "governance", "ops-wall"] in [r[:4] for r in rows]

    revoked = await camgw(demo.cwd, "token", "revoke", match.group(1))
    assert (revoked.code, revoked.out) == (0, f"revoked {match.group(1)}\n")
    for _ in range(100):  # the gateway hears of it through the registry's events
        status, _ = await demo.api("GET", "/api/v1/cameras?limit=1", token)
        if status == 401:
            break
        await asyncio.sleep(0.05)
    assert status == 401


async def test_audit_tail_shows_and_follows_the_trail(demo: Demo) -> None:
    follower = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "audit", "tail", "-n", "1", "-f",
        cwd=demo.cwd, env=clean_env(), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert follower.stdout is not None
    try:
        async with asyncio.timeout(30):
            first = orjson.loads(await follower.stdout.readline())
            assert first["id"]
            made = await camgw(demo.cwd, "token", "create", "--role", "auditor", "--networks",
                               "*", "--name", "followed")  # fmt: skip
            assert made.code == 0, made.err
            seen: list[dict[str, Any]] = []
            while not any(e["action"] == "token.create" for e in seen):
                seen.append(orjson.loads(await follower.stdout.readline()))
    finally:
        follower.terminate()
        await follower.wait()
    entry = next(e for e in seen if e["action"] == "token.create")
    assert entry["actor"].startswith("cli:") and "followed" in entry["detail"]
    assert any(e["action"] == "audit.read" and "following" in e["detail"] for e in seen)


async def test_discover_uses_the_demos_passwords_and_inventories_like_the_api(
    demo: Demo,
) -> None:
    cli = await camgw(demo.cwd, "discover", "--network", "governance")
    assert cli.code == 0, cli.err
    summary = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in
                   cli.out.splitlines() if not line.startswith(" "))  # fmt: skip
    assert summary["state"] == "done" and summary["failed"] == "0"

    admin = demo.tokens["admin"]
    status, job = await demo.api("POST", "/api/v1/networks/governance/discover", admin)
    if status == 409:  # the demo's own first discovery still runs: wait for it, then ask again
        for _ in range(600):
            await asyncio.sleep(0.1)
            status, job = await demo.api("POST", "/api/v1/networks/governance/discover", admin)
            if status != 409:
                break
    assert status == 202, job
    for _ in range(600):
        status, job = await demo.api("GET", f"/api/v1/jobs/{job['id']}", admin)
        if job["state"] != "running":
            break
        await asyncio.sleep(0.1)
    assert job["state"] == "done"
    api = job["progress"]
    # One discovery, two entry points: the same cameras, RTSP-only ones included.
    assert (summary["found"], summary["enriched"]) == (str(api["found"]), str(api["enriched"]))
    assert api["failed"] == 0
    rtsp = (demo.cwd / "var/inventory/governance.csv").read_text().splitlines()[1:]
    assert rtsp and api["found"] > len(rtsp)


async def test_import_through_the_demo_reports_rows_in_the_files_language(
    demo: Demo, tmp_path: Path
) -> None:
    csv = tmp_path / "cameras.csv"
    csv.write_text(
        "名称,类型,IP地址,备注\n"
        "东泾路口,雪亮工程,127.1.250.1,综治网\n"
        "坏行,未知类型,127.1.250.2,综治网\n",
        encoding="utf-8",
    )
    result = await camgw(demo.cwd, "import", str(csv))
    assert result.code == 1, (result.out, result.err)  # a row was refused
    assert "as the demo's admin" in result.err
    lines = result.out.splitlines()
    assert lines, result.err
    assert lines[0] == f"{csv}: 1 cameras imported, 1 rows refused"
    assert lines[1].startswith("  line 3: 类型") and "未知类型" in lines[1], lines


async def test_a_second_demo_is_refused_in_one_sentence(demo: Demo) -> None:
    again = await camgw(demo.cwd, "demo", "--scale", "0.01")
    assert again.code == 1
    assert again.err == (
        f"camgw: a demo is already running here (pid {demo.pid}, {demo.url}); use it, or stop "
        f"it first (Ctrl-C in its terminal, or `kill {demo.pid}`)\n"
    )


async def test_serve_on_a_busy_port_is_one_sentence(demo: Demo) -> None:
    port = demo.url.rsplit(":", 1)[1]
    busy = await camgw(demo.cwd, "serve", "--port", port)
    assert busy.code == 1
    assert busy.err.splitlines()[-1] == (
        f"camgw: port {port} on 127.0.0.1 is in use: another camgw (a demo?) or another "
        "program listens there; stop it, or choose another with --port"
    )
    assert "Traceback" not in busy.err


@pytest.fixture
def bare_checkout(tmp_path: Path) -> Iterator[Path]:
    """A directory where no demo ever ran."""
    yield tmp_path


async def test_an_unreachable_registry_is_named_with_what_to_do(bare_checkout: Path) -> None:
    port = free_port()
    env = clean_env(REDIS_URL=f"redis://127.0.0.1:{port}/0")
    result = await camgw(bare_checkout, "token", "list", env=env)
    assert result.code == 1
    assert result.out == ""
    source = f"{ROOT / 'config' / 'camgw.toml'} and REDIS_URL"
    assert result.err.splitlines() == [
        f"camgw: registry redis://127.0.0.1:{port}/0 ({source})",
        f"camgw: the registry redis://127.0.0.1:{port}/0 ({source}) does not answer: connection "
        "refused. Start that Redis, or start the demo with `make run`, or name the registry "
        "with --config FILE or REDIS_URL.",
    ]


async def test_a_missing_import_file_is_one_sentence(bare_checkout: Path) -> None:
    result = await camgw(bare_checkout, "import", "/nonexistent/cameras.csv")
    assert (result.code, result.out) == (2, "")
    assert result.err == "camgw: cannot read /nonexistent/cameras.csv: No such file or directory\n"


async def test_the_police_video_platform_registers_and_its_channels_are_cameras(
    demo: Demo,
) -> None:
    """The demo's simulated GB/T 28181 lower platform (2022 edition, on loopback) registers
    with the gateway's SIP service: the police network lists it, and its channels are cameras
    with their group tree, pictured through the 2022 image snapshot."""
    admin = demo.tokens["admin"]
    platforms: list[dict[str, Any]] = []
    for _ in range(600):
        try:
            status, nets = await demo.api("GET", "/api/v1/networks", admin)
        except ClientConnectorError:  # (the banner is printed just before the API listens)
            await asyncio.sleep(0.1)
            continue
        assert status == 200
        platforms = next(n for n in nets if n["id"] == "police").get("platforms") or []
        if platforms and platforms[0]["catalog_complete"]:
            break
        await asyncio.sleep(0.1)
    (platform,) = platforms
    assert (platform["id"], platform["edition"], platform["registered"]) == (
        "31011700002000000002",
        "2022",
        True,
    )
    assert platform["online"] and platform["channels"] == 40 and platform["subscribed"]
    channels: list[dict[str, Any]] = []
    for _ in range(100):  # (the camera list follows the registry's events: a moment behind)
        status, page = await demo.api("GET", "/api/v1/cameras?network=police&limit=500", admin)
        assert status == 200
        channels = [c for c in page["items"] if c["id"].startswith("police.gb")]
        if len(channels) == 40:
            break
        await asyncio.sleep(0.1)
    assert len(channels) == 40
    first = min(channels, key=lambda c: c["id"])
    assert first["gb28181"]["group_path"] == ["东泾镇 治安视频", "东泾镇派出所"]
    operator = demo.tokens["operator"]
    async with (
        ClientSession() as http,
        http.get(
            f"{demo.url}/api/v1/cameras/{first['id']}/snapshot",
            params={"reason": "INC-2026-0117"},
            headers={"Authorization": f"Bearer {operator}"},
        ) as resp,
    ):
        assert resp.status == 200, await resp.text()
        assert resp.headers["X-Snapshot-Source"] == "gb28181-snapshot"
        assert (await resp.read()).startswith(b"\xff\xd8")
