"""The audit trail as evidence: a hash chain keyed by a secret Redis never sees, one chain across
coroutines, gateways and registry scripts; tampering through Redis reported at the first broken
seq; the oldest entries archived to files before any trim; exports an auditor can verify
offline; unauthenticated floods counted, not appended; and the CLI that does all of it."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from ipaddress import ip_address
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import generate_latest
from redis.asyncio import Redis

from gateway.app import create_app, redis_client
from gateway.audit import (
    MAX_EXTRA_FIELDS,
    OTHER_SOURCES,
    AuditEvent,
    AuditLog,
    AuditQuery,
    RefusalAggregator,
)
from gateway.audit_archive import list_segments, read_entries, verify_file, write_segment
from gateway.audit_chain import CHAIN_PURPOSE, GENESIS_LINK, Break, ChainEntry, Head, seal
from gateway.keys import AUDIT
from gateway.metrics import Metrics
from gateway.models import Camera, CameraCreate, CameraSource
from gateway.records import new_camera
from gateway.redis_server import RedisServer
from gateway.registry import Registry
from gateway.settings import DEFAULT_CONFIG, AuditConfig, Settings, load_settings
from gateway.vault import CredentialVault, create_key_file, load_key

Rows = list[tuple[bytes, dict[bytes, bytes]]]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0 - 1_700_000_000 % 60 + 1  # a second into a minute

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def raw(settings: Settings) -> AsyncIterator[Redis]:
    client = redis_client(settings.redis.url)
    yield client
    await client.aclose()


def audit_log(
    raw: Redis, settings: Settings, vault: CredentialVault, config: AuditConfig | None = None
) -> AuditLog:
    return AuditLog(raw, settings.redis.prefix, vault, config)


def event(n: int, **extra: str) -> AuditEvent:
    return AuditEvent(
        actor=f"tester#{n:08x}",
        role="admin",
        action="test.append",
        target=f"target-{n}",
        outcome="ok",
        status=200,
        detail=f"entry {n}",
        extra=extra,
    )


async def rows(raw: Redis, audit: AuditLog) -> Rows:
    return cast(Rows, await raw.xrange(audit.key))


async def seqs(raw: Redis, audit: AuditLog) -> list[int]:
    return [int(f[b"seq"]) for _, f in await rows(raw, audit)]


async def broken(audit: AuditLog, archive: Path | None = None) -> Break:
    result = await audit.verify(archive or Path("/nonexistent/camgw-audit"))
    assert isinstance(result, Break), result
    return result


async def intact(audit: AuditLog, archive: Path | None = None) -> str:
    result = await audit.verify(archive or Path("/nonexistent/camgw-audit"))
    assert isinstance(result, str), result.sentence
    return result


def camera(n: int, settings: Settings, network: str = "governance") -> Camera:
    octet, category = {"governance": (1, "sharp-eyes"), "police": (2, "traffic")}[network]
    body = CameraCreate(
        id=f"{network}.chain-{n}",
        network=network,
        name=f"Chain camera {n}",
        category=category,
        address=ip_address(f"127.{octet}.7.{n}"),
    )
    return new_camera(body, settings, datetime.now(UTC), CameraSource.registered)


def change(actor: str, action: str, cam: Camera) -> AuditEvent:
    return AuditEvent(
        actor=actor,
        role="admin",
        action=action,
        target=cam.id,
        network=cam.network,
        outcome="ok",
        status=200,
    )


# -- one chain, whoever writes ----------------------------------------------------------------


async def test_concurrent_appends_make_one_unbroken_chain_in_few_script_calls(
    raw: Redis, settings: Settings, vault: CredentialVault
) -> None:
    audit = audit_log(raw, settings, vault)
    calls = 0
    script = audit._script

    async def counting(**kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return await script(**kwargs)

    audit._script = counting  # type: ignore[assignment]
    await asyncio.gather(*(audit.append(event(n)) for n in range(300)))

    assert await seqs(raw, audit) == list(range(1, 301))  # stream order is chain order
    assert (await intact(audit)).startswith("audit trail intact: 300 entries, seq 1..300")
    assert calls < 30  # group commit: one script call serves many entries
    head = await raw.get(audit.head_key)
    last = (await rows(raw, audit))[-1][1]
    assert head == b"300 " + last[b"link"]
    first = (await rows(raw, audit))[0][1]
    assert first[b"prev"] == GENESIS_LINK.encode()


async def test_the_key_never_reaches_redis_and_links_need_it(
    raw: Redis, settings: Settings, vault: CredentialVault
) -> None:
    audit = audit_log(raw, settings, vault)
    await audit.append(event(1))
    key = vault.derive(CHAIN_PURPOSE)
    values = [v for _, f in await rows(raw, audit) for v in f.values()]
    assert not any(key.hex().encode() in v or key in v for v in values)
    # The same trail checked with another key is broken at its first entry.
    other = audit_log(raw, settings, CredentialVault(os.urandom(32)))
    problem = await broken(other)
    assert problem.seq == 1
    assert "content does not match its link" in problem.sentence


async def test_a_stale_head_is_refused_and_the_entry_sealed_again(
    raw: Redis, settings: Settings, vault: CredentialVault
) -> None:
    one, two = audit_log(raw, settings, vault), audit_log(raw, settings, vault)
    await one.append(event(1))  # `one` caches the head after seq 1
    await two.append(event(2))  # another gateway moves it to seq 2
    await one.append(event(3))  # refused (HEAD), sealed again after seq 2
    assert one.chain.retries == 1
    assert await seqs(raw, one) == [1, 2, 3]
    # The registry's scripts take part in the same protocol.
    registry = Registry(raw, settings, vault, one)
    await two.append(event(4))
    cam = camera(1, settings)
    await registry.create(cam, audit=change("alice#00000001", "camera.create", cam))
    assert one.chain.retries == 2
    await two.append(event(5))
    await registry.delete(cam.id, change("alice#00000001", "camera.delete", cam))
    assert one.chain.retries == 3
    actions = [f[b"action"].decode() for _, f in await rows(raw, one)]
    assert actions[-3:] == ["camera.create", "test.append", "camera.delete"]
    assert "7 entries, seq 1..7" in await intact(one)


async def test_two_gateways_and_registry_writes_share_one_chain(
    raw: Redis, settings: Settings, vault: CredentialVault
) -> None:
    a, b = audit_log(raw, settings, vault), audit_log(raw, settings, vault)
    reg_a, reg_b = Registry(raw, settings, vault, a), Registry(raw, settings, vault, b)
    singles = [camera(n, settings) for n in range(1, 21)]
    batch = [camera(n, settings, "police") for n in range(1, 31)]

    async def gateway_a() -> None:
        for n in range(0, 100, 10):
            await asyncio.gather(*(a.append(event(n + i)) for i in range(10)))

    async def gateway_b() -> None:
        await asyncio.gather(*(b.append(event(1000 + n)) for n in range(100)))

    async def registry_a() -> None:
        for cam in singles:
            await reg_a.create(cam, audit=change("alice#00000001", "camera.create", cam))
        for cam in singles[:5]:
            await reg_a.delete(cam.id, change("alice#00000001", "camera.delete", cam))
        for cam in singles[5:10]:
            renamed = cam.model_copy(update={"name": "renamed", "rev": cam.rev + 1})
            await reg_a.replace(renamed, cam.rev, audit=change("alice#0001", "camera.update", cam))

    async def registry_b() -> None:
        items = [(c, None, change("bob#00000002", "camera.create", c)) for c in batch]
        assert all(isinstance(r, int) for r in await reg_b.create_many(items))

    await asyncio.gather(gateway_a(), gateway_b(), registry_a(), registry_b())

    total = 100 + 100 + 20 + 5 + 5 + 30
    assert f"{total} entries, seq 1..{total}" in await intact(a)
    assert await seqs(raw, a) == list(range(1, total + 1))
    created = sorted(
        f[b"target"].decode() for _, f in await rows(raw, a) if f[b"action"] == b"camera.create"
    )
    assert created == sorted(c.id for c in singles + batch)  # each change has its one entry


async def test_busy_gateways_do_not_starve_each_other(
    raw: Redis, settings: Settings, vault: CredentialVault
) -> None:
    """Each gateway writes back to back; without the turn claim the loser of a race kept
    losing (its retry always arrived after the winner's next write) and answered 503."""
    gateways = [audit_log(raw, settings, vault) for _ in range(3)]

    async def busy(g: int, audit: AuditLog) -> None:
        for n in range(150):
            await audit.append(event(g * 1000 + n))

    async with asyncio.timeout(30):
        await asyncio.gather(*(busy(g, a) for g, a in enumerate(gateways)))
    assert "450 entries, seq 1..450" in await intact(gateways[0])
    assert sum(g.chain.retries for g in gateways) > 0
    assert not await raw.exists(f"{settings.redis.prefix}:audit:turn")  # every claim was used


async def test_a_refused_create_in_a_pipelined_batch_keeps_the_chain_whole(
    raw: Redis, settings: Settings, vault: CredentialVault
) -> None:
    audit = audit_log(raw, settings, vault)
    registry = Registry(raw, settings, vault, audit)
    cams = [camera(n, settings) for n in range(1, 9)]
    await registry.create(cams[2], audit=change("alice#00000001", "camera.create", cams[2]))
    items = [(c, None, change("bob#00000002", "camera.create", c)) for c in cams]
    results = await registry.create_many(items)
    # The duplicate is refused as such; the creates after it, sealed after an entry that was
    # never written, went out again and were created with their entries.
    assert [type(r).__name__ for r in results] == ["int"] * 2 + ["Conflict"] + ["int"] * 5
    assert "8 entries, seq 1..8" in await intact(audit)
    # A whole batch of duplicates (a demo re-seeding its fleet) is one round, no retries.
    before = audit.chain.retries
    again = await registry.create_many(items)
    assert all(type(r).__name__ == "Conflict" for r in again)
    assert audit.chain.retries == before
    assert "8 entries" in await intact(audit)


async def test_every_stored_value_is_bounded(
    raw: Redis, settings: Settings, vault: CredentialVault
) -> None:
    huge = "x" * 100_000
    extra = {"seq": "999", "link": "f" * 64} | {f"k{i}-{huge[:200]}": huge for i in range(100)}
    audit = audit_log(raw, settings, vault)
    await audit.append(
        AuditEvent(
            actor=huge,
            role=huge,
            action=huge,
            target=huge,
            outcome=huge,
            status=401,
            network=huge,
            detail=huge,
            request_id=huge,
            extra=extra,
        )
    )
    (_, fields), *_ = await rows(raw, audit)
    assert max(len(k) for k in fields) <= 64
    assert max(len(v.decode()) for v in fields.values()) <= 500
    assert len(fields) <= 9 + 1 + MAX_EXTRA_FIELDS + 1 + 3  # base, status, extras, time, chain
    assert fields[b"seq"] == b"1"  # an extra field cannot pose as the chain's
    assert (fields[b"x_seq"], fields[b"extra_dropped"]) == (b"999", b"86")
    assert "1 entries" in await intact(audit)


# -- tampering through Redis -----------------------------------------------------------------


@pytest.fixture
async def trail(raw: Redis, settings: Settings, vault: CredentialVault) -> AuditLog:
    """Ten entries, seq 1..10."""
    audit = audit_log(raw, settings, vault)
    for n in range(1, 11):
        await audit.append(event(n))
    return audit


async def entry(raw: Redis, audit: AuditLog, seq: int) -> tuple[bytes, dict[bytes, bytes]]:
    return next(r for r in await rows(raw, audit) if r[1][b"seq"] == str(seq).encode())


async def test_a_forged_entry_is_reported_at_its_seq(raw: Redis, trail: AuditLog) -> None:
    _, last = await entry(raw, trail, 10)
    forged = dict(last) | {b"seq": b"11", b"prev": last[b"link"], b"actor": b"mallory"}
    forged[b"link"] = b"ab" * 32  # without the key no link fits
    await raw.xadd(trail.key, forged)  # type: ignore[arg-type]
    problem = await broken(trail)
    assert problem.seq == 11
    assert problem.sentence.startswith("broken at seq 11 (stream id ")
    assert problem.sentence.endswith("the entry's content does not match its link")


async def test_an_entry_without_chain_fields_is_reported(raw: Redis, trail: AuditLog) -> None:
    await raw.xadd(trail.key, {"actor": "mallory", "action": "camera.delete"})
    problem = await broken(trail)
    assert (problem.seq, "no valid seq/prev/link" in problem.sentence) == (11, True)


async def test_a_deleted_entry_is_reported_as_missing(raw: Redis, trail: AuditLog) -> None:
    entry_id, _ = await entry(raw, trail, 4)
    await raw.xdel(trail.key, entry_id)
    problem = await broken(trail)
    assert problem.seq == 4
    assert problem.sentence.startswith("missing entries: seq 5 (stream id ")
    assert problem.sentence.endswith("follows seq 3")


async def test_an_entry_deleted_and_added_again_changed_is_reported(
    raw: Redis, trail: AuditLog
) -> None:
    entry_id, fields = await entry(raw, trail, 4)
    await raw.xdel(trail.key, entry_id)
    await raw.xadd(trail.key, fields | {b"detail": b"nothing happened"})  # type: ignore[arg-type]
    problem = await broken(trail)
    assert problem.seq == 4
    assert "missing entries: seq 5" in problem.sentence
    # Even put back in its place (a rewritten stream), the changed content does not fit.
    everything = await rows(raw, trail)
    await raw.delete(trail.key)
    for _, f in sorted(everything, key=lambda r: int(r[1][b"seq"])):
        await raw.xadd(trail.key, f)  # type: ignore[arg-type]
    problem = await broken(trail)
    assert problem.seq == 4
    assert problem.sentence.endswith("the entry's content does not match its link")


async def test_a_cut_tail_is_reported_by_the_head(raw: Redis, trail: AuditLog) -> None:
    entry_id, _ = await entry(raw, trail, 10)
    await raw.xdel(trail.key, entry_id)
    problem = await broken(trail)
    assert problem.seq == 10
    assert problem.sentence == (
        "missing entries: the head key names seq 10 but the entries end at seq 9"
    )


async def test_a_rewritten_head_is_reported_at_the_first_broken_seq(
    raw: Redis, settings: Settings, vault: CredentialVault, trail: AuditLog
) -> None:
    await raw.set(trail.head_key, "13 " + "c" * 64)
    problem = await broken(trail)
    assert (problem.seq, "names seq 13" in problem.sentence) == (11, True)
    # A gateway writing after the rewrite continues from it; the gap stays visible.
    await audit_log(raw, settings, vault).append(event(11))
    problem = await broken(trail)
    assert problem.seq == 11
    assert problem.sentence.startswith("missing entries: seq 14 (stream id ")
    # Same seq, another link.
    await raw.set(trail.head_key, "14 " + "d" * 64)
    assert (await broken(trail)).seq == 11


async def test_a_head_with_the_wrong_link_is_reported(raw: Redis, trail: AuditLog) -> None:
    await raw.set(trail.head_key, "10 " + "e" * 64)
    problem = await broken(trail)
    assert problem.seq == 10
    assert "does not match the link" in problem.sentence


async def test_an_entry_sealed_with_another_key_is_reported(
    raw: Redis, settings: Settings, trail: AuditLog
) -> None:
    _, last = await entry(raw, trail, 10)
    body = [
        x.decode() for k, v in last.items() if k not in (b"seq", b"prev", b"link") for x in (k, v)
    ]
    (forged,), _ = seal(os.urandom(32), Head(10, last[b"link"].decode()), [body])
    await raw.xadd(trail.key, dict(zip(forged[::2], forged[1::2], strict=True)))  # type: ignore[arg-type]
    problem = await broken(trail)
    assert (problem.seq, "content does not match" in problem.sentence) == (11, True)


# -- archive before trim -----------------------------------------------------------------------


def small(tmp_path: Path, **over: Any) -> AuditConfig:
    return AuditConfig(max_entries=10, segment_entries=4, archive_dir=tmp_path / "audit", **over)


async def test_the_oldest_entries_are_archived_before_they_are_trimmed(
    raw: Redis, settings: Settings, vault: CredentialVault, tmp_path: Path
) -> None:
    config = small(tmp_path)
    audit = audit_log(raw, settings, vault, config)
    for n in range(23):
        await audit.append(event(n))
    before = [i for i, _ in await rows(raw, audit)]

    assert await audit.archive() == 4  # 23 -> 19 -> 15 -> 11 -> 7
    assert await raw.xlen(audit.key) == 7
    segments = list_segments(config.archive_dir)
    assert [(s.first_seq, s.last_seq) for s in segments] == [(1, 4), (5, 8), (9, 12), (13, 16)]
    assert segments[0].path.name == "audit-000000000001-000000000004.jsonl"
    assert segments[0].prev == GENESIS_LINK
    archived = [e.id.encode() for s in segments for e in read_entries(s.path)]
    remaining = [i for i, _ in await rows(raw, audit)]
    assert archived + remaining == before  # nothing trimmed that is not in a segment file
    first = orjson.loads(segments[1].path.read_bytes().splitlines()[0])
    assert first["format"] == "camgw-audit/1"
    assert (first["kind"], first["count"]) == ("segment", 4)
    assert first["prev"] == list(read_entries(segments[0].path))[-1].link
    assert first["head"] == list(read_entries(segments[1].path))[-1].link
    assert await audit.archive() == 0  # under the limit: nothing to do

    assert "23 entries, seq 1..23" in await intact(audit, config.archive_dir)
    for n in range(10):
        await audit.append(event(100 + n))
    assert await audit.archive() == 2  # 17 -> 13 -> 9
    assert "33 entries, seq 1..33" in await intact(audit, config.archive_dir)
    # The API reads the stream only; the archive is for auditors' copies and `verify`.
    page = await audit.query(AuditQuery(limit=1000))
    assert [e.seq for e in page.items] == list(range(33, 24, -1))
    # Without the archive the start of the trail is missing, and verify says so.
    problem = await broken(audit)
    assert problem.seq == 1
    assert problem.sentence.startswith("missing entries: seq 25 (stream id ")
    assert problem.sentence.endswith("follows the start of the chain")


async def test_a_tampered_or_lost_segment_is_reported(
    raw: Redis, settings: Settings, vault: CredentialVault, tmp_path: Path
) -> None:
    config = small(tmp_path)
    audit = audit_log(raw, settings, vault, config)
    for n in range(16):
        await audit.append(event(n))
    assert await audit.archive() == 2
    first, second = list_segments(config.archive_dir)
    lines = second.path.read_bytes().splitlines()
    lines[2] = lines[2].replace(b"entry 5", b"entry 0")  # seq 6's detail
    second.path.write_bytes(b"\n".join(lines) + b"\n")
    problem = await broken(audit, config.archive_dir)
    assert problem.seq == 6
    assert f"line 3 of {second.path.name}" in problem.sentence
    first.path.unlink()
    problem = await broken(audit, config.archive_dir)
    assert (problem.seq, problem.sentence.startswith("missing entries: seq 5")) == (1, True)


async def test_a_forged_entry_is_archived_as_evidence(
    raw: Redis, settings: Settings, vault: CredentialVault, tmp_path: Path
) -> None:
    config = small(tmp_path)
    audit = audit_log(raw, settings, vault, config)
    await raw.xadd(audit.key, {"actor": "mallory", "action": "camera.delete"})
    for n in range(11):
        await audit.append(event(n))
    assert await audit.archive() == 1
    assert await raw.xlen(audit.key) == 8
    (segment,) = list_segments(config.archive_dir)
    assert segment.path.name == "audit-000000000000-000000000003.jsonl"
    problem = await broken(audit, config.archive_dir)
    assert (problem.seq, "no valid seq/prev/link" in problem.sentence) == (1, True)


async def test_an_unwritable_archive_trims_nothing_and_is_counted(
    raw: Redis,
    settings: Settings,
    vault: CredentialVault,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    config = AuditConfig(max_entries=10, segment_entries=4, archive_dir=tmp_path / "a-file" / "x")
    audit = audit_log(raw, settings, vault, config)
    for n in range(15):
        await audit.append(event(n))
    metrics = Metrics()
    metrics.watch_audit(audit)
    with caplog.at_level(logging.ERROR, logger="gateway.audit_archive"):
        assert await audit.archive() == 0
    assert await raw.xlen(audit.key) == 15  # the stream grows instead
    assert [r.getMessage() for r in caplog.records] == [
        "audit archive not written; nothing trimmed"
    ]
    text = generate_latest(metrics.registry).decode()
    assert "camgw_audit_archive_failures_total 1.0" in text
    assert "camgw_audit_entries 15.0" in text
    assert "15 entries" in await intact(audit, tmp_path)


async def test_one_archiver_at_a_time_and_a_rerun_after_a_crash_keeps_one_copy(
    raw: Redis, settings: Settings, vault: CredentialVault, tmp_path: Path
) -> None:
    config = small(tmp_path)
    audit = audit_log(raw, settings, vault, config)
    for n in range(12):
        await audit.append(event(n))
    await raw.set(audit.archiver.lock_key, "another gateway", px=60_000)
    assert await audit.archive() == 0
    assert await raw.xlen(audit.key) == 12
    await raw.delete(audit.archiver.lock_key)
    # A previous run wrote the segment and died before trimming.
    oldest = [ChainEntry.from_stream(i, f) for i, f in (await rows(raw, audit))[:4]]
    header = {
        "format": "camgw-audit/1",
        "kind": "segment",
        "first_seq": 1,
        "last_seq": 4,
        "count": 4,
        "prev": GENESIS_LINK,
        "head": oldest[-1].link,
        "first_id": oldest[0].id,
        "last_id": oldest[-1].id,
    }
    write_segment(config.archive_dir, header, oldest)
    assert await audit.archive() == 1
    assert [p.name for p in sorted(config.archive_dir.iterdir())] == [
        "audit-000000000001-000000000004.jsonl"
    ]
    assert await raw.xlen(audit.key) == 8
    assert "12 entries" in await intact(audit, config.archive_dir)


# -- export ---------------------------------------------------------------------------------------


async def test_an_export_verifies_offline_and_tampering_with_it_does_not(
    raw: Redis, settings: Settings, vault: CredentialVault, tmp_path: Path
) -> None:
    config = small(tmp_path)
    audit = audit_log(raw, settings, vault, config)
    for n in range(20):
        await audit.append(event(n))
    await audit.archive()  # part of it in the archive, part in the stream
    out = tmp_path / "export.jsonl"
    with out.open("wb") as fh:
        count = await audit.export(datetime(1970, 1, 1, tzinfo=UTC), fh, exported_by="t")
    assert count == 20
    key = vault.derive(CHAIN_PURPOSE)
    assert verify_file(out, key) == (
        f"audit trail intact: 20 entries, seq 1..20, head "
        f"{(await raw.get(audit.head_key) or b'').decode().split()[1]}"
    )
    header = orjson.loads(out.read_bytes().splitlines()[0])
    assert (header["kind"], header["first_seq"], header["last_seq"]) == ("export", 1, 20)
    assert header["exported_by"] == "t"

    # From a time on: the entries from the first stream id at or after it, to the end.
    entries = [ChainEntry.from_stream(i, f) for i, f in await rows(raw, audit)]
    pick = entries[-3]
    since = datetime.fromtimestamp(int(pick.id.split("-")[0]) / 1000, UTC)
    part = tmp_path / "part.jsonl"
    with part.open("wb") as fh:
        await audit.export(since, fh)
    got = [e.seq for e in read_entries(part)]
    assert got[-3:] == [18, 19, 20]
    assert got == list(range(got[0], 21))
    assert cast(str, verify_file(part, key)).startswith(f"audit trail intact: {len(got)} entries")

    lines = out.read_bytes().splitlines()
    changed = lines.copy()
    changed[8] = changed[8].replace(b"entry 7", b"entry 9")  # seq 8
    (tmp_path / "changed.jsonl").write_bytes(b"\n".join(changed) + b"\n")
    problem = verify_file(tmp_path / "changed.jsonl", key)
    assert isinstance(problem, Break)
    assert (problem.seq, "content does not match" in problem.sentence) == (8, True)
    (tmp_path / "cut.jsonl").write_bytes(b"\n".join(lines[:-1]) + b"\n")
    problem = verify_file(tmp_path / "cut.jsonl", key)
    assert isinstance(problem, Break)
    assert problem.sentence == (
        "missing entries: the header of cut.jsonl names seq 20 but the entries end at seq 19"
    )
    (tmp_path / "dropped.jsonl").write_bytes(b"\n".join(lines[:5] + lines[6:]) + b"\n")
    problem = verify_file(tmp_path / "dropped.jsonl", key)
    assert isinstance(problem, Break)
    assert problem.seq == 5


# -- unauthenticated refusals are counted ---------------------------------------------------------


async def test_a_flood_of_unauthenticated_requests_is_one_entry_with_its_count(
    client: TestClient,  # type: ignore[type-arg]
    raw: Redis,
) -> None:
    audit = client.app[AUDIT]
    clock = FakeClock()
    audit.refusals.clock = clock
    long_path = "/api/v1/cameras/" + "x" * 4000

    async def attempt(n: int) -> None:
        path = long_path if n == 0 else f"/api/v1/cameras?page={n}"
        headers = {"Authorization": f"Bearer cgw_00000000_forged{n}"} if n % 2 else {}
        resp = await client.get(path, headers=headers)
        assert resp.status == 401

    for start in range(0, 500, 50):
        await asyncio.gather(*(attempt(n) for n in range(start, start + 50)))
    assert await raw.xlen(audit.key) == 0  # nothing written per request
    assert await audit.flush_refusals() == 0  # the minute is not over
    clock.now += 60
    assert await audit.flush_refusals() == 1
    assert await audit.flush_refusals() == 0  # once

    (_, fields), *more = await rows(raw, audit)
    assert more == []
    got = {k.decode(): v.decode() for k, v in fields.items()}
    assert (got["action"], got["actor"], got["status"]) == ("auth.refused", "anonymous", "401")
    assert got["target"] == "127.0.0.1"
    assert got["count"] == "500"
    assert got["reasons"] == "bad_token=250,no_token=250"
    paths = orjson.loads(got["paths"])
    assert 1 <= len(paths) <= 3
    assert all(len(p) <= 100 for p in paths)
    assert long_path not in str(fields)  # the raw path is not stored

    def iso(ts: float) -> str:
        return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")

    start = clock.now - 60
    assert (got["minute"], got["first"], got["last"]) == (iso(start - 1), iso(start), iso(start))
    assert got["time"] == iso(clock.now)


async def test_sources_held_per_minute_are_bounded(
    raw: Redis, settings: Settings, vault: CredentialVault
) -> None:
    audit = audit_log(raw, settings, vault)
    clock = FakeClock()
    counter = RefusalAggregator(max_sources=3, clock=clock)
    for n in range(10):
        counter.note(f"10.0.0.{n % 5}", "/x", "no_token")
    clock.now += 60
    assert await counter.flush(audit) == 4
    got = {
        f[b"target"].decode(): (f[b"count"].decode(), f[b"detail"].decode())
        for _, f in await rows(raw, audit)
    }
    assert {k: v[0] for k, v in got.items()} == {
        "10.0.0.0": "2",
        "10.0.0.1": "2",
        "10.0.0.2": "2",
        OTHER_SOURCES: "4",
    }
    assert "beyond the first 3" in got[OTHER_SOURCES][1]


async def test_counts_still_held_are_written_at_shutdown(
    aiohttp_client: Callable[..., Awaitable[TestClient]],  # type: ignore[type-arg]
    settings: Settings,
    vault: CredentialVault,
    raw: Redis,
) -> None:
    client = await aiohttp_client(create_app(settings, vault))
    client.app[AUDIT].refusals.clock = FakeClock()
    for _ in range(3):
        assert (await client.get("/api/v1/summary")).status == 401
    key = client.app[AUDIT].key
    await client.close()
    ((_, fields),) = cast(Rows, await raw.xrange(key))
    assert (fields[b"action"], fields[b"count"]) == (b"auth.refused", b"3")


# -- the CLI -----------------------------------------------------------------------------------


@pytest.fixture
def cli_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", appendonly=False).start()
    yield server
    server.stop()


Run = Callable[..., Awaitable[tuple[int, str, str]]]


@pytest.fixture
def camgw(cli_redis: RedisServer, tmp_path: Path) -> Run:
    key_file = tmp_path / "camgw.key"
    create_key_file(key_file)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAMGW_", "REDIS_"))}
    env |= {"REDIS_URL": cli_redis.url, "CAMGW_KEY_FILE": str(key_file)}

    async def run(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            *args,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(60):
            out, err = await proc.communicate()
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    return run


async def test_cli_verify_and_export(camgw: Run, cli_redis: RedisServer, tmp_path: Path) -> None:
    archive = tmp_path / "audit"
    code, _, err = await camgw(
        "token", "create", "--role", "auditor", "--networks", "*", "--name", "i"
    )
    assert code == 0, err
    # A gateway with the same key file and Redis writes and archives.
    settings = load_settings(DEFAULT_CONFIG, use_env=False)
    vault = CredentialVault(load_key(tmp_path / "camgw.key"))
    client = redis_client(cli_redis.url)
    try:
        audit = AuditLog(client, settings.redis.prefix, vault, small(tmp_path))
        for n in range(20):
            await audit.append(event(n))
        assert await audit.archive() == 3  # 21 -> 17 -> 13 -> 9
        head = (await client.get(audit.head_key) or b"").decode().split()[1]

        code, out, err = await camgw("audit", "verify", "--archive-dir", str(archive))
        assert (code, out) == (0, f"audit trail intact: 21 entries, seq 1..21, head {head}\n"), err

        export = tmp_path / "police-copy.jsonl"
        code, _, err = await camgw(
            "audit", "export", "--since", "2000-01-01T00:00:00Z", "--out", str(export),
            "--archive-dir", str(archive),
        )  # fmt: skip
        assert code == 0, err
        assert "exported 21 entries" in err
        code, out, _ = await camgw("audit", "verify", "--file", str(export))
        assert (code, out) == (0, f"audit trail intact: 21 entries, seq 1..21, head {head}\n")
        # The export was itself recorded (after the entries it holds).
        last = cast(Rows, await client.xrevrange(audit.key, count=1))[0][1]
        assert (last[b"action"], last[b"via"], last[b"returned"]) == (
            b"audit.read",
            b"export",
            b"21",
        )

        lines = export.read_bytes().splitlines()
        lines[3] = lines[3].replace(b'"entry 1"', b'"entry 2"')
        export.write_bytes(b"\n".join(lines) + b"\n")
        code, out, _ = await camgw("audit", "verify", "--file", str(export))
        assert code == 1
        assert out.startswith("broken at seq 3 (stream id ")
        assert out.endswith("the entry's content does not match its link\n")

        victim = cast(Rows, await client.xrange(audit.key, count=3))[2][0]
        await client.xdel(audit.key, victim)
        code, out, _ = await camgw("audit", "verify", "--archive-dir", str(archive))
        assert code == 1
        assert out.startswith("missing entries: seq 16 (stream id ")
    finally:
        await client.aclose()

    for since in ("0.5", "1969-12-31T00:00:00Z", "yesterday"):
        code, out, err = await camgw("audit", "export", "--since", since)
        assert (code, out) == (2, ""), since
        assert "--since must" in err

    # Without the key file nothing changes: a token is never created without its entry.
    (tmp_path / "camgw.key").unlink()
    code, out, err = await camgw(
        "token", "create", "--role", "viewer", "--networks", "*", "--name", "x"
    )
    assert (code, out) == (1, "")
    assert "no credential key" in err
    code, out, _ = await camgw("token", "list")
    assert (code, len(out.splitlines())) == (0, 2)  # the header; the auditor's token only
