"""Redis ACL users: one per edge adapter, whose rights cover exactly its inbox and outbox, and
one for the gateway (docs/edge.md, "Redis: TLS and ACLs"). `camgw acl` prints them in ACL-file
syntax and with `--apply` sets them with ACL SETUSER.

An adapter's rights are two selectors, each binding commands to one key:
- its inbox (`%RW~<prefix>:edge:<net>:inbox`): XREADGROUP, XACK, XAUTOCLAIM, XPENDING, XINFO;
- its outbox (`%W~<prefix>:edge:<net>:outbox`): XADD only (write: it cannot read back what it
  wrote, nor what another gateway has not yet taken);
and outside them only what redis-py needs to connect (`adapters.redis_link`): HELLO and AUTH
(the login) and PING (health checks). No other key, no channel, no scripts, no SCAN/KEYS, no
CONFIG. The gateway's user has every key and channel under the prefix and the commands the
gateway calls (Lua scripts included: commands inside a script are checked against the caller),
no administration (no FLUSHALL/FLUSHDB, CONFIG, DEBUG, SHUTDOWN, ACL, MODULE, KEYS, ...).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from adapters import wire

from .settings import Settings

GATEWAY_USER = "camgw-gateway"
ADAPTER_USER = "camgw-adapter-{network}"

# What redis-py sends to open a connection (adapters.redis_link turns CLIENT SETINFO and
# CLIENT MAINT_NOTIFICATIONS off): HELLO 3 AUTH <user> <password>, then PING as health check.
# HELLO and AUTH are allowed to every user anyway; they are named so the rule says it.
CONNECT = ("hello", "auth", "ping")
# On a cluster (redis+cluster://) a connection first asks a seed node which master serves the
# registry's slot (adapters.redis_link).
CLUSTER_CONNECT = ("cluster|slots",)

ADAPTER_INBOX = ("xreadgroup", "xack", "xautoclaim", "xpending", "xinfo")
ADAPTER_OUTBOX = ("xadd",)

# What the gateway calls, from the code (gateway/*.py, gateway/lua/*.lua) and the edge protocol.
GATEWAY_COMMANDS = (
    # strings and keys: records, credentials, versions, jobs, locks, the audit head and turn
    "get",
    "set",
    "mget",
    "del",
    "exists",
    "incr",
    "expire",
    "pexpire",
    # the server's clock: the status history's age (gateway/lua/upsert.lua)
    "time",
    # hashes: tokens, site, identity and claims maps, per-network versions, rate counters
    "hget",
    "hmget",
    "hgetall",
    "hkeys",
    "hset",
    "hsetnx",
    "hdel",
    "hincrby",
    # lists: each camera's lifecycle changes (gateway/lua/upsert.lua)
    "lpush",
    "ltrim",
    "lrange",
    # sets: the indexes
    "sadd",
    "srem",
    "smembers",
    "sscan",
    # sorted sets: the audit trail's indexes (gateway/audit_index.py), the GEO indexes
    "geoadd",
    "geosearch",
    "zrem",
    "zadd",
    "zcard",
    "zrevrangebylex",
    "zremrangebylex",
    # streams: the audit trail; the edge inboxes (written) and outboxes (read, acknowledged)
    "xadd",
    "xlen",
    "xrange",
    "xrevrange",
    "xtrim",
    "xdel",
    "xreadgroup",
    "xack",
    "xautoclaim",
    "xpending",
    "xinfo",
    "xgroup|create",
    "xgroup|createconsumer",
    "xgroup|delconsumer",
    "xgroup|setid",
    # Lua: redis-py runs EVALSHA, loads a script the server lacks (SCRIPT LOAD; pipelines ask
    # SCRIPT EXISTS first)
    "evalsha",
    "script|load",
    "script|exists",
    # transactions (pipeline(transaction=True))
    "multi",
    "exec",
    "discard",
    # the events channel (versions, token revocations)
    "publish",
    "subscribe",
    "unsubscribe",
    # Registry.integrity_problems walks the indexes (SCAN names keys of other prefixes too)
    "scan",
    # [redis] replicas_to_ack: a write is acknowledged once replicas have it
    # (adapters.redis_link.wait_for_replicas)
    "wait",
)


@dataclass(frozen=True)
class AclUser:
    """One Redis ACL user: its name and its rules, without the password."""

    name: str
    rules: tuple[str, ...]

    def line(self, password_hash: str) -> str:
        """ACL-file syntax (`aclfile`, or `user ...` in redis.conf)."""
        return " ".join(("user", self.name, "on", f"#{password_hash}", *self.rules))

    def setuser_args(self, password_hash: str) -> list[str]:
        """Arguments of ACL SETUSER: `reset` first, so no right of an older version stays."""
        return ["reset", "on", f"#{password_hash}", *self.rules]


def _commands(names: Iterable[str]) -> list[str]:
    return [f"+{n}" for n in names]


def _connect(db: int, cluster: bool = False) -> list[str]:
    return _commands(
        (*CONNECT, *(("select",) if db else ()), *(CLUSTER_CONNECT if cluster else ()))
    )


def adapter_user(prefix: str, network: str, db: int = 0, *, cluster: bool = False) -> AclUser:
    """Its inbox and outbox, each with its own commands; nothing else."""
    inbox = " ".join((f"(%RW~{wire.inbox(prefix, network)}", "-@all", *_commands(ADAPTER_INBOX)))
    outbox = " ".join((f"(%W~{wire.outbox(prefix, network)}", "-@all", *_commands(ADAPTER_OUTBOX)))
    return AclUser(
        ADAPTER_USER.format(network=network),
        (
            "resetkeys",
            "resetchannels",
            "-@all",
            *_connect(db, cluster),
            f"{inbox})",
            f"{outbox})",
        ),
    )


def gateway_user(prefix: str, db: int = 0, *, cluster: bool = False) -> AclUser:
    """Every key and channel under the prefix; the commands the gateway calls."""
    return AclUser(
        GATEWAY_USER,
        (
            "resetkeys",
            f"~{prefix}:*",
            "resetchannels",
            f"&{prefix}:*",
            "-@all",
            *_connect(db, cluster),
            *_commands(GATEWAY_COMMANDS),
        ),
    )


def users_for(settings: Settings, all_networks: bool = False) -> list[AclUser]:
    """The gateway's user, then one per network with `mode = "edge"` (every network with
    `all_networks`). Prefix, database and whether it is a cluster come from `[redis]`;
    prefixes and network ids are slugs (a prefix maybe in braces, which are no glob
    characters), so no glob character can widen a pattern."""
    link = settings.redis
    networks = [n.id for n in settings.networks if all_networks or n.mode == "edge"]
    return [
        gateway_user(link.prefix, link.db, cluster=link.cluster),
        *(adapter_user(link.prefix, n, link.db, cluster=link.cluster) for n in networks),
    ]


def password_hash(password: str) -> str:
    """The form Redis stores and ACL files carry (`#<sha256 hex>`), not the password."""
    return hashlib.sha256(password.encode()).hexdigest()


def new_password() -> str:
    return secrets.token_hex(32)  # 256 bits; hex: nothing a shell or an ACL line trips on


def read_password(path: Path) -> str:
    """The first line of a password file; errors name the file, never its content."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "unreadable"
        raise ValueError(f"{path}: cannot read the password ({reason})") from None
    value = lines[0].strip() if lines else ""
    if not value:
        raise ValueError(f"{path}: empty password file")
    return value


