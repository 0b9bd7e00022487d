"""An edge adapter's own log (`adapters/audit_log.py`): JSON Lines files on its machine,
hash-chained with its own key across rotated files, durable before `append` returns, resumed
after a restart or a crash (a torn last line is reported, never rewritten, and the chain goes
on), tampering in any file reported at its seq, file and line, values bounded, and concurrent
appends group-committed off the event loop."""

from __future__ import annotations

import asyncio
import errno
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from adapters import audit_log
from adapters.audit_log import (
    FIELDS,
    FORMAT,
    LOG_PURPOSE,
    MAX_LINE_BYTES,
    AdapterLog,
    AdapterLogError,
    Appended,
    LogEvent,
    LogVerdict,
    TornLine,
    check,
    encode_entry,
    key_from_file,
    verify,
)
from adapters.chain import GENESIS_LINK, Head, compute_link
from adapters.vault import CredentialVault, VaultError, create_key_file, load_key

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
F1, F2, F3 = "adapter-000001.jsonl", "adapter-000002.jsonl", "adapter-000003.jsonl"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "adapter-log"


def event(n: int, **changes: object) -> LogEvent:
    fields: dict[str, object] = {
        "request": f"req-{n:04d}",
        "type": "snapshot",
        "outcome": "answered",
        "camera": "0123456789abcdef",
        "requester": "ops-center wall",
        "role": "operator",
        "reason": "incident 42",
        "detail": "camera-http",
        "bytes": 48213,
    }
    fields.update(changes)
    return LogEvent(**fields)  # type: ignore[arg-type]


def lines(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("adapter-*.jsonl"))


def intact(verdict: LogVerdict, count: int, head: str, first: int = 1) -> None:
    assert verdict.ok and verdict.exit_code == 0, verdict.sentence
    assert verdict.sentence.startswith(
        f"adapter log intact: {count} entries, seq {first}..{first + count - 1}, head {head}"
    )
    assert (verdict.entries, verdict.last_seq, verdict.head) == (count, first + count - 1, head)


async def write(directory: Path, clock: FakeClock, n: int, **options: int) -> list[Appended]:
    async with AdapterLog(directory, KEY, clock=clock, **options) as log:
        return [await log.append(event(i + 1)) for i in range(n)]


def three_per_file(clock: FakeClock) -> int:
    """A file size limit that holds a header and three entries of `event(1..9)`."""
    entry = len(encode_entry(1, GENESIS_LINK, event(1).fields(clock()), GENESIS_LINK))
    header = {"format": FORMAT, "file": 3, "previous": F2, "seq": 6, "head": GENESIS_LINK}
    return len(orjson.dumps(header)) + 1 + 3 * entry


# -- the format ---------------------------------------------------------------------------


async def test_entries_are_chained_json_lines_after_a_header(
    directory: Path, clock: FakeClock
) -> None:
    async with AdapterLog(directory, KEY, clock=clock) as log:
        first = await log.append(event(1))
        clock.now += 1.5
        second = await log.append(event(2, type="discover", outcome="refused", camera="", bytes=0))
        assert log.head == Head(2, second.link)
    header, one, two = lines(directory / F1)
    assert header == {"format": FORMAT, "file": 1, "previous": None, "seq": 0,
                      "head": GENESIS_LINK}  # fmt: skip
    assert list(one) == ["seq", "prev", *FIELDS, "link"]
    assert one == {
        "seq": 1,
        "prev": GENESIS_LINK,
        "time": "2023-11-14T22:13:20.000+00:00",
        "request": "req-0001",
        "type": "snapshot",
        "camera": "0123456789abcdef",
        "requester": "ops-center wall",
        "role": "operator",
        "reason": "incident 42",
        "outcome": "answered",
        "detail": "camera-http",
        "bytes": "48213",
        "link": first.link,
    }
    content = [(k, str(one[k])) for k in FIELDS]
    assert first.link == compute_link(KEY, GENESIS_LINK, 1, content)
    assert (two["prev"], two["time"], two["type"], two["outcome"], two["bytes"]) == (
        first.link, "2023-11-14T22:13:21.500+00:00", "discover", "refused", "0"
    )  # fmt: skip
    assert first == Appended(1, first.link, F1, 2)
    assert second == Appended(2, second.link, F1, 3)
    verdict = check(directory, KEY)
    intact(verdict, 2, second.link)
    assert verdict.sentence == f"adapter log intact: 2 entries, seq 1..2, head {second.link}"
    assert verify(directory, KEY) == verdict.sentence == str(verdict)


