"""Webhook signatures: HMAC-SHA256 over `t.body`, verified with a tolerance."""

from __future__ import annotations

import hashlib
import hmac

from connectors.notifications.signing import sign, verify

BODY = b'{"status":"success"}'


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(b"s3cret", b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert sign("s3cret", BODY, 1700000000) == f"t=1700000000,v1={expected}"


def test_signature_verifies_with_the_secret() -> None:
    assert verify("s3cret", sign("s3cret", BODY, 1000), BODY, now=1000)


def test_tampered_body_does_not_verify() -> None:
    assert not verify("s3cret", sign("s3cret", BODY, 1000), BODY + b" ", now=1000)


def test_other_secret_does_not_verify() -> None:
    assert not verify("other", sign("s3cret", BODY, 1000), BODY, now=1000)


def test_tampered_timestamp_does_not_verify() -> None:
    header = sign("s3cret", BODY, 1000).replace("t=1000", "t=1001")
    assert not verify("s3cret", header, BODY, now=1001)


def test_old_signature_is_refused_beyond_the_tolerance() -> None:
    header = sign("s3cret", BODY, 1000)
    assert verify("s3cret", header, BODY, now=1300, tolerance=300)
    assert not verify("s3cret", header, BODY, now=1301, tolerance=300)


def test_malformed_header_does_not_verify() -> None:
    assert not verify("s3cret", "garbage", BODY, now=1000)
    assert not verify("s3cret", "t=abc,v1=00", BODY, now=1000)
