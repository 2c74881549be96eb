"""One stage of the keyed topology applied to one hop: what it decides and where it goes next.

`run_stage` is the whole per-record logic of the Faust runtime's agents, without Kafka:
it calls the core's stages (streams/core/stages.py) against the state of the partition
the hop's key belongs to, and returns the record's outcome (when this stage decides it),
identity conflicts, and the hops for the next stages. The agents process a next hop in
place when its key belongs to the same partition, else send it to `events.by_key`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from streams.core.decide import decide_rejection
from streams.core.errors import Rejection
from streams.core.identity import IdentityConflict
from streams.core.normalize import normalize
from streams.core.records import Outcome, RawRecord, make_event_id
from streams.core.settings import AccountSettings
from streams.core.stages import (
    Admitted,
    account_key,
    admit_event,
    decide_for_profile,
    link_identifier,
    profile_key,
    resolve_profile,
    route_key,
)
from streams.core.state import StateStore
from streams.hops import Hop, HopStage
from streams.topics import partition_of


@dataclass(slots=True)
class Step:
    """What one stage did with one hop."""

    outcome: Outcome | None = None  # set by the stage that decides the record
    conflicts: list[IdentityConflict] = field(default_factory=list)
    next: list[Hop] = field(default_factory=list)


def first_hop(raw: RawRecord) -> Hop:
    """A raw record's way in: to stage 1, on its account's partition."""
    return Hop(HopStage.ACCOUNT, account_key(raw.source.account), record=raw)


def owns_outcome(hop: Hop) -> bool:
    """Whether the record's outcome is still to come from this hop or the ones after it
    (a link request is a side effect: its record is decided elsewhere)."""
    return hop.stage is not HopStage.LINK


def event_id_of(hop: Hop) -> str:
    if hop.event is not None:
        return hop.event.event_id
    if hop.record is not None:
        return make_event_id(hop.record.source)
    return hop.link.event_id if hop.link is not None else ""


def run_stage(
    hop: Hop, store: StateStore, now: datetime, settings: AccountSettings, shard: str = ""
) -> Step:
    """Applies `hop.stage` to `hop` against `store` (the state of `hop.key`'s partition)."""
    stage = hop.stage
    if stage is HopStage.ACCOUNT:
        raw = hop.record
        assert raw is not None, "an account hop carries its raw record"
        result = normalize(raw)
        if isinstance(result, Rejection):
            source = raw.source
            return Step(
                decide_rejection(
                    make_event_id(source),
                    source,
                    result,
                    store,
                    now,
                    raw=raw.payload,
                    received_at=raw.received_at,
                    shard=shard,
                )
            )
        admitted = admit_event(result, store, now, settings, raw=raw.payload, shard=shard)
        if admitted is None or isinstance(admitted, Outcome):
            return Step(admitted)
        admitted_event = admitted.event
        # the payload travels only where a dead letter will need it
        payload = raw.payload if admitted.rejection is not None else None
        route = Hop(
            HopStage.ROUTE, route_key(admitted_event), admitted_event, admitted.rejection, payload
        )
        return Step(next=[route])
    event = hop.event
    if stage is HopStage.ROUTE:
        assert event is not None, "a route hop carries its record"
        profile_id, requests = resolve_profile(event, store)
        upload_id = event.source.upload_id
        hops = [Hop(HopStage.LINK, r.key, link=r, upload_id=upload_id) for r in requests]
        hops.append(
            Hop(
                HopStage.DECIDE,
                profile_key(event.account, profile_id),
                event,
                hop.rejection,
                hop.raw,
                profile_id,
            )
        )
        return Step(next=hops)
    if stage is HopStage.LINK:
        assert hop.link is not None, "a link hop carries its request"
        conflict = link_identifier(hop.link, store)
        return Step(conflicts=[conflict] if conflict is not None else [])
    assert event is not None and hop.profile_id is not None, "a decide hop carries its profile"
    outcome = decide_for_profile(
        Admitted(event, hop.rejection),
        hop.profile_id,
        store,
        now,
        settings,
        raw=hop.raw,
        shard=shard,
    )
    return Step(outcome)


def account_of(hop: Hop) -> str:
    if hop.event is not None:
        return hop.event.account
    if hop.record is not None:
        return hop.record.source.account
    return hop.link.account if hop.link is not None else ""


@dataclass(slots=True)
class Advanced:
    """What `advance` did with one hop and the ones after it in the same partition."""

    outcomes: list[Outcome] = field(default_factory=list)
    conflicts: list[tuple[IdentityConflict, str]] = field(default_factory=list)  # + upload id
    forwards: list[tuple[int, Hop]] = field(default_factory=list)  # (partition, hop)
    failures: list[tuple[Hop, Exception]] = field(default_factory=list)


def advance(
    hop: Hop,
    partition: int,
    partitions: int,
    store: StateStore,
    now: datetime,
    settings_for: Callable[[str], AccountSettings],
) -> Advanced:
    """Runs `hop` and the hops after it while their keys belong to `partition` (against
    `store`, that partition's state); a hop whose key belongs to another partition is
    returned in `forwards`, to be sent there. A stage that raises is returned in
    `failures` (the record's other hops go on)."""
    done = Advanced()
    pending = [hop]
    shard = str(partition)
    while pending:
        hop = pending.pop()
        target = partition_of(hop.key, partitions)
        if target != partition:
            done.forwards.append((target, hop))
            continue
        try:
            step = run_stage(hop, store, now, settings_for(account_of(hop)), shard)
        except Exception as error:  # a bug: reported as data, never raised to the agent
            done.failures.append((hop, error))
            continue
        if step.outcome is not None:
            done.outcomes.append(step.outcome)
        if step.conflicts:
            upload_id = hop.upload_id or (hop.event.source.upload_id if hop.event else "")
            done.conflicts.extend((conflict, upload_id) for conflict in step.conflicts)
        pending.extend(reversed(step.next))
    return done
