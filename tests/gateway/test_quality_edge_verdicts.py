"""Quality diagnosis of an edge network where it belongs: in the network's own adapter. The
police's owner shares no snapshots at all, and their cameras still get verdicts: the adapter
judges each picture and only the verdict (image status, failing checks and their measures, the
capture time, a digest for the frozen check) crosses to the gateway, which records, audits and
counts it as for an in-process network. What the link carried is read from the Redis server
itself (MONITOR): no picture, not a byte of one."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from redis.asyncio import Redis

from adapters import wire
from adapters.export import ExportPolicy
from adapters.simulator.devices import Picture
from adapters.simulator.faults import Fault, PictureFault
from adapters.simulator.scene import Period
from gateway.keys import REDIS, REGISTRY
from gateway.quality import QUALITY
from tests.gateway.test_edge import Edge, edge
from tests.gateway.test_quality_edge import _opted_in

__all__ = ["edge"]  # the fixture, shared with the edge tests


class Tap:
    """Every command the Redis server ran while it listened (MONITOR), as the server saw it."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.commands: list[str] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Tap:
        ready = asyncio.Event()

        async def listen() -> None:
            async with self.redis.monitor() as monitor:
                ready.set()
                while True:
                    info = await monitor.next_command()
                    self.commands.append(str(info["command"]))

        self._task = asyncio.create_task(listen())
        await asyncio.wait_for(ready.wait(), 5)
        await self.redis.ping()  # (MONITOR is on once its reply came: anything later is seen)
        return self

    async def __aexit__(self, *_: object) -> None:
        await asyncio.sleep(0.2)  # the last commands' echoes
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def outbox(self, outbox: str) -> list[str]:
        return [c for c in self.commands if c.startswith(f"XADD {outbox} ")]


def _message(command: str) -> dict[str, Any]:
    """The JSON of an XADD's `m` field (MONITOR writes it with its quotes escaped): the first
    document after it. (Cut at the last " b " instead, a picture whose bytes held " b " cut
    the message short.)"""
    rest = command.split(" m ", 1)[1].encode().decode("unicode_escape")
    parsed: dict[str, Any] = json.JSONDecoder().raw_decode(rest)[0]
    return parsed


async def _diagnosis_reads(edge: Edge) -> list[dict[str, Any]]:
    auditor = await edge.token("auditor")
    resp = await edge.client.get(
        "/api/v1/audit",
        params={"network": "police", "limit": "200"},
        headers=auditor,
    )
    assert resp.status == 200, await resp.text()
    items: list[dict[str, Any]] = (await resp.json())["items"]
    return [
        e
        for e in items
        if e["action"] == "camera.snapshot" and e["extra"].get("reason") == "quality diagnosis"
    ]


async def _verdicts(edge: Edge) -> list[tuple[str, list[str]]]:
    out = []
    for cam in await edge.cameras():
        camera = await edge.client.app[REGISTRY].get(cam["id"])
        assert camera is not None
        image = camera.image
        out.append(
            ("-", []) if image is None else (image.status.value, [f.check for f in image.failing])
        )
    return sorted(out)


async def test_an_edge_network_that_shares_no_snapshots_still_gets_verdicts(edge: Edge) -> None:
    await edge.discover()
    await edge.stop()
    # The owner shares no picture at all; the adapter's own cache is off so that each round
    # fetches anew (a frozen camera's picture must be seen twice, a second apart).
    edge.start(
        edge.config.model_copy(update={"export": ExportPolicy(snapshots=False), "cache_ttl_s": 0.0})
    )
    await edge.connected()
    for device in edge.devices:
        device.quirks.picture = Picture(Period.day)
    edge.devices[0].quirks.picture = Picture(Period.day, PictureFault(Fault.blur, 1.0))
    service = edge.client.app[QUALITY]
    service.settings = _opted_in(service.settings, "police")
    redis = edge.client.app[REDIS]
    outbox = wire.outbox(edge.config.redis.prefix, "police")

    async with Tap(redis) as tap:
        changed = await service.run_round("police")
    assert changed == 3, [(e["status"], e["detail"]) for e in await _diagnosis_reads(edge)]
    assert await _verdicts(edge) == [("ok", []), ("ok", []), ("suspect", ["blur"])]

    # What crossed: three verdicts, no picture, not a chunk of one.
    sent = tap.outbox(outbox)
    kinds = [_message(c)["type"] for c in sent]
    assert sorted(k for k in kinds if k not in ("hello", "heartbeat")) == ["diagnosis.result"] * 3
    assert not any(" b " in c for c in sent)  # no entry carried bytes beside its message
    assert not any("\\xff\\xd8" in c for c in sent)  # nor a JPEG's first bytes anywhere
    blurred = next(
        _message(c)
        for c in sent
        if _message(c)["type"] == "diagnosis.result" and _message(c)["status"] != "ok"
    )
    blur = next(r for r in blurred["results"] if r["check"] == "blur")
    assert blur["level"] == "faulty" and 0 < blur["measures"]["sharpness"] < 0.45

    # audited as picture reads by the round, judged at the edge
    judged = await _diagnosis_reads(edge)
    assert len(judged) == 3
    assert {(e["outcome"], e["extra"]["source"]) for e in judged} == {
        ("ok", "edge-adapter (camera-http)")
    }
    # an operator still gets no picture: the owner's policy holds
    op = await edge.token("operator")
    cam = (await edge.cameras())[0]
    resp = await edge.client.get(
        f"/api/v1/cameras/{cam['id']}/snapshot", params={"reason": "INC-9"}, headers=op
    )
    assert resp.status == 403

    # the frozen check's memory crosses as a digest: a frozen camera is found on the round
    # after its first frozen picture
    edge.devices[1].quirks.picture = Picture(Period.day, PictureFault(Fault.freeze))
    await service.run_round("police")
    # (the same picture while the capture time moved on: the memory says a minute ago)
    sigs = f"{edge.config.redis.prefix}:quality:sig:police"
    for cam_id, raw in (await redis.hgetall(sigs)).items():
        digest, taken = raw.decode().split()
        await redis.hset(sigs, cam_id, f"{digest} {float(taken) - 60!r}")
    await service.run_round("police")
    assert await _verdicts(edge) == [("faulty", ["blur"]), ("ok", []), ("suspect", ["frozen"])]


