"""Camera passwords never leave: not in a response (body or header), a log line, an error message,
nor in Redis, which holds only vault ciphertext that opens back to the right credentials."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from adapters.uris import UriCredentials
from gateway.access_log import AccessLogger
from gateway.app import create_app
from gateway.keys import REGISTRY, TOKENS
from gateway.logs import JsonFormatter
from gateway.models import Role
from gateway.redis_server import RedisServer, free_port
from gateway.settings import Settings
from gateway.vault import CredentialVault, VaultError

PASSWORD = "S3cret-Pa55-xyz"
NEW_PASSWORD = "N3w-S3cret-Pa55-abc"
IMPORT_PASSWORD = "Imp0rt-S3cret-Pa55-qrs"
URI_PASSWORD = "Ur1-S3cret-Pa55-def"
USERNAME = "cam-operator-7"
SECRETS = (PASSWORD, NEW_PASSWORD, IMPORT_PASSWORD, URI_PASSWORD)


def cam(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"governance.sec-{n}",
        "network": "governance",
        "name": f"Secret camera {n}",
        "category": "smart-security",
        "address": f"127.1.2.{n}",
    } | extra


def creds(password: str = PASSWORD, username: str = USERNAME) -> dict[str, str]:
    return {"username": username, "password": password}


def leaks(text: str | bytes) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [s for s in SECRETS if s.encode() in data]


@dataclass
class Api:
    """A client that keeps everything the gateway answered, to be scanned afterwards."""

    client: TestClient  # type: ignore[type-arg]
    headers: dict[str, str]
    seen: list[tuple[str, str]] = field(default_factory=list)

    async def call(
        self, method: str, path: str, status: int, headers: dict[str, str] | None = None, **kw: Any
    ) -> Any:
        resp = await self.client.request(method, path, headers=headers or self.headers, **kw)
        body = await resp.read()
        where = f"{method} {path} -> {resp.status}"
        self.seen.append((where, body.decode(errors="replace")))
        self.seen.append((where + " headers", repr(list(resp.raw_headers))))
        assert resp.status == status, (where, body[:300])
        return (
            await resp.json(content_type=None)
            if body and resp.content_type.endswith("json")
            else body
        )


async def start_client(
    aiohttp_client: Callable[..., Awaitable[TestClient]],  # type: ignore[type-arg]
    settings: Settings,
    vault: CredentialVault,
) -> TestClient:  # type: ignore[type-arg]
    """The app with the gateway's own access logger, as `camgw serve` runs it."""
    server = TestServer(create_app(settings, vault))
    await server.start_server(
        access_log_class=AccessLogger, access_log=logging.getLogger("camgw.access")
    )
    return await aiohttp_client(server)


@pytest.fixture
async def api(
    aiohttp_client: Callable[..., Awaitable[TestClient]],  # type: ignore[type-arg]
    settings: Settings,
    vault: CredentialVault,
    caplog: pytest.LogCaptureFixture,
) -> Api:
    caplog.set_level(logging.DEBUG)
    client = await start_client(aiohttp_client, settings, vault)
    secret, _ = await client.app[TOKENS].create("sec-admin", Role.admin, ["*"], "tests")
    return Api(client, {"Authorization": f"Bearer {secret}"})


@pytest.fixture
async def monitor(redis_server: RedisServer) -> AsyncIterator[bytearray]:
    """Every command Redis receives meanwhile, as MONITOR prints it (arguments in full)."""
    seen = bytearray()
    reader, writer = await asyncio.open_connection(redis_server.host, redis_server.port)
    writer.write(b"MONITOR\r\n")
    await writer.drain()
    assert await reader.readline() == b"+OK\r\n"

    async def pump() -> None:
        while chunk := await reader.read(65536):
            seen.extend(chunk)

    task = asyncio.create_task(pump())
    yield seen
    await asyncio.sleep(0.05)  # let the last commands arrive
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    writer.close()
    await writer.wait_closed()


