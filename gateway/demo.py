"""The embedded default: a private redis-server, the demo fleet in the registry, the gateway,
and one printed token per role. `make run` calls `camgw demo`."""

from __future__ import annotations

import csv
import logging
import os
from datetime import UTC, datetime
from ipaddress import ip_address
from pathlib import Path

from adapters.simulator.devices import SimDevice
from adapters.simulator.fleet import CategorySpec, FleetCamera, build_fleet
from adapters.uris import UriCredentials

from .audit import AuditEvent
from .auth import TokenStore
from .commands.common import cli_actor
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