async def test_an_edge_cameras_reference_is_kept_by_its_adapter(edge: Edge) -> None:
    """An admin accepts an edge camera's picture as its reference: the adapter keeps it (the
    picture does not cross), judges against it, and forgets it when told."""
    await edge.discover()
    await edge.stop()
    # (the adapter's cache off: the round's pictures are not the one just accepted)
    edge.start(
        edge.config.model_copy(update={"export": ExportPolicy(snapshots=False), "cache_ttl_s": 0.0})
    )
    await edge.connected()
    for device in edge.devices:
        device.quirks.picture = Picture(Period.day)
    service = edge.client.app[QUALITY]
    service.settings = _opted_in(service.settings, "police")
    night = service.is_night("police")
    period = "night" if night else "day"
    cams = await edge.cameras()
    redis = edge.client.app[REDIS]
    outbox = wire.outbox(edge.config.redis.prefix, "police")
    refs = [f"/api/v1/cameras/{c['id']}/reference" for c in cams]
    async with Tap(redis) as tap:
        for url in refs:
            resp = await edge.client.put(url, headers=edge.admin)
            assert resp.status == 200, await resp.text()
            body = await resp.json()
            assert (body["period"], body["width"], body["height"]) == (period, 1280, 720)
    sent = [_message(c) for c in tap.outbox(outbox)]
    assert (
        sorted(m["type"] for m in sent if m["type"] not in ("hello", "heartbeat"))
        == ["reference.result"] * 3
    )
    assert not any(" b " in c or "\\xff\\xd8" in c for c in tap.outbox(outbox))
    listed = await edge.client.get(f"{refs[0]}s", headers=edge.admin)
    assert [(i["period"], i["source"], i["width"]) for i in (await listed.json())["items"]] == [
        (period, "current", 1280)
    ]
    # an upload would bring a picture into the owner's network: refused
    resp = await edge.client.put(
        f"{refs[0]}s/{period}",
        data=b"\xff\xd8\xff",
        headers=edge.admin | {"Content-Type": "image/jpeg"},
    )
    assert resp.status == 409
    assert (await resp.json())["detail"] == (
        f"camera {cams[0]['id']} is in the police network, whose adapter keeps its references: "
        "accept its current picture instead (PUT .../reference)"
    )

    # every camera turned: only against a reference is a turned camera seen
    for device in edge.devices:
        device.quirks.picture = Picture(Period.day, PictureFault(Fault.displacement, 0.5, seed=1))
    await service.run_round("police")
    assert await _verdicts(edge) == [("suspect", ["displacement"])] * 3
    records = [await edge.client.app[REGISTRY].get(c["id"]) for c in cams]
    assert all(r is not None and r.image is not None and r.image.reference for r in records)

    # deleted in the adapter: the next round judges without it
    resp = await edge.client.delete(f"{refs[0]}s/{period}", headers=edge.admin)
    assert resp.status == 204
    resp = await edge.client.delete(f"{refs[0]}s/{period}", headers=edge.admin)
    assert resp.status == 404
    await service.run_round("police")
    first = await edge.client.app[REGISTRY].get(cams[0]["id"])
    assert first is not None and first.image is not None and first.image.reference is False


async def test_the_owner_may_turn_the_diagnosis_off(edge: Edge) -> None:
    await edge.discover()
    await edge.stop()
    edge.start(edge.config.model_copy(update={"export": ExportPolicy(diagnosis=False)}))
    await edge.connected()
    for device in edge.devices:
        device.quirks.picture = Picture(Period.day)
    service = edge.client.app[QUALITY]
    service.settings = _opted_in(service.settings, "police")
    assert await service.run_round("police") == 0
    assert await _verdicts(edge) == [("-", [])] * 3
    refused = await _diagnosis_reads(edge)
    assert [(e["status"], e["outcome"], e["detail"]) for e in refused] == [
        (403, "denied", "the police network does not diagnose its cameras for the town")
    ] * 3
    # (the tap sees a picture when one does cross: an operator's snapshot, which this owner
    # allows, arrives as an entry with bytes beginning with a JPEG's marker)
    op = await edge.token("operator")
    cam = (await edge.cameras())[0]
    outbox = wire.outbox(edge.config.redis.prefix, "police")
    async with Tap(edge.client.app[REDIS]) as tap:
        resp = await edge.client.get(
            f"/api/v1/cameras/{cam['id']}/snapshot", params={"reason": "INC-7"}, headers=op
        )
        assert resp.status == 200
    chunks = [c for c in tap.outbox(outbox) if _message(c)["type"] == "snapshot.result"]
    assert chunks and all(" b " in c and "\\xff\\xd8" in c for c in chunks[:1])
