"""An edge adapter's own log: every request it answered or refused, in files on its machine,
hash-chained with its own key, so that the network's owner can check what left the network
without trusting the town's side (`camgw adapter audit verify`).

Files
-----
The log is a directory of JSON Lines files, `adapter-000001.jsonl`, `adapter-000002.jsonl`, ...
(numbered segments; a file is closed and the next one started once it would grow past
`max_file_bytes`). The first line of each file is its header, written with the file, which names
where the chain stood when the file was started:

    {"format": "camgw-adapter-log/1", "file": 2, "previous": "adapter-000001.jsonl",
     "seq": 1234, "head": "<link of seq 1234>"}

(`previous` null, `seq` 0 and `head` 64 zeros in the first file). Every further line is one entry:

    {"seq": 1235, "prev": "<link of seq 1234>", "time": "2024-05-01T08:00:00.123+00:00",
     "request": "...", "type": "snapshot", "camera": "<ref>", "requester": "...", "role": "...",
     "reason": "...", "outcome": "answered", "detail": "...", "bytes": "48213", "link": "..."}

`link = hex HMAC-SHA256(K, orjson([prev, seq, [[field, value], ...]]))` over the fields between
`prev` and `link` in the order they stand (`adapters/chain.py`, the same chain as the gateway's
audit trail), every value a string (`bytes` too). `K = HKDF(the adapter's key file,
"camgw adapter log v1")` (`key_from_file`); the key never leaves the adapter's machine. Values
are bounded (`FIELD_LIMITS`) and lone surrogates replaced, so an entry is at most a few KiB.

Durability and order
--------------------
`await log.append(event)` returns once the entry is on disk: written and `fdatasync`ed (and, when
the entry started a new file, that file was created under a temporary name, fsynced, linked to
its name, and the directory fsynced). Appends are group-committed: the entries that arrive
while a batch is being written go out together in the next one, one write and one sync for all
of them, and each caller gets its own seq/link. The file I/O runs in one worker thread of the
log's own, never on the event loop, so a snapshot answer waits for one write and one sync (well
under a millisecond or two on a local disk), not for other users of the default executor. Log
the request *before* answering it: an append that fails raises `AdapterLogError`, and the
adapter should then refuse the request. Entries of a batch that failed may still have reached
the disk (they are kept, and the chain goes on after them), so the log may show a request as
answered that was not; never the other way round. A lock file (`.lock`, `flock`) keeps a
second process from writing the same directory.

Crashes and torn lines
----------------------
A crash (or power loss) mid-write can leave the last line of the newest file incomplete: bytes
without the closing newline. Nothing is ever truncated or rewritten. On start (`open`, or the
first `append`) the log reads the tail of the newest file and resumes from its last whole
entry: when that is the file's last line, appends continue in the same file; when anything
follows it (a torn line) or it does not match its link, the log starts the next file, whose
header names the last whole entry, so the chain goes on unbroken and the damaged file is never
written to again. After a failed write the log resumes the same way (from what is on disk, in
a new file). `verify` accepts a torn line only as the last line of a file (the entry it held
was never acknowledged, so its request was not answered) and names it in its sentence;
anything unreadable before a file's last line is a break.

What the chain cannot show on its own: the newest entries removed, or all files deleted. Keep
an anchor outside the machine (the head `verify` prints, or one the adapter reports).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Literal, cast, get_args

import orjson

from .chain import (
    CHAIN_FIELDS,
    GENESIS,
    Break,
    ChainEntry,
    Head,
    Verifier,
    compute_link,
    is_link,
    pairs,
)
from .files import create_durably, fsync_dir
from .vault import CredentialVault, load_key

log = logging.getLogger(__name__)

LOG_PURPOSE = "camgw adapter log v1"
FORMAT = "camgw-adapter-log/1"
DEFAULT_MAX_FILE_BYTES = 16 << 20
MIN_MAX_FILE_BYTES = 512
MAX_LINE_BYTES = 64 << 10  # far above any entry (bounded values, escaped at most 6x)
_TAIL_BYTES = 2 * MAX_LINE_BYTES  # what `open` reads of the newest file to find its last entry
_NAME = re.compile(r"^adapter-(\d{6,12})\.jsonl$")
_LOCK_NAME = ".lock"

EventType = Literal["snapshot", "discover", "probe", "diagnose", "reference"]
Outcome = Literal["answered", "refused", "failed", "expired"]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
OUTCOMES: tuple[str, ...] = get_args(Outcome)

# Every stored value is bounded, so no requester, reason or camera answer can make an entry large.
FIELD_LIMITS = {
    "request": 128,
    "type": 16,
    "camera": 64,
    "requester": 200,
    "role": 32,
    "reason": 500,
    "outcome": 16,
    "detail": 500,
}
MAX_BYTES_VALUE = 1 << 53
# The content of an entry, in the order it is stored and covered by the link.
FIELDS = ("time", *FIELD_LIMITS, "bytes")

# How a batch is made durable; a module global so that tests can make it fail.
_sync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)


class AdapterLogError(Exception):
    """The log cannot be opened or written (the request must then not be answered)."""


def bound(value: str, limit: int) -> str:
    """At most `limit` characters (the last one an ellipsis when cut), valid UTF-8."""
    text = value.encode("utf-8", "replace").decode("utf-8")  # lone surrogates -> "?"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def key_from_file(path: Path) -> bytes:
    """The log key of the adapter whose key file is `path` (base64 of 32 bytes, mode 600,
    `camgw keygen`): `CredentialVault(key).derive(LOG_PURPOSE)`. Raises `VaultError`."""
    return CredentialVault(load_key(path)).derive(LOG_PURPOSE)


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One request the adapter answered or refused. `camera` is the adapter's ref of the camera
    (empty for a discovery), `requester`/`role`/`reason` what the gateway said the request was
    for, `bytes` what left (the JPEG's size; 0 when nothing did)."""

    request: str
    type: EventType
    outcome: Outcome
    camera: str = ""
    requester: str = ""
    role: str = ""
    reason: str = ""
    detail: str = ""
    bytes: int = 0

    def __post_init__(self) -> None:  # what a caller passes wrong is a bug: fail loudly
        if self.type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {bound(str(self.type), 32)!r}")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {bound(str(self.outcome), 32)!r}")
        if isinstance(self.bytes, bool) or not 0 <= self.bytes <= MAX_BYTES_VALUE:
            raise ValueError("bytes must be an integer from 0 to 2**53")

    def fields(self, at: float) -> list[str]:
        """Flat field/value list in stored order (`FIELDS`), every value bounded; `at` is the
        time (epoch seconds)."""
        out = ["time", datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")]
        for name, limit in FIELD_LIMITS.items():
            out += [name, bound(str(getattr(self, name)), limit)]
        return [*out, "bytes", str(int(self.bytes))]


@dataclass(frozen=True, slots=True)
class Appended:
    """Where an entry went: its seq and link, the file and the line (the header is line 1)."""

    seq: int
    link: str
    file: str
    line: int


def encode_entry(seq: int, prev: str, content: list[str], link: str) -> bytes:
    record: dict[str, object] = {"seq": seq, "prev": prev}
    for key, value in pairs(content):
        record[key] = value
    record["link"] = link
    return orjson.dumps(record) + b"\n"


def file_name(number: int) -> str:
    return f"adapter-{number:06d}.jsonl"


def list_files(directory: Path) -> list[tuple[int, Path]]:
    """The log's files in order, by the number in their names (other files are ignored)."""
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = _NAME.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


# -- reading lines ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileHeader:
    number: int
    previous: str | None
    head: Head


def parse_header(raw: bytes) -> FileHeader | None:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return None
    number, previous, seq, head = (data.get(k) for k in ("file", "previous", "seq", "head"))
    if not (_count(number) and _count(seq) and is_link(head)):
        return None
    if previous is not None and not isinstance(previous, str):
        return None
    return FileHeader(cast(int, number), previous, Head(cast(int, seq), cast(str, head)))


def parse_entry(raw: bytes, where: str) -> ChainEntry:
    """One entry line as the chain sees it; what makes it unreadable goes to `problem`."""

    def unreadable(problem: str) -> ChainEntry:
        return ChainEntry("", None, None, None, [], where, problem)

    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return unreadable("the line is not JSON")
    if not isinstance(data, dict):
        return unreadable("the line is not a JSON object")
    content: list[tuple[str, str]] = []
    for key, value in data.items():
        if key in CHAIN_FIELDS:
            continue
        if not isinstance(value, str):
            return unreadable(f"its field {bound(key, 64)!r} is not a string")
        content.append((key, value))
    seq, prev, link = data.get("seq"), data.get("prev"), data.get("link")
    return ChainEntry(
        "",
        cast(int, seq) if _count(seq) and cast(int, seq) > 0 else None,
        cast(str, prev) if is_link(prev) else None,
        cast(str, link) if is_link(link) else None,
        content,
        where,
    )


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63


def _lines(fh: IO[bytes]) -> tuple[list[bytes], bytes]:
    """Whole lines (without their newline) and what follows the last newline."""
    data = fh.read()
    body, sep, tail = data.rpartition(b"\n")
    return (body.split(b"\n") if sep else []), tail


# -- the writer -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Segment:
    name: str
    fd: int
    size: int
    lines: int  # lines in the file, the header included


class AdapterLog:
    """The adapter's append-only log (see the module's docstring). `key` is the derived log key
    (`key_from_file`); `clock` gives the entries' time (epoch seconds)."""

    def __init__(
        self,
        directory: Path,
        key: bytes,
        *,
        clock: Callable[[], float] = time.time,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    ) -> None:
        if len(key) < 16:
            raise ValueError("the adapter log key must be at least 16 bytes")
        if max_file_bytes < MIN_MAX_FILE_BYTES:
            raise ValueError(f"max_file_bytes must be at least {MIN_MAX_FILE_BYTES}")
        self.directory = Path(directory)
        self._key = key
        self.clock = clock
        self.max_file_bytes = max_file_bytes
        self.batches = 0  # batches written (each one write and one sync)
        # Owned by the worker thread (one at a time):
        self._head = GENESIS
        self._segment: _Segment | None = None
        self._lock_fd: int | None = None
        self._resume = True  # the position must be (re)read from the disk
        self._next_file = False  # ... and the next entry goes to a new file
        self._shut = False
        # Owned by the event loop:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="adapter-log")
        self._pending: list[tuple[list[str], asyncio.Future[Appended]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"AdapterLog({str(self.directory)!r}, <key hidden>, head seq {self._head.seq})"

    @property
    def head(self) -> Head:
        """The last entry on disk (as far as this process knows)."""
        return self._head

    async def __aenter__(self) -> AdapterLog:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> Head:
        """Take the directory (lock file), resume from the disk, and return the head. Optional:
        the first `append` does it too."""
        if self._closed:
            raise AdapterLogError("the adapter log is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._ensure_open)
        except AdapterLogError:
            raise
        except Exception as exc:
            raise _error(exc, self.directory) from exc

    async def append(self, event: LogEvent) -> Appended:
        """Seal `event` into the chain and return once it is on disk."""
        if self._closed:
            raise AdapterLogError("the adapter log is closed")
        content = event.fields(self.clock())
        done: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()
        self._pending.append((content, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="adapter-log-commit")
        return await asyncio.shield(done)  # a caller going away does not undo its entry

    async def close(self) -> None:
        """Write what is pending, release the directory, stop the worker thread."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            await asyncio.wait([self._writer])
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._close_sync)
        finally:
            self._executor.shutdown(wait=False)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                results = await loop.run_in_executor(
                    self._executor, self._commit, [content for content, _ in batch]
                )
            except asyncio.CancelledError:
                for _, done in batch + self._pending:
                    if not done.done():
                        done.set_exception(AdapterLogError("the adapter log was stopped"))
                self._pending = []
                raise
            except Exception as exc:
                error = _error(exc, self.directory)
                for _, done in batch:
                    if not done.done():
                        done.set_exception(error)
            else:
                for (_, done), result in zip(batch, results, strict=True):
                    if not done.done():
                        done.set_result(result)

    # -- in the worker thread ---------------------------------------------------------------

    def _ensure_open(self) -> Head:
        if self._shut:
            raise AdapterLogError("the adapter log is closed")
        if not self._resume and self._segment is not None:
            return self._head
        self._close_segment()
        self._take_directory()
        files = list_files(self.directory)
        if not files:
            self._head = GENESIS
            self._segment = self._create(1, None, GENESIS)
        else:
            head, clean = _resume_point(files, self._key)
            if head is None:
                raise AdapterLogError(
                    f"the adapter log in {self.directory} has no readable entry or header to "
                    f"continue from; run `camgw adapter audit verify`, move the files aside"
                )
            self._head = head
            number, path = files[-1]
            if clean and not self._next_file:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND)
                size = os.fstat(fd).st_size
                self._segment = _Segment(path.name, fd, size, _count_lines(path))
            else:
                log.warning(
                    "adapter log: resuming after an incomplete or damaged last line (or a failed "
                    "write) in a new file",
                    extra={"file": path.name, "seq": head.seq},
                )
                self._segment = self._create(number + 1, path.name, head)
        self._resume = self._next_file = False
        return self._head

    def _commit(self, contents: list[list[str]]) -> list[Appended]:
        self._ensure_open()
        try:
            segment = cast(_Segment, self._segment)
            head = self._head
            out: list[Appended] = []
            buffer: list[bytes] = []
            size = 0
            for content in contents:
                seq = head.seq + 1
                link = compute_link(self._key, head.link, seq, pairs(content))
                line = encode_entry(seq, head.link, content, link)
                has_entries = segment.lines > 1 or buffer
                if has_entries and segment.size + size + len(line) > self.max_file_bytes:
                    self._write(segment, buffer, size)
                    self._head = head
                    buffer, size = [], 0
                    self._close_segment()
                    segment = self._segment = self._create(
                        _number(segment.name) + 1, segment.name, self._head
                    )
                buffer.append(line)
                size += len(line)
                head = Head(seq, link)
                out.append(Appended(seq, link, segment.name, segment.lines + len(buffer)))
            self._write(segment, buffer, size)
            self._head = head
            self.batches += 1
            return out
        except BaseException:
            # The disk may hold all, some or none of the batch: read it again, in a new file.
            self._resume = self._next_file = True
            raise

    def _write(self, segment: _Segment, lines: list[bytes], size: int) -> None:
        if not lines:
            return
        data = memoryview(b"".join(lines))
        while data:
            written = os.write(segment.fd, data)
            data = data[written:]
        _sync(segment.fd)
        segment.size += size
        segment.lines += len(lines)

    def _create(self, number: int, previous: str | None, head: Head) -> _Segment:
        """A new file holding only its header, durable under its name (never replacing one)."""
        for attempt in range(number, number + 100):
            name = file_name(attempt)
            header = {"format": FORMAT, "file": attempt, "previous": previous,
                      "seq": head.seq, "head": head.link}  # fmt: skip
            data = orjson.dumps(header) + b"\n"
            if not create_durably(self.directory, name, data):
                continue  # not ours (the lock keeps other writers out): never replace it
            fd = os.open(self.directory / name, os.O_WRONLY | os.O_APPEND)
            return _Segment(name, fd, len(data), 1)
        raise AdapterLogError(f"cannot start a new adapter log file in {self.directory}")

    def _take_directory(self) -> None:
        if self._lock_fd is not None:
            return
        if not self.directory.is_dir():
            self.directory.mkdir(parents=True, mode=0o750, exist_ok=True)
            fsync_dir(self.directory.parent)
        fd = os.open(self.directory / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                raise AdapterLogError(
                    f"another process is writing the adapter log in {self.directory}"
                ) from exc
            raise
        self._lock_fd = fd
        for stale in self.directory.glob(".adapter-*.tmp"):  # a crash while starting a file
            stale.unlink(missing_ok=True)

    def _close_segment(self) -> None:
        if self._segment is not None:
            with contextlib.suppress(OSError):
                os.close(self._segment.fd)
            self._segment = None

    def _close_sync(self) -> None:
        self._shut = True
        self._close_segment()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None


def _error(exc: Exception, directory: Path) -> AdapterLogError:
    if isinstance(exc, AdapterLogError):
        return exc
    what = (exc.strerror if isinstance(exc, OSError) else None) or type(exc).__name__
    error = AdapterLogError(f"the adapter log in {directory} cannot be written: {what}")
    error.__cause__ = exc
    return error


def _number(name: str) -> int:
    match = _NAME.match(name)
    return int(match.group(1)) if match else 0


def _count_lines(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))


def _resume_point(files: list[tuple[int, Path]], key: bytes) -> tuple[Head | None, bool]:
    """Where the chain stands on disk: the last whole entry of the newest file that has one
    (else that file's header), and whether appends may go on in the newest file: its last line
    is that entry (or header), whole, and the entry matches its link."""
    newest = True
    for _, path in reversed(files):
        head, clean = _file_end(path, key)
        if head is not None:
            return head, clean and newest
        newest = False
    return None, False


def _file_end(path: Path, key: bytes) -> tuple[Head | None, bool]:
    size = path.stat().st_size
    start = max(0, size - _TAIL_BYTES)
    with path.open("rb") as fh:
        fh.seek(start)
        lines, tail = _lines(fh)
    if start > 0:
        lines = lines[1:]  # the first piece may be the end of a line
    clean = not tail
    for index in range(len(lines) - 1, -1, -1):
        if start == 0 and index == 0:
            header = parse_header(lines[0])
            return (header.head, clean) if header is not None else (None, False)
        e = parse_entry(lines[index], path.name)
        if e.problem is None and e.seq is not None and e.prev is not None and e.link is not None:
            if compute_link(key, e.prev, e.seq, e.content) != e.link:
                clean = False  # verify reports it; appends go on in a file of their own
            return Head(e.seq, e.link), clean
        clean = False
    if start > 0:
        with path.open("rb") as fh:
            header = parse_header(fh.readline(MAX_LINE_BYTES))
        return (header.head, False) if header is not None else (None, False)
    return None, False


# -- verification -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TornLine:
    """The incomplete last line of a file: a write cut short by a crash (or in progress)."""

    file: str
    line: int
    size: int


@dataclass(frozen=True, slots=True)
class LogVerdict:
    """What `check` found: `sentence` for people, `exit_code` (0 intact, 1 not) for scripts,
    and where the first problem is (`seq`, `file`, `line`)."""

    ok: bool
    sentence: str
    entries: int = 0
    first_seq: int | None = None
    last_seq: int = 0
    head: str = GENESIS.link
    seq: int | None = None  # the first broken or missing seq
    file: str | None = None
    line: int | None = None
    torn: tuple[TornLine, ...] = ()

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def __str__(self) -> str:
        return self.sentence


def verify(directory: Path, key: bytes) -> str:
    """One sentence: "adapter log intact: N entries, seq A..B, head <link>" (and any torn line),
    or the first broken or missing link, with the file and line."""
    return check(directory, key).sentence


def check(directory: Path, key: bytes) -> LogVerdict:
    """Every file in order: each header against the file before it (name, seq, head), each
    entry's seq, prev and link; a torn line only as the last line of a file."""
    directory = Path(directory)
    if not directory.is_dir():
        return LogVerdict(False, f"no adapter log at {directory}: it is not a directory")
    files = list_files(directory)
    if not files:
        return LogVerdict(False, f"no adapter log in {directory}: it holds no adapter-*.jsonl file")
    verifier = Verifier(key, GENESIS, label="adapter log")
    torn: list[TornLine] = []
    previous: str | None = None

    def broken(problem: Break, name: str, line: int) -> LogVerdict:
        verifier.fail(problem)
        return LogVerdict(
            False,
            problem.sentence,
            verifier.count,
            verifier.first,
            verifier.last.seq,
            verifier.last.link,
            problem.seq,
            name,
            line,
            tuple(torn),
        )

    for number, path in files:
        name = path.name
        with path.open("rb") as fh:
            raw = fh.readline(MAX_LINE_BYTES + 1)
            problem = _header_problem(raw, number, name, previous, verifier.last)
            if problem is not None:
                return broken(problem, name, 1)
            line = 1
            while raw := fh.readline(MAX_LINE_BYTES + 1):
                line += 1
                where = f"line {line} of {name}"
                if not raw.endswith(b"\n"):
                    if len(raw) > MAX_LINE_BYTES:
                        expected = verifier.last.seq + 1
                        sentence = (
                            f"broken at seq {expected} ({where}): the line is longer than any entry"
                        )
                        return broken(Break(expected, sentence), name, line)
                    torn.append(TornLine(name, line, len(raw)))  # EOF: the file's last line
                    break
                if verifier.feed(parse_entry(raw, where)) is not None:
                    return broken(cast(Break, verifier.broken), name, line)
        previous = name
    sentence = verifier.summary()
    if torn:
        where = ", ".join(f"line {t.line} of {t.file}" for t in torn)
        sentence += (
            f"; {len(torn)} torn line(s) skipped ({where}): the last line of a file, cut short "
            f"by a crash or still being written, not an entry"
        )
    return LogVerdict(
        True,
        sentence,
        verifier.count,
        verifier.first,
        verifier.last.seq,
        verifier.last.link,
        torn=tuple(torn),
    )


def _header_problem(
    raw: bytes, number: int, name: str, previous: str | None, last: Head
) -> Break | None:
    expected = last.seq + 1
    header = parse_header(raw) if raw.endswith(b"\n") else None
    if header is None:
        return Break(
            expected, f"broken at seq {expected} (line 1 of {name}): the file has no valid header"
        )
    if header.number != number:
        return Break(
            expected,
            f"broken at seq {expected} (line 1 of {name}): its header names file "
            f"{header.number}: the file was renamed",
        )
    if header.previous != previous:
        if previous is None:
            return Break(
                expected,
                f"missing entries: {name} continues {bound(str(header.previous), 64)}, which "
                f"is not there (line 1 of {name})",
            )
        return Break(
            expected,
            f"missing entries: {name} continues {bound(str(header.previous), 64)}, but the file "
            f"before it is {previous} (line 1 of {name})",
        )
    start = "the start of the chain" if last.seq == 0 else f"seq {last.seq}"
    if header.head.seq > last.seq:
        return Break(
            expected,
            f"missing entries: the header of {name} (line 1) says the chain stood at seq "
            f"{header.head.seq}, but the entries before it end at {start}",
        )
    if header.head.seq < last.seq:
        return Break(
            header.head.seq + 1,
            f"broken at seq {header.head.seq + 1} (line 1 of {name}): its header says the chain "
            f"stood at seq {header.head.seq}, but the entries before it go on to seq {last.seq}",
        )
    if header.head.link != last.link:
        return Break(
            expected,
            f"broken at seq {expected} (line 1 of {name}): its header does not match the link "
            f"of {start}",
        )
    return None
