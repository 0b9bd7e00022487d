"""Static discovery sources: host lists and CSV inventories from the network's owner."""

from __future__ import annotations

import csv
import io
import ipaddress
from pathlib import Path

from .base import Target
from .uris import split_credentials, uri_host

MAX_INVENTORY_BYTES = 8 << 20


class InventoryError(ValueError):
    """A static source that cannot be read; the message names the file and line."""


def parse_host(entry: str, default_port: int) -> Target:
    """'10.0.0.5', '10.0.0.5:8000', '[fe80::1]:80' -> Target."""
    text = entry.strip()
    host, port = text, default_port
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else default_port
    elif text.count(":") == 1:
        host, _, p = text.partition(":")
        port = int(p)
    ipaddress.ip_address(host)  # raises ValueError: hosts are addresses, never names
    if not 0 < port < 65536:
        raise ValueError(f"port {port} out of range")
    return Target(address=host, port=port, source="static")


def rtsp_target(uri: str) -> Target:
    clean, creds = split_credentials(uri)
    if creds is not None:
        raise ValueError("RTSP URIs in the config must not carry credentials")
    host = uri_host(clean)
    if host is None:
        raise ValueError("RTSP URI names no host")
    ipaddress.ip_address(host)
    return Target(address=host, kind="rtsp", rtsp_uri=clean, source="static")


def read_csv_inventory(path: Path, default_port: int) -> list[Target]:
    """Columns: address (required), port, kind (onvif|rtsp), name, rtsp_uri, lat, lon."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InventoryError(f"{path}: {exc.strerror}") from exc
    if len(raw) > MAX_INVENTORY_BYTES:
        raise InventoryError(f"{path}: larger than {MAX_INVENTORY_BYTES} bytes")
    reader = csv.DictReader(io.StringIO(raw.decode("utf-8-sig", errors="replace")))
    if not reader.fieldnames or "address" not in reader.fieldnames:
        raise InventoryError(f"{path}: needs an 'address' column")
    targets = []
    for row in reader:
        try:
            targets.append(_row_target(row, default_port))
        except (ValueError, KeyError) as exc:
            raise InventoryError(f"{path}:{reader.line_num}: {exc}") from exc
    return targets


def _row_target(row: dict[str, str], default_port: int) -> Target:
    kind = (row.get("kind") or "onvif").strip().lower()
    name = (row.get("name") or "").strip() or None
    place = _place(row)
    if kind == "rtsp":
        base = rtsp_target(row["rtsp_uri"])
        return Target(
            address=base.address,
            kind="rtsp",
            rtsp_uri=base.rtsp_uri,
            source="csv",
            name=name,
            place=place,
        )
    if kind != "onvif":
        raise ValueError(f"kind must be onvif or rtsp, not {kind!r}")
    port = int(row.get("port") or default_port)
    base = parse_host(row["address"], port)
    return Target(address=base.address, port=base.port, source="csv", name=name, place=place)


def _place(row: dict[str, str]) -> tuple[float, float] | None:
    """Where the owner's inventory says the camera is (`lat`, `lon`: WGS-84 degrees)."""
    lat, lon = (row.get("lat") or "").strip(), (row.get("lon") or "").strip()
    if not lat and not lon:
        return None
    latitude, longitude = float(lat), float(lon)
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        raise ValueError("lat/lon out of range")
    return latitude, longitude
