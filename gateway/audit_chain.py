"""The audit trail's hash chain: each entry carries `seq`, `prev` and `link`, where

    link = hex HMAC-SHA256(key, orjson([prev, seq, [[field, value], ...]]))

over the entry's own fields in stored order (`time` included), and `prev` is the link of the
entry before it (64 zeros for seq 1). The key is derived from the credential key file
(`CredentialVault.derive(CHAIN_PURPOSE)`): it never reaches Redis, so someone with Redis write
access can delete, add or change entries but cannot make the chain whole again.

Appends are ordered by an optimistic head: `<prefix>:audit:head` holds "seq link" of the last
entry; every script that appends receives the head its writer saw and the entries sealed after
it, and appends only if the head is unchanged, or answers `HEAD <current head>` and the writer
seals again. Within one process one lock serialises the writers (the group commit of the audit
log and the registry's scripts), so a retry happens only when another process wrote meanwhile.
So that a busy gateway cannot starve another (its next write always arriving first), a writer
refused for a stale head claims the next turn (`<prefix>:audit:turn`, a short-lived key): the
scripts of other writers answer `WAIT <head>` until the claimant has had its turn, and they
retry after a moment.

This module also holds the verifier (pure: entries in, the first break out) and the JSON Lines
format of archive segments and exports.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import orjson
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from .errors import Unavailable

CHAIN_PURPOSE = "camgw audit chain v1"
GENESIS_LINK = "0" * 64
CHAIN_FIELDS = ("seq", "prev", "link")
FILE_FORMAT = "camgw-audit/1"

_LINK = re.compile(r"^[0-9a-f]{64}$")
_HEAD = re.compile(r"^(\d{1,20}) ([0-9a-f]{64})$")
_PATIENCE_S = 5.0  # how long a writer keeps retrying before it answers 503
_FIRST_WAIT_S = 0.0005
_LONGEST_WAIT_S = 0.02

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Head:
    """A position in the chain: the last entry's seq and link (seq 0: nothing yet)."""

    seq: int
    link: str

    def encode(self) -> str:
        return f"{self.seq} {self.link}"

    @classmethod
    def parse(cls, raw: str) -> Head | None:
        match = _HEAD.match(raw)
        return cls(int(match.group(1)), match.group(2)) if match else None


GENESIS = Head(0, GENESIS_LINK)
GENESIS_RAW = GENESIS.encode()  # what the scripts compare with when the head key is missing


def pairs(flat: Sequence[str]) -> list[tuple[str, str]]:
    return [(flat[i], flat[i + 1]) for i in range(0, len(flat) - 1, 2)]


def canonical(prev: str, seq: int, content: Iterable[tuple[str, str]]) -> bytes:
    """Unambiguous bytes of what a link covers: a JSON array, so no field or value can be
    shifted into another."""
    return orjson.dumps([prev, seq, [[k, v] for k, v in content]])


def compute_link(key: bytes, prev: str, seq: int, content: Iterable[tuple[str, str]]) -> str:
    return hmac.digest(key, canonical(prev, seq, content), "sha256").hex()


def seal(key: bytes, at: Head, contents: Sequence[Sequence[str]]) -> tuple[list[list[str]], Head]:
    """Entries as XADD field/value lists (`seq`, `prev`, the content, `link`) chained after
    `at`, and the head after the last of them."""
    out: list[list[str]] = []
    seq, prev = at.seq, at.link
    for content in contents:
        seq += 1
        link = compute_link(key, prev, seq, pairs(content))
        out.append(["seq", str(seq), "prev", prev, *content, "link", link])
        prev = link
    return out, Head(seq, prev)


def head_error(exc: object) -> str | None:
    """The current head carried by a script's `HEAD <head>` or `WAIT <head>` refusal (nothing
    was written), or None for any other error."""
    if not isinstance(exc, ResponseError):
        return None
    message = str(exc)
    return message[5:] if message.startswith(("HEAD ", "WAIT ")) else None


def must_wait(exc: object) -> bool:
    return isinstance(exc, ResponseError) and str(exc).startswith("WAIT ")


@dataclass(slots=True)
class Position:
    """What the head key holds (`raw`, compared by the scripts) and where the next entry goes."""

    raw: str
    head: Head