async def test_appends_rotate_into_files_whose_headers_continue_the_chain(
    directory: Path, clock: FakeClock
) -> None:
    appended = await write(directory, clock, 30, max_file_bytes=1500)
    names = files(directory)
    assert len(names) >= 8
    previous: tuple[str | None, int, str] = (None, 0, GENESIS_LINK)
    for name in names:
        path = directory / name
        assert path.stat().st_size <= 1500
        header, *entries = lines(path)
        assert (header["previous"], header["seq"], header["head"]) == previous
        assert entries, f"{name} holds no entry"
        for number, entry in enumerate(entries, start=2):
            seq = entry["seq"]
            assert isinstance(seq, int)
            assert appended[seq - 1] == Appended(seq, str(entry["link"]), name, number)
        previous = (name, int(str(entries[-1]["seq"])), str(entries[-1]["link"]))
    assert [a.seq for a in appended] == list(range(1, 31))
    intact(check(directory, KEY), 30, appended[-1].link)


async def test_a_restart_resumes_from_the_last_entry_on_disk(
    directory: Path, clock: FakeClock
) -> None:
    before = await write(directory, clock, 4)
    log = AdapterLog(directory, KEY, clock=clock)
    assert await log.open() == Head(4, before[-1].link)
    after = await log.append(event(5))
    await log.close()
    assert after == Appended(5, after.link, F1, 6)  # the same file goes on
    assert lines(directory / F1)[-1]["prev"] == before[-1].link
    intact(check(directory, KEY), 5, after.link)
    # A full file is continued by the next one at the first append after the restart.
    limit = (directory / F1).stat().st_size
    async with AdapterLog(directory, KEY, clock=clock, max_file_bytes=limit) as log:
        assert await log.append(event(6)) == Appended(6, log.head.link, F2, 2)
    assert lines(directory / F2)[0]["seq"] == 5
    intact(check(directory, KEY), 6, log.head.link)


async def test_a_restart_reads_only_the_tail_of_a_large_file(
    directory: Path, clock: FakeClock
) -> None:
    async with AdapterLog(directory, KEY, clock=clock) as log:
        before = await asyncio.gather(*(log.append(event(n)) for n in range(800)))
    assert (directory / F1).stat().st_size > 2 * MAX_LINE_BYTES  # more than `open` reads
    async with AdapterLog(directory, KEY, clock=clock) as log:
        assert log.head == Head(800, before[-1].link)
        after = await log.append(event(800))
    assert after == Appended(801, after.link, F1, 802)
    intact(check(directory, KEY), 801, after.link)


async def test_a_torn_last_line_is_reported_and_the_chain_goes_on(
    directory: Path, clock: FakeClock
) -> None:
    before = await write(directory, clock, 4)
    # A crash while the fifth entry was being written: part of its line, no newline.
    line = encode_entry(5, before[-1].link, event(5).fields(clock()), "a" * 64)
    with (directory / F1).open("ab") as fh:
        fh.write(line[:57])
    torn = TornLine(F1, 6, 57)
    note = (
        f"; 1 torn line(s) skipped (line 6 of {F1}): the last line of a file, cut short by a "
        f"crash or still being written, not an entry"
    )
    verdict = check(directory, KEY)
    intact(verdict, 4, before[-1].link)
    assert verdict.torn == (torn,)
    assert verdict.sentence == (
        f"adapter log intact: 4 entries, seq 1..4, head {before[-1].link}{note}"
    )
    # The adapter starts again: the torn file is left as it is, the chain goes on in the next.
    size = (directory / F1).stat().st_size
    async with AdapterLog(directory, KEY, clock=clock) as log:
        assert log.head == Head(4, before[-1].link)
        after = [await log.append(event(n)) for n in (5, 6)]
    assert (directory / F1).stat().st_size == size
    assert after[0] == Appended(5, after[0].link, F2, 2)
    header = lines(directory / F2)[0]
    assert (header["previous"], header["seq"], header["head"]) == (F1, 4, before[-1].link)
    verdict = check(directory, KEY)
    intact(verdict, 6, after[-1].link)
    assert verdict.torn == (torn,) and verdict.sentence.endswith(note)


async def test_a_line_being_written_while_verify_reads_is_not_a_break(
    directory: Path, clock: FakeClock
) -> None:
    before = await write(directory, clock, 2)
    with (directory / F1).open("ab") as fh:
        fh.write(b'{"seq": 3, "prev": "')  # verify ran between two bytes of a write
    verdict = check(directory, KEY)
    intact(verdict, 2, before[-1].link)
    assert verdict.torn == (TornLine(F1, 4, 20),)


# -- tampering ------------------------------------------------------------------------------

