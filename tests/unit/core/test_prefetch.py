"""The prefetch plan: which state keys a batch reads, and a new profile has no dedup key."""

from __future__ import annotations

from streams.core.catalog import type_key
from streams.core.dedup import dedup_digest, dedup_key
from streams.core.identity import IDENTITY_TABLE, identity_key
from streams.core.prefetch import dedup_digests, state_keys
from streams.core.settings import AccountSettings
from streams.core.state import MemoryStore
from tests.unit.core.factories import make_event

SETTINGS = AccountSettings()


def test_state_keys_are_every_identifier_alias_and_event_type() -> None:
    event = make_event(user_id="1", email="a@x.com", name="purchase")
    keys = state_keys([event])
    assert sorted(keys.identity) == sorted(
        [identity_key("acme", "user_id", "1"), identity_key("acme", "email", "a@x.com")]
    )
    assert keys.types == [type_key("acme", "purchase")]
    assert keys.accounts == {"acme"}


def test_a_new_profile_has_no_dedup_key() -> None:
    store = MemoryStore()
    store.put(IDENTITY_TABLE, identity_key("acme", "user_id", "1"), "user_id:1")
    known = make_event(user_id="1", idempotency_key="k1")
    new = make_event(user_id="2", idempotency_key="k2")
    digests, absent = dedup_digests([known, new], SETTINGS, store.get)
    known_key, new_key = dedup_key(known, SETTINGS), dedup_key(new, SETTINGS)
    assert known_key is not None and new_key is not None
    assert digests == [dedup_digest("acme", "user_id:1", known_key)]
    assert absent == [dedup_digest("acme", "user_id:2", new_key)]


def test_a_record_without_a_dedup_key_reads_no_digest() -> None:
    assert dedup_digests([make_event(user_id="1")], SETTINGS, MemoryStore().get) == ([], [])
