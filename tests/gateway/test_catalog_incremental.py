"""The catalog's rebuild after a change reads only the records changed since its snapshot (the
registry's change log, `<prefix>:changes`), and loads everything when the log cannot tell: what
it serves always equals a full load. Against the suite's redis-server."""

from __future__ import annotations

import re

import orjson

from gateway import registry as registry_module
from gateway.catalog import Catalog
from gateway.keys import CATALOG, REGISTRY
from gateway.lua import source
from gateway.registry import CHANGES_KEPT
from tests.gateway.test_cameras_api import cam, create


async def _snapshot_matches_a_full_load(cat: Catalog) -> None:
    """What the catalog serves equals what loading every record builds."""
    snap = await cat.current()
    fresh = Catalog(cat.registry, cat.settings)
    full = await fresh.current()
    assert full.version == snap.version
    assert [e.id for e in snap.entries] == [e.id for e in full.entries]
    assert [e.full for e in snap.entries] == [e.full for e in full.entries]
    assert snap.network_versions == full.network_versions


async def test_a_rebuild_reads_only_the_records_changed_since_the_snapshot(client, token) -> None:
    admin = await token("admin")
    cat, registry = client.app[CATALOG], client.app[REGISTRY]
    for n in (5, 1, 9):
        await create(client, admin, cam(n))
    await cat.current()
    loads = cat.full_loads
    # A rename, a camera added between two others, one deleted, one in another network.
    resp = await client.patch("/api/v1/cameras/governance.cam-005", json={"name": "Gate"},
                              headers=admin)  # fmt: skip
    assert resp.status == 200, await resp.text()
    await create(client, admin, cam(3))
    await create(client, admin, cam(7, "public-security"))
    assert (await client.delete("/api/v1/cameras/governance.cam-009", headers=admin)).status == 204
    cat.note_version(await registry.version())
    snap = await cat.current()
    assert [e.id for e in snap.entries] == [
        "governance.cam-001", "governance.cam-003", "governance.cam-005", "police.cam-007",
    ]  # fmt: skip
    assert orjson.loads(snap.by_id["governance.cam-005"].full)["name"] == "Gate"
    assert cat.full_loads == loads  # every rebuild since the first read only the changes
    await _snapshot_matches_a_full_load(cat)


async def test_changes_the_log_no_longer_holds_make_the_catalog_load_everything(
    client, token
) -> None:
    admin = await token("admin")
    registry = client.app[REGISTRY]
    await create(client, admin, cam(1))
    cat = Catalog(registry, client.app[CATALOG].settings)  # (not told of changes: it asks)
    await cat.current()
    loads = cat.full_loads
    await create(client, admin, cam(2))
    await create(client, admin, cam(4))
    # The change to cam-002 is no longer in the log.
    await registry.redis.xtrim(registry.keys.changes, maxlen=1, approximate=False)
    snap = await cat.current()
    assert [e.id for e in snap.entries][-2:] == ["governance.cam-002", "governance.cam-004"]
    assert cat.full_loads == loads + 1
    await _snapshot_matches_a_full_load(cat)


def test_every_script_keeps_the_change_log_the_catalog_counts_on() -> None:
    """The catalog applies up to 90% of CHANGES_KEPT changes, trusting the log to hold them: a
    script that trims it shorter would make a rebuild miss changes it believes it has."""
    for name in ("upsert.lua", "delete.lua", "health.lua"):
        trims = re.findall(r"':changes', 'MAXLEN', '~', (\d+)", source(name))
        assert trims == [str(CHANGES_KEPT)], name


async def test_a_long_change_log_is_read_page_by_page(client, token, monkeypatch) -> None:
    """A district's first health round leaves tens of thousands of changes to read: they come
    in pages (here of 3, after a first read of 2), and every record changed is found once."""
    monkeypatch.setattr(registry_module, "_CHANGES_READ", 2)
    monkeypatch.setattr(registry_module, "_CHANGES_PAGE", 3)
    admin = await token("admin")
    registry = client.app[REGISTRY]
    await create(client, admin, cam(1))
    start = await registry.version()
    for n in range(2, 12):
        await create(client, admin, cam(n))
    resp = await client.patch("/api/v1/cameras/governance.cam-003", json={"name": "Gate"},
                              headers=admin)  # fmt: skip
    assert resp.status == 200
    changed = await registry.changes_since(start, most=1000)
    assert changed is not None and changed.version == start + 11
    assert sorted(changed.records) == sorted(f"governance.cam-{n:03d}" for n in range(2, 12))
    earlier = await registry.changes_since(start - 1, most=1000)
    assert earlier is not None and "governance.cam-001" in earlier.records
    # the log trimmed past `start`: it cannot tell every change, and says so
    await registry.redis.xtrim(registry.keys.changes, maxlen=5, approximate=False)
    assert await registry.changes_since(start, most=1000) is None
