"""The registry on a Redis Cluster (docs/deployment.md, "District: Redis Cluster"), with real
processes on loopback: three redis-server masters (and, for the failover, two replicas each)
joined into one cluster by the test, each node on its own ports and directory, all stopped by
the test (or module) that started them.

A registry (one prefix) is one hash slot: its prefix is a hash tag, `{town-a}`, so that each
write and its audit entry stay one Lua script. A district runs one registry per town; the towns
here land on different masters. The gateway reaches the master of its slot with a plain client
(adapters/redis_link.py), so everything it does there (scripts with and without KEYS,
pipelines, MULTI, pub/sub, stream reads, SCAN, WAIT) is what it does on one server; these tests
check it through the API, as a user would see it.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from pydantic import ValidationError

from adapters.redis_link import (
    NoSlotOwner,
    OutsideSlot,
    RedisLink,
    RedisLinkError,
    SlotMoved,
    check,
    connect,
)
from gateway.acl import password_hash
from gateway.app import create_app
from gateway.cli import main
from gateway.keys import AUDIT, CATALOG, TOKENS
from gateway.models import Role
from gateway.redis_server import ClusterServer, RedisServer, ServerTLS
from gateway.settings import DEFAULT_CONFIG, Settings, load_settings
from gateway.vault import CredentialVault
from tests.pki import TestCA

Factory = Callable[..., Awaitable[TestClient]]  # type: ignore[type-arg]

# Two towns of a district. Their slots (8215 and 4212) are served by different masters of a
# cluster whose three masters share the slots in equal ranges (checked, not assumed).
TOWN_A, TOWN_B = "{town-a}", "{town-b}"
GOV = "governance."


# -- the processes ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterServer]:
    """Three masters, no replicas: shared by the tests that do not kill a node."""
    nodes = ClusterServer(tmp_path_factory.mktemp("cluster"), masters=3).start()
    yield nodes
    nodes.stop()


def town_settings(link: RedisLink, archive: Path) -> Settings:
    """The shipped config on `link`, through validation like a file's; no discovery or health
    rounds (nothing but Redis traffic)."""
    data = load_settings(DEFAULT_CONFIG, use_env=False).model_dump()
    data["redis"] = link.model_dump()
    data["audit"]["archive_dir"] = archive
    for net in data["networks"]:
        net["discovery"] |= {"wsdiscovery_targets": (), "health_interval_s": 0}
    return Settings.model_validate(data)


def cam(n: int, name: str = "Camera") -> dict[str, Any]:
    return {
        "id": f"{GOV}cl-{n:04d}",
        "network": "governance",
        "name": f"{name} {n}",
        "category": "smart-security",
        "address": f"127.1.{n // 200}.{n % 200 + 1}",
        "tags": ["cluster"],
    }


async def gateway(
    aiohttp_client: Factory, link: RedisLink, archive: Path
) -> tuple[TestClient, dict[str, str]]:  # type: ignore[type-arg]
    client = await aiohttp_client(
        create_app(town_settings(link, archive), CredentialVault(b"s" * 32))
    )
    secret, _ = await client.app[TOKENS].create("loader", Role.admin, ["*"], "tests")
    return client, {"Authorization": f"Bearer {secret}"}


async def listed(client: TestClient, headers: dict[str, str]) -> dict[str, str]:  # type: ignore[type-arg]
    resp = await client.get("/api/v1/cameras", headers=headers)
    assert resp.status == 200, await resp.text()
    return {c["id"]: c["name"] for c in (await resp.json())["items"]}


def keys_by_node(cluster: ClusterServer, prefix: str) -> dict[int, list[str]]:
    """The keys under `prefix` on each node that holds some, by the node's port."""
    found: dict[int, list[str]] = {}
    for node in cluster.nodes:
        if node.proc is None:
            continue
        with cluster.client(node) as client:
            if client.execute_command("ROLE")[0] != b"master":
                continue
            keys = [k.decode() for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            found[node.port] = keys
    return found


async def _eventually(check: Callable[[], Awaitable[bool]], what: str, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while not await check():
        assert time.monotonic() < deadline, f"{what}: not within {within_s} s"
        await asyncio.sleep(0.05)


# -- the link's settings ----------------------------------------------------------------------


def test_a_cluster_url_names_its_seed_nodes() -> None:
    link = RedisLink(url="redis+cluster://127.0.0.1:7000,localhost:7001,[::1]:7002", prefix=TOWN_A)
    assert link.cluster and not link.sentinel and not link.tls and link.loopback
    assert link.seeds == (("127.0.0.1", 7000), ("localhost", 7001), ("::1", 7002))
    assert link.db == 0 and link.slot == 8215  # CLUSTER KEYSLOT {town-a}
    assert link.shown == "redis+cluster://127.0.0.1:7000,localhost:7001,[::1]:7002/0"
    tls = RedisLink(url="rediss+cluster://n1.example.org:6379,n2.example.org:6379/0", prefix="{x}")
    assert tls.tls and tls.cluster and not tls.loopback
    plain = RedisLink(url="redis://127.0.0.1:6379/0", prefix=TOWN_A)  # a tag is fine anywhere
    assert not plain.cluster and plain.seeds == ()


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"url": "redis+cluster://127.0.0.1/0"}, "node '127.0.0.1' is not host:port"),
        ({"url": "redis+cluster://127.0.0.1:7000,,127.0.0.1:7001"}, "is not host:port"),
        ({"url": "redis+cluster://127.0.0.1:7000/1"}, "a Redis Cluster has only database 0"),
        ({"url": "redis+cluster://127.0.0.1:7000/camgw/0"}, "only database 0"),
        ({"url": "redis+cluster://127.0.0.1:1,127.0.0.1:1"}, "named twice"),
        ({"url": "redis+cluster://127.0.0.1:0"}, "port 0"),
        ({"url": "redis+cluster://127.0.0.1:7000?x=1"}, "must not carry options"),
        ({"url": "redis+cluster://:pw@127.0.0.1:7000"}, "must not carry a user or password"),
        ({"url": "redis+cluster://10.0.0.1:7000", "prefix": "{x}"}, "use rediss+cluster://"),
        ({"url": "cluster://127.0.0.1:7000"}, "redis+cluster://"),
        ({"url": "redis+cluster://127.0.0.1:7000", "sentinel_password_env": "X"}, "sentinel"),
        ({"prefix": "{camgw"}, "String should match pattern"),
        ({"prefix": "{}"}, "String should match pattern"),
        ({"prefix": "{a}{b}"}, "String should match pattern"),
    ],
)
def test_cluster_settings_that_make_no_sense_are_refused(
    settings: dict[str, Any], says: str
) -> None:
    with pytest.raises(ValidationError) as info:
        RedisLink.model_validate(settings)
    assert says in str(info.value)
    assert "pw" not in str(info.value)


