"""The GB/T 28181 protocol pieces: SIP parsing (strict, bounded), digest, MANSCDP bodies in
GB2312/GB18030 through defusedxml (the codes: test_gb28181_codes.py)."""

from __future__ import annotations

import random

import pytest

from adapters.gb28181 import manscdp
from adapters.gb28181.digest import (
    DigestError,
    NonceIssuer,
    authorization,
    parse_authorization,
)
from adapters.gb28181.manscdp import CatalogItem, ManscdpError
from adapters.gb28181.sip import SipError, SipRequest, parse, response_to
from adapters.simulator.gb28181 import mutate

REGISTER = (
    b"REGISTER sip:31011700002000000001@3101170000 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5070;rport;branch=z9hG4bK1\r\n"
    b"From: <sip:31011700002000000002@3101170000>;tag=a1\r\n"
    b"To: <sip:31011700002000000002@3101170000>\r\n"
    b"Call-ID: abc@127.0.0.1\r\n"
    b"CSeq: 1 REGISTER\r\n"
    b"Max-Forwards: 70\r\n"
    b"Expires: 3600\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def test_a_register_parses_and_a_response_mirrors_it() -> None:
    msg = parse(REGISTER)
    assert isinstance(msg, SipRequest)
    assert (msg.method, msg.cseq, msg.get("expires")) == ("REGISTER", (1, "REGISTER"), "3600")
    reply = parse(response_to(msg, 401, to_tag="t9").encode())
    assert reply.get("To") == "<sip:31011700002000000002@3101170000>;tag=t9"
    assert reply.get("Via") == msg.get("Via")


def test_compact_headers_are_expanded() -> None:
    data = REGISTER.replace(b"Call-ID:", b"i:").replace(b"Via:", b"v:")
    msg = parse(data)
    assert msg.call_id == "abc@127.0.0.1"
    assert msg.get("Via") == "SIP/2.0/UDP 127.0.0.1:5070;rport;branch=z9hG4bK1"


@pytest.mark.parametrize(
    ("data", "status", "reason"),
    [
        (REGISTER.replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1), 505, "only SIP/2.0 is spoken"),
        (REGISTER.replace(b"Call-ID: abc@127.0.0.1\r\n", b""), 400, "request without Call-ID"),
        (REGISTER.replace(b"CSeq: 1 REGISTER", b"CSeq: 1 INVITE"), 400, "CSeq method is not"),
        (REGISTER.replace(b"Content-Length: 0", b"Content-Length: 9"), 400, "Content-Length 9"),
        (REGISTER.replace(b"Max-Forwards: 70", b"Max-Forwards: x"), 400, "Max-Forwards"),
        (REGISTER.replace(b"Expires: 3600\r\n", b"Expires: 3600\r\n 1\r\n"), 400, "folded"),
        (REGISTER.replace(b"Expires: 3600", b"Expires: 36\x0100"), 400, "control character"),
        (REGISTER.replace(b"\r\n\r\n", b"\r\n"), 400, "no blank line"),
        (REGISTER.replace(b"sip:3101", b"http:3101", 1), 400, "not a sip: URI"),
        (REGISTER + b"x" * 70_000, 413, "message larger than"),
        (REGISTER.replace(b"Expires", b"X-" + b"a" * 3000), 413, "header line longer"),
        (
            REGISTER.replace(b"Expires: 3600\r\n", b"X-A: 1\r\n" * 70),
            413,
            "more than 64 header lines",
        ),
        (REGISTER.replace(b"Content-Length: 0\r\n", b""), 400, "Content-Length is required"),
    ],
)
def test_malformed_messages_get_the_right_status(data: bytes, status: int, reason: str) -> None:
    stream = b"Content-Length is required" in reason.encode()
    with pytest.raises(SipError) as caught:
        parse(data, stream=stream)
    assert caught.value.status == status
    assert caught.value.reason.startswith(reason) or reason in caught.value.reason


def test_random_mutations_raise_only_sip_errors() -> None:
    """Fuzz-ish: flipped, cut and repeated bytes never escape as another exception."""
    rng = random.Random(28181)
    for _ in range(3000):
        data = bytearray(REGISTER)
        for _ in range(rng.randint(1, 6)):
            op = rng.randrange(3)
            at = rng.randrange(len(data))
            if op == 0:
                data[at] = rng.randrange(256)
            elif op == 1:
                del data[at : at + rng.randint(1, 20)]
            else:
                data[at:at] = data[at : at + rng.randint(1, 40)]
        try:
            parse(bytes(data), stream=rng.random() < 0.5)
        except SipError as exc:
            assert 400 <= exc.status < 600


