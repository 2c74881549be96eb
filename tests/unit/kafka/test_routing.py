"""The keyed topology without Kafka: partitions as separate stores, hops as FIFO queues, and
a random schedule of which partition works next. Whatever the schedule, a sequence of
uploads whose records rely only on links from earlier uploads ends with the outcomes
`decide` gives in one process."""

from __future__ import annotations

import random
from collections import deque
from datetime import UTC, datetime, timedelta

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.decide import decide, decide_rejection
from streams.core.errors import Rejection
from streams.core.normalize import normalize
from streams.core.outputs import dump_outcome
from streams.core.records import Dialect, RawRecord, Source, SourceKind, make_event_id
from streams.core.settings import AccountSettings
from streams.core.state import MemoryStore
from streams.kafka.routing import ArrivalMemory, advance, arrival_partition, first_hop, run_stage
from streams.kafka.topics import partition_of
from streams.kafka.wire import Hop, HopError, decode_hops, encode_hops

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
SETTINGS = AccountSettings()
USERS = ("u1", "u2", "u3", "u4")
EMAILS = ("e1@x.com", "e2@x.com", "e3@x.com")

Result = tuple[str, str | None, str, str | None, bool]


def _raw(account: str, upload: str, line: int, doc: dict[str, object] | None) -> RawRecord:
    source = Source(SourceKind.FILE, Dialect.ZETA, account, upload, "f.jsonl", None, line)
    payload = b"{not json" if doc is None else orjson.dumps(doc)
    return RawRecord(source, NOW, payload, trigger=line % 2 == 0)


# One upload: (account, kind, rows). "pairs" rows have a user id and maybe an email, each
# email with one user in the upload; "emails" rows have only an email (they follow links
# from earlier uploads). A row is (user, email, key, minutes ago, bad line, redelivered).
rows = st.lists(
    st.tuples(
        st.sampled_from(USERS),
        st.sampled_from((*EMAILS, None)),
        st.sampled_from(("k1", "k2", None)),
        st.integers(0, 26 * 60),
        st.booleans(),
        st.booleans(),
    ),
    min_size=1,
    max_size=12,
)
uploads = st.lists(
    st.tuples(st.sampled_from(("a", "b")), st.sampled_from(("pairs", "emails")), rows),
    min_size=1,
    max_size=5,
)