def test_a_cluster_prefix_without_a_hash_tag_is_refused_at_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `camgw` prints, word for word, for the shipped config pointed at a cluster."""
    for name in ("REDIS_URL", "CAMGW_CONFIG", "CAMGW_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    path = cluster_config(tmp_path, "redis+cluster://127.0.0.1:7000,127.0.0.1:7001", "camgw")
    assert main(["--config", str(path), "token", "list"]) == 2
    assert capsys.readouterr().err == (
        "camgw: bad configuration:\n"
        f"  {path}: redis.prefix: 'camgw' is not a hash tag, and url is a Redis Cluster: each "
        "registry write and its audit entry are one script, so all the registry's keys must "
        'be in one slot; write prefix = "{camgw}" (a district: one prefix per town, e.g. '
        '"{camgw-north}", spreads the towns over the masters)\n'
    )
    # The same URL given by REDIS_URL: the same refusal (the prefix is what to change).
    monkeypatch.setenv("REDIS_URL", "redis+cluster://127.0.0.1:7000")
    with pytest.raises(ValueError, match=r"redis\.prefix: 'camgw' is not a hash tag"):
        load_settings(DEFAULT_CONFIG)


def cluster_config(tmp_path: Path, url: str, prefix: str) -> Path:
    """The shipped config file with another [redis] url and prefix."""
    text = DEFAULT_CONFIG.read_text(encoding="utf-8")
    shipped = ('url = "redis://127.0.0.1:6379/0"', 'prefix = "camgw"')
    assert all(text.count(line) == 1 for line in shipped)
    text = text.replace(shipped[0], f'url = "{url}"').replace(shipped[1], f'prefix = "{prefix}"')
    path = tmp_path / "camgw.toml"
    path.write_text(text, encoding="utf-8")
    return path


async def test_a_single_server_is_not_a_cluster(tmp_path: Path) -> None:
    plain = RedisServer(tmp_path / "plain", appendonly=False).start()
    try:
        link = RedisLink(url=f"redis+cluster://127.0.0.1:{plain.port}", prefix=TOWN_A)
        client = connect(link)
        try:
            with pytest.raises(NoSlotOwner) as info:
                await check(client, link)
        finally:
            await client.aclose()
    finally:
        plain.stop()
    assert isinstance(info.value, RedisLinkError)
    assert str(info.value) == (
        f"redis+cluster://127.0.0.1:{plain.port}/0: no seed node names a master for slot 8215 "
        f"of prefix {{town-a}} (cluster node 127.0.0.1:{plain.port} is not a cluster node "
        "(cluster-enabled no): for a single server the url is redis:// (or rediss://))"
    )


# -- one town: the gateway on the cluster ------------------------------------------------------


async def test_a_town_registry_works_on_the_cluster(
    cluster: ClusterServer, aiohttp_client: Factory, tmp_path: Path
) -> None:
    """Register (script), import (pipelines, a script without KEYS), list, delete, read the
    audit trail and verify its chain (stream reads), and a token revoked through one gateway is
    refused at once by another (pub/sub): all on the master of the town's slot."""
    link = RedisLink(url=cluster.url(), prefix=TOWN_A)
    client, admin = await gateway(aiohttp_client, link, tmp_path / "audit")
    for n in range(3):
        resp = await client.post("/api/v1/cameras", json=cam(n), headers=admin)
        assert resp.status == 201, await resp.text()
    csv_text = "id,name,network,category,address\r\n" + "".join(
        f"{GOV}cl-{n:04d},Imported {n},governance,sharp-eyes,127.1.0.{n + 1}\r\n"
        for n in range(3, 5)
    )
    resp = await client.post(
        "/api/v1/cameras/import",
        data=csv_text.encode(),
        headers=admin | {"Content-Type": "text/csv; charset=utf-8"},
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["created"] == 2
    resp = await client.delete(f"/api/v1/cameras/{GOV}cl-0001", headers=admin)
    assert resp.status == 204, await resp.text()
    assert await listed(client, admin) == {
        f"{GOV}cl-0000": "Camera 0",
        f"{GOV}cl-0002": "Camera 2",
        f"{GOV}cl-0003": "Imported 3",
        f"{GOV}cl-0004": "Imported 4",
    }

    secret, _ = await client.app[TOKENS].create("auditor", Role.auditor, ["*"], "tests")
    auditor = {"Authorization": f"Bearer {secret}"}
    resp = await client.get("/api/v1/audit", headers=auditor, params={"limit": "100"})
    assert resp.status == 200, await resp.text()
    entries = (await resp.json())["items"][::-1]  # oldest first
    assert [(e["seq"], e["action"], e["target"]) for e in entries] == [
        (1, "camera.create", f"{GOV}cl-0000"),
        (2, "camera.create", f"{GOV}cl-0001"),
        (3, "camera.create", f"{GOV}cl-0002"),
        (4, "camera.create", f"{GOV}cl-0003"),  # the import's rows, one entry each
        (5, "camera.create", f"{GOV}cl-0004"),
        (6, "camera.import", "2 rows"),
        (7, "camera.delete", f"{GOV}cl-0001"),
    ]
    intact = await client.app[AUDIT].verify(tmp_path / "audit")
    assert isinstance(intact, str), intact  # a Break otherwise

    # A second gateway of the same town (a replica) has a viewer's token cached (30 s); the
    # revocation is published on the town's events channel, and it refuses the token at once.
    other, _ = await gateway(aiohttp_client, link, tmp_path / "audit")
    await _eventually(
        lambda: _true(other.app[CATALOG].live_version is not None), "the events channel", 5
    )
    secret, info = await client.app[TOKENS].create("viewer", Role.viewer, ["*"], "tests")
    viewer = {"Authorization": f"Bearer {secret}"}
    assert (await other.get("/api/v1/cameras", headers=viewer)).status == 200
    revoked_at = time.monotonic()
    assert await client.app[TOKENS].revoke(info.id)

    async def refused() -> bool:
        return (await other.get("/api/v1/cameras", headers=viewer)).status == 401

    await _eventually(refused, "the revoked token refused by the other gateway", 5)
    assert time.monotonic() - revoked_at < 5  # well inside the 30 s its cache would keep it

    # Every key of the town is in the town's slot, so on one master.
    on_nodes = keys_by_node(cluster, TOWN_A)
    assert list(on_nodes) == [cluster.master_of(TOWN_A).port], on_nodes
    keys = on_nodes[cluster.master_of(TOWN_A).port]
    assert {f"{TOWN_A}:audit", f"{TOWN_A}:tokens", f"{TOWN_A}:idx:all"} <= set(keys)
    assert {cluster.slot(k) for k in keys} == {link.slot}


async def test_the_gateways_acl_user_suffices_on_the_cluster(
    cluster: ClusterServer,
    aiohttp_client: Factory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`camgw acl` on a cluster config: the gateway's user may also ask which master serves its
    slot (CLUSTER SLOTS); loaded into every node (a cluster's ACL users are each node's own),
    it is all the gateway needs. `--apply`, which would reach one node, is refused."""
    for name in ("REDIS_URL", "CAMGW_CONFIG", "CAMGW_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    prefix, password = "{town-c}", "gw-" + "7" * 30
    (tmp_path / "gw.pw").write_text(password + "\n")
    path = cluster_config(tmp_path, cluster.url(), prefix)
    given = ["--password-file", f"camgw-gateway={tmp_path / 'gw.pw'}"]
    assert main(["--config", str(path), "acl", *given]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith(f"user camgw-gateway on #{password_hash(password)} resetkeys ")
    assert f"~{prefix}:* " in line and " +cluster|slots " in line
    assert main(["--config", str(path), "acl", *given, "--apply"]) == 2
    assert "add the lines above to the ACL file of every node" in capsys.readouterr().err
    for node in cluster.nodes:
        with cluster.client(node) as direct:
            direct.execute_command("ACL SETUSER", "camgw-gateway", *line.split()[2:])

    link = RedisLink(
        url=cluster.url(),
        prefix=prefix,
        username="camgw-gateway",
        password_file=tmp_path / "gw.pw",
    )
    client, admin = await gateway(aiohttp_client, link, tmp_path / "audit")
    resp = await client.post("/api/v1/cameras", json=cam(20), headers=admin)
    assert resp.status == 201, await resp.text()
    assert await listed(client, admin) == {f"{GOV}cl-0020": "Camera 20"}
    assert isinstance(await client.app[AUDIT].verify(tmp_path / "audit"), str)


async def test_two_towns_spread_over_the_masters(
    cluster: ClusterServer, aiohttp_client: Factory, tmp_path: Path
) -> None:
    """One registry per town, one prefix each: their keys are on different masters, and each
    town sees only its own cameras and tokens."""
    master_a, master_b = cluster.master_of(TOWN_A), cluster.master_of(TOWN_B)
    assert master_a.port != master_b.port
    town_a, admin_a = await gateway(
        aiohttp_client, RedisLink(url=cluster.url(), prefix=TOWN_A), tmp_path / "a"
    )
    town_b, admin_b = await gateway(
        aiohttp_client, RedisLink(url=cluster.url(), prefix=TOWN_B), tmp_path / "b"
    )
    for n in range(10, 13):  # the same ids in both towns: two registries
        for client, admin, name in ((town_a, admin_a, "A"), (town_b, admin_b, "B")):
            resp = await client.post("/api/v1/cameras", json=cam(n, f"Town {name}"), headers=admin)
            assert resp.status == 201, await resp.text()
    in_a, in_b = await listed(town_a, admin_a), await listed(town_b, admin_b)
    assert {n for i, n in in_b.items() if i.endswith(("0010", "0011", "0012"))} == {
        "Town B 10",
        "Town B 11",
        "Town B 12",
    }
    assert all(not name.startswith("Town B") for name in in_a.values())
    assert (await town_b.get("/api/v1/cameras", headers=admin_a)).status == 401

    assert list(keys_by_node(cluster, TOWN_A)) == [master_a.port]
    assert list(keys_by_node(cluster, TOWN_B)) == [master_b.port]

    # A key outside the prefix is a bug, said as such (not a 503 that retries forever).
    probe = connect(RedisLink(url=cluster.url(), prefix=TOWN_A))
    try:
        with pytest.raises(OutsideSlot, match="slot 4212, not slot 8215"):
            await probe.get(f"{TOWN_B}:version")
    finally:
        await probe.aclose()


async def _true(value: bool) -> bool:
    return value


# -- TLS ----------------------------------------------------------------------------------------


async def test_rediss_cluster_verifies_the_nodes(tmp_path: Path) -> None:
    ca, other = TestCA(tmp_path / "ca", "camgw test CA"), TestCA(tmp_path / "other", "other CA")
    cert, node = ca.issue("server", server=True), ca.issue("node", server=False)
    # Clients need no certificate; the nodes present `node` to each other on the cluster bus.
    tls = ServerTLS(cert.cert, cert.key, ca.file, "no", node.cert, node.key)
    nodes = ClusterServer(tmp_path / "cluster", masters=3, tls=tls).start()
    try:
        link = RedisLink(url=nodes.url("rediss+cluster"), ca_file=ca.file, prefix=TOWN_A)
        client = connect(link)
        try:
            await check(client, link)
            await client.set(f"{TOWN_A}:tls", "yes")
            assert await client.get(f"{TOWN_A}:tls") == b"yes"
        finally:
            await client.aclose()
        with nodes.client(nodes.master_of(TOWN_A)) as direct:
            assert direct.get(f"{TOWN_A}:tls") == b"yes"
        wrong = RedisLink(url=nodes.url("rediss+cluster"), ca_file=other.file, prefix=TOWN_A)
        client = connect(wrong)
        try:
            with pytest.raises(NoSlotOwner) as info:
                await check(client, wrong)
        finally:
            await client.aclose()
    finally:
        nodes.stop()
    seed = nodes.primaries[0]
    assert f"cluster node 127.0.0.1:{seed.port}: TLS refused" in str(info.value)
    assert f"not signed by the CA in ca_file {other.file}" in str(info.value)


# -- a master's loss --------------------------------------------------------------------------

TOTAL = 240
IN_FLIGHT = 6
KILL_AFTER = 80


@pytest.fixture
def replicated_cluster(tmp_path: Path) -> Iterator[ClusterServer]:
    """Three masters with two replicas each: after a master's loss its slots have a new master
    and that one still a replica, so WAIT for one replica can still be met."""
    nodes = ClusterServer(tmp_path / "cluster", masters=3, replicas=2, node_timeout_ms=1000)
    yield nodes.start(timeout=30)
    nodes.stop()


async def test_a_switch_over_is_followed_after_one_refusal(
    replicated_cluster: ClusterServer,
) -> None:
    """A planned switch-over (CLUSTER FAILOVER on a replica): the former master, alive, answers
    MOVED to a connection still open to it; that command fails with SlotMoved (a connection
    error: the gateway's 503; it did not run), and the next one goes to the new master."""
    cluster = replicated_cluster
    link = RedisLink(url=cluster.url(), prefix=TOWN_A)
    client = connect(link)
    try:
        await client.set(f"{TOWN_A}:k", "before")  # one connection, idle in the pool
        old = cluster.master_of(TOWN_A)
        replica = cluster.replicas_of(old)[0]
        with cluster.client(replica) as direct:
            assert direct.execute_command("CLUSTER FAILOVER")

        async def switched() -> bool:
            return (await asyncio.to_thread(cluster.master_of, TOWN_A)).port == replica.port

        await _eventually(switched, "the replica promoted", 10)
        with pytest.raises(SlotMoved) as info:
            await client.set(f"{TOWN_A}:k", "lost?")
        assert str(info.value) == (
            f"127.0.0.1:{old.port} does not serve slot 8215 (prefix {TOWN_A}) now: "
            f"MOVED 8215 127.0.0.1:{replica.port}; the next connection goes to the master the "
            "cluster names"
        )
        assert await client.get(f"{TOWN_A}:k") == b"before"  # the refused SET did not run
        await client.set(f"{TOWN_A}:k", "after")
        with cluster.client(replica) as direct:
            assert direct.get(f"{TOWN_A}:k") == b"after"
    finally:
        await client.aclose()


@dataclass
class Run:
    acked: set[str] = field(default_factory=set)  # 201
    again: set[str] = field(default_factory=set)  # 409 on a retry: the first try went in
    statuses: Counter[int | str] = field(default_factory=Counter)
    enough: asyncio.Event = field(default_factory=asyncio.Event)
    killed_at: float | None = None
    served_again_at: float | None = None  # the first 201 of a request sent after the kill


async def register(
    client: TestClient,  # type: ignore[type-arg]
    admin: dict[str, str],
    n: int,
    run: Run,
) -> None:
    """One registration, retried on 503 as a client would."""
    retried = False
    while True:  # bounded by the test's timeout
        sent = time.monotonic()
        status: int | str
        try:
            resp = await client.post("/api/v1/cameras", json=cam(n), headers=admin)
            status, text = resp.status, await resp.text()
        except aiohttp.ClientError as exc:
            status, text = type(exc).__name__, ""
        run.statuses[status] += 1
        if status == 201:
            run.acked.add(cam(n)["id"])
            if run.killed_at is not None and sent > run.killed_at:
                run.served_again_at = run.served_again_at or time.monotonic()
            if len(run.acked) >= KILL_AFTER:
                run.enough.set()
            return
        if status == 409 and retried and '"field":"id"' in text:
            run.again.add(cam(n)["id"])
            return
        assert status == 503, (n, status, text)
        assert "redis" not in text.lower()
        retried = True
        await asyncio.sleep(0.05)


async def stream_through_a_kill(
    client: TestClient,  # type: ignore[type-arg]
    admin: dict[str, str],
    kill: Callable[[], None],
) -> Run:
    """TOTAL registrations, IN_FLIGHT at a time; `kill` once KILL_AFTER are acknowledged."""
    run, queue = Run(), asyncio.Queue[int]()
    for n in range(TOTAL):
        queue.put_nowait(n)

    async def worker() -> None:
        while not queue.empty():
            await register(client, admin, queue.get_nowait(), run)

    async def killer() -> None:
        await run.enough.wait()
        kill()
        run.killed_at = time.monotonic()

    killing = asyncio.create_task(killer())
    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    await killing
    return run


@pytest.mark.slow
async def test_the_gateway_follows_a_master_failover_without_a_restart(
    replicated_cluster: ClusterServer,
    aiohttp_client: Factory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Registrations stream in while the master of the town's slot is SIGKILLed: requests in
    flight fail (503, retried by the client), the cluster promotes a replica, and the gateway
    writes to it without a restart; with replicas_to_ack = 1 no acknowledged registration is
    lost, the audit chain is intact, and the events subscription is back on the new master."""
    cluster, began = replicated_cluster, time.monotonic()
    link = RedisLink(url=cluster.url(), prefix=TOWN_A, replicas_to_ack=1)
    client, admin = await gateway(aiohttp_client, link, tmp_path / "audit")
    await _eventually(
        lambda: _true(client.app[CATALOG].live_version is not None), "the events channel", 5
    )
    old = cluster.master_of(TOWN_A)

    async def subscribed_on(node: RedisServer) -> bool:
        with cluster.client(node) as direct:
            numsub = direct.pubsub_numsub(f"{TOWN_A}:events")
        return bool(numsub and numsub[0][1] >= 1)

    async with asyncio.timeout(60):
        run = await stream_through_a_kill(client, admin, lambda: cluster.kill(old))
        new = await asyncio.to_thread(cluster.master_of, TOWN_A)
        assert new.port != old.port  # a replica took over
        in_registry = await listed(client, admin)
        await _eventually(
            lambda: subscribed_on(new), "the events subscription on the new master", 10
        )
        intact = await client.app[AUDIT].verify(tmp_path / "audit")

    refused = sum(k for s, k in run.statuses.items() if s not in {201, 409})
    assert refused > 0, f"the failover was never seen: {run.statuses}"
    assert set(run.statuses) <= {201, 409, 503}, run.statuses  # never a 500
    assert run.killed_at is not None and run.served_again_at is not None
    assert len(run.acked | run.again) == TOTAL
    lost = sorted(run.acked - set(in_registry))
    assert lost == [], f"acknowledged by a replica, yet lost: {lost}"
    assert isinstance(intact, str), intact
    with capsys.disabled():
        print(
            f"\n[cluster failover, replicas_to_ack=1] {len(run.acked)} registrations "
            f"acknowledged (201), 0 lost; writes refused for "
            f"{run.served_again_at - run.killed_at:.1f} s after the kill; statuses "
            f"{dict(run.statuses)}; test {time.monotonic() - began:.1f} s"
        )