def write_password(path: Path, password: str) -> None:
    """Mode 600 from the start; never over an existing file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(password + "\n")


@dataclass(frozen=True)
class Credential:
    user: AclUser
    password_hash: str
    generated: str | None = field(default=None, repr=False)  # new: shown once; None: a file
    written_to: Path | None = None


def credentials(
    users: list[AclUser],
    given: Mapping[str, Path],
    password_dir: Path | None,
) -> list[Credential]:
    """Each user's password: from its file in `given`; else `<password_dir>/<user>.password`
    (kept when it exists, else generated and written there, mode 600); else generated."""
    unknown = sorted(set(given) - {u.name for u in users})
    if unknown:
        raise ValueError(
            f"--password-file names unknown user(s) {', '.join(unknown)}; the users are: "
            f"{', '.join(u.name for u in users)}"
        )
    out: list[Credential] = []
    for user in users:
        if user.name in given:
            out.append(Credential(user, password_hash(read_password(given[user.name]))))
            continue
        if password_dir is not None:
            path = password_dir / f"{user.name}.password"
            if path.exists():
                out.append(Credential(user, password_hash(read_password(path))))
                continue
            password = new_password()
            password_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_password(path, password)
            out.append(Credential(user, password_hash(password), written_to=path))
            continue
        password = new_password()
        out.append(Credential(user, password_hash(password), generated=password))
    return out


async def apply(client: Redis, creds: list[Credential]) -> str:
    """ACL SETUSER each user (from `reset`), then ACL SAVE when the server has an ACL file.
    Returns a sentence on what was saved."""
    for cred in creds:
        args = cred.user.setuser_args(cred.password_hash)
        await client.execute_command("ACL", "SETUSER", cred.user.name, *args)  # type: ignore[no-untyped-call]
    try:
        await client.acl_save()
    except ResponseError as exc:
        if "acl file" not in str(exc).lower():
            raise
        return (
            "the server has no ACL file: the users last until it restarts; add the printed "
            "rules to its ACL file (aclfile) or redis.conf"
        )
    return "saved to the server's ACL file (ACL SAVE)"


async def default_user_open(client: Redis) -> bool:
    """Whether the `default` user is on without a password (every right, for anyone)."""
    try:
        info = await client.acl_getuser("default")
    except ResponseError:
        return False
    if not info:
        return False
    flags = info.get("flags")
    if not isinstance(flags, list):
        return False
    names = {f.decode() if isinstance(f, bytes) else str(f) for f in flags}
    return "on" in names and "nopass" in names