Tamper = Callable[[Path], None]


def edit_line(name: str, number: int, change: Callable[[list[bytes]], list[bytes]]) -> Tamper:
    def tamper(directory: Path) -> None:
        path = directory / name
        raw = path.read_bytes().splitlines(keepends=True)
        path.write_bytes(b"".join(change(raw) if number == 0 else _at(raw, number, change)))

    return tamper


def _at(raw: list[bytes], number: int, change: Callable[[list[bytes]], list[bytes]]) -> list[bytes]:
    return [*raw[: number - 1], *change([raw[number - 1]]), *raw[number:]]


def rewrite(**changes: object) -> Callable[[list[bytes]], list[bytes]]:
    def change(raw: list[bytes]) -> list[bytes]:
        data = orjson.loads(raw[0])
        data.update(changes)
        return [orjson.dumps(data) + b"\n"]

    return change


def forged(raw: list[bytes]) -> list[bytes]:
    data = orjson.loads(raw[0])
    fake = data | {"seq": data["seq"] + 1, "prev": data["link"], "link": "f" * 64}
    return [raw[0], orjson.dumps(fake) + b"\n"]


def swap_with_next(name: str, number: int) -> Tamper:
    def tamper(directory: Path) -> None:
        path = directory / name
        raw = path.read_bytes().splitlines(keepends=True)
        raw[number - 1], raw[number] = raw[number], raw[number - 1]
        path.write_bytes(b"".join(raw))

    return tamper


def remove(name: str) -> Tamper:
    return lambda directory: (directory / name).unlink()


def rename(name: str, to: str) -> Tamper:
    return lambda directory: (directory / name).rename(directory / to)


