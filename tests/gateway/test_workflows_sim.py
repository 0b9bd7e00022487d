"""Issue 12's workflows end to end, against a registry filled the way a town fills it: the camera
simulator on loopback (real ONVIF, digest-protected snapshots), discovered through the API by
the gateway's in-process adapters, then classified by an admin (category, who answers, where,
who fixes it). Every issue-12 endpoint is then used over HTTP with a token per role: cameras
near a place, pictures for one incident, lifecycle and its history, the summary, maintenance
contacts, status history, availability and the outage report (JSON, CSV, XLSX), the Prometheus
series; always within grants and each network's sharing policy.

One clock for every writer: the discovery service (discovery and health rounds), the camera
API (registrations, patches) and the snapshot service read `datetime.now` from it, and the
status history is read with it; so a camera taken down and up in the simulator at chosen times,
observed by real health rounds, gives exact figures. The snapshot rate limit's minute is pinned
the same way (its windows are `time.time() // 60`). Nothing waits for a time to pass: reads
wait for the catalog to hold the newest version (`caught_up`; under load it may serve the one
before for a while), jobs for their end.

The fleet: governance 127.1.232.0/26, police 127.2.232.0/26. The police network in this module
shares neither locations nor maintenance contacts, and allows one picture a minute.
"""

from __future__ import annotations

import base64
import csv
import io
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import pytest
from openpyxl import load_workbook

import gateway.api.cameras
import gateway.discovery
import gateway.snapshots
from adapters.simulator.devices import Quirks, SimDevice
from adapters.simulator.fleet import FleetCamera
from adapters.simulator.server import Simulator, build_devices
from gateway.history import HISTORY
from gateway.keys import DISCOVERY, TOKENS
from gateway.models import Role
from gateway.settings import Settings
from gateway.vault import CredentialVault
from tests.gateway.test_availability_lifecycle import caught_up
from tests.gateway.test_discovery_api import ENV, PASSWORDS, Factory, Gateway, sim_settings
from tests.gateway.test_discovery_api import gateway as start_gateway

H = 3600.0
T0 = datetime(2026, 3, 2, tzinfo=UTC)  # discovery runs then; the scripted day follows
DAY_END = T0 + timedelta(days=1)
MANHOLE = (31.08, 121.3)
GOV, POL = "127.1.232", "127.2.232"
REASON = "INC-12 manhole cover, Dongjing Rd"
CONTACT = {
    "organisation": "China Telecom Songjiang",
    "contact": "duty desk",
    "phone": "+86 21 5764 0000",
    "confirmed_on": "2026-02-20",
}
SHARP_EYES = {
    "category": "sharp-eyes",
    "department": "Political-Legal Committee",
    "carrier": "China Telecom",
    "project": "Sharp Eyes project",
}
ROADS = {
    "category": "road-blindspot",
    "department": "Town Safety Office",
    "carrier": "China Unicom",
    "project": "Road monitoring blind-spot filling",
}
POLICE = {
    "category": "public-security",
    "department": "Police",
    "carrier": "China Telecom",
    "project": "Public-security cameras",
}
# role -> (network, address, classification, where: metres north and east of the manhole, or
# the exact coordinates an old table gave)
FLEET: dict[str, tuple[str, str, dict[str, str], tuple[float, float] | None]] = {
    "flap": ("governance", f"{GOV}.1", SHARP_EYES, (40, 0)),
    "steady": ("governance", f"{GOV}.2", SHARP_EYES, (0, 120)),
    "gone": ("governance", f"{GOV}.3", SHARP_EYES, (-250, 0)),
    "coarse": ("governance", f"{GOV}.4", ROADS, None),  # (31.08, 121.3): two decimals
    "far": ("governance", f"{GOV}.5", ROADS, (3000, 0)),
    "pol-down": ("police", f"{POL}.1", POLICE, (80, 0)),
    "pol-a": ("police", f"{POL}.2", POLICE, (0, -150)),
    "pol-b": ("police", f"{POL}.3", POLICE, (200, 0)),
}
GOV_ROLES = [r for r, (n, *_) in FLEET.items() if n == "governance"]
POL_ROLES = [r for r, (n, *_) in FLEET.items() if n == "police"]


@pytest.fixture(autouse=True)
def passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    for network, var in ENV.items():
        monkeypatch.setenv(var, PASSWORDS[network])


