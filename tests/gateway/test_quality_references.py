"""Reference frames an admin manages: upload a JPEG of one's own for day or night, list what a
camera has (when, by whom, from where), delete one; bad uploads refused with what is wrong;
every change audited; a deleted camera leaves no reference or signature behind. The gateway,
a real redis-server and the simulated cameras of test_quality_rounds (streets on loopback)."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import cv2
import numpy as np
from aiohttp.test_utils import TestClient

from adapters.simulator.devices import Picture
from adapters.simulator.scene import Period
from adapters.simulator.server import Simulator
from adapters.simulator.snapshot import render_street
from gateway.keys import REDIS, TOKENS
from gateway.models import Role
from gateway.quality import QUALITY
from tests.gateway.test_quality_rounds import Headers, _image, _summary, gateway, sim

__all__ = ["gateway", "sim"]  # the fixtures, shared with the rounds' tests

CAM = "governance.quality-a"
JPEG = {"Content-Type": "image/jpeg"}
NOON = dt.datetime(2026, 12, 1, 4, 0, tzinfo=dt.UTC)


def _street(cam_id: str) -> bytes:
    """The camera's own street, as its simulator draws it (another camera's is another
    street)."""
    return render_street(cam_id, Picture(Period.day), NOON)


def _jpeg(width: int, height: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.full((height, width, 3), 128, np.uint8))
    assert ok
    return bytes(buf.tobytes())


def _who(actor: str) -> str:
    """The token's name (an actor is `name#token-id`)."""
    return actor.split("#", maxsplit=1)[0]


async def _audit(client: TestClient, action: str) -> list[dict[str, Any]]:  # type: ignore[type-arg]
    auditor, _ = await client.app[TOKENS].create("r-auditor", Role.auditor, ["*"], "tests")
    resp = await client.get(
        "/api/v1/audit",
        params={"camera": CAM, "limit": "100"},
        headers={"Authorization": f"Bearer {auditor}"},
    )
    assert resp.status == 200
    return [e for e in (await resp.json())["items"] if e["action"] == action]


async def test_an_uploaded_reference_is_listed_used_and_deleted(
    sim: Simulator,
    gateway: tuple[TestClient, Headers],  # type: ignore[type-arg]
) -> None:
    client, admin = gateway
    base = f"/api/v1/cameras/{CAM}/references"
    resp = await client.get(base, headers=admin)
    assert resp.status == 200
    assert await resp.json() == {"id": CAM, "items": []}

    # a night picture uploaded by day: the period is the admin's to say
    resp = await client.put(f"{base}/night", data=_jpeg(640, 360), headers=admin | JPEG)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert (body["id"], body["period"], body["width"], body["height"]) == (CAM, "night", 640, 360)
    # the day's: the camera's own street
    street = _street(CAM)
    resp = await client.put(f"{base}/day", data=street, headers=admin | JPEG)
    assert resp.status == 200, await resp.text()

    listed = (await (await client.get(base, headers=admin)).json())["items"]
    assert [
        (i["period"], i["source"], _who(i["set_by"]), i["bytes"], i["width"]) for i in listed
    ] == [
        ("day", "upload", "q-admin", len(street), 1280),
        ("night", "upload", "q-admin", len(_jpeg(640, 360)), 640),
    ]

    # the next round by day judges against it
    await client.app[QUALITY].run_round("governance")
    image = await _image(client, admin, CAM)
    assert image is not None and (_summary(image), image["reference"]) == (("ok", [], 0), True)

    # deleted: gone from the list, and a second delete says there is none
    resp = await client.delete(f"{base}/day", headers=admin)
    assert resp.status == 204
    resp = await client.delete(f"{base}/day", headers=admin)
    assert resp.status == 404
    assert (await resp.json())["detail"] == f"camera {CAM} has no day reference"
    listed = (await (await client.get(base, headers=admin)).json())["items"]
    assert [i["period"] for i in listed] == ["night"]
    await client.app[QUALITY].run_round("governance")
    assert (await _image(client, admin, CAM) or {})["reference"] is False

    # accepting the current picture is listed as such
    resp = await client.put(f"/api/v1/cameras/{CAM}/reference", headers=admin)
    assert resp.status == 200, await resp.text()
    listed = (await (await client.get(base, headers=admin)).json())["items"]
    assert [(i["period"], i["source"], i["width"]) for i in listed] == [
        ("day", "current", 1280),
        ("night", "upload", 640),
    ]

    # each change audited, by whom, with what
    accepted = await _audit(client, "camera.reference")
    assert [(e["outcome"], e["extra"]["source"], e["extra"]["period"]) for e in accepted] == [
        ("ok", "camera-http", "day")
    ]
    uploads = await _audit(client, "camera.reference.upload")
    assert [(e["outcome"], e["extra"]["bytes"], e["extra"]["period"]) for e in uploads] == [
        ("ok", str(len(street)), "day"),
        ("ok", str(len(_jpeg(640, 360))), "night"),
    ]
    assert {_who(e["actor"]) for e in accepted + uploads} == {"q-admin"}
    deletions = await _audit(client, "camera.reference.delete")
    assert [(e["outcome"], e["status"]) for e in deletions] == [("not_found", 404), ("ok", 204)]


