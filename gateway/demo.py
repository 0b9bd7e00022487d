"""The embedded default: a private redis-server, the demo fleet in the registry, the gateway,
and one printed token per role. `make run` calls `camgw demo`."""

from __future__ import annotations

import asyncio
import csv
import logging
import os
import secrets
from dataclasses import replace
from datetime import UTC, datetime
from ipaddress import ip_address, ip_network
from pathlib import Path

from aiohttp import web

from adapters.gb28181.config import LowerPlatform
from adapters.simulator.devices import SimDevice
from adapters.simulator.fleet import CategorySpec, FleetCamera, build_fleet
from adapters.simulator.gb28181 import LowerPlatformSim, make_channels, make_groups
from adapters.uris import UriCredentials

from .audit import AuditEvent
from .auth import TokenStore
from .commands.common import cli_actor
from .gb28181 import GB28181
from .models import Camera, CameraCreate, CameraSource, Location, Role
from .records import new_camera
from .registry import Registry
from .settings import Settings

log = logging.getLogger(__name__)

DEMO_TOKEN_PREFIX = "demo-"


def fleet_for(settings: Settings, scale: float, seed: int = 2023) -> list[FleetCamera]:
    specs = [
        CategorySpec(c.id, c.network, c.planned)
        for c in settings.categories
        if c.network is not None and c.planned
    ]
    ranges = {n.id: n.cidrs[0] for n in settings.networks}
    return build_fleet(specs, ranges, scale, seed)


def fleet_rows(fleet: list[FleetCamera]) -> list[CameraCreate]:
    return [
        CameraCreate(
            id=c.id,
            network=c.network,
            name=c.name,
            category=c.category,
            address=ip_address(c.address),
            location=Location(lat=c.lat, lon=c.lon, address=c.place),
            tags=["demo"],
        )
        for c in fleet
    ]


async def seed_registry(registry: Registry, settings: Settings, fleet: list[FleetCamera]) -> int:
    """Register the fleet; cameras already present are left alone (their create is refused
    as a duplicate inside the same pipelined scripts). Returns how many were new."""
    now = datetime.now(UTC)
    actor = cli_actor()
    items: list[tuple[Camera, UriCredentials | None, AuditEvent | None]] = [
        (
            new_camera(row, settings, now, CameraSource.imported),
            None,
            AuditEvent(
                actor=actor,
                role="admin",
                action="camera.create",
                target=row.id or "",
                network=row.network,
                outcome="ok",
                status=200,
                detail="demo seed",
            ),
        )
        for row in fleet_rows(fleet)
    ]
    results = await registry.create_many(items)
    return sum(1 for r in results if isinstance(r, int))


async def demo_tokens(tokens: TokenStore, settings: Settings) -> dict[str, str]:
    """Fresh demo tokens each start (only hashes are stored, so old ones cannot be re-shown)."""
    for info in await tokens.list():
        if info.name.startswith(DEMO_TOKEN_PREFIX):
            await tokens.revoke(info.id)
    out: dict[str, str] = {}
    for role in Role:
        token, _ = await tokens.create(f"{DEMO_TOKEN_PREFIX}{role.value}", role, ["*"], cli_actor())
        out[role.value] = token
    first = settings.networks[0].id
    token, _ = await tokens.create(
        f"{DEMO_TOKEN_PREFIX}viewer-{first}", Role.viewer, [first], cli_actor()
    )
    out[f"viewer ({first} only)"] = token
    return out


