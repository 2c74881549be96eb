"""The stateful half of the rules in one call: `decide(event, store, now, settings)`.

Order, for one normalized record:

1. **redelivery** — an `event_id` already decided (within `SEEN_RETENTION`) returns None:
   nothing is emitted a second time, not even an outcome.
2. **identity** — the record's profile; links are written here, *before* catalog and
   dedup, because a record's identifiers are facts even when the record itself turns out
   to be a duplicate or is rejected by a catalog limit. Conflicts are returned as data
   and also added to `outcome.notes` as text.
3. **catalog** — event-type / property-name limits (`rejected`, stage CATALOG). Checked
   before dedup, so an over-limit record is rejected even if it also repeats a key.
4. **dedup** — idempotency key / fingerprint in the account+profile scope → `duplicate`.
5. **accept** — only now are the record's new catalog names and its dedup key written,
   and **trigger** eligibility decided (`event.triggered`).

Every decided `event_id` is remembered in `seen` with a compact summary. Records the
stateless half rejects never reach `decide`; the runtime must still remember them, or a
redelivered bad line would be dead-lettered twice: call `decide_rejection` (or
`already_decided` + `record_rejection`) for them. Use the event id from
`records.make_event_id(raw.source)` — the one the Event would have had.

Atomicity is the runtime's job: the state writes of one call and its emitted outcome must
commit together (the embedded runtime flushes its overlay in the outcome's SQLite
transaction; the Faust runtime needs exactly-once processing for the same guarantee).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta

from streams.core.catalog import check_catalog, commit_catalog
from streams.core.dedup import (
    SEEN_RETENTION,
    event_digest,
    expire,
    expire_seen,
    is_duplicate,
    previous_outcome,
    remember,
    remember_outcome,
)
from streams.core.errors import ErrorCode, Rejection, Stage
from streams.core.identity import IdentityConflict, resolve_links
from streams.core.records import Event, Outcome, OutcomeKind, Source
from streams.core.settings import AccountSettings
from streams.core.state import StateStore
from streams.core.trigger import is_trigger_eligible


@dataclass(slots=True, frozen=True)
class Decision:
    """The outcome of one record plus what identity resolution found."""

    outcome: Outcome
    conflicts: tuple[IdentityConflict, ...] = ()
    links_made: tuple[tuple[str, str], ...] = ()  # (identity key, profile id) written
    new_profile: bool = False

    @property
    def kind(self) -> OutcomeKind:
        return self.outcome.kind

    @property
    def profile_id(self) -> str | None:
        return self.outcome.event.profile_id if self.outcome.event else None

    @property
    def triggered(self) -> bool:
        return bool(self.outcome.event and self.outcome.event.triggered)


def summary_of(outcome: Outcome) -> str:
    """The compact form kept in `seen`: accepted, triggered, duplicate, rejected:<code>."""
    if outcome.kind is OutcomeKind.REJECTED:
        return f"rejected:{outcome.code or ''}"
    if outcome.kind is OutcomeKind.ACCEPTED and outcome.event and outcome.event.triggered:
        return "triggered"
    return str(outcome.kind)


def already_decided(event_id: str, store: StateStore, now: datetime) -> bool:
    return previous_outcome(event_id, store, now) is not None


def record_rejection(
    event_id: str,
    store: StateStore,
    now: datetime,
    code: ErrorCode | str,
    *,
    shard: str = "",
    retention: timedelta = SEEN_RETENTION,
) -> None:
    """Remembers a record rejected before `decide` (stateless rules) for redelivery."""
    remember_outcome(event_id, store, now, f"rejected:{code}", retention, shard)


def decide_rejection(
    event_id: str,
    source: Source,
    rejection: Rejection,
    store: StateStore,
    now: datetime,
    *,
    raw: bytes | None = None,
    received_at: datetime | None = None,
    shard: str = "",
    retention: timedelta = SEEN_RETENTION,
) -> Outcome | None:
    """The outcome of a stateless rejection, or None when this event_id was decided before."""
    if already_decided(event_id, store, now):
        return None
    record_rejection(event_id, store, now, rejection.code, shard=shard, retention=retention)
    return Outcome(
        OutcomeKind.REJECTED, event_id, source, rejection=rejection, raw=raw,
        received_at=received_at,
    )  # fmt: skip


# A record that reaches the stateful rules without identifiers (`decide`, and stage 1 of
# the keyed runtime, streams/core/stages.py).
NO_IDENTITY = Rejection(
    ErrorCode.MISSING_IDENTITY, "no user identifier in the record", Stage.IDENTITY
)

_ACCEPTED = OutcomeKind.ACCEPTED
_DUPLICATE = OutcomeKind.DUPLICATE
_REJECTED = OutcomeKind.REJECTED
_new_object = object.__new__
_DECISION_SETTERS = tuple(getattr(Decision, f.name).__set__ for f in dataclasses.fields(Decision))


def _decision(
    outcome: Outcome,
    conflicts: tuple[IdentityConflict, ...],
    links_made: tuple[tuple[str, str], ...],
    new_profile: bool,
) -> Decision:
    """`Decision(outcome, conflicts, links_made, new_profile)`, without the frozen
    dataclass's per-field `object.__setattr__` (one per record)."""
    decision: Decision = _new_object(Decision)
    set_outcome, set_conflicts, set_links, set_new = _DECISION_SETTERS
    set_outcome(decision, outcome)
    set_conflicts(decision, conflicts)
    set_links(decision, links_made)
    set_new(decision, new_profile)
    return decision


