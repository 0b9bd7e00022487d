"""Every change of a camera's status is kept, by the same script that changes it: what the
availability figures and the outage report are computed from (issue 12)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp.test_utils import TestClient

from gateway.keys import REDIS, REGISTRY
from gateway.models import CameraStatus
from tests.conftest import TokenFactory

CAM = {"network": "governance", "name": "Gate", "category": "sharp-eyes", "address": "127.1.0.31"}


async def test_each_status_change_is_one_entry_and_nothing_else_is(
    client: TestClient,  # type: ignore[type-arg]
    token: TokenFactory,
) -> None:
    admin = await token("admin")
    resp = await client.post("/api/v1/cameras", json=CAM, headers=admin)
    assert resp.status == 201, await resp.text()
    cam_id = (await resp.json())["id"]
    registry = client.app[REGISTRY]
    t0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    for minute, status, error in [
        (1, CameraStatus.online, None),
        (2, CameraStatus.online, None),  # no change: no entry
        (3, CameraStatus.offline, "health: no answer within 5 s"),
    ]:
        cam = await registry.get(cam_id)
        assert cam is not None
        at = t0 + timedelta(minutes=minute)
        update = {"status": status, "last_error": error, "rev": cam.rev + 1, "updated_at": at}
        await registry.replace(cam.model_copy(update=update), cam.rev)
    patch = {"name": "North gate"}  # an edit that leaves the status: no entry
    assert (await client.patch(f"/api/v1/cameras/{cam_id}", json=patch, headers=admin)).ok

    raw = await client.app[REDIS].xrange(registry.keys.status_history("governance"))
    entries = [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in raw]
    assert [(e["id"], e["from"], e["to"], e["error"]) for e in entries] == [
        (cam_id, "", "unknown", ""),
        (cam_id, "unknown", "online", ""),
        (cam_id, "online", "offline", "health: no answer within 5 s"),
    ]
    assert [e["at"] for e in entries[1:]] == ["2026-03-01T08:01:00Z", "2026-03-01T08:03:00Z"]
    other = await client.app[REDIS].xlen(registry.keys.status_history("police"))
    assert other == 0  # kept per network: a network's history holds only its cameras
