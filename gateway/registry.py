"""The camera registry in Redis: one JSON value per camera, index sets, a version counter.

Layout (prefix `camgw`):
    camgw:cam:{id}                  the record, JSON (served as stored: no credentials inside)
    camgw:cred:{id}                 its credentials, sealed by the vault (never served)
    camgw:idx:all                   every id
    camgw:idx:{field}:{value}       ids by network, status, category and department
    camgw:addr                      hash site -> id: one camera per place it answers, a site
                                    being network, address, port and channel (identity.py)
    camgw:ident                     hash identity -> id: adapter ref, endpoint reference,
                                    serial+MAC (with the channel for an NVR's cameras)
    camgw:claims                    hash id -> the site and identities its record claimed
    camgw:version                   bumped by every change; list bodies are cached per version
    camgw:netversion                hash network -> its own version (bumped with its changes)
    camgw:changes                   stream: per version, the id it changed (the newest ~20,000;
                                    the catalog reads only what changed since its snapshot)
    camgw:credfp:{network}          hash id -> the keyed fingerprint of the credentials that
                                    last read the camera (discovery.py; never served, never
                                    the credentials); removed with the record
    camgw:events                    pub/sub: "version N" after each change, "tokens" on revocation

Every write is one Lua script, so a crash (even SIGKILL between commands) never leaves an index
pointing at nothing and a registry version never describes half a change. Every record written,
by any path (API, import, discovery, health, snapshots), first passes `check_camera` against the
configuration, and the script refuses to move a record to another network.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial

import orjson
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import ResponseError

from adapters.gil import off_the_loop
from adapters.redis_link import replicated
from adapters.uris import UriCredentials

from . import identity
from .audit import AuditEvent, AuditLog
from .audit_chain import Head, Position, head_error, must_wait
from .errors import (
    Conflict,
    FieldError,
    Invalid,
    NotFound,
    StaleLease,
    Unavailable,
    redis_errors,
)
from .lease import Fence
from .lua import source
from .models import Camera, LifecycleChange
from .records import check_camera, input_field
from .settings import Settings
from .vault import CredentialVault

GEO_MAX_LAT = 85.05112878  # Redis GEO's latitude range (Web Mercator's)
_MGET_CHUNK = 1000
MAX_CHANGES = 5000  # more changes than this since a snapshot: the catalog loads everything
CHANGES_KEPT = 100_000  # the change log's length (MAXLEN ~ in upsert.lua, delete.lua, health.lua)
_CHANGES_READ = 256  # changes read with the version (a catalog usually trails by a few)
_CHANGES_PAGE = 2000  # then this many per read
_PIPELINE_CHUNK = 50  # creates per pipeline: packing its commands holds the loop (~5 ms for 50)
_CHAIN_ROUNDS = 100  # pipelined creates re-sent after another writer moved the audit head
_FP_CHUNK = 500  # fingerprints remembered per script call
_PROBED_CHUNK = 100  # health writes per script call (~5 ms of Redis's time each)


class CredentialChange(enum.Enum):
    keep = ""
    set = "set"
    clear = "clear"


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str

    def cam(self, cam_id: str) -> str:
        return f"{self.prefix}:cam:{cam_id}"

    def cred(self, cam_id: str) -> str:
        return f"{self.prefix}:cred:{cam_id}"

    def idx(self, field: str, value: str) -> str:
        return f"{self.prefix}:idx:{field}:{value}"

    @property
    def all(self) -> str:
        return f"{self.prefix}:idx:all"

    @property
    def addr(self) -> str:
        return f"{self.prefix}:addr"

    @property
    def ident(self) -> str:
        return f"{self.prefix}:ident"

    @property
    def claims(self) -> str:
        return f"{self.prefix}:claims"

    @property
    def version(self) -> str:
        return f"{self.prefix}:version"

    @property
    def changes(self) -> str:
        return f"{self.prefix}:changes"

    @property
    def netversion(self) -> str:
        return f"{self.prefix}:netversion"

    @property
    def events(self) -> str:
        return f"{self.prefix}:events"

    def status_history(self, network: str) -> str:
        return f"{self.prefix}:history:status:{network}"

    def geo(self, network: str) -> str:
        return f"{self.prefix}:geo:{network}"

    def lifecycle(self, cam_id: str) -> str:
        return f"{self.prefix}:lifecycle:{cam_id}"

    def credfp(self, network: str) -> str:
        return f"{self.prefix}:credfp:{network}"


@dataclass(frozen=True, slots=True)
class Found:
    """What `Registry.find` found: the camera's record id, or a device displaced from the
    site (another device answers there now)."""

    id: str | None
    displaced: str | None = None


@dataclass(frozen=True, slots=True)
class Loaded:
    """Everything the catalog serves, as of one registry version."""

    version: int
    network_versions: dict[str, int]
    records: list[bytes]


@dataclass(frozen=True, slots=True)
class Changed:
    """The records changed since a version, as of a newer one (None: deleted)."""

    version: int
    network_versions: dict[str, int]
    records: dict[str, bytes | None]


@dataclass(frozen=True, slots=True)
class ProbedWrite:
    """One record as a health probe leaves it (gateway/discovery.py: `probed_record`)."""

    cam_id: str
    rev: int  # the stored record's, which the write expects
    record: bytes  # the new record's JSON (rev + 1)
    status: str
    error: str  # its last_error ('' for none), for the status history
    was: str  # the status of the stored record (at `rev`)


class Registry:
    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        vault: CredentialVault,
        audit: AuditLog,
    ) -> None:
        self.redis = redis
        self.settings = settings
        # A change's audit entry is written by the change's own script, sealed into the chain
        # by the same sequencer as every other entry of this process.
        self._chain = audit.chain
        self.keys = Keys(settings.redis.prefix)
        self._vault = vault
        self.id_key = vault.derive("camgw camera ids v1")  # generated ids nobody can predict
        self._upsert = redis.register_script(source("upsert.lua"))
        self._delete = redis.register_script(source("delete.lua"))
        self._remember = redis.register_script(source("credfp.lua"))
        self._health = redis.register_script(source("health.lua"))
        # Called with a deleted camera's id, after its record went: what others keep of it
        # (the quality references and signature, gateway/quality_refs.py) goes too.
        self.on_delete: list[Callable[[str], Awaitable[None]]] = []

    async def version(self) -> int:
        with redis_errors():
            return int(await self.redis.get(self.keys.version) or 0)

    async def network_version(self, network: str) -> int:
        """`network`'s own version: it moves with each change of one of its cameras."""
        with redis_errors():
            return int(await self.redis.hget(self.keys.netversion, network) or 0)

    async def get_raw(self, cam_id: str) -> bytes | None:
        with redis_errors():
            raw = await self.redis.get(self.keys.cam(cam_id))
        return _bytes(raw) if raw is not None else None

    async def get(self, cam_id: str) -> Camera | None:
        raw = await self.get_raw(cam_id)
        return Camera.model_validate_json(raw) if raw else None

    async def get_many(self, cam_ids: Sequence[str]) -> list[Camera | None]:
        """The records of `cam_ids`, in their order (None where there is none), MGET in
        chunks."""
        raws = await self._records([self.keys.cam(i) for i in cam_ids])
        return [Camera.model_validate_json(raw) if raw else None for raw in raws]

    async def _records(self, keys: Sequence[str]) -> list[bytes | None]:
        """The records at `keys`, MGET _MGET_CHUNK at a time (each chunk its own turn of the
        event loop)."""
        out: list[bytes | None] = []
        for at in range(0, len(keys), _MGET_CHUNK):
            with redis_errors():
                raws = await self.redis.mget(keys[at : at + _MGET_CHUNK])
            out += [_bytes(r) if r is not None else None for r in raws]
        return out

    async def all_worked_credentials(self, network: str) -> dict[str, str]:
        """id -> the fingerprint of the credentials that last read the camera, for every camera
        of the network that has one (one call: a discovery reads them when it starts)."""
        with redis_errors():
            raw = await self.redis.hgetall(self.keys.credfp(network))
        return {_text(k): _text(v) for k, v in raw.items()}

    async def worked_credentials(self, network: str, cam_id: str) -> str | None:
        """The fingerprint of the credentials that last read the camera (None: none ever did,
        as far as the registry knows)."""
        with redis_errors():
            fp = await self.redis.hget(self.keys.credfp(network), cam_id)
        return _text(fp) if fp else None

    async def remember_credentials(self, items: list[tuple[str, str, str]]) -> list[int]:
        """(network, id, fingerprint) of cameras just read: kept for those whose record still
        exists (one deleted meanwhile leaves none). Returns, per item, 1 if kept, else 0."""
        out: list[int] = []
        with redis_errors():
            for start in range(0, len(items), _FP_CHUNK):
                chunk = items[start : start + _FP_CHUNK]
                args = [self.keys.prefix, *(x for item in chunk for x in item)]
                kept = await self._remember(keys=[], args=args)
                out.extend(int(k) for k in kept)
        return out

    async def find(self, keys: identity.Keys, bare: str | None = None) -> Found:
        """The camera a discovered device (or one of its channels) is: by identity (its
        adapter's ref, endpoint reference, serial+MAC), else by where it answers (its site,
        then `bare`: a record registered by address alone). A camera that moved keeps its
        record. A device found where another device with an identity of its own answered is
        not that camera: the other is returned as displaced, and this one is new. Every key
        is scoped by the network: discovery of one network finds only its own."""
        sites = [k for k in (keys.site, bare) if k]
        with redis_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                if keys.identities:
                    pipe.hmget(self.keys.ident, list(keys.identities))
                if sites:
                    pipe.hmget(self.keys.addr, sites)
                replies = await pipe.execute()
        by_identity = [_text(i) for i in (replies[0] if keys.identities else []) if i]
        if by_identity:
            return Found(by_identity[0])
        holder = next((_text(i) for i in (replies[-1] if sites else []) if i), None)
        if holder is None or not keys.strong:
            return Found(holder)
        there = await self.get(holder)
        theirs = identity.of_camera(there).strong if there else ()
        if theirs and not set(theirs) & set(keys.strong):
            return Found(None, displaced=holder)
        return Found(holder)

    async def load_all(self) -> Loaded:
        """The versions first, then every record (in no particular order): the records are at
        least that new. In chunks, so that 100,000 records never hold the event loop long."""
        with redis_errors():
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.get(self.keys.version)
                pipe.hgetall(self.keys.netversion)
                version, per_network = await pipe.execute()
            # SSCAN: every id present throughout is returned (some maybe twice, deduplicated by
            # the catalog), ids added meanwhile are newer than `version` anyway.
            raws: list[bytes] = []
            cam = self.keys.cam("").encode()  # the key prefix, joined as bytes: no decoding
            cursor: int = 0
            while True:
                cursor, ids = await self.redis.sscan(self.keys.all, cursor, count=_MGET_CHUNK)
                if ids:
                    keys = [cam + _bytes(i) for i in ids]
                    raws.extend(_bytes(r) for r in await self.redis.mget(keys) if r is not None)
                if cursor == 0:
                    break
        networks = {_text(k): int(v) for k, v in per_network.items()}
        return Loaded(int(version or 0), networks, raws)

    async def changes_since(self, version: int, most: int = MAX_CHANGES) -> Changed | None:
        """The records changed after `version`, or None when they cannot all be told (more
        than `most` changes, or the change log no longer reaches back that far: then load
        everything). Each version's change is logged by the script that made it, so the
        versions after `version` are all there unless trimmed, and counting them proves it."""
        with redis_errors():
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.get(self.keys.version)
                pipe.hgetall(self.keys.netversion)
                pipe.xrevrange(self.keys.changes, count=_CHANGES_READ)
                now, per_network, log = await pipe.execute()
            now = int(now or 0)
            if now - version > most or now < version:
                return None
            ids: dict[str, None] = {}
            seen = 0
            # Newest first, page by page, until past `version` (a district's first health round
            # is tens of thousands of changes: one reply of them all was parsed in one go on the
            # event loop). Changes newer than `now` may lead: they are skipped.
            page = log
            while True:
                for _, fields in page:
                    v = int(fields[b"v"])
                    if version < v <= now:
                        seen += 1
                        ids[_text(fields[b"id"])] = None
                done = seen == now - version or not page or int(page[-1][1][b"v"]) <= version
                if done or len(page) < (_CHANGES_READ if page is log else _CHANGES_PAGE):
                    break
                upper = b"(" + _bytes(page[-1][0])
                page = await self.redis.xrevrange(self.keys.changes, upper, "-", _CHANGES_PAGE)
            if seen != now - version:
                return None
            cam = self.keys.cam("")
            raws = await self._records([cam + i for i in ids])  # (a rebuild may apply thousands)
        records = dict(zip(ids, raws, strict=True))
        networks = {_text(k): int(v) for k, v in per_network.items()}
        return Changed(now, networks, records)

    def check(self, camera: Camera, creds: UriCredentials | None = None) -> None:
        """The rules every stored record obeys (known network and category, addresses and URIs
        on the camera's own address, no credentials held for an edge network's camera: those
        live only in its adapter); raises Invalid naming the input field."""
        errors = check_camera(self.settings, camera)
        network = self.settings.network_by_id.get(camera.network)
        if (creds is not None or camera.has_credentials) and network and network.mode == "edge":
            message = f"network {camera.network!r} keeps its cameras' credentials in its adapter"
            errors.append(FieldError("credentials", message))
        if errors:
            raise Invalid([FieldError(input_field(e.field), e.message) for e in errors])

    async def create(
        self,
        camera: Camera,
        creds: UriCredentials | None = None,
        audit: AuditEvent | None = None,
        *,
        takeover: bool = False,
        fence: Fence | None = None,
    ) -> int:
        """`takeover`: the camera takes its site from a device that no longer answers there
        (discovery, after `find` said so). `fence`: written under that lease, refused
        (StaleLease) once it has passed to another replica."""
        self.check(camera, creds)
        change = CredentialChange.set if creds else CredentialChange.keep
        args = self._upsert_args(camera, "create", None, change, creds, takeover, fence, audit)
        return await self._run(self._upsert, camera, args, audit)

    async def create_many(
        self, items: list[tuple[Camera, UriCredentials | None, AuditEvent | None]]
    ) -> list[int | Exception]:
        """Pipelined creates: each camera is its own atomic script; results in order (an
        Invalid for a record that breaks the config's rules, never sent)."""
        results: list[int | Exception] = []
        for start in range(0, len(items), _PIPELINE_CHUNK):
            chunk = items[start : start + _PIPELINE_CHUNK]
            prepare = partial(self._create_args, chunk)
            # (checks, JSON and sealed credentials: ~20 ms of CPU a chunk, not on the loop)
            outcome, args = await off_the_loop(len(chunk) > 20, prepare)
            todo = list(args)
            for attempt in range(_CHAIN_ROUNDS):
                if not todo:
                    break
                todo = await self._create_round(chunk, args, todo, outcome, attempt)
            for i in todo:
                outcome[i] = Unavailable("the audit trail kept moving; retry")
            results.extend(outcome[i] for i in range(len(chunk)))
        return results

    def _create_args(
        self, chunk: list[tuple[Camera, UriCredentials | None, AuditEvent | None]]
    ) -> tuple[dict[int, int | Exception], dict[int, list[str | bytes]]]:
        """Each create's script arguments, or why it is refused before it is sent."""
        outcome: dict[int, int | Exception] = {}
        args: dict[int, list[str | bytes]] = {}
        for i, (cam, creds, _) in enumerate(chunk):
            try:
                self.check(cam, creds)
            except Invalid as exc:
                outcome[i] = exc
                continue
            change = CredentialChange.set if creds else CredentialChange.keep
            args[i] = self._upsert_args(cam, "create", None, change, creds)
        return outcome, args

    async def _create_round(
        self,
        chunk: list[tuple[Camera, UriCredentials | None, AuditEvent | None]],
        args: dict[int, list[str | bytes]],
        todo: list[int],
        outcome: dict[int, int | Exception],
        attempt: int,
    ) -> list[int]:
        """One pipeline of creates, each audit entry sealed after the one before it. The scripts
        check the head after their own checks, so a create refused for its own reason (409)
        is answered as such; the audited creates after it, sealed after an entry that was not
        written, are refused with HEAD and return to be sent again (the next round), as are
        creates asked to WAIT while another writer has the chain's turn."""
        retry: list[int] = []
        audited = any(chunk[i][2] is not None for i in todo)
        with redis_errors():
            async with contextlib.AsyncExitStack() as stack:
                pos: Position | None = None
                if audited:
                    pos = await stack.enter_async_context(self._chain.turn())
                raw, at = (pos.raw, pos.head) if pos else ("", Head(0, ""))
                after: dict[int, tuple[str, Head]] = {}
                async with self.redis.pipeline(transaction=False) as pipe:
                    for i in todo:
                        cam, _, audit = chunk[i]
                        tail: list[str] = []
                        if audit is not None:
                            entries, new = self._chain.seal(at, [audit.fields()])
                            tail = [*self._chain.args(raw, new), *entries[0]]
                            raw, at = new.encode(), new
                            after[i] = (raw, at)
                        await self._upsert(
                            keys=self._keys(cam.id), args=[*args[i], *tail], client=pipe
                        )
                    replies = await pipe.execute(raise_on_error=False)
                moved: object = None
                wait = False
                for i, reply in zip(todo, replies, strict=True):
                    if head_error(reply) is not None:
                        retry.append(i)
                        moved = reply
                        wait = wait or must_wait(reply)
                    elif isinstance(reply, Exception):
                        outcome[i] = _translate(reply, chunk[i][0])
                    else:
                        outcome[i] = int(reply)
                        if pos is not None and i in after:
                            pos.raw, pos.head = after[i]
                if pos is not None and isinstance(moved, BaseException):
                    await self._chain.moved(pos, moved, attempt, wait=wait)
        return retry

    async def replace(
        self,
        camera: Camera,
        expected_rev: int,
        change: CredentialChange = CredentialChange.keep,
        creds: UriCredentials | None = None,
        audit: AuditEvent | None = None,
        *,
        fence: Fence | None = None,
    ) -> int:
        self.check(camera, creds)
        change = _following_the_flag(camera, change)
        args = self._upsert_args(
            camera, "update", expected_rev, change, creds, fence=fence, audit=audit
        )
        return await self._run(self._upsert, camera, args, audit)

    async def replace_many(
        self, items: Sequence[tuple[Camera, int]], *, fence: Fence | None = None
    ) -> list[int | Exception]:
        """Background rewrites of existing records (camera, expected rev), their credentials
        kept, one pipeline per _PIPELINE_CHUNK: the version each was written at, or the error
        that refused it (Conflict when it changed meanwhile, StaleLease when `fence` has
        passed). Not audited and not waited for by replicas: the round that wrote them writes
        them again (a user's write goes through `replace`)."""
        out: dict[int, int | Exception] = {}
        for at in range(0, len(items), _PIPELINE_CHUNK):
            sent: list[int] = []
            with redis_errors():
                async with self.redis.pipeline(transaction=False) as pipe:
                    for i, (camera, rev) in enumerate(items[at : at + _PIPELINE_CHUNK], at):
                        try:  # (a record that breaks a rule is refused alone, not its batch)
                            self.check(camera)
                        except Invalid as exc:
                            out[i] = exc
                            continue
                        change = _following_the_flag(camera, CredentialChange.keep)
                        args = self._upsert_args(camera, "update", rev, change, None, fence=fence)
                        await self._upsert(keys=self._keys(camera.id), args=args, client=pipe)
                        sent.append(i)
                    replies = await pipe.execute(raise_on_error=False) if sent else []
            for i, reply in zip(sent, replies, strict=True):
                camera = items[i][0]
                out[i] = _translate(reply, camera) if isinstance(reply, Exception) else int(reply)
        return [out[i] for i in range(len(items))]

    async def write_probed(
        self,
        network: str,
        writes: Sequence[ProbedWrite],
        updated_at: str,
        fence: Fence | None = None,
    ) -> list[int]:
        """A health round's records of `network`, many per script call (health.lua): the
        version each was written at, 0 where it was not (gone or changed meanwhile: the next
        round writes it again). A round writes up to every camera of a district at once; one
        upsert each, with its model validated and its claims worked out again, was a
        millisecond of the gateway's CPU per camera. Raises StaleLease when `fence` has
        passed (nothing of that call written)."""
        history = self.settings.history
        head: list[str | bytes] = [
            self.keys.prefix,
            network,
            orjson.dumps([fence.key, fence.value]) if fence is not None else "",
            orjson.dumps([history.status_days * 86_400_000, history.status_max_entries]),
            updated_at,
        ]
        out: list[int] = []
        for at in range(0, len(writes), _PROBED_CHUNK):
            args = list(head)
            for w in writes[at : at + _PROBED_CHUNK]:
                args += [w.cam_id, str(w.rev), w.record, w.status, w.error, w.was]
            with redis_errors():
                try:
                    async with replicated(self.redis, self.settings.redis) as conn:
                        done = await self._health(keys=[self.keys.version], args=args, client=conn)
                except ResponseError as exc:
                    if str(exc).startswith("FENCE"):
                        raise StaleLease(
                            f"health of {network} not written: this replica's lease has passed "
                            f"to another (fence now {str(exc).split(' ', 1)[1]})"
                        ) from exc
                    raise
            out += [int(v) for v in done]
        return out

    async def delete(self, cam_id: str, audit: AuditEvent | None = None) -> int:
        args: list[str | bytes] = [self.keys.prefix, cam_id]
        with redis_errors():
            version = await self._audited(self._delete, self._keys(cam_id), args, audit)
        if version == 0:
            raise NotFound(f"camera {cam_id} not found")
        for hook in self.on_delete:
            await hook(cam_id)
        return version

    async def near(
        self, networks: Iterable[str], lat: float, lon: float, radius_m: float, count: int
    ) -> list[tuple[str, float]]:
        """Cameras of `networks` within `radius_m` of the point, nearest first, at most `count`
        per network: (id, metres)."""
        names = list(networks)
        with redis_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                for network in names:
                    pipe.geosearch(
                        self.keys.geo(network),
                        longitude=lon,
                        latitude=lat,
                        radius=radius_m,
                        unit="m",
                        sort="ASC",
                        count=count,
                        withdist=True,
                    )
                replies = await pipe.execute()
        hits = [(_text(i), float(d)) for reply in replies for i, d in reply]
        return sorted(hits, key=lambda h: h[1])

    async def index_locations(self) -> int:
        """Every record's location into the GEO indexes (records written before they existed);
        idempotent. Returns how many cameras have a location."""
        loaded = await self.load_all()
        placed = await asyncio.to_thread(_placements, loaded.records)
        with redis_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                for network, items in placed.items():
                    for start in range(0, len(items), 3 * _PIPELINE_CHUNK):
                        chunk = items[start : start + 3 * _PIPELINE_CHUNK]
                        pipe.execute_command("GEOADD", self.keys.geo(network), *chunk)
                pipe.set(f"{self.keys.prefix}:geo:indexed", "1")
                await pipe.execute()
        return sum(len(v) // 3 for v in placed.values())

    async def lifecycle_changes(self, cam_id: str, limit: int = 1000) -> list[LifecycleChange]:
        """The camera's lifecycle changes, newest first (written by upsert.lua)."""
        with redis_errors():
            raw = await self.redis.lrange(self.keys.lifecycle(cam_id), 0, limit - 1)
        out = []
        for item in raw:
            d = orjson.loads(item)
            out.append(
                LifecycleChange(
                    previous=d["from"] or None, state=d["to"], at=d["at"], actor=d["actor"]
                )
            )
        return out

    async def credentials(self, cam_id: str) -> UriCredentials | None:
        with redis_errors():
            sealed = await self.redis.get(self.keys.cred(cam_id))
        return self._vault.open(cam_id, _bytes(sealed)) if sealed else None

    def _keys(self, cam_id: str) -> list[str]:
        k = self.keys
        return [k.cam(cam_id), k.all, k.addr, k.version, k.cred(cam_id), k.ident, k.claims]

    async def _run(
        self,
        script: AsyncScript,
        camera: Camera,
        args: list[str | bytes],
        audit: AuditEvent | None,
    ) -> int:
        with redis_errors():
            try:
                return await self._audited(script, self._keys(camera.id), args, audit)
            except ResponseError as exc:
                raise _translate(exc, camera) from exc

    async def _audited(
        self,
        script: AsyncScript,
        keys: list[str],
        args: list[str | bytes],
        audit: AuditEvent | None,
    ) -> int:
        """Run a registry script; with an audit entry, sealed by the chain's sequencer after
        the current head (the script appends it only if that is still the head, and it is
        sealed again after the head another writer left)."""

        async def send(chain: list[str], entries: list[list[str]]) -> int:
            tail = [*chain, *entries[0]] if entries else []
            # With [redis] replicas_to_ack, the write is acknowledged only once that many
            # replicas have it (WAIT on the connection that wrote; else NotReplicated: a 503).
            async with replicated(self.redis, self.settings.redis) as conn:
                return int(await script(keys=keys, args=[*args, *tail], client=conn))

        if audit is None:
            return await send([], [])
        return await self._chain.append([audit.fields()], send)

    def _upsert_args(
        self,
        camera: Camera,
        mode: str,
        expected_rev: int | None,
        change: CredentialChange,
        creds: UriCredentials | None,
        takeover: bool = False,
        fence: Fence | None = None,
        audit: AuditEvent | None = None,
    ) -> list[str | bytes]:
        sealed = self._vault.seal(camera.id, creds) if creds else b""
        claims = identity.of_camera(camera)
        history = self.settings.history
        script_claims: dict[str, object] = {
            "idents": claims.identities,
            "takeover": takeover,
            "history": [history.status_days * 86_400_000, history.status_max_entries],
            # A change of lifecycle is kept with who made it (the audited actor).
            "lifecycle": camera.lifecycle.value,
            "actor": audit.actor if audit else "",
        }
        loc = camera.location
        if loc is not None and abs(loc.lat) <= GEO_MAX_LAT:  # Redis GEO stops short of the poles
            script_claims["geo"] = [loc.lon, loc.lat]
        if fence is not None:
            script_claims["fence"] = [fence.key, fence.value]
        return [
            self.keys.prefix,
            camera.id,
            camera.model_dump_json(),
            mode,
            "" if expected_rev is None else str(expected_rev),
            camera.network,
            camera.status.value,
            camera.category,
            camera.department,
            claims.site or "",
            change.value,
            sealed,
            orjson.dumps(script_claims),
        ]

    async def integrity_problems(self) -> list[str]:
        """Index members and address entries that point at no record (should always be empty)."""
        problems: list[str] = []
        with redis_errors():
            pattern = f"{self.keys.prefix}:idx:*"
            index_keys = [_text(k) async for k in self.redis.scan_iter(pattern)]
            for key in index_keys:
                for member in map(_text, await self.redis.smembers(key)):
                    if not await self.redis.exists(self.keys.cam(member)):
                        problems.append(f"{key} -> {member}")
            for key in (self.keys.addr, self.keys.ident):
                for field, cam_id in (await self.redis.hgetall(key)).items():
                    if not await self.redis.exists(self.keys.cam(_text(cam_id))):
                        problems.append(f"{key}[{_text(field)}] -> {_text(cam_id)}")
            for cam_id in map(_text, await self.redis.hkeys(self.keys.claims)):
                if not await self.redis.exists(self.keys.cam(cam_id)):
                    problems.append(f"{self.keys.claims}[{cam_id}] -> nothing")
            async for key in self.redis.scan_iter(self.keys.credfp("*")):
                for cam_id in map(_text, await self.redis.hkeys(key)):
                    if not await self.redis.exists(self.keys.cam(cam_id)):
                        problems.append(f"{_text(key)}[{cam_id}] -> nothing")
        return problems


def _placements(raws: list[bytes]) -> dict[str, list[object]]:
    """network -> GEOADD arguments (lon, lat, id, ...) of the records with a location."""
    placed: dict[str, list[object]] = {}
    for raw in raws:
        d = orjson.loads(raw)
        if (loc := d.get("location")) and abs(loc["lat"]) <= GEO_MAX_LAT:
            placed.setdefault(d["network"], []).extend([loc["lon"], loc["lat"], d["id"]])
    return placed


def _following_the_flag(camera: Camera, change: CredentialChange) -> CredentialChange:
    """Kept credentials follow the record's flag: a record without them clears the stored."""
    if change is CredentialChange.keep and not camera.has_credentials:
        return CredentialChange.clear
    return change


def _translate(exc: Exception, camera: Camera) -> Exception:
    message = str(exc)
    if message.startswith("EXISTS"):
        return Conflict(f"camera {camera.id} already exists", field="id")
    if message.startswith("ADDRESS"):
        holder = message.split(" ", 1)[1]
        return Conflict(
            f"address {camera.address} on network {camera.network} belongs to camera {holder}",
            field="address",
        )
    if message.startswith("IDENTITY"):
        holder = message.split(" ", 1)[1]
        return Conflict(f"camera {holder} already has this identity", field="id")
    if message.startswith("NETWORK"):
        return Conflict(f"camera {camera.id} is on another network", field="network")
    if message.startswith("CONFLICT"):
        return Conflict(f"camera {camera.id} changed meanwhile; retry", field="rev")
    if message.startswith("NOTFOUND"):
        return NotFound(f"camera {camera.id} not found")
    if message.startswith("FENCE"):
        return StaleLease(
            f"camera {camera.id} not written: this replica's lease has passed to another "
            f"(fence now {message.split(' ', 1)[1]})"
        )
    return exc


def _bytes(value: bytes | str) -> bytes:
    """redis-py types replies as bytes | str; this client never decodes, so they are bytes."""
    return value if isinstance(value, bytes) else value.encode()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
