"""Redis ACLs (`gateway/acl.py`, `camgw acl`), against real redis-server processes whose default
user is off: an edge adapter's user reaches its own inbox and outbox and nothing else (not the
police's keys, not the registry, no SCAN, scripts, channels or CONFIG), the gateway runs a
representative flow under its own user without one refused command, and the rules `camgw acl`
prints are accepted by redis-server, from an ACL file and through ACL SETUSER."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis
from redis.exceptions import NoPermissionError

from adapters import wire
from adapters.config_errors import ConfigError
from adapters.redis_link import RedisLink, connect
from gateway import acl
from gateway.app import create_app
from gateway.audit import AuditEvent
from gateway.keys import AUDIT, EDGE, REGISTRY, TOKENS
from gateway.models import Role
from gateway.redis_server import RedisServer
from gateway.settings import (
    DEFAULT_CONFIG,
    AuditConfig,
    RedisConfig,
    Settings,
    load_settings,
)
from gateway.vault import CredentialVault

ADMIN_PASSWORD = "admin-" + "5" * 32


@dataclass
class AclRedis:
    """A redis-server with `default` off, an `admin`, and the users of `camgw acl`."""

    server: RedisServer
    settings: Settings
    passwords: dict[str, Path]  # user -> password file
    directory: Path

    def link(self, user: str, **more: Any) -> RedisLink:
        return RedisLink(
            url=self.server.url,
            prefix=self.settings.redis.prefix,
            username=user,
            password_file=self.passwords[user],
            **more,
        )

    def client(self, user: str) -> Redis:
        return connect(self.link(user))


def edge_settings(
    prefix: str = "camgw", edge: tuple[str, ...] = ("governance", "police")
) -> Settings:
    base = load_settings(DEFAULT_CONFIG, use_env=False)
    networks = tuple(
        n.model_copy(update={"mode": "edge"}) if n.id in edge else n for n in base.networks
    )
    return base.model_copy(
        update={"networks": networks, "redis": base.redis.model_copy(update={"prefix": prefix})}
    )


def write_password(directory: Path, user: str, password: str) -> Path:
    path = directory / f"{user}.password"
    acl.write_password(path, password)
    return path


@pytest.fixture
def acl_redis_factory(tmp_path: Path) -> Iterator[Callable[[Settings], AclRedis]]:
    started: list[RedisServer] = []

    def make(settings: Settings) -> AclRedis:
        directory = tmp_path / f"acl{len(started)}"
        secrets_dir = directory / "secrets"
        secrets_dir.mkdir(parents=True)
        users = acl.users_for(settings, all_networks=True)
        passwords = {"admin": write_password(secrets_dir, "admin", ADMIN_PASSWORD)}
        lines = [
            "user default off",
            f"user admin on #{acl.password_hash(ADMIN_PASSWORD)} ~* &* +@all",
        ]
        for user in users:
            password = acl.new_password()
            passwords[user.name] = write_password(secrets_dir, user.name, password)
            lines.append(user.line(acl.password_hash(password)))
        server = RedisServer(
            directory / "redis", appendonly=False, acl=tuple(lines), auth=("admin", ADMIN_PASSWORD)
        ).start()
        started.append(server)
        return AclRedis(server, settings, passwords, directory)

    yield make
    for server in started:
        server.stop()


async def denied(call: Awaitable[Any]) -> str:
    with pytest.raises(NoPermissionError) as info:
        await call
    return str(info.value)


# -- an adapter's user -------------------------------------------------------------------------


async def test_the_governance_adapter_reaches_its_two_keys_and_nothing_of_the_police(
    acl_redis_factory: Callable[[Settings], AclRedis],
) -> None:
    env = acl_redis_factory(edge_settings(prefix="town"))
    gov_in, gov_out = wire.inbox("town", "governance"), wire.outbox("town", "governance")
    pol_in, pol_out = wire.inbox("town", "police"), wire.outbox("town", "police")
    gateway, gov = env.client(acl.GATEWAY_USER), env.client("camgw-adapter-governance")
    try:
        # The gateway's side (as EdgeHub does it): streams, groups, a request in each inbox,
        # and registry keys the adapters must not see.
        for inbox, outbox in ((gov_in, gov_out), (pol_in, pol_out)):
            await gateway.xgroup_create(outbox, "gateway", id="0", mkstream=True)
            await gateway.xgroup_create(inbox, "adapter", id="0", mkstream=True)
            await gateway.xadd(inbox, {"m": b'{"type":"discover"}'}, maxlen=1000)
        await gateway.set("town:cam:police.gate-1", "{}")
        await gateway.xadd("town:audit", {"action": "x"})
        await gateway.hset("town:tokens", "t1", "{}")

        # What the governance adapter may do: read and acknowledge its inbox, answer in its outbox.
        reply = await gov.xreadgroup("adapter", "gov-1", {gov_in: ">"}, count=10)
        [(_, [(entry_id, fields)])] = reply
        assert fields == {b"m": b'{"type":"discover"}'}
        assert (await gov.xpending(gov_in, "adapter"))["pending"] == 1
        claimed = await gov.xautoclaim(gov_in, "adapter", "gov-2", 0)
        assert [e[0] for e in claimed[1]] == [entry_id]
        assert await gov.xack(gov_in, "adapter", entry_id) == 1
        assert (await gov.xinfo_groups(gov_in))[0]["name"] == b"adapter"
        assert await gov.xinfo_stream(gov_in)
        assert await gov.xadd(gov_out, {"m": b'{"type":"hello"}'}, maxlen=1000, approximate=True)
        assert await gov.ping()

        # Its own outbox is write-only; its own inbox is not its to write, trim or delete.
        for call in (
            gov.xrange(gov_out),
            gov.xread({gov_out: "0"}),
            gov.xreadgroup("gateway", "x", {gov_out: ">"}),
            gov.xlen(gov_out),
            gov.xadd(gov_in, {"m": b"forged request"}),
            gov.xtrim(gov_in, maxlen=0),
            gov.delete(gov_in),
            gov.xgroup_destroy(gov_in, "adapter"),
        ):
            await denied(call)
        # Nothing of the police.
        for call in (
            gov.xreadgroup("adapter", "gov-1", {pol_in: ">"}),
            gov.xack(pol_in, "adapter", "0-1"),
            gov.xpending(pol_in, "adapter"),
            gov.xautoclaim(pol_in, "adapter", "gov-1", 0),
            gov.xinfo_stream(pol_in),
            gov.xrange(pol_in),
            gov.xadd(pol_out, {"m": b"posing as the police"}),
            gov.xrange(pol_out),
        ):
            assert "permissions" in await denied(call)
        # Nor the registry, the audit trail, tokens, channels, scripts, the keyspace, admin.
        for call in (
            gov.get("town:cam:police.gate-1"),
            gov.set("town:cam:governance.x", "{}"),
            gov.xrange("town:audit"),
            gov.xadd("town:audit", {"action": "forged"}),
            gov.hgetall("town:tokens"),
            gov.publish("town:events", "version 999"),
            gov.scan(0),
            gov.keys("*"),
            gov.dbsize(),
            gov.eval("return 1", 0),
            gov.evalsha("0" * 40, 0),
            gov.script_load("return 1"),
            gov.config_get("*"),
            gov.config_set("appendonly", "no"),
            gov.flushall(),
            gov.info(),
            gov.client_list(),
            gov.acl_whoami(),
            gov.select(1),
        ):
            await denied(call)
        pubsub = gov.pubsub()
        try:
            await pubsub.subscribe("town:events")  # the refusal is the answer read next
            await denied(pubsub.get_message(timeout=2))
        finally:
            await pubsub.aclose()
    finally:
        await gov.aclose()
        await gateway.aclose()
    # Untouched by the attempts:
    admin = env.client("admin")
    try:
        assert await admin.xlen(pol_in) == 1 and await admin.xlen(pol_out) == 0
        assert await admin.xlen("town:audit") == 1
    finally:
        await admin.aclose()


def test_every_command_of_the_lua_scripts_is_granted_to_the_gateway() -> None:
    """Commands a script calls are checked against the caller's ACL: each must be listed."""
    sources = [
        p.read_text() for p in files("gateway").joinpath("lua").iterdir() if p.name.endswith(".lua")
    ]
    sources += [p.read_text() for p in Path(acl.__file__).parent.glob("*.py")]
    called = {
        name.lower()
        for source in sources
        for name in re.findall(r"redis\.p?call\(\s*['\"]([A-Za-z]+)['\"]", source)
    }
    assert {"xadd", "set", "publish"} <= called  # the pattern finds them
    assert called <= set(acl.GATEWAY_COMMANDS), called - set(acl.GATEWAY_COMMANDS)


