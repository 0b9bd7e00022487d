"""camgw as a GB/T 28181 superior platform, end to end: a simulated lower platform on loopback
registers with digest, sends its catalog in pages, notifications and keepalives; the registry,
the audit trail and GET /api/v1/networks show what a user would see. Time is the test's clock."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import cv2
import numpy as np
import pytest
from aiohttp.test_utils import TestClient

from adapters.gb28181 import manscdp
from adapters.gb28181.config import LowerPlatform, SipServiceConfig
from adapters.gb28181.sip import SipResponse, parse
from adapters.gb28181.superior import Peer
from adapters.simulator.gb28181 import (
    LowerPlatformSim,
    Misbehaviour,
    make_channels,
    make_groups,
    mutate,
    mutate_body,
)
from gateway.app import create_app
from gateway.audit import AuditQuery
from gateway.gb28181 import GB28181, GB28181_CLOCK, GbGateway, camera_id
from gateway.keys import AUDIT, REGISTRY
from gateway.models import CameraStatus
from gateway.settings import Settings
from gateway.vault import CredentialVault

POLICE = "31011700002000000002"  # 2016-edition police platform
OTHER = "31011700002000000003"  # 2022-edition platform (another department's)
FENCED = "31011700002000000004"  # allowed only from 127.9.0.0/16
TCP_MEDIA = "31011700002000000005"  # 2016, live video over TCP (RFC 4571)
DOMAIN = "3101170000"
PASSWORD = "police-secret"


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


def _platform(
    pid: str, network: str, edition: str | None, cidr: str, media: str = "udp"
) -> LowerPlatform:
    return LowerPlatform.model_validate(
        {
            "media_transport": media,
            "id": pid,
            "domain": DOMAIN,
            "name": f"platform {pid[-1]}",
            "network": network,
            "category": "public-security" if network == "police" else None,
            "edition": edition,
            "password_env": "GB_TEST_PASSWORD",
            "cidrs": [cidr],
        }
    )


@pytest.fixture
def gb_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("GB_TEST_PASSWORD", PASSWORD)
    gb = SipServiceConfig(
        enabled=True,
        host="127.0.0.1",
        udp_port=0,
        tcp_port=0,
        snapshot_upload_port=0,
        snapshot_timeout_s=3.0,
        platforms=(
            _platform(POLICE, "police", "2016", "127.0.0.0/8"),
            _platform(OTHER, "police", "2022", "127.0.0.0/8"),
            _platform(FENCED, "police", None, "127.9.0.0/16"),
            _platform(TCP_MEDIA, "police", "2016", "127.0.0.0/8", media="tcp"),
        ),
    )
    return settings.model_copy(update={"gb28181": gb})


@pytest.fixture
async def gb(
    aiohttp_client: Callable[..., Awaitable[TestClient]],  # type: ignore[type-arg]
    gb_settings: Settings,
    vault: CredentialVault,
) -> AsyncIterator[tuple[TestClient, GbGateway, Clock]]:  # type: ignore[type-arg]
    app = create_app(gb_settings, vault)
    clock = Clock()
    app[GB28181_CLOCK] = clock
    client = await aiohttp_client(app)
    yield client, app[GB28181], clock


Gb = tuple[TestClient, GbGateway, Clock]  # type: ignore[type-arg]


async def _sim(gw: GbGateway, pid: str = POLICE, transport: str = "udp", **kw: Any) -> Any:
    port = gw.transports.ports[transport]
    edition = "2022" if pid == OTHER else "2016"
    sim = LowerPlatformSim(
        pid, DOMAIN, PASSWORD, ("127.0.0.1", port), edition=edition, transport=transport, **kw
    )
    await sim.start()
    return sim


async def _catalog_done(gw: GbGateway, pid: str) -> None:
    """Wait for the platform's catalog to be judged and applied (real I/O, on loopback)."""
    async with asyncio.timeout(30):
        await gw.catalog_applied[pid].wait()
    gw.catalog_applied[pid].clear()
    await gw.settle()


async def _audit(client: TestClient, action: str) -> list[dict[str, Any]]:  # type: ignore[type-arg]
    page = await client.app[AUDIT].query(AuditQuery(limit=1000))
    return [e.model_dump(mode="json") for e in page.items if e.action == action][::-1]


async def _networks(client: TestClient, token: Any) -> dict[str, Any]:  # type: ignore[type-arg]
    resp = await client.get("/api/v1/networks", headers=await token("admin"))
    assert resp.status == 200
    return {n["id"]: n for n in await resp.json()}


async def test_the_shipped_config_opens_no_sip_port(client: TestClient) -> None:  # type: ignore[type-arg]
    assert client.app[REGISTRY].settings.gb28181.enabled is False
    assert client.app.get(GB28181) is None


