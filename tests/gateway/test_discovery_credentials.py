"""Which credentials last worked for a camera, and what an `auth` failure may do to its record.

The issue: `camgw discover` run with other credentials than the running gateway's (a stale
password) failed on every camera, and wrote that failure onto cameras the gateway kept online.
Now each read leaves a keyed fingerprint of the credentials that worked (a Redis hash per
network, never the credentials, never served), and credentials refused degrade a camera only
when they are those that last worked for it, or when none ever did (docs/discovery.md, "Status
and health").

The real app and the real simulator on loopback (127.1.240.0/26), and for the CLI's discovery
what `camgw discover` builds (gateway/cli.py): its own DiscoveryService and in-process adapter
on the same Redis and key file, with the password it was given.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

import orjson
import pytest

from adapters import wire
from adapters.base import CameraFailed, Discovered
from adapters.config import CredentialRef
from adapters.simulator.devices import Quirks
from adapters.simulator.onvif_server import actual_password
from adapters.simulator.server import Simulator
from adapters.uris import UriCredentials, credentials_fingerprint
from gateway.app import REF_PURPOSE, in_process_adapter
from gateway.discovery import DiscoveryService
from gateway.edge import to_event
from gateway.keys import AUDIT, CATALOG, REDIS, REGISTRY
from gateway.models import DiscoveryJob
from gateway.settings import Settings
from gateway.vault import CredentialVault
from tests.gateway.test_discovery_api import (
    PASSWORDS,
    Factory,
    Gateway,
    fleet,
    gateway,
    passwords,
    sim_settings,
)

__all__ = ["passwords"]  # the fixture (autouse) that sets the networks' password variables

BASE = "127.1.240"
CLI_PASSWORD_ENV = "CAMGW_TEST_CLI_PASSWORD"
REFUSED = "GetCapabilities: credentials refused"
NOT_THE_WORKING = (
    f"{REFUSED} (not the credentials that last worked for this camera: record left as it is)"
)


def settings_for(settings: Settings, last: int) -> Settings:
    return sim_settings(settings, {"governance": f"{BASE}.{last}/30"})


async def discover_as_cli(
    gw: Gateway,
    settings: Settings,
    vault: CredentialVault,
    password: str,
    monkeypatch: pytest.MonkeyPatch,
) -> DiscoveryJob:
    """One discovery of governance as `camgw discover` runs it, with `password`."""
    app = gw.client.app
    monkeypatch.setenv(CLI_PASSWORD_ENV, password)
    ref = CredentialRef(username="admin", password_env=CLI_PASSWORD_ENV)
    network = settings.network_by_id["governance"].model_copy(update={"credentials": ref})
    adapter = in_process_adapter(network, settings, vault)
    service = DiscoveryService(
        settings, app[REDIS], app[REGISTRY], app[CATALOG], app[AUDIT], {"governance": adapter}
    )
    try:
        return await service.run("governance", "cli:test")
    finally:
        await adapter.close()


def reasons(job: DiscoveryJob) -> dict[str, tuple[str, str]]:
    return {f.address: (f.step, f.reason) for f in job.failures}


# --------------------------------------------------------------------------- the rule


async def test_other_credentials_refused_leave_a_working_camera_as_it_is(
    aiohttp_client: Factory,
    settings: Settings,
    vault: CredentialVault,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    devices = fleet("governance", BASE, {"gate": Quirks(), "yard": Quirks()}, start=1)
    s = settings_for(settings, 0)
    async with (
        Simulator(devices, answer_delay_s=0.01, serve_rtsp=False),
        gateway(aiohttp_client, s, vault) as gw,
    ):
        registry = gw.client.app[REGISTRY]
        first = await gw.discover("governance")
        assert first["progress"]["enriched"] == 2 and not first["failures"]
        cams = await gw.cameras("governance")
        before = {a: await registry.get_raw(c["id"]) for a, c in cams.items()}
        version = await registry.version()

        caplog.set_level(logging.WARNING, logger="gateway.discovery")
        job = await discover_as_cli(gw, s, vault, "a-stale-password", monkeypatch)
        after = {a: await registry.get_raw(c["id"]) for a, c in cams.items()}
        listed = await gw.cameras("governance")
        assert await registry.version() == version  # nothing was written at all

    # The records are exactly as they were: status, last_error, rev, updated_at.
    assert after == before
    for address, cam in listed.items():
        assert (cam["status"], cam["last_error"]) == ("online", None)
        assert cam["rev"] == cams[address]["rev"]
    # The job says why, for each camera; each is logged at WARNING with network and camera.
    assert job.state == "done" and job.progress.failed == 2
    assert reasons(job) == {d.address: ("auth", NOT_THE_WORKING) for d in devices}
    logged = [r for r in caplog.records if "not those that last worked" in r.getMessage()]
    assert {(r.levelno, r.__dict__["network"], r.__dict__["camera"]) for r in logged} == {
        (logging.WARNING, "governance", cam["id"]) for cam in cams.values()
    }


async def test_a_camera_refusing_the_credentials_that_worked_is_degraded(
    aiohttp_client: Factory,
    settings: Settings,
    vault: CredentialVault,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    devices = fleet("governance", BASE, {"gate": Quirks(), "yard": Quirks()}, start=5)
    gate, yard = devices
    s = settings_for(settings, 4)
    async with (
        Simulator(devices, answer_delay_s=0.01, serve_rtsp=False),
        gateway(aiohttp_client, s, vault) as gw,
    ):
        await gw.discover("governance")

        # The camera's password changed on the device: what worked is refused now.
        gate.quirks.wrong_password = True
        job = await gw.discover("governance")
        assert {f["address"]: (f["step"], f["reason"]) for f in job["failures"]} == {
            gate.address: ("auth", REFUSED)
        }
        cams = await gw.cameras("governance")
        assert cams[gate.address]["status"] == "degraded"
        assert cams[gate.address]["last_error"] == f"auth: {REFUSED}"
        assert (cams[yard.address]["status"], cams[yard.address]["last_error"]) == ("online", None)

        # A process given the camera's new password reads it: those now last worked for it.
        cli = await discover_as_cli(gw, s, vault, actual_password(gate), monkeypatch)
        assert reasons(cli) == {yard.address: ("auth", NOT_THE_WORKING)}
        cams = await gw.cameras("governance")
        assert (cams[gate.address]["status"], cams[gate.address]["last_error"]) == ("online", None)
        assert (cams[yard.address]["status"], cams[yard.address]["last_error"]) == ("online", None)

        # ... so the gateway's own (old) password no longer degrades it.
        again = await gw.discover("governance")
        assert {f["address"]: (f["step"], f["reason"]) for f in again["failures"]} == {
            gate.address: ("auth", NOT_THE_WORKING)
        }
        assert (await gw.cameras("governance"))[gate.address]["status"] == "online"


async def test_a_camera_no_credentials_ever_worked_for_is_degraded(
    aiohttp_client: Factory,
    settings: Settings,
    vault: CredentialVault,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    [refusing] = fleet("governance", BASE, {"refusing": Quirks(wrong_password=True)}, start=9)
    s = settings_for(settings, 8)
    async with (
        Simulator([refusing], answer_delay_s=0.01, serve_rtsp=False),
        gateway(aiohttp_client, s, vault) as gw,
    ):
        body = {
            "network": "governance",
            "name": "Registered, never read",
            "category": "sharp-eyes",
            "address": refusing.address,
        }
        resp = await gw.client.post("/api/v1/cameras", json=body, headers=gw.auth)
        assert resp.status == 201, await resp.text()
        cam_id = (await resp.json())["id"]

        job = await gw.discover("governance")
        cam = await gw.get(f"/api/v1/cameras/{cam_id}")
        assert job["failures"] == [{"address": refusing.address, "step": "auth", "reason": REFUSED}]
        assert (cam["status"], cam["last_error"]) == ("degraded", f"auth: {REFUSED}")
        registry = gw.client.app[REGISTRY]
        assert await registry.worked_credentials("governance", cam_id) is None

        # Any other credentials refused say the same: nothing is known to have worked.
        cli = await discover_as_cli(gw, s, vault, "yet-another-password", monkeypatch)
        assert reasons(cli) == {refusing.address: ("auth", REFUSED)}
        cam = await gw.get(f"/api/v1/cameras/{cam_id}")
        assert (cam["status"], cam["last_error"]) == ("degraded", f"auth: {REFUSED}")


# --------------------------------------------------------------------------- the fingerprint


async def test_the_fingerprint_is_kept_apart_never_served_and_deleted_with_the_camera(
    aiohttp_client: Factory,
    settings: Settings,
    vault: CredentialVault,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    [device] = fleet("governance", BASE, {"kept": Quirks()}, start=13)
    password = PASSWORDS["governance"]
    s = settings_for(settings, 12)
    async with (
        Simulator([device], answer_delay_s=0.01, serve_rtsp=False),
        gateway(aiohttp_client, s, vault) as gw,
    ):
        registry = gw.client.app[REGISTRY]
        job = await gw.discover("governance")
        [cam] = (await gw.cameras("governance")).values()
        fp = await registry.worked_credentials("governance", cam["id"])
        # Another process of the deployment (the CLI) with the same password: the same one.
        await discover_as_cli(gw, s, vault, password, monkeypatch)
        assert await registry.worked_credentials("governance", cam["id"]) == fp

        answers = [
            await gw.get(f"/api/v1/cameras/{cam['id']}"),
            await gw.get("/api/v1/cameras?limit=500"),
            await gw.get("/api/v1/networks"),
            await gw.get(f"/api/v1/jobs/{job['id']}"),
        ]
        raw = await registry.get_raw(cam["id"])

        resp = await gw.client.delete(f"/api/v1/cameras/{cam['id']}", headers=gw.auth)
        assert resp.status == 204, await resp.text()
        gone = await registry.worked_credentials("governance", cam["id"])
        # A read stored just before its camera was deleted leaves nothing behind either.
        late = await registry.remember_credentials([("governance", cam["id"], fp or "")])
        problems = await registry.integrity_problems()

    # Keyed with the deployment's secret over the credentials: not the password, nor in it.
    expected = credentials_fingerprint(vault.derive(REF_PURPOSE), UriCredentials("admin", password))
    assert fp == expected and re.fullmatch(r"[0-9a-f]{16}", fp)
    assert fp != password and fp not in password and password not in fp
    assert expected != credentials_fingerprint(b"", UriCredentials("admin", password))
    # Never in an answer of the API (as admin), nor in the record.
    assert raw is not None and fp.encode() not in raw
    for answer in answers:
        text = orjson.dumps(answer).decode()
        assert fp not in text and password not in text
    assert "credentials_fp" not in answers[0]
    # Deleted with the camera.
    assert gone is None and late == [0] and problems == []


def test_the_fingerprint_crosses_the_edge_both_ways_and_older_messages_still_decode() -> None:
    fp = "0123456789abcdef"
    camera = Discovered(
        network="police", address="127.2.9.1", source="csv", ref="ab" * 16, credentials_fp=fp
    )
    back = wire.from_info(
        "police", wire.CameraInfo.model_validate_json(wire.to_info(camera).model_dump_json())
    )
    assert back == camera

    def decoded(message: Mapping[str, object]) -> wire.FromAdapter:
        fields = {b"m": orjson.dumps({"v": 1, "job": "job-1", **message})}
        return wire.decode_from_adapter(fields)[0]

    failed = {"type": "camera.failed", "ref": "ab" * 16, "kind": "auth", "reason": REFUSED}
    for sent, carried in ((failed | {"credentials_fp": fp}, fp), (failed, None)):
        message = decoded(sent)
        assert isinstance(message, wire.CameraFailed)
        event = to_event("police", message)
        assert isinstance(event, CameraFailed) and event.failure.credentials_fp == carried
        encoded = {k.encode(): v for k, v in wire.encode(message).items()}
        assert wire.decode_from_adapter(encoded)[0] == message
    older_read = decoded({"type": "camera.read", "camera": {"ref": "ab" * 16}})
    assert isinstance(older_read, wire.CameraRead) and older_read.camera.credentials_fp is None
    # Only a fingerprint's shape crosses (a password sent there by mistake is refused).
    with pytest.raises(wire.Refused, match="credentials_fp"):
        decoded(failed | {"credentials_fp": "hunter2-password"})
