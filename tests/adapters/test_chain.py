"""The keyed hash chain's pure parts (`adapters/chain.py`), shared by the gateway's audit trail
and an edge adapter's own log: the link is exactly the documented HMAC, and the verifier names
the first broken or missing link in one sentence whatever was done to the entries."""

from __future__ import annotations

import hmac
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace

import orjson
import pytest

import gateway.audit_chain
import gateway.vault
from adapters import chain, vault
from adapters.chain import (
    GENESIS,
    GENESIS_LINK,
    Break,
    ChainEntry,
    Head,
    Verifier,
    compute_link,
    pairs,
    seal,
    verify_entries,
)
from adapters.uris import UriCredentials

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))

Entries = list[ChainEntry]


def chain_of(n: int, key: bytes = KEY, start: Head = GENESIS) -> Entries:
    contents = [["actor", f"tester-{i}", "detail", f"entry {i}", "time", f"t{i}"] for i in range(n)]
    sealed, _ = seal(key, start, contents)
    return [
        ChainEntry.from_pairs("", pairs(flat), f"entry {start.seq + i + 1}")
        for i, flat in enumerate(sealed)
    ]


def edited(es: Entries) -> Entries:
    es[2] = replace(es[2], content=[("actor", "someone else"), *es[2].content[1:]])
    return es


def deleted(es: Entries) -> Entries:
    del es[2]
    return es


def inserted(es: Entries) -> Entries:
    forged = ChainEntry("", 3, es[1].link, "f" * 64, [("actor", "forger")], "a forged entry")
    return [*es[:2], forged, *[replace(e, seq=(e.seq or 0) + 1) for e in es[2:]]]


def repeated(es: Entries) -> Entries:
    return [*es[:2], replace(es[1], where="a copy of entry 2"), *es[2:]]


def reordered(es: Entries) -> Entries:
    es[2], es[3] = es[3], es[2]
    return es


def relinked(es: Entries) -> Entries:
    # An edit whose link is made to fit again, by someone without the key.
    content = [("actor", "someone else"), *es[2].content[1:]]
    link = compute_link(OTHER_KEY, cast_str(es[2].prev), 3, content)
    es[2] = replace(es[2], content=content, link=link)
    return es


def reprev(es: Entries) -> Entries:
    es[3] = replace(es[3], prev="a" * 64)
    return es


def unreadable(es: Entries) -> Entries:
    es[1] = ChainEntry("", None, None, None, [], "entry 2", "the line is not JSON")
    return es


def malformed(es: Entries) -> Entries:
    es[1] = replace(es[1], link=None)
    return es


def cast_str(value: str | None) -> str:
    assert value is not None
    return value


CASES: list[tuple[str, Callable[[Entries], Entries], bytes, Break | None]] = [
    ("intact", lambda es: es, KEY, None),
    (
        "edited",
        edited,
        KEY,
        Break(3, "broken at seq 3 (entry 3): the entry's content does not match its link"),
    ),
    ("deleted", deleted, KEY, Break(3, "missing entries: seq 4 (entry 4) follows seq 2")),
    (
        "inserted",
        inserted,
        KEY,
        Break(3, "broken at seq 3 (a forged entry): the entry's content does not match its link"),
    ),
    (
        "repeated",
        repeated,
        KEY,
        Break(
            3,
            "broken at seq 3 (a copy of entry 2): the entry there claims seq 2, which repeats "
            "or goes back",
        ),
    ),
    ("reordered", reordered, KEY, Break(3, "missing entries: seq 4 (entry 4) follows seq 2")),
    (
        "relinked without the key",
        relinked,
        KEY,
        Break(3, "broken at seq 3 (entry 3): the entry's content does not match its link"),
    ),
    (
        "prev changed",
        reprev,
        KEY,
        Break(4, "broken at seq 4 (entry 4): its prev does not match the link of seq 3"),
    ),
    ("unreadable", unreadable, KEY, Break(2, "broken at seq 2 (entry 2): the line is not JSON")),
    (
        "malformed",
        malformed,
        KEY,
        Break(2, "broken at seq 2 (entry 2): the entry has no valid seq/prev/link"),
    ),
    (
        "wrong key",
        lambda es: es,
        OTHER_KEY,
        Break(1, "broken at seq 1 (entry 1): the entry's content does not match its link"),
    ),
]


@pytest.mark.parametrize(("case", "tamper", "key", "expected"), CASES, ids=[c[0] for c in CASES])
def test_the_verifier_names_the_first_broken_or_missing_link(
    case: str, tamper: Callable[[Entries], Entries], key: bytes, expected: Break | None
) -> None:
    entries = chain_of(5)
    result = verify_entries(key, tamper(entries))
    if expected is None:
        assert result == f"audit trail intact: 5 entries, seq 1..5, head {entries[-1].link}"
    else:
        assert result == expected


