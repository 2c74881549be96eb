"""Console sessions: signed, expiring cookies and the CSRF token they carry."""

from __future__ import annotations

import time

from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from connectors.console.session import Sessions


def test_a_session_cookie_reads_back_as_its_account() -> None:
    sessions = Sessions("key", 60)
    made, cookie = sessions.new("alice")
    read = sessions.read(cookie)
    assert read == made and read.account == "alice" and not read.operator


def test_the_operator_session_has_no_account() -> None:
    sessions = Sessions("key", 60)
    _, cookie = sessions.new(None)
    read = sessions.read(cookie)
    assert read is not None and read.operator


def test_a_forged_or_altered_cookie_is_no_session() -> None:
    sessions = Sessions("key", 60)
    _, cookie = sessions.new("alice")
    assert Sessions("another key", 60).read(cookie) is None
    forged = URLSafeTimedSerializer("guess", salt="tidegate-console-session").dumps(
        {"a": "bob", "c": "x"}
    )
    assert sessions.read(str(forged)) is None
    assert sessions.read(cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB")) is None
    assert sessions.read("") is None and sessions.read(None) is None


def test_an_expired_cookie_is_no_session() -> None:
    class Old(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 120

    old = URLSafeTimedSerializer("key", salt="tidegate-console-session", signer=Old).dumps(
        {"a": "alice", "c": "x"}
    )
    assert Sessions("key", 60).read(str(old)) is None
    assert Sessions("key", 600).read(str(old)) is not None


def test_the_csrf_token_must_match_the_sessions() -> None:
    session, _ = Sessions("key", 60).new("alice")
    assert session.csrf_ok(session.csrf)
    assert not session.csrf_ok(None) and not session.csrf_ok("x" + session.csrf)
