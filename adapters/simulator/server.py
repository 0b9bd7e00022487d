"""The camera-fleet simulator: one facade over the ONVIF sites and the WS-Discovery responders.

    devices = build_devices(fleet, {"governance": "pw1", "police": "pw2"},
                            quirks_for=demo_quirks(fleet), rtsp_only_every=25)
    async with Simulator(devices, answer_delay_s=0.05) as sim:
        await sim.set_offline("police-traffic-0001", True)
        ...

Every address must be in 127.0.0.0/8 unless `allow_non_loopback=True` (e.g. a test that made its
own network namespace). Run a small fleet by hand with `python -m adapters.simulator.server`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import ipaddress
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Final, Self

from .devices import Quirks, SimDevice
from .fleet import CategorySpec, FleetCamera, build_fleet
from .onvif_server import DEFAULT_ANSWER_DELAY_S, OnvifServer
from .rtsp_server import RtspCamera, RtspSimulator
from .wsdiscovery_responder import WsDiscoveryResponder

log = logging.getLogger("camgw.simulator")


class Simulator:
    """Serves a list of `SimDevice`s: ONVIF + snapshots (TCP), WS-Discovery (UDP), later RTSP."""

    def __init__(
        self,
        devices: list[SimDevice],
        answer_delay_s: float = DEFAULT_ANSWER_DELAY_S,
        *,
        multicast_interface: str | None = None,
        hostile_discovery: bool = False,
        allow_non_loopback: bool = False,
        serve_rtsp: bool = True,
    ) -> None:
        if not allow_non_loopback:
            for device in devices:
                if not ipaddress.ip_address(device.address).is_loopback:
                    raise ValueError(
                        f"{device.camera.id}: {device.address} is not a loopback address"
                    )
        self.devices = list(devices)
        self._by_id: dict[str, SimDevice] = {}
        for device in self.devices:
            if device.camera.id in self._by_id:
                raise ValueError(f"duplicate camera id {device.camera.id}")
            self._by_id[device.camera.id] = device
        self._onvif = OnvifServer(self.devices, answer_delay_s=answer_delay_s)
        self._discovery = WsDiscoveryResponder(
            self.devices, multicast_interface=multicast_interface, hostile=hostile_discovery
        )
        # One GStreamer child serves every device's stream (encoders run only while watched).
        self._rtsp = (
            RtspSimulator([RtspCamera.from_device(d) for d in self.devices]) if serve_rtsp else None
        )
        self._started = False

    @property
    def answer_delay_s(self) -> float:
        return self._onvif.answer_delay_s

    @answer_delay_s.setter
    def answer_delay_s(self, value: float) -> None:
        self._onvif.answer_delay_s = value

    @property
    def onvif_devices(self) -> list[SimDevice]:
        return [d for d in self.devices if d.onvif]

    @property
    def rtsp_only_devices(self) -> list[SimDevice]:
        return [d for d in self.devices if not d.onvif]

    def device(self, camera_id: str) -> SimDevice:
        try:
            return self._by_id[camera_id]
        except KeyError:
            raise KeyError(f"no simulated camera {camera_id!r}") from None

    async def start(self) -> None:
        if self._started:
            raise RuntimeError("simulator already started")
        self._started = True
        try:
            await self._onvif.start()
            await self._discovery.start()
            await self._start_rtsp()
        except BaseException:
            await self.stop()
            raise
        log.info(
            "simulator up: %d ONVIF devices, %d RTSP-only",
            len(self.onvif_devices),
            len(self.rtsp_only_devices),
        )

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        await self._stop_rtsp()
        await self._discovery.stop()
        await self._onvif.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def set_offline(self, camera_id: str, offline: bool) -> None:
        """Take a camera off the network (refused connections, no discovery) or bring it back."""
        device = self.device(camera_id)
        device.quirks.offline = offline
        if device.onvif:
            await self._onvif.set_offline(device, offline)
        await self._rtsp_set_offline(device, offline)

    # ------------------------------------------------------------------ RTSP

    async def _start_rtsp(self) -> None:
        if self._rtsp is not None:
            await self._rtsp.start()

    async def _stop_rtsp(self) -> None:
        if self._rtsp is not None:
            await self._rtsp.stop()

    async def _rtsp_set_offline(self, device: SimDevice, offline: bool) -> None:
        if self._rtsp is not None:
            await self._rtsp.set_offline(device.camera.id, offline)


# --------------------------------------------------------------------------- building fleets


def build_devices(
    fleet: Iterable[FleetCamera],
    passwords: Mapping[str, str],
    quirks_for: Callable[[FleetCamera], Quirks] | None = None,
    rtsp_only_every: int = 0,
) -> list[SimDevice]:
    """One `SimDevice` per fleet camera, with its network's password; every `rtsp_only_every`-th
    camera (1-based position in the fleet; 0: none) is RTSP-only (`onvif=False`)."""
    devices: list[SimDevice] = []
    for index, camera in enumerate(fleet):
        try:
            password = passwords[camera.network]
        except KeyError:
            raise ValueError(f"no password given for network {camera.network!r}") from None
        devices.append(
            SimDevice(
                camera=camera,
                password=password,
                onvif=not _is_rtsp_only(index, rtsp_only_every),
                quirks=quirks_for(camera) if quirks_for is not None else Quirks(),
            )
        )
    return devices


@dataclass(frozen=True, slots=True)
class Recorders:
    """Which share of each network's cameras sit behind NVRs (16 channels) and encoders (4)."""

    nvr_share: float = 0.0
    encoder_share: float = 0.0
    nvr_channels: int = 16
    encoder_channels: int = 4


