"""Rules shared by every dialect: identity values, limits, time window, encoding, ids."""

from __future__ import annotations

from datetime import timedelta

import pytest

from streams.core.dialects import detect_dialect
from streams.core.errors import Rejection
from streams.core.normalize import normalize
from streams.core.records import Dialect
from tests.unit.core.rawfactory import NOW, NOW_S, accepted, code_of, raw, run

K = Dialect.KISSMETRICS
Z = Dialect.ZETA


def km(**extra: object) -> dict[str, object]:
    return {"_p": "u1", "_t": NOW_S, "_n": "visited", **extra}


def test_freeform_identifier_that_looks_like_an_email_is_an_email() -> None:
    assert accepted(K, km(_p="  Person@Mail.com ")).identifiers == {"email": "person@mail.com"}
    assert accepted(K, km(_p="person-1")).identifiers == {"user_id": "person-1"}


@pytest.mark.parametrize("value", ["", None, "undefined", "0", 0, "-1", -1, "anonymous", "  null "])
def test_placeholder_values_are_blocked_identities(value: object) -> None:
    assert code_of(K, km(_p=value)) == "blocked_identity"


def test_identifier_values_are_trimmed() -> None:
    assert accepted(
        Z, {"user_id": " 42 ", "event_type": "x", "timestamp": NOW_S * 1000}
    ).identifiers == {"user_id": "42"}


def test_event_name_over_120_characters_is_key_too_long() -> None:
    assert code_of(K, km(_n="n" * 121)) == "key_too_long"
    assert accepted(K, km(_n="n" * 120)).name == "n" * 120


def test_property_key_over_120_characters_is_key_too_long() -> None:
    assert code_of(K, km(**{"k" * 121: 1})) == "key_too_long"


def test_property_value_over_512_bytes_is_value_too_long() -> None:
    assert code_of(K, km(note="é" * 257)) == "value_too_long"  # 514 bytes in UTF-8
    assert accepted(K, km(note="é" * 256)).properties == {"note": "é" * 256}
    assert code_of(K, km(items=[{"name": "x" * 513}])) == "value_too_long"
    assert code_of(K, km(tags=["a", 1, None, "é" * 257])) == "value_too_long"
    assert (
        accepted(K, km(tags=["a", 1, 2.5, True, None, "é" * 256])).properties["tags"][-1]
        == "é" * 256
    )


def test_timestamp_more_than_365_days_old_is_rejected() -> None:
    old = int((NOW - timedelta(days=365, seconds=1)).timestamp())
    assert code_of(K, km(_t=old)) == "timestamp_too_old"
    assert accepted(K, km(_t=int((NOW - timedelta(days=364)).timestamp())))


def test_timestamp_more_than_one_day_ahead_is_rejected() -> None:
    ahead = int((NOW + timedelta(days=1, seconds=1)).timestamp())
    assert code_of(K, km(_t=ahead)) == "timestamp_in_future"
    assert accepted(K, km(_t=int((NOW + timedelta(hours=23)).timestamp())))


def test_invalid_utf8_is_invalid_encoding() -> None:
    assert code_of(K, b'{"_p": "\xff\xfe", "_t": 1}') == "invalid_encoding"


def test_line_that_is_not_a_json_object_is_invalid_json() -> None:
    assert code_of(K, b'{"_p": ') == "invalid_json"
    assert code_of(K, b"[1, 2]") == "invalid_json"


def test_invalid_json_says_what_is_wrong_and_where() -> None:
    result = run(K, b'{"_p": "a", "_t": }')
    assert isinstance(result, Rejection)
    assert result.message == (
        "the line is not valid JSON: unexpected character, expected a JSON value at character 19"
    )
    # A number too large for a double is a parse failure too, and says so.
    huge = run(K, b'{"n": 1' + b"0" * 400 + b"}")
    assert isinstance(huge, Rejection) and "infinity when parsed as double" in huge.message


def test_same_source_line_always_gets_the_same_event_id() -> None:
    first = accepted(K, km(), line=7)
    again = accepted(K, km(), line=7)
    other = accepted(K, km(), line=8)
    assert first.event_id == again.event_id != other.event_id


def test_feedback_line_reimports_as_its_record() -> None:
    wrapped = {"record": km(), "line": 3, "code": "timestamp_too_old", "message": "old"}
    assert accepted(K, wrapped).name == "visited"


def test_dialect_is_detected_from_extension_and_first_record() -> None:
    assert detect_dialect("events.csv", b"email,name,time") is Dialect.VERO
    assert detect_dialect("drop.jsonl", b'{"user_id":"1","event_type":"x"}') is Dialect.ZETA
    assert detect_dialect("km.json", b'{"_p":"1","_t":1}') is Dialect.KISSMETRICS
    assert detect_dialect("ct.json", b"{") is Dialect.CLEVERTAP
    assert detect_dialect("ct.json", b'{"d": [') is Dialect.CLEVERTAP
    assert detect_dialect("nx.jsonl", b'{"identifier":"1","name":"p","data":{}}') is Dialect.NAXAI
    assert detect_dialect("x.xlsx", b"") is None


def test_framing_error_is_the_records_outcome() -> None:
    from streams.core.errors import ErrorCode, Rejection, Stage

    record = raw(K, b"x" * 10)
    record.framing_error = Rejection(ErrorCode.LINE_TOO_LONG, "too long", Stage.READ)
    result = normalize(record)
    assert isinstance(result, Rejection) and result.code is ErrorCode.LINE_TOO_LONG
