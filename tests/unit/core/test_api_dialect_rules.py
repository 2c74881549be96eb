"""Naxai and CleverTap record rules."""

from __future__ import annotations

from streams.core.records import Dialect, RecordKind
from tests.unit.core.rawfactory import NOW, NOW_S, accepted, code_of

N = Dialect.NAXAI
C = Dialect.CLEVERTAP


def test_naxai_identity_comes_from_the_request_path() -> None:
    event = accepted(N, {"name": "purchase", "data": {"total": 150}}, path_identifier="42")
    assert event.identifiers == {"user_id": "42"}
    assert event.properties == {"total": 150}


def test_naxai_identifier_field_in_a_file() -> None:
    event = accepted(N, {"identifier": "g@x.io", "name": "purchase", "data": {}})
    assert event.identifiers == {"email": "g@x.io"}


def test_naxai_missing_timestamp_means_received_at() -> None:
    assert accepted(N, {"identifier": "1", "name": "p", "data": {}}).timestamp == NOW


def test_naxai_timestamp_is_epoch_seconds() -> None:
    event = accepted(N, {"identifier": "1", "name": "p", "data": {}, "timestamp": NOW_S - 60})
    assert event.timestamp.timestamp() == NOW_S - 60


def test_idempotency_key_over_128_characters_is_rejected() -> None:
    body = {"identifier": "1", "name": "p", "data": {}, "idempotencyKey": "k" * 129}
    assert code_of(N, body) == "idempotency_key_too_long"
    assert accepted(N, {**body, "idempotencyKey": "k" * 128}).idempotency_key == "k" * 128


def test_blank_idempotency_key_is_no_key() -> None:
    body = {"identifier": "1", "name": "p", "data": {}}
    for blank in ("", "   "):
        assert accepted(N, {**body, "idempotencyKey": blank}).idempotency_key is None
    assert accepted(N, {**body, "idempotencyKey": " k "}).idempotency_key == " k "


def test_naxai_unknown_top_level_field_is_invalid() -> None:
    assert code_of(N, {"identifier": "1", "name": "p", "total": 1}) == "invalid_field"


def test_clevertap_event_needs_evt_data() -> None:
    base = {"identity": "1", "type": "event", "evtName": "x"}
    assert code_of(C, base) == "invalid_field"
    assert accepted(C, {**base, "evtData": {}}).properties == {}
    profile = {"identity": "1", "type": "profile"}
    assert code_of(C, profile) == "invalid_field"
    assert accepted(C, {**profile, "profileData": {"Plan": "gold"}}).kind is RecordKind.PROFILE


def test_clevertap_record_needs_type_event() -> None:
    assert code_of(C, {"identity": "1", "evtName": "x", "evtData": {}}) == "invalid_field"


def test_clevertap_one_of_four_identities() -> None:
    for field, namespace in [
        ("identity", "user_id"),
        ("FBID", "fbid"),
        ("GPID", "gpid"),
        ("objectId", "object_id"),
    ]:
        event = accepted(C, {field: "34322423", "type": "event", "evtName": "x", "evtData": {}})
        assert event.identifiers == {namespace: "34322423"}
    assert code_of(C, {"type": "event", "evtName": "x", "evtData": {}}) == "missing_identity"


def test_clevertap_dollar_d_values_are_dates() -> None:
    event = accepted(
        C,
        {
            "identity": "1",
            "type": "event",
            "evtName": "Charged",
            "ts": NOW_S,
            "evtData": {"When": "$D_1468322268"},
        },
    )
    assert event.properties == {"When": "2016-07-12T11:17:48Z"}


def test_clevertap_ts_is_optional_epoch_seconds() -> None:
    assert (
        accepted(C, {"identity": "1", "type": "event", "evtName": "x", "evtData": {}}).timestamp
        == NOW
    )
    assert (
        code_of(C, {"identity": "1", "type": "event", "evtName": "x", "evtData": {}, "ts": "now"})
        == "invalid_timestamp"
    )


def test_clevertap_profile_record_is_a_profile_update() -> None:
    event = accepted(C, {"identity": "1", "type": "profile", "profileData": {"Plan": "gold"}})
    assert event.kind is RecordKind.PROFILE
