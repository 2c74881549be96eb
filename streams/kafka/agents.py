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
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from streams.core.decide import expire_state
from streams.core.outputs import raw_text
from streams.core.records import RawRecord
from streams.core.settings import AccountSettings
from streams.kafka import routing
from streams.kafka import topics as T
from streams.kafka.admission import Admission, admit
from streams.kafka.faust_store import UPLOADS_TABLE, FaustStore
from streams.kafka.metrics import WorkerMetrics
from streams.kafka.outputs import (
    PROCESSING_ERROR,
    Out,
    Tally,
    conflict_output,
    failure_outputs,
    hop_failure_outputs,
    hop_messages,
    outputs_of,
)
from streams.kafka.routing import first_hop
from streams.kafka.settings import KafkaSettings
from streams.kafka.transactions import ExactlyOnce, fatal, send_all
from streams.kafka.upload_status import apply_upload_message
from streams.kafka.wire import Hop, HopError, decode_hops, decode_raw

log = logging.getLogger("tidegate.agents")
# One line every `KafkaSettings.stats_seconds` (0: none): messages processed, commit durations.
stats_log = logging.getLogger("tidegate.stats")
STATUS_BATCH = 256

Clock = Callable[[], datetime]
SettingsFor = Callable[[str], AccountSettings]

EXPIRE_EVERY_SECONDS = 60.0


