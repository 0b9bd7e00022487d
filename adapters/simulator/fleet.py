"""The demo fleet: cameras that mirror the town's inventory table at a chosen scale.

Deterministic for a given seed, so a benchmark or a test sees the same fleet every run.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass

# Dongjing town, Songjiang district, Shanghai (approximate centre).
TOWN_LAT, TOWN_LON = 31.085, 121.300
_SPREAD = 0.03
_HOST_OFFSET = 256  # leave x.y.0.* free for gateways and probes


@dataclass(frozen=True, slots=True)
class CategorySpec:
    id: str
    network: str
    cameras: int  # at full scale


@dataclass(frozen=True, slots=True)
class FleetCamera:
    id: str
    network: str
    category: str
    name: str
    address: str
    lat: float
    lon: float
    place: str


def count_at_scale(full: int, scale: float) -> int:
    """At least one camera per non-empty category, so every row of the table shows."""
    return max(1, round(full * scale)) if full else 0


def build_fleet(
    categories: list[CategorySpec],
    network_ranges: dict[str, ipaddress.IPv4Network | ipaddress.IPv6Network],
    scale: float = 1.0,
    seed: int = 2023,
) -> list[FleetCamera]:
    rng = random.Random(seed)
    next_host = dict.fromkeys(network_ranges, _HOST_OFFSET)
    fleet: list[FleetCamera] = []
    for cat in categories:
        net = network_ranges[cat.network]
        for i in range(count_at_scale(cat.cameras, scale)):
            host = net.network_address + next_host[cat.network]
            if host not in net:
                raise ValueError(f"network {cat.network} range {net} too small for the fleet")
            next_host[cat.network] += 1
            street = rng.choice(_STREETS)
            fleet.append(
                FleetCamera(
                    id=f"{cat.network}.{cat.id}-{i + 1:04d}",  # ids are scoped by network
                    network=cat.network,
                    category=cat.id,
                    name=f"{street} #{i + 1}",
                    address=str(host),
                    lat=round(TOWN_LAT + rng.uniform(-_SPREAD, _SPREAD), 6),
                    lon=round(TOWN_LON + rng.uniform(-_SPREAD, _SPREAD), 6),
                    place=f"{street}, Dongjing",
                )
            )
    return fleet


_STREETS = [
    "Dongjing Rd",
    "Changxi Rd",
    "Sijing Rd",
    "Dongxing Rd",
    "Jiuting Ave",
    "Baole Rd",
    "Gongdong Rd",
    "Xinming Rd",
    "Chenghe Rd",
    "Huangjia Rd",
    "Dongxun Rd",
    "Yixin Rd",
]
