"""Exactly-once: per owned partition one transaction for its outputs, state and input offsets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
import traceback
from collections.abc import Mapping
from typing import Any

from streams.kafka import faust_patches
from streams.kafka import topics as T
from streams.kafka.faust_store import FaustStore
from streams.kafka.metrics import WorkerMetrics
from streams.kafka.outputs import Out
from streams.kafka.settings import KafkaSettings
from streams.kafka.stats import WorkerStats

log = logging.getLogger("tidegate.agents")
FATAL_EXIT_CODE = 70  # a transaction could not be committed: restart (see `fatal`)


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
        self,
        app: Any,
        store: FaustStore,
        guard: asyncio.Lock,
        sources: frozenset[str],
        kafka: KafkaSettings,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.app = app
        self.kafka = kafka
        self.metrics = metrics
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
        # partitions whose batch was cancelled half done (outputs sent, state written, its
        # offsets not): their transaction must never commit; the next owner's producer
        # fences and aborts it, and reads the records again from the committed offset
        self.interrupted: set[int] = set()
        self.stats = WorkerStats()

    def install(self) -> None:
        if self.installed:
            return
        self.installed = True
        faust_patches.replace_transaction_manager(
            self.app,
            self.on_rebalance,
            self.on_partitions_revoked,
            self.commit,
            self.flush,
            self.on_recovered,
        )

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
            linger_ms=self.kafka.producer_linger_ms,
            max_batch_size=self.kafka.producer_batch_bytes,
            transaction_timeout_ms=60000,
            # 10 ms by default, not aiokafka's 100 (why: KafkaSettings.txn_retry_backoff_ms)
            retry_backoff_ms=self.kafka.txn_retry_backoff_ms,
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

    def interrupt(self, partition: int, error: BaseException) -> None:
        """A batch's work on `partition` did not finish. Cancelled (the worker stops): the
        partition is never committed again by this process. Anything else is fatal."""
        self.interrupted.add(partition)
        if not isinstance(error, asyncio.CancelledError):
            fatal("a batch's work failed half done", error)
        log.warning("partition %s: a batch was cancelled half done; not committed", partition)

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
            partitions = (
                set(by_partition) | set(self.store.dirty) | self.touched
            ) - self.interrupted
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
                if getattr(self.app, "should_stop", False):
                    # A stopping worker skips Faust's revocation commit, so its partitions'
                    # new owners may fence it before this last commit: the transaction is
                    # aborted and the owners read on from the last committed offsets, so
                    # nothing is lost or doubled; the stop is a normal one, not exit 70.
                    log.warning("the last commit while stopping failed (fenced?): %r", error)
                    return False
                fatal("committing a transaction failed", error)
            for p, committed in zip(ordered, results, strict=True):
                if committed:
                    self.committed.update(by_partition.get(p, {}))
            seconds = time.monotonic() - started
            self.stats.add_commit(seconds, sum(results))
            if self.metrics is not None:
                self.metrics.committed(seconds, sum(results))
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
            if self.kafka.debug_eos:
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
