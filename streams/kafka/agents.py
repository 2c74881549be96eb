"""The Faust agents: take raw records through the keyed stages, count outcomes per upload,
publish statuses.

No rule lives here: every decision is `streams.core` (the stages of
streams/core/stages.py through `streams.kafka.routing.run_stage`, `expire_state`,
`final_status`); this module only moves bytes between topics and tables. Keying
(docs/decisions/keyed-topology.md): each stage runs on the partition of its key —
account, highest identifier, each lower identifier, profile — and hands the record on
through `events.by_key`, or in place when the next key is in the same partition, so every
table is only ever read and written in the partition of its key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import orjson

from streams.core.decide import expire_state
from streams.core.errors import ErrorCode, Rejection, Stage
from streams.core.fanout import Output, route_outcome
from streams.core.identity import IdentityConflict
from streams.core.outputs import DUMPS_OPTIONS, deadletter, raw_text
from streams.core.records import Outcome, OutcomeKind, RawRecord, make_event_id
from streams.core.settings import AccountSettings
from streams.core.status import UploadCounts, counts_dict, counts_from, final_status, final_warnings
from streams.core.timeparse import to_iso
from streams.kafka import routing
from streams.kafka import topics as T
from streams.kafka.faust_store import UPLOADS_TABLE, FaustStore
from streams.kafka.hops import Hop, HopError, decode_hops, encode_hops
from streams.kafka.routing import account_of, event_id_of, first_hop, owns_outcome
from streams.kafka.stats import WorkerStats

log = logging.getLogger("tidegate.agents")
# One line every TIDEGATE_STATS_SECONDS (0: none): messages processed, commit durations.
stats_log = logging.getLogger("tidegate.stats")
STATS_SECONDS = float(os.environ.get("TIDEGATE_STATS_SECONDS", "60"))

Clock = Callable[[], datetime]
SettingsFor = Callable[[str], AccountSettings]

EXPIRE_EVERY_SECONDS = 60.0
PROCESSING_ERROR = "processing_error"  # a runtime failure, never a rule: see OPERATING_KAFKA.md
DEBUG = bool(os.environ.get("TIDEGATE_DEBUG_EOS"))
FATAL_EXIT_CODE = 70  # a transaction could not be committed: restart (see `fatal`)
PRODUCER_LINGER_MS = int(os.environ.get("TIDEGATE_PRODUCER_LINGER_MS", "5"))
PRODUCER_BATCH_BYTES = int(os.environ.get("TIDEGATE_PRODUCER_BATCH_BYTES", str(512 * 1024)))
# The transactional producers retry after 10 ms, not aiokafka's 100: a transaction begun
# right after a commit is refused with CONCURRENT_TRANSACTIONS until the broker has written
# the previous one's markers (a few ms), and aiokafka waits the full backoff before asking
# again when the new transaction's first request adds the consumer offsets (a partition
# with nothing to send). Measured at 2,000 events/s: one commit in ten took 112 ms instead
# of 18, and the p99 from produce to the triggers topic went from 460 ms to 299 ms.
TXN_RETRY_BACKOFF_MS = int(os.environ.get("TIDEGATE_TXN_RETRY_BACKOFF_MS", "10"))
# at most this many records of the decide agent are worked on together (fewer when the
# stream has no more queued); an outcomes message lists at most this many records
DECIDE_BATCH = int(os.environ.get("TIDEGATE_BATCH", "1000"))
STATUS_BATCH = 256


@dataclass(slots=True)
class Out:
    """One message to publish."""

    topic: str
    key: bytes
    value: bytes | None  # None: a tombstone (changelogs)
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    partition: int | None = None  # None: the partition of the record being processed


class Tally:
    """The outcomes of one batch of a partition, per upload: one `outcomes` message per
    upload and batch instead of one message per record. Each message carries the upload's
    counts for the batch (what the status agent adds up) and every record's outcome
    `[event_id, outcome, code, triggered, profile_id]` (the ledger: exactly one entry per
    record, in the same transaction as the record's outputs and input offset)."""

    __slots__ = ("uploads",)

    def __init__(self) -> None:
        self.uploads: dict[str, tuple[str, UploadCounts, list[list[Any]]]] = {}

    def add(
        self,
        upload_id: str,
        event_id: str,
        account: str,
        outcome: OutcomeKind,
        code: str | None,
        triggered: bool,
        profile_id: str | None,
    ) -> None:
        entry = self.uploads.get(upload_id)
        if entry is None:
            entry = self.uploads[upload_id] = (account, UploadCounts(), [])
        entry[1].count(outcome, code, triggered)
        entry[2].append([event_id, outcome.value, code, triggered, profile_id])

    def __len__(self) -> int:
        return sum(len(records) for _, _, records in self.uploads.values())

    def messages(self, partitions: int) -> list[Out]:
        """One message per upload, to the upload's partition of the outcomes topic (where
        its status is kept), whichever partition decided the records."""
        out = [
            Out(
                T.OUTCOMES,
                upload_id.encode(),
                orjson.dumps(
                    {
                        "type": "outcomes",
                        "upload_id": upload_id,
                        "account": account,
                        "counts": counts_dict(counts),
                        "records": records,
                    }
                ),
                [],
                T.partition_of(upload_id, partitions),
            )
            for upload_id, (account, counts, records) in self.uploads.items()
        ]
        self.uploads.clear()
        return out


def outcome_records(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The per-record outcomes of one message of the outcomes topic (consumers, tests)."""
    if message.get("type") == "outcome":  # one record per message (before batching)
        return [dict(message)]
    if message.get("type") != "outcomes":
        return []
    upload_id, account = message.get("upload_id"), message.get("account")
    return [
        {
            "type": "outcome",
            "upload_id": upload_id,
            "account": account,
            "event_id": event_id,
            "outcome": outcome,
            "code": code,
            "triggered": triggered,
            "profile_id": profile_id,
        }
        for event_id, outcome, code, triggered, profile_id in message.get("records") or []
    ]


class _OutSink:
    """The Kafka producer's side of `route_outcome`: messages appended to a batch's list."""

    __slots__ = ("out",)

    def __init__(self, out: list[Out]) -> None:
        self.out = out

    def emit(self, output: Output, line: bytes, outcome: Outcome) -> None:
        source = outcome.source
        account = source.account
        headers = [
            ("event_id", outcome.event_id.encode()),
            ("account", account.encode()),
            ("upload_id", source.upload_id.encode()),
        ]
        if output is Output.DEADLETTER:
            headers.append(("code", str(outcome.code or "").encode()))
            self.out.append(Out(T.DEADLETTER, account.encode(), line, headers))
            return
        event = outcome.event
        profile_id = event.profile_id if event else None
        headers.append(("profile_id", (profile_id or "").encode()))
        key = f"{account}\x1f{profile_id}".encode()
        topic = T.ACCEPTED if output is Output.ACCEPTED else T.TRIGGERS
        self.out.append(Out(topic, key, line, headers))


def outputs_of(outcome: Outcome, tally: Tally, out: list[Out]) -> None:
    """Appends the messages one decided record publishes (`route_outcome`) to `out` and its
    outcome to `tally`."""
    route_outcome(outcome, _OutSink(out))
    source = outcome.source
    event = outcome.event
    tally.add(
        source.upload_id,
        outcome.event_id,
        source.account,
        outcome.kind,
        str(outcome.code) if outcome.code else None,
        bool(event and event.triggered),
        event.profile_id if event else None,
    )


def conflict_output(conflict: IdentityConflict, upload_id: str) -> Out:
    """The identity-conflicts record of a link that was refused (first link wins)."""
    headers = [
        ("event_id", conflict.event_id.encode()),
        ("account", conflict.account.encode()),
        ("upload_id", upload_id.encode()),
    ]
    body = orjson.dumps(conflict, option=DUMPS_OPTIONS)
    return Out(T.CONFLICTS, conflict.account.encode(), body, headers)


def hop_messages(forwards: Mapping[int, list[Hop]]) -> list[Out]:
    """One `events.by_key` message per destination partition, carrying the batch's hops
    for that partition in the order they were made (docs/decisions/batched-hops.md)."""
    return [
        Out(T.BY_KEY, str(target).encode(), encode_hops(hops), [], target)
        for target, hops in forwards.items()
        if hops
    ]


def failure_outputs(
    data: bytes, raw: RawRecord | None, error: BaseException, tally: Tally
) -> list[Out]:
    """A record whose processing raised: a dead letter and a `rejected` outcome (in
    `tally`), so the record still has exactly one outcome and the agent keeps running."""
    message = f"{type(error).__name__}: {error}"
    if raw is not None:
        source = raw.source
        event_id = make_event_id(source)
        record = deadletter(
            event_id,
            source,
            Rejection(ErrorCode.INVALID_PAYLOAD, message, Stage.READ),
            raw,
            raw.payload,
        )
        record["code"] = PROCESSING_ERROR
        record["stage"] = "runtime"
        body = orjson.dumps(record, option=DUMPS_OPTIONS)
        account, upload_id = source.account, source.upload_id
    else:
        event_id = ""
        account, upload_id = "", ""
        body = orjson.dumps(
            {"code": str(ErrorCode.INVALID_PAYLOAD), "stage": "read", "message": message}
            | raw_text(data)
        )
    hdrs = [("code", PROCESSING_ERROR.encode() if raw else b"invalid_payload")]
    if raw is not None:
        tally.add(upload_id, event_id, account, OutcomeKind.REJECTED, PROCESSING_ERROR, False, None)
    return [Out(T.DEADLETTER, account.encode(), body, hdrs)]


def hop_failure_outputs(hop: Hop, error: BaseException, tally: Tally) -> list[Out]:
    """A stage that raised: a dead letter, and the record's `rejected` outcome when this
    hop still owned it (a failed link request is a lost link, not a second outcome)."""
    if hop.record is not None:
        return failure_outputs(b"", hop.record, error, tally)
    message = f"{type(error).__name__}: {error}"
    event = hop.event
    event_id = event_id_of(hop)
    account = account_of(hop)
    upload_id = event.source.upload_id if event is not None else hop.upload_id
    body = orjson.dumps(
        {
            "event_id": event_id,
            "account": account,
            "stage": "runtime",
            "code": PROCESSING_ERROR,
            "message": message,
            "hop": hop.stage.value,
            "record": event,
        },
        option=DUMPS_OPTIONS,
    )
    if owns_outcome(hop):
        tally.add(upload_id, event_id, account, OutcomeKind.REJECTED, PROCESSING_ERROR, False, None)
    return [Out(T.DEADLETTER, account.encode(), body, [("code", PROCESSING_ERROR.encode())])]


# --------------------------------------------------------------------------- upload status


def empty_upload() -> dict[str, Any]:
    return {"counts": counts_dict(UploadCounts()), "total": None, "final": None}


def apply_upload_message(
    state: dict[str, Any] | None, message: Mapping[str, Any], now: datetime
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Folds one outcome or announcement into an upload's state; returns the new state and
    the final status document once every announced record has its outcome."""
    state = dict(state) if state else empty_upload()
    if state.get("final"):
        return state, None
    if message.get("type") == "announce":
        for key in ("total", "account", "filename", "kind", "dialect", "received_at", "trigger"):
            if key in message:
                state[key] = message[key]
        state["warnings"] = list(message.get("warnings") or [])
        state["failed_members"] = int(message.get("failed_members") or 0)
        state["fatal"] = message.get("fatal")
    elif message.get("type") == "outcomes":  # one batch's counts of the upload
        counts = counts_from(state["counts"])
        add = message["counts"]
        for name in ("records", "accepted", "duplicate", "rejected", "triggered"):
            setattr(counts, name, getattr(counts, name) + int(add.get(name, 0)))
        counts.by_code.update(add.get("by_code") or {})
        state["counts"] = counts_dict(counts)
    else:  # one record's outcome (messages written before outcomes were batched)
        counts = counts_from(state["counts"])
        counts.count(
            OutcomeKind(message["outcome"]), message.get("code"), bool(message.get("triggered"))
        )
        state["counts"] = counts_dict(counts)
    total = state.get("total")
    if total is None or state["counts"]["records"] < int(total):
        return state, None
    counts = counts_from(state["counts"])
    counts.failed_members = int(state.get("failed_members") or 0)
    fatal_doc = state.get("fatal")
    fatal = (
        Rejection(ErrorCode(fatal_doc["code"]), fatal_doc["message"], Stage.UPLOAD)
        if fatal_doc
        else None
    )
    status = final_status(counts, fatal)
    state["final"] = status.value
    doc = {
        "upload_id": message["upload_id"],
        "account": state.get("account"),
        "filename": state.get("filename"),
        "kind": state.get("kind", "file"),
        "dialect": state.get("dialect"),
        "status": status.value,
        "received_at": state.get("received_at"),
        "finished_at": to_iso(now),
        "trigger": bool(state.get("trigger")),
        "counts": state["counts"],
        "warnings": final_warnings(counts, fatal, state.get("warnings") or []),
        "fatal": fatal_doc,
    }
    return state, doc


# --------------------------------------------------------------------------- transactions


async def send_all(producer: Any, outs: list[Out], partition: int) -> None:
    """Sends `outs` to their topics, each to its own partition or else to `partition`, as
    one record batch per topic partition (a new one when a batch is full): no per-message
    future or accumulator call. The delivery is not awaited here: the transaction's commit
    waits for every batch and fails (fatally) if one failed; in at_least_once mode the
    offset commit comes after a flush. Order is kept per topic partition."""
    builders: dict[tuple[str, int], Any] = {}
    for o in outs:
        target = (o.topic, partition if o.partition is None else o.partition)
        builder = builders.get(target)
        if builder is None:
            builder = builders[target] = producer.create_batch()
        if builder.append(key=o.key, value=o.value, timestamp=None, headers=o.headers) is None:
            await producer.send_batch(builder, target[0], partition=target[1])
            builder = builders[target] = producer.create_batch()
            builder.append(key=o.key, value=o.value, timestamp=None, headers=o.headers)
    for (topic, p), builder in builders.items():
        await producer.send_batch(builder, topic, partition=p)


def fatal(message: str, error: BaseException | None = None) -> None:
    """Ends the worker process at once with exit code 70.

    Used when a partition's transaction cannot be committed (fenced by a newer owner of
    the partition, a broker error in the middle of a commit): the local state may be ahead
    of what is committed, and the only safe continuation is a restart, which rebuilds the
    state from the changelogs (read_committed) and re-reads the input from the committed
    offsets. `tidegate worker` must therefore run under a supervisor that restarts it
    (systemd `Restart=always`, compose `restart: unless-stopped`, Kubernetes)."""
    log.critical("fatal: %s: %r\n%s", message, error, traceback.format_exc())
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    sys.stderr.flush()
    os._exit(FATAL_EXIT_CODE)


class ExactlyOnce:
    """One transactional producer per owned input partition number, replacing Faust's
    TransactionManager (whose rebalance handling keeps producers of revoked partitions and
    then crashes on ProducerFenced, or drops producers and stalls).

    * Assignment: for each partition number p of the source topics we own, a producer with
      transactional id `<app>-tidegate-<p>` is created; `start()` runs InitProducerId,
      which fences any older producer of p (a killed or zombie worker) and aborts its open
      transaction. Producers of partitions we no longer own are closed.
    * Processing: outputs of a record of partition p are sent by p's producer; state
      writes go to the store's overlay of p.
    * Commit (Faust's commit timer, every `broker_commit_interval`, and before a
      rebalance): under the guard, for each partition: the overlay's changelog records, the
      input offsets, then commit_transaction and begin_transaction. Partitions commit
      concurrently.
    * Any failure of a commit is fatal for the process (see `fatal`).
    """

    def __init__(
        self, app: Any, store: FaustStore, guard: asyncio.Lock, sources: frozenset[str]
    ) -> None:
        self.app = app
        self.store = store
        self.guard = guard
        self.sources = sources
        self.producers: dict[int, Any] = {}
        self.open: set[int] = set()
        self.touched: set[int] = set()
        self.installed = False
        # cleared from a revocation until the tables of the new assignment are recovered
        self.settled = asyncio.Event()
        # last offset processed per input topic-partition: Faust drops queued events at a
        # rebalance and re-reads from the committed offset, so a record may come twice or
        # after a gap (see run_batch)
        self.done: dict[Any, int] = {}
        # the offset last committed per input topic-partition (the next one to read)
        self.committed: dict[Any, int] = {}
        self.generation = 0  # rebalances seen
        self.stats = WorkerStats()

    def install(self) -> None:
        if self.installed:
            return
        self.installed = True
        transactions = self.app.consumer.transactions
        transactions.on_rebalance = self.on_rebalance
        transactions.on_partitions_revoked = self.on_partitions_revoked
        transactions.commit = self.commit
        transactions.flush = self.flush
        self.app.on_rebalance_complete.connect(self.on_recovered)

    async def on_recovered(self, sender: Any = None, **_: Any) -> None:
        """Faust has recovered the tables of the assignment from their changelogs (its
        `on_rebalance_complete`, sent once the changelogs are read): events may go on."""
        recovery = getattr(getattr(self.app, "tables", None), "recovery", None)
        pending = getattr(recovery, "signal_recovery_start", None)
        if pending is not None and pending.is_set():
            return  # an older recovery ended; the newer assignment's is still to run
        if not self.settled.is_set():
            log.info("tables recovered: processing resumes")
        self.settled.set()

    def transactional_id(self, partition: int) -> str:
        return f"{self.app.conf.id}-tidegate-{partition}"

    def new_producer(self, partition: int) -> Any:
        from aiokafka import AIOKafkaProducer

        conf = self.app.conf
        return AIOKafkaProducer(
            bootstrap_servers=T.bootstrap_of(str(conf.broker[0])),
            client_id=f"{conf.id}-tidegate-{partition}",
            transactional_id=self.transactional_id(partition),
            enable_idempotence=True,
            acks="all",
            linger_ms=PRODUCER_LINGER_MS,
            max_batch_size=PRODUCER_BATCH_BYTES,
            transaction_timeout_ms=60000,
            retry_backoff_ms=TXN_RETRY_BACKOFF_MS,
        )

    async def on_partitions_revoked(self, revoked: Any) -> None:
        """Before giving partitions up, commit everything processed so far (acked offsets
        through Faust, then any state or output left), ending every transaction.

        From here until the new assignment (`on_rebalance`) events of our partitions wait
        (`settled` is clear), and every event taken so far belongs to an older generation:
        Faust drops the queued events and seeks back to the committed offsets, so such an
        event may have a gap before it (see run_batch)."""
        self.settled.clear()
        self.generation += 1
        try:
            await self.app.consumer.commit(start_new_transaction=False)
        except Exception as error:
            fatal("committing before a rebalance failed", error)
        await self.commit({}, start_new_transaction=False)
        await self.flush()

    async def flush(self) -> None:
        for producer in list(self.producers.values()):
            with contextlib.suppress(Exception):
                await producer.flush()

    async def on_rebalance(self, assigned: Any, revoked: Any, newly_assigned: Any) -> None:
        # also when no revocation came first (a worker's first assignment: Faust calls
        # on_partitions_revoked only when it had an assignment)
        self.settled.clear()
        owned = {tp.partition for tp in assigned if tp.topic in self.sources}
        async with self.guard:
            for tp in [tp for tp in self.done if tp.partition not in owned]:
                del self.done[tp]
            for tp in [tp for tp in self.committed if tp.partition not in owned]:
                del self.committed[tp]
            for p in sorted(set(self.producers) - owned):
                producer = self.producers.pop(p)
                self.open.discard(p)
                self.touched.discard(p)
                self.store.discard(p)
                with contextlib.suppress(Exception):
                    await producer.stop()
            try:
                for p in sorted(owned - set(self.producers)):
                    producer = self.new_producer(p)
                    await producer.start()  # InitProducerId: fences the previous owner
                    self.producers[p] = producer
                for p in sorted(owned - self.open):
                    await self.producers[p].begin_transaction()
                    self.open.add(p)
            except Exception as error:
                fatal("starting the transactional producers failed", error)
            # events taken between the revocation and now were fetched before the seek
            self.generation += 1
            # `settled` stays clear until the tables are recovered (`on_recovered`): Faust
            # may hand out events of an assigned partition while it is still reading the
            # partition's changelogs, and an event decided then sees missing state (seen
            # 2026-12-02: a restarted worker counted outcomes of uploads whose announcement
            # was in the changelog it had not read yet, so they never completed)
        log.warning("transactional producers for partitions %s", sorted(owned))

    def producer_for(self, partition: int) -> Any:
        producer = self.producers.get(partition)
        if producer is None or partition not in self.open:
            raise RuntimeError(f"no open transaction for partition {partition}")
        self.touched.add(partition)
        return producer

    async def commit(self, offsets: Mapping[Any, int], start_new_transaction: bool = True) -> bool:
        """Faust's `offsets` are ignored: Faust computes them from its acks before this
        runs, and until the guard is ours more records may be processed, whose outputs and
        state would then be committed with an offset before them, to be processed again
        after a crash. The offsets committed are the ones after the last record processed
        (`done`), read under the guard, in the same transaction as those records' outputs."""
        del offsets
        async with self.guard:
            by_partition: dict[int, dict[Any, int]] = {}
            for tp, offset in self.done.items():
                following = offset + 1
                if tp.topic in self.sources and self.committed.get(tp) != following:
                    by_partition.setdefault(tp.partition, {})[tp] = following
            partitions = set(by_partition) | set(self.store.dirty) | self.touched
            if not partitions:
                return False
            ordered = sorted(partitions)
            started = time.monotonic()
            try:
                results = await asyncio.gather(
                    *(
                        self._commit_one(p, by_partition.get(p, {}), start_new_transaction)
                        for p in ordered
                    )
                )
            except Exception as error:
                fatal("committing a transaction failed", error)
            for p, committed in zip(ordered, results, strict=True):
                if committed:
                    self.committed.update(by_partition.get(p, {}))
            self.stats.add_commit(time.monotonic() - started, sum(results))
            self.touched.clear()
        return True

    async def _commit_one(
        self, partition: int, offsets: Mapping[Any, int], start_new_transaction: bool
    ) -> bool:
        producer = self.producers.get(partition)
        if producer is None or partition not in self.open:
            # Offsets of a partition without an open transaction are not committed (only
            # run_batch acks, and only inside the partition's transaction, so these can only
            # be acks Faust still holds from before a rebalance). Leaving them uncommitted
            # is always safe: the partition's owner reads on from the last transactionally
            # committed offset; failing the worker for them is not.
            if offsets:
                log.info("partition %s: offsets without a transaction left uncommitted", partition)
            if self.store.dirty.get(partition):
                raise RuntimeError(f"state for partition {partition} without its transaction")
            return False
        changes = [Out(topic, key, value) for topic, key, value in self.store.flush(partition)]
        if changes:
            await send_all(producer, changes, partition)
        if offsets:
            if DEBUG:
                log.warning(
                    "commit %s", {f"{tp.topic}/{tp.partition}": o for tp, o in offsets.items()}
                )
            await producer.send_offsets_to_transaction(offsets, self.app.conf.id)
        await producer.commit_transaction()
        self.open.discard(partition)
        if start_new_transaction:
            await producer.begin_transaction()
            self.open.add(partition)
        return True


# --------------------------------------------------------------------------- admission


class Admission(Enum):
    """What the agent does with one event of a partition it owns."""

    PROCESS = "process"
    REDELIVERY = "redelivery"  # processed (and committed) already: acked, not processed again
    LEAVE = "leave"  # neither processed nor acked: it comes again after the seek


def admit(done: int | None, offset: int, held: bool) -> Admission:
    """Decides an event at `offset` given the last offset processed on its partition
    (`done`, None when none was) and whether it was taken before a rebalance (`held`).

    A rebalance drops the queued events and seeks back to the committed offsets, so an
    event held across one may come after a gap: it may go on only when it is the very next
    offset (else the records in the gap would later be taken for re-deliveries and lost).
    A held event of a partition without a processed offset is left too: the partition may
    have moved to another worker and back in the meantime (its last offset is forgotten
    when it moves away), and that worker may have decided the event already. An event that
    was not held follows the previous one in fetch order; on a transactional input its
    offset may step over commit markers, so no contiguity is asked of it."""
    if done is not None and offset <= done:
        return Admission.REDELIVERY
    if held and (done is None or offset != done + 1):
        return Admission.LEAVE
    return Admission.PROCESS


# --------------------------------------------------------------------------- registration


def bytes_schema() -> Any:
    """A Faust schema whose events carry the message's key and value bytes as they are.

    Faust's own schema, even with the raw serializer, runs every message through its
    serializer registry and codecs (two lookups, two codec calls, exception handling);
    the agents decode the bytes themselves (`topics.decode_raw`, orjson)."""
    import faust

    class BytesSchema(faust.Schema[bytes, bytes]):
        def compile(self, app: Any, **_: Any) -> Any:
            create_event = app.create_event

            async def decode(message: Any, *, propagate: bool = False) -> Any:
                return create_event(message.key, message.value, message.headers, message)

            return decode

    return BytesSchema(key_type=bytes, value_type=bytes)


def register(
    app: Any,
    tables: Mapping[str, Any],
    settings_for: SettingsFor,
    clock: Clock,
) -> dict[str, Any]:
    """Defines the agents on `app`; `tables` holds every Faust table (state + uploads)."""
    raw_topic = app.topic(T.RAW, schema=bytes_schema())
    by_key_topic = app.topic(T.BY_KEY, schema=bytes_schema())
    outcomes_topic = app.topic(T.OUTCOMES, schema=bytes_schema())
    announce_topic = app.topic(T.ANNOUNCE, schema=bytes_schema())
    sources = frozenset({T.RAW, T.BY_KEY, T.OUTCOMES, T.ANNOUNCE})
    partitions = int(app.conf.topic_partitions)
    store = FaustStore(tables)
    # stage 1's memory of each partition, forgotten at a rebalance (a record away at its
    # account's catalog may then return to another worker)
    memories: dict[int, tuple[int, routing.ArrivalMemory]] = {}
    last_expired: dict[int, float] = {}
    guard = asyncio.Lock()
    eos = ExactlyOnce(app, store, guard, sources)
    plain: list[Any] = []  # the producer of at_least_once mode

    async def plain_producer() -> Any:
        if not plain:
            from aiokafka import AIOKafkaProducer

            producer = AIOKafkaProducer(
                bootstrap_servers=T.bootstrap_of(str(app.conf.broker[0])),
                acks="all",
                enable_idempotence=True,
                linger_ms=PRODUCER_LINGER_MS,
                max_batch_size=PRODUCER_BATCH_BYTES,
            )
            await producer.start()
            plain.append(producer)
        return plain[0]

    async def publish(outs: list[Out], partition: int) -> None:
        """Every output goes to the SAME partition number as its input record, in that
        partition's transaction (all topics have the same partition count)."""
        if not outs:
            return
        if app.in_transaction:
            try:
                await send_all(eos.producer_for(partition), outs, partition)
            except Exception as error:  # the transaction cannot commit any more
                fatal("sending a transaction's outputs failed", error)
            return
        # at_least_once: write-through (state first, then outputs; the offset after both)
        producer = await plain_producer()
        changes = [Out(topic, key, value) for topic, key, value in store.flush(partition)]
        await send_all(producer, changes + outs, partition)

    def install() -> None:
        if app.in_transaction:
            eos.install()

    async def run_batch(
        taken: list[tuple[Any, int]], work: Callable[[int, list[Any]], Awaitable[None]]
    ) -> None:
        """The work of a batch of records and their acks, atomically with respect to
        commits (guard): `work(partition, events)` once per partition, in offset order.
        `taken` holds each event with the rebalance generation at which it was taken.

        Under exactly_once a record's partition must have an open transaction and
        recovered tables. During a rebalance (from the final commit until the tables of the
        new assignment are recovered from their changelogs) every record waits, then is
        processed when its partition stayed ours, or left alone (unacked) when it moved;
        its new owner reads it from the committed offset. On a partition we keep, records
        are processed in offset order, each once: Faust's rebalance drops queued events and seeks back to the committed offset, and
        its commit steps over a single unacked offset (Consumer._new_offset tolerates a gap
        of one), so a record held across a rebalance is processed only when it is the next
        offset (else the record before it would be lost), and a re-delivered record is
        acked without being processed again (else an outcome would be counted twice).
        Offsets of transactional inputs (outcomes) have gaps (commit markers): only a
        record held across a rebalance is checked for contiguity."""
        while taken:
            waiting: list[tuple[Any, int]] = []
            async with guard:
                settled = eos.settled.is_set()
                by_partition: dict[int, list[Any]] = {}
                for event, generation in taken:
                    message = event.message
                    partition = message.partition
                    if app.in_transaction and not settled:
                        waiting.append((event, generation))  # until the tables are recovered
                        continue
                    if app.in_transaction and partition not in eos.open:
                        continue  # not ours any more (or stopping): left alone
                    tp = message.tp
                    done = eos.done.get(tp)
                    # our count of rebalances covers events taken before one; the message's
                    # consumer generation covers events fetched before one and taken after
                    held = generation != eos.generation or getattr(
                        message, "generation_id", None
                    ) != getattr(app, "consumer_generation_id", None)
                    admission = admit(done, message.offset, held)
                    if admission is Admission.REDELIVERY:
                        event.ack()
                        continue
                    if admission is Admission.LEAVE:
                        if DEBUG:
                            log.warning("held %s: %s after %s", tp, message.offset, done)
                        continue
                    eos.done[tp] = message.offset
                    by_partition.setdefault(partition, []).append(event)
                for partition, events in by_partition.items():
                    await work(partition, events)
                    eos.stats.messages += len(events)
                    for event in events:
                        event.ack()
            taken = waiting
            if taken:
                log.info("%d events wait for the assignment and table recovery", len(taken))
                await eos.settled.wait()

    def batch_queue(stream: Any) -> Any:
        """The queue the stream's events come from (None: process each at once)."""
        queue = getattr(getattr(stream, "channel", None), "queue", None)
        return queue if callable(getattr(queue, "empty", None)) else None

    async def run_stream(
        stream: Any, work: Callable[[int, list[Any]], Awaitable[None]], limit: int
    ) -> None:
        """Iterates `stream.noack()` and hands the events to `run_batch` in batches: the
        events taken so far are worked on as soon as no further event is queued (so an
        event never waits for a later one) or `limit` are taken."""
        install()
        noack = stream.noack()
        queue = batch_queue(noack)
        taken: list[tuple[Any, int]] = []
        async for event in noack.events():
            taken.append((event, eos.generation))
            if len(taken) >= limit or queue is None or queue.empty():
                batch, taken = taken, []
                await run_batch(batch, work)

    if STATS_SECONDS > 0:
        reported = time.monotonic()

        @app.timer(STATS_SECONDS)  # type: ignore[untyped-decorator]
        async def report_stats() -> None:
            nonlocal reported
            now = time.monotonic()
            text = eos.stats.report(now - reported)
            reported = now
            if text is not None:
                stats_log.info("%s", text)

    # Every agent iterates `stream.noack()`: Faust would otherwise ack each event it hands
    # out, also one that run_batch leaves alone during a rebalance (held, or not ours any
    # more), and a later commit could step past a record nobody processed. Acks are
    # run_batch's alone.
    @app.agent(raw_topic, concurrency=1, name="tidegate.decide")  # type: ignore[untyped-decorator]
    async def decide_agent(stream: Any) -> None:
        await run_stream(stream, _raw_batch, DECIDE_BATCH)

    @app.agent(by_key_topic, concurrency=1, name="tidegate.keyed")  # type: ignore[untyped-decorator]
    async def keyed_agent(stream: Any) -> None:
        await run_stream(stream, _keyed_batch, DECIDE_BATCH)

    def advance(
        hop: Hop,
        partition: int,
        now: datetime,
        tally: Tally,
        outs: list[Out],
        forwards: dict[int, list[Hop]],
    ) -> None:
        """`routing.advance` on the partition's state, its results as messages; the hops for
        other partitions are gathered in `forwards` (per partition, in order)."""
        remembered = memories.get(partition)
        if remembered is None or remembered[0] != eos.generation:
            remembered = memories[partition] = (eos.generation, routing.ArrivalMemory())
        memory = remembered[1]
        done = routing.advance(hop, partition, partitions, store, now, settings_for, memory)
        for outcome in done.outcomes:
            outputs_of(outcome, tally, outs)
        for conflict, upload_id in done.conflicts:
            outs.append(conflict_output(conflict, upload_id))
        for target, forward in done.forwards:
            forwards.setdefault(target, []).append(forward)
        for failed, error in done.failures:
            log.error(
                "stage %s failed: %s\n%s",
                failed.stage,
                error,
                "".join(traceback.format_exception(error)),
            )
            outs.extend(hop_failure_outputs(failed, error, tally))

    def expire_due(partition: int, now: datetime) -> None:
        # Expiry runs inside stream iteration, on the partition's own state.
        mono = time.monotonic()
        if mono - last_expired.get(partition, 0.0) >= EXPIRE_EVERY_SECONDS:
            last_expired[partition] = mono
            try:
                expire_state(store, now, shard=str(partition), max_buckets=64)
            except Exception:
                # Outside any record: the batch's records have their outcomes already, and
                # a failed pass leaves what it did not expire to a later pass.
                log.exception("state expiry failed on partition %s", partition)

    async def _raw_batch(partition: int, events: list[Any]) -> None:
        """Takes the raw records of one partition into stage 1 in offset order (each sees
        the state written by the ones before it), then sends the outputs, one hop message
        per destination partition and one outcomes message per upload together."""
        store.partition = partition
        tally = Tally()
        outs: list[Out] = []
        forwards: dict[int, list[Hop]] = {}
        for event in events:
            data: bytes = event.value
            raw: RawRecord | None = None
            try:
                now = clock()  # one processing time per record
                raw = T.decode_raw(
                    data, partition=partition, offset=event.message.offset, default_time=now
                )
                advance(first_hop(raw), partition, now, tally, outs, forwards)
            except Exception as error:  # never let an exception leave the agent
                log.error("record failed: %s\n%s", error, traceback.format_exc())
                try:
                    outs.extend(failure_outputs(data, raw, error, tally))
                except Exception:  # pragma: no cover - last resort
                    log.exception("could not even dead-letter a record")
        expire_due(partition, clock())
        outs.extend(hop_messages(forwards))
        outs.extend(tally.messages(partitions))
        await publish(outs, partition)

    async def _keyed_batch(partition: int, events: list[Any]) -> None:
        """The hop messages of one partition of `events.by_key`, in offset order, and the
        hops of each message in their order."""
        store.partition = partition
        tally = Tally()
        outs: list[Out] = []
        forwards: dict[int, list[Hop]] = {}
        for event in events:
            now = clock()
            for hop in decode_hops(event.value):
                if isinstance(hop, HopError):  # not ours to decide: logged and dead-lettered
                    log.error("bad hop at %s: %s", event.message.offset, hop)
                    outs.append(
                        Out(
                            T.DEADLETTER,
                            b"",
                            orjson.dumps(
                                {"code": PROCESSING_ERROR, "stage": "runtime", "message": str(hop)}
                                | raw_text(event.value)
                            ),
                            [("code", PROCESSING_ERROR.encode())],
                        )
                    )
                    continue
                advance(hop, partition, now, tally, outs, forwards)
        expire_due(partition, clock())
        outs.extend(hop_messages(forwards))
        outs.extend(tally.messages(partitions))
        await publish(outs, partition)

    @app.agent(announce_topic, concurrency=1, name="tidegate.announce")  # type: ignore[untyped-decorator]
    async def announce_agent(stream: Any) -> None:
        await run_stream(stream, _announce_batch, STATUS_BATCH)

    async def _announce_batch(partition: int, events: list[Any]) -> None:
        outs: list[Out] = []
        for event in events:
            try:
                doc = orjson.loads(event.value)
                upload_id = str(doc["upload_id"]).encode()
            except Exception:
                log.exception("bad announcement %r", event.value[:200])
                continue
            # to the upload's partition of the outcomes topic, like its outcomes
            target = T.partition_of(upload_id.decode(), partitions)
            outs.append(
                Out(T.OUTCOMES, upload_id, orjson.dumps({**doc, "type": "announce"}), [], target)
            )
        await publish(outs, partition)

    @app.agent(outcomes_topic, concurrency=1, name="tidegate.status")  # type: ignore[untyped-decorator]
    async def status_agent(stream: Any) -> None:
        await run_stream(stream, _status_batch, STATUS_BATCH)

    async def _status_batch(partition: int, events: list[Any]) -> None:
        store.partition = partition
        outs: list[Out] = []
        for event in events:
            final = _status_one(partition, event)
            if final is not None:
                outs.append(Out(T.STATUS, str(final["upload_id"]).encode(), orjson.dumps(final)))
        await publish(outs, partition)

    def _status_one(partition: int, event: Any) -> dict[str, Any] | None:
        try:
            message = orjson.loads(event.value)
            upload_id = str(message["upload_id"])
            if not upload_id:
                return None
            previous = store.get(UPLOADS_TABLE, upload_id)
            if DEBUG and (message.get("type") == "announce" or previous is None):
                log.warning(
                    "status %s %s p%s@%s prev=%s",
                    message.get("type"),
                    upload_id[:8],
                    partition,
                    event.message.offset,
                    previous and (previous.get("total"), previous["counts"]["records"]),
                )
            state, final = apply_upload_message(previous, message, clock())
            store.put(UPLOADS_TABLE, upload_id, state)
        except Exception:
            log.exception("bad outcome message %r", event.value[:200])
            return None
        return final

    return {
        "decide": decide_agent,
        "keyed": keyed_agent,
        "announce": announce_agent,
        "status": status_agent,
        "eos": eos,
        "install": install,
        "now": lambda: datetime.now(UTC),
    }
