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

The pure parts (the canonical encoding, `compute_link`, `seal`, `Head`, `ChainEntry` and the
verifier: entries in, the first break out) live in `adapters/chain.py`, shared with the edge
adapter's own log, and are re-exported here; this module keeps what is the gateway's: the Redis
sequencer, the turn claims and reading the head and the stream.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar, cast

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from adapters.chain import (
    CHAIN_FIELDS,
    GENESIS,
    GENESIS_LINK,
    Break,
    ChainEntry,
    Head,
    Verifier,
    canonical,
    compute_link,
    pairs,
    seal,
    verify_entries,
)
from adapters.chain import text as _text

from .errors import Unavailable

__all__ = [
    "CHAIN_FIELDS",
    "CHAIN_PURPOSE",
    "FILE_FORMAT",
    "GENESIS",
    "GENESIS_LINK",
    "GENESIS_RAW",
    "AuditChain",
    "Break",
    "ChainEntry",
    "Head",
    "Position",
    "Verifier",
    "canonical",
    "compute_link",
    "head_error",
    "must_wait",
    "pairs",
    "seal",
    "stream_id",
    "verify_entries",
]

CHAIN_PURPOSE = "camgw audit chain v1"
FILE_FORMAT = "camgw-audit/1"

_PATIENCE_S = 5.0  # how long a writer keeps retrying before it answers 503
_FIRST_WAIT_S = 0.0005
_LONGEST_WAIT_S = 0.02

T = TypeVar("T")

GENESIS_RAW = GENESIS.encode()  # what the scripts compare with when the head key is missing


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


# -- stream ids ----------------------------------------------------------------------------


def stream_id(text: str) -> tuple[int, int]:
    ms, _, seq = text.partition("-")
    return (int(ms), int(seq or 0)) if ms.isdigit() and (seq or "0").isdigit() else (0, 0)
