"""Identity resolution rules."""

from __future__ import annotations

from typing import NamedTuple

from streams.core.identity import IDENTITY_TABLE, IdentityConflict, identity_key, resolve_links
from streams.core.records import Event, RecordKind
from streams.core.state import MemoryStore
from tests.unit.core.factories import make_event


class Resolved(NamedTuple):
    profile_id: str
    links_made: list[tuple[str, str]]
    conflicts: list[IdentityConflict]
    new_profile: bool


def resolve_identity(event: Event, store: MemoryStore) -> Resolved:
    return Resolved(*resolve_links(event, store))


def test_never_seen_identifier_makes_a_new_profile() -> None:
    store = MemoryStore()
    result = resolve_identity(make_event(user_id="42"), store)
    assert result.profile_id == "user_id:42"
    assert result.new_profile
    assert store.get(IDENTITY_TABLE, identity_key("acme", "user_id", "42")) == "user_id:42"


def test_event_belongs_to_highest_precedence_identifier() -> None:
    store = MemoryStore()
    event = make_event(identifiers={"gpid": "g1", "phone": "+15550001", "email": "a@x.com"})
    result = resolve_identity(event, store)
    assert result.profile_id == "email:a@x.com"
    assert store.get(IDENTITY_TABLE, identity_key("acme", "phone", "+15550001")) == "email:a@x.com"
    assert store.get(IDENTITY_TABLE, identity_key("acme", "gpid", "g1")) == "email:a@x.com"


def test_email_only_event_follows_earlier_user_id_email_link() -> None:
    store = MemoryStore()
    resolve_identity(make_event(user_id="42", email="a@x.com"), store)
    assert resolve_identity(make_event(email="a@x.com"), store).profile_id == "user_id:42"


def test_first_link_wins() -> None:
    store = MemoryStore()
    resolve_identity(make_event(user_id="42", email="a@x.com"), store)
    resolve_identity(make_event(user_id="7", email="a@x.com"), store)
    assert store.get(IDENTITY_TABLE, identity_key("acme", "email", "a@x.com")) == "user_id:42"
    assert resolve_identity(make_event(email="a@x.com"), store).profile_id == "user_id:42"


def test_conflicting_link_is_reported_not_merged() -> None:
    store = MemoryStore()
    resolve_identity(make_event(user_id="42", email="a@x.com"), store)
    resolve_identity(make_event(user_id="7", email="b@x.com"), store)
    event = make_event(user_id="7", email="a@x.com")
    result = resolve_identity(event, store)
    assert result.profile_id == "user_id:7"
    assert result.conflicts == [
        IdentityConflict("acme", "email:a@x.com", "user_id:42", "user_id:7", event.event_id)
    ]
    # Nothing merged: both profiles keep their own identifiers.
    assert resolve_identity(make_event(email="a@x.com"), store).profile_id == "user_id:42"
    assert resolve_identity(make_event(email="b@x.com"), store).profile_id == "user_id:7"
    assert resolve_identity(make_event(user_id="42"), store).profile_id == "user_id:42"


def test_new_highest_identifier_with_linked_lower_one_gets_new_profile_and_conflict() -> None:
    # email linked earlier to user_id:42; now user_id=7 (never seen) + that email.
    store = MemoryStore()
    resolve_identity(make_event(user_id="42", email="a@x.com"), store)
    event = make_event(user_id="7", email="a@x.com")
    result = resolve_identity(event, store)
    assert result.profile_id == "user_id:7"
    assert result.new_profile
    assert result.links_made == [(identity_key("acme", "user_id", "7"), "user_id:7")]
    assert [(c.identifier, c.existing_profile, c.attempted_profile) for c in result.conflicts] == [
        ("email:a@x.com", "user_id:42", "user_id:7")
    ]
    assert store.get(IDENTITY_TABLE, identity_key("acme", "email", "a@x.com")) == "user_id:42"


def test_user_id_after_email_only_profile_is_a_conflict_not_an_adoption() -> None:
    store = MemoryStore()
    resolve_identity(make_event(email="a@x.com"), store)  # profile email:a@x.com
    result = resolve_identity(make_event(user_id="9", email="a@x.com"), store)
    assert result.profile_id == "user_id:9"
    assert [c.existing_profile for c in result.conflicts] == ["email:a@x.com"]


def test_kissmetrics_alias_links_p2_to_p_profile() -> None:
    store = MemoryStore()
    alias = make_event(
        kind=RecordKind.ALIAS,
        identifiers={"email": "new_customer@mail.com"},
        alias={"email": "chuck@mail.com"},
    )
    result = resolve_identity(alias, store)
    assert result.profile_id == "email:new_customer@mail.com"
    later = resolve_identity(make_event(email="chuck@mail.com"), store)
    assert later.profile_id == "email:new_customer@mail.com"


def test_alias_of_identifier_linked_elsewhere_is_a_conflict() -> None:
    store = MemoryStore()
    resolve_identity(make_event(email="chuck@mail.com"), store)
    alias = make_event(
        kind=RecordKind.ALIAS, identifiers={"user_id": "p"}, alias={"email": "chuck@mail.com"}
    )
    result = resolve_identity(alias, store)
    assert result.profile_id == "user_id:p"
    assert [c.identifier for c in result.conflicts] == ["email:chuck@mail.com"]


def test_nothing_crosses_accounts() -> None:
    store = MemoryStore()
    resolve_identity(make_event(account="acme", user_id="42", email="a@x.com"), store)
    other = resolve_identity(make_event(account="globex", user_id="7", email="a@x.com"), store)
    assert other.profile_id == "user_id:7"
    assert other.conflicts == []
    assert resolve_identity(make_event(account="globex", email="a@x.com"), store).profile_id == (
        "user_id:7"
    )


def test_links_never_chain_more_than_one_hop() -> None:
    store = MemoryStore()
    resolve_identity(make_event(user_id="42", email="a@x.com"), store)
    resolve_identity(make_event(email="a@x.com", identifiers={"phone": "+1555"}), store)
    resolve_identity(make_event(identifiers={"phone": "+1555", "gpid": "g"}), store)
    # gpid was linked via phone → email → user_id, but stores the canonical profile.
    assert store.get(IDENTITY_TABLE, identity_key("acme", "gpid", "g")) == "user_id:42"
    for _key, value in store.items(IDENTITY_TABLE):
        assert store.get(IDENTITY_TABLE, identity_key("acme", *value.split(":", 1))) == value
