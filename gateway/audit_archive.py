"""Archive segments and exports of the audit trail, and walking the whole trail to verify it.

Both are JSON Lines files. The first line is a header:

    {"format": "camgw-audit/1", "kind": "segment" | "export", "first_seq": A, "last_seq": B,
     "count": N, "prev": <link before seq A>, "head": <link of seq B>,
     "first_id": <stream id of A>, "last_id": <stream id of B>, ...}

and each further line one entry, `{"id", "seq", "prev", "link", "fields": [[k, v], ...]}`, where
`fields` is exactly what the link covers. A segment is named by its seqs
(`audit-000000000001-000000010000.jsonl`) and is written once: to a temporary file, fsynced,
linked to its name (never replacing a file), and the directory fsynced, before the stream is
trimmed. An auditor can keep a copy and check it offline with `camgw audit verify --file`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import orjson
from redis.asyncio import Redis

from adapters.chain import GENESIS, Break, ChainEntry, Head, Verifier
from adapters.files import create_durably

from .audit_chain import FILE_FORMAT, stream_id
from .audit_index import AuditIndex
from .settings import AuditConfig

log = logging.getLogger(__name__)

_READ_BATCH = 1000
_LOCK_MS = 120_000
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

Row = tuple[bytes, dict[bytes, bytes]]


# -- files ---------------------------------------------------------------------------------


def file_header(
    kind: str, entries: list[ChainEntry], before: Head, **more: object
) -> dict[str, Any]:
    """The header of a file holding `entries`, the chain position `before` them included."""
    last = entries[-1] if entries else None
    return {
        "format": FILE_FORMAT,
        "kind": kind,
        "first_seq": entries[0].seq if entries else before.seq + 1,
        "last_seq": last.seq if last else before.seq,
        "count": len(entries),
        "prev": entries[0].prev if entries else before.link,
        "head": last.link if last else before.link,
        "first_id": entries[0].id if entries else None,
        "last_id": last.id if last else None,
        **more,
    }


def encode_file(header: dict[str, Any], entries: list[ChainEntry]) -> bytes:
    lines = [orjson.dumps(header), *(orjson.dumps(e.line()) for e in entries)]
    return b"\n".join(lines) + b"\n"


@dataclass(frozen=True, slots=True)
class FileHead:
    """A file's header as read (None where a value is missing or malformed)."""

    path: Path
    first_seq: int | None
    last_seq: int | None
    count: int | None
    prev: str | None
    head: str | None
    first_id: tuple[int, int]
    last_id: tuple[int, int]

    @property
    def before(self) -> Head | None:
        if self.first_seq is None or self.prev is None:
            return None
        return Head(self.first_seq - 1, self.prev)

    @property
    def end(self) -> Head | None:
        if self.last_seq is None or self.head is None:
            return None
        return Head(self.last_seq, self.head)


def read_header(path: Path) -> FileHead:
    with path.open("rb") as fh:
        first = fh.readline()
    try:
        data = orjson.loads(first)
    except orjson.JSONDecodeError:
        data = {}
    if not isinstance(data, dict) or data.get("format") != FILE_FORMAT:
        data = {}

    def num(key: str) -> int | None:
        value = data.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def text(key: str) -> str | None:
        value = data.get(key)
        return value if isinstance(value, str) else None

    return FileHead(
        path,
        num("first_seq"),
        num("last_seq"),
        num("count"),
        text("prev"),
        text("head"),
        stream_id(text("first_id") or ""),
        stream_id(text("last_id") or ""),
    )


def read_entries(path: Path) -> Iterator[ChainEntry]:
    with path.open("rb") as fh:
        fh.readline()  # the header
        for number, line in enumerate(fh, start=2):
            where = f"line {number} of {path.name}"
            try:
                data = orjson.loads(line)
            except orjson.JSONDecodeError:
                data = None
            entry = ChainEntry.from_line(data, where)
            if entry.id:
                entry = ChainEntry(
                    entry.id,
                    entry.seq,
                    entry.prev,
                    entry.link,
                    entry.content,
                    f"stream id {entry.id}, {where}",
                )
            yield entry


def list_segments(directory: Path) -> list[FileHead]:
    """The archive's segments in stream order (unreadable names are skipped)."""
    if not directory.is_dir():
        return []
    heads = [read_header(p) for p in sorted(directory.glob("audit-*.jsonl"))]
    return sorted(heads, key=lambda h: (h.first_id, h.first_seq or 0, h.path.name))


def write_segment(directory: Path, header: dict[str, Any], entries: list[ChainEntry]) -> Path:
    """Write a segment durably under its own name; an identical file already there (a
    previous run died before trimming) is kept as it is. Never replaces a file."""
    directory.mkdir(parents=True, exist_ok=True)
    data = encode_file(header, entries)
    # (A forged entry may have no seq: it is archived all the same, as evidence.)
    name = f"audit-{header['first_seq'] or 0:012d}-{header['last_seq'] or 0:012d}"
    candidates = [f"{name}.jsonl", f"{name}-{header['first_id']}.jsonl"]
    for candidate in candidates:
        final = directory / candidate
        if final.exists():
            if final.read_bytes() == data:
                return final
            continue  # a different file with this name (a rewritten trail): keep both
        if create_durably(directory, candidate, data):
            return final
        if final.read_bytes() == data:  # appeared meanwhile: another archiver's, the same
            return final
    raise FileExistsError(f"segment {name} exists twice with other content in {directory}")


