"""adapters.httpauth: RFC 7616 Digest (SHA-256, SHA-256-sess, MD5, MD5-sess), which challenge is
answered when a camera offers several, and Basic only where the caller allows it."""

from __future__ import annotations

import hashlib

import pytest

from adapters.httpauth import (
    Authenticator,
    digest_rank,
    digest_response,
    offered_schemes,
    offers_basic,
    parse_challenge,
    parse_challenges,
)

# RFC 7616 section 3.9.1: the server's two challenges (SHA-256 first, as section 3.7 asks).
RFC_REALM = "http-auth@example.org"
RFC_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC_SHA256 = "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
RFC_MD5 = "8ca523f5e9506fed4657c9700eebdbec"


def rfc_challenge(algorithm: str, **extra: str) -> str:
    value = (
        f'Digest realm="{RFC_REALM}", qop="auth, auth-int", algorithm={algorithm}, '
        f'nonce="{RFC_NONCE}", opaque="{RFC_OPAQUE}"'
    )
    return value + "".join(f", {k}={v}" for k, v in extra.items())


def rfc_authorization(algorithm: str, response: str) -> dict[str, str]:
    """The Authorization of RFC 7616 section 3.9.1, as parameters."""
    return {
        "username": "Mufasa",
        "realm": RFC_REALM,
        "uri": "/dir/index.html",
        "algorithm": algorithm,
        "nonce": RFC_NONCE,
        "nc": "00000001",
        "cnonce": RFC_CNONCE,
        "qop": "auth",
        "response": response,
        "opaque": RFC_OPAQUE,
    }


@pytest.mark.parametrize(("algorithm", "expected"), [("SHA-256", RFC_SHA256), ("MD5", RFC_MD5)])
def test_rfc7616_section_3_9_1_responses(algorithm: str, expected: str) -> None:
    response = digest_response(
        username="Mufasa",
        password="Circle of Life",
        realm=RFC_REALM,
        nonce=RFC_NONCE,
        method="GET",
        uri="/dir/index.html",
        qop="auth",
        nc="00000001",
        cnonce=RFC_CNONCE,
        algorithm=algorithm,
    )
    assert response == expected


def test_rfc7616_section_3_9_1_authorization_headers() -> None:
    """The whole exchange of the example: both challenges offered, SHA-256 answered; the MD5
    challenge alone answered with MD5. Every parameter as the RFC prints it."""
    both = [rfc_challenge("SHA-256"), rfc_challenge("MD5")]
    auth = Authenticator.from_challenges(both, "Mufasa", "Circle of Life")
    assert auth is not None and auth.algorithm == "SHA-256"
    header = auth.header("GET", "/dir/index.html", cnonce=RFC_CNONCE)
    assert parse_challenge(header) == ("digest", rfc_authorization("SHA-256", RFC_SHA256))

    md5 = Authenticator.from_challenges([rfc_challenge("MD5")], "Mufasa", "Circle of Life")
    assert md5 is not None
    header = md5.header("GET", "/dir/index.html", cnonce=RFC_CNONCE)
    assert parse_challenge(header) == ("digest", rfc_authorization("MD5", RFC_MD5))
    # the nonce count goes up with each request on the same challenge
    assert parse_challenge(md5.header("GET", "/x"))[1]["nc"] == "00000002"


@pytest.mark.parametrize(
    ("algorithm", "hash_name"), [("SHA-256-sess", "sha256"), ("MD5-sess", "md5")]
)
def test_session_variants(algorithm: str, hash_name: str) -> None:
    def h(text: str) -> str:
        return hashlib.new(hash_name, text.encode()).hexdigest()

    ha1 = h(f"{h(f'Mufasa:{RFC_REALM}:Circle of Life')}:{RFC_NONCE}:{RFC_CNONCE}")
    ha2 = h("GET:/dir/index.html")
    expected = h(f"{ha1}:{RFC_NONCE}:00000001:{RFC_CNONCE}:auth:{ha2}")
    auth = Authenticator.from_challenges([rfc_challenge(algorithm)], "Mufasa", "Circle of Life")
    assert auth is not None
    params = parse_challenge(auth.header("GET", "/dir/index.html", cnonce=RFC_CNONCE))[1]
    assert params["algorithm"] == algorithm and params["response"] == expected