def test_the_end_must_be_where_the_head_says() -> None:
    entries = chain_of(5)
    head = Head(5, cast_str(entries[-1].link))
    assert isinstance(verify_entries(KEY, entries, end=head), str)
    assert verify_entries(KEY, entries[:4], end=head, end_what="the head key") == Break(
        5, "missing entries: the head key names seq 5 but the entries end at seq 4"
    )
    assert verify_entries(KEY, entries, end=Head(4, "0" * 64), end_what="the head key") == Break(
        5, "broken at seq 5: the head key names seq 4 but the entries go on to seq 5"
    )
    assert verify_entries(KEY, entries, end=Head(5, "0" * 64), end_what="the head key") == Break(
        5, "broken at seq 5: the head key does not match the link of that entry"
    )


def test_a_chain_continues_from_any_position_and_names_itself() -> None:
    first = chain_of(3)
    start = Head(3, cast_str(first[-1].link))
    rest = chain_of(2, start=start)
    assert rest[0].prev == start.link and rest[0].seq == 4
    assert (
        verify_entries(KEY, rest, start=start, label="adapter log")
        == f"adapter log intact: 2 entries, seq 4..5, head {rest[-1].link}"
    )
    assert verify_entries(KEY, rest) == Break(
        1, "missing entries: seq 4 (entry 4) follows the start of the chain"
    )
    assert verify_entries(KEY, []) == f"audit trail intact: 0 entries, head {GENESIS_LINK} (seq 0)"


def test_the_link_is_the_documented_hmac() -> None:
    content = [("actor", "a"), ("time", "2024-05-01T08:00:00.000+00:00")]
    expected = hmac.new(
        KEY, orjson.dumps([GENESIS_LINK, 1, [["actor", "a"], ["time", content[1][1]]]]), "sha256"
    ).hexdigest()
    assert compute_link(KEY, GENESIS_LINK, 1, content) == expected
    sealed, head = seal(KEY, GENESIS, [["actor", "a", "time", content[1][1]]])
    assert sealed == [["seq", "1", "prev", GENESIS_LINK, "actor", "a", "time", content[1][1],
                       "link", expected]]  # fmt: skip
    assert head == Head(1, expected)
    # A value cannot be shifted into the next field: the encoding is a JSON array.
    assert compute_link(KEY, GENESIS_LINK, 1, [("a", "b,c")]) != compute_link(
        KEY, GENESIS_LINK, 1, [("a", "b"), ("c", "")]
    )


def test_the_first_problem_is_kept_and_the_key_is_not_shown() -> None:
    entries = chain_of(4)
    verifier = Verifier(KEY, label="adapter log")
    assert KEY.hex() not in repr(verifier) and "hidden" in repr(verifier)
    verifier.feed(entries[0])
    first = verifier.feed(entries[2])
    assert first == Break(2, "missing entries: seq 3 (entry 3) follows seq 1")
    assert verifier.feed(entries[1]) is first and verifier.feed(entries[3]) is first
    assert verifier.fail(Break(9, "later")) is first


def test_one_implementation_for_the_gateway_and_the_adapters() -> None:
    for name in ("seal", "compute_link", "canonical", "Head", "ChainEntry", "Verifier", "Break",
                 "GENESIS", "GENESIS_LINK", "CHAIN_FIELDS", "pairs", "verify_entries"):  # fmt: skip
        assert getattr(gateway.audit_chain, name) is getattr(chain, name), name
    for name in ("CredentialVault", "VaultError", "load_key", "create_key_file", "KEY_BYTES"):
        assert getattr(gateway.vault, name) is getattr(vault, name), name


def test_adapters_never_import_the_gateway() -> None:
    code = (
        "import sys, adapters.chain, adapters.vault, adapters.audit_log; "
        "bad = sorted(m for m in sys.modules if m == 'gateway' or m.startswith('gateway.')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_vault_seals_to_an_id_and_derives_separate_keys() -> None:
    sealer = vault.CredentialVault(os.urandom(32))
    creds = UriCredentials("admin", "hunter2")
    sealed = sealer.seal("police.gate-3", creds)
    assert b"hunter2" not in sealed
    assert sealer.open("police.gate-3", sealed) == creds
    with pytest.raises(vault.VaultError) as exc:
        sealer.open("police.gate-4", sealed)
    assert "hunter2" not in str(exc.value)
    assert "hidden" in repr(sealer)
    keys = {sealer.derive(p) for p in ("camgw adapter log v1", "camgw audit chain v1", "ids")}
    assert len(keys) == 3 and all(len(k) == 32 for k in keys)
