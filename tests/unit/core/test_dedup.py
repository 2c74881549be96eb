"""Dedup and redelivery rules: processing-time window, account+profile scope, bounded state."""

from __future__ import annotations

import copy
from datetime import timedelta

import orjson

from streams.core.decide import decide, decide_rejection, expire_state
from streams.core.dedup import (
    DEDUP_EXPIRY_TABLE,
    DEDUP_TABLE,
    SEEN_TABLE,
    dedup_digest,
    expire,
    fingerprint,
    is_duplicate,
    remember,
)
from streams.core.errors import ErrorCode, Rejection
from streams.core.records import Event, OutcomeKind
from streams.core.settings import AccountSettings
from streams.core.state import MemoryStore
from tests.unit.core.factories import T0, make_event

H = timedelta(hours=1)
DEFAULT = AccountSettings()


def outcome_kind(
    event: Event, store: MemoryStore, after: timedelta, dedup_fingerprint: bool = False
) -> str:
    account_settings = AccountSettings(dedup_fingerprint=dedup_fingerprint)
    decision = decide(event, store, T0 + after, account_settings)
    assert decision is not None
    return decision.outcome.kind


def test_same_key_one_hour_later_is_duplicate() -> None:
    store = MemoryStore()
    assert outcome_kind(make_event(idempotency_key="k"), store, 0 * H) == OutcomeKind.ACCEPTED
    assert outcome_kind(make_event(idempotency_key="k"), store, 1 * H) == OutcomeKind.DUPLICATE


def test_same_key_25_hours_later_is_accepted_again() -> None:
    store = MemoryStore()
    assert outcome_kind(make_event(idempotency_key="k"), store, 0 * H) == OutcomeKind.ACCEPTED
    assert outcome_kind(make_event(idempotency_key="k"), store, 25 * H) == OutcomeKind.ACCEPTED
    # The window restarted at the second acceptance.
    assert outcome_kind(make_event(idempotency_key="k"), store, 48 * H) == OutcomeKind.DUPLICATE
    assert outcome_kind(make_event(idempotency_key="k"), store, 49 * H) == OutcomeKind.ACCEPTED


def test_duplicate_does_not_extend_the_window() -> None:
    store = MemoryStore()
    assert outcome_kind(make_event(idempotency_key="k"), store, 0 * H) == OutcomeKind.ACCEPTED
    assert outcome_kind(make_event(idempotency_key="k"), store, 23 * H) == OutcomeKind.DUPLICATE
    assert outcome_kind(make_event(idempotency_key="k"), store, 24 * H) == OutcomeKind.ACCEPTED


def test_window_is_processing_time_not_event_time() -> None:
    store = MemoryStore()
    first = make_event(idempotency_key="k", timestamp=T0 - 100 * H)
    again = make_event(idempotency_key="k", timestamp=T0 - 10 * H)
    assert outcome_kind(first, store, 0 * H) == OutcomeKind.ACCEPTED
    assert outcome_kind(again, store, 1 * H) == OutcomeKind.DUPLICATE


def test_same_key_for_two_users_is_two_events() -> None:
    store = MemoryStore()
    assert outcome_kind(make_event(user_id="a", idempotency_key="k"), store, 0 * H) == "accepted"
    assert outcome_kind(make_event(user_id="b", idempotency_key="k"), store, 1 * H) == "accepted"


def test_same_key_for_linked_identifiers_of_one_profile_is_duplicate() -> None:
    store = MemoryStore()
    first = make_event(user_id="42", email="a@x.com", idempotency_key="k")
    assert outcome_kind(first, store, 0 * H) == OutcomeKind.ACCEPTED
    assert outcome_kind(make_event(email="a@x.com", idempotency_key="k"), store, H) == "duplicate"


def test_same_key_in_two_accounts_is_two_events() -> None:
    store = MemoryStore()
    assert outcome_kind(make_event(account="a", idempotency_key="k"), store, 0 * H) == "accepted"
    assert outcome_kind(make_event(account="b", idempotency_key="k"), store, 0 * H) == "accepted"