async def test_full_catalog_across_pages_becomes_cameras(gb: Gb, token: Any) -> None:
    client, gw, _ = gb
    sim = await _sim(gw, channels=make_channels(DOMAIN, 600), page_size=5)
    try:
        reply = await sim.register()
        assert (reply.status, reply.get("Expires")) == (200, "3600")
        await _catalog_done(gw, POLICE)
    finally:
        await sim.stop()
    assert sim.pages_sent == 120
    registry = client.app[REGISTRY]
    ids = await registry.redis.smembers(f"{registry.keys.prefix}:gb28181:ch:{POLICE}")
    assert len(ids) == 600
    first = sim.channels[0]
    cam = await registry.get(camera_id("police", first.device_id))
    assert cam is not None and cam.gb28181 is not None
    assert (cam.name, cam.vendor, cam.category) == (first.name, "Hikvision", "public-security")
    assert cam.status is CameraStatus.online and cam.address is None
    assert cam.location is not None and cam.location.address == first.address
    gbc = cam.gb28181
    assert (gbc.edition, gbc.region, gbc.type, gbc.type_name) == (
        "2016",
        "31011700",
        "132",
        "IP camera (网络摄像机)",
    )
    assert gbc.network_name == "public security information network (公安信息网)"
    assert gbc.platform == POLICE and gbc.parent == first.parent_id
    assert (cam.model, gbc.civil_code, gbc.status_reason) == ("DS-2CD3T47", "310117", "ON")
    assert cam.location.lat == float(first.latitude) and cam.location.lon == float(first.longitude)
    net = (await _networks(client, token))["police"]
    (police,) = [p for p in net["platforms"] if p["id"] == POLICE]
    assert police["registered"] and police["online"] and police["channels"] == 600
    assert police["catalog_complete"] is True and police["last_keepalive"] is not None
    assert police["subscribed"] is True  # catalog notifications subscribed after the catalog
    assert police["device_info"]["Manufacturer"] == "camgw-sim"
    assert [m.method for m in sim.received].count("SUBSCRIBE") == 1
    assert net["cameras"] == 600
    done = await _audit(client, "gb28181.catalog")
    assert done[0]["detail"] == "600 of 600 items" and done[0]["outcome"] == "ok"
    assert len(await _audit(client, "gb28181.channel.catalog")) == 600
    assert (await _audit(client, "gb28181.registered"))[0]["actor"] == f"gb28181:{POLICE}"


async def test_refused_registrations_are_answered_audited_and_change_nothing(
    gb: Gb, token: Any
) -> None:
    client, gw, _ = gb
    wrong = await _sim(gw)
    stranger = await _sim(gw)
    stranger.platform_id = "31011700002000000099"
    fenced = await _sim(gw, pid=FENCED)
    try:
        bad = await wrong.register(password="guess")
        unknown = await stranger.register()
        outside = await fenced.register()
    finally:
        for s in (wrong, stranger, fenced):
            await s.stop()
    assert (bad.status, bad.reason) == (403, "digest refused: wrong response (password)")
    assert (unknown.status, unknown.reason) == (403, "not a configured lower platform")
    assert (outside.status, outside.reason) == (403, "source address outside the platform's ranges")
    await gw.settle()
    refused = {e["detail"].split(" (from")[0] for e in await _audit(client, "gb28181.refused")}
    assert refused == {
        "digest refused: wrong response (password)",
        "not a configured lower platform",
        "source address outside the platform's ranges",
    }
    platforms = (await _networks(client, token))["police"]["platforms"]
    assert not any(p["registered"] for p in platforms)
    assert wrong.received == []  # no catalog query goes to a refused platform


