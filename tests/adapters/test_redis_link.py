"""`adapters.redis_link`: the settings refuse what would leak (plain text to a remote host, a
password in the URL or the config), and the link works over TLS against real redis-server
processes with a test CA made here (the `cryptography` package; no openssl CLI): the right CA
works, a wrong CA, a wrong host name and a missing client certificate are refused with a
sentence naming the setting. Loopback only; every test starts its own servers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError
from redis.asyncio.connection import AbstractConnection

from adapters import wire
from adapters.redis_link import RedisLink, RedisLinkError, check, connect
from gateway.acl import adapter_user, password_hash
from gateway.redis_server import RedisServer, ServerTLS
from tests.pki import Issued, TestCA


@dataclass(frozen=True)
class Pki:
    ca: TestCA
    other: TestCA  # a CA nobody trusts
    server: Issued  # for 127.0.0.1
    client: Issued
    stranger: Issued  # a client certificate of the other CA
    elsewhere: Issued  # a server certificate for 127.0.0.2 only


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    base = tmp_path_factory.mktemp("pki")
    ca, other = TestCA(base / "ca", "camgw test CA"), TestCA(base / "other", "another CA")
    return Pki(
        ca,
        other,
        ca.issue("server", server=True),
        ca.issue("adapter", server=False),
        other.issue("stranger", server=False),
        ca.issue("elsewhere", server=True, ips=("127.0.0.2",)),
    )


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[RedisServer]]:
    """Servers a test starts (`start(...)`), stopped after it."""
    started: list[RedisServer] = []
    yield started
    for server in started:
        server.stop()


def start(started: list[RedisServer], directory: Path, **options: Any) -> RedisServer:
    server = RedisServer(directory, appendonly=False, **options).start()
    started.append(server)
    return server


async def refused(link: RedisLink) -> str:
    """The sentence `check` raises for a link that must not work."""
    client = connect(link)
    try:
        with pytest.raises(RedisLinkError) as info:
            await check(client, link)
    finally:
        await client.aclose()
    return str(info.value)


# -- settings -----------------------------------------------------------------------------------


def test_plain_redis_to_a_remote_host_is_refused_unless_allowed() -> None:
    with pytest.raises(ValidationError) as info:
        RedisLink(url="redis://10.20.0.5:6379/0")
    message = str(info.value)
    assert "not a loopback address" in message and "rediss://" in message
    assert "allow_plaintext" in message
    assert RedisLink(url="redis://10.20.0.5:6379/0", allow_plaintext=True).host == "10.20.0.5"
    for local in ("redis://127.0.0.1:6379/0", "redis://localhost/0", "redis://[::1]:6380/2"):
        assert RedisLink(url=local).loopback
    link = RedisLink(url="rediss://registry.example.org:6380/3")
    assert (link.tls, link.host, link.port, link.db) == (True, "registry.example.org", 6380, 3)


def test_a_password_is_never_a_literal_and_never_echoed() -> None:
    for url in ("redis://:hunter2@127.0.0.1:6379/0", "rediss://camgw:hunter2@example.org/0"):
        with pytest.raises(ValidationError) as info:
            RedisLink(url=url)
        assert "hunter2" not in str(info.value)
        assert "password_env" in str(info.value)
    with pytest.raises(ValidationError) as info:  # a query could carry one too
        RedisLink(url="redis://127.0.0.1/0?password=hunter2")
    assert "hunter2" not in str(info.value)

    class AdapterConfig(BaseModel):  # a model that embeds the link decides what errors show
        redis: RedisLink

    with pytest.raises(ValidationError) as info:
        AdapterConfig.model_validate({"redis": {"url": "rediss://:hunter2@example.org/0"}})
    assert "hunter2" not in str(info.value)
    with pytest.raises(ValidationError):
        RedisLink.model_validate({"password": "hunter2"})  # no such setting
    link = RedisLink(username="camgw-gateway", password_env="CAMGW_TEST_REDIS_PW")
    assert "hunter2" not in repr(link)


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"password_env": "A", "password_file": "/x"}, "at most one of password_env"),
        ({"username": "u"}, "needs password_env or password_file"),
        ({"ca_file": "/ca.pem"}, "need a rediss:// url"),
        ({"url": "rediss://127.0.0.1/0", "key_file": "/k"}, "key_file needs cert_file"),
        ({"url": "redis://127.0.0.1/0?ssl_cert_reqs=none"}, "must not carry options"),
        ({"url": "http://127.0.0.1/"}, "redis:// or rediss://"),
        ({"url": "redis://127.0.0.1/zero"}, "database number"),
        ({"prefix": "Cam*"}, "prefix"),
    ],
)
def test_settings_that_make_no_sense_are_refused(settings: dict[str, str], says: str) -> None:
    with pytest.raises(ValidationError) as info:
        RedisLink.model_validate(settings)
    assert says in str(info.value)


def test_password_sources_fail_naming_the_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CAMGW_TEST_REDIS_PW", raising=False)
    link = RedisLink(username="u", password_env="CAMGW_TEST_REDIS_PW")
    with pytest.raises(RedisLinkError, match="password_env CAMGW_TEST_REDIS_PW"):
        connect(link)
    missing = tmp_path / "nope.password"
    with pytest.raises(RedisLinkError, match="cannot read it"):
        connect(RedisLink(username="u", password_file=missing))
    secret = tmp_path / "pw"
    secret.write_text("s3cret-value\nsecond line ignored\n")
    assert RedisLink(password_file=secret).password() == "s3cret-value"
    monkeypatch.setenv("CAMGW_TEST_REDIS_PW", "from-env")
    assert link.password() == "from-env"


async def test_tls_files_that_do_not_load_are_named(pki: Pki, tmp_path: Path) -> None:
    url = "rediss://127.0.0.1:6390/0"
    with pytest.raises(RedisLinkError, match=r"ca_file .*nope\.pem.*No such file"):
        connect(RedisLink(url=url, ca_file=tmp_path / "nope.pem"))
    with pytest.raises(RedisLinkError, match=r"ca_file .* cannot load it as PEM"):
        connect(RedisLink(url=url, ca_file=pki.client.key))
    with pytest.raises(RedisLinkError, match=r"cert_file .* key_file .* cannot load"):
        connect(
            RedisLink(
                url=url, ca_file=pki.ca.file, cert_file=pki.client.cert, key_file=pki.server.key
            )
        )


# -- TLS against redis-server ---------------------------------------------------------------------


async def test_rediss_with_the_ca_works(
    pki: Pki, tmp_path: Path, servers: list[RedisServer]
) -> None:
    tls = ServerTLS(pki.server.cert, pki.server.key, pki.ca.file, auth_clients="no")
    server = start(servers, tmp_path / "r", tls=tls)
    assert server.url.startswith("rediss://127.0.0.1:")
    link = RedisLink(url=server.url, ca_file=pki.ca.file)
    client = connect(link)
    try:
        await check(client, link)
        await client.set("camgw:tls", "yes")
        assert await client.get("camgw:tls") == b"yes"
    finally:
        await client.aclose()


async def test_a_wrong_ca_and_a_wrong_host_are_refused_clearly(
    pki: Pki, tmp_path: Path, servers: list[RedisServer]
) -> None:
    ours = start(
        servers,
        tmp_path / "r1",
        tls=ServerTLS(pki.server.cert, pki.server.key, pki.ca.file, auth_clients="no"),
    )
    message = await refused(RedisLink(url=ours.url, ca_file=pki.other.file))
    assert "TLS refused" in message
    assert f"not signed by the CA in ca_file {pki.other.file}" in message
    # Without ca_file only the system's CAs are trusted, and they never signed a test CA.
    assert "not signed by a system CA" in await refused(RedisLink(url=ours.url))
    # A certificate of the right CA, for another address: the host is checked too.
    other_host = start(
        servers,
        tmp_path / "r2",
        tls=ServerTLS(pki.elsewhere.cert, pki.elsewhere.key, pki.ca.file, auth_clients="no"),
    )
    message = await refused(RedisLink(url=other_host.url, ca_file=pki.ca.file))
    assert "does not name 127.0.0.1" in message


async def test_mutual_tls_requires_a_client_certificate_of_the_ca(
    pki: Pki, tmp_path: Path, servers: list[RedisServer]
) -> None:
    tls = ServerTLS(
        pki.server.cert, pki.server.key, pki.ca.file, "yes", pki.client.cert, pki.client.key
    )
    server = start(servers, tmp_path / "r", tls=tls)
    message = await refused(RedisLink(url=server.url, ca_file=pki.ca.file))
    assert "requires a client certificate (set cert_file and key_file)" in message
    stranger = RedisLink(
        url=server.url,
        ca_file=pki.ca.file,
        cert_file=pki.stranger.cert,
        key_file=pki.stranger.key,
    )
    assert f"does not accept the client certificate in cert_file {pki.stranger.cert}" in (
        await refused(stranger)
    )
    link = RedisLink(
        url=server.url, ca_file=pki.ca.file, cert_file=pki.client.cert, key_file=pki.client.key
    )
    client = connect(link)
    try:
        await check(client, link)
    finally:
        await client.aclose()


async def test_plain_and_tls_mixed_up_are_named(
    pki: Pki, tmp_path: Path, servers: list[RedisServer]
) -> None:
    plain = start(servers, tmp_path / "plain")
    message = await refused(
        RedisLink(
            url=plain.url.replace("redis://", "rediss://"),
            ca_file=pki.ca.file,
            connect_timeout_s=0.5,
        )
    )
    assert "a plain port, not TLS?" in message
    tls = start(
        servers,
        tmp_path / "tls",
        tls=ServerTLS(pki.server.cert, pki.server.key, pki.ca.file, auth_clients="no"),
    )
    message = await refused(RedisLink(url=tls.url.replace("rediss://", "redis://")))
    assert "does it speak only TLS?" in message


# -- ACL login over mutual TLS -------------------------------------------------------------------


async def test_an_adapter_logs_in_over_mutual_tls_and_the_password_stays_out_of_sight(
    pki: Pki, tmp_path: Path, servers: list[RedisServer]
) -> None:
    password, wrong = "adapter-pw-" + "7" * 20, "not-the-pw-" + "8" * 20
    admin = "admin-pw-" + "9" * 20
    lines = (
        "user default off",
        f"user admin on #{password_hash(admin)} ~* &* +@all",
        adapter_user("camgw", "governance").line(password_hash(password)),
    )
    tls = ServerTLS(
        pki.server.cert, pki.server.key, pki.ca.file, "yes", pki.client.cert, pki.client.key
    )
    server = start(servers, tmp_path / "r", tls=tls, acl=lines, auth=("admin", admin))
    (tmp_path / "adapter.password").write_text(password + "\n")
    (tmp_path / "wrong.password").write_text(wrong + "\n")
    base = {
        "url": server.url,
        "username": "camgw-adapter-governance",
        "ca_file": pki.ca.file,
        "cert_file": pki.client.cert,
        "key_file": pki.client.key,
    }
    link = RedisLink.model_validate(base | {"password_file": tmp_path / "adapter.password"})
    client = connect(link)
    try:
        await check(client, link)
        outbox = wire.outbox("camgw", "governance")
        assert await client.xadd(outbox, {"m": b"{}"}, maxlen=1000, approximate=True)
        assert password not in repr(client) and password not in repr(client.connection_pool)
    finally:
        await client.aclose()
    bad = RedisLink.model_validate(base | {"password_file": tmp_path / "wrong.password"})
    message = await refused(bad)
    assert "refused the login of ACL user camgw-adapter-governance" in message
    assert f"password_file {tmp_path / 'wrong.password'}" in message
    assert wrong not in message and password not in message


async def test_on_connect_redis_py_sends_hello_with_the_login_then_ping_only(
    tmp_path: Path, servers: list[RedisServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What an ACL user needs to connect: HELLO (with AUTH) and PING. No CLIENT SETINFO, no
    CLIENT MAINT_NOTIFICATIONS: a user allowed nothing else connects, and nothing it sent was
    refused (ACL LOG stays empty)."""
    admin, password = "admin-pw-" + "1" * 20, "probe-pw-" + "2" * 20
    lines = (
        "user default off",
        f"user admin on #{password_hash(admin)} ~* &* +@all",
        f"user probe on #{password_hash(password)} resetkeys resetchannels -@all "
        "+hello +auth +ping",
    )
    server = start(servers, tmp_path / "r", acl=lines, auth=("admin", admin))
    sent: list[tuple[str, ...]] = []
    original = AbstractConnection.send_command

    async def spy(self: AbstractConnection, *args: Any, **kwargs: Any) -> None:
        sent.append(tuple(str(a) for a in args[:3]))
        await original(self, *args, **kwargs)

    monkeypatch.setattr(AbstractConnection, "send_command", spy)
    monkeypatch.setenv("CAMGW_TEST_PROBE_PW", password)
    link = RedisLink(url=server.url, username="probe", password_env="CAMGW_TEST_PROBE_PW")
    client = connect(link)
    try:
        await check(client, link)
    finally:
        await client.aclose()
    assert sent == [("HELLO", "3", "AUTH"), ("PING",)]
    monkeypatch.undo()
    admin_client = connect(
        RedisLink(url=server.url, username="admin", password_file=_file(tmp_path, admin))
    )
    try:
        assert await admin_client.acl_log() == []
    finally:
        await admin_client.aclose()


def _file(directory: Path, password: str) -> Path:
    path = directory / "admin.password"
    path.write_text(password)
    return path