def test_fingerprint_dedup_only_when_enabled() -> None:
    props = {"sku": "A1", "price": 10}
    off, on = MemoryStore(), MemoryStore()
    for store, enabled in ((off, False), (on, True)):
        assert outcome_kind(make_event(properties=props), store, 0 * H, dedup_fingerprint=enabled)
    assert outcome_kind(make_event(properties=props), off, H) == OutcomeKind.ACCEPTED
    assert (
        outcome_kind(
            make_event(properties=dict(reversed(props.items()))), on, H, dedup_fingerprint=True
        )
        == OutcomeKind.DUPLICATE
    )
    changed = make_event(properties={"sku": "A1", "price": 11})
    assert outcome_kind(changed, on, H, dedup_fingerprint=True) == OutcomeKind.ACCEPTED


def test_idempotency_key_wins_over_fingerprint() -> None:
    store = MemoryStore()
    first = make_event(idempotency_key="k1", properties={"a": 1})
    second = make_event(idempotency_key="k2", properties={"a": 1})
    assert outcome_kind(first, store, 0 * H, dedup_fingerprint=True) == OutcomeKind.ACCEPTED
    assert outcome_kind(second, store, H, dedup_fingerprint=True) == OutcomeKind.ACCEPTED


def test_fingerprint_is_stable_and_ignores_delivery_fields() -> None:
    a = make_event(properties={"x": {"b": 1, "a": [1, 2]}}, line=1)
    b = make_event(properties={"x": {"a": [1, 2], "b": 1}}, line=2, received_at=T0 + H)
    assert a.event_id != b.event_id
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a) != fingerprint(make_event(properties={"x": {"b": 1, "a": [2, 1]}}))


def test_event_without_key_is_never_a_duplicate() -> None:
    store = MemoryStore()
    assert outcome_kind(make_event(), store, 0 * H) == OutcomeKind.ACCEPTED
    assert outcome_kind(make_event(), store, 0 * H) == OutcomeKind.ACCEPTED
    assert store.tables.get(DEDUP_TABLE, {}) == {}


def test_redelivered_event_id_is_not_emitted_twice() -> None:
    store = MemoryStore()
    event = make_event(idempotency_key="k")
    assert decide(event, store, T0, DEFAULT) is not None
    assert decide(copy.copy(event), store, T0 + H, DEFAULT) is None
    # Also long after the dedup window, inside the seen retention (7 days).
    assert decide(copy.copy(event), store, T0 + 6 * 24 * H, DEFAULT) is None
    # A record without an idempotency key too.
    plain = make_event()
    assert decide(plain, store, T0, DEFAULT) is not None
    assert decide(plain, store, T0, DEFAULT) is None


def test_redelivered_stateless_rejection_is_not_emitted_twice() -> None:
    store = MemoryStore()
    event = make_event()
    rejection = Rejection(ErrorCode.INVALID_JSON, "bad")
    first = decide_rejection(event.event_id, event.source, rejection, store, T0, raw=b"{")
    assert first is not None and first.code is ErrorCode.INVALID_JSON and first.raw == b"{"
    assert decide_rejection(event.event_id, event.source, rejection, store, T0 + H) is None
    assert decide(event, store, T0 + H, DEFAULT) is None


def test_seen_event_ids_are_reclaimed_after_retention() -> None:
    store = MemoryStore()
    event = make_event()
    assert decide(event, store, T0, DEFAULT) is not None
    assert expire_state(store, T0 + 6 * 24 * H).seen == 0
    assert expire_state(store, T0 + 7 * 24 * H + timedelta(minutes=2)).seen == 1
    assert store.tables[SEEN_TABLE] == {}
    # After the retention the line would be decided again.
    assert decide(event, store, T0 + 8 * 24 * H, DEFAULT) is not None


