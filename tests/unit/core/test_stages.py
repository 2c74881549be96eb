"""The stages of the user-keyed topology: each rule on its key's state, and, run one after
another on one store, the same outcomes as `decide`."""

from __future__ import annotations

import copy
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.catalog import CATALOG_PROPS_TABLE
from streams.core.decide import decide
from streams.core.errors import ErrorCode
from streams.core.identity import IDENTITY_TABLE, identity_key
from streams.core.records import OutcomeKind, RecordKind, SourceKind
from streams.core.settings import AccountSettings
from streams.core.stages import (
    Admitted,
    LinkRequest,
    admit_event,
    decide_for_profile,
    decide_in_stages,
    link_identifier,
    profile_key,
    resolve_profile,
    route_key,
)
from streams.core.state import MemoryStore
from tests.unit.core.factories import T0, make_event

DEFAULT = AccountSettings()
H = timedelta(hours=1)


def test_stage_one_suppresses_a_redelivered_event_id() -> None:
    store = MemoryStore()
    event = make_event(user_id="42")
    assert isinstance(admit_event(event, store, T0, DEFAULT), Admitted)
    assert admit_event(copy.deepcopy(event), store, T0 + H, DEFAULT) is None


def test_stage_one_rejects_a_record_without_identifiers() -> None:
    store = MemoryStore()
    event = make_event(kind=RecordKind.ALIAS, identifiers={})
    event.identifiers = {}
    outcome = admit_event(event, store, T0, DEFAULT)
    assert not isinstance(outcome, Admitted) and outcome is not None
    assert outcome.kind is OutcomeKind.REJECTED and outcome.code is ErrorCode.MISSING_IDENTITY


def test_stage_one_catalog_rejection_travels_to_the_profile_stage() -> None:
    store = MemoryStore()
    tight = AccountSettings(max_event_types=1)
    admit_event(make_event(name="a"), store, T0, tight)
    admitted = admit_event(make_event(name="b", user_id="7"), store, T0, tight)
    assert isinstance(admitted, Admitted) and admitted.rejection is not None
    assert admitted.rejection.code is ErrorCode.TOO_MANY_EVENT_TYPES
    outcome = decide_for_profile(admitted, "user_id:7", store, T0, tight)
    assert outcome.kind is OutcomeKind.REJECTED and outcome.event is not None
    assert outcome.event.profile_id == "user_id:7"


def test_catalog_rejected_record_still_links_its_identifiers() -> None:
    store = MemoryStore()
    tight = AccountSettings(max_event_types=0)
    outcome, _ = decide_in_stages(make_event(user_id="42", email="a@x.com"), store, T0, tight)
    assert outcome is not None and outcome.code is ErrorCode.TOO_MANY_EVENT_TYPES
    assert store.get(IDENTITY_TABLE, identity_key("acme", "email", "a@x.com")) == "user_id:42"


def test_stage_one_commits_new_catalog_names() -> None:
    store = MemoryStore()
    admit_event(make_event(name="buy", properties={"sku": 1}), store, T0, DEFAULT)
    assert store.get(CATALOG_PROPS_TABLE, "acme\x1fbuy") == ["sku"]


def test_stage_two_new_identifier_makes_its_own_profile() -> None:
    store = MemoryStore()
    profile, requests = resolve_profile(make_event(user_id="42", email="a@x.com"), store)
    assert profile == "user_id:42"
    assert store.get(IDENTITY_TABLE, identity_key("acme", "user_id", "42")) == "user_id:42"
    assert [(r.identifier, r.profile_id) for r in requests] == [("email:a@x.com", "user_id:42")]


def test_stage_two_follows_the_link_of_the_highest_identifier() -> None:
    store = MemoryStore()
    store.put(IDENTITY_TABLE, identity_key("acme", "email", "a@x.com"), "user_id:42")
    profile, requests = resolve_profile(make_event(identifiers={"email": "a@x.com"}), store)
    assert profile == "user_id:42" and requests == []


def test_stage_three_first_link_wins_and_a_conflict_is_reported() -> None:
    store = MemoryStore()
    assert link_identifier(LinkRequest("acme", "email:a@x.com", "user_id:42", "e1"), store) is None
    conflict = link_identifier(LinkRequest("acme", "email:a@x.com", "user_id:7", "e2"), store)
    assert conflict is not None
    assert (conflict.existing_profile, conflict.attempted_profile) == ("user_id:42", "user_id:7")
    assert store.get(IDENTITY_TABLE, identity_key("acme", "email", "a@x.com")) == "user_id:42"


def test_stage_four_same_key_is_a_duplicate_within_24h_and_accepted_after() -> None:
    store = MemoryStore()

    def at(hours: float) -> OutcomeKind:
        admitted = Admitted(make_event(user_id="42", idempotency_key="k"))
        return decide_for_profile(admitted, "user_id:42", store, T0 + hours * H, DEFAULT).kind

    assert at(0) is OutcomeKind.ACCEPTED
    assert at(1) is OutcomeKind.DUPLICATE
    assert at(25) is OutcomeKind.ACCEPTED


def test_routing_keys_a_new_profile_stays_on_its_identifier() -> None:
    event = make_event(user_id="42", email="a@x.com")
    assert route_key(event) == identity_key("acme", "user_id", "42")
    assert profile_key("acme", "user_id:42") == route_key(event)


# --------------------------------------------------------------------------- equivalence

lines = st.tuples(
    st.integers(1, 30),  # line number: its event_id, and so its redeliveries
    st.sampled_from(["u1", "u2", None]),
    st.sampled_from(["a@x.com", "b@x.com", None]),
    st.sampled_from(["k1", "k2", None]),
    st.sampled_from(["buy", "view"]),
    st.sampled_from([SourceKind.API, SourceKind.FILE]),
    st.sampled_from([None, "c@x.com"]),  # a Kissmetrics-style alias
)


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(st.tuples(lines, st.integers(0, 30 * 3600)), min_size=1, max_size=40),
    fingerprint=st.booleans(),
)
def test_stages_in_sequence_decide_as_decide_does(
    steps: list[tuple[tuple[object, ...], int]], fingerprint: bool
) -> None:
    account_settings = AccountSettings(dedup_fingerprint=fingerprint)
    one, staged = MemoryStore(), MemoryStore()
    now = T0
    contents: dict[int, tuple[object, ...]] = {}
    for line, gap in steps:
        number, user_id, email, key, name, kind, alias = line
        if contents.setdefault(int(number), line) != line:  # type: ignore[call-overload]
            continue  # one line number, one content
        now += timedelta(seconds=gap)
        event = make_event(
            user_id=user_id,  # type: ignore[arg-type]
            email=email if email or user_id else "z@x.com",  # type: ignore[arg-type]
            idempotency_key=key,  # type: ignore[arg-type]
            name=name,  # type: ignore[arg-type]
            source_kind=kind,  # type: ignore[arg-type]
            alias={"email": alias} if alias else None,  # type: ignore[dict-item]
            line=int(number),  # type: ignore[call-overload]
            timestamp=T0,
            received_at=now,
        )
        expected = decide(copy.deepcopy(event), one, now, account_settings)
        got, _ = decide_in_stages(copy.deepcopy(event), staged, now, account_settings)
        if expected is None:
            assert got is None
            continue
        assert got is not None
        assert (got.kind, got.code, got.event and got.event.profile_id) == (
            expected.kind,
            expected.outcome.code,
            expected.profile_id,
        )
        assert bool(got.event and got.event.triggered) == expected.triggered
    assert one.tables[IDENTITY_TABLE] == staged.tables[IDENTITY_TABLE]
