"""`decide` split into the stages of a user-keyed topology, each on the state of one key.

`decide` (streams/core/decide.py) needs, for one record, the state of its account
(catalog, seen event ids), of each of its identifiers (links) and of its profile (dedup
keys). A runtime that partitions state by key (the Faust runtime) runs it as four stages,
each touching only the state of the key it is routed by:

1. `admit_event` — key: the account. Redelivery (`seen`), missing identity, the catalog
   limits (checked and committed here: the catalog is per account). The Faust runtime
   splits it: `admit_arrival` on the partition where the record arrives (redelivery,
   missing identity, names it already knows), and `check_account_catalog` on the
   account's partition only for a name new there (docs/decisions/arrival-partition.md).
2. `resolve_profile` — key: the record's highest-precedence identifier. Its link gives
   the profile (a never-seen identifier makes a new profile and links itself); the
   record's other identifiers and aliases become `LinkRequest`s.
3. `link_identifier` — key: one lower identifier. First link wins; a link to another
   profile is an `IdentityConflict` (reported, never merged).
4. `decide_for_profile` — key: the profile. Dedup in the account+profile scope, trigger
   eligibility, and the outcome (also for a record the catalog rejected in stage 1: it
   still had its identifiers linked, exactly as in `decide`).

Run one after another against one store (`decide_in_stages`), the stages give what
`decide` gives, with two differences, both documented in
docs/decisions/keyed-topology.md: conflicts are returned by stage 3 (not added to the
record's notes), and the catalog names of a record are committed in stage 1, before dedup
(a duplicate whose name or properties were new still adds them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from streams.core.catalog import CATALOG_PROPS_TABLE, check_catalog, commit_catalog, type_key
from streams.core.decide import NO_IDENTITY
from streams.core.dedup import (
    SEEN_RETENTION,
    event_digest,
    is_duplicate,
    previous_outcome,
    remember,
    remember_outcome,
)
from streams.core.errors import Rejection
from streams.core.identity import (
    IDENTITY_TABLE,
    KEY_SEPARATOR,
    IdentityConflict,
    ordered_identifiers,
)
from streams.core.records import Event, Outcome, OutcomeKind, RecordKind
from streams.core.settings import AccountSettings
from streams.core.state import StateStore
from streams.core.trigger import is_trigger_eligible

ROUTED = "routed"  # the `seen` summary of a record that left stage 1


@dataclass(slots=True)
class Admitted:
    """A record that passed stage 1, with the catalog's rejection if it had one (the
    outcome is decided in stage 4, after its identifiers are linked)."""

    event: Event
    rejection: Rejection | None = None
    consult: bool = False  # names new to this worker: the account's catalog must check them


class KnownCatalog:
    """What one worker already knows of its accounts' catalogs: for each event type, names
    committed to the account's catalog. A catalog only grows, so a name once known stays
    known; a record using only known names needs no look at the account's catalog. Held in
    memory and learnt from committed state only (docs/decisions/arrival-partition.md)."""

    __slots__ = ("_limit", "_names")

    def __init__(self, limit: int = 100_000) -> None:
        self._names: dict[str, frozenset[str]] = {}
        self._limit = limit

    def fits(self, event: Event, settings: AccountSettings) -> bool:
        """Whether the catalog limits certainly pass `event` (every name already known)."""
        if event.kind is not RecordKind.EVENT or event.name is None:
            return True
        known = self._names.get(type_key(event.account, event.name))
        return (
            known is not None
            and len(known) <= settings.max_properties
            and known.issuperset(event.properties)
        )

    def learn(self, account: str, name: str, names: list[str]) -> None:
        """`names`: the type's property names as committed in the account's catalog."""
        key = type_key(account, name)
        previous = self._names.get(key)
        if previous is not None and len(previous) >= len(names):
            return
        if previous is None and len(self._names) >= self._limit:
            self._names.clear()  # forgetting costs a look at the catalog, never a wrong answer
        self._names[key] = frozenset(names)


@dataclass(slots=True, frozen=True)
class LinkRequest:
    """Stage 3's work: link `identifier` ("namespace:value") of `account` to `profile_id`."""

    account: str
    identifier: str
    profile_id: str
    event_id: str

    @property
    def key(self) -> str:
        return f"{self.account}{KEY_SEPARATOR}{self.identifier}"


def account_key(account: str) -> str:
    """The routing key of stage 1."""
    return account


def route_key(event: Event) -> str:
    """The routing key of stage 2: the `identity` key of the highest identifier."""
    namespace, value = ordered_identifiers(event)[0]
    return f"{event.account}{KEY_SEPARATOR}{namespace}:{value}"


def profile_key(account: str, profile_id: str) -> str:
    """The routing key of stage 4. A new profile's id is its creating identifier, so a
    record of that identifier's own profile stays on stage 2's key."""
    return f"{account}{KEY_SEPARATOR}{profile_id}"


def admit_event(
    event: Event,
    store: StateStore,
    now: datetime,
    settings: AccountSettings,
    *,
    raw: bytes | None = None,
) -> Admitted | Outcome | None:
    """Stage 1 in one place (key: the account): `admit_arrival` with nothing known of the
    catalog, then `check_account_catalog`, as when the arrival partition is the account's."""
    admitted = admit_arrival(event, store, now, KnownCatalog(), settings, raw=raw)
    if not isinstance(admitted, Admitted):
        return admitted
    rejection, _ = check_account_catalog(event, store, settings)
    return Admitted(event, rejection)