async def test_bad_uploads_are_refused_with_what_is_wrong(
    gateway: tuple[TestClient, Headers],  # type: ignore[type-arg]
) -> None:
    client, admin = gateway
    url = f"/api/v1/cameras/{CAM}/references/day"

    async def refused(data: bytes, headers: Headers, url: str = url) -> tuple[int, Any]:
        resp = await client.put(url, data=io.BytesIO(data), headers=headers)
        assert resp.headers["Content-Type"] == "application/problem+json"
        return resp.status, await resp.json()

    ok, png = cv2.imencode(".png", np.zeros((360, 640, 3), np.uint8))
    assert ok
    status, problem = await refused(bytes(png.tobytes()), admin | JPEG)
    assert (status, problem["type"], problem["detail"]) == (
        422,
        "urn:camgw:problem:validation",
        "not usable as a reference: the picture is not a JPEG (it does not begin with a JPEG "
        "marker)",
    )
    assert problem["field"] == "body"
    status, problem = await refused(b"\xff\xd8\xff\xe0" + b"\x00" * 500, admin | JPEG)
    assert (status, problem["detail"]) == (
        422,
        "not usable as a reference: the picture does not decode",
    )
    status, problem = await refused(_jpeg(800, 100), admin | JPEG)
    assert (status, problem["detail"]) == (
        422,
        "not usable as a reference: a frame of 800x100 is narrower than 1:4 or wider than 4:1",
    )
    status, problem = await refused(_jpeg(48, 32), admin | JPEG)
    assert (status, problem["detail"]) == (
        422,
        "not usable as a reference: a frame of 48x32 is too small to diagnose",
    )
    big = b"\xff\xd8\xff" + b"\x00" * (4 << 20)
    status, problem = await refused(big, admin | JPEG)
    assert (status, problem["type"], problem["detail"]) == (
        413,
        "urn:camgw:problem:payload-too-large",
        "body of 4194307 bytes exceeds the 4194304-byte limit",
    )
    status, problem = await refused(_street(CAM), admin | {"Content-Type": "image/png"})
    assert (status, problem["type"], problem["detail"]) == (
        415,
        "urn:camgw:problem:unsupported-media-type",
        "send one of: image/jpeg",
    )
    status, problem = await refused(_street(CAM), admin | JPEG, url.replace("/day", "/dusk"))
    assert (status, problem["detail"]) == (422, "`period`: must be day or night")

    operator, _ = await client.app[TOKENS].create("r-op", Role.operator, ["*"], "tests")
    status, problem = await refused(_street(CAM), {"Authorization": f"Bearer {operator}"} | JPEG)
    assert (status, problem["type"], problem["detail"]) == (
        403,
        "urn:camgw:problem:forbidden",
        "role operator may not change cameras",
    )
    # an admin of another network does not learn the camera exists
    police, _ = await client.app[TOKENS].create("r-police", Role.admin, ["police"], "tests")
    status, problem = await refused(_street(CAM), {"Authorization": f"Bearer {police}"} | JPEG)
    assert (status, problem["detail"]) == (404, f"camera {CAM} not found")

    # nothing was stored, and every refusal is on the record
    resp = await client.get(f"/api/v1/cameras/{CAM}/references", headers=admin)
    assert (await resp.json())["items"] == []
    refusals = await _audit(client, "camera.reference.upload")
    assert [(e["status"], _who(e["actor"])) for e in refusals] == [
        (404, "r-police"),
        (403, "r-op"),
        (422, "q-admin"),
        (415, "q-admin"),
        (413, "q-admin"),
        (422, "q-admin"),
        (422, "q-admin"),
        (422, "q-admin"),
        (422, "q-admin"),
    ]


async def test_a_deleted_camera_leaves_no_reference_or_signature(
    sim: Simulator,
    gateway: tuple[TestClient, Headers],  # type: ignore[type-arg]
) -> None:
    client, admin = gateway
    redis, prefix = client.app[REDIS], client.app[QUALITY].settings.redis.prefix
    for period in ("day", "night"):
        resp = await client.put(
            f"/api/v1/cameras/{CAM}/references/{period}", data=_street(CAM), headers=admin | JPEG
        )
        assert resp.status == 200
    await client.app[QUALITY].run_round("governance")  # (its signature: the frozen check's)
    assert await redis.hexists(f"{prefix}:quality:sig:governance", CAM)
    kept = sorted(k.decode() for k in await redis.keys(f"{prefix}:quality:ref*:{CAM}*"))
    assert kept == [
        f"{prefix}:quality:ref:{CAM}:day",
        f"{prefix}:quality:ref:{CAM}:night",
        f"{prefix}:quality:refmeta:{CAM}",
    ]

    resp = await client.delete(f"/api/v1/cameras/{CAM}", headers=admin)
    assert resp.status == 204
    assert await redis.keys(f"{prefix}:quality:ref*:{CAM}*") == []
    assert not await redis.hexists(f"{prefix}:quality:sig:governance", CAM)
    # the other camera keeps its own
    assert await redis.hexists(f"{prefix}:quality:sig:governance", "governance.quality-b")
