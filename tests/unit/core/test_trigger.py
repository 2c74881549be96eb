"""Trigger eligibility rules."""

from __future__ import annotations

from datetime import timedelta

from streams.core.decide import decide
from streams.core.records import RecordKind, SourceKind
from streams.core.settings import AccountSettings
from streams.core.state import MemoryStore
from streams.core.trigger import default_trigger, is_trigger_eligible, why_not_triggered
from tests.unit.core.factories import T0, make_event

DEFAULT = AccountSettings()
H = timedelta(hours=1)


def test_api_and_kafka_events_trigger_by_default() -> None:
    for kind in (SourceKind.API, SourceKind.KAFKA):
        assert is_trigger_eligible(make_event(source_kind=kind), T0, DEFAULT)


def test_import_is_passive_unless_opted_in() -> None:
    passive = make_event(source_kind=SourceKind.FILE)
    assert not is_trigger_eligible(passive, T0, DEFAULT)
    ticked = make_event(source_kind=SourceKind.FILE, trigger_requested=True)
    assert is_trigger_eligible(ticked, T0, DEFAULT)
    account_opt_in = AccountSettings(trigger_imports=True)
    assert is_trigger_eligible(passive, T0, account_opt_in)
    # The account-wide opt-in is about imports only: an API producer that said no stays no.
    api_no = make_event(source_kind=SourceKind.API, trigger_requested=False)
    assert not is_trigger_eligible(api_no, T0, account_opt_in)


def test_event_older_than_24h_never_triggers() -> None:
    event = make_event(timestamp=T0)
    assert is_trigger_eligible(event, T0 + 24 * H, DEFAULT)
    assert not is_trigger_eligible(event, T0 + 24 * H + timedelta(seconds=1), DEFAULT)


def test_future_event_never_triggers() -> None:
    for ahead in (timedelta(seconds=1), H, 23 * H):
        event = make_event(timestamp=T0 + ahead)
        assert not is_trigger_eligible(event, T0, DEFAULT)
        decision = decide(event, MemoryStore(), T0, DEFAULT)
        assert decision is not None and decision.outcome.kind == "accepted"
        assert not decision.triggered


def test_profile_update_never_triggers() -> None:
    profile = make_event(kind=RecordKind.PROFILE, properties={"plan": "gold"})
    alias = make_event(
        kind=RecordKind.ALIAS, identifiers={"email": "a@x.com"}, alias={"user_id": "1"}
    )
    for record in (profile, alias):
        assert not is_trigger_eligible(record, T0, DEFAULT)
        decision = decide(record, MemoryStore(), T0, DEFAULT)
        assert decision is not None and not decision.triggered


def test_only_accepted_events_trigger() -> None:
    store = MemoryStore()
    first = decide(make_event(idempotency_key="k"), store, T0, DEFAULT)
    dup = decide(make_event(idempotency_key="k"), store, T0 + H, DEFAULT)
    assert first is not None and first.triggered
    assert dup is not None and dup.outcome.kind == "duplicate" and not dup.triggered


def test_trigger_default_by_source_kind() -> None:
    # real-time sources trigger unless they say no; a file import is passive unless it opts in
    assert default_trigger(SourceKind.API) and default_trigger(SourceKind.KAFKA)
    assert not default_trigger(SourceKind.FILE)


def test_why_not_triggered_names_the_rule_that_held_it_back() -> None:
    passive = make_event(source_kind=SourceKind.FILE)
    assert "passive import" in (why_not_triggered(passive, T0, DEFAULT) or "")
    future = make_event(timestamp=T0 + H)
    assert "future" in (why_not_triggered(future, T0, DEFAULT) or "")
    old = make_event(timestamp=T0)
    assert "24 hours" in (why_not_triggered(old, T0 + 25 * H, DEFAULT) or "")
    profile = make_event(kind=RecordKind.PROFILE, properties={"plan": "gold"})
    assert "only event records" in (why_not_triggered(profile, T0, DEFAULT) or "")
    assert why_not_triggered(make_event(), T0, DEFAULT) is None
