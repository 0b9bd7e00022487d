"""The shipped `[server] adapters = "process"` end to end: the real app, its in-process networks'
adapters in one child process (adapters/process.py), a discovery and a snapshot through the
HTTP API against the real simulator on loopback (127.1.227.0/26), and no child left once the app
is closed. The rest of the suite runs its apps with "loop" (tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from adapters.config import CredentialRef, DiscoveryConfig
from adapters.process import ProcessAdapter
from adapters.simulator.devices import ONVIF_PORT, Quirks
from adapters.simulator.fleet import FleetCamera
from adapters.simulator.server import Simulator, build_devices
from gateway.app import create_app
from gateway.edge import EdgeAdapter
from gateway.keys import ADAPTERS, TOKENS
from gateway.models import Role
from gateway.settings import Settings
from gateway.vault import CredentialVault

Factory = Callable[..., Awaitable[TestClient]]  # type: ignore[type-arg]

PASSWORD = "proc-Gateway-pw-8Lm"
ENV = "CAMGW_PROCESS_TEST_PASSWORD"
BASE = "127.1.227"
ROLES = {"good": Quirks(), "good-2": Quirks(), "wrong-password": Quirks(wrong_password=True)}

pytestmark = pytest.mark.adapters_process


def process_settings(settings: Settings) -> Settings:
    networks = []
    for n in settings.networks:
        cfg: dict[str, Any] = {
            "wsdiscovery_targets": (f"{BASE}.0/26",) if n.id == "governance" else (),
            "onvif_port": ONVIF_PORT,
            "health_interval_s": 0,
            "timeout_s": 1.0,
            "camera_budget_s": 3.0,
            "probe_wait_s": 0.5,
        }
        networks.append(
            n.model_copy(
                update={
                    "discovery": DiscoveryConfig.model_validate(cfg),
                    "credentials": CredentialRef(username="admin", password_env=ENV),
                }
            )
        )
    server = settings.server.model_copy(update={"adapters": "process", "adapter_niceness": 0})
    return settings.model_copy(update={"networks": tuple(networks), "server": server})


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


async def test_discovery_and_a_snapshot_through_the_api_with_adapters_in_a_child_process(
    aiohttp_client: Factory,
    settings: Settings,
    vault: CredentialVault,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV, PASSWORD)
    s = process_settings(settings)
    assert settings.server.adapters == "process"  # as shipped
    devices = build_devices(
        [
            FleetCamera(f"gw-{role}", "governance", "sharp-eyes", role, f"{BASE}.{i}", 31, 121, "")
            for i, role in enumerate(ROLES, start=1)
        ],
        {"governance": PASSWORD},
        quirks_for=lambda c: replace(ROLES[c.name]),
    )
    dev = {d.camera.name: d for d in devices}
    async with Simulator(devices, answer_delay_s=0.01, serve_rtsp=False):
        client = await aiohttp_client(create_app(s, vault))
        adapters = client.app[ADAPTERS]
        assert all(
            isinstance(a, EdgeAdapter if n.mode == "edge" else ProcessAdapter)
            for n in s.networks
            for a in [adapters[n.id]]
        )
        gov = adapters["governance"]
        assert isinstance(gov, ProcessAdapter)
        processes = {a.process for a in adapters.values() if isinstance(a, ProcessAdapter)}
        assert len(processes) == 1  # one child for every in-process network
        pid = gov.process.pid
        assert pid is not None and pid != os.getpid() and _alive(pid)

        secret, _ = await client.app[TOKENS].create("proc-admin", Role.admin, ["*"], "tests")
        auth = {"Authorization": f"Bearer {secret}"}
        resp = await client.post("/api/v1/networks/governance/discover", headers=auth)
        assert resp.status == 202, await resp.text()
        job_id = (await resp.json())["id"]
        deadline = time.monotonic() + 30
        while True:
            job = await (await client.get(f"/api/v1/jobs/{job_id}", headers=auth)).json()
            if job["state"] != "running" or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert job["state"] == "done" and job["error"] is None, job
        assert job["progress"]["found"] == 3 and job["progress"]["enriched"] == 2
        assert [(f["address"], f["step"]) for f in job["failures"]] == [
            (dev["wrong-password"].address, "auth")
        ]
        body = await (
            await client.get("/api/v1/cameras?network=governance&limit=50", headers=auth)
        ).json()
        cams = {c["address"]: c for c in body["items"]}
        assert set(cams) == {dev["good"].address, dev["good-2"].address}
        good = cams[dev["good"].address]
        assert good["serial"] == dev["good"].serial and good["status"] == "online"

        resp = await client.get(
            f"/api/v1/cameras/{good['id']}/snapshot", params={"reason": "INC-1"}, headers=auth
        )
        assert resp.status == 200, await resp.text()
        assert resp.content_type == "image/jpeg" and (await resp.read())[:2] == b"\xff\xd8"
        assert gov.process.pid == pid  # the same child all along
        other = cams[dev["good-2"].address]["id"]  # (not one whose picture is cached)
        pid = await _a_dead_child_is_restarted_and_counted(client, auth, s, other, gov)

        await client.close()  # the app's cleanup: the adapters closed, the child stopped
    assert not _alive(pid), "the adapter process outlived its app"
    assert gov.process.pid is None


async def _a_dead_child_is_restarted_and_counted(
    client: TestClient,  # type: ignore[type-arg]
    auth: dict[str, str],
    s: Settings,
    cam_id: str,
    gov: ProcessAdapter,
) -> int:
    """The child dies: its networks' reads fail meanwhile (503), the next read starts another,
    and the operator's graph counts the start. Returns the new child's pid."""
    pid = gov.process.pid
    assert pid is not None
    networks = ",".join(n.id for n in s.networks if n.mode != "edge")
    starts = f'camgw_adapter_process_starts_total{{networks="{networks}"}}'
    assert f"{starts} 1.0" in await (await client.get("/metrics", headers=auth)).text()
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while True:
        resp = await client.get(
            f"/api/v1/cameras/{cam_id}/snapshot", params={"reason": "INC-2"}, headers=auth
        )
        if resp.status == 200 or time.monotonic() > deadline:
            break
        assert resp.status == 503, await resp.text()
        await asyncio.sleep(0.1)
    assert resp.status == 200, await resp.text()
    assert gov.process.pid not in (None, pid)
    assert f"{starts} 2.0" in await (await client.get("/metrics", headers=auth)).text()
    new = gov.process.pid
    assert new is not None
    return new
