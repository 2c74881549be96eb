"""Kissmetrics JSON-lines rules."""

from __future__ import annotations

from streams.core.records import Dialect, RecordKind
from tests.unit.core.rawfactory import NOW_S, accepted, code_of

K = Dialect.KISSMETRICS


def test_underscore_n_makes_an_event() -> None:
    event = accepted(K, {"_p": "person@mail.com", "_t": NOW_S, "_n": "visited", "url": "x"})
    assert (event.kind, event.name, event.properties) == (RecordKind.EVENT, "visited", {"url": "x"})


def test_underscore_p2_makes_an_alias() -> None:
    event = accepted(K, {"_p": "new_customer@mail.com", "_p2": "chuck@mail.com", "_t": NOW_S})
    assert event.kind is RecordKind.ALIAS
    assert event.alias == {"email": "chuck@mail.com"}


def test_properties_only_make_a_profile_update() -> None:
    event = accepted(K, {"_p": "1", "_t": NOW_S, "Email Address": "bob@bob.com"})
    assert event.kind is RecordKind.PROFILE
    assert event.identifiers == {"user_id": "1"}


def test_line_with_no_event_alias_or_property_is_rejected() -> None:
    assert code_of(K, {"_p": "1", "_t": NOW_S}) == "empty_record"


def test_timestamp_is_epoch_seconds() -> None:
    assert accepted(K, {"_p": "1", "_t": NOW_S, "_n": "x"}).timestamp.timestamp() == NOW_S


def test_p_and_t_are_required() -> None:
    assert code_of(K, {"_t": NOW_S, "_n": "x"}) == "missing_identity"
    assert code_of(K, {"_p": "1", "_n": "x"}) == "missing_timestamp"
    assert code_of(K, {"_p": "1", "_n": "x", "_t": "soon"}) == "invalid_timestamp"
