"""Catalog limits: event types per account, property names per event type."""

from __future__ import annotations

from streams.core.catalog import (
    CATALOG_PROPS_TABLE,
    CATALOG_TYPES_TABLE,
    check_catalog,
    commit_catalog,
    type_key,
)
from streams.core.decide import decide
from streams.core.errors import ErrorCode, Stage
from streams.core.records import Event, OutcomeKind, RecordKind
from streams.core.settings import AccountSettings
from streams.core.state import MemoryStore
from tests.unit.core.factories import T0, make_event

DEFAULT = AccountSettings()


def admit(event: Event, store: MemoryStore, settings: AccountSettings = DEFAULT) -> bool:
    check = check_catalog(event, store, settings)
    if check.rejection is None:
        commit_catalog(event, check, store)
    return check.rejection is None


def test_513th_event_type_is_rejected() -> None:
    store = MemoryStore()
    for index in range(512):
        assert admit(make_event(name=f"type-{index}"), store)
    decision = decide(make_event(name="type-512"), store, T0, DEFAULT)
    assert decision is not None
    assert decision.outcome.kind is OutcomeKind.REJECTED
    assert decision.outcome.rejection is not None
    assert decision.outcome.rejection.code is ErrorCode.TOO_MANY_EVENT_TYPES
    assert decision.outcome.rejection.stage is Stage.CATALOG
    # Known types still go through.
    known = decide(make_event(name="type-7"), store, T0, DEFAULT)
    assert known is not None and known.outcome.kind is OutcomeKind.ACCEPTED
    assert store.get(CATALOG_TYPES_TABLE, "acme") == 512


def test_257th_property_is_rejected() -> None:
    store = MemoryStore()
    first = {f"p{index}": index for index in range(200)}
    second = {f"p{index}": index for index in range(150, 256)}  # 56 new → exactly 256
    assert admit(make_event(properties=first), store)
    assert admit(make_event(properties=second), store)
    decision = decide(make_event(properties={"p0": 0, "p256": 1}), store, T0, DEFAULT)
    assert decision is not None
    assert decision.outcome.code is ErrorCode.TOO_MANY_PROPERTIES
    assert decision.outcome.rejection is not None
    assert decision.outcome.rejection.field == "p256"
    # Records using only known names keep being accepted.
    ok = decide(make_event(properties={"p0": 0, "p255": 1}), store, T0, DEFAULT)
    assert ok is not None and ok.outcome.kind is OutcomeKind.ACCEPTED


def test_new_type_with_too_many_properties_is_rejected() -> None:
    store = MemoryStore()
    props = {f"p{index}": index for index in range(257)}
    check = check_catalog(make_event(name="wide", properties=props), store, DEFAULT)
    assert check.rejection is not None
    assert check.rejection.code is ErrorCode.TOO_MANY_PROPERTIES


def test_rejected_record_adds_no_names() -> None:
    store = MemoryStore()
    settings = AccountSettings(max_event_types=1, max_properties=2)
    assert admit(make_event(name="a", properties={"x": 1}), store, settings)
    assert not admit(make_event(name="b"), store, settings)  # type limit
    assert not admit(make_event(name="a", properties={"y": 1, "z": 1}), store, settings)
    assert store.get(CATALOG_TYPES_TABLE, "acme") == 1
    assert store.get(CATALOG_PROPS_TABLE, type_key("acme", "b")) is None
    assert store.get(CATALOG_PROPS_TABLE, type_key("acme", "a")) == ["x"]
    # "y" alone still fits: the rejected record did not use up the room.
    assert admit(make_event(name="a", properties={"y": 1}), store, settings)


def test_duplicate_adds_no_names() -> None:
    store = MemoryStore()
    assert decide(make_event(idempotency_key="k", properties={"x": 1}), store, T0, DEFAULT)
    dup = decide(make_event(idempotency_key="k", properties={"y": 1}), store, T0, DEFAULT)
    assert dup is not None and dup.outcome.kind is OutcomeKind.DUPLICATE
    assert store.get(CATALOG_PROPS_TABLE, type_key("acme", "purchase")) == ["x"]


def test_limits_come_from_account_settings() -> None:
    store = MemoryStore()
    settings = AccountSettings(max_event_types=2)
    assert admit(make_event(name="a"), store, settings)
    assert admit(make_event(name="b"), store, settings)
    assert not admit(make_event(name="c"), store, settings)
    assert admit(make_event(name="c"), store, AccountSettings(max_event_types=3))


def test_catalog_is_per_account() -> None:
    store = MemoryStore()
    settings = AccountSettings(max_event_types=1)
    assert admit(make_event(account="a", name="x"), store, settings)
    assert admit(make_event(account="b", name="y"), store, settings)


def test_profile_updates_and_aliases_are_not_counted() -> None:
    store = MemoryStore()
    settings = AccountSettings(max_event_types=0, max_properties=0)
    profile = make_event(kind=RecordKind.PROFILE, properties={"plan": "gold"})
    alias = make_event(
        kind=RecordKind.ALIAS, identifiers={"email": "a@x.com"}, alias={"user_id": "1"}
    )
    assert admit(profile, store, settings)
    assert admit(alias, store, settings)
    assert store.tables == {}