def _with_profile(event: Event, profile_id: str) -> Event:
    """A copy of `event` with `profile_id` set and `triggered` False (positional, in field
    order: `dataclasses.replace` costs several microseconds per record)."""
    return Event(
        event.event_id,
        event.kind,
        event.account,
        event.name,
        event.identifiers,
        event.timestamp,
        event.received_at,
        event.properties,
        event.source,
        event.idempotency_key,
        profile_id,
        event.alias,
        event.url,
        event.resource_id,
        event.resource_type,
        event.trigger_requested,
        False,
    )


def decide(
    event: Event,
    store: StateStore,
    now: datetime,
    settings: AccountSettings,
    *,
    raw: bytes | None = None,
    shard: str = "",
    seen_retention: timedelta = SEEN_RETENTION,
    in_place: bool = False,
    track_seen: bool = True,
) -> Decision | None:
    """Decides one normalized record; None when its event_id was already decided.

    The returned outcome's `event` is a copy of `event` with `profile_id` and `triggered`
    set (for duplicates and rejections too, where `triggered` stays False), and `event`
    itself is left as it was. With `in_place=True` the outcome's event is `event` itself,
    with those two fields set: for a runtime that owns the record it just normalized and
    does not keep the unresolved form (it saves a copy per record). `raw` is carried into
    the outcome for dead letters; `shard` is the Faust partition (see
    `streams.core.dedup`).

    `track_seen=False` is for a runtime that guarantees redelivery suppression itself and
    never hands the same `event_id` in twice (the embedded runtime's committed read
    position, see docs/decisions/stateful-rules.md): `seen` is then neither read nor
    written, and the result is never None.
    """
    event_id = event.event_id
    if track_seen and previous_outcome(event_id, store, now) is not None:
        return None
    if not event.identifiers:
        rejection = NO_IDENTITY
        outcome = Outcome(
            OutcomeKind.REJECTED,
            event.event_id,
            event.source,
            event=event,
            rejection=rejection,
            raw=raw,
        )
        if track_seen:
            remember_outcome(event_id, store, now, summary_of(outcome), seen_retention, shard)
        return Decision(outcome)

    profile_id, links_made, conflicts, new_profile = resolve_links(event, store)
    if in_place:
        decided = event
        decided.profile_id = profile_id
        decided.triggered = False
    else:
        decided = _with_profile(event, profile_id)
    notes = [conflict.describe() for conflict in conflicts] if conflicts else []

    check = check_catalog(decided, store, settings)
    source = event.source
    if check.rejection is not None:
        outcome = Outcome(_REJECTED, event_id, source, decided, check.rejection, raw, notes)
        summary = f"rejected:{check.rejection.code}"
    else:
        digest = event_digest(decided, profile_id, settings)
        if digest is not None and is_duplicate(store, digest, now):
            outcome = Outcome(_DUPLICATE, event_id, source, decided, None, raw, notes)
            summary = "duplicate"
        else:
            if check.new_type or check.new_properties:
                commit_catalog(decided, check, store)
            if digest is not None:
                remember(store, digest, now, settings.dedup_window, shard)
            triggered = is_trigger_eligible(decided, now, settings)
            decided.triggered = triggered
            outcome = Outcome(_ACCEPTED, event_id, source, decided, None, raw, notes)
            summary = "triggered" if triggered else "accepted"
    if track_seen:
        remember_outcome(event_id, store, now, summary, seen_retention, shard)
    return _decision(outcome, tuple(conflicts), tuple(links_made), new_profile)


@dataclass(slots=True, frozen=True)
class Reclaimed:
    dedup: int
    seen: int


def expire_state(
    store: StateStore, now: datetime, *, shard: str = "", max_buckets: int | None = None
) -> Reclaimed:
    """Reclaims expired dedup keys and seen event ids. Safe to call at any time and any
    rate (e.g. every minute); it depends only on stored values."""
    return Reclaimed(
        dedup=expire(store, now, shard, max_buckets),
        seen=expire_seen(store, now, shard, max_buckets),
    )
