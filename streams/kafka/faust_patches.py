"""The patches Tidegate applies to Faust internals, each naming the faust-streaming version."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

log = logging.getLogger("tidegate.agents")
# TIDEGATE_DEBUG_EOS: the delivery loop logs every record it drops as read already, and
# the recovery's end check what was delivered and applied of each changelog partition
DEBUG_DELIVERY = False
DELIVERED: dict[Any, int] = {}  # last offset delivered per partition (debug only)
APPLIED: dict[Any, int] = {}  # last changelog offset the recovery applied (debug only)

# A new faust-streaming version (pinned in pyproject.toml): re-read the Faust code each patch
# replaces (named in its docstring) before changing the pin; the Kafka integration tests
# (equality, kill -9, broker restart) are what shows a patch still holds.


# Checked against faust-streaming 0.15.3 (aiokafka 0.14.0).
def use_end_offsets_for_highwaters() -> None:
    """Faust's table recovery under exactly_once takes a changelog partition's highwater
    from the consumer's cached last stable offset, which is unknown (None → -1) until the
    partition has been fetched: a freshly assigned partition then looks empty, recovery is
    skipped and records are decided against missing state (or a standby fails with
    ConsistencyError). ListOffsets under read_committed (`end_offsets`) returns the last
    stable offset from the broker."""
    from faust.transport.drivers import aiokafka as driver

    thread = driver.AIOKafkaConsumerThread
    if getattr(thread, "_tidegate_highwaters", False):
        return

    async def _highwaters(self: Any, partitions: Any) -> Any:
        return await self._ensure_consumer().end_offsets(partitions)

    thread._highwaters = _highwaters  # type: ignore[method-assign]
    thread._tidegate_highwaters = True  # type: ignore[attr-defined]


# Checked against faust-streaming 0.15.3 (aiokafka 0.14.0).
def deliver_each_fetch_in_one_task() -> None:
    """Faust's fetcher hands every fetched message to the conductor inside its own
    `wait_first(callback(message), suspend_flow.wait())`, four asyncio tasks per message
    (the callback, the suspend flag, the stopped and crashed flags): the largest single
    cost of a worker. Here one fetch (one `getmany`) is delivered by one such wait: the
    messages go to the conductor one after another in fetch order, exactly as before, and
    a suspended flow (a rebalance) still interrupts the delivery; a message not yet
    delivered when the flow stops, or when the consumer generation changes, is left to the
    seek to the committed offsets, as Faust's own `getmany` does. Read offsets, gaps of
    acked topics and `broker_commit_every` are kept per message as before."""
    from faust.transport.consumer import CONSUMER_FETCHING, Consumer

    if getattr(Consumer, "_tidegate_drain", False):
        return

    async def _drain_messages(self: Any, fetcher: Any) -> None:
        read_offset = self._read_offset
        acks_enabled_for = self.app.topics.acks_enabled_for
        commit_every = self._commit_every
        callback = self.callback
        app = self.app

        async def deliver(fetched: list[Any], generation: Any) -> None:
            for n, (tp, message) in enumerate(fetched, 1):
                if not self.flow_active or app.consumer_generation_id != generation:
                    return
                if n % 100 == 0:
                    await asyncio.sleep(0)  # let other coroutines run during a long fetch
                offset = message.offset
                last = read_offset[tp]
                if last is not None and offset < last:
                    if DEBUG_DELIVERY:
                        log.warning("read already %s: %s before %s", tp, offset, last)
                    continue  # read already (Faust's "dropped message")
                if last and offset - last > 1 and acks_enabled_for(message.topic):
                    await self._add_gap(tp, last + 1, offset)
                if commit_every is not None and self._n_acked >= commit_every:
                    self._n_acked = 0
                    await self.commit()
                await callback(message)
                read_offset[tp] = offset
                if DEBUG_DELIVERY:
                    DELIVERED[tp] = offset

        stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        try:
            while not (stopped() or fetcher_stopped()):
                self.diag.set_flag(CONSUMER_FETCHING)
                generation = app.consumer_generation_id
                fetched = [pair async for pair in self.getmany(timeout=1.0)]
                await self.sleep(0)
                if fetched and not self.should_stop:
                    await self.wait_first(deliver(fetched, generation), self.suspend_flow.wait())
                self.diag.unset_flag(CONSUMER_FETCHING)
                if self._tidegate_positions_wanted:
                    await _note_changelog_positions(self)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
        except Exception as error:
            self.log.exception("Drain messages raised: %r", error)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    Consumer._drain_messages = _drain_messages  # type: ignore[method-assign]
    Consumer._tidegate_drain = True  # type: ignore[attr-defined]
    # set by recover_until_applied's `position`: note the changelog positions between rounds
    Consumer._tidegate_positions_wanted = False  # type: ignore[attr-defined]
    Consumer._tidegate_positions = None  # type: ignore[attr-defined]


async def _note_changelog_positions(consumer: Any) -> None:
    """Between two fetch rounds every record the consumer has read (its position) has been
    delivered: the positions of the changelog partitions noted here are ones the recovery
    has been handed everything below."""
    consumer._tidegate_positions_wanted = False
    epoch = _recovery_epoch(consumer)
    changelogs = consumer.app.tables.changelog_topics
    positions: dict[Any, int] = {}
    for tp in consumer.assignment():
        if tp.topic in changelogs:
            with contextlib.suppress(Exception):
                positions[tp] = await consumer._thread.position(tp)
    if _recovery_epoch(consumer) == epoch:  # else some are from before a recovery's seek
        consumer._tidegate_positions = (epoch, time.monotonic(), positions)


def _recovery_epoch(consumer: Any) -> int:
    """Counts the starts and seeks of recoveries: positions noted in one epoch say nothing
    in the next."""
    return int(getattr(consumer, "_tidegate_epoch", 0))


def _next_recovery_epoch(consumer: Any) -> None:
    consumer._tidegate_epoch = _recovery_epoch(consumer) + 1
    consumer._tidegate_positions = None


# Checked against faust-streaming 0.15.3 (aiokafka 0.14.0).
def reread_what_recovery_seeks() -> None:
    """Recovery seeks a changelog partition back to the offset its local state has
    (`Recovery._seek_offsets` → `Consumer.seek_wait`), but `seek_wait`, unlike `seek`, does
    not reset the consumer's read offset of the partition: the delivery then drops every
    record below the offset an earlier recovery of the same process had reached as "read
    already", and the partition's state is rebuilt without them (seen 2026-12-06: a worker
    whose recovery of a partition was cut short by a rebalance recovered it again with the
    upload counts missing, so the uploads never completed). Here `seek_wait` resets it as
    `seek` does."""
    from faust.transport.consumer import ThreadDelegateConsumer
    from faust.types import TP

    if getattr(ThreadDelegateConsumer, "_tidegate_seek_wait", False):
        return
    seek_wait = ThreadDelegateConsumer.seek_wait

    async def _seek_wait(self: Any, partitions: Mapping[Any, int]) -> None:
        _next_recovery_epoch(self)  # positions noted before the seek say nothing after it
        await seek_wait(self, partitions)
        _next_recovery_epoch(self)
        self._tidegate_seek_pending = False
        for tp, offset in partitions.items():
            self._read_offset[TP(tp.topic, tp.partition)] = offset if offset else None

    ThreadDelegateConsumer.seek_wait = _seek_wait  # type: ignore[method-assign]
    ThreadDelegateConsumer._tidegate_seek_wait = True  # type: ignore[attr-defined]


# Checked against faust-streaming 0.15.3 (aiokafka 0.14.0).
def recover_until_applied(fresh_seconds: float = 1.0, wait_seconds: float = 3.0) -> None:
    """Under exactly_once a changelog partition usually ends with a transaction marker,
    which is never delivered, so Faust ends a partition's recovery when the consumer's
    position has reached the highwater (`Recovery._slurp_changelogs.detect_aborted_tx`,
    after two idle 5 s waits for a changelog record). The position says what was fetched,
    not what was applied: records still on their way to the recovery (in a fetch being
    delivered, or queued) are then dropped as already seen, and the state misses them; and
    the idle count outlives a recovery, so the check can run a moment after the next
    recovery started (seen 2026-12-06). The only caller of `Consumer.position` is that
    check: here it answers a position noted between two fetch rounds of the delivery loop
    (`deliver_each_fetch_in_one_task`), below which everything was delivered, and only
    when the changelog queue is empty (everything delivered was applied), never between a
    recovery's start and its seek, and never from positions noted before either (a check
    still running for the previous recovery would otherwise write the new one's offsets);
    else -1 (not there yet: the check runs again at the next idle wait). Needs that
    delivery loop."""
    from faust.tables.recovery import Recovery
    from faust.transport.consumer import ThreadDelegateConsumer

    if getattr(ThreadDelegateConsumer, "_tidegate_position", False):
        return

    async def _position(self: Any, tp: Any) -> int | None:
        if not getattr(self, "_tidegate_drain", False):
            return await self._thread.position(tp)  # type: ignore[no-any-return]
        epoch = _recovery_epoch(self)
        noted = self._tidegate_positions
        if noted is None or noted[0] != epoch or time.monotonic() - noted[1] > fresh_seconds:
            self._tidegate_positions_wanted = True
            deadline = time.monotonic() + wait_seconds
            while self._tidegate_positions_wanted and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            noted = self._tidegate_positions
        if noted is None or noted[0] != epoch or _recovery_epoch(self) != epoch:
            return -1  # a recovery started or sought meanwhile: its check comes later
        if getattr(self, "_tidegate_seek_pending", False):
            return -1  # a recovery started and has not sought its partitions yet
        if not self.app.tables.changelog_queue.empty():
            return -1  # delivered, not applied yet: the recovery takes them first
        position = int(noted[2].get(tp, -1))
        if DEBUG_DELIVERY:
            log.warning(
                "recovery end check %s: position %s, delivered %s, applied %s",
                tp,
                position,
                DELIVERED.get(tp),
                APPLIED.get(tp),
            )
        return position

    ThreadDelegateConsumer.position = _position  # type: ignore[method-assign]
    build_offsets = Recovery._build_offsets

    async def _build_offsets(self: Any, consumer: Any, *args: Any, **kwargs: Any) -> None:
        # a recovery (re)starts: until its seek, no position says anything about it (an
        # end check still running for the previous one writes the offsets built here)
        consumer._tidegate_seek_pending = True
        _next_recovery_epoch(consumer)
        await build_offsets(self, consumer, *args, **kwargs)

    Recovery._build_offsets = _build_offsets  # type: ignore[method-assign]
    if DEBUG_DELIVERY:
        from faust.tables.base import Collection

        on_changelog_event = Collection.on_changelog_event

        async def _on_changelog_event(self: Any, event: Any) -> None:
            APPLIED[event.message.tp] = event.message.offset
            await on_changelog_event(self, event)

        Collection.on_changelog_event = _on_changelog_event  # type: ignore[method-assign]
    ThreadDelegateConsumer._tidegate_position = True  # type: ignore[attr-defined]


# Checked against faust-streaming 0.15.3 (aiokafka 0.14.0).
def resume_streams_after_seek() -> None:
    """When the tables are recovered, Faust (`Recovery.on_recovery_completed`) resumes the
    stream partitions, then seeks them to their committed offsets, then resumes the flow,
    which clears every stream's queue. Records fetched between the resume and the seek
    come from the consumer's position at the assignment, and records delivered between
    the seek and the clear are dropped from the queues after the consumer read past them:
    with nothing to read them again, a partition's later records were processed and its
    offsets committed past records nobody decided (seen 2026-12-06: a hop message of a
    partition that stayed with its worker through a rebalance never got its outcomes).
    Here the queues are cleared first, the paused partitions are sought, and only then
    resumed; `on_rebalance_complete` (events may go on) is sent last."""
    from faust.tables.recovery import Recovery

    if getattr(Recovery, "_tidegate_resume", False):
        return

    async def on_recovery_completed(self: Any, generation_id: int = 0) -> None:
        app = self.app
        consumer = app.consumer
        self.log.info("Restore complete!")
        self._set_recovery_ended()
        callbacks = [
            asyncio.ensure_future(
                table.on_recovery_completed(
                    self.actives_for_table[table], self.standbys_for_table[table]
                )
            )
            for table in self.tables.values()
        ]
        if callbacks:
            await asyncio.wait(callbacks)
        assignment = consumer.assignment()
        if app.consumer_generation_id != generation_id:
            self.log.warning("Recovery rebalancing again")
            return
        app.flow_control.resume()  # clears the queues: nothing of the streams was fetched
        if assignment:
            self.log.info("Seek stream partitions to committed offsets.")
            await self._wait(consumer.perform_seek(), timeout=app.conf.broker_request_timeout)
        consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})
        self.completed.set()
        consumer.resume_flow()
        await app._fetcher.maybe_start()
        self.tables.on_actives_ready()
        if not app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        app.on_rebalance_end()
        await app.on_rebalance_complete.send()
        self.log.info("Worker ready")

    Recovery.on_recovery_completed = on_recovery_completed  # type: ignore[method-assign]
    Recovery._tidegate_resume = True  # type: ignore[attr-defined]


# Checked against faust-streaming 0.15.3 (aiokafka 0.14.0).
def replace_transaction_manager(
    app: Any,
    on_rebalance: Callable[[Any, Any, Any], Awaitable[None]],
    on_partitions_revoked: Callable[[Any], Awaitable[None]],
    commit: Callable[[Mapping[Any, int], bool], Awaitable[bool]],
    flush: Callable[[], Awaitable[None]],
    on_recovered: Callable[..., Awaitable[None]],
) -> None:
    """Takes over Faust's `TransactionManager` (`app.consumer.transactions`) under
    exactly_once: its rebalance, commit and flush hooks become Tidegate's own
    (`transactions.ExactlyOnce`), and `on_recovered` hears Faust's `on_rebalance_complete`
    (the tables of the new assignment are recovered)."""
    transactions = app.consumer.transactions
    transactions.on_rebalance = on_rebalance
    transactions.on_partitions_revoked = on_partitions_revoked
    transactions.commit = commit
    transactions.flush = flush
    app.on_rebalance_complete.connect(on_recovered)


# Checked against faust-streaming 0.15.3 (aiokafka 0.14.0).
def prepare_worker(app: Any, worker: Any) -> None:
    """Before `worker.execute_from_commandline`: no terminal spinner, and the app known to
    be in a worker.

    Faust's spinner sets the root logger to DEBUG so that it turns on every message: every
    library's debug call then builds a log record (a large share of a worker's CPU, aiokafka
    logs each send); without it the configured level holds. `app.in_transaction` is a
    cached property that is only true with `app.in_worker` (set by `Worker.on_start`): it
    is set now, before anything reads and caches it."""
    worker.spinner = None
    app.in_worker = True