class AuditChain:
    """One sequencer per process: every writer of audit entries seals and sends them holding
    `turn()`, so the cached head is right unless another process appended meanwhile."""

    def __init__(self, redis: Redis, stream_key: str, head_key: str, key: bytes) -> None:
        self.redis = redis
        self.stream_key = stream_key
        self.head_key = head_key
        self._key = key
        self._lock = asyncio.Lock()
        self._pos: Position | None = None
        self.writer = secrets.token_hex(8)  # names this sequencer's claim on the next turn
        self.retries = 0  # stale heads seen (another writer appended first)

    def args(self, expected: str, after: Head) -> list[str]:
        """What every appending script takes before its entries: the head they were sealed
        after (as stored), the head after them, and the writer (for the turn claim)."""
        return [expected, after.encode(), self.writer]

    def __repr__(self) -> str:
        return f"AuditChain({self.stream_key!r}, <key hidden>)"

    def seal(self, at: Head, contents: Sequence[Sequence[str]]) -> tuple[list[list[str]], Head]:
        return seal(self._key, at, contents)

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[Position]:
        """Exclusive use of the head in this process. A script refused for another reason
        wrote nothing, so the cached position stays; any other failure (a lost reply) leaves
        the head unknown, and it is read again next time."""
        async with self._lock:
            if self._pos is None:
                self._pos = await self._load()
            try:
                yield self._pos
            except ResponseError:
                raise
            except BaseException:
                self._pos = None
                raise

    async def append(
        self,
        contents: Sequence[Sequence[str]],
        send: Callable[[list[str], list[list[str]]], Awaitable[T]],
    ) -> T:
        """Seal `contents` after the head and `send(self.args(...), entries)`; seal again after
        the head the script reports when another writer was first."""
        async with self.turn() as pos:
            deadline = asyncio.get_running_loop().time() + _PATIENCE_S
            attempt = 0
            while True:
                entries, after = self.seal(pos.head, contents)
                try:
                    result = await send(self.args(pos.raw, after), entries)
                except ResponseError as exc:
                    if not await self.moved(pos, exc, attempt, deadline):
                        raise
                    attempt += 1
                    continue
                pos.raw, pos.head = after.encode(), after
                return result

    async def moved(
        self,
        pos: Position,
        exc: BaseException,
        attempt: int = 0,
        deadline: float | None = None,
        wait: bool | None = None,
    ) -> bool:
        """Take the head a script reported (`HEAD`/`WAIT <head>`), after a pause when another
        writer has the turn (`wait`; by default: `exc` says WAIT); False if `exc` is another
        error. Past `deadline`: 503."""
        raw = head_error(exc)
        if raw is None:
            return False
        loop = asyncio.get_running_loop()
        if deadline is not None and loop.time() > deadline:
            raise Unavailable("the audit trail is too busy to append to; retry") from exc
        self.retries += 1
        if must_wait(exc) if wait is None else wait:
            await asyncio.sleep(min(_FIRST_WAIT_S * 2**attempt, _LONGEST_WAIT_S))
        pos.raw, pos.head = raw, await self._continue_from(raw)
        return True

    async def _load(self) -> Position:
        value = await self.redis.get(self.head_key)
        raw = _text(value) if value is not None else GENESIS_RAW
        return Position(raw, await self._continue_from(raw))

    async def _continue_from(self, raw: str) -> Head:
        """The head as stored; when it is missing or malformed, the last entry of the stream,
        so that the chain goes on from the entries that are there (`camgw audit verify` still
        reports the head as it found it)."""
        head = Head.parse(raw)
        if head is not None and head.seq > 0:
            return head
        rows = cast(
            list[tuple[bytes, dict[bytes, bytes]]],
            await self.redis.xrevrange(self.stream_key, "+", "-", count=1),
        )
        if not rows:
            return GENESIS
        last = ChainEntry.from_stream(rows[0][0], rows[0][1])
        if last.seq is None or last.link is None:
            return GENESIS
        return Head(last.seq, last.link)