def records_of(n: int, account: str, kind: str, upload_rows: list[tuple]) -> list[RawRecord]:  # type: ignore[type-arg]
    upload = f"up{n}"
    owner: dict[str, str] = {}  # email -> its user in this upload
    out: list[RawRecord] = []
    for line, (user, email, key, ago, bad, again) in enumerate(upload_rows, 1):
        doc: dict[str, object] = {
            "event_type": "view",
            "timestamp": (NOW - timedelta(minutes=ago)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if kind == "pairs":
            doc["user_id"] = user
            if email is not None and owner.setdefault(email, user) == user:
                doc["email"] = email
        else:
            doc["email"] = email or EMAILS[0]
        if key is not None:
            doc["idempotencyKey"] = key
        raw = _raw(account, upload, line, None if bad else doc)
        out.append(raw)
        if again:
            out.append(raw)  # the same line handed in twice: one outcome
    return out


def reference(all_uploads: list[list[RawRecord]]) -> dict[str, Result]:
    store = MemoryStore()
    found: dict[str, Result] = {}
    for records in all_uploads:
        for raw in records:
            event = normalize(raw)
            if isinstance(event, Rejection):
                outcome = decide_rejection(make_event_id(raw.source), raw.source, event, store, NOW)
            else:
                decision = decide(event, store, NOW, SETTINGS)
                outcome = decision.outcome if decision else None
            if outcome is not None:
                profile = outcome.event.profile_id if outcome.event else None
                triggered = bool(outcome.event and outcome.event.triggered)
                code = str(outcome.code) if outcome.code else None
                assert outcome.event_id not in found
                found[outcome.event_id] = (outcome.event_id, profile, outcome.kind, code, triggered)
    return found


def run_keyed(
    all_uploads: list[list[RawRecord]], partitions: int, schedule: random.Random
) -> tuple[dict[str, Result], int]:
    stores = [MemoryStore() for _ in range(partitions)]
    memories = [ArrivalMemory() for _ in range(partitions)]
    found: dict[str, Result] = {}
    hops = 0
    for n, records in enumerate(all_uploads):
        # a producer keys by account, but not necessarily onto the account's partition
        entry = schedule.randrange(partitions)
        raw_queues = {p: deque[Hop]() for p in range(partitions)}
        key_queues = {p: deque[Hop]() for p in range(partitions)}
        raw_queues[entry].extend(first_hop(raw) for raw in records)
        while True:
            ready = [("raw", p) for p, q in raw_queues.items() if q]
            ready += [("key", p) for p, q in key_queues.items() if q]
            if not ready:
                break  # the upload is complete before the next one starts
            which, partition = schedule.choice(ready)
            if which == "raw":
                hop = raw_queues[partition].popleft()
            else:
                hop = key_queues[partition].popleft()
            done = advance(
                hop,
                partition,
                partitions,
                stores[partition],
                NOW,
                lambda _: SETTINGS,
                memories[partition],
            )
            assert not done.failures, done.failures
            by_target: dict[int, list[Hop]] = {}
            for target, forward in done.forwards:
                by_target.setdefault(target, []).append(forward)
                hops += 1
            for target, batch in by_target.items():  # one message per partition, on the wire
                decoded = decode_hops(encode_hops(batch))
                key_queues[target].extend(h for h in decoded if not isinstance(h, HopError))
            for outcome in done.outcomes:
                profile = outcome.event.profile_id if outcome.event else None
                triggered = bool(outcome.event and outcome.event.triggered)
                code = str(outcome.code) if outcome.code else None
                assert outcome.event_id not in found, f"two outcomes for {outcome.event_id} ({n})"
                found[outcome.event_id] = (outcome.event_id, profile, outcome.kind, code, triggered)
    return found, hops


@settings(max_examples=150, deadline=None)
@given(plan=uploads, partitions=st.sampled_from([1, 3, 8]), seed=st.integers(0, 2**32))
def test_keyed_topology_decides_as_one_process_whatever_the_schedule(
    plan: list[tuple[str, str, list[tuple]]],  # type: ignore[type-arg]
    partitions: int,
    seed: int,
) -> None:
    all_uploads = [records_of(n, a, kind, r) for n, (a, kind, r) in enumerate(plan)]
    expected = reference(all_uploads)
    got, _ = run_keyed(all_uploads, partitions, random.Random(seed))
    assert got == expected


def test_every_stage_state_stays_in_its_keys_partition() -> None:
    plan = [
        ("a", "pairs", [(u, e, "k1", 5, False, False) for u in USERS for e in EMAILS[:1]]),
        ("a", "emails", [("u1", e, "k2", 5, False, False) for e in EMAILS]),
    ]
    all_uploads = [records_of(n, a, kind, r) for n, (a, kind, r) in enumerate(plan)]
    stores = [MemoryStore() for _ in range(8)]
    for records in all_uploads:
        queue: deque[tuple[int, Hop]] = deque((0, first_hop(raw)) for raw in records)
        while queue:
            partition, hop = queue.popleft()
            done = advance(
                hop, partition, 8, stores[partition], NOW, lambda _: SETTINGS, ArrivalMemory()
            )
            queue.extend(done.forwards)
    for partition, store in enumerate(stores):
        for key in store.tables.get("identity", {}):
            assert partition_of(key, 8) == partition, key
        for key in store.tables.get("catalog_props", {}):
            assert partition_of(key.split("\x1f")[0], 8) == partition, key


def test_a_stateless_dead_letter_says_when_its_record_was_received() -> None:
    received = NOW - timedelta(minutes=5)
    raw = _raw("a", "up", 1, None)
    raw = RawRecord(raw.source, received, raw.payload)
    step = run_stage(first_hop(raw), MemoryStore(), NOW, SETTINGS)
    assert step.outcome is not None and step.outcome.rejection is not None
    letter = orjson.loads(dump_outcome(step.outcome))
    assert (letter["code"], letter["received_at"]) == ("invalid_json", "2024-06-01T11:55:00Z")


def test_catalog_limits_hold_whichever_partition_each_record_arrives_on() -> None:
    # records of one account arrive on four partitions; names new to a partition consult the account's partition, so the limits are never exceeded (which of
    # two records gets the last free name follows the order they reach it)
    tight = AccountSettings(max_event_types=2, max_properties=2)
    plan = [
        ("a", ["p", "q", "r"]),
        ("a", ["p"]),
        ("b", []),
        ("c", []),
        ("a", ["q"]),
        ("a", ["r"]),
        ("a", ["p", "q"]),
    ]
    plan += [("b", []), ("d", []), ("a", ["p"]), ("c", [])] * 3
    records = [
        _raw(
            "acct",
            "up",
            line,
            {"user_id": f"u{line}", "event_type": name, "timestamp": "2024-06-01T11:00:00Z"}
            | dict.fromkeys(props, 1),
        )
        for line, (name, props) in enumerate(plan, 1)
    ]
    stores = [MemoryStore() for _ in range(4)]
    memories = [ArrivalMemory() for _ in range(4)]
    queue = deque((line % 4, first_hop(raw)) for line, raw in enumerate(records))
    outcomes = {}
    while queue:
        partition, hop = queue.popleft()
        done = advance(
            hop, partition, 4, stores[partition], NOW, lambda _: tight, memories[partition]
        )
        queue.extend(done.forwards)
        for outcome in done.outcomes:
            assert outcome.event_id not in outcomes
            outcomes[outcome.event_id] = outcome
    assert len(outcomes) == len(records)
    accepted: dict[str, set[str]] = {}
    for outcome in outcomes.values():
        if outcome.event is not None and outcome.code is None:
            accepted.setdefault(str(outcome.event.name), set()).update(outcome.event.properties)
    assert len(accepted) == 2 and all(len(names) <= 2 for names in accepted.values())
    codes = {str(o.code) for o in outcomes.values() if o.code is not None}
    assert codes == {"too_many_event_types", "too_many_properties"}
    # every name is committed on the account's partition only
    account_partition = partition_of("acct", 4)
    for partition, store in enumerate(stores):
        assert bool(store.tables.get("catalog_props")) == (partition == account_partition)


def test_a_user_s_records_arrive_on_the_partition_of_their_stage_2_key() -> None:
    first = _raw(
        "acct", "up", 1, {"user_id": "42", "event_type": "a", "timestamp": "2024-06-01T11:00:00Z"}
    )
    second = _raw(
        "acct",
        "up2",
        9,
        {"user_id": "42", "event_type": "b", "email": "x@y.z", "timestamp": "2024-06-01T11:00:00Z"},
    )
    assert (
        arrival_partition(first, 8)
        == arrival_partition(second, 8)
        == partition_of("acct\x1fuser_id:42", 8)
    )
    bad = _raw("acct", "up", 3, None)
    assert arrival_partition(bad, 8) == partition_of(make_event_id(bad.source), 8)


def test_a_csv_row_the_catalog_rejects_keeps_its_header_through_the_hops() -> None:
    """The catalog's rejection is decided on the account's partition and the outcome on the
    profile's: the row's header travels with its payload (on the wire), so its dead letter
    carries it as a stage-1 rejection does (the feedback file is CSV on both runtimes)."""
    tight = AccountSettings(max_event_types=1)
    header = ("email", "event_name", "time")
    stores = [MemoryStore() for _ in range(4)]
    memories = [ArrivalMemory() for _ in range(4)]
    letters = []
    for line, name in enumerate(("Buys", "Views"), 2):
        source = Source(SourceKind.FILE, Dialect.VERO, "acct", "up", "f.csv", None, line)
        cells = [f"u{line}@x.com", name, "2024-06-01 11:00+00"]
        fields = dict(zip(header, cells, strict=True))
        raw = RawRecord(source, NOW, ", ".join(cells).encode(), fields=fields, header=header)
        arrival = (partition_of("acct", 4) + 1) % 4  # not the account's partition
        queue = deque([(arrival, first_hop(raw))])
        outcomes = []
        while queue:
            partition, hop = queue.popleft()
            done = advance(
                hop, partition, 4, stores[partition], NOW, lambda _: tight, memories[partition]
            )
            for target, forward in done.forwards:  # across the wire, as between two workers
                [decoded] = decode_hops(encode_hops([forward]))
                assert isinstance(decoded, Hop)
                queue.append((target, decoded))
            outcomes += done.outcomes
        [outcome] = outcomes
        letters.append(orjson.loads(dump_outcome(outcome)) if outcome.rejection else None)
    assert letters[0] is None  # the first name fits
    assert letters[1] is not None and letters[1]["code"] == "too_many_event_types"
    assert letters[1]["header"] == list(header)