async def test_notifications_change_records_and_status(gb: Gb) -> None:
    client, gw, _ = gb
    channels = make_channels(DOMAIN, 6)
    sim = await _sim(gw, channels=channels)
    registry = client.app[REGISTRY]
    try:
        await sim.register()
        await _catalog_done(gw, POLICE)
        a, b, c, d, e, _ = channels
        new = make_channels(DOMAIN, 1, start=900)[0]
        reply = await sim.notify(
            [
                replace(a, event="OFF"),
                replace(b, event="VLOST"),
                replace(c, event="DEFECT"),
                replace(d, event="DEL"),
                replace(e, name="北门 新名", event="UPDATE"),
                replace(new, event="ADD"),
            ]
        )
        assert reply.status == 200
        await gw.settle()
        cams = {
            x.device_id: await registry.get(camera_id("police", x.device_id))
            for x in (a, b, c, d, e, new)
        }
        assert cams[a.device_id] is not None and cams[a.device_id].status is CameraStatus.offline  # type: ignore[union-attr]
        assert cams[b.device_id].last_error == "video lost (VLOST)"  # type: ignore[union-attr]
        assert cams[b.device_id].status is CameraStatus.degraded  # type: ignore[union-attr]
        assert cams[c.device_id].last_error == "fault reported (DEFECT)"  # type: ignore[union-attr]
        assert cams[d.device_id] is None
        assert cams[e.device_id].name == "北门 新名"  # type: ignore[union-attr]
        assert cams[new.device_id] is not None
        await sim.notify([replace(a, event="ON")])
        await gw.settle()
        back = await registry.get(camera_id("police", a.device_id))
        assert back is not None and back.status is CameraStatus.online and back.last_error is None
    finally:
        await sim.stop()
    deleted = await _audit(client, "gb28181.channel.deleted")
    assert (
        deleted[0]["detail"] == f"channel {d.device_id} removed from the platform's catalog (DEL)"
    )
    statuses = [(x["target"], x["detail"]) for x in await _audit(client, "gb28181.channel.status")]
    assert statuses == [
        (
            camera_id("police", a.device_id),
            "OFF: the platform reports it off (catalog notification)",
        ),
        (camera_id("police", b.device_id), "VLOST: video lost (VLOST) (catalog notification)"),
        (
            camera_id("police", c.device_id),
            "DEFECT: fault reported (DEFECT) (catalog notification)",
        ),
        (camera_id("police", a.device_id), "ON: online (catalog notification)"),
    ]
    notified = {x["target"]: x["detail"] for x in await _audit(client, "gb28181.channel.notified")}
    assert notified == {
        camera_id(
            "police", e.device_id
        ): f"channel {e.device_id} changed by a catalog notification",
        camera_id("police", new.device_id): f"channel {new.device_id}",
    }


async def test_offline_after_three_missed_keepalives_and_back(gb: Gb, token: Any) -> None:
    client, gw, clock = gb
    sim = await _sim(gw, channels=make_channels(DOMAIN, 8))
    registry = client.app[REGISTRY]
    try:
        await sim.register()
        await _catalog_done(gw, POLICE)
        clock.now += 170  # two intervals and a bit: not yet
        gw.platform.tick()
        assert gw.platform.platforms[POLICE].online
        assert (await sim.keepalive()).status == 200
        clock.now += 181  # three intervals missed
        gw.platform.tick()
        await gw.settle()
        info = next(
            p for p in (await _networks(client, token))["police"]["platforms"] if p["id"] == POLICE
        )
        assert (info["online"], info["offline_reason"]) == (False, "3 keepalives missed")
        assert info["channels"] == 8  # still listed
        cam = await registry.get(camera_id("police", sim.channels[0].device_id))
        assert cam is not None and cam.status is CameraStatus.offline
        assert cam.last_error == (
            f"unreachable through lower platform {POLICE}: 3 keepalives missed"
        )
        assert (await sim.keepalive()).status == 200  # back: the catalog is read again
        await _catalog_done(gw, POLICE)
        cam = await registry.get(camera_id("police", sim.channels[0].device_id))
        assert cam is not None and cam.status is CameraStatus.online
    finally:
        await sim.stop()
    assert [e["detail"] for e in await _audit(client, "gb28181.offline")] == ["3 keepalives missed"]
    catalogs = [e["detail"] for e in await _audit(client, "gb28181.catalog")]
    assert catalogs == ["8 of 8 items", "8 of 8 items; 8 records changed"]  # (back online)


async def test_a_catalog_that_stops_halfway_is_reported_with_what_arrived(gb: Gb) -> None:
    client, gw, clock = gb
    sim = await _sim(
        gw, channels=make_channels(DOMAIN, 40), misbehave=Misbehaviour(stop_catalog_after=12)
    )
    try:
        await sim.register()
        async with asyncio.timeout(10):
            await sim.catalog_sent.wait()
        assert len(gw.platform.platforms[POLICE].catalog.codes) == 12  # type: ignore[union-attr]
        clock.now += 31
        gw.platform.tick()
        await _catalog_done(gw, POLICE)
    finally:
        await sim.stop()
    (done,) = await _audit(client, "gb28181.catalog")
    assert (done["outcome"], done["detail"]) == (
        "error",
        "12 of 40 items; stopped after 12 of 40 items",
    )
    assert gw.platform.platforms[POLICE].catalog_complete is False
    assert len(await _audit(client, "gb28181.channel.catalog")) == 12


