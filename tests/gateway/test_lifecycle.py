"""Each camera's lifecycle (planned, under construction, in service, under repair,
decommissioned) and its maintenance contact: admin-owned, kept with who changed them and when,
never moved by discovery; decommissioned cameras are kept and listed only when asked for."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pydantic import ValidationError

from gateway.keys import DISCOVERY, REGISTRY, TOKENS
from gateway.models import Camera, Maintenance, Role
from gateway.settings import Settings
from gateway.vault import CredentialVault
from tests.conftest import TokenFactory
from tests.doubles import DoubleAdapter
from tests.gateway.test_discovery_merge import CAM, Factory, _app, _discover
from tests.gateway.test_import import errors_by_row, post_csv

Client = TestClient  # type: ignore[type-arg]
PLANNED = {
    "network": "governance",
    "name": "South bridge blind spot",
    "category": "road-blindspot",
    "lifecycle": "planned",
}
CONTACT = {
    "organisation": "China Unicom Songjiang",
    "contact": "duty desk",
    "phone": "+86 21 5764 0000",
    "confirmed_on": "2026-11-02",
}


async def _create(client: Client, admin: dict[str, str], body: dict[str, Any]) -> Any:
    resp = await client.post("/api/v1/cameras", json=body, headers=admin)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def _patch(client: Client, admin: dict[str, str], cam_id: str, body: Any) -> Any:
    resp = await client.patch(f"/api/v1/cameras/{cam_id}", json=body, headers=admin)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_a_planned_camera_needs_no_address_until_it_is_built(
    client: Client, token: TokenFactory
) -> None:
    admin = await token("admin")
    cam = await _create(client, admin, PLANNED)
    assert (cam["lifecycle"], cam["address"]) == ("planned", None)
    assert cam["lifecycle_since"] == cam["created_at"]

    resp = await client.post(
        "/api/v1/cameras", json=PLANNED | {"lifecycle": "in-service"}, headers=admin
    )
    assert resp.status == 422
    [error] = (await resp.json())["errors"]
    assert error["field"] == "address"
    assert error["message"] == (
        "required for a camera that is built (lifecycle in-service); only "
        "planned and under-construction cameras may have none yet"
    )

    url = f"/api/v1/cameras/{cam['id']}"
    built = await client.patch(url, json={"lifecycle": "in-service"}, headers=admin)
    assert built.status == 422
    [error] = (await built.json())["errors"]
    assert (error["field"], error["message"]) == (
        "address",
        "is required on network 'governance' once a camera is built (lifecycle in-service)",
    )
    done = await _patch(
        client, admin, cam["id"], {"lifecycle": "in-service", "address": "127.1.0.77"}
    )
    assert done["lifecycle"] == "in-service" and done["lifecycle_since"] != cam["lifecycle_since"]


async def test_history_names_each_change_and_who_made_it(
    client: Client, token: TokenFactory
) -> None:
    admin = await token("admin", name="admin-zhang")
    cam = await _create(client, admin, PLANNED | {"address": "127.1.0.78"})
    for state in ("under-construction", "in-service", "under-repair"):
        await _patch(client, admin, cam["id"], {"lifecycle": state})
    await _patch(client, admin, cam["id"], {"name": "renamed"})  # not a lifecycle change

    url = f"/api/v1/cameras/{cam['id']}/lifecycle"
    for reader in (admin, await token("auditor", name="auditor-li")):
        resp = await client.get(url, headers=reader)
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        assert body["lifecycle"] == "under-repair"
        changes = body["changes"]
        assert [(c["previous"], c["state"]) for c in changes] == [
            ("in-service", "under-repair"),
            ("under-construction", "in-service"),
            ("planned", "under-construction"),
            (None, "planned"),
        ]
        assert all(c["actor"].startswith("admin-zhang#") for c in changes)  # name#token id
        assert [c["at"] for c in changes] == sorted((c["at"] for c in changes), reverse=True)
    assert (await client.get(url, headers=await token("viewer"))).status == 403
    hidden = await token("auditor", ["police"])  # not granted governance: as if it did not exist
    assert (await client.get(url, headers=hidden)).status == 404


async def test_decommissioned_cameras_are_kept_and_listed_only_when_asked_for(
    client: Client, token: TokenFactory
) -> None:
    admin = await token("admin")
    kept = await _create(
        client, admin, PLANNED | {"address": "127.1.0.79", "lifecycle": "in-service"}
    )
    gone = await _create(
        client, admin, PLANNED | {"address": "127.1.0.80", "lifecycle": "in-service"}
    )
    await _patch(client, admin, gone["id"], {"lifecycle": "decommissioned"})

    async def ids(query: str = "") -> set[str]:
        resp = await client.get(f"/api/v1/cameras{query}", headers=admin)
        return {c["id"] for c in (await resp.json())["items"]}

    assert await ids() == {kept["id"]}
    assert await ids("?lifecycle=decommissioned") == {gone["id"]}
    assert await ids("?lifecycle=in-service") == {kept["id"]}
    assert (await client.get(f"/api/v1/cameras/{gone['id']}", headers=admin)).status == 200
    bad = await client.get("/api/v1/cameras?lifecycle=retired", headers=admin)
    assert bad.status == 422 and (await bad.json())["errors"][0]["field"] == "lifecycle"


async def test_discovery_and_health_leave_lifecycle_and_contact_alone(
    aiohttp_client: Factory, settings: Settings, vault: CredentialVault
) -> None:
    adapter = DoubleAdapter("governance", [CAM])
    client, auth = await _app(aiohttp_client, settings, vault, {"governance": adapter})
    await _discover(client, auth, "governance")
    [cam_id] = [
        c["id"] for c in (await (await client.get("/api/v1/cameras", headers=auth)).json())["items"]
    ]
    await _patch(client, auth, cam_id, {"lifecycle": "decommissioned", "maintenance": CONTACT})

    job = await _discover(client, auth, "governance")  # it still answers
    assert job["state"] == "done" and job["progress"]["enriched"] == 1
    cam = await client.app[REGISTRY].get(cam_id)
    assert cam is not None and cam.lifecycle.value == "decommissioned"
    assert cam.maintenance is not None and cam.maintenance.model_dump(mode="json") == CONTACT

    adapter.reachable[str(CAM.address)] = False
    for _ in range(3):  # not probed: a decommissioned camera is not an outage
        await client.app[DISCOVERY].health_round("governance")
    after = await client.app[REGISTRY].get(cam_id)
    assert after is not None and after.status == cam.status and after.rev == cam.rev


async def test_a_contact_is_shared_only_where_the_network_shares_it(
    aiohttp_client: Factory, settings: Settings, vault: CredentialVault
) -> None:
    nets = [
        n.model_copy(
            update={
                "sharing": n.sharing.model_copy(
                    update={"share": ("id", "network", "name", "lifecycle")}
                )
            }
        )
        for n in settings.networks
    ]
    narrow = settings.model_copy(update={"networks": nets})
    client, admin = await _app(aiohttp_client, narrow, vault, {})
    cam = await _create(client, admin, PLANNED | {"maintenance": CONTACT})
    assert cam["maintenance"] == CONTACT  # admins see every field
    secret, _ = await client.app[TOKENS].create("viewer", Role.viewer, ["*"], "tests")
    viewer = {"Authorization": f"Bearer {secret}"}
    shared = await (await client.get(f"/api/v1/cameras/{cam['id']}", headers=viewer)).json()
    assert shared == {
        "id": cam["id"],
        "network": "governance",
        "name": PLANNED["name"],
        "lifecycle": "planned",
    }


async def test_the_town_table_imports_its_to_be_built_group_as_planned_without_addresses(
    client: Client, token: TokenFactory
) -> None:
    admin = await token("admin")
    table = (
        "名称,类型,归口部门,备注,运营商,地址,建设状态,维护单位,维护电话\n"
        "南桥补盲-1,道路监控补盲,镇平安办,综治网（待建设）,联通,,,联通松江,021-5764-0000\n"
        "南桥补盲-2,道路监控补盲,镇平安办,综治网,联通,,在建,,\n"
        "东门雪亮-1,雪亮工程,政法委,综治网,电信,,在用,,\n"
        "东门雪亮-2,雪亮工程,政法委,综治网,电信,127.1.0.81,停用了,,\n"
    )
    result = await post_csv(client, admin, table)
    assert result["created"] == 2, result
    assert errors_by_row(result) == {3: (4, "address"), 4: (5, "lifecycle")}
    messages = {e["row"]: e["reason"] for e in result["errors"]}
    assert messages[4] == "建设状态: 未知的值“停用了”；可选：规划、在建、在用、维修、停用"
    listed = await (await client.get("/api/v1/cameras?q=南桥", headers=admin)).json()
    by_name = {c["name"]: c for c in listed["items"]}
    assert by_name["南桥补盲-1"]["lifecycle"] == "planned"
    assert by_name["南桥补盲-1"]["maintenance"] == {
        "organisation": "联通松江",
        "contact": "",
        "phone": "021-5764-0000",
        "confirmed_on": None,
    }
    assert by_name["南桥补盲-2"]["lifecycle"] == "under-construction"


def test_a_camera_without_a_contact_gets_its_categorys_for_its_carrier(settings: Settings) -> None:
    defaults = [
        {"category": "road-blindspot", "organisation": "Any carrier's desk"},
        {"category": "road-blindspot", "carrier": "China Unicom", "organisation": "Unicom NOC"},
    ]
    s = Settings.model_validate(settings.model_dump() | {"maintenance": defaults})
    cam = Camera.model_validate(
        {
            "id": "governance.x",
            "network": "governance",
            "name": "x",
            "category": "road-blindspot",
            "carrier": "China Unicom",
            "address": None,
            "lifecycle": "planned",
            "source": "registered",
            "created_at": "2026-11-30T00:00:00Z",
            "updated_at": "2026-11-30T00:00:00Z",
        }
    )
    unicom = s.maintenance_for(cam)
    assert unicom is not None and unicom.organisation == "Unicom NOC"
    other = s.maintenance_for(cam.model_copy(update={"carrier": "China Mobile"}))
    assert other is not None and other.organisation == "Any carrier's desk"
    own = Maintenance(organisation="The installer", phone="021-5764-0001")
    assert s.maintenance_for(cam.model_copy(update={"maintenance": own})) == own
    with pytest.raises(ValidationError, match=r"maintenance\[0\]: category 'roads' is not a"):
        Settings.model_validate(settings.model_dump() | {"maintenance": [{"category": "roads"}]})


async def test_the_inventory_table_counts_each_category_by_lifecycle(
    client: Client, token: TokenFactory
) -> None:
    admin = await token("admin")
    for i, state in enumerate(["planned", "planned", "in-service", "decommissioned"]):
        body = PLANNED | {"lifecycle": state, "name": f"blind spot {i}"}
        if state != "planned":
            body["address"] = f"127.1.0.{90 + i}"
        await _create(client, admin, body)
    summary = await (await client.get("/api/v1/summary", headers=admin)).json()
    [row] = [r for r in summary["inventory"] if r["category"] == "road-blindspot"]
    assert (row["planned"], row["funding_10k_cny"]) == (460, 990)  # the town's table
    assert row["registered"] == 3  # the decommissioned one is kept, not counted
    assert row["by_lifecycle"] == {"decommissioned": 1, "in-service": 1, "planned": 2}
    assert summary["total"] == 3