def write_token_file(path: Path, tokens: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        for role, token in tokens.items():
            fh.write(f"{role}\t{token}\n")


def rtsp_inventory_rows(devices: list[SimDevice]) -> dict[str, list[dict[str, str]]]:
    """RTSP-only cameras do not answer WS-Discovery: their owner lists them in a CSV."""
    rows: dict[str, list[dict[str, str]]] = {}
    for d in devices:
        if not d.onvif:
            rows.setdefault(d.camera.network, []).append(
                {
                    "address": d.address,
                    "kind": "rtsp",
                    "name": d.camera.name,
                    "rtsp_uri": d.stream_uri,
                }
            )
    return rows


def write_rtsp_inventories(devices: list[SimDevice], directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for network, rows in rtsp_inventory_rows(devices).items():
        path = directory / f"{network}.csv"
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["address", "kind", "name", "rtsp_uri"])
            writer.writeheader()
            writer.writerows(rows)
        paths[network] = path
    return paths


def network_passwords(settings: Settings) -> dict[str, str]:
    """Each network's camera password from its credential reference (the simulator and the
    adapters read the same environment)."""
    out = {}
    for n in settings.networks:
        creds = n.credentials.resolve() if n.credentials else None
        if creds is None:
            raise RuntimeError(
                f"network {n.id}: camera password not set (see [networks.credentials])"
            )
        out[n.id] = creds.password
    return out


# -- GB/T 28181: a simulated lower platform feeding the police network -------------------------

GB_PLATFORM = "31011700002000000002"  # the simulated police video platform's id
GB_DOMAIN = "3101170000"
GB_NETWORK = "police"
GB_CHANNELS = 40
_gb_tasks: set[asyncio.Task[None]] = set()  # (held: a task only the loop references may vanish)


def gb28181_settings(settings: Settings, secrets_dir: Path) -> Settings:
    """`[gb28181]` for the demo: on, on loopback, ports picked free, one lower platform (the
    police's video platform, 2022 edition, simulated) allowed from loopback with a password
    made up once in `var/secrets`. A config that enables the service itself is left as it is,
    and so is one without a police network."""
    if settings.gb28181.enabled or GB_NETWORK not in {n.id for n in settings.networks}:
        return settings
    password = secrets_dir / "gb28181-police.password"
    if not password.exists():
        secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(password, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(12) + "\n")
    categories = {c.id for c in settings.categories}
    platform = LowerPlatform(
        id=GB_PLATFORM,
        domain=GB_DOMAIN,
        name="police video platform (simulated)",
        network=GB_NETWORK,
        category="public-security" if "public-security" in categories else None,
        edition="2022",
        password_file=password,
        cidrs=(ip_network("127.0.0.0/8"),),
    )
    gb = settings.gb28181.model_copy(
        update={
            "enabled": True,
            "host": "127.0.0.1",
            "udp_port": 0,
            "tcp_port": 0,
            "snapshot_upload_port": 0,
            "platforms": (platform,),
        }
    )
    return settings.model_copy(update={"gb28181": gb})


async def start_lower_platform(app: web.Application, settings: Settings) -> str | None:
    """Start the simulated lower platform on this event loop (it is light: a catalog of
    `GB_CHANNELS` channels, a keepalive a minute, 2022 snapshots rendered in a thread) and let
    it register in the background, so the start is not held up. Returns the banner's line."""
    gw = app.get(GB28181)
    platform = settings.gb28181.platform_by_id.get(GB_PLATFORM)
    if gw is None or platform is None or platform.password_file is None:
        return None
    password = platform.password()
    port = gw.transports.ports.get("udp")
    if password is None or port is None:
        return None
    groups = make_groups(GB_DOMAIN)
    channels = [
        replace(c, parent_id=groups[-1].device_id) for c in make_channels(GB_DOMAIN, GB_CHANNELS)
    ]
    sim = LowerPlatformSim(
        GB_PLATFORM,
        GB_DOMAIN,
        password,
        ("127.0.0.1", port),
        edition="2022",
        channels=[*groups, *channels],
        page_size=10,
        keepalive_every_s=settings.gb28181.keepalive_interval_s,
        server_id=settings.gb28181.id,
    )

    async def run() -> None:
        try:
            await sim.start()
            reply = await sim.register()
            if reply.status != 200:
                log.error(
                    "the simulated lower platform was refused",
                    extra={"status": reply.status, "reason": reply.reason},
                )
            await asyncio.Event().wait()  # (until the gateway stops: cancelled)
        finally:
            await sim.stop()

    task = asyncio.create_task(run(), name="camgw-demo-gb28181-platform")
    _gb_tasks.add(task)
    task.add_done_callback(_gb_tasks.discard)
    return (
        f"GB/T 28181: simulated 2022 lower platform {GB_PLATFORM} registers on udp "
        f"127.0.0.1:{port}, sharing {GB_CHANNELS} channels with network {GB_NETWORK}"
    )
