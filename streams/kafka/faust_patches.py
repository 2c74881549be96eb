"""The patches Tidegate applies to Faust internals, each naming the faust-streaming version."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

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
                    continue  # read already (Faust's "dropped message")
                if last and offset - last > 1 and acks_enabled_for(message.topic):
                    await self._add_gap(tp, last + 1, offset)
                if commit_every is not None and self._n_acked >= commit_every:
                    self._n_acked = 0
                    await self.commit()
                await callback(message)
                read_offset[tp] = offset

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