async def test_the_same_code_under_two_platforms_is_a_conflict_not_a_merge(
    gb: Gb, token: Any
) -> None:
    client, gw, _ = gb
    shared = make_channels(DOMAIN, 10)
    first = await _sim(gw, channels=shared)
    second = await _sim(gw, pid=OTHER, channels=[replace(c, name="冒名") for c in shared[:4]])
    try:
        await first.register()
        await _catalog_done(gw, POLICE)
        await second.register()
        await _catalog_done(gw, OTHER)
    finally:
        await first.stop()
        await second.stop()
    cam = await client.app[REGISTRY].get(camera_id("police", shared[0].device_id))
    assert cam is not None and cam.gb28181 is not None
    assert (cam.name, cam.gb28181.platform) == (shared[0].name, POLICE)
    (conflict,) = await _audit(client, "gb28181.conflict")
    assert conflict["detail"].startswith(f"4 codes: {shared[0].device_id} (held by {POLICE})")
    other = next(
        p for p in (await _networks(client, token))["police"]["platforms"] if p["id"] == OTHER
    )
    assert other["conflicts"] == 4
    assert gw.platform.holder[shared[0].device_id] == POLICE  # pictured through its own platform


async def test_codes_of_a_platform_no_longer_configured_are_taken_over(gb: Gb) -> None:
    client, gw, _ = gb
    channels = make_channels(DOMAIN, 3)
    registry = client.app[REGISTRY]
    gone = "31011700002000000077"  # was configured once, held these codes, is not any more
    await registry.redis.hset(
        f"{registry.keys.prefix}:gb28181:codes", mapping={c.device_id: gone for c in channels}
    )
    sim = await _sim(gw, channels=channels)
    try:
        await sim.register()
        await _catalog_done(gw, POLICE)
    finally:
        await sim.stop()
    assert await _audit(client, "gb28181.conflict") == []
    cam = await registry.get(camera_id("police", channels[0].device_id))
    assert cam is not None and cam.gb28181 is not None and cam.gb28181.platform == POLICE


async def test_duplicate_codes_within_one_catalog_are_counted_once(gb: Gb) -> None:
    client, gw, _ = gb
    sim = await _sim(
        gw,
        channels=make_channels(DOMAIN, 20),
        misbehave=Misbehaviour(duplicate_every=5, lie_sum_num=16),
    )
    try:
        await sim.register()
        await _catalog_done(gw, POLICE)
    finally:
        await sim.stop()
    (done,) = await _audit(client, "gb28181.catalog")
    assert done["detail"] == "16 of 16 items; 3 duplicate codes"


async def test_2022_edition_platform_over_tcp(gb: Gb) -> None:
    client, gw, _ = gb
    channels = make_channels(DOMAIN, 3)
    # Network identifier 6 reads "电子政务外网" in 2022 ("政务网" in 2016); 𠀀 is GB18030 only.
    smart = replace(channels[0], device_id=f"{DOMAIN}1326000777", name="人脸抓拍 𠀀")
    sim = await _sim(gw, pid=OTHER, transport="tcp", channels=[smart, *channels[1:]])
    try:
        assert (await sim.register()).status == 200
        await _catalog_done(gw, OTHER)
    finally:
        await sim.stop()
    cam = await client.app[REGISTRY].get(camera_id("police", smart.device_id))
    assert cam is not None and cam.gb28181 is not None
    assert (cam.name, cam.gb28181.edition, cam.gb28181.network_name) == (
        "人脸抓拍 𠀀",
        "2022",
        "e-government extranet (电子政务外网)",
    )
    assert cam.gb28181.type_name == (
        "IP camera / online video image acquisition device (网络摄像机/在线视频图像信息采集设备)"
    )