def _after(entry_id: str) -> str:
    """The smallest stream id above `entry_id` (XTRIM MINID keeps ids >= it)."""
    ms, seq = stream_id(entry_id)
    return f"{ms + 1}-0" if seq >= 2**64 - 1 else f"{ms}-{seq + 1}"


# -- the archiver ------------------------------------------------------------------------------


class Archiver:
    """Moves the oldest entries to segment files once the stream holds more than
    `max_entries`: one gateway at a time (a Redis lock), the file durable before the trim,
    and nothing trimmed at all when the file cannot be written. After trimming, the ids below
    the stream's first entry leave the audit indexes (`AuditIndex.trim`, a bounded number of
    index keys per run; a pass that stopped there goes on at the next run)."""

    def __init__(
        self, redis: Redis, stream_key: str, config: AuditConfig, index: AuditIndex | None = None
    ) -> None:
        self.redis = redis
        self.stream_key = stream_key
        self.index = index
        self.lock_key = f"{stream_key}:archive-lock"
        self.config = config
        self.entries = 0  # stream length when last looked at (metric)
        self.failures = 0  # archive writes that failed (metric)
        self.segments = 0  # segments written by this process (metric)
        self._release = redis.register_script(_RELEASE)
        self._extend = redis.register_script(_EXTEND)

    async def run_once(self) -> int:
        """Archive what is over the limit now; returns the number of segments written."""
        length = self.entries = int(await self.redis.xlen(self.stream_key))
        trim_pending = self.index is not None and self.index.trim_pending
        if length <= self.config.max_entries and not trim_pending:
            return 0
        token = secrets.token_hex(8)
        if not await self.redis.set(self.lock_key, token, nx=True, px=_LOCK_MS):
            return 0  # another gateway is archiving
        written = 0
        try:
            while length > self.config.max_entries:
                entries = await self._oldest(self.config.segment_entries)
                if not entries:
                    break
                before = Head((entries[0].seq or 1) - 1, entries[0].prev or "")
                header = file_header("segment", entries, before)
                try:
                    path = await asyncio.to_thread(
                        write_segment, self.config.archive_dir, header, entries
                    )
                except OSError as exc:
                    self.failures += 1
                    log.error(
                        "audit archive not written; nothing trimmed",
                        extra={
                            "archive_dir": str(self.config.archive_dir),
                            "error": f"{type(exc).__name__}: {exc}",
                            "entries": length,
                        },
                    )
                    break
                await self.redis.xtrim(
                    self.stream_key, minid=_after(entries[-1].id), approximate=False
                )
                written += 1
                self.segments += 1
                log.info(
                    "audit segment archived",
                    extra={"file": str(path), "first_seq": header["first_seq"],
                           "last_seq": header["last_seq"]},
                )  # fmt: skip
                length = self.entries = int(await self.redis.xlen(self.stream_key))
                await self._extend(keys=[self.lock_key], args=[token, _LOCK_MS])
            if self.index is not None and (written or self.index.trim_pending):
                await self.index.trim()
        finally:
            await self._release(keys=[self.lock_key], args=[token])
        return written

    async def _oldest(self, count: int) -> list[ChainEntry]:
        out: list[ChainEntry] = []
        low = "-"
        while len(out) < count:
            rows = cast(
                list[Row],
                await self.redis.xrange(
                    self.stream_key, low, "+", count=min(_READ_BATCH, count - len(out))
                ),
            )
            if not rows:
                break
            out.extend(ChainEntry.from_stream(i, f) for i, f in rows)
            low = f"({out[-1].id}"
        return out


# -- walking the whole trail -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SegmentEnd:
    """Marks the end of an archive segment in a walk, so its header can be checked."""

    file: FileHead
    count: int
    first: ChainEntry | None
    last: ChainEntry | None


async def walk(
    redis: Redis, stream_key: str, archive_dir: Path, since_ms: int | None = None
) -> AsyncIterator[ChainEntry | SegmentEnd]:
    """Every entry in stream order: archive segments, then the stream after the last archived
    id. A segment written while we walk (the stream trimmed under us) is picked up when the
    stream skips ahead of the last seq seen."""
    last_id: tuple[int, int] = (0, 0)
    last_seq: int | None = None
    low = (since_ms, 0) if since_ms is not None else (0, 0)
    seen: set[Path] = set()

    def segment(file: FileHead) -> Iterator[ChainEntry | SegmentEnd]:
        nonlocal last_id, last_seq
        seen.add(file.path)
        count, first, last = 0, None, None
        for e in read_entries(file.path):
            count += 1
            first = first or e
            last = e
            sid = stream_id(e.id)
            if sid <= last_id or sid < low:
                continue
            yield e
            last_id, last_seq = sid, e.seq
        yield SegmentEnd(file, count, first, last)

    for file in list_segments(archive_dir):
        if since_ms is not None and file.last_id < low:
            seen.add(file.path)
            continue
        for item in segment(file):
            yield item

    while True:
        start = f"({last_id[0]}-{last_id[1]}" if last_id != (0, 0) else f"{low[0]}-{low[1]}"
        rows = cast(list[Row], await redis.xrange(stream_key, start, "+", count=_READ_BATCH))
        if not rows:
            return
        entries = [ChainEntry.from_stream(i, f) for i, f in rows]
        first = entries[0]
        if last_seq is not None and first.seq is not None and first.seq > last_seq + 1:
            fresh = [
                f for f in list_segments(archive_dir) if f.path not in seen and f.last_id > last_id
            ]
            if fresh:
                for file in fresh:
                    for item in segment(file):
                        yield item
                continue
        for e in entries:
            last_id, last_seq = stream_id(e.id), e.seq
            yield e