def scan_logs(caplog: pytest.LogCaptureFixture) -> None:
    formatter = JsonFormatter()
    lines = [formatter.format(r) for r in caplog.records] + [caplog.text]
    leaked = [line[:300] for line in lines if leaks(line)]
    assert leaked == []


def scan_responses(api: Api) -> None:
    leaked = [where for where, text in api.seen if leaks(text)]
    assert leaked == []


async def redis_dump(url: str, prefix: str) -> dict[str, bytes]:
    """Every key of the prefix with its whole value, whatever its type."""
    r = aioredis.Redis.from_url(url)
    out: dict[str, bytes] = {}
    try:
        async for key in r.scan_iter(f"{prefix}:*", count=1000):
            kind = (await r.type(key)).decode()
            if kind == "string":
                value: Any = await r.get(key)
            elif kind == "set":
                value = sorted(await r.smembers(key))
            elif kind == "hash":
                value = await r.hgetall(key)
            elif kind == "stream":
                value = await r.xrange(key)
            elif kind == "list":
                value = await r.lrange(key, 0, -1)
            else:
                value = await r.zrange(key, 0, -1, withscores=True)
            out[key.decode()] = value if isinstance(value, bytes) else repr(value).encode()
    finally:
        await r.aclose()
    return out


# -- the whole journey of a password ------------------------------------------------------------


URI = f"rtsp://admin:{URI_PASSWORD}@127.1.2.9:554/main"


async def register_and_change(api: Api, viewer: dict[str, str]) -> None:
    created = await api.call(
        "POST", "/api/v1/cameras", 201, json=cam(1, credentials=creds(), stream_uri=None)
    )
    assert created["has_credentials"] is True
    assert "credentials" not in created
    await api.call("GET", "/api/v1/cameras/governance.sec-1", 200)
    await api.call("GET", "/api/v1/cameras/governance.sec-1", 200, headers=viewer)
    await api.call("GET", "/api/v1/cameras", 200)
    await api.call("GET", "/api/v1/cameras?q=sec", 200, headers=viewer)
    patched = await api.call(
        "PATCH", "/api/v1/cameras/governance.sec-1", 200, json={"credentials": creds(NEW_PASSWORD)}
    )
    assert patched["has_credentials"] is True


async def refuse_uris_with_credentials(api: Api) -> None:
    """Refused, naming the field but not the value."""
    for body, where in (
        (cam(2, stream_uri=URI), "stream_uri"),
        (cam(2, snapshot_uri=URI.replace("rtsp", "http")), "snapshot_uri"),
        # NFKC trickery makes urlsplit itself fail: its message would quote the netloc.
        (cam(2, stream_uri=URI.replace("@", "\uff03@")), "stream_uri"),
        (cam(2, stream_uri=URI.replace("@", "\uff20")), "stream_uri"),
    ):
        problem = await api.call("POST", "/api/v1/cameras", 422, json=body)
        assert problem["field"] == where
    problem = await api.call(
        "PATCH", "/api/v1/cameras/governance.sec-1", 422, json={"stream_uri": URI}
    )
    assert problem["field"] == "stream_uri"


async def import_rows_with_credentials(api: Api) -> None:
    """Rows with credentials are kept; bad rows are reported without their secrets."""
    rows = [
        cam(3, credentials=creds(IMPORT_PASSWORD)),
        cam(4, credentials=creds(IMPORT_PASSWORD), stream_uri=URI),
        cam(5, credentials=creds(IMPORT_PASSWORD), address="10.9.9.9"),
        cam(6, credentials={"username": USERNAME, "password": IMPORT_PASSWORD * 10}),
        cam(7, stream_uri=URI.replace("@", "\uff03@")),
        cam(1, credentials=creds(IMPORT_PASSWORD)),  # already exists
    ]
    result = await api.call("POST", "/api/v1/cameras/import", 200, json=rows)
    assert result["ids"] == ["governance.sec-3"]
    assert [e["row"] for e in result["errors"]] == [2, 3, 4, 5, 6]
    csv = "name,network,category,address,stream_uri\n"
    csv += f"CSV cam,governance,sharp-eyes,127.1.2.8,{URI}\n"
    result = await api.call(
        "POST",
        "/api/v1/cameras/import",
        200,
        data=csv.encode(),
        headers=api.headers | {"Content-Type": "text/csv"},
    )
    assert result["failed"] == 1
    assert result["errors"][0]["field"] == "stream_uri"