async def test_hostile_messages_are_refused_with_the_right_error_and_no_effect(
    gb: Gb, token: Any
) -> None:
    client, gw, _ = gb
    sim = await _sim(gw, channels=[])
    registry = client.app[REGISTRY]
    try:
        early = await sim.send_body(
            manscdp.catalog("Notify", 1, POLICE, 1, make_channels(DOMAIN, 1))
        )
        assert (early.status, early.reason) == (403, "platform not registered")
        await sim.register()
        await _catalog_done(gw, POLICE)
        before = await registry.version()
        huge = sim.request("MESSAGE", b"<" * 20_000, [("Content-Type", "Application/MANSCDP+xml")])
        too_big = await sim.raw(huge.encode(), huge.call_id, huge.get("CSeq") or "")
        assert (too_big.status, too_big.reason) == (413, "message larger than 16384 bytes")
        entity = (
            b'<?xml version="1.0" encoding="GB2312"?><!DOCTYPE x [<!ENTITY e "x">]>'
            b"<Notify><CmdType>Catalog</CmdType><SN>1</SN></Notify>"
        )
        xml = await sim.send_body(entity)
        assert (xml.status, xml.reason) == (400, "MANSCDP refused: XML refused: DTDForbidden")
        bad_charset = await sim.send_body(b"\xff\xfe<Notify/>")
        assert (bad_charset.status, bad_charset.reason) == (
            400,
            "MANSCDP refused: body is not valid GB2312",
        )
        spoiled = sim.request(
            "MESSAGE", b"<Notify/>", [("Content-Type", "Application/MANSCDP+xml")]
        )
        data = spoiled.encode().replace(b"Content-Length: 9", b"Content-Length: 99")
        mismatch = await sim.raw(data, spoiled.call_id, spoiled.get("CSeq") or "")
        assert (mismatch.status, mismatch.reason) == (
            400,
            "Content-Length 99 but the body is 9 bytes",
        )
        stray = await sim.send_body(
            manscdp.catalog("Response", 4242, POLICE, 1, make_channels(DOMAIN, 1))
        )
        assert (stray.status, stray.reason) == (481, "no catalog query with this SN")
        await gw.settle()
        assert await registry.version() == before  # nothing written
    finally:
        await sim.stop()
    assert gw.platform.platforms[POLICE].registered  # and the platform is still served
    refusals = await _audit(client, "gb28181.refused")
    assert {e["status"] for e in refusals} == {403, 413, 400, 481}
    metrics = await client.get("/metrics", headers=await token("viewer"))
    text = await metrics.text()
    assert 'camgw_gb28181_refused_total{why="413 message larger than 16384 bytes"} 1.0' in text
    assert f'camgw_gb28181_registered{{network="police",platform="{POLICE}"}} 1.0' in text


async def _snap(client: TestClient, token: Any, cam: str) -> tuple[int, dict[str, str], bytes]:  # type: ignore[type-arg]
    headers = await token("operator", ["police"], name="op-wang")
    resp = await client.get(
        f"/api/v1/cameras/{cam}/snapshot", params={"reason": "INC-2026-0117"}, headers=headers
    )
    return resp.status, dict(resp.headers), await resp.read()


async def test_a_2022_snapshot_is_uploaded_then_served_watermarked_and_audited(
    gb: Gb, token: Any
) -> None:
    client, gw, _ = gb
    sim = await _sim(gw, pid=OTHER, channels=make_channels(DOMAIN, 2))
    try:
        await sim.register()
        await _catalog_done(gw, OTHER)
        cam = camera_id("police", sim.channels[0].device_id)
        status, headers, body = await _snap(client, token, cam)
        await gw.settle()
    finally:
        await sim.stop()
    assert (status, headers["Content-Type"]) == (200, "image/jpeg")
    assert headers["X-Snapshot-Source"] == "gb28181-snapshot"
    assert sim.snapshots_taken == 1 and body.startswith(b"\xff\xd8")
    # The police policy's watermark: a darkened strip with text at the bottom, nothing else
    # changed (compared at the served width: the policy also bounds it).
    shown = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR).astype(int)
    upload = cv2.imdecode(np.frombuffer(sim.last_upload, np.uint8), cv2.IMREAD_COLOR)
    original = cv2.resize(upload, (shown.shape[1], shown.shape[0]), interpolation=cv2.INTER_AREA)
    bottom = np.abs(shown[-40:] - original[-40:].astype(int)).mean()
    top = np.abs(shown[:150] - original[:150].astype(int)).mean()
    assert bottom > 15 and top < 4, (bottom, top)
    (taken,) = await _audit(client, "camera.snapshot")
    assert taken["actor"].startswith("op-wang") and (taken["outcome"], taken["target"]) == (
        "ok",
        cam,
    )
    assert taken["extra"]["reason"] == "INC-2026-0117"
    (command,) = await _audit(client, "gb28181.snapshot")
    assert (command["outcome"], command["target"]) == ("ok", cam)


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        ("refuse", "the platform answered Result ERROR"),
        ("no-upload", "no picture within 0.3s (no upload)"),
        ("no-finish", "no picture within 0.3s (uploaded, no UploadSnapShotFinished)"),
        ("not-jpeg", "no picture within 0.3s (no upload)"),
    ],
)
async def test_snapshot_failures_are_named_in_the_audit(
    gb: Gb, token: Any, mode: str, why: str
) -> None:
    client, gw, _ = gb
    # (what a platform that never answers costs: the command's bound, kept short here)
    gw.platform.config = gw.platform.config.model_copy(update={"snapshot_timeout_s": 0.3})
    sim = await _sim(
        gw, pid=OTHER, channels=make_channels(DOMAIN, 1), misbehave=Misbehaviour(snapshot=mode)
    )
    try:
        await sim.register()
        await _catalog_done(gw, OTHER)
        cam = camera_id("police", sim.channels[0].device_id)
        status, _, body = await _snap(client, token, cam)
        await gw.settle()
    finally:
        await sim.stop()
    assert status == 502
    assert f"camera {cam} did not deliver a picture" in body.decode()
    (command,) = await _audit(client, "gb28181.snapshot")
    assert why in command["detail"]
    assert gw.platform.snaps.by_token == {}  # the one-time URL is gone


