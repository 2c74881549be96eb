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
from streams.core.feedback import feedback_header, with_feedback_header
from streams.core.identity import IdentityConflict
from streams.core.normalize import normalize
from streams.core.records import Outcome, OutcomeKind, RawRecord, make_event_id
from streams.core.settings import AccountSettings
from streams.core.stages import (
    Admitted,
    KnownCatalog,
    account_key,
    admit_arrival,
    check_account_catalog,
    decide_for_profile,
    link_identifier,
    profile_key,
    resolve_profile,
    route_key,
)
from streams.core.state import StateStore
from streams.kafka.topics import partition_of
from streams.kafka.wire import Hop, HopStage


@dataclass(slots=True)
class Step:
    """What one stage did with one hop."""

    outcome: Outcome | None = None  # set by the stage that decides the record
    conflicts: list[IdentityConflict] = field(default_factory=list)
    next: list[Hop] = field(default_factory=list)


@dataclass(slots=True)
class ArrivalMemory:
    """What stage 1 of one partition remembers between records, in memory: the catalog
    names it has learnt (`KnownCatalog`), and per stage-2 key how many of its records are
    away at the account's catalog. While one is away, the key's later records follow it
    the same way, so they reach stage 2 in the order they arrived
    (docs/decisions/arrival-partition.md)."""

    known: KnownCatalog = field(default_factory=KnownCatalog)
    away: dict[str, int] = field(default_factory=dict)

    def leave(self, key: str) -> None:
        self.away[key] = self.away.get(key, 0) + 1

    def back(self, key: str) -> None:
        left = self.away.get(key, 0) - 1
        if left > 0:
            self.away[key] = left
        else:
            self.away.pop(key, None)


def first_hop(raw: RawRecord) -> Hop:
    """A raw record's way in: stage 1, on the partition where it arrived."""
    return Hop(HopStage.ARRIVAL, account_key(raw.source.account), record=raw)


def arrival_partition(raw: RawRecord, partitions: int) -> int:
    """The raw-topic partition a connector gives `raw`: the partition of its stage-2 key
    (account + highest identifier), so that one user's records arrive on one partition in
    source order and, for most records, stages 1, 2 and 4 run there without a hop; a
    record that cannot be normalized or has no identifier goes by its event id. A function
    of the record alone, so a re-sent record arrives where its first copy did (redelivery
    suppression is that partition's)."""
    result = normalize(raw)
    if isinstance(result, Rejection) or not result.identifiers:
        return partition_of(make_event_id(raw.source), partitions)
    return partition_of(route_key(result), partitions)


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
    hop: Hop,
    store: StateStore,
    now: datetime,
    settings: AccountSettings,
    shard: str = "",
    memory: ArrivalMemory | None = None,
    partition: int = 0,
) -> Step:
    """Applies `hop.stage` to `hop` against `store` (the state of `hop.key`'s partition, or
    for stage 1 of `partition`, where the record arrived); `memory`: stage 1's memory of
    `partition` (none: every name consults the account's catalog)."""
    memory = memory if memory is not None else ArrivalMemory()
    stage = hop.stage
    if stage is HopStage.ARRIVAL:
        raw = hop.record
        assert raw is not None, "an arrival hop carries its raw record"
        result = normalize(raw)
        if isinstance(result, Rejection):
            source = raw.source
            rejected = decide_rejection(
                make_event_id(source),
                source,
                result,
                store,
                now,
                raw=raw.payload,
                received_at=raw.received_at,
                shard=shard,
            )
            return Step(rejected and with_feedback_header(rejected, raw))
        known = memory.known
        admitted = admit_arrival(result, store, now, known, settings, raw=raw.payload, shard=shard)
        if admitted is None or isinstance(admitted, Outcome):
            return Step(admitted and with_feedback_header(admitted, raw))
        arrived = admitted.event
        key = route_key(arrived)
        if admitted.consult or key in memory.away:
            # a name new to this partition: the account's catalog decides (and a later
            # record of the same key follows, to stay behind it)
            memory.leave(key)
            account = account_key(arrived.account)
            catalog = Hop(HopStage.CATALOG, account, arrived, raw=raw.payload, origin=partition)
            catalog.header = feedback_header(raw)
            return Step(next=[catalog])
        return Step(next=[Hop(HopStage.ROUTE, key, arrived)])
    event = hop.event
    if stage is HopStage.CATALOG:
        assert event is not None, "a catalog hop carries its record"
        rejection, names = check_account_catalog(event, store, settings)
        # the payload travels on only where a dead letter will need it
        payload = hop.raw if rejection is not None else None
        back = Hop(
            HopStage.ADMITTED,
            route_key(event),
            event,
            rejection,
            payload,
            known=names,
            origin=hop.origin,
            header=hop.header if rejection is not None else None,
        )
        return Step(next=[back])
    if stage is HopStage.ADMITTED:
        assert event is not None, "an admitted hop carries its record"
        if hop.known is not None and event.name is not None:
            memory.known.learn(event.account, event.name, hop.known)  # committed names
        memory.back(hop.key)
        route = Hop(HopStage.ROUTE, hop.key, event, hop.rejection, hop.raw, header=hop.header)
        return Step(next=[route])
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
                header=hop.header,
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
    if hop.header is not None and outcome.kind is OutcomeKind.REJECTED:
        outcome.header = hop.header  # the catalog's rejection of a CSV row
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
    memory: ArrivalMemory,
) -> Advanced:
    """Runs `hop` and the hops after it while their keys belong to `partition` (against
    `store`, that partition's state; stage 1 runs wherever the record arrived); a hop whose
    key belongs to another partition is returned in `forwards`, to be sent there. A stage
    that raises is returned in `failures` (the record's other hops go on). `memory`: stage
    1's memory of `partition`."""
    done = Advanced()
    pending = [hop]
    shard = str(partition)
    while pending:
        hop = pending.pop()
        if hop.stage is not HopStage.ARRIVAL:
            if hop.stage is HopStage.ADMITTED and hop.origin is not None:
                target = hop.origin  # back where the record arrived
            else:
                target = partition_of(hop.key, partitions)
            if target != partition:
                done.forwards.append((target, hop))
                continue
        try:
            settings = settings_for(account_of(hop))
            step = run_stage(hop, store, now, settings, shard, memory, partition)
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
