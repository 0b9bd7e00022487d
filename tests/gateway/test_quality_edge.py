"""Quality rounds of an edge network: the pictures are judged in the network's own adapter and
the verdict lands on the record the gateway keeps (the picture never leaves the network:
test_quality_edge_verdicts.py shows it, with an owner who shares no snapshots at all)."""

from __future__ import annotations

from adapters.simulator.devices import Picture
from adapters.simulator.faults import Fault, PictureFault
from adapters.simulator.scene import Period
from gateway.keys import REGISTRY
from gateway.quality import QUALITY
from gateway.settings import Settings
from tests.gateway.test_edge import Edge, edge

__all__ = ["edge"]  # the fixture, shared with the edge tests


async def test_an_edge_networks_pictures_are_judged_through_its_adapter(edge: Edge) -> None:
    await edge.discover()
    cameras = {c["id"]: c for c in await edge.cameras()}
    assert len(cameras) == len(edge.devices)
    for device in edge.devices:
        device.quirks.picture = Picture(Period.day)
    blurred = edge.devices[0]
    blurred.quirks.picture = Picture(Period.day, PictureFault(Fault.blur, 1.0))
    service = edge.client.app[QUALITY]
    # The shipped config leaves the police network's diagnosis off until its owner opts in.
    assert not service.settings.network_by_id["police"].quality.enabled
    service.settings = _opted_in(service.settings, "police")
    # (judged at the camera's own size in the adapter: the owner's largest width is for
    # pictures that leave, and this one does not)
    await service.run_round("police")
    registry = edge.client.app[REGISTRY]
    verdicts = []
    for cam_id in cameras:
        camera = await registry.get(cam_id)
        assert camera is not None and camera.image is not None
        verdicts.append((camera.image.status.value, [f.check for f in camera.image.failing]))
    # one blurred camera of three (which record is which device the owner does not say: the
    # address is withheld), judged on its first failing round
    assert sorted(verdicts) == [("ok", []), ("ok", []), ("suspect", ["blur"])]


def _opted_in(settings: Settings, network: str) -> Settings:
    networks = tuple(
        n.model_copy(update={"quality": n.quality.model_copy(update={"enabled": True})})
        if n.id == network
        else n
        for n in settings.networks
    )
    return settings.model_copy(update={"networks": networks})