@pytest.mark.parametrize("codec", ["H264", "H265"])
async def test_a_2016_snapshot_is_one_keyframe_of_a_live_invite_then_bye(
    gb: Gb, token: Any, codec: str
) -> None:
    client, gw, _ = gb
    sim = await _sim(gw, channels=make_channels(DOMAIN, 1), video_codec=codec)
    try:
        await sim.register()
        await _catalog_done(gw, POLICE)
        cam = camera_id("police", sim.channels[0].device_id)
        status, headers, body = await _snap(client, token, cam)
        await gw.settle()
        methods = [m.method for m in sim.received if m.method in ("INVITE", "ACK", "BYE")]
    finally:
        await sim.stop()
    assert (status, headers["Content-Type"]) == (200, "image/jpeg")
    assert headers["X-Snapshot-Source"] == "gb28181-invite" and body.startswith(b"\xff\xd8")
    assert methods == ["INVITE", "ACK", "BYE"]
    invite = next(m for m in sim.received if m.method == "INVITE")
    assert invite.uri.startswith(f"sip:{sim.channels[0].device_id}@")
    assert b"a=rtpmap:96 PS/90000" in invite.body
    (taken,) = await _audit(client, "camera.snapshot")
    assert (taken["outcome"], taken["extra"]["reason"]) == ("ok", "INC-2026-0117")
    (command,) = await _audit(client, "gb28181.snapshot")
    assert (command["outcome"], command["target"]) == ("ok", cam)


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        ("busy", "INVITE answered 486 Busy Here"),
        ("no-media", "0 RTP packets, no keyframe within 0.3s"),
        ("garbage", "RTP packets, no keyframe within 0.3s"),
    ],
)
async def test_live_invite_failures_are_named_and_end_with_bye(
    gb: Gb, token: Any, mode: str, why: str
) -> None:
    client, gw, _ = gb
    gw.platform.config = gw.platform.config.model_copy(update={"snapshot_timeout_s": 0.3})
    sim = await _sim(gw, channels=make_channels(DOMAIN, 1), misbehave=Misbehaviour(invite=mode))
    try:
        await sim.register()
        await _catalog_done(gw, POLICE)
        status, _, _ = await _snap(client, token, camera_id("police", sim.channels[0].device_id))
        await gw.settle()
        if mode != "busy":  # (the BYE is on the wire)
            async with asyncio.timeout(5):
                await sim.bye_received.wait()
        methods = [m.method for m in sim.received if m.method in ("INVITE", "ACK", "BYE")]
    finally:
        await sim.stop()
    assert status == 502
    (command,) = await _audit(client, "gb28181.snapshot")
    assert why in command["detail"]
    assert methods == (["INVITE"] if mode == "busy" else ["INVITE", "ACK", "BYE"])


async def test_channels_a_complete_catalog_no_longer_lists_are_shown_offline(
    gb: Gb, token: Any
) -> None:
    client, gw, _ = gb
    channels = make_channels(DOMAIN, 6)
    sim = await _sim(gw, channels=channels)
    try:
        await sim.register()
        await _catalog_done(gw, POLICE)
        sim.channels = channels[:4]
        # On demand: a discovery of the network reads its platforms' catalogs again.
        started = await client.post(
            "/api/v1/networks/police/discover", headers=await token("admin")
        )
        assert started.status == 202
        await _catalog_done(gw, POLICE)
        queries = [m for m in sim.received if b"<CmdType>Catalog</CmdType>" in m.body]
        assert [m.method for m in queries] == ["MESSAGE", "SUBSCRIBE", "MESSAGE"]
    finally:
        await sim.stop()
    registry = client.app[REGISTRY]
    kept = await registry.get(camera_id("police", channels[0].device_id))
    gone = await registry.get(camera_id("police", channels[5].device_id))
    assert kept is not None and kept.status is CameraStatus.online
    assert gone is not None and gone.status is CameraStatus.offline
    assert gone.last_error == "no longer in the lower platform's catalog"
    (absent,) = await _audit(client, "gb28181.catalog.absent")
    assert absent["detail"].startswith("2 channels: ")


