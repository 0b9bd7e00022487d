"""The keyed hash chain, its pure parts: one implementation for the gateway's audit trail (a
Redis Stream, `gateway/audit_chain.py`) and an edge adapter's own log (files,
`adapters/audit_log.py`).

Each entry carries `seq` (1, 2, ...), `prev` (the link of the entry before it, 64 zeros for
seq 1) and

    link = hex HMAC-SHA256(key, orjson([prev, seq, [[field, value], ...]]))

over the entry's own fields in stored order (`time` included). Whoever can write the entries
but does not hold the key can delete, add, change or reorder them, but cannot make the links
fit again: `Verifier` names the first broken or missing link in one sentence.

Nothing here does I/O or imports `gateway`.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson

GENESIS_LINK = "0" * 64
CHAIN_FIELDS = ("seq", "prev", "link")

_LINK = re.compile(r"^[0-9a-f]{64}$")
_HEAD = re.compile(r"^(\d{1,20}) ([0-9a-f]{64})$")


def is_link(text: object) -> bool:
    """A link as stored: 64 lowercase hex digits."""
    return isinstance(text, str) and _LINK.match(text) is not None


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


def pairs(flat: Sequence[str]) -> list[tuple[str, str]]:
    return [(flat[i], flat[i + 1]) for i in range(0, len(flat) - 1, 2)]


def canonical(prev: str, seq: int, content: Iterable[tuple[str, str]]) -> bytes:
    """Unambiguous bytes of what a link covers: a JSON array, so no field or value can be
    shifted into another."""
    return orjson.dumps([prev, seq, [[k, v] for k, v in content]])


def compute_link(key: bytes, prev: str, seq: int, content: Iterable[tuple[str, str]]) -> str:
    return hmac.digest(key, canonical(prev, seq, content), "sha256").hex()


def seal(key: bytes, at: Head, contents: Sequence[Sequence[str]]) -> tuple[list[list[str]], Head]:
    """Entries as flat field/value lists (`seq`, `prev`, the content, `link`) chained after
    `at`, and the head after the last of them."""
    out: list[list[str]] = []
    seq, prev = at.seq, at.link
    for content in contents:
        seq += 1
        link = compute_link(key, prev, seq, pairs(content))
        out.append(["seq", str(seq), "prev", prev, *content, "link", link])
        prev = link
    return out, Head(seq, prev)


def text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


# -- entries, as stored ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChainEntry:
    id: str  # stream id, "ms-seq" ("" where entries have none, as in an adapter's log)
    seq: int | None  # None: missing or malformed
    prev: str | None
    link: str | None
    content: list[tuple[str, str]]
    where: str  # for messages: "stream id 1701...-0", "line 7 of adapter-000002.jsonl", ...
    problem: str | None = None  # what makes the entry unreadable, when its reader can say

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
        entry_id = text(raw_id)
        fields = ((text(k), text(v)) for k, v in raw.items())
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
        return cls.from_pairs(str(data.get("id", "")), [*chain, *content], where)


# -- verification -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Break:
    """The first broken or missing link: its seq and one sentence saying what is wrong."""

    seq: int
    sentence: str


class Verifier:
    """Feed entries in chain order; the first problem is kept and later entries are ignored.
    `label` names the chain in the summary ("audit trail intact: ...")."""

    def __init__(self, key: bytes, start: Head = GENESIS, *, label: str = "audit trail") -> None:
        self._key = key
        self.label = label
        self.last = start
        self.first: int | None = None
        self.count = 0
        self.broken: Break | None = None

    def __repr__(self) -> str:
        return f"Verifier({self.label!r}, <key hidden>, last={self.last.seq})"

    def feed(self, e: ChainEntry) -> Break | None:
        if self.broken is None:
            self.broken = self._check(e)
            if self.broken is None:
                self.last = Head(cast(int, e.seq), cast(str, e.link))
                self.first = self.first if self.first is not None else e.seq
                self.count += 1
        return self.broken

    def fail(self, problem: Break) -> Break:
        """Record a problem found outside the entries (a file's header, a missing file)."""
        if self.broken is None:
            self.broken = problem
        return self.broken

    def _check(self, e: ChainEntry) -> Break | None:
        expected = self.last.seq + 1
        if e.problem is not None:
            return Break(expected, f"broken at seq {expected} ({e.where}): {e.problem}")
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
            return f"{self.label} intact: 0 entries, head {self.last.link} (seq {self.last.seq})"
        return (
            f"{self.label} intact: {self.count} entries, seq {self.first}..{self.last.seq}, "
            f"head {self.last.link}"
        )


def verify_entries(
    key: bytes,
    entries: Iterable[ChainEntry],
    *,
    start: Head = GENESIS,
    end: Head | None = None,
    end_what: str = "the head",
    label: str = "audit trail",
) -> Break | str:
    """The pure verifier over a sequence of entries in chain order, from `start`, and (when
    given) against the `end` that `end_what` names: the first broken or missing link, or the
    one-line summary when the chain is whole."""
    verifier = Verifier(key, start, label=label)
    for entry in entries:
        if verifier.feed(entry) is not None:
            return cast(Break, verifier.broken)
    if end is not None and verifier.end_at(end, end_what) is not None:
        return cast(Break, verifier.broken)
    return verifier.summary()
