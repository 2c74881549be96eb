"""Identity resolution: which profile a record belongs to, and the links it makes.

Rules (DESIGN.md "Identity"):

* The record belongs to the profile of its **highest-precedence** identifier
  (`IDENTIFIER_PRECEDENCE`: user_id > email > phone > object_id > fbid > gpid), following
  links made earlier.
* A never-seen highest identifier makes a new profile whose id is `namespace:value` of
  that identifier, and the identifier is linked to it (a self-link).
* Every lower identifier of the record with no link yet is linked to that profile
  (**first link wins**). A lower identifier already linked to a *different* profile is a
  **conflict**: reported as an `IdentityConflict` value, never merged, and the record still
  goes to the highest identifier's profile.
* The highest identifier decides even when it is new and a lower one is known. Example:
  `email:a@x.com` was linked to `user_id:42`; a record arrives with `user_id=7` and that
  email. `user_id:7` has no link, so it gets a new profile `user_id:7` (self-link), the
  record goes to `user_id:7`, and the email is reported as a conflict (existing
  `user_id:42`, attempted `user_id:7`); the email stays linked to `user_id:42`. The same
  holds when the email's profile is its own (`email:a@x.com`, made by an earlier email-only
  record): a user id seen for the first time next to it does not adopt that profile. This
  is Zeta's rule: "if both user_id and email are included, and each is mapped to different
  users currently, the event will be tracked to the user who matches the user_id field".
* A Kissmetrics alias (`Event.alias`, from `_p2`) links each alias identifier to the
  record's profile (the `_p` profile) exactly like a lower identifier, whatever its
  namespace's precedence: no link yet → linked; linked elsewhere → conflict.
* Nothing crosses accounts: every state key starts with the account.

State: table `identity`, key `"<account>\\x1f<namespace>:<value>"`, value the profile id
(`"<namespace>:<value>"`, without the account). Profiles are never merged, so a profile id
never changes once written, and a link always stores the canonical profile id (the
profile its target resolved to at link time): a lookup is one hop, never a chain.

Links are made before dedup: an identifier pair seen on a record is a fact even when the
record turns out to be a duplicate or is rejected by a catalog limit.

`resolve_links` applies these rules to one record against a `StateStore`; both runtimes
call it (the Kafka runtime through the per-key stages of `stages.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

from streams.core.records import IDENTIFIER_PRECEDENCE, Event
from streams.core.state import StateStore

IDENTITY_TABLE = "identity"
KEY_SEPARATOR = "\x1f"

_RANK = {namespace: rank for rank, namespace in enumerate(IDENTIFIER_PRECEDENCE)}


@dataclass(slots=True, frozen=True)
class IdentityConflict:
    """A lower (or alias) identifier already belongs to another profile: reported, not merged."""

    account: str
    identifier: str  # "namespace:value"
    existing_profile: str
    attempted_profile: str
    event_id: str

    def describe(self) -> str:
        return (
            f"identity conflict: {self.identifier} is linked to {self.existing_profile}; "
            f"not linked to {self.attempted_profile} (not merged)"
        )


def identifier_name(namespace: str, value: str) -> str:
    """`namespace:value`, the form of a profile id and of an identifier in reports."""
    return f"{namespace}:{value}"


def identity_key(account: str, namespace: str, value: str) -> str:
    """The `identity` table key of one identifier of one account."""
    return f"{account}{KEY_SEPARATOR}{namespace}:{value}"


def _ranked(identifiers: dict[str, str]) -> list[tuple[str, str]]:
    # Known namespaces by precedence; anything else after them, by name (deterministic).
    if len(identifiers) == 1:
        return list(identifiers.items())
    ranked = [
        (namespace, identifiers[namespace])
        for namespace in IDENTIFIER_PRECEDENCE
        if namespace in identifiers
    ]
    if len(ranked) == len(identifiers):
        return ranked  # only known namespaces: already in precedence order
    return sorted(
        identifiers.items(),
        key=lambda item: (_RANK.get(item[0], len(_RANK)), item[0]),
    )


def ordered_identifiers(event: Event) -> list[tuple[str, str]]:
    """The record's identifiers, highest precedence first, then its alias identifiers."""
    ranked = _ranked(event.identifiers)
    if not event.alias:
        return ranked
    seen = set(ranked)
    for pair in _ranked(event.alias):
        if pair not in seen:
            ranked.append(pair)
            seen.add(pair)
    return ranked


def resolve_links(
    event: Event, store: StateStore
) -> tuple[str, list[tuple[str, str]], list[IdentityConflict], bool]:
    """(profile id, links made, conflicts, new profile) of one record; writes the links.

    One pass: each key is read once (a link is written right away; the keys of one record
    are distinct, so no later read of the record sees it). First link wins: a key already
    linked elsewhere, or holding a value that is not a link, is a conflict, never
    overwritten. Raises ValueError for a record without identifiers (normalization rejects
    those first). `decide` calls this once per record.
    """
    ordered = ordered_identifiers(event)
    if not event.identifiers or not ordered:
        raise ValueError(f"record {event.event_id} has no identifiers")
    account = event.account
    get = store.get
    put = store.put
    made: list[tuple[str, str]] = []
    conflicts: list[IdentityConflict] = []
    late: list[tuple[str, str, str]] = []  # (key, current, profile): applying-time conflicts
    top_namespace, top_value = ordered[0]
    top_key = f"{account}{KEY_SEPARATOR}{top_namespace}:{top_value}"
    existing = get(IDENTITY_TABLE, top_key)
    if isinstance(existing, str):
        profile_id = existing
        new_profile = False
    else:
        profile_id = f"{top_namespace}:{top_value}"
        new_profile = True
        if existing is None:
            put(IDENTITY_TABLE, top_key, profile_id)
            made.append((top_key, profile_id))
        else:
            late.append((top_key, existing, profile_id))
    for namespace, value in ordered[1:]:
        key = f"{account}{KEY_SEPARATOR}{namespace}:{value}"
        linked = get(IDENTITY_TABLE, key)
        if linked is None:
            put(IDENTITY_TABLE, key, profile_id)
            made.append((key, profile_id))
        elif not isinstance(linked, str):
            late.append((key, linked, profile_id))
        elif linked != profile_id:
            conflicts.append(
                IdentityConflict(
                    account, f"{namespace}:{value}", linked, profile_id, event.event_id
                )
            )
    for key, current, attempted in late:
        # A stored value that is not a link is reported, never overwritten.
        owner, _, identifier = key.partition(KEY_SEPARATOR)
        conflicts.append(IdentityConflict(owner, identifier, current, attempted, event.event_id))
    return profile_id, made, conflicts, new_profile