async def test_tcp_framing_refuses_oversized_and_unframed_messages(gb: Gb) -> None:
    _, gw, _ = gb
    port = gw.transports.ports["tcp"]
    sim = await _sim(gw, transport="tcp")
    try:
        req = sim.request("MESSAGE", b"<" * 20_000, [("Content-Type", "Application/MANSCDP+xml")])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(req.encode()[:2000])  # the head announces 20,000 bytes: never read
        async with asyncio.timeout(5):
            answer = await reader.read()  # answered, then closed
        writer.close()
        assert answer.startswith(b"SIP/2.0 413 message larger than 16384 bytes\r\n")
        unframed = req.encode().replace(b"Content-Length: 20000\r\n", b"")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(unframed[:1500])
        async with asyncio.timeout(5):
            answer = await reader.read()
        writer.close()
        assert answer.startswith(b"SIP/2.0 400 Content-Length is required over TCP\r\n")
    finally:
        await sim.stop()
    assert gw.platform.refusals["413 message larger than 16384 bytes"] == 1


async def test_live_video_over_tcp_for_platforms_behind_nat(gb: Gb, token: Any) -> None:
    client, gw, _ = gb
    sim = await _sim(gw, pid=TCP_MEDIA, channels=make_channels(DOMAIN, 1))
    try:
        await sim.register()
        await _catalog_done(gw, TCP_MEDIA)
        cam = camera_id("police", sim.channels[0].device_id)
        status, headers, body = await _snap(client, token, cam)
        async with asyncio.timeout(5):
            await sim.bye_received.wait()
    finally:
        await sim.stop()
    invite = next(m for m in sim.received if m.method == "INVITE")
    assert b"TCP/RTP/AVP 96" in invite.body and b"a=setup:passive" in invite.body
    assert (status, headers["X-Snapshot-Source"]) == (200, "gb28181-invite")
    assert body.startswith(b"\xff\xd8")


async def test_a_sip_port_in_use_stops_the_start_with_a_clear_error(
    gb: Gb, gb_settings: Settings, vault: CredentialVault
) -> None:
    _, gw, _ = gb
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        cfg = gb_settings.gb28181.model_copy(update={"udp_port": port})
        second = GbGateway(
            gb_settings.model_copy(update={"gb28181": cfg}),
            gw.redis,
            gw.registry,
            gw.catalog,
            gw.audit,
            vault,
        )
        with pytest.raises(RuntimeError) as caught:
            await second.start()
    assert str(caught.value).startswith(f"[gb28181] cannot listen on 127.0.0.1 (udp {port}, tcp 0)")


async def test_a_notify_outside_the_subscription_is_refused_481_without_effect(
    gb: Gb,
) -> None:
    client, gw, _ = gb
    channels = make_channels(DOMAIN, 2)
    sim = await _sim(gw, channels=channels)
    registry = client.app[REGISTRY]
    try:
        await sim.register()
        await _catalog_done(gw, POLICE)
        before = await registry.version()
        stray = await sim.notify([replace(channels[0], event="OFF")], in_dialog=False)
        assert (stray.status, stray.reason) == (481, "no subscription matches this NOTIFY's dialog")
        by_message = await sim.send_body(
            manscdp.catalog("Notify", 5, POLICE, 1, [replace(channels[0], event="OFF")])
        )
        assert (by_message.status, by_message.reason) == (
            481,
            "catalog notifications come by NOTIFY within a subscription",
        )
        await gw.settle()
        assert await registry.version() == before
        ok = await sim.notify([replace(channels[0], event="OFF")])  # within the dialog
        assert ok.status == 200
        await gw.settle()
    finally:
        await sim.stop()
    cam = await registry.get(camera_id("police", channels[0].device_id))
    assert cam is not None and cam.status is CameraStatus.offline
    refused = [e["detail"] for e in await _audit(client, "gb28181.refused")]
    assert any(d.startswith("no subscription matches this NOTIFY's dialog (from") for d in refused)


