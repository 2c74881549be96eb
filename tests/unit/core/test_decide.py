"""decide(): order of the stateful rules, and properties over random event sequences."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.decide import Decision, decide, expire_state
from streams.core.dedup import DEDUP_TABLE, dedup_key
from streams.core.identity import IDENTITY_TABLE, identity_key
from streams.core.records import Event, OutcomeKind, SourceKind
from streams.core.settings import AccountSettings, SettingsRegistry
from streams.core.state import MemoryStore
from tests.unit.core.factories import T0, make_event

DEFAULT = AccountSettings()
H = timedelta(hours=1)


def decided(decision: Decision | None) -> Decision:
    assert decision is not None
    return decision


def test_accepted_outcome_carries_profile_and_trigger() -> None:
    event = make_event(user_id="42", email="a@x.com")
    decision = decided(decide(event, MemoryStore(), T0, DEFAULT))
    assert decision.outcome.kind is OutcomeKind.ACCEPTED
    assert decision.outcome.event is not None
    assert decision.outcome.event.profile_id == "user_id:42"
    assert decision.outcome.event.triggered
    assert decision.new_profile
    assert event.profile_id is None  # the input record is not modified


def test_conflicts_are_returned_and_noted() -> None:
    store = MemoryStore()
    decide(make_event(user_id="42", email="a@x.com"), store, T0, DEFAULT)
    decision = decided(decide(make_event(user_id="7", email="a@x.com"), store, T0, DEFAULT))
    assert decision.outcome.kind is OutcomeKind.ACCEPTED
    assert decision.profile_id == "user_id:7"
    assert [c.existing_profile for c in decision.conflicts] == ["user_id:42"]
    assert decision.outcome.notes == [decision.conflicts[0].describe()]
    assert "email:a@x.com" in decision.outcome.notes[0]


def test_duplicate_still_makes_identity_links() -> None:
    store = MemoryStore()
    decide(make_event(user_id="42", idempotency_key="k"), store, T0, DEFAULT)
    dup = decided(
        decide(
            make_event(user_id="42", email="a@x.com", idempotency_key="k"), store, T0 + H, DEFAULT
        )
    )
    assert dup.outcome.kind is OutcomeKind.DUPLICATE
    assert store.get(IDENTITY_TABLE, identity_key("acme", "email", "a@x.com")) == "user_id:42"


def test_catalog_rejection_still_makes_identity_links_but_records_no_key() -> None:
    store = MemoryStore()
    tight = AccountSettings(max_event_types=0)
    rejected = decided(
        decide(make_event(user_id="1", email="b@x.com", idempotency_key="k"), store, T0, tight)
    )
    assert rejected.outcome.kind is OutcomeKind.REJECTED
    assert store.get(IDENTITY_TABLE, identity_key("acme", "email", "b@x.com")) == "user_id:1"
    assert store.tables.get(DEDUP_TABLE, {}) == {}
    # Fixed and re-sent (a new line, same key): accepted, not a duplicate.
    again = decided(decide(make_event(user_id="1", idempotency_key="k"), store, T0, DEFAULT))
    assert again.outcome.kind is OutcomeKind.ACCEPTED


def test_catalog_is_checked_before_dedup() -> None:
    store = MemoryStore()
    decide(make_event(name="a", idempotency_key="k"), store, T0, DEFAULT)
    over = decided(
        decide(
            make_event(name="b", idempotency_key="k"),
            store,
            T0 + H,
            AccountSettings(max_event_types=1),
        )
    )
    assert over.outcome.code == "too_many_event_types"


def test_raw_payload_is_carried_into_the_outcome() -> None:
    decision = decided(decide(make_event(), MemoryStore(), T0, DEFAULT, raw=b'{"x":1}'))
    assert decision.outcome.raw == b'{"x":1}'


def test_record_without_identifiers_is_rejected_not_crashed() -> None:
    event = make_event()
    event.identifiers = {}
    decision = decided(decide(event, MemoryStore(), T0, DEFAULT))
    assert decision.outcome.code == "missing_identity"


def test_settings_per_account() -> None:
    registry = SettingsRegistry.from_mapping(
        {
            "default": {"dedup_window_seconds": 3600},
            "accounts": {"acme": {"dedup_fingerprint": True, "max_event_types": 10}},
        }
    )
    acme, other = registry.for_account("acme"), registry("globex")
    assert acme.dedup_fingerprint and acme.max_event_types == 10
    assert acme.dedup_window == timedelta(hours=1)  # inherited from the default
    assert not other.dedup_fingerprint and other.max_event_types == 512
    with pytest.raises(ValueError):
        AccountSettings.from_mapping({"dedup_windw": 1})
    with pytest.raises(ValueError):
        AccountSettings(dedup_window=timedelta(0))


def test_shorter_dedup_window_from_settings() -> None:
    store = MemoryStore()
    short = AccountSettings(dedup_window=timedelta(minutes=10))
    decide(make_event(idempotency_key="k"), store, T0, short)
    late = decided(
        decide(make_event(idempotency_key="k"), store, T0 + 11 * timedelta(minutes=1), short)
    )
    assert late.outcome.kind is OutcomeKind.ACCEPTED


# --------------------------------------------------------------------------- properties


@dataclass(frozen=True)
class Line:
    """One source line: redelivering it gives the same event_id and content."""

    number: int
    account: str
    user_id: str | None
    email: str | None
    key: str | None
    sku: str
    source_kind: SourceKind


lines = st.builds(
    Line,
    number=st.integers(1, 40),
    account=st.sampled_from(["a", "b"]),
    user_id=st.sampled_from(["u1", "u2", None]),
    email=st.sampled_from(["e1@x.com", "e2@x.com", None]),
    key=st.sampled_from(["k1", "k2", None]),
    sku=st.sampled_from(["s1", "s2"]),
    source_kind=st.sampled_from([SourceKind.API, SourceKind.FILE]),
)
gaps = st.one_of(
    st.sampled_from([0, 1, 3600, 23 * 3600, 24 * 3600 - 1, 24 * 3600, 25 * 3600]),
    st.integers(0, 30 * 3600),
)
steps = st.lists(st.tuples(lines, gaps, st.booleans()), min_size=1, max_size=40)


def event_of(line: Line, when: datetime) -> Event:
    # The line's identity: the number fixes the event_id (and content) across redeliveries.
    return make_event(
        account=line.account,
        user_id=line.user_id,
        email=line.email if line.email or line.user_id else "e9@x.com",
        idempotency_key=line.key,
        properties={"sku": line.sku},
        source_kind=line.source_kind,
        line=line.number + (1000 if line.account == "b" else 0),
        timestamp=T0,
        received_at=when,
    )


@settings(max_examples=300, deadline=None)
@given(steps=steps, fingerprint=st.booleans())
def test_random_sequences_one_outcome_per_event_id_and_duplicates_have_a_twin(
    steps: list[tuple[Line, int, bool]], fingerprint: bool
) -> None:
    account_settings = AccountSettings(dedup_fingerprint=fingerprint)
    window = account_settings.dedup_window
    store = MemoryStore()
    now = T0
    first_line: dict[str, Line] = {}
    outcomes: dict[str, int] = {}
    accepted: list[tuple[str, str, str, datetime]] = []  # account, profile, key, when
    for line, gap, reclaim in steps:
        now += timedelta(seconds=gap)
        if reclaim:
            expire_state(store, now)
        event = event_of(line, now)
        # Same line number in one account = same source line = same content.
        if first_line.setdefault(event.event_id, line) != line:
            continue
        decision = decide(event, store, now, account_settings, seen_retention=timedelta(days=3650))
        if decision is None:
            assert outcomes.get(event.event_id) == 1
            continue
        outcomes[event.event_id] = outcomes.get(event.event_id, 0) + 1
        profile = decision.profile_id
        assert profile is not None
        key = dedup_key(event, account_settings)
        twins = [
            when
            for acct, prof, k, when in accepted
            if (acct, prof, k) == (event.account, profile, key) and now - when < window
        ]
        if decision.kind is OutcomeKind.DUPLICATE:
            assert key is not None and twins, "a duplicate needs an accepted twin within 24 h"
            assert not decision.triggered
        else:
            assert decision.kind is OutcomeKind.ACCEPTED
            assert key is None or not twins, "an accepted keyed record had a live twin"
            if key is not None:
                accepted.append((event.account, profile, key, now))
    assert all(count == 1 for count in outcomes.values())
    assert set(outcomes) == set(first_line)