def _at(north_m: float, east_m: float) -> dict[str, float]:
    lat = MANHOLE[0] + north_m / 111_320
    lon = MANHOLE[1] + east_m / (111_320 * math.cos(math.radians(MANHOLE[0])))
    return {"lat": round(lat, 6), "lon": round(lon, 6)}


def _devices() -> list[SimDevice]:
    cams = [
        FleetCamera(
            id=f"sim-{role}",
            network=network,
            category="unclassified",
            name=role,
            address=address,
            lat=MANHOLE[0],
            lon=MANHOLE[1],
            place="Dongjing Rd",
        )
        for role, (network, address, _, _) in FLEET.items()
    ]
    return build_devices(cams, PASSWORDS, quirks_for=lambda _: replace(Quirks()))


def _settings(settings: Settings) -> Settings:
    """Discovery pointed at the simulator; the police share neither where their cameras are nor
    who fixes them, and allow one picture a minute per caller."""
    patient = {"timeout_s": 5.0, "camera_budget_s": 10.0, "probe_wait_s": 1.0}  # a busy machine
    targets = {"governance": f"{GOV}.0/26", "police": f"{POL}.0/26"}
    s = sim_settings(settings, targets, {"governance": patient, "police": patient})
    networks = []
    for n in s.networks:
        if n.id != "police":
            networks.append(n)
            continue
        share = tuple(f for f in n.sharing.share if f not in ("location", "maintenance"))
        sharing = n.sharing.model_copy(update={"share": share, "rate_limit_per_minute": 1})
        networks.append(n.model_copy(update={"sharing": sharing}))
    return s.model_copy(update={"networks": tuple(networks)})


class Clock:
    """The one clock of every writer in this module (module docstring)."""

    def __init__(self) -> None:
        self.t = T0

    def at(self, hours: float) -> None:
        self.t = T0 + timedelta(hours=hours)


def _frozen(clock: Clock) -> type[datetime]:
    class Frozen(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]
            return clock.t if tz is not None else clock.t.replace(tzinfo=None)

    return Frozen


class _MinuteStart:
    """`time` for the snapshot service: real time moved to one second into a minute when
    `pin` is called, so that the pictures taken after it fall in one rate-limit window (they
    have 59 s)."""

    def __init__(self) -> None:
        self.pin()

    def pin(self) -> None:
        self.offset = 0.0
        self.offset = 61 - self.time() % 60

    def time(self) -> float:
        return time.time() + self.offset

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@dataclass
class Town:
    gw: Gateway
    sim: Simulator
    clock: Clock
    ids: dict[str, str]  # role -> camera id
    devices: dict[str, SimDevice]  # role -> simulated device
    minute: _MinuteStart  # the snapshot service's time

    async def token(self, role: str, networks: list[str], name: str = "") -> dict[str, str]:
        store = self.gw.client.app[TOKENS]
        secret, _ = await store.create(name or f"t-{role}", Role(role), networks, "tests")
        return {"Authorization": f"Bearer {secret}"}

    async def get(self, path: str, headers: dict[str, str], **params: Any) -> Any:
        await caught_up(self.gw.client.app)
        resp = await self.gw.client.get(path, params=params, headers=headers)
        assert resp.status == 200, f"{path}: {resp.status} {await resp.text()}"
        if resp.content_type == "application/json":
            return await resp.json()
        return await resp.read()

    async def patch(self, role: str, body: dict[str, Any]) -> Any:
        resp = await self.gw.client.patch(
            f"/api/v1/cameras/{self.ids[role]}", json=body, headers=self.gw.auth
        )
        assert resp.status == 200, await resp.text()
        return await resp.json()

    async def health(self, hours: float, network: str = "governance") -> None:
        self.clock.at(hours)
        await caught_up(self.gw.client.app)  # the round reads the cameras from the catalog
        await self.gw.client.app[DISCOVERY].health_round(network)

    async def down(self, role: str, hours: float) -> None:
        """Taken down at `hours`: the health rounds then and five minutes later say offline."""
        await self.sim.set_offline(self.devices[role].camera.id, True)
        network = FLEET[role][0]
        await self.health(hours, network)
        await self.health(hours + 5 / 60, network)

    async def up(self, role: str, hours: float) -> None:
        await self.sim.set_offline(self.devices[role].camera.id, False)
        network = FLEET[role][0]
        await self.health(hours, network)
        await self.health(hours + 5 / 60, network)