def test_digest_round_trip_wrong_password_stale_and_replay() -> None:
    issuer = NonceIssuer(b"k" * 32, ttl_s=300)
    platform, realm = "31011700002000000002", "3101170000"
    challenge = issuer.challenge(platform, realm, now=1000.0)
    good = parse_authorization(authorization(challenge, platform, "s3cret", "REGISTER", "sip:x"))
    issuer.verify(
        good, platform=platform, realm=realm, password="s3cret", method="REGISTER", now=1010.0
    )
    with pytest.raises(DigestError, match="nonce count replayed"):
        issuer.verify(
            good, platform=platform, realm=realm, password="s3cret", method="REGISTER", now=1011.0
        )
    bad = parse_authorization(authorization(challenge, platform, "guess", "REGISTER", "sip:x"))
    with pytest.raises(DigestError, match="wrong response"):
        issuer.verify(
            bad, platform=platform, realm=realm, password="s3cret", method="REGISTER", now=1010.0
        )
    late = parse_authorization(authorization(challenge, platform, "s3cret", "REGISTER", "sip:x"))
    with pytest.raises(DigestError) as stale:
        issuer.verify(
            late, platform=platform, realm=realm, password="s3cret", method="REGISTER", now=1400.0
        )
    assert stale.value.stale
    other = issuer.challenge("31011700002000000003", realm, now=1000.0)
    forged = parse_authorization(authorization(other, platform, "s3cret", "REGISTER", "sip:x"))
    with pytest.raises(DigestError, match="not issued by us to this platform"):
        issuer.verify(
            forged, platform=platform, realm=realm, password="s3cret", method="REGISTER", now=1010.0
        )


@pytest.mark.parametrize(
    ("charset", "name"),
    [("GB2312", "东泾镇路口"), ("GB18030", "东泾镇路口 𠀀")],  # 𠀀: GB18030 only
)
def test_catalog_bodies_round_trip_in_both_charsets(charset: str, name: str) -> None:
    item = CatalogItem(device_id="31011700001320000001", name=name, status="ON")
    body = manscdp.catalog("Response", 7, "31011700002000000002", 1, [item], charset)
    assert name.encode("gb18030") in body
    parsed = manscdp.parse(body)
    assert parsed.charset == charset.lower()
    assert (parsed.sn, parsed.sum_num, parsed.items) == (7, 1, (item,))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b'<?xml version="1.0"?><!DOCTYPE q [<!ENTITY a "b">]><Query><SN>1</SN></Query>',
            "XML refused",
        ),
        (b'<?xml version="1.0" encoding="latin-1"?><Query/>', "charset latin-1"),
        (
            b'<?xml version="1.0" encoding="GB2312"?><Query><CmdType>\xff\xff</CmdType></Query>',
            "not valid GB2312",
        ),
        (b"<Query><CmdType>Catalog</CmdType></Query>", "SN missing"),
        (b"<Html><SN>1</SN></Html>", "is not MANSCDP"),
        (
            b"<Response><CmdType>Catalog</CmdType><SN>1</SN><SumNum>x</SumNum></Response>",
            "SumNum is not a number",
        ),
    ],
)
def test_hostile_bodies_are_refused(body: bytes, message: str) -> None:
    with pytest.raises(ManscdpError, match=message):
        manscdp.parse(body)


def test_too_many_items_in_one_message_are_refused() -> None:
    items = [CatalogItem(device_id=f"310117000013200{n:05d}") for n in range(201)]
    body = manscdp.catalog("Response", 1, "31011700002000000002", 201, items)
    with pytest.raises(ManscdpError, match="more than 200 items"):
        manscdp.parse(body)


def test_random_mutations_of_catalog_bodies_raise_only_manscdp_errors() -> None:
    """Seeded, bounded: 3,000 hostile variants of catalog pages in both charsets either parse
    (the mutation left a valid document) or raise ManscdpError, never another exception."""
    rng = random.Random(281812016)
    items = [
        CatalogItem(
            device_id=f"3101170000132500000{n}",
            name=f"东泾镇路口 {n} 𠀀",
            parent_id="31011700002165000001",
            status="ON",
            longitude="121.2",
            latitude="31.05",
        )
        for n in range(4)
    ]
    bases = [
        manscdp.catalog("Response", 7, "31011700002000000002", 4, items, "GB18030"),
        manscdp.catalog(
            "Notify", 8, "31011700002000000002", 1, [CatalogItem("31011700001325000001")]
        ),
        manscdp.build("Notify", [("CmdType", "Keepalive"), ("SN", "3"), ("DeviceID", "1")]),
    ]
    refused = 0
    for n in range(3000):
        data = mutate(bases[n % len(bases)], rng)
        try:
            manscdp.parse(data)
        except ManscdpError:
            refused += 1
    assert refused > 2000  # (most mutations break a document; the rest parse cleanly)
