"""A private redis-server child process: the embedded default (`camgw demo`) and the test suite
start their own, on their own port and directory, instead of touching a shared Redis.

Optionally with ACL users (`acl` lines or an `aclfile`) and TLS only (`tls`: `tls-port`,
`port 0`), as a deployment's registry Redis would run (docs/edge.md, "Redis: TLS and ACLs"), and
as a replica (`replicaof`), or as a cluster node (`cluster_node_timeout_ms`). `SentinelServer` is
a redis-sentinel watching such servers (docs/deployment.md, "Replicated: Redis Sentinel"); never on
26379, the port of a system's own. `ClusterServer` is a Redis Cluster of such nodes, masters and
replicas, joined by CLUSTER MEET (docs/deployment.md, "District: Redis Cluster")."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import redis

INSTALL_HINT = "redis-server not found: install it (Debian: apt-get install redis-server)"
SENTINEL_HINT = "redis-sentinel not found: install it (Debian: apt-get install redis-sentinel)"
SYSTEM_SENTINEL_PORT = 26379  # a system's own Sentinel (Debian's redis-sentinel service): not ours


def free_port(host: str = "127.0.0.1") -> int:
    while True:
        with socket.socket() as s:
            s.bind((host, 0))
            port: int = s.getsockname()[1]
        if port != SYSTEM_SENTINEL_PORT:
            return port


@dataclass(frozen=True)
class ServerTLS:
    """The server's certificate and key, the CA its clients' certificates must chain to, and
    whether clients must present one (`tls-auth-clients`). The readiness probe connects with
    `client_cert_file`/`client_key_file` (required when `auth_clients` is "yes")."""

    cert_file: Path
    key_file: Path
    ca_file: Path
    auth_clients: Literal["yes", "no", "optional"] = "yes"
    client_cert_file: Path | None = None
    client_key_file: Path | None = None


@dataclass
class RedisServer:
    directory: Path
    port: int = 0  # the TLS port when `tls` is set (the plain port is then closed)
    appendonly: bool = True
    appendfsync: str = "everysec"  # "always" where a test proves durability
    host: str = "127.0.0.1"
    also_bind: tuple[str, ...] = ()  # more addresses to listen on (a namespace's links)
    netns: str | None = None  # run inside this network namespace (`ip netns exec`)
    acl: tuple[str, ...] = ()  # ACL-file lines ("user NAME on #<sha256> ..."), for aclfile
    aclfile: Path | None = None  # default with `acl`: <directory>/users.acl; ACL SAVE writes it
    tls: ServerTLS | None = None
    # The ACL user and password the readiness probe logs in with. Without them a server whose
    # default user is off counts as ready once it refuses the probe's login.
    auth: tuple[str, str] | None = field(default=None, repr=False)
    replicaof: tuple[str, int] | None = None  # start as a replica of this primary
    # A cluster node (`cluster-enabled yes`) with this node timeout; its bus on `bus_port`
    # (picked free when 0; not port + 10000, which may be taken or beyond 65535).
    cluster_node_timeout_ms: int | None = None
    bus_port: int = 0
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _acl_written: bool = field(default=False, init=False, repr=False)

    @property
    def url(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{self.host}:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(INSTALL_HINT)
        if self.tls and self.tls.auth_clients == "yes" and self.tls.client_cert_file is None:
            raise ValueError("tls-auth-clients yes: the readiness probe needs client_cert_file")
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port(self.host if self.netns is None else "127.0.0.1")
        inside = ["ip", "netns", "exec", self.netns] if self.netns else []
        args = [
            *inside,
            binary,
            "--bind",
            " ".join((self.host, *self.also_bind)),
            *self._listen_args(),
            "--dir",
            str(self.directory),
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            self.appendfsync,
            "--save",
            "",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--logfile",
            str(self.directory / "redis.log"),
            *self._acl_args(),
            *(["--replicaof", self.replicaof[0], str(self.replicaof[1])] if self.replicaof else []),
            *self._cluster_args(),
        ]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        self.wait_ready(timeout)
        return self

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def _listen_args(self) -> list[str]:
        if self.tls is None:
            return ["--port", str(self.port)]
        t = self.tls
        return [
            "--port",
            "0",
            "--tls-port",
            str(self.port),
            "--tls-cert-file",
            str(t.cert_file),
            "--tls-key-file",
            str(t.key_file),
            "--tls-ca-cert-file",
            str(t.ca_file),
            "--tls-auth-clients",
            t.auth_clients,
        ]

    def _cluster_args(self) -> list[str]:
        if self.cluster_node_timeout_ms is None:
            return []
        if self.replicaof is not None:
            raise ValueError("a cluster node is made a replica by CLUSTER REPLICATE, not replicaof")
        if not self.bus_port:
            self.bus_port = free_port(self.host if self.netns is None else "127.0.0.1")
        return [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            str(self.directory / "nodes.conf"),
            "--cluster-node-timeout",
            str(self.cluster_node_timeout_ms),
            "--cluster-port",
            str(self.bus_port),
            # A replica's first sync at once, not after diskless sync's 5 s wait for others.
            "--repl-diskless-sync-delay",
            "0",
            *self._cluster_tls_args(),
        ]

    def _cluster_tls_args(self) -> list[str]:
        """TLS on the cluster bus and for replication too. The bus is always mutual TLS, whatever
        `tls-auth-clients` says: a node connects with `client_cert_file` (a certificate for
        client authentication; the server's is for server authentication only)."""
        if self.tls is None:
            return []
        if self.tls.client_cert_file is None or self.tls.client_key_file is None:
            raise ValueError("a TLS cluster node needs client_cert_file and client_key_file")
        return [
            "--tls-cluster",
            "yes",
            "--tls-replication",
            "yes",
            "--tls-client-cert-file",
            str(self.tls.client_cert_file),
            "--tls-client-key-file",
            str(self.tls.client_key_file),
        ]

    def _acl_args(self) -> list[str]:
        if not self.acl and self.aclfile is None:
            return []
        path = self.aclfile or self.directory / "users.acl"
        # The lines on the first start only: a restart keeps what ACL SAVE wrote since.
        # redis-server refuses to start without the file, so an empty one is made if need be.
        if (self.acl and not self._acl_written) or not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.writelines(f"{line}\n" for line in self.acl)
            self._acl_written = True
        self.aclfile = path
        return ["--aclfile", str(path)]

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for a `redis.Redis` reaching this server (TLS and login as the
        probe's); the host name is not checked, the certificate chain is."""
        kwargs: dict[str, Any] = {"host": self.host, "port": self.port, "socket_timeout": 1}
        if self.auth is not None:
            kwargs["username"], kwargs["password"] = self.auth
        if self.tls is not None:
            kwargs |= {
                "ssl": True,
                "ssl_ca_certs": str(self.tls.ca_file),
                "ssl_check_hostname": False,
            }
            if self.tls.client_cert_file is not None:
                kwargs["ssl_certfile"] = str(self.tls.client_cert_file)
                if self.tls.client_key_file is not None:
                    kwargs["ssl_keyfile"] = str(self.tls.client_key_file)
        return kwargs

    def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        client = redis.Redis(**self.client_kwargs())
        try:
            while True:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"redis-server exited; see {self.directory / 'redis.log'}")
                try:
                    if client.ping():
                        # AOF loading answers PING with an error; ping() raises until loaded.
                        return
                except redis.exceptions.AuthenticationError:
                    if self.auth is None:
                        return  # it answers, and no probe user was given to log in with
                except redis.exceptions.RedisError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {self.port} not ready in {timeout}s")
                time.sleep(0.02)
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL: no shutdown save, no AOF rewrite; what fsync wrote is all there is."""
        _kill(self.proc)
        self.proc = None

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None


@dataclass
class SentinelServer:
    """A Sentinel child process watching one service (`sentinel monitor <service> <primary>
    <quorum>`), on its own port and directory: Debian's `redis-sentinel`, else `redis-server
    --sentinel` (the same program). It finds the replicas and the other Sentinels itself; its
    config file is its own to rewrite (it records what it learns there).

    Short timings, for tests: the primary is down after `down_after_ms` without an answer;
    `failover_timeout_ms` bounds a failover's steps. `requirepass`: the Sentinel's own password
    (also given to its peers); `data_auth`: the ACL user and password it logs in to the data
    nodes with. With `tls`, it listens on TLS only and talks TLS to the data nodes and its
    peers (`tls-replication yes`)."""

    directory: Path
    primary: tuple[str, int]
    service: str = "camgw"
    quorum: int = 2
    down_after_ms: int = 1000
    failover_timeout_ms: int = 3000
    port: int = 0
    host: str = "127.0.0.1"
    requirepass: str | None = field(default=None, repr=False)
    data_auth: tuple[str, str] | None = field(default=None, repr=False)
    tls: ServerTLS | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def start(self, timeout: float = 10.0) -> SentinelServer:
        sentinel, server = shutil.which("redis-sentinel"), shutil.which("redis-server")
        if sentinel is None and server is None:
            raise RuntimeError(SENTINEL_HINT)
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port(self.host)
        if self.port == SYSTEM_SENTINEL_PORT:
            raise ValueError(f"port {SYSTEM_SENTINEL_PORT} is the system's Sentinel's, not ours")
        conf = self.directory / "sentinel.conf"
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(self._config())
        args = [sentinel, str(conf)] if sentinel else [str(server), str(conf), "--sentinel"]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        self.wait_ready(timeout)
        return self

    def _config(self) -> str:
        name, (host, port) = self.service, self.primary
        lines = [
            f"bind {self.host}",
            "daemonize no",
            "protected-mode no",
            f"dir {self.directory}",
            f"logfile {self.directory / 'sentinel.log'}",
        ]
        if self.tls is None:
            lines.append(f"port {self.port}")
        else:
            t = self.tls
            lines += [
                "port 0",
                f"tls-port {self.port}",
                f"tls-cert-file {t.cert_file}",
                f"tls-key-file {t.key_file}",
                f"tls-ca-cert-file {t.ca_file}",
                f"tls-auth-clients {t.auth_clients}",
                "tls-replication yes",
            ]
            if t.client_cert_file is not None:
                lines.append(f"tls-client-cert-file {t.client_cert_file}")
                if t.client_key_file is not None:
                    lines.append(f"tls-client-key-file {t.client_key_file}")
        if self.requirepass is not None:
            lines += [
                f"requirepass {self.requirepass}",
                f"sentinel sentinel-pass {self.requirepass}",
            ]
        lines += [
            f"sentinel monitor {name} {host} {port} {self.quorum}",
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
            f"sentinel failover-timeout {name} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {name} 1",
        ]
        if self.data_auth is not None:
            user, password = self.data_auth
            lines += [f"sentinel auth-user {name} {user}", f"sentinel auth-pass {name} {password}"]
        return "\n".join(lines) + "\n"

    def client(self) -> redis.Redis:
        """A client of this Sentinel (its password; TLS without the host name check)."""
        kwargs: dict[str, Any] = {"host": self.host, "port": self.port, "socket_timeout": 1}
        if self.requirepass is not None:
            kwargs["password"] = self.requirepass
        if self.tls is not None:
            kwargs |= {
                "ssl": True,
                "ssl_ca_certs": str(self.tls.ca_file),
                "ssl_check_hostname": False,
            }
            if self.tls.client_cert_file is not None:
                kwargs["ssl_certfile"] = str(self.tls.client_cert_file)
                if self.tls.client_key_file is not None:
                    kwargs["ssl_keyfile"] = str(self.tls.client_key_file)
        return redis.Redis(**kwargs)

    def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self.client() as client:
            while True:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(
                        f"redis-sentinel exited; see {self.directory / 'sentinel.log'}"
                    )
                try:
                    if client.ping():
                        return
                except redis.exceptions.RedisError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"redis-sentinel on port {self.port} not ready in {timeout}s"
                    )
                time.sleep(0.02)

    def state(self) -> dict[str, Any]:
        """`SENTINEL MASTER <service>`: flags, the primary's address, the replicas and other
        Sentinels it knows."""
        with self.client() as client:
            reply = client.execute_command("SENTINEL MASTER", self.service)
        return dict(reply) if isinstance(reply, dict) else {}

    def primary_address(self) -> tuple[str, int] | None:
        """The primary this Sentinel names now."""
        with self.client() as client:
            reply = client.execute_command("SENTINEL GET-MASTER-ADDR-BY-NAME", self.service)
        if not reply:
            return None
        host, port = reply
        return (host.decode() if isinstance(host, bytes) else str(host)), int(port)

    def kill(self) -> None:
        _kill(self.proc)
        self.proc = None

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None


def _kill(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL the process (if any) and reap it."""
    if proc is not None:
        proc.kill()
        proc.wait()


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    if proc is not None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _kill(proc)


CLUSTER_SLOTS = 16384


@dataclass
class ClusterServer:
    """A Redis Cluster of `masters` masters with `replicas` replicas each, every node a
    `RedisServer` child process (`cluster_node_timeout_ms`) on its own ports and directory
    under `directory`. The masters share the 16384 slots in equal ranges; the nodes are joined
    by CLUSTER MEET and the replicas attached by CLUSTER REPLICATE (what `redis-cli --cluster
    create` does, without its one-second polls). Started when every node says cluster_state:ok,
    knows every other node and agrees on who serves every slot, and every replica is linked.

    Needs Redis 7 (CLUSTER ADDSLOTSRANGE, `cluster-port`). Short timings, for tests: a master
    is failed after `node_timeout_ms` without an answer, and its replica takes over
    (`cluster-node-timeout`). `tls`: TLS only, for clients, the cluster
    bus and replication alike (`tls-cluster yes`, `tls-replication yes`)."""

    directory: Path
    masters: int = 3
    replicas: int = 0  # per master
    node_timeout_ms: int = 1000
    host: str = "127.0.0.1"
    tls: ServerTLS | None = None
    nodes: list[RedisServer] = field(default_factory=list)

    def start(self, timeout: float = 20.0) -> ClusterServer:
        if self.masters < 1 or self.replicas < 0:
            raise ValueError("a cluster needs at least one master")
        try:
            for i in range(self.masters * (1 + self.replicas)):
                node = RedisServer(
                    self.directory / f"node-{i}",
                    appendonly=False,
                    host=self.host,
                    tls=self.tls,
                    cluster_node_timeout_ms=self.node_timeout_ms,
                )
                self.nodes.append(node)
                node.start(timeout)
            self._join(time.monotonic() + timeout)
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def primaries(self) -> list[RedisServer]:
        """The masters as started (a failover may have changed who is master since)."""
        return self.nodes[: self.masters]

    def url(self, scheme: str = "redis+cluster") -> str:
        """The cluster's URL naming every master as a seed node."""
        hosts = ",".join(f"{n.host}:{n.port}" for n in self.primaries)
        return f"{scheme}://{hosts}/0"

    def client(self, node: RedisServer) -> redis.Redis:
        return redis.Redis(**node.client_kwargs())

    def _join(self, deadline: float) -> None:
        clients = [self.client(n) for n in self.nodes]
        try:
            ids = [str(_text(_command(c, "CLUSTER MYID"))) for c in clients]
            share, rest = divmod(CLUSTER_SLOTS, self.masters)
            first = 0
            for i, client in enumerate(clients[: self.masters]):
                last = first + share + (1 if i < rest else 0) - 1
                _command(client, "CLUSTER ADDSLOTSRANGE", first, last)
                _command(client, "CLUSTER SET-CONFIG-EPOCH", i + 1)
                first = last + 1
            seed = self.nodes[0]
            for client in clients[1:]:
                _command(client, "CLUSTER MEET", seed.host, seed.port, seed.bus_port)
            self._until(
                deadline,
                "every node knows every other",
                lambda: all(
                    int(_info(c).get("cluster_known_nodes", 0)) == len(clients) for c in clients
                ),
            )
            for i, client in enumerate(clients[self.masters :]):
                _command(client, "CLUSTER REPLICATE", ids[i % self.masters])
            self._until(
                deadline,
                "cluster_state:ok, slots agreed, replicas linked",
                lambda: all(self._settled(c, ids[: self.masters]) for c in clients),
            )
        finally:
            for client in clients:
                client.close()

    def _settled(self, client: redis.Redis, masters: list[str]) -> bool:
        if _info(client).get("cluster_state") != "ok":
            return False
        nodes = _text(_command(client, "CLUSTER", "NODES"))
        served = 0
        replicas = 0
        for line in str(nodes).splitlines():
            fields = line.split()
            flags, link = fields[2].split(","), fields[7]
            if "master" in flags and fields[0] in masters:
                for item in fields[8:]:
                    if "-" in item and not item.startswith("["):
                        first, last = item.split("-")
                        served += int(last) - int(first) + 1
                    elif item.isdigit():
                        served += 1
            elif "slave" in flags and fields[3] in masters and link == "connected":
                replicas += 1
        if served != CLUSTER_SLOTS or replicas != self.masters * self.replicas:
            return False
        role = _command(client, "ROLE")
        if _text(role[0]) == "slave":
            return bool(_text(role[3]) == "connected")
        return True

    @staticmethod
    def _until(deadline: float, what: str, check: Any) -> None:
        while not check():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster did not come up: not {what}")
            time.sleep(0.05)

    def slot(self, key: str) -> int:
        """The slot of `key` (its hash tag's, when it has one)."""
        with self.client(self.nodes[0]) as client:
            return int(_command(client, "CLUSTER KEYSLOT", key))

    def master_of(self, key: str) -> RedisServer:
        """The node serving `key`'s slot now, as the first node that answers says."""
        slot = self.slot(key)
        for node in self.nodes:
            if node.proc is None:
                continue
            try:
                with self.client(node) as client:
                    for first, last, (host, port, *_), *_ in _command(client, "CLUSTER", "SLOTS"):
                        if int(first) <= slot <= int(last):
                            address = (str(_text(host)), int(port))
                            return next(n for n in self.nodes if n.address == address)
            except redis.exceptions.RedisError:
                continue
        raise RuntimeError(f"no node of the cluster answers for slot {slot}")

    def replicas_of(self, master: RedisServer) -> list[RedisServer]:
        """The nodes that say they replicate `master` now (ROLE)."""
        found = []
        for node in self.nodes:
            if node.proc is None or node is master:
                continue
            with self.client(node) as client:
                role = _command(client, "ROLE")
            if _text(role[0]) == "slave" and int(role[2]) == master.port:
                found.append(node)
        return found

    def kill(self, node: RedisServer) -> None:
        node.kill()

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def _info(client: redis.Redis) -> dict[str, str]:
    """CLUSTER INFO as a dict of strings."""
    text = str(_text(_command(client, "CLUSTER", "INFO")))
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def _command(client: redis.Redis, *args: Any) -> Any:
    return client.execute_command(*args)  # type: ignore[no-untyped-call]