async def trigger_errors(api: Api, viewer: dict[str, str]) -> None:
    """Errors of every kind, each request carrying a password somewhere."""
    body = cam(8, credentials=creds())
    await api.call("POST", "/api/v1/cameras", 201, json=body)
    await api.call("POST", "/api/v1/cameras", 409, json=body)
    await api.call("POST", "/api/v1/cameras", 409, json=cam(9, address="127.1.2.8") | body)
    for bad in (creds(PASSWORD * 20), {"password": PASSWORD}, {"username": PASSWORD}, [PASSWORD]):
        await api.call("POST", "/api/v1/cameras", 422, json=cam(9, credentials=bad))
    json_type = api.headers | {"Content-Type": "application/json"}
    truncated = f'{{"name": "x", "credentials": {{"username": "u", "password": "{PASSWORD}"'
    await api.call("POST", "/api/v1/cameras", 422, data=truncated, headers=json_type)
    form = api.headers | {"Content-Type": "application/x-www-form-urlencoded"}
    await api.call("POST", "/api/v1/cameras", 415, data=f"password={PASSWORD}", headers=form)
    huge = orjson.dumps(cam(9, credentials=creds(), name=PASSWORD * 80_000))
    await api.call("POST", "/api/v1/cameras", 413, data=io.BytesIO(huge), headers=json_type)
    patch = {"credentials": creds(NEW_PASSWORD)}
    await api.call("PATCH", "/api/v1/cameras/governance.sec-404", 404, json=patch)
    await api.call("POST", "/api/v1/cameras", 403, headers=viewer, json=cam(9, credentials=creds()))
    password_as_token = {"Authorization": f"Bearer {PASSWORD}"}
    await api.call("POST", "/api/v1/cameras", 401, headers=password_as_token, json=body)
    await api.call("GET", "/api/v1/audit?limit=1000", 403)


async def test_passwords_never_leave_the_gateway(
    api: Api,
    caplog: pytest.LogCaptureFixture,
    monitor: bytearray,
    settings: Settings,
) -> None:
    tokens = api.client.app[TOKENS]
    viewer_secret, _ = await tokens.create("v", Role.viewer, ["*"], "tests")
    viewer = {"Authorization": f"Bearer {viewer_secret}"}
    await register_and_change(api, viewer)
    await refuse_uris_with_credentials(api)
    await import_rows_with_credentials(api)
    await trigger_errors(api, viewer)
    auditor_secret, _ = await tokens.create("a", Role.auditor, ["*"], "tests")
    auditor = {"Authorization": f"Bearer {auditor_secret}"}
    trail = await api.call("GET", "/api/v1/audit?limit=1000", 200, headers=auditor)
    assert len(trail["items"]) > 10

    scan_responses(api)
    access = [r for r in caplog.records if r.name == "camgw.access"]
    assert {422, 409, 413, 415, 401, 403} <= {getattr(r, "status", 0) for r in access}
    scan_logs(caplog)

    # Redis: only ciphertext, in stored values and in every command it was sent.
    dump = await redis_dump(settings.redis.url, settings.redis.prefix)
    assert f"{settings.redis.prefix}:audit" in dump
    assert [key for key, value in dump.items() if leaks(value)] == []
    sealed = dump[f"{settings.redis.prefix}:cred:governance.sec-1"]
    assert USERNAME.encode() not in sealed
    assert len(monitor) > 0
    assert b"EVALSHA" in monitor.upper() or b"EVAL" in monitor.upper()
    assert leaks(bytes(monitor)) == []

    # ...which opens back to what the admins sent.
    registry = api.client.app[REGISTRY]
    assert await registry.credentials("governance.sec-1") == UriCredentials(USERNAME, NEW_PASSWORD)
    assert await registry.credentials("governance.sec-3") == UriCredentials(
        USERNAME, IMPORT_PASSWORD
    )
    assert await registry.credentials("governance.sec-8") == UriCredentials(USERNAME, PASSWORD)
    for refused in (
        "governance.sec-2",
        "governance.sec-4",
        "governance.sec-5",
        "governance.sec-6",
        "governance.sec-7",
        "governance.sec-9",
    ):
        assert await registry.credentials(refused) is None