async def test_the_group_tree_survives_a_restart_of_the_service(
    aiohttp_client: Callable[..., Awaitable[TestClient]],  # type: ignore[type-arg]
    gb_settings: Settings,
    vault: CredentialVault,
) -> None:
    groups = make_groups(DOMAIN)
    root, station = groups
    channels = [replace(c, parent_id=station.device_id) for c in make_channels(DOMAIN, 3)]
    path = ["东泾镇 治安视频", "东泾镇派出所"]
    first = await aiohttp_client(create_app(gb_settings, vault))
    gw = first.app[GB28181]
    sim = await _sim(gw, channels=[*groups, *channels])
    try:
        await sim.register()
        await _catalog_done(gw, POLICE)
    finally:
        await sim.stop()
    registry = first.app[REGISTRY]
    cam = await registry.get(camera_id("police", channels[0].device_id))
    assert cam is not None and cam.gb28181 is not None and cam.gb28181.group_path == path
    await first.close()  # the service stops; its memory is gone

    second = await aiohttp_client(create_app(gb_settings, vault))
    gw = second.app[GB28181]
    assert gw.nodes[POLICE] == {
        root.device_id: ("东泾镇 治安视频", ""),
        station.device_id: ("东泾镇派出所", root.device_id),
    }
    assert await gw.group_tree(POLICE) == gw.nodes[POLICE]  # what any replica reads
    late = replace(make_channels(DOMAIN, 1, start=77)[0], parent_id=station.device_id)
    sim = await _sim(gw, channels=channels)  # a catalog that lists no groups this time
    try:
        await sim.register()
        await _catalog_done(gw, POLICE)
        assert (await sim.notify([replace(late, event="ADD")])).status == 200
        await gw.settle()
        registry = second.app[REGISTRY]
        for item in (channels[0], late):
            cam = await registry.get(camera_id("police", item.device_id))
            assert cam is not None and cam.gb28181 is not None
            assert cam.gb28181.group_path == path
        # A group's status is no channel's: no code claimed, no record.
        assert (await sim.notify([replace(station, event="OFF")])).status == 200
        await gw.settle()
        codes_key = f"{registry.keys.prefix}:gb28181:codes"
        assert await registry.redis.hget(codes_key, station.device_id) is None
        # A group the platform deletes leaves the stored tree.
        assert (await sim.notify([replace(station, event="DEL")])).status == 200
        await gw.settle()
    finally:
        await sim.stop()
    assert station.device_id not in await gw.group_tree(POLICE)


async def test_hostile_variants_over_the_service_change_nothing_stored(gb: Gb) -> None:
    """Seeded, bounded fuzz through the running service: 400 variants of notifications
    within the subscription (a DEL, an OFF, an ADD) and of a keepalive. Every refused one
    leaves the registry's version as it was; the service keeps serving the platform."""
    client, gw, _ = gb
    channels = make_channels(DOMAIN, 4)
    sim = await _sim(gw, channels=channels)
    registry = client.app[REGISTRY]
    try:
        await sim.register()
        await _catalog_done(gw, POLICE)
        async with asyncio.timeout(5):
            await sim.subscribed.wait()
        bases = [
            sim.notification([replace(channels[0], event="DEL")]),
            sim.notification([replace(channels[1], event="OFF")]),
            sim.notification([replace(make_channels(DOMAIN, 1, start=500)[0], event="ADD")]),
            sim.request("MESSAGE", b"", None),
        ]
        keepalive = manscdp.build(
            "Notify", [("CmdType", "Keepalive"), ("SN", "1"), ("DeviceID", POLICE)]
        )
        bases[3].body = keepalive
        bases[3].set("Content-Type", "Application/MANSCDP+xml")
        answers: list[bytes] = []
        host, port = sim.local
        peer = Peer("udp", host, port, answers.append)
        rng = random.Random(2016_2022)
        refused = 0
        for n in range(400):
            base = bases[n % len(bases)]
            data = mutate(base.encode(), rng) if n % 2 else mutate_body(base, rng)
            before = await registry.version()
            answers.clear()
            gw.platform.receive(data, peer)
            await gw.settle()
            reply = parse(answers[0], stream=True) if answers else None
            assert reply is None or isinstance(reply, SipResponse)
            if reply is None or reply.status != 200:
                refused += 1
                assert await registry.version() == before, data
        assert refused > 250
        assert (await sim.keepalive()).status == 200  # still served
    finally:
        await sim.stop()
    assert gw.platform.platforms[POLICE].registered
    assert gw.platform.platforms[POLICE].subscription is not None


async def _until(check: Callable[[], bool], what: str) -> None:
    """Wait (5 s at most) for the simulator's own loop to have done `what`."""
    for _ in range(500):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not within 5 s: {what}")


async def test_the_simulator_keeps_alive_on_its_own_and_can_lose_them(gb: Gb) -> None:
    _, gw, clock = gb
    sim = await _sim(gw, channels=make_channels(DOMAIN, 2), keepalive_every_s=0.02)
    state = gw.platform.platforms[POLICE]
    try:
        await sim.register()
        await _catalog_done(gw, POLICE)
        await _until(lambda: sim.keepalives_sent >= 3, "three keepalives")
        sim.misbehave.lose_keepalives = True
        await asyncio.sleep(0.1)  # (one may be on its way: let it land)
        sent = sim.keepalives_sent
        clock.now += 181  # three intervals without one (the service's clock)
        gw.platform.tick()
        assert not state.online and state.offline_reason == "3 keepalives missed"
        await asyncio.sleep(0.1)  # (the loop goes on, sending nothing)
        assert sim.keepalives_sent == sent and not state.online
        sim.misbehave.lose_keepalives = False
        await _until(lambda: state.online, "back online by its next keepalive")
        await _catalog_done(gw, POLICE)  # (read again after the outage)
    finally:
        await sim.stop()