async def read_head(redis: Redis, head_key: str) -> Head | None:
    value = await redis.get(head_key)
    if value is None:
        return None
    return Head.parse(value.decode(errors="replace") if isinstance(value, bytes) else value)


async def verify_trail(
    redis: Redis, stream_key: str, head_key: str, archive_dir: Path, key: bytes
) -> Break | str:
    """The whole trail, archive then stream, against its links and its head: the first break,
    or a one-line summary when it is intact."""
    verifier = Verifier(key, GENESIS)
    last_id = ""
    async for item in walk(redis, stream_key, archive_dir):
        if isinstance(item, SegmentEnd):
            problem = _segment_problem(item, verifier)
            if problem is not None:
                return problem
            continue
        if verifier.feed(item) is not None:
            return cast(Break, verifier.broken)
        last_id = item.id
    # Entries appended while we walked put the head ahead of what we read: read on.
    for _ in range(10):
        raw = await redis.get(head_key)
        head = Head.parse(raw.decode(errors="replace") if isinstance(raw, bytes) else raw or "")
        if head is None or head.seq <= verifier.last.seq:
            break
        rows = cast(
            list[Row],
            await redis.xrange(
                stream_key, f"({last_id}" if last_id else "-", "+", count=_READ_BATCH
            ),
        )
        if not rows:
            break
        for raw_id, fields in rows:
            entry = ChainEntry.from_stream(raw_id, fields)
            if verifier.feed(entry) is not None:
                return cast(Break, verifier.broken)
            last_id = entry.id
    if raw is None and verifier.count == 0:
        return verifier.summary()  # a trail nobody has written to yet
    problem = verifier.end_at(head, "the head key")
    return problem if problem is not None else verifier.summary()


def _segment_problem(end: SegmentEnd, verifier: Verifier) -> Break | None:
    f = end.file
    ok = (
        f.count == end.count
        and end.first is not None
        and end.last is not None
        and (end.first.seq, end.first.prev) == (f.first_seq, f.prev)
        and (end.last.seq, end.last.link) == (f.last_seq, f.head)
    )
    if ok:
        return None
    return Break(
        verifier.last.seq + 1,
        f"archive segment {f.path.name}: its header does not match its entries",
    )


def verify_file(path: Path, key: bytes) -> Break | str:
    """An export or a segment on its own: the chain from its header's position, its entries,
    and the end its header names."""
    header = read_header(path)
    before = header.before
    if before is None or header.end is None or header.count is None:
        return Break(0, f"{path.name} has no valid camgw audit header")
    verifier = Verifier(key, before)
    for entry in read_entries(path):
        if verifier.feed(entry) is not None:
            return cast(Break, verifier.broken)
    problem = verifier.end_at(header.end, f"the header of {path.name}")
    if problem is not None:
        return problem
    if verifier.count != header.count:
        return Break(
            verifier.last.seq,
            f"{path.name} holds {verifier.count} entries but its header says {header.count}",
        )
    return verifier.summary()


async def export(
    redis: Redis,
    stream_key: str,
    head_key: str,
    archive_dir: Path,
    since_ms: int,
    out: IO[bytes],
    **about: object,
) -> int:
    """Entries from `since_ms` (by stream id, Redis's clock) to the end, archive and stream,
    as one verifiable file; returns how many. Entries are spooled to a temporary file first,
    since the header (first line) names the last of them."""
    count = 0
    first: ChainEntry | None = None
    last: ChainEntry | None = None
    with tempfile.TemporaryFile() as spool:
        async for item in walk(redis, stream_key, archive_dir, since_ms):
            if isinstance(item, SegmentEnd):
                continue
            first = first or item
            last = item
            count += 1
            spool.write(orjson.dumps(item.line()) + b"\n")
        if first is None or last is None:
            head = await read_head(redis, head_key) or GENESIS
            header = file_header("export", [], head, **about)
        else:
            header = file_header("export", [first], GENESIS, **about) | {
                "last_seq": last.seq,
                "head": last.link,
                "last_id": last.id,
                "count": count,
            }
        out.write(orjson.dumps(header) + b"\n")
        spool.seek(0)
        while chunk := spool.read(1 << 20):
            out.write(chunk)
    return count