async def test_clearing_and_deleting_remove_the_credentials(api: Api, settings: Settings) -> None:
    registry = api.client.app[REGISTRY]
    await api.call("POST", "/api/v1/cameras", 201, json=cam(1, credentials=creds()))
    await api.call("POST", "/api/v1/cameras", 201, json=cam(2, credentials=creds()))

    # A patch that leaves credentials out keeps them.
    await api.call("PATCH", "/api/v1/cameras/governance.sec-1", 200, json={"name": "Renamed"})
    assert await registry.credentials("governance.sec-1") == UriCredentials(USERNAME, PASSWORD)

    cleared = await api.call(
        "PATCH", "/api/v1/cameras/governance.sec-1", 200, json={"credentials": None}
    )
    assert cleared["has_credentials"] is False
    assert await registry.credentials("governance.sec-1") is None
    assert (await api.call("GET", "/api/v1/cameras/governance.sec-1", 200))[
        "has_credentials"
    ] is False

    await api.call("DELETE", "/api/v1/cameras/governance.sec-2", 204)
    dump = await redis_dump(settings.redis.url, settings.redis.prefix)
    assert not [key for key in dump if ":cred:" in key]
    assert [key for key, value in dump.items() if leaks(value)] == []


async def test_credentials_sealed_by_another_key_do_not_open(
    aiohttp_client: Callable[..., Awaitable[TestClient]],  # type: ignore[type-arg]
    api: Api,
    settings: Settings,
) -> None:
    """A gateway started with the wrong key file cannot read (or serve) anyone's password."""
    await api.call("POST", "/api/v1/cameras", 201, json=cam(1, credentials=creds()))
    other = await start_client(aiohttp_client, settings, CredentialVault(b"\x01" * 32))
    with pytest.raises(VaultError) as info:
        await other.app[REGISTRY].credentials("governance.sec-1")
    assert not leaks(str(info.value))


async def test_registry_outage_errors_do_not_leak(
    aiohttp_client: Callable[..., Awaitable[TestClient]],  # type: ignore[type-arg]
    settings: Settings,
    vault: CredentialVault,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With Redis gone the create fails (503), and the error, its log line and traceback are
    still free of the registry's password and of the camera password the request carried."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("CAMGW_TEST_REGISTRY_PASSWORD", PASSWORD)
    link = {
        "url": f"redis://127.0.0.1:{free_port()}/0",
        "password_env": "CAMGW_TEST_REGISTRY_PASSWORD",
    }
    dead = settings.model_copy(
        update={"redis": settings.redis.model_validate(settings.redis.model_dump() | link)}
    )
    client = await start_client(aiohttp_client, dead, vault)
    api = Api(client, {"Authorization": "Bearer cgw_00000000_x"})
    problem = await api.call("POST", "/api/v1/cameras", 503, json=cam(1, credentials=creds()))
    assert problem["status"] == 503
    await api.call("GET", "/readyz", 503)
    scan_responses(api)
    scan_logs(caplog)
    assert any(r.levelno >= logging.ERROR for r in caplog.records)