# -- entries, as stored and as archived ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChainEntry:
    id: str  # stream id, "ms-seq"
    seq: int | None  # None: missing or malformed
    prev: str | None
    link: str | None
    content: list[tuple[str, str]]
    where: str  # for messages: "stream id 1701...-0" (and the file and line when archived)

    @classmethod
    def from_pairs(cls, entry_id: str, fields: Iterable[tuple[str, str]], where: str) -> ChainEntry:
        chain: dict[str, str] = {}
        content: list[tuple[str, str]] = []
        for key, value in fields:
            if key in CHAIN_FIELDS:
                chain[key] = value
            else:
                content.append((key, value))
        raw_seq = chain.get("seq", "")
        seq = int(raw_seq) if raw_seq.isdigit() and len(raw_seq) <= 20 else None
        prev, link = chain.get("prev", ""), chain.get("link", "")
        return cls(
            entry_id,
            seq,
            prev if _LINK.match(prev) else None,
            link if _LINK.match(link) else None,
            content,
            where,
        )

    @classmethod
    def from_stream(cls, raw_id: bytes | str, raw: dict[bytes, bytes]) -> ChainEntry:
        entry_id = _text(raw_id)
        fields = ((_text(k), _text(v)) for k, v in raw.items())
        return cls.from_pairs(entry_id, fields, f"stream id {entry_id}")

    def line(self) -> dict[str, Any]:
        """The entry as one JSON Lines record: `fields` is exactly what the link covers."""
        return {
            "id": self.id,
            "seq": self.seq,
            "prev": self.prev,
            "link": self.link,
            "fields": [[k, v] for k, v in self.content],
        }

    @classmethod
    def from_line(cls, data: object, where: str) -> ChainEntry:
        if not isinstance(data, dict):
            return cls("", None, None, None, [], where)
        fields = data.get("fields")
        content = (
            [(str(f[0]), str(f[1])) for f in fields if isinstance(f, list) and len(f) == 2]
            if isinstance(fields, list)
            else []
        )
        chain = [(k, str(data[k])) for k in CHAIN_FIELDS if data.get(k) is not None]
        entry = cls.from_pairs(str(data.get("id", "")), [*chain, *content], where)
        return entry


def stream_id(text: str) -> tuple[int, int]:
    ms, _, seq = text.partition("-")
    return (int(ms), int(seq or 0)) if ms.isdigit() and (seq or "0").isdigit() else (0, 0)


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


# -- verification -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Break:
    """The first broken or missing link: its seq and one sentence saying what is wrong."""

    seq: int
    sentence: str


class Verifier:
    """Feed entries in chain order; the first problem is kept and later entries are ignored."""

    def __init__(self, key: bytes, start: Head = GENESIS) -> None:
        self._key = key
        self.last = start
        self.first: int | None = None
        self.count = 0
        self.broken: Break | None = None

    def feed(self, e: ChainEntry) -> Break | None:
        if self.broken is None:
            self.broken = self._check(e)
            if self.broken is None:
                self.last = Head(cast(int, e.seq), cast(str, e.link))
                self.first = self.first if self.first is not None else e.seq
                self.count += 1
        return self.broken

    def _check(self, e: ChainEntry) -> Break | None:
        expected = self.last.seq + 1
        if e.seq is None or e.prev is None or e.link is None:
            return Break(
                expected,
                f"broken at seq {expected} ({e.where}): the entry has no valid seq/prev/link",
            )
        if e.seq > expected:
            after = f"seq {self.last.seq}" if self.last.seq else "the start of the chain"
            return Break(expected, f"missing entries: seq {e.seq} ({e.where}) follows {after}")
        if e.seq < expected:
            return Break(
                expected,
                f"broken at seq {expected} ({e.where}): the entry there claims seq {e.seq}, "
                f"which repeats or goes back",
            )
        if not hmac.compare_digest(e.prev, self.last.link):
            before = f"seq {self.last.seq}" if self.last.seq else "the chain's start"
            return Break(
                e.seq,
                f"broken at seq {e.seq} ({e.where}): its prev does not match the link of {before}",
            )
        if not hmac.compare_digest(e.link, compute_link(self._key, e.prev, e.seq, e.content)):
            return Break(
                e.seq,
                f"broken at seq {e.seq} ({e.where}): the entry's content does not match its link",
            )
        return None

    def end_at(self, head: Head | None, what: str) -> Break | None:
        """The chain must end where `what` (the head key, a file's header) says it does."""
        if self.broken is not None:
            return self.broken
        last = self.last
        if head is None:
            self.broken = Break(
                last.seq + 1, f"{what} is missing or malformed (the entries end at seq {last.seq})"
            )
        elif head.seq > last.seq:
            self.broken = Break(
                last.seq + 1,
                f"missing entries: {what} names seq {head.seq} but the entries end at "
                f"seq {last.seq}",
            )
        elif head.seq < last.seq:
            self.broken = Break(
                head.seq + 1,
                f"broken at seq {head.seq + 1}: {what} names seq {head.seq} but the entries go on "
                f"to seq {last.seq}",
            )
        elif not hmac.compare_digest(head.link, last.link):
            self.broken = Break(
                last.seq, f"broken at seq {last.seq}: {what} does not match the link of that entry"
            )
        return self.broken

    def summary(self) -> str:
        if self.count == 0:
            return f"audit trail intact: 0 entries, head {self.last.link} (seq {self.last.seq})"
        return (
            f"audit trail intact: {self.count} entries, seq {self.first}..{self.last.seq}, "
            f"head {self.last.link}"
        )