@pytest.mark.parametrize(
    ("challenges", "chosen"),
    [
        pytest.param([rfc_challenge("MD5"), rfc_challenge("SHA-256")], "SHA-256", id="md5-first"),
        pytest.param([rfc_challenge("SHA-256"), rfc_challenge("MD5")], "SHA-256", id="sha-first"),
        pytest.param(
            [f"{rfc_challenge('MD5')}, {rfc_challenge('SHA-256-sess')}"],
            "SHA-256-sess",
            id="one-header-line",
        ),
        pytest.param(
            [rfc_challenge("SHA-512-256"), rfc_challenge("MD5")], "MD5", id="unsupported-skipped"
        ),
        pytest.param(['Basic realm="x"', rfc_challenge("MD5")], "MD5", id="digest-over-basic"),
        pytest.param(
            [rfc_challenge("SHA-256").replace("auth, auth-int", "auth-int"), rfc_challenge("MD5")],
            "MD5",
            id="auth-int-only-skipped",
        ),
    ],
)
def test_the_strongest_supported_digest_is_chosen(challenges: list[str], chosen: str) -> None:
    auth = Authenticator.from_challenges(challenges, "u", "p", allow_basic=True)
    assert auth is not None and auth.scheme == "digest" and auth.algorithm == chosen


@pytest.mark.parametrize(
    "challenge",
    [
        rfc_challenge("SHA-512-256"),
        'Digest realm="x", qop="auth"',  # no nonce
        rfc_challenge("MD5").replace("auth, auth-int", "auth-int"),
        "Negotiate",
    ],
)
def test_unusable_challenges(challenge: str) -> None:
    assert Authenticator.from_challenges([challenge], "u", "p", allow_basic=True) is None


def test_basic_is_answered_only_when_allowed() -> None:
    offered = ['Basic realm="cam", charset="UTF-8"']
    assert Authenticator.from_challenges(offered, "admin", "pw") is None  # refused by default
    assert Authenticator.from_challenges(offered, "admin", "pw", allow_basic=False) is None
    assert offers_basic(offered) and not offers_basic([rfc_challenge("MD5")])
    auth = Authenticator.from_challenges(offered, "admin", "pw", allow_basic=True)
    assert auth is not None and auth.header("GET", "/") == "Basic YWRtaW46cHc="
    # Digest is never downgraded to Basic, allowed or not
    both = ['Basic realm="cam"', rfc_challenge("SHA-256")]
    chosen = Authenticator.from_challenges(both, "admin", "pw", allow_basic=True)
    assert chosen is not None and chosen.scheme == "digest"


def test_userhash_sends_the_hashed_username() -> None:
    """RFC 7616 section 3.4.4: username = H(username ":" realm), flagged userhash=true; the
    response is still computed with the plain username."""
    offered = [rfc_challenge("SHA-256", userhash="true")]
    auth = Authenticator.from_challenges(offered, "Mufasa", "Circle of Life")
    assert auth is not None
    params = parse_challenge(auth.header("GET", "/dir/index.html", cnonce=RFC_CNONCE))[1]
    assert params["username"] == hashlib.sha256(f"Mufasa:{RFC_REALM}".encode()).hexdigest()
    assert params["userhash"] == "true"
    assert params["response"] == RFC_SHA256


def test_non_ascii_username_in_extended_notation() -> None:
    """RFC 7616 section 3.4.4 (the 3.9.2 example's user): username*, RFC 5987 encoded."""
    auth = Authenticator.from_challenges([rfc_challenge("SHA-256")], "Jäsøn Doe", "pw")
    assert auth is not None
    params = parse_challenge(auth.header("GET", "/doe.json"))[1]
    assert params["username*"] == "UTF-8''J%C3%A4s%C3%B8n%20Doe" and "username" not in params


def test_parse_challenges_splits_one_header_value() -> None:
    value = (
        'Newauth realm="apps", type=1, title="Login to \\"apps\\"", Basic realm="simple", '
        'Digest realm="a, b", nonce=n1'
    )
    assert parse_challenges([value, "Negotiate abc==, Basic realm=y"]) == [
        ("newauth", {"realm": "apps", "type": "1", "title": 'Login to "apps"'}),
        ("basic", {"realm": "simple"}),
        ("digest", {"realm": "a, b", "nonce": "n1"}),
        ("negotiate", {}),
        ("basic", {"realm": "y"}),
    ]
    assert offered_schemes([value]) == "Newauth, Basic, Digest (MD5)"


def test_digest_rank_and_unsupported_algorithm() -> None:
    assert digest_rank({"nonce": "n", "algorithm": "SHA-256"}) > digest_rank({"nonce": "n"}) > 0
    with pytest.raises(ValueError, match="unsupported digest algorithm 'SHA-512-256'"):
        digest_response(
            username="u",
            password="p",
            realm="r",
            nonce="n",
            method="GET",
            uri="/",
            algorithm="SHA-512-256",
        )


def test_no_credential_in_repr_and_matches_is_exact() -> None:
    auth = Authenticator.from_challenges([rfc_challenge("SHA-256")], "Mufasa", "Circle of Life")
    assert auth is not None
    assert repr(auth) == "Authenticator(scheme='digest', algorithm='SHA-256')"
    assert auth.matches("Mufasa", "Circle of Life")
    assert not auth.matches("Mufasa", "Circle of Lif")
    assert not auth.matches("mufasa", "Circle of Life")