@asynccontextmanager
async def town(
    aiohttp_client: Factory,
    settings: Settings,
    vault: CredentialVault,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Town]:
    """The fleet discovered at T0 (every camera online from then), then classified by an admin:
    category and who answers for it, its location, a maintenance contact."""
    clock = Clock()
    frozen = _frozen(clock)
    for module in (gateway.discovery, gateway.api.cameras, gateway.snapshots):
        monkeypatch.setattr(module, "datetime", frozen)
    minute = _MinuteStart()
    monkeypatch.setattr(gateway.snapshots, "time", minute)
    devices = _devices()
    s = _settings(settings)
    async with (
        Simulator(devices, answer_delay_s=0.0, serve_rtsp=False) as sim,
        start_gateway(aiohttp_client, s, vault) as gw,
    ):
        gw.client.app[HISTORY].clock = lambda: clock.t
        for network in ("governance", "police"):
            job = await gw.discover(network)
            assert (job["state"], job["failures"]) == ("done", []), job
        found = {**await gw.cameras("governance"), **await gw.cameras("police")}
        by_address = {d.address: d for d in devices}
        ids = {by_address[a].camera.name: c["id"] for a, c in found.items()}
        assert set(ids) == set(FLEET)  # every simulated camera, and nothing else
        t = Town(gw, sim, clock, ids, {d.camera.name: d for d in devices}, minute)
        for role, (_, _, classes, where) in FLEET.items():
            location = _at(*where) if where else {"lat": MANHOLE[0], "lon": MANHOLE[1]}
            await t.patch(role, {**classes, "location": location, "maintenance": CONTACT})
        yield t


# -- status history, availability, the outage report, metrics, summary ---------------------------


async def _flapping_day(t: Town) -> None:
    """The scripted day: governance `flap` down 01:00-03:00, 10:00-12:00 and from 20:00 (each
    seen by the second health round, 5 minutes later); `gone` decommissioned at 06:00; police
    `pol-down` down from 05:00."""
    await t.down("flap", 1)
    await t.up("flap", 3)
    await t.down("pol-down", 5)
    t.clock.at(6)
    await t.patch("gone", {"lifecycle": "decommissioned"})
    await t.down("flap", 10)
    await t.up("flap", 12)
    await t.down("flap", 20)
    t.clock.t = DAY_END


FLAP_ONLINE = (1 * H + 300) + 7 * H + 8 * H  # 00:00-01:05, 03:05-10:05, 12:05-20:05
FLAP_OFFLINE = 2 * H + 2 * H + (4 * H - 300)  # 01:05-03:05, 10:05-12:05, 20:05-24:00
POL_DOWN_ONLINE = 5 * H + 300  # 00:00-05:05