def bytes_schema() -> Any:
    """A Faust schema whose events carry the message's key and value bytes as they are.

    Faust's own schema, even with the raw serializer, runs every message through its
    serializer registry and codecs (two lookups, two codec calls, exception handling);
    the agents decode the bytes themselves (`wire.decode_raw`, orjson)."""
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
    kafka: KafkaSettings,
    metrics: WorkerMetrics | None = None,
) -> dict[str, Any]:
    """Defines the agents on `app`; `tables` holds every Faust table (state + uploads)."""
    topics = kafka.topics
    debug = kafka.debug_eos
    # at most this many records of the decide agent are worked on together (fewer when the
    # stream has no more queued); an outcomes message lists at most this many records
    decide_batch = kafka.batch
    raw_topic = app.topic(topics.raw, schema=bytes_schema())
    by_key_topic = app.topic(topics.by_key, schema=bytes_schema())
    outcomes_topic = app.topic(topics.outcomes, schema=bytes_schema())
    announce_topic = app.topic(topics.announce, schema=bytes_schema())
    sources = frozenset({topics.raw, topics.by_key, topics.outcomes, topics.announce})
    partitions = int(app.conf.topic_partitions)
    store = FaustStore(tables)
    # stage 1's memory of each partition, forgotten at a rebalance (a record away at its
    # account's catalog may then return to another worker)
    memories: dict[int, tuple[int, routing.ArrivalMemory]] = {}
    last_expired: dict[int, float] = {}
    guard = asyncio.Lock()
    eos = ExactlyOnce(app, store, guard, sources, kafka, metrics)
    plain: list[Any] = []  # the producer of at_least_once mode

    async def plain_producer() -> Any:
        if not plain:
            from aiokafka import AIOKafkaProducer

            producer = AIOKafkaProducer(
                bootstrap_servers=T.bootstrap_of(str(app.conf.broker[0])),
                acks="all",
                enable_idempotence=True,
                linger_ms=kafka.producer_linger_ms,
                max_batch_size=kafka.producer_batch_bytes,
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
                # admitted offsets become `done` (and so committable) only once their
                # partition's work is done: a cancelled batch must not commit past records
                # that produced nothing
                admitted: dict[Any, int] = {}
                for event, generation in taken:
                    message = event.message
                    partition = message.partition
                    if app.in_transaction and not settled:
                        waiting.append((event, generation))  # until the tables are recovered
                        continue
                    if app.in_transaction and partition not in eos.open:
                        continue  # not ours any more (or stopping): left alone
                    tp = message.tp
                    done = admitted.get(tp, eos.done.get(tp))
                    # our count of rebalances covers events taken before one; the message's
                    # consumer generation covers events fetched before one and taken after
                    held = generation != eos.generation or getattr(
                        message, "generation_id", None
                    ) != getattr(app, "consumer_generation_id", None)
                    admission = admit(done, message.offset, held)
                    if admission is Admission.REDELIVERY:
                        if debug:
                            log.warning("redelivered %s: %s after %s", tp, message.offset, done)
                        event.ack()
                        continue
                    if admission is Admission.LEAVE:
                        if debug:
                            log.warning("held %s: %s after %s", tp, message.offset, done)
                        continue
                    admitted[tp] = message.offset
                    by_partition.setdefault(partition, []).append(event)
                for partition, events in by_partition.items():
                    try:
                        await work(partition, events)
                    except BaseException as error:
                        eos.interrupt(partition, error)
                        raise
                    for tp in {event.message.tp for event in events}:
                        eos.done[tp] = admitted[tp]
                    eos.stats.messages += len(events)
                    if metrics is not None:
                        metrics.consumed(events[0].message.topic, len(events))
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

    if kafka.stats_seconds > 0:
        reported = time.monotonic()

        @app.timer(kafka.stats_seconds)  # type: ignore[untyped-decorator]
        async def report_stats() -> None:
            nonlocal reported
            now = time.monotonic()
            text = eos.stats.report(now - reported)
            reported = now
            if text is not None:
                stats_log.info("%s", text)

    if metrics is not None:

        @app.timer(1.0)  # type: ignore[untyped-decorator]
        async def report_lag() -> None:
            # the consumer's cached last stable offset of each partition we processed from
            lags: dict[tuple[str, int], int] = {}
            for tp, done in list(eos.done.items()):
                try:
                    end = app.consumer.highwater(tp)
                except Exception:
                    continue  # not assigned any more
                if isinstance(end, int) and end >= 0:
                    lags[(tp.topic, tp.partition)] = max(0, end - (done + 1))
            metrics.set_lag(lags)

    # Every agent iterates `stream.noack()`: Faust would otherwise ack each event it hands
    # out, also one that run_batch leaves alone during a rebalance (held, or not ours any
    # more), and a later commit could step past a record nobody processed. Acks are
    # run_batch's alone.
    @app.agent(raw_topic, concurrency=1, name="tidegate.decide")  # type: ignore[untyped-decorator]
    async def decide_agent(stream: Any) -> None:
        await run_stream(stream, _raw_batch, decide_batch)

    @app.agent(by_key_topic, concurrency=1, name="tidegate.keyed")  # type: ignore[untyped-decorator]
    async def keyed_agent(stream: Any) -> None:
        await run_stream(stream, _keyed_batch, decide_batch)

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
            outs.append(conflict_output(conflict, upload_id, topics))
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

    async def finish_batch(
        partition: int, tally: Tally, outs: list[Out], forwards: dict[int, list[Hop]]
    ) -> None:
        """The end of every stage batch: due dedup keys expired (once per batch, outside
        any record's guard), then the hops, the tallies and the outputs sent together."""
        expire_due(partition, clock())
        outs.extend(hop_messages(forwards, topics))
        decided = tally.outcome_counts()
        outs.extend(tally.messages(partitions))
        await publish(outs, partition)
        if metrics is not None:
            metrics.decided(decided)

    async def _raw_batch(partition: int, events: list[Any]) -> None:
        """Takes the raw records of one partition into stage 1 in offset order (each sees
        the state written by the ones before it), then sends the outputs, one hop message
        per destination partition and one outcomes message per upload together."""
        store.partition = partition
        tally = Tally(topics)
        outs: list[Out] = []
        forwards: dict[int, list[Hop]] = {}
        for event in events:
            data: bytes = event.value
            raw: RawRecord | None = None
            try:
                now = clock()  # one processing time per record
                raw = decode_raw(
                    data,
                    topic=topics.raw,
                    partition=partition,
                    offset=event.message.offset,
                    default_time=now,
                )
                advance(first_hop(raw), partition, now, tally, outs, forwards)
            except Exception as error:  # never let an exception leave the agent
                log.error("record failed: %s\n%s", error, traceback.format_exc())
                try:
                    outs.extend(failure_outputs(data, raw, error, tally))
                except Exception:  # pragma: no cover - last resort
                    log.exception("could not even dead-letter a record")
        await finish_batch(partition, tally, outs, forwards)

    async def _keyed_batch(partition: int, events: list[Any]) -> None:
        """The hop messages of one partition of `events.by_key`, in offset order, and the
        hops of each message in their order."""
        store.partition = partition
        tally = Tally(topics)
        outs: list[Out] = []
        forwards: dict[int, list[Hop]] = {}
        for event in events:
            now = clock()
            for hop in decode_hops(event.value):
                if isinstance(hop, HopError):  # not ours to decide: logged and dead-lettered
                    log.error("bad hop at %s: %s", event.message.offset, hop)
                    outs.append(
                        Out(
                            topics.deadletter,
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
        await finish_batch(partition, tally, outs, forwards)

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
                Out(
                    topics.outcomes,
                    upload_id,
                    orjson.dumps({**doc, "type": "announce"}),
                    [],
                    target,
                )
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
                outs.append(
                    Out(topics.status, str(final["upload_id"]).encode(), orjson.dumps(final))
                )
        await publish(outs, partition)

    def _status_one(partition: int, event: Any) -> dict[str, Any] | None:
        try:
            message = orjson.loads(event.value)
            upload_id = str(message["upload_id"])
            if not upload_id:
                return None
            previous = store.get(UPLOADS_TABLE, upload_id)
            if debug and (message.get("type") == "announce" or previous is None):
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
