"""The access log never holds a token (security review, issue 7, finding 13): a client that puts
one in the URL (`?token=`, `?access_token=`, a copied link with one in the path) gets a log line
with the secret redacted; the token id, which grants nothing, stays for tracing."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.access_log import REDACTED, AccessLogger, redact_target
from gateway.app import create_app
from gateway.keys import TOKENS
from gateway.logs import JsonFormatter
from gateway.models import Role
from gateway.settings import Settings
from gateway.vault import CredentialVault

Factory = Callable[..., Awaitable[TestClient]]  # type: ignore[type-arg]


@pytest.mark.parametrize(
    ("target", "logged"),
    [
        ("/api/v1/cameras?limit=5&cursor=abc", "/api/v1/cameras?limit=5&cursor=abc"),
        ("/x?token=t0k&limit=5", f"/x?token={REDACTED}&limit=5"),
        (
            "/x?access_token=a&api_key=b&key=c",
            f"/x?access_token={REDACTED}&api_key={REDACTED}&key={REDACTED}",
        ),
        (
            "/x?secret=s&password=p&auth=u&sig=v",
            f"/x?secret={REDACTED}&password={REDACTED}&auth={REDACTED}&sig={REDACTED}",
        ),
        (
            "/x?X-Amz-Signature=abc&Pass%77ord=p",
            f"/x?X-Amz-Signature={REDACTED}&Pass%77ord={REDACTED}",
        ),
        ("/x?q=cgw_0a1b2c3d_s3cr3t-_X", f"/x?q=cgw_0a1b2c3d_{REDACTED}"),
        ("/a/cgw_0a1b2c3d_s3cr3t-_X/b", f"/a/cgw_0a1b2c3d_{REDACTED}/b"),
        ("/a/cgw%5F0a1b2c3d%5Fs3cr3t", f"/a/cgw%5F0a1b2c3d_{REDACTED}"),
        ("/x?reason=INC-2026-0042&width=640", "/x?reason=INC-2026-0042&width=640"),
    ],
)
def test_redact_target(target: str, logged: str) -> None:
    assert redact_target(target) == logged


async def test_access_log_lines_hold_no_token(
    aiohttp_client: Factory,
    settings: Settings,
    vault: CredentialVault,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = TestServer(create_app(settings, vault))
    await server.start_server(
        access_log_class=AccessLogger, access_log=logging.getLogger("camgw.access")
    )
    client = await aiohttp_client(server)
    secret, _ = await client.app[TOKENS].create("log-viewer", Role.viewer, ["*"], "tests")
    other = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXBheWxvYWQ.c2lnbmF0dXJl"  # someone else's token
    token_id, token_secret = secret.split("_", 2)[1:]
    auth = {"Authorization": f"Bearer {secret}"}
    caplog.set_level(logging.INFO, logger="camgw.access")

    for path in (
        f"/api/v1/cameras?limit=1&token={secret}",
        f"/api/v1/cameras?access_token={other}&limit=1",
        f"/api/v1/cameras/{secret}",  # a token pasted where an id goes
        f"/healthz?next=/login/{secret}",
    ):
        async with client.get(path, headers=auth) as resp:
            await resp.read()
    await client.close()  # the access log line is written once the response is done

    formatter = JsonFormatter()
    lines = [formatter.format(r) for r in caplog.records if r.name == "camgw.access"]
    print("\n".join(lines))
    assert len(lines) == 4
    for line in lines:
        assert token_secret not in line, line
        assert other not in line and "c2VjcmV0LXBheWxvYWQ" not in line, line
    paths = [orjson.loads(line)["path"] for line in lines]
    assert paths == [
        f"/api/v1/cameras?limit=1&token={REDACTED}",
        f"/api/v1/cameras?access_token={REDACTED}&limit=1",
        f"/api/v1/cameras/cgw_{token_id}_{REDACTED}",
        f"/healthz?next=/login/cgw_{token_id}_{REDACTED}",
    ]