def group_devices(devices: list[SimDevice], recorders: Recorders) -> list[SimDevice]:
    """The fleet as a town's is: of each network's ONVIF cameras, the first `nvr_share` become
    channels of NVRs and the next `encoder_share` channels of encoders, each device at its first
    camera's address (the others' addresses stay unused); the camera count is unchanged."""
    out: list[SimDevice] = []
    by_network: dict[str, list[SimDevice]] = {}
    for d in devices:
        (by_network.setdefault(d.camera.network, []) if d.onvif else out).append(d)
    for network_devices in by_network.values():
        n = len(network_devices)
        nvrs = int(n * recorders.nvr_share) // recorders.nvr_channels * recorders.nvr_channels
        rest = network_devices[nvrs:]
        encs = int(n * recorders.encoder_share) // recorders.encoder_channels
        encs *= recorders.encoder_channels
        for group, size, model in (
            (network_devices[:nvrs], recorders.nvr_channels, "SIM-NVR-16"),
            (rest[:encs], recorders.encoder_channels, "SIM-ENC-4"),
        ):
            for i in range(0, len(group), size):
                out.append(replace(group[i], channels=size, model=model))
        out.extend(rest[encs:])
    return out


def _is_rtsp_only(index: int, every: int) -> bool:
    return every > 0 and (index + 1) % every == 0


def _internal_host(camera_id: str) -> str:
    digest = hashlib.sha1(camera_id.encode()).digest()
    return f"10.{20 + digest[0] % 10}.{digest[1]}.{1 + digest[2] % 254}"


# The quirks the demo shows, a few cameras each: (kind, Quirks for the n-th camera of that kind)
DEMO_QUIRK_KINDS: Final[tuple[tuple[str, Callable[[str, int], Quirks]], ...]] = (
    ("clock_skew", lambda cid, n: Quirks(clock_skew_s=(420.0, -540.0, 900.0)[n % 3])),
    ("snapshot_host_unspecified", lambda cid, n: Quirks(snapshot_host="0.0.0.0")),
    ("snapshot_host_internal", lambda cid, n: Quirks(snapshot_host=_internal_host(cid))),
    ("no_snapshot_uri", lambda cid, n: Quirks(no_snapshot_uri=True)),
    ("rtsp_credentials_in_uri", lambda cid, n: Quirks(rtsp_credentials_in_uri=True)),
    ("slow", lambda cid, n: Quirks(extra_delay_s=1.0)),
)


@dataclass
class DemoQuirks:
    """A `quirks_for` callable for `build_devices`; `kinds` says which camera got which quirk."""

    kinds: dict[str, str] = field(default_factory=dict)  # camera id -> quirk kind
    ordinals: dict[str, int] = field(default_factory=dict)

    def __call__(self, camera: FleetCamera) -> Quirks:
        kind = self.kinds.get(camera.id)
        if kind is None:
            return Quirks()
        make = dict(DEMO_QUIRK_KINDS)[kind]
        return make(camera.id, self.ordinals[camera.id])


def demo_quirks(
    fleet: Iterable[FleetCamera], *, rtsp_only_every: int = 0, per_kind_per: int = 200
) -> DemoQuirks:
    """Give a few ONVIF cameras of each network one quirk each, deterministically.

    Per network, cameras are ordered by a hash of their id and dealt out: each quirk kind of
    `DEMO_QUIRK_KINDS` gets max(1, cameras // per_kind_per) of them (while they last). Pass the
    same `rtsp_only_every` as to `build_devices` so RTSP-only cameras are skipped.
    """
    by_network: dict[str, list[FleetCamera]] = {}
    for index, camera in enumerate(fleet):
        if not _is_rtsp_only(index, rtsp_only_every):
            by_network.setdefault(camera.network, []).append(camera)
    plan = DemoQuirks()
    for cameras in by_network.values():
        ordered = sorted(cameras, key=lambda c: hashlib.sha1(c.id.encode()).digest())
        per_kind = max(1, len(ordered) // per_kind_per)
        position = 0
        for kind, _ in DEMO_QUIRK_KINDS:
            for n in range(per_kind):
                if position >= len(ordered):
                    break
                plan.kinds[ordered[position].id] = kind
                plan.ordinals[ordered[position].id] = n
                position += 1
    return plan


# --------------------------------------------------------------------------- by hand


async def _serve(args: argparse.Namespace) -> None:
    network = ipaddress.ip_network(args.range)
    fleet = build_fleet(
        [CategorySpec("sim", args.network, args.cameras)], {args.network: network}, scale=1.0
    )
    quirks = demo_quirks(fleet, rtsp_only_every=args.rtsp_only_every) if args.quirks else None
    devices = build_devices(fleet, {args.network: args.password}, quirks, args.rtsp_only_every)
    async with Simulator(
        devices, args.answer_delay, multicast_interface=args.multicast_interface
    ) as sim:
        for device in sim.devices:
            kind = quirks.kinds.get(device.camera.id, "") if quirks else ""
            where = device.device_uri if device.onvif else f"{device.stream_uri} (RTSP only)"
            print(f"{device.camera.id}  {where}  {kind}")
        print(f"user {devices[0].username!r}, password {args.password!r}; Ctrl-C stops")
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve simulated ONVIF cameras on loopback.")
    parser.add_argument("--cameras", type=int, default=10)
    parser.add_argument("--network", default="governance")
    parser.add_argument("--range", default="127.1.0.0/16", help="loopback CIDR for the cameras")
    parser.add_argument("--password", default="sim-password")
    parser.add_argument("--answer-delay", type=float, default=DEFAULT_ANSWER_DELAY_S)
    parser.add_argument("--rtsp-only-every", type=int, default=0)
    parser.add_argument("--quirks", action="store_true", help="assign the demo quirks")
    parser.add_argument("--multicast-interface", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