async def test_a_day_of_a_flapping_town_within_grants(  # noqa: PLR0915
    aiohttp_client: Factory,
    settings: Settings,
    vault: CredentialVault,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with town(aiohttp_client, settings, vault, monkeypatch) as t:
        await _flapping_day(t)
        gov_viewer = await t.token("viewer", ["governance"])
        pol_viewer = await t.token("viewer", ["police"])
        viewer = await t.token("viewer", ["*"])
        admin = t.gw.auth
        day = {"period": "day", "end": DAY_END.isoformat()}

        # The flapping camera's history: every change the health rounds made, newest first.
        flap = t.ids["flap"]
        history = await t.get(f"/api/v1/cameras/{flap}/history", gov_viewer)
        changes = [(c["at"], c["previous"], c["status"]) for c in history["items"]]
        assert changes == [
            ("2026-03-02T20:05:00Z", "online", "offline"),
            ("2026-03-02T12:05:00Z", "offline", "online"),
            ("2026-03-02T10:05:00Z", "online", "offline"),
            ("2026-03-02T03:05:00Z", "offline", "online"),
            ("2026-03-02T01:05:00Z", "online", "offline"),
            ("2026-03-02T00:00:00Z", None, "online"),  # discovered
        ]
        assert all(c["error"].startswith("health: ") for c in history["items"][::2][:3])
        assert history["status"] == "offline"
        hidden = await t.gw.client.get(f"/api/v1/cameras/{flap}/history", headers=pol_viewer)
        assert hidden.status == 404  # not granted: as if it did not exist

        # Per camera, exactly.
        rows = {
            r["key"]: r
            for r in (await t.get("/api/v1/availability", gov_viewer, by="camera", **day))["rows"]
        }
        assert set(rows) == {t.ids[r] for r in GOV_ROLES}  # never a police camera
        assert (rows[flap]["online_s"], rows[flap]["outage_total_s"]) == (FLAP_ONLINE, FLAP_OFFLINE)
        assert (rows[flap]["outages"], rows[flap]["outage_longest_s"]) == (3, 4 * H - 300)
        assert rows[flap]["share_online"] == FLAP_ONLINE / (24 * H)
        gone = rows[t.ids["gone"]]  # decommissioned at 06:00: counted until then
        assert (gone["observed_s"], gone["online_s"], gone["outages"]) == (6 * H, 6 * H, 0)
        assert next(iter(rows)) == flap  # worst first

        # Rolled up: the governance viewer's town is governance's cameras, whatever the grouping.
        observed = 4 * 24 * H + 6 * H
        online = observed - FLAP_OFFLINE
        for by in ("network", "department", "carrier", "project"):
            body = await t.get("/api/v1/availability", gov_viewer, by=by, **day)
            assert body["networks"] == ["governance"]
            total = body["total"]
            assert (total["cameras"], total["observed_s"], total["online_s"]) == (
                5, observed, online
            ), by  # fmt: skip
            assert (total["outages"], total["outage_total_s"]) == (3, FLAP_OFFLINE), by
        by_dept = await t.get("/api/v1/availability", gov_viewer, by="department", **day)
        assert {r["key"]: r["cameras"] for r in by_dept["rows"]} == {
            "Political-Legal Committee": 3,
            "Town Safety Office": 2,
        }
        everyone = await t.get("/api/v1/availability", viewer, by="network", **day)
        police = {r["key"]: r for r in everyone["rows"]}["police"]
        assert (police["cameras"], police["outages"]) == (3, 1)
        assert police["online_s"] == 3 * 24 * H - (24 * H - POL_DOWN_ONLINE)
        assert everyone["total"]["cameras"] == 8 and everyone["total"]["outages"] == 4
        only_police = await t.get("/api/v1/availability", pol_viewer, by="carrier", **day)
        assert only_police["total"]["cameras"] == 3 and only_police["networks"] == ["police"]
        nothing = await t.get("/api/v1/availability", gov_viewer, network="police", **day)
        assert nothing["total"]["cameras"] == 0 and nothing["rows"] == []

        # The outage report: who is down now, since when, and who fixes it (as shared).
        report = await t.get("/api/v1/reports/outages", viewer, min_minutes="60")
        items = {i["id"]: i for i in report["items"]}
        assert list(items) == [t.ids["pol-down"], flap]  # longest first
        assert (items[flap]["since"], items[flap]["down_s"]) == (
            "2026-03-02T20:05:00Z",
            4 * H - 300,
        )
        assert items[flap]["maintenance"] == CONTACT and items[flap]["outages_recent"] == 3
        assert items[flap]["department"] == "Political-Legal Committee"
        pol = items[t.ids["pol-down"]]
        assert (pol["since"], pol["since_exact"]) == ("2026-03-02T05:05:00Z", True)
        assert pol["maintenance"] is None  # the police do not share who fixes their cameras
        assert pol["department"] == "Police"
        as_admin = await t.get("/api/v1/reports/outages", admin, min_minutes="60")
        assert as_admin["items"][0]["maintenance"] == CONTACT  # admins see every record whole
        gov_only = await t.get("/api/v1/reports/outages", gov_viewer, min_minutes="60")
        assert [i["id"] for i in gov_only["items"]] == [flap]
        raw = await t.get("/api/v1/reports/outages", viewer, min_minutes="60", format="csv")
        assert raw.startswith("\ufeff".encode())
        table = list(csv.DictReader(io.StringIO(raw.decode()[1:])))
        assert [r["id"] for r in table] == list(items)
        assert table[1]["maintenance"] == (
            "China Telecom Songjiang, duty desk, +86 21 5764 0000 (confirmed 2026-02-20)"
        )
        assert table[0]["maintenance"] == ""
        xlsx = await t.get("/api/v1/reports/outages", viewer, min_minutes="60", format="xlsx")
        book = load_workbook(io.BytesIO(xlsx))
        sheet = list(book["outages"].iter_rows(values_only=True))
        assert [r[0] for r in sheet[1:]] == list(items)
        pol_changes = 2  # discovered online, offline at 05:05
        assert len(list(book["history"].iter_rows())) == 1 + len(history["items"]) + pol_changes

        # Prometheus, per department and carrier, only the networks a scraper is granted.
        metrics = (
            await (await t.gw.client.get("/metrics", headers=gov_viewer)).text()
        ).splitlines()
        outages = [m for m in metrics if m.startswith("camgw_outages_current{")]
        assert outages == [
            'camgw_outages_current{carrier="China Telecom",department="Political-Legal '
            'Committee",network="governance"} 1.0'
        ]
        assert not [m for m in metrics if 'network="police"' in m and m.startswith("camgw_")]

        # The summary: each category's records by lifecycle state, online now.
        summary = await t.get("/api/v1/summary", gov_viewer)
        rows_ = {r["category"]: r for r in summary["inventory"]}
        sharp = rows_["sharp-eyes"]
        assert (sharp["planned"], sharp["funding_10k_cny"]) == (943, 1800)
        assert (sharp["registered"], sharp["online"]) == (2, 1)  # flap is down; gone is out
        assert sharp["by_lifecycle"] == {"in-service": 2, "decommissioned": 1}
        assert (rows_["road-blindspot"]["registered"], rows_["road-blindspot"]["online"]) == (2, 2)
        assert "public-security" not in rows_ or rows_["public-security"]["registered"] == 0


# -- cameras near a place and the sharing policy --------------------------------------------------


async def test_near_places_cameras_only_by_what_each_network_shares(
    aiohttp_client: Factory,
    settings: Settings,
    vault: CredentialVault,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with town(aiohttp_client, settings, vault, monkeypatch) as t:
        ids = t.ids
        near = f"{MANHOLE[0]},{MANHOLE[1]}"
        admin = await t.get("/api/v1/cameras", t.gw.auth, near=near, radius="300")
        # Admins see every record whole: police cameras placed too, nearest first.
        assert [c["id"] for c in admin["items"]] == [
            ids[r] for r in ("coarse", "flap", "pol-down", "steady", "pol-a", "pol-b", "gone")
        ]
        dist = admin["near"]["distance_m"]
        for role, metres in (("flap", 40), ("pol-down", 80), ("steady", 120), ("gone", 250)):
            assert abs(dist[ids[role]] - metres) < 1.0, role
        assert admin["near"]["precision_m"][ids["coarse"]] == 556.6  # two decimals
        assert admin["near"]["precision_m"][ids["flap"]] == 0.1
        assert admin["near"]["unplaced"] == {}

        viewer = await t.token("viewer", ["*"])
        seen = await t.get("/api/v1/cameras", viewer, near=near, radius="300")
        assert [c["id"] for c in seen["items"]] == [
            ids[r] for r in ("coarse", "flap", "steady", "gone")
        ]
        # The police cameras are there, but not placed: counted, never with a distance.
        assert seen["near"]["unplaced"] == {"police": 3}
        assert not set(seen["near"]["distance_m"]) & {ids[r] for r in POL_ROLES}
        gov_only = await t.get(
            "/api/v1/cameras", await t.token("viewer", ["governance"]), near=near, radius="300"
        )
        assert gov_only["near"]["unplaced"] == {}  # not granted: not even counted
        assert [c["id"] for c in gov_only["items"]] == [c["id"] for c in seen["items"]]

        # Maintenance contacts: admin-owned, shared where the network shares them.
        pol = await t.get(f"/api/v1/cameras/{ids['pol-a']}", viewer)
        assert "maintenance" not in pol and "location" not in pol and pol["status"] == "online"
        gov = await t.get(f"/api/v1/cameras/{ids['steady']}", viewer)
        assert gov["maintenance"] == CONTACT
        whole = await t.get(f"/api/v1/cameras/{ids['pol-a']}", t.gw.auth)
        assert whole["maintenance"] == CONTACT and whole["location"]["lat"] == _at(0, -150)["lat"]

        # Discovery again: admin-owned fields stay as the admin set them.
        await t.gw.discover("police")
        again = await t.get(f"/api/v1/cameras/{ids['pol-a']}", t.gw.auth)
        assert again["maintenance"] == CONTACT and again["location"] == whole["location"]
        assert again["category"] == "public-security" and again["department"] == "Police"


# -- lifecycle, and pictures for one incident ----------------------------------------------------


async def test_lifecycle_and_an_incident_s_pictures(  # noqa: PLR0915
    aiohttp_client: Factory,
    settings: Settings,
    vault: CredentialVault,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with town(aiohttp_client, settings, vault, monkeypatch) as t:
        ids, admin = t.ids, t.gw.auth
        t.clock.at(2)
        await t.patch("gone", {"lifecycle": "under-repair"})
        t.clock.at(3)
        await t.patch("gone", {"lifecycle": "decommissioned"})
        viewer = await t.token("viewer", ["*"])
        listed = await t.get("/api/v1/cameras", viewer, network="governance")
        assert ids["gone"] not in {c["id"] for c in listed["items"]}
        asked = await t.get("/api/v1/cameras", viewer, lifecycle="decommissioned")
        assert [c["id"] for c in asked["items"]] == [ids["gone"]]

        # Discovery finds it still answering: it stays decommissioned, its history unchanged.
        t.clock.at(4)
        job = await t.gw.discover("governance")
        assert job["progress"]["enriched"] == len(GOV_ROLES)
        auditor = await t.token("auditor", ["*"], name="auditor-li")
        life = await t.get(f"/api/v1/cameras/{ids['gone']}/lifecycle", auditor)
        assert life["lifecycle"] == "decommissioned"
        assert [(c["previous"], c["state"], c["at"]) for c in life["changes"]] == [
            ("under-repair", "decommissioned", "2026-03-02T03:00:00Z"),
            ("in-service", "under-repair", "2026-03-02T02:00:00Z"),
            (None, "in-service", "2026-03-02T00:00:00Z"),  # discovered
        ]
        assert life["changes"][0]["actor"].startswith("e2e-admin#")
        assert await t.get(f"/api/v1/cameras/{ids['gone']}/lifecycle", admin) == life
        refused = await t.gw.client.get(f"/api/v1/cameras/{ids['gone']}/lifecycle", headers=viewer)
        assert refused.status == 403
        still = await t.get("/api/v1/cameras", viewer, lifecycle="decommissioned")
        assert [c["id"] for c in still["items"]] == [ids["gone"]]
        summary = await t.get("/api/v1/summary", viewer)
        sharp = {r["category"]: r for r in summary["inventory"]}["sharp-eyes"]
        assert sharp["by_lifecycle"] == {"in-service": 2, "decommissioned": 1}
        assert sharp["registered"] == 2

        # Pictures for one incident: each camera's picture or refusal, each audited under it.
        await t.sim.set_offline(t.devices["flap"].camera.id, True)
        op = await t.token("operator", ["governance", "police"], name="op-wang")
        t.minute.pin()
        named = ["steady", "coarse", "flap", "pol-a", "pol-b"]
        body = {"reason": REASON, "cameras": [ids[r] for r in named] + ["police.nope"]}
        resp = await t.gw.client.post("/api/v1/snapshots", json=body, headers=op)
        assert resp.status == 200, await resp.text()
        answer = await resp.json()
        status = {i["camera"]: i["status"] for i in answer["items"]}
        assert [i["camera"] for i in answer["items"]] == body["cameras"]  # in the order asked
        assert (status[ids["steady"]], status[ids["coarse"]]) == (200, 200)
        assert status[ids["flap"]] == 502  # down: its own item says so
        # One picture a minute from the police network: one of the two, not both.
        assert sorted((status[ids["pol-a"]], status[ids["pol-b"]])) == [200, 429]
        assert status["police.nope"] == 404
        assert (answer["taken"], answer["refused"]) == (3, 3)
        for item in answer["items"]:
            if item["status"] == 200:
                assert base64.b64decode(item["jpeg_base64"])[:2] == b"\xff\xd8"
                assert item["source"].startswith("camera-http")
            else:
                assert item["error"] and item["jpeg_base64"] is None
        gov_op = await t.token("operator", ["governance"], name="op-zhao")
        other = {"reason": "INC-13", "cameras": [ids["pol-a"], ids["steady"]]}
        resp = await t.gw.client.post("/api/v1/snapshots", json=other, headers=gov_op)
        got = {i["camera"]: i["status"] for i in (await resp.json())["items"]}
        assert got == {ids["pol-a"]: 404, ids["steady"]: 200}  # not granted: as if not there

        # The auditor lists everything taken under the reason, and nothing else.
        audit = await t.get("/api/v1/audit", auditor, reason=REASON)
        entries = audit["items"]
        assert sorted((e["target"], e["status"]) for e in entries) == sorted(status.items())
        assert {(e["action"], e["actor"].split("#")[0]) for e in entries} == {
            ("camera.snapshot", "op-wang")
        }
        other_audit = await t.get("/api/v1/audit", auditor, reason="INC-13")
        assert len(other_audit["items"]) == 2
