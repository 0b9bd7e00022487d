"""A health round's writes: made from the stored JSON and written many per script call
(gateway/discovery.py: probed_record, gateway/registry.py: write_probed, gateway/lua/health.lua),
they must leave exactly what the model and upsert.lua would have left, and be spread in time."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from aiohttp.test_utils import TestClient

from adapters.base import HealthResult
from gateway.discovery import LAST_SEEN_RESOLUTION, _json_time, _seen_due, probed_record
from gateway.errors import Invalid, StaleLease
from gateway.keys import CATALOG, REDIS, REGISTRY
from gateway.lease import Fence
from gateway.models import Camera, CameraStatus
from tests.conftest import TokenFactory

RICH = {
    "network": "governance",
    "name": "东泾路 North gate \u2603",
    "category": "sharp-eyes",
    "address": "127.1.0.41",
    "department": "城管",
    "carrier": "telecom",
    "location": {"lat": 31.0412345, "lon": 121.2298765, "address": "东泾路 1号"},
    "tags": ["gate", "入口"],
}
OK = HealthResult("127.1.0.41", True, None, 12.5)
LOST = HealthResult("127.1.0.41", False, "timeout")


def model_write(cam: Camera, status: CameraStatus, result: HealthResult, now: datetime) -> bytes:
    """What the health round wrote before, through the model (the reference)."""
    update: dict[str, object] = {"status": status, "updated_at": now, "rev": cam.rev + 1}
    if result.ok:
        update["last_seen"] = now
        if cam.status is CameraStatus.offline:
            update["last_error"] = None
    else:
        update["last_error"] = f"health: {result.error}"[:500]
    return cam.model_copy(update=update).model_dump_json().encode()


@pytest.mark.parametrize(
    ("was", "status", "result"),
    [
        (CameraStatus.unknown, CameraStatus.online, OK),
        (CameraStatus.offline, CameraStatus.online, OK),  # its old error goes
        (CameraStatus.online, CameraStatus.online, OK),  # last_seen only
        (CameraStatus.online, CameraStatus.offline, LOST),
    ],
)
async def test_a_probe_write_is_byte_for_byte_what_the_model_writes(
    client: TestClient,  # type: ignore[type-arg]
    token: TokenFactory,
    was: CameraStatus,
    status: CameraStatus,
    result: HealthResult,
) -> None:
    resp = await client.post("/api/v1/cameras", json=RICH, headers=await token("admin"))
    assert resp.status == 201, await resp.text()
    registry = client.app[REGISTRY]
    cam = await registry.get((await resp.json())["id"])
    assert cam is not None
    cam = cam.model_copy(update={"status": was, "last_error": "health: refused"})
    now = datetime(2026, 12, 1, 6, 30, 1, 250_000, tzinfo=UTC)
    made = probed_record(cam.model_dump_json().encode(), status, result, _json_time(now))
    assert made.record == model_write(cam, status, result, now)
    assert Camera.model_validate_json(made.record).model_dump_json().encode() == made.record
    assert (made.cam_id, made.rev, made.status) == (cam.id, cam.rev, status.value)


async def test_batched_writes_keep_every_index_the_history_and_the_change_log(
    client: TestClient,  # type: ignore[type-arg]
    token: TokenFactory,
) -> None:
    admin = await token("admin")
    ids = []
    for n in range(3):
        body = RICH | {"address": f"127.1.0.{50 + n}", "name": f"Gate {n}"}
        resp = await client.post("/api/v1/cameras", json=body, headers=admin)
        assert resp.status == 201, await resp.text()
        ids.append((await resp.json())["id"])
    registry, redis = client.app[REGISTRY], client.app[REDIS]
    before = await registry.version()
    cams = [await registry.get(i) for i in ids]
    assert all(c is not None and c.status is CameraStatus.unknown for c in cams)
    now = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
    stamp = _json_time(now)
    writes = [
        probed_record(c.model_dump_json().encode(), CameraStatus.online, OK, stamp)  # type: ignore[union-attr]
        for c in cams
    ]
    stale = dataclasses.replace(writes[2], rev=writes[2].rev + 5)
    versions = await registry.write_probed("governance", [writes[0], writes[1], stale], stamp)
    assert versions == [before + 1, before + 2, 0]  # the third changed meanwhile: left as it was

    first = await registry.get(ids[0])
    assert first is not None
    assert (first.status, first.last_seen, first.rev) == (CameraStatus.online, now, 2)
    third = await registry.get(ids[2])
    assert third is not None and third.status is CameraStatus.unknown
    online = registry.keys.idx("status", "online")
    unknown = registry.keys.idx("status", "unknown")
    assert await redis.smismember(online, ids) == [1, 1, 0]
    assert await redis.smismember(unknown, ids) == [0, 0, 1]
    history = await redis.xrange(registry.keys.status_history("governance"))
    moved = [
        (f[b"id"].decode(), f[b"from"].decode(), f[b"to"].decode(), f[b"at"].decode())
        for _, f in history
        if f[b"from"]
    ]
    assert moved == [(i, "unknown", "online", "2026-12-01T07:00:00Z") for i in ids[:2]]
    changed = await registry.changes_since(before)
    assert changed is not None and set(changed.records) == set(ids[:2])
    # The catalog follows: the list shows what was written.
    snap = await client.app[CATALOG].current()
    assert snap.by_id[ids[0]].status == "online" and snap.by_id[ids[2]].status == "unknown"


async def test_a_round_whose_lease_has_passed_writes_nothing(
    client: TestClient,  # type: ignore[type-arg]
    token: TokenFactory,
) -> None:
    resp = await client.post("/api/v1/cameras", json=RICH, headers=await token("admin"))
    cam_id = (await resp.json())["id"]
    registry, redis = client.app[REGISTRY], client.app[REDIS]
    cam = await registry.get(cam_id)
    assert cam is not None
    fence_key = f"{registry.keys.prefix}:lease:fence:health:governance"
    await redis.set(fence_key, 8)  # another replica took the lease after ours (7)
    stamp = _json_time(datetime(2026, 12, 1, 7, 0, tzinfo=UTC))
    write = probed_record(cam.model_dump_json().encode(), CameraStatus.online, OK, stamp)
    with pytest.raises(StaleLease) as caught:
        await registry.write_probed("governance", [write], stamp, Fence(fence_key, 7))
    assert str(caught.value) == (
        "health of governance not written: this replica's lease has passed to another (fence now 8)"
    )
    after = await registry.get(cam_id)
    assert after is not None and after.rev == cam.rev and after.status is CameraStatus.unknown


def test_last_seen_writes_are_spread_over_the_period() -> None:
    """10,000 cameras that all came online in one round, probed every 30 s for 20 minutes:
    each writes last_seen once per period (never staler than the period plus a round), and
    the rounds share the writes rather than one round taking them all every 5 minutes."""
    ids = [f"governance.c{i:05d}" for i in range(10_000)]
    t0 = datetime(2026, 12, 1, 8, 0, 7, tzinfo=UTC)
    seen = dict.fromkeys(ids, _json_time(t0))
    round_s = 30
    per_round: list[int] = []
    written: dict[str, list[datetime]] = {i: [t0] for i in ids}
    for n in range(1, 41):
        now = t0 + timedelta(seconds=round_s * n)
        due = [i for i in ids if _seen_due(i, seen[i], now)]
        for i in due:
            seen[i] = _json_time(now)
            written[i].append(now)
        per_round.append(len(due))
    period = LAST_SEEN_RESOLUTION.total_seconds()
    share = len(ids) * round_s / period  # 1,000 a round
    assert max(per_round) <= 1.5 * share, per_round
    assert min(per_round[12:]) >= 0.5 * share, per_round  # (after the first period)
    for times in written.values():
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
        assert max(gaps) <= period + round_s
        assert len(times) - 1 in (4, 5)  # 20 minutes: once per 5-minute period


async def test_a_record_stored_in_another_key_order_is_still_written(
    client: TestClient,  # type: ignore[type-arg]
    token: TokenFactory,
) -> None:
    """The script recognises the record it expects by its JSON's end (`"rev":N}`); a record
    written otherwise (keys in another order) is decoded and compared instead."""
    resp = await client.post("/api/v1/cameras", json=RICH, headers=await token("admin"))
    cam_id = (await resp.json())["id"]
    registry, redis = client.app[REGISTRY], client.app[REDIS]
    cam = await registry.get(cam_id)
    assert cam is not None
    record = cam.model_dump(mode="json")
    reordered = orjson.dumps({"rev": record.pop("rev"), **record})
    await redis.set(registry.keys.cam(cam_id), reordered)
    stamp = _json_time(datetime(2026, 12, 1, 7, 0, tzinfo=UTC))
    write = probed_record(reordered, CameraStatus.online, OK, stamp)
    assert await registry.write_probed("governance", [write], stamp) != [0]
    after = await registry.get(cam_id)
    assert after is not None and after.status is CameraStatus.online and after.rev == cam.rev + 1
    assert await redis.sismember(registry.keys.idx("status", "online"), cam_id)
    assert not await redis.sismember(registry.keys.idx("status", "unknown"), cam_id)


async def test_background_rewrites_keep_what_changed_meanwhile(
    client: TestClient,  # type: ignore[type-arg]
    token: TokenFactory,
) -> None:
    """Registry.replace_many (a quality round's verdicts): each record is written only at the
    rev it was read at; one changed meanwhile, or gone, is refused alone, and a lease that has
    passed to another replica refuses them all."""
    admin = await token("admin")
    ids = []
    for n in range(4):
        body = RICH | {"address": f"127.1.0.{50 + n}", "name": f"cam {n}"}
        resp = await client.post("/api/v1/cameras", json=body, headers=admin)
        assert resp.status == 201, await resp.text()
        ids.append((await resp.json())["id"])
    registry, redis = client.app[REGISTRY], client.app[REDIS]
    cams = [c for c in await registry.get_many([*ids, "governance.none"]) if c is not None]
    assert [c.id for c in cams] == ids
    resp = await client.patch(f"/api/v1/cameras/{ids[1]}", json={"name": "renamed"}, headers=admin)
    assert resp.status == 200
    assert (await client.delete(f"/api/v1/cameras/{ids[2]}", headers=admin)).status == 204
    renamed = [c.model_copy(update={"tags": ["checked"], "rev": c.rev + 1}) for c in cams]
    renamed[3] = renamed[3].model_copy(update={"category": "no-such-category"})  # breaks a rule
    replies = await registry.replace_many([(c, c.rev - 1) for c in renamed])
    assert isinstance(replies[0], int)
    assert [str(r) for r in replies[1:3]] == [
        f"camera {ids[1]} changed meanwhile; retry",
        f"camera {ids[2]} not found",
    ]
    assert isinstance(replies[3], Invalid) and replies[3].errors[0].field == "category"
    stored = await registry.get_many(ids)
    assert [c.tags if c else None for c in stored] == [
        ["checked"], RICH["tags"], None, RICH["tags"],
    ]  # fmt: skip
    assert stored[1] is not None and stored[1].name == "renamed"

    fence_key = f"{registry.keys.prefix}:lease:fence:quality:governance"
    await redis.set(fence_key, 8)
    again = [(c.model_copy(update={"tags": [], "rev": c.rev + 1}), c.rev) for c in stored[:1] if c]
    (reply,) = await registry.replace_many(again, fence=Fence(fence_key, 7))
    assert isinstance(reply, StaleLease)
    assert (await registry.get_many(ids[:1]))[0] == stored[0]