def test_expired_dedup_state_is_reclaimed() -> None:
    store = MemoryStore()
    for index in range(300):
        remember(store, dedup_digest("acme", "user_id:1", f"k{index}"), T0, timedelta(hours=24))
    remember(store, dedup_digest("acme", "user_id:1", "late"), T0 + 2 * H, timedelta(hours=24))
    assert expire(store, T0 + 23 * H) == 0
    assert len(store.tables[DEDUP_TABLE]) == 301
    assert expire(store, T0 + 24 * H) == 300
    assert list(store.tables[DEDUP_TABLE]) == [dedup_digest("acme", "user_id:1", "late")]
    assert expire(store, T0 + 26 * H) == 1
    assert store.tables[DEDUP_TABLE] == {}
    # The index is reclaimed too, apart from its cursor.
    assert list(store.tables[DEDUP_EXPIRY_TABLE]) == ["/cursor"]


def test_expired_but_unreclaimed_entry_counts_as_absent() -> None:
    store = MemoryStore()
    digest = dedup_digest("acme", "user_id:1", "k")
    remember(store, digest, T0, timedelta(hours=24))
    assert is_duplicate(store, digest, T0 + 24 * H - timedelta(seconds=1))
    assert not is_duplicate(store, digest, T0 + 24 * H)
    assert store.get(DEDUP_TABLE, digest) is not None  # not reclaimed, still absent


def test_expiry_works_on_state_restored_from_a_changelog() -> None:
    store = MemoryStore()
    for index in range(10):
        remember(store, dedup_digest("a", "p", str(index)), T0 + index * H, timedelta(hours=24))
    # A fresh process: only the stored tables survive (as a JSON round trip).
    restored = MemoryStore()
    restored.tables = orjson.loads(orjson.dumps(store.tables))
    assert expire(restored, T0 + 24 * H + 5 * H) == 6
    assert len(restored.tables[DEDUP_TABLE]) == 4


def test_reaccepted_key_survives_reclaiming_its_old_bucket() -> None:
    store = MemoryStore()
    event = make_event(idempotency_key="k")
    assert outcome_kind(event, store, 0 * H) == OutcomeKind.ACCEPTED
    assert outcome_kind(make_event(idempotency_key="k"), store, 25 * H) == OutcomeKind.ACCEPTED
    expire(store, T0 + 26 * H)  # reclaims the first acceptance's bucket, keeps the new entry
    assert outcome_kind(make_event(idempotency_key="k"), store, 27 * H) == OutcomeKind.DUPLICATE


def test_expiry_shards_keep_separate_indexes() -> None:
    store = MemoryStore()
    remember(store, dedup_digest("a", "p", "1"), T0, timedelta(hours=1), shard="0")
    remember(store, dedup_digest("a", "p", "2"), T0, timedelta(hours=1), shard="1")
    assert expire(store, T0 + 2 * H, shard="0") == 1
    assert expire(store, T0 + 2 * H, shard="1") == 1


def test_clock_going_back_still_reclaims() -> None:
    store = MemoryStore()
    remember(store, dedup_digest("a", "p", "late"), T0 + 10 * H, timedelta(hours=1))
    assert expire(store, T0 + 12 * H) == 1
    remember(store, dedup_digest("a", "p", "early"), T0, timedelta(hours=1))  # behind cursor
    assert expire(store, T0 + 12 * H) == 1


def _serialized_size(tables: dict[str, dict[str, object]]) -> int:
    return sum(
        len(orjson.dumps(key)) + len(orjson.dumps(value))
        for name in (DEDUP_TABLE, DEDUP_EXPIRY_TABLE)
        for key, value in tables.get(name, {}).items()
    )


def test_dedup_state_per_key_is_at_most_200_bytes() -> None:
    # Worst case: a single key alone in its bucket pays for the whole index entry.
    lone = MemoryStore()
    remember(lone, dedup_digest("acme", "user_id:1", "k"), T0, timedelta(hours=24), shard="12")
    worst = _serialized_size(lone.tables)
    # Typical case: many keys share buckets and chunks.
    busy = MemoryStore()
    keys = 10_000
    for index in range(keys):
        now = T0 + timedelta(seconds=index)
        remember(busy, dedup_digest("acme", f"user_id:{index}", "key"), now, timedelta(hours=24))
    per_key = _serialized_size(busy.tables) / keys
    print(f"dedup bytes per key: lone {worst}, amortized {per_key:.1f}")
    assert worst <= 200
    assert per_key <= 200
