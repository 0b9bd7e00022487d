"""Cameras put credentials in their stream URIs; the gateway splits them off and never shows
the password, not even through repr()."""

from __future__ import annotations

import logging

import pytest

from adapters.uris import UriCredentials, has_credentials, split_credentials, uri_host


@pytest.mark.parametrize(
    ("uri", "clean", "username", "password"),
    [
        (
            "rtsp://admin:12345@127.1.0.5:554/Streaming/Channels/101",
            "rtsp://127.1.0.5:554/Streaming/Channels/101",
            "admin",
            "12345",
        ),
        (
            "rtsp://admin:pw@127.1.0.5/live?channel=1&subtype=0#frag",
            "rtsp://127.1.0.5/live?channel=1&subtype=0#frag",
            "admin",
            "pw",
        ),
        (
            "http://admin:pw@127.1.0.5/onvif-http/snapshot",
            "http://127.1.0.5/onvif-http/snapshot",
            "admin",
            "pw",
        ),
        # Percent-encoded userinfo is decoded: the camera wants the real characters.
        (
            "rtsp://op%40town:p%40ss%3Aw%2Frd%25@127.1.0.5/ch1",
            "rtsp://127.1.0.5/ch1",
            "op@town",
            "p@ss:w/rd%",
        ),
        (
            "rtsp://admin:%E5%AF%86%E7%A0%81@127.1.0.5/ch1",
            "rtsp://127.1.0.5/ch1",
            "admin",
            "密码",
        ),
        # An unencoded '@' in the password: the last '@' ends the userinfo.
        ("rtsp://admin:p@ss@127.1.0.5/ch1", "rtsp://127.1.0.5/ch1", "admin", "p@ss"),
        # IPv6 literals keep their brackets (and port) once the userinfo is gone.
        ("rtsp://admin:pw@[fd00::5]:8554/main", "rtsp://[fd00::5]:8554/main", "admin", "pw"),
        ("rtsp://admin:pw@[::1]/main", "rtsp://[::1]/main", "admin", "pw"),
        ("http://u:p%5D@[2001:db8::1]:80/s.jpg", "http://[2001:db8::1]:80/s.jpg", "u", "p]"),
        # A user without a password, and an empty password.
        ("rtsp://viewer@127.1.0.5/ch1", "rtsp://127.1.0.5/ch1", "viewer", ""),
        ("rtsp://viewer:@127.1.0.5/ch1", "rtsp://127.1.0.5/ch1", "viewer", ""),
    ],
)
def test_split_credentials(uri: str, clean: str, username: str, password: str) -> None:
    assert has_credentials(uri)
    out, creds = split_credentials(uri)
    assert out == clean
    assert creds == UriCredentials(username, password)
    assert not has_credentials(out)
    assert "@" not in out.split("/", 3)[2]  # no userinfo left in the authority


@pytest.mark.parametrize(
    "uri",
    [
        "rtsp://127.1.0.5:554/Streaming/Channels/101",
        "rtsp://[fd00::5]:8554/main",
        "http://127.1.0.5/snap.jpg?user=admin",  # a query is not userinfo
        "rtsp://127.1.0.5/path@with-at",  # nor is an '@' in the path
    ],
)
def test_uri_without_credentials_is_returned_unchanged(uri: str) -> None:
    assert not has_credentials(uri)
    assert split_credentials(uri) == (uri, None)


@pytest.mark.parametrize(
    ("uri", "host"),
    [
        ("rtsp://admin:pw@127.1.0.5:554/x", "127.1.0.5"),
        ("rtsp://[fd00::5]:8554/main", "fd00::5"),
        ("rtsp://", None),
    ],
)
def test_uri_host(uri: str, host: str | None) -> None:
    assert uri_host(uri) == host


def test_repr_and_str_never_show_the_password(caplog: pytest.LogCaptureFixture) -> None:
    secret = "S3cret-Pa55"
    _, creds = split_credentials(f"rtsp://admin:{secret}@127.1.0.5/ch1")
    assert creds is not None
    assert creds.password == secret  # still there for the code that logs in
    for shown in (
        repr(creds),
        str(creds),
        f"{creds}",
        f"{creds!r}",
        repr([creds]),
        repr((1, creds)),
    ):
        assert secret not in shown
        assert "admin" in shown
        assert "***" in shown
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("logging in with %s", creds)
        logging.getLogger("test").info("pair %r", split_credentials(f"rtsp://a:{secret}@[::1]/"))
    assert secret not in caplog.text
    assert "admin" in caplog.text


def test_credentials_are_immutable() -> None:
    creds = UriCredentials("admin", "pw")
    with pytest.raises(AttributeError):
        creds.password = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    "uri",
    [
        "rtsp://admin:S3cret-Pa55@127.1.0.5:99999/ch1",  # port out of range
        "rtsp://admin:S3cret-Pa55@127.1.0.5:http/ch1",  # port not a number
        "rtsp://admin:S3cret-Pa55@[fd00::5/ch1",  # unclosed IPv6 literal
    ],
)
def test_malformed_uri_errors_do_not_carry_the_password(uri: str) -> None:
    with pytest.raises(ValueError) as caught:
        split_credentials(uri)
    assert "S3cret-Pa55" not in str(caught.value)
    assert "S3cret-Pa55" not in repr(caught.value)
