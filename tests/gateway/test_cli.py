"""`camgw token create|list|revoke` against a dedicated Redis, checked through a gateway that uses
the same Redis and the CLI's prefix (`camgw`, from the shipped config)."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.redis_server import RedisServer
from gateway.settings import DEFAULT_CONFIG, load_settings
from gateway.vault import CredentialVault, create_key_file, load_key

TOKEN = re.compile(r"^cgw_([0-9a-f]{8})_\S{20,}$")


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", appendonly=False).start()
    yield server
    server.stop()


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    """The deployment's key file: the CLI seals its audit entries with it, as the gateway does."""
    path = tmp_path / "camgw.key"
    create_key_file(path)
    return path


@pytest.fixture
def camgw(cli_redis: RedisServer, key_file: Path) -> Callable[..., Awaitable[Result]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAMGW_", "REDIS_"))}
    env |= {"REDIS_URL": cli_redis.url, "CAMGW_KEY_FILE": str(key_file)}

    async def run(*args: str) -> Result:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            *args,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(30):
            out, err = await proc.communicate()
        assert proc.returncode is not None
        return Result(proc.returncode, out.decode(), err.decode())

    return run


@pytest.fixture
async def gateway(
    aiohttp_client: Callable[..., Awaitable[TestClient]],  # type: ignore[type-arg]
    cli_redis: RedisServer,
    key_file: Path,
) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    base = load_settings(DEFAULT_CONFIG, use_env=False)
    assert base.redis.prefix == "camgw"  # what the CLI uses
    settings = base.model_copy(
        update={"redis": base.redis.model_copy(update={"url": cli_redis.url})}
    )
    yield await aiohttp_client(create_app(settings, CredentialVault(load_key(key_file))))


async def create_token(camgw: Callable[..., Awaitable[Result]], *args: str) -> tuple[str, str]:
    result = await camgw("token", "create", *args)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert len(lines) == 1, result.out  # the token, and nothing else, on stdout
    match = TOKEN.match(lines[0])
    assert match, lines[0]
    assert "shown once" in result.err
    assert match.group(1) in result.err
    return lines[0], match.group(1)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


CAMS: list[dict[str, Any]] = [
    {"id": "governance.cli-gov", "network": "governance", "name": "G", "category": "sharp-eyes",
     "address": "127.1.3.1"},
    {"id": "police.cli-pol", "network": "police", "name": "P", "category": "traffic",
     "address": "127.2.3.1"},
]  # fmt: skip


async def test_created_token_works_with_its_role_and_networks(
    camgw: Callable[..., Awaitable[Result]],
    gateway: TestClient,  # type: ignore[type-arg]
) -> None:
    admin, _ = await create_token(camgw, "--role", "admin", "--networks", "*", "--name", "root")
    for cam in CAMS:
        resp = await gateway.post("/api/v1/cameras", json=cam, headers=bearer(admin))
        assert resp.status == 201, await resp.text()

    viewer, _ = await create_token(
        camgw, "--role", "viewer", "--networks", "governance", "--name", "ops-screen"
    )
    resp = await gateway.get("/api/v1/cameras", headers=bearer(viewer))
    assert resp.status == 200
    assert [c["id"] for c in (await resp.json())["items"]] == ["governance.cli-gov"]
    assert (
        await gateway.get("/api/v1/cameras/police.cli-pol", headers=bearer(viewer))
    ).status == 404
    resp = await gateway.post("/api/v1/cameras", json=CAMS[0], headers=bearer(viewer))
    assert resp.status == 403

    # Several networks, comma-separated.
    both, _ = await create_token(
        camgw, "--role", "viewer", "--networks", "governance, police", "--name", "both"
    )
    resp = await gateway.get("/api/v1/cameras", headers=bearer(both))
    assert [c["id"] for c in (await resp.json())["items"]] == [
        "governance.cli-gov",
        "police.cli-pol",
    ]


async def test_list_shows_tokens_without_their_secrets(
    camgw: Callable[..., Awaitable[Result]],
) -> None:
    viewer, viewer_id = await create_token(
        camgw, "--role", "viewer", "--networks", "governance", "--name", "ops-screen"
    )
    auditor, auditor_id = await create_token(
        camgw, "--role", "auditor", "--networks", "police,governance", "--name", "inspector"
    )
    listed = await camgw("token", "list")
    assert listed.code == 0, listed.err
    header, *rows = [line.split("\t") for line in listed.out.splitlines()]
    assert header == ["ID", "ROLE", "NETWORKS", "NAME", "CREATED", "BY"]
    by_id = {row[0]: [cell.strip() for cell in row] for row in rows}
    assert set(by_id) == {viewer_id, auditor_id}
    assert by_id[viewer_id][1:4] == ["viewer", "governance", "ops-screen"]
    assert by_id[auditor_id][1:4] == ["auditor", "governance,police", "inspector"]
    for token in (viewer, auditor):
        assert token.split("_", 2)[2] not in listed.out + listed.err
    assert "cgw_" not in listed.out


async def test_revoke_makes_the_token_invalid(
    camgw: Callable[..., Awaitable[Result]],
    gateway: TestClient,  # type: ignore[type-arg]
) -> None:
    viewer, viewer_id = await create_token(
        camgw, "--role", "viewer", "--networks", "*", "--name", "leaving"
    )
    assert (await gateway.get("/api/v1/cameras", headers=bearer(viewer))).status == 200

    revoked = await camgw("token", "revoke", viewer_id)
    assert revoked.code == 0, revoked.err
    assert viewer_id in revoked.out
    status = 200
    for _ in range(100):  # the gateway hears of it through Redis pub/sub: allow a moment
        status = (await gateway.get("/api/v1/cameras", headers=bearer(viewer))).status
        if status == 401:
            break
        await asyncio.sleep(0.01)
    assert status == 401
    assert viewer_id not in (await camgw("token", "list")).out

    again = await camgw("token", "revoke", viewer_id)
    assert again.code == 1
    assert viewer_id in again.err


async def test_unknown_network_or_role_is_refused_with_exit_code_2(
    camgw: Callable[..., Awaitable[Result]],
) -> None:
    cases = [("nowhere", "nowhere"), ("governance,nowhere", "nowhere"), (",", "(none given)")]
    runs = [
        camgw("token", "create", "--role", "viewer", "--networks", networks, "--name", "x")
        for networks, _ in cases
    ]
    runs.append(camgw("token", "create", "--role", "root", "--networks", "*", "--name", "x"))
    *bad_networks, bad_role = await asyncio.gather(*runs)
    for (networks, named), result in zip(cases, bad_networks, strict=True):
        assert result.code == 2, networks
        assert result.out == ""
        assert f"unknown network(s): {named}" in result.err
        assert "governance, police, gov-affairs" in result.err  # what would have been accepted
    assert bad_role.code == 2
    assert "--role" in bad_role.err
    assert bad_role.out == ""
    assert (await camgw("token", "list")).out == ""  # nothing was created


async def test_token_changes_are_in_the_audit_stream(
    camgw: Callable[..., Awaitable[Result]],
    gateway: TestClient,  # type: ignore[type-arg]
) -> None:
    auditor, auditor_id = await create_token(
        camgw, "--role", "auditor", "--networks", "*", "--name", "inspector"
    )
    viewer, viewer_id = await create_token(
        camgw, "--role", "viewer", "--networks", "governance", "--name", "ops-screen"
    )
    assert (await camgw("token", "revoke", viewer_id)).code == 0
    assert (await camgw("token", "revoke", "deadbeef")).code == 1

    resp = await gateway.get("/api/v1/audit", headers=bearer(auditor))
    assert resp.status == 200
    entries = (await resp.json())["items"]
    text = await resp.text()
    got = [(e["action"], e["target"], e["outcome"]) for e in entries]
    assert got == [
        ("token.revoke", "deadbeef", "not_found"),
        ("token.revoke", viewer_id, "ok"),
        ("token.create", viewer_id, "ok"),
        ("token.create", auditor_id, "ok"),
    ]
    create = entries[2]
    assert create["actor"].startswith("cli:")
    assert "ops-screen" in create["detail"]
    assert "viewer" in create["detail"]
    assert "governance" in create["detail"]
    assert create["time"]
    for token in (auditor, viewer):
        assert token.split("_", 2)[2] not in text

    tail = await camgw("audit", "tail", "-n", "3")
    assert tail.code == 0, tail.err
    actions = [orjson.loads(line)["action"] for line in tail.out.splitlines()]
    assert actions == ["token.revoke", "token.revoke", "audit.read"]  # the read above, recorded
