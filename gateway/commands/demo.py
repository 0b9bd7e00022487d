"""`camgw demo` (`make run`): a private Redis, the simulated camera fleet as a child process,
the gateway discovering it, and one printed token per role. What the other commands need to
work beside it (its Redis, key, camera passwords, inventories, URL) goes to `var/demo.json`
(gateway.commands.context)."""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from adapters.config import CredentialRef
from adapters.vault import CredentialVault, create_key_file, load_key

from .common import fail, say
from .context import DEMO_STATE, Context, DemoState, read_demo_state, with_password_files
from .serve import run_app

if TYPE_CHECKING:
    from aiohttp import web

    from ..settings import Settings

DEFAULT_REDIS_PORT = 6390


def demo(args: argparse.Namespace, ctx: Context) -> int:
    var: Path = args.var.resolve()
    state_path = var / DEMO_STATE.name
    running = read_demo_state(state_path)
    if running is not None and running.running and running.pid != os.getpid():
        fail(
            f"a demo is already running here (pid {running.pid}, {running.api_url}); use it, or "
            f"stop it first (Ctrl-C in its terminal, or `kill {running.pid}`)"
        )
    settings = ctx.settings
    port = args.port or settings.server.port
    host = settings.server.host
    redis_port = None if os.environ.get("REDIS_URL") else _redis_port()
    _need_free(host, port, "the gateway's", "--port")
    if redis_port is not None:
        _need_free("127.0.0.1", redis_port, "the demo's Redis", "CAMGW_REDIS_PORT")
    key_file = var / "camgw.key"
    if not key_file.exists():
        create_key_file(key_file)
    passwords = _password_files(settings, var / "secrets")
    settings = with_password_files(settings, passwords)
    with contextlib.ExitStack() as stack:
        url = settings.redis.url
        if redis_port is not None:
            from ..redis_server import RedisServer

            server = RedisServer(var / "redis", port=redis_port).start()
            stack.callback(server.stop)
            url = server.url
        inventories = var / "inventory"
        sim = _start_simulator(args.scale, inventories, settings, ctx)
        stack.callback(_stop_child, sim)
        state = DemoState(
            config=ctx.config.resolve(),
            redis_url=url,
            key_file=key_file,
            archive_dir=var / "audit",
            api_url=f"http://{host}:{port}",
            tokens_file=var / "demo-tokens.txt",
            passwords=passwords,
            inventories={p.stem: p for p in sorted(inventories.glob("*.csv"))},
            pid=os.getpid(),
            started_at=datetime.now(UTC),
        )
        settings = _no_quality_rounds(state.apply(settings))
        if getattr(args, "gb28181", True):  # (a simulated GB/T 28181 lower platform: opt-out)
            from ..demo import gb28181_settings

            settings = gb28181_settings(settings, var / "secrets")
        state.write(state_path)
        on_ready = _prepare(settings, state, args.scale)
        run_app(ctx, CredentialVault(load_key(key_file)), host, port, on_ready, settings)
    return 0


def _no_quality_rounds(settings: Settings) -> Settings:
    """The demo's simulated cameras send a test card (name, time, colour bars), not a street:
    the quality diagnosis would rightly call every one of them faulty an hour after the start.
    Its rounds are off in the demo (docs/quality.md); `camgw serve` runs them as configured."""
    networks = tuple(
        n.model_copy(update={"quality": n.quality.model_copy(update={"enabled": False})})
        for n in settings.networks
    )
    say("quality diagnosis off in the demo: its cameras send test cards, not streets")
    return settings.model_copy(update={"networks": networks})


def _prepare(
    settings: Settings, state: DemoState, scale: float
) -> Callable[[web.Application], Awaitable[None]]:
    """The on-startup hook: seed the registry, mint tokens, start discovery, print the banner."""
    from ..demo import demo_tokens, fleet_for, seed_registry, start_lower_platform, write_token_file
    from ..keys import DISCOVERY, REGISTRY, TOKENS

    async def prepare(app: web.Application) -> None:
        fleet = fleet_for(settings, scale)
        added = await seed_registry(app[REGISTRY], settings, fleet)
        tokens = await demo_tokens(app[TOKENS], settings)
        write_token_file(state.tokens_file, tokens)
        for network in sorted({c.network for c in fleet}):
            await app[DISCOVERY].start(network, "demo")
        platform = await start_lower_platform(app, settings)
        base = state.api_url
        lines = [
            "",
            f"camgw demo: {base}  (registry: {state.redis_url}; {len(fleet)} simulated cameras, "
            f"{added} newly registered; discovery running)",
            f"  OpenAPI: {base}/api/v1/openapi.json",
            *([f"  {platform}"] if platform else []),
            *(f"  {role:<24} {token}" for role, token in tokens.items()),
            f'  try: curl -H "Authorization: Bearer <viewer token>" {base}/api/v1/summary',
            f"  tokens are also in {state.tokens_file}",
            f"  .venv/bin/camgw commands run from {Path.cwd()} use this demo ({DEMO_STATE})",
            "",
        ]
        print("\n".join(lines), flush=True)

    return prepare


def _password_files(settings: Settings, directory: Path) -> dict[str, Path]:
    """Camera passwords for the networks whose own are not set: made up once, kept in
    `var/secrets/<network>.password` (mode 600) so that the simulator, the gateway and every
    command run beside the demo use the same ones."""
    out: dict[str, Path] = {}
    for n in settings.networks:
        if n.credentials is None or _resolves(n.credentials):
            continue
        path = directory / f"{n.id}.password"
        if not path.exists():
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(12) + "\n")
        out[n.id] = path
    return out


def _resolves(ref: CredentialRef) -> bool:
    try:
        return ref.resolve() is not None
    except (OSError, ValueError):
        return False


def _redis_port() -> int:
    raw = os.environ.get("CAMGW_REDIS_PORT", str(DEFAULT_REDIS_PORT))
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        fail(f"CAMGW_REDIS_PORT={raw!r}: a port number (1-65535)", 2)
    return int(raw)


def _need_free(host: str, port: int, whose: str, setting: str) -> None:
    """Fail before anything starts when a port the demo needs is taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            fail(
                f"port {port} on {host} ({whose}) is in use: a demo already running, or another "
                f"program; stop it, or choose another port with {setting}"
            )


def _start_simulator(
    scale: float, inventories: Path, settings: Settings, ctx: Context
) -> subprocess.Popen[str]:
    """`camgw simulate` as a child, on the demo's config and camera passwords: its event loop
    and CPU stay apart from the gateway's."""
    files = [
        f"--password-file={n.id}={n.credentials.password_file}"
        for n in settings.networks
        if n.credentials is not None and n.credentials.password_file is not None
    ]
    cmd = [
        sys.executable,
        "-m",
        "gateway",
        "--config",
        str(ctx.config),
        "simulate",
        *files,
        "--scale",
        str(scale),
        "--quirks",
        "--inventory-dir",
        str(inventories),
    ]
    child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    line = child.stdout.readline()
    if not line.startswith("READY"):
        _stop_child(child)
        fail("the camera simulator did not start (its log is above)")
    say(f"simulator: {line.strip()}")
    return child


def _stop_child(child: subprocess.Popen[str]) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