def admit_arrival(
    event: Event,
    store: StateStore,
    now: datetime,
    known: KnownCatalog,
    settings: AccountSettings,
    *,
    raw: bytes | None = None,
    shard: str = "",
    seen_retention: timedelta = SEEN_RETENTION,
) -> Admitted | Outcome | None:
    """Stage 1 on the partition where the record arrives: None for an `event_id` decided
    before (the `seen` state of this partition), the final outcome of a record without
    identifiers, else the admitted record, with `consult` set when it uses a catalog name
    this worker does not know yet (then `check_account_catalog` decides its limits)."""
    event_id = event.event_id
    if previous_outcome(event_id, store, now) is not None:
        return None
    if not event.identifiers:
        rejection = NO_IDENTITY
        remember_outcome(event_id, store, now, f"rejected:{rejection.code}", seen_retention, shard)
        return Outcome(
            OutcomeKind.REJECTED, event_id, event.source, event=event, rejection=rejection, raw=raw
        )
    remember_outcome(event_id, store, now, ROUTED, seen_retention, shard)
    return Admitted(event, consult=not known.fits(event, settings))


def check_account_catalog(
    event: Event, store: StateStore, settings: AccountSettings
) -> tuple[Rejection | None, list[str] | None]:
    """The catalog limits on the account's partition (key: the account), for a record with
    a name its arrival worker did not know: checked and committed.
    Returns the rejection, if any, and the record's type's names now committed (None for a
    record without a type), for the workers to learn."""
    check = check_catalog(event, store, settings)
    if check.changes:
        commit_catalog(event, check, store)
    if event.kind is not RecordKind.EVENT or event.name is None:
        return check.rejection, None
    stored = store.get(CATALOG_PROPS_TABLE, type_key(event.account, event.name))
    return check.rejection, list(stored) if isinstance(stored, list) else None


def resolve_profile(event: Event, store: StateStore) -> tuple[str, list[LinkRequest]]:
    """Stage 2 (highest identifier): the record's profile, and a link request for each of
    its other identifiers and aliases. A never-seen identifier gets a profile of its own
    (`namespace:value`) and its self-link is written here."""
    ordered = ordered_identifiers(event)
    if not ordered:
        raise ValueError(f"record {event.event_id} has no identifiers")
    account = event.account
    namespace, value = ordered[0]
    key = f"{account}{KEY_SEPARATOR}{namespace}:{value}"
    existing = store.get(IDENTITY_TABLE, key)
    if isinstance(existing, str):
        profile_id = existing
    else:
        profile_id = f"{namespace}:{value}"
        store.put(IDENTITY_TABLE, key, profile_id)
    requests = [
        LinkRequest(account, f"{ns}:{v}", profile_id, event.event_id) for ns, v in ordered[1:]
    ]
    return profile_id, requests


def link_identifier(request: LinkRequest, store: StateStore) -> IdentityConflict | None:
    """Stage 3 (one lower identifier): first link wins; a link to another profile is a
    conflict, reported and not merged."""
    key = request.key
    current = store.get(IDENTITY_TABLE, key)
    if current is None:
        store.put(IDENTITY_TABLE, key, request.profile_id)
        return None
    if current != request.profile_id:
        return IdentityConflict(
            request.account, request.identifier, str(current), request.profile_id, request.event_id
        )
    return None


def decide_for_profile(
    admitted: Admitted,
    profile_id: str,
    store: StateStore,
    now: datetime,
    settings: AccountSettings,
    *,
    raw: bytes | None = None,
    shard: str = "",
) -> Outcome:
    """Stage 4 (profile): the outcome. `admitted.event` gets `profile_id` and `triggered`
    set (it is the runtime's own copy, decoded from the hop)."""
    event = admitted.event
    event.profile_id = profile_id
    event.triggered = False
    if admitted.rejection is not None:
        return Outcome(
            OutcomeKind.REJECTED, event.event_id, event.source, event, admitted.rejection, raw
        )
    digest = event_digest(event, profile_id, settings)
    if digest is not None and is_duplicate(store, digest, now):
        return Outcome(OutcomeKind.DUPLICATE, event.event_id, event.source, event, None, raw)
    if digest is not None:
        remember(store, digest, now, settings.dedup_window, shard)
    event.triggered = is_trigger_eligible(event, now, settings)
    return Outcome(OutcomeKind.ACCEPTED, event.event_id, event.source, event, None, raw)


def decide_in_stages(
    event: Event,
    store: StateStore,
    now: datetime,
    settings: AccountSettings,
    *,
    raw: bytes | None = None,
) -> tuple[Outcome | None, list[IdentityConflict]]:
    """The four stages one after another against one store (what the Faust runtime does
    when every key of a record is in one partition); `event` is decided in place."""
    admitted = admit_event(event, store, now, settings, raw=raw)
    if not isinstance(admitted, Admitted):
        return admitted, []
    profile_id, requests = resolve_profile(admitted.event, store)
    conflicts = [c for c in (link_identifier(r, store) for r in requests) if c is not None]
    return decide_for_profile(admitted, profile_id, store, now, settings, raw=raw), conflicts