def test_rules_respect_the_prefix_and_the_database() -> None:
    user = acl.adapter_user("town", "police", db=2)
    line = user.line("ab" * 32)
    assert line.startswith(
        f"user camgw-adapter-police on #{'ab' * 32} resetkeys resetchannels -@all"
    )
    assert (
        "(%RW~town:edge:police:inbox -@all +xreadgroup +xack +xautoclaim +xpending +xinfo)" in line
    )
    assert line.endswith("(%W~town:edge:police:outbox -@all +xadd)")
    assert "+select" in line and "+select" not in acl.adapter_user("town", "police").line("x")
    gateway = acl.gateway_user("town").line("x")
    assert "~town:* resetchannels &town:* -@all" in gateway
    for dangerous in (
        "flushall",
        "flushdb",
        "config",
        "debug",
        "shutdown",
        "acl",
        "module",
        "keys",
        "eval ",
    ):
        assert f"+{dangerous}" not in gateway + " "
    assert repr(acl.Credential(user, "h", generated="the-password")).count("the-password") == 0


# -- the gateway under its own user -----------------------------------------------------------


async def eventually(condition: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + 10
    while not await condition():
        assert time.monotonic() < deadline, "not in time"
        await asyncio.sleep(0.05)


async def registry_flow(client: TestClient, admin: dict[str, str]) -> None:  # type: ignore[type-arg]
    """Create, import (pipelined scripts), patch, list, get, summary, networks, delete."""
    assert (await client.get("/readyz")).status == 200
    cam = {"network": "police", "name": "Gate 1", "category": "traffic", "address": "127.2.0.10"}
    resp = await client.post("/api/v1/cameras", json=cam, headers=admin)
    assert resp.status == 201, await resp.text()
    cam_id = (await resp.json())["id"]
    more = [cam | {"name": f"Gate {i}", "address": f"127.2.0.{i}"} for i in (11, 12)]
    resp = await client.post("/api/v1/cameras/import", json=more, headers=admin)
    assert resp.status == 200, await resp.text()
    resp = await client.patch(f"/api/v1/cameras/{cam_id}", json={"name": "One"}, headers=admin)
    assert resp.status == 200, await resp.text()
    resp = await client.get("/api/v1/cameras", headers=admin)
    assert len((await resp.json())["items"]) == 3
    assert (await client.get(f"/api/v1/cameras/{cam_id}", headers=admin)).status == 200
    assert (await client.get("/api/v1/summary", headers=admin)).status == 200
    assert (await client.get("/api/v1/networks", headers=admin)).status == 200
    assert (await client.get("/api/v1/cameras")).status == 401  # counted, flushed later
    assert (await client.delete(f"/api/v1/cameras/{cam_id}", headers=admin)).status == 204


async def edge_discovery(
    client: TestClient,  # type: ignore[type-arg]
    admin: dict[str, str],
    adapter: Redis,
) -> None:
    """A discovery of the governance network, answered by its adapter under its own user."""
    outbox, inbox = wire.outbox("camgw", "governance"), wire.inbox("camgw", "governance")
    hello = wire.Hello(network="governance", adapter_version="test", started_at=time.time())
    await adapter.xadd(outbox, wire.encode(hello), maxlen=1000, approximate=True)
    hub = client.app[EDGE]

    async def connected() -> bool:
        return hub.connected("governance")

    await eventually(connected)
    resp = await client.post("/api/v1/networks/governance/discover", headers=admin)
    assert resp.status == 202, await resp.text()
    job = (await resp.json())["id"]
    reply = await adapter.xreadgroup("adapter", "gov-1", {inbox: ">"}, count=1, block=3000)
    [(_, [(entry_id, fields)])] = reply
    request, _ = wire.decode_to_adapter(fields)
    assert isinstance(request, wire.Discover)
    assert await adapter.xack(inbox, "adapter", entry_id) == 1
    done = wire.DiscoveryDone(job=request.job, state="done")
    await adapter.xadd(outbox, wire.encode(done), maxlen=1000, approximate=True)

    async def finished() -> bool:
        resp = await client.get(f"/api/v1/jobs/{job}", headers=admin)
        return bool((await resp.json())["state"] != "running")

    await eventually(finished)
    resp = await client.get(f"/api/v1/jobs/{job}", headers=admin)
    assert (await resp.json())["state"] == "done", await resp.text()


async def test_the_gateway_runs_under_its_acl_user(
    acl_redis_factory: Callable[[Settings], AclRedis],
    aiohttp_client: Callable[..., Awaitable[TestClient]],  # type: ignore[type-arg]
    vault: CredentialVault,
    tmp_path: Path,
) -> None:
    """Cameras created, imported, patched, listed, deleted; summary, networks, the audit read,
    archived and verified, a token revoked (pub/sub), a discovery of an edge network answered by
    its adapter under the adapter's user: all under `camgw-gateway`, and nothing refused."""
    base = edge_settings(edge=("governance",))
    env = acl_redis_factory(base)
    settings = base.model_copy(
        update={
            "redis": RedisConfig.model_validate(env.link(acl.GATEWAY_USER).model_dump()),
            "audit": AuditConfig(max_entries=10, segment_entries=5, archive_dir=tmp_path / "a"),
        }
    )
    client = await aiohttp_client(create_app(settings, vault))
    app = client.app
    root, adapter = env.client("admin"), env.client("camgw-adapter-governance")

    async def bearer(role: Role) -> dict[str, str]:
        secret, _ = await app[TOKENS].create(f"acl-{role.value}", role, ["*"], "tests")
        return {"Authorization": f"Bearer {secret}"}

    try:
        await root.acl_log_reset()
        admin, auditor = await bearer(Role.admin), await bearer(Role.auditor)
        await registry_flow(client, admin)
        await edge_discovery(client, admin, adapter)
        assert await app[TOKENS].revoke(admin["Authorization"].split("_")[1])  # HDEL + PUBLISH
        assert (await client.get("/api/v1/audit", headers=auditor)).status == 200
        audit = app[AUDIT]
        await audit.flush_refusals(everything=True)
        for i in range(10):  # past max_entries, through the group-committed batch script
            event = AuditEvent("t", "cli", "test", str(i), "ok", 200)
            await audit.append(event)
        assert await audit.index_upkeep() is not None  # the indexes' catch-up script
        for params in ({"actor": "t", "camera": "3"}, {"network": "governance"}):
            resp = await client.get("/api/v1/audit", params=params, headers=auditor)
            assert resp.status == 200  # ZCARD, ZREVRANGEBYLEX, pipelined XRANGEs
        assert await audit.archive() > 0  # lock, segment file, XTRIM, index trim, unlock
        assert "intact" in str(await audit.verify())
        assert await app[REGISTRY].integrity_problems() == []
        assert await root.acl_log() == []  # not one command refused
    finally:
        await adapter.aclose()
        await root.aclose()


# -- camgw acl ---------------------------------------------------------------------------------


@dataclass
class Run:
    code: int
    out: str
    err: str


async def camgw(config: Path, *args: str, redis_url: str = "redis://127.0.0.1:9/0") -> Run:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAMGW_", "REDIS_"))}
    env["REDIS_URL"] = redis_url
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "--config",
        str(config),
        "acl",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


def config_file(directory: Path, prefix: str, edge: tuple[str, ...]) -> Path:
    """The shipped config with another prefix and some networks at the edge."""
    text = DEFAULT_CONFIG.read_text().replace('prefix = "camgw"', f'prefix = "{prefix}"', 1)
    for network in edge:
        text = text.replace(f'id = "{network}"\n', f'id = "{network}"\nmode = "edge"\n', 1)
    path = directory / "camgw.toml"
    path.write_text(text)
    return path


async def test_camgw_acl_prints_rules_redis_server_accepts(tmp_path: Path) -> None:
    config = config_file(tmp_path, "town", edge=("police",))
    only_edge = await camgw(config)
    assert only_edge.code == 0, only_edge.err
    names = [line.split()[1] for line in only_edge.out.splitlines()]
    assert names == ["camgw-gateway", "camgw-adapter-police"]
    for name in names:  # each password shown once, on stderr, never in the rules
        [password] = re.findall(rf"password of {name}: ([0-9a-f]{{64}})", only_edge.err)
        assert password not in only_edge.out
        assert f"#{acl.password_hash(password)}" in only_edge.out
    assert "shown once" in only_edge.err

    passwords = tmp_path / "passwords"
    first = await camgw(config, "--all-networks", "--password-dir", str(passwords))
    assert first.code == 0, first.err
    lines = first.out.splitlines()
    assert [line.split()[1] for line in lines] == [
        "camgw-gateway",
        "camgw-adapter-governance",
        "camgw-adapter-police",
        "camgw-adapter-gov-affairs",
    ]
    assert re.search("[0-9a-f]{64}", first.err) is None  # in the files only
    for file in passwords.iterdir():
        assert file.stat().st_mode & 0o777 == 0o600
    again = await camgw(config, "--all-networks", "--password-dir", str(passwords))
    assert again.out == first.out  # the files are kept: re-running changes nothing

    # Loaded from an ACL file by redis-server, and the users log in with their files.
    server = RedisServer(
        tmp_path / "from-file",
        appendonly=False,
        acl=(
            "user default off",
            f"user admin on #{acl.password_hash(ADMIN_PASSWORD)} ~* +@all",
            *lines,
        ),
        auth=("admin", ADMIN_PASSWORD),
    ).start()
    try:
        users = {
            name: RedisLink(
                url=server.url,
                username=name,
                password_file=passwords / f"{name}.password",
            )
            for name in ("camgw-gateway", "camgw-adapter-police")
        }
        gateway, police = connect(users["camgw-gateway"]), connect(users["camgw-adapter-police"])
        try:
            await gateway.xgroup_create("town:edge:police:inbox", "adapter", mkstream=True)
            await gateway.set("town:version", 1)
            await denied(gateway.set("camgw:version", 1))  # another prefix
            assert await police.xadd("town:edge:police:outbox", {"m": b"{}"})
            await denied(police.xadd("camgw:edge:police:outbox", {"m": b"{}"}))
        finally:
            await gateway.aclose()
            await police.aclose()
    finally:
        server.stop()


async def test_camgw_acl_apply_sets_and_saves_the_users(tmp_path: Path) -> None:
    config = config_file(tmp_path, "camgw", edge=("governance", "police"))
    admin_file = write_password(tmp_path, "admin", ADMIN_PASSWORD)
    server = RedisServer(
        tmp_path / "redis",
        appendonly=False,
        acl=("user default off", f"user admin on #{acl.password_hash(ADMIN_PASSWORD)} ~* &* +@all"),
        auth=("admin", ADMIN_PASSWORD),
    ).start()
    try:
        passwords = tmp_path / "passwords"
        passwords.mkdir(mode=0o700)
        police_file = write_password(passwords, "police-given", "given-" + "3" * 30)
        args = ("--apply", "--password-dir", str(passwords))
        # Without an admin login (the default user is off) it is refused, naming the setting.
        refused = await camgw(config, *args, redis_url=server.url)
        assert refused.code == 1
        assert "requires a login" in refused.err
        run = await camgw(
            config,
            *args,
            "--password-file",
            f"camgw-adapter-police={police_file}",
            "--admin-user",
            "admin",
            "--admin-password-file",
            str(admin_file),
            redis_url=server.url,
        )
        assert run.code == 0, run.err
        assert "applied 3 ACL users" in run.err and "ACL SAVE" in run.err
        assert server.aclfile is not None
        saved = server.aclfile.read_text()
        for line in run.out.splitlines():
            assert line.split()[1] in saved
        assert acl.password_hash("given-" + "3" * 30) in saved
        police = connect(
            RedisLink(url=server.url, username="camgw-adapter-police", password_file=police_file)
        )
        try:
            assert await police.ping()
            await denied(police.get("camgw:version"))
        finally:
            await police.aclose()
        unknown = await camgw(config, "--password-file", f"nobody={police_file}")
        assert unknown.code == 2 and "unknown user(s) nobody" in unknown.err
    finally:
        server.stop()


def test_a_redis_url_with_a_password_is_refused_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://:hunter2-secret@127.0.0.1:6379/0")
    with pytest.raises(ConfigError) as info:
        load_settings(DEFAULT_CONFIG)
    assert "hunter2-secret" not in str(info.value) and "password_file" in str(info.value)
    monkeypatch.setenv("REDIS_URL", "redis://10.1.2.3:6379/0")
    with pytest.raises(ConfigError, match="allow_plaintext"):
        load_settings(DEFAULT_CONFIG)
    monkeypatch.setenv("REDIS_URL", "rediss://10.1.2.3:6379/0")
    assert load_settings(DEFAULT_CONFIG).redis.tls