# Nine entries, three per file: seq 1-3 in F1, 4-6 in F2, 7-9 in F3, each at lines 2-4.
TAMPERING: list[tuple[str, Tamper, int, str, int, str]] = [
    ("edited in the first file", edit_line(F1, 3, rewrite(reason="nothing to see")),
     2, F1, 3, f"broken at seq 2 (line 3 of {F1}): the entry's content does not match its link"),
    ("edited in a middle file", edit_line(F2, 3, rewrite(requester="someone else")),
     5, F2, 3, f"broken at seq 5 (line 3 of {F2}): the entry's content does not match its link"),
    ("edited in the newest file", edit_line(F3, 4, rewrite(bytes="1")),
     9, F3, 4, f"broken at seq 9 (line 4 of {F3}): the entry's content does not match its link"),
    ("field added", edit_line(F2, 3, rewrite(note="hello")),
     5, F2, 3, f"broken at seq 5 (line 3 of {F2}): the entry's content does not match its link"),
    ("value retyped", edit_line(F2, 3, rewrite(bytes=48213)),
     5, F2, 3, f"broken at seq 5 (line 3 of {F2}): its field 'bytes' is not a string"),
    ("deleted", edit_line(F2, 3, lambda raw: []),
     5, F2, 3, f"missing entries: seq 6 (line 3 of {F2}) follows seq 4"),
    ("inserted", edit_line(F2, 2, forged),
     5, F2, 3, f"broken at seq 5 (line 3 of {F2}): the entry's content does not match its link"),
    ("repeated", edit_line(F2, 3, lambda raw: raw * 2),
     6, F2, 4, f"broken at seq 6 (line 4 of {F2}): the entry there claims seq 5, which repeats "
     f"or goes back"),
    ("reordered", swap_with_next(F2, 3),
     5, F2, 3, f"missing entries: seq 6 (line 3 of {F2}) follows seq 4"),
    ("garbled", edit_line(F2, 3, lambda raw: [b"{not json\n"]),
     5, F2, 3, f"broken at seq 5 (line 3 of {F2}): the line is not JSON"),
    ("cut short mid-file", edit_line(F2, 3, lambda raw: [raw[0][:40] + b"\n"]),
     5, F2, 3, f"broken at seq 5 (line 3 of {F2}): the line is not JSON"),
    ("last entry of a file deleted", edit_line(F2, 4, lambda raw: []),
     6, F3, 1, f"missing entries: the header of {F3} (line 1) says the chain stood at seq 6, but "
     f"the entries before it end at seq 5"),
    ("last entry of a file torn off", edit_line(F2, 4, lambda raw: [raw[0][:-1]]),
     6, F3, 1, f"missing entries: the header of {F3} (line 1) says the chain stood at seq 6, but "
     f"the entries before it end at seq 5"),
    ("header rewound", edit_line(F3, 1, rewrite(seq=5)),
     6, F3, 1, f"broken at seq 6 (line 1 of {F3}): its header says the chain stood at seq 5, but "
     f"the entries before it go on to seq 6"),
    ("header relinked", edit_line(F2, 1, rewrite(head="0" * 64)),
     4, F2, 1, f"broken at seq 4 (line 1 of {F2}): its header does not match the link of seq 3"),
    ("header garbled", edit_line(F2, 1, lambda raw: [b"{}\n"]),
     4, F2, 1, f"broken at seq 4 (line 1 of {F2}): the file has no valid header"),
    ("middle file deleted", remove(F2),
     4, F3, 1, f"missing entries: {F3} continues {F2}, but the file before it is {F1} "
     f"(line 1 of {F3})"),
    ("first file deleted", remove(F1),
     1, F2, 1, f"missing entries: {F2} continues {F1}, which is not there (line 1 of {F2})"),
    ("file renamed", rename(F3, "adapter-000004.jsonl"),
     7, "adapter-000004.jsonl", 1, "broken at seq 7 (line 1 of adapter-000004.jsonl): its "
     "header names file 3: the file was renamed"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "tamper", "seq", "name", "line", "sentence"), TAMPERING, ids=[t[0] for t in TAMPERING]
)
async def test_tampering_is_reported_at_its_seq_file_and_line(
    directory: Path,
    clock: FakeClock,
    case: str,
    tamper: Tamper,
    seq: int,
    name: str,
    line: int,
    sentence: str,
) -> None:
    appended = await write(directory, clock, 9, max_file_bytes=three_per_file(clock))
    layout = [(a.seq, a.file, a.line) for a in appended]
    assert layout == [(s, [F1, F2, F3][(s - 1) // 3], (s - 1) % 3 + 2) for s in range(1, 10)]
    intact(check(directory, KEY), 9, appended[-1].link)
    tamper(directory)
    verdict = check(directory, KEY)
    assert not verdict.ok and verdict.exit_code == 1
    assert (verdict.seq, verdict.file, verdict.line) == (seq, name, line)
    assert verdict.sentence == sentence
    assert verify(directory, KEY) == sentence


async def test_the_wrong_key_breaks_the_first_entry(directory: Path, clock: FakeClock) -> None:
    await write(directory, clock, 3)
    verdict = check(directory, OTHER_KEY)
    assert (verdict.ok, verdict.seq, verdict.file, verdict.line) == (False, 1, F1, 2)
    assert verdict.sentence == (
        f"broken at seq 1 (line 2 of {F1}): the entry's content does not match its link"
    )


async def test_a_tampered_last_entry_is_not_continued_in_its_file(
    directory: Path, clock: FakeClock
) -> None:
    await write(directory, clock, 3)
    edit_line(F1, 4, rewrite(outcome="refused"))(directory)
    async with AdapterLog(directory, KEY, clock=clock) as log:
        assert (await log.append(event(4))).file == F2
    verdict = check(directory, KEY)
    assert (verdict.seq, verdict.file, verdict.line) == (3, F1, 4)


def test_no_log_is_not_an_intact_log(directory: Path) -> None:
    assert check(directory, KEY) == LogVerdict(
        False, f"no adapter log at {directory}: it is not a directory"
    )
    directory.mkdir()
    verdict = check(directory, KEY)
    assert verdict.exit_code == 1
    assert verdict.sentence == f"no adapter log in {directory}: it holds no adapter-*.jsonl file"


async def test_a_log_opened_and_never_written_is_intact(directory: Path, clock: FakeClock) -> None:
    async with AdapterLog(directory, KEY, clock=clock) as log:
        assert log.head == Head(0, GENESIS_LINK)
    assert verify(directory, KEY) == f"adapter log intact: 0 entries, head {GENESIS_LINK} (seq 0)"


# -- writing ------------------------------------------------------------------------------


async def test_concurrent_appends_are_group_committed_into_one_chain(
    directory: Path, clock: FakeClock
) -> None:
    async with AdapterLog(directory, KEY, clock=clock, max_file_bytes=4096) as log:
        appended = await asyncio.gather(*(log.append(event(n)) for n in range(300)))
        batches = log.batches
    assert sorted(a.seq for a in appended) == list(range(1, 301))
    assert batches < 300 // 4, batches  # one write and one sync served many appends
    by_seq = {a.seq: a for a in appended}
    for name in files(directory):
        for number, entry in enumerate(lines(directory / name)[1:], start=2):
            a = by_seq[int(str(entry["seq"]))]
            assert (a.file, a.line, a.link) == (name, number, entry["link"])
            assert entry["request"] == f"req-{a.seq - 1:04d}"  # in the order they were called
    intact(check(directory, KEY), 300, by_seq[300].link)


async def test_values_are_bounded(directory: Path, clock: FakeClock) -> None:
    huge = event(
        1,
        request="r" * 1000,
        camera="c" * 5000,
        requester="x" * 10_000,
        role="r" * 100,
        reason="\ud800" + "y" * 1000,  # a lone surrogate, as a decoder may let through
        detail="\x00\n\u2028" * 1000,
        bytes=2**53,
    )
    async with AdapterLog(directory, KEY, clock=clock) as log:
        appended = await log.append(huge)
    raw = (directory / F1).read_bytes().splitlines()[1]
    assert len(raw) < MAX_LINE_BYTES // 2
    entry = orjson.loads(raw)
    limits = {"request": 128, "camera": 64, "requester": 200, "role": 32, "reason": 500,
              "detail": 500}  # fmt: skip
    for name, limit in limits.items():
        assert len(entry[name]) == limit and entry[name].endswith("…"), name
    assert entry["reason"].startswith("?y") and entry["bytes"] == str(2**53)
    intact(check(directory, KEY), 1, appended.link)
    for wrong in (
        {"type": "delete"},
        {"outcome": "maybe"},
        {"bytes": -1},
        {"bytes": 2**53 + 1},
        {"bytes": True},
    ):
        with pytest.raises(ValueError):
            event(1, **wrong)


async def test_the_file_io_runs_off_the_event_loop(
    directory: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []
    real = audit_log._sync

    def sync(fd: int) -> None:
        threads.append(threading.get_ident())
        real(fd)

    monkeypatch.setattr(audit_log, "_sync", sync)
    await write(directory, clock, 3)
    assert len(threads) == 3 and threading.get_ident() not in threads


@pytest.mark.parametrize("reached_the_disk", [True, False])
async def test_a_failed_write_fails_its_append_and_the_chain_goes_on(
    directory: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, reached_the_disk: bool
) -> None:
    def failing(self: AdapterLog, *args: object) -> None:
        if reached_the_disk:
            real_write(self, *args)  # the bytes are in the file; only the sync fails
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    real_write = AdapterLog._write
    async with AdapterLog(directory, KEY, clock=clock) as log:
        first = await log.append(event(1))
        monkeypatch.setattr(AdapterLog, "_write", failing)
        with pytest.raises(AdapterLogError) as exc:
            await log.append(event(2))
        assert str(exc.value) == (
            f"the adapter log in {directory} cannot be written: Input/output error"
        )
        monkeypatch.setattr(AdapterLog, "_write", real_write)
        after = await log.append(event(3))
    # Resumed from the disk, in a new file: after the failed entry if it got there.
    expected = 3 if reached_the_disk else 2
    assert after == Appended(expected, after.link, F2, 2)
    assert lines(directory / F2)[0]["seq"] == expected - 1
    intact(check(directory, KEY), expected, after.link)
    assert first.seq == 1


async def test_one_writer_per_directory_and_none_after_close(
    directory: Path, clock: FakeClock
) -> None:
    first = AdapterLog(directory, KEY, clock=clock)
    await first.append(event(1))
    second = AdapterLog(directory, KEY, clock=clock)
    with pytest.raises(AdapterLogError, match="another process is writing the adapter log"):
        await second.open()
    await first.close()
    with pytest.raises(AdapterLogError, match="closed"):
        await first.append(event(2))
    async with second:
        assert (await second.append(event(2))).seq == 2
    await second.close()  # twice is fine


async def test_the_key_comes_from_the_adapters_key_file_and_is_never_shown(
    tmp_path: Path, directory: Path, clock: FakeClock
) -> None:
    key_file = tmp_path / "adapter" / "camgw.key"
    create_key_file(key_file)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    master = load_key(key_file)
    key = key_from_file(key_file)
    assert (
        key
        == CredentialVault(master).derive(LOG_PURPOSE)
        == CredentialVault(master).derive("camgw adapter log v1")
    )
    assert key != CredentialVault(master).derive("camgw audit chain v1") and len(key) == 32
    async with AdapterLog(directory, key, clock=clock) as log:
        await log.append(event(1))
        shown = repr(log)
    for secret in (key.hex(), master.hex(), key_file.read_text().strip(), repr(key)):
        assert secret not in shown
        assert secret not in check(directory, OTHER_KEY).sentence
        assert secret not in (directory / F1).read_text()
    assert "hidden" in shown
    with pytest.raises(VaultError):
        key_from_file(tmp_path / "missing.key")
    with pytest.raises(ValueError, match="at least 16 bytes"):
        AdapterLog(directory, b"short", clock=clock)
