"""The Faust app factory of the Kafka runtime (`tidegate worker`)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streams.core.settings import AccountSettings, SettingsRegistry
from streams.kafka import topics as T
from streams.kafka.agents import register
from streams.kafka.faust_store import STATE_TABLES, UPLOADS_TABLE


@dataclass(slots=True)
class WorkerConfig:
    broker: str = "kafka://127.0.0.1:9092"
    partitions: int = T.DEFAULT_PARTITIONS
    state_dir: Path = Path("data/faust")
    settings: Callable[[str], AccountSettings] = field(default_factory=SettingsRegistry)
    now: datetime | None = None  # a fixed processing clock, for tests only
    app_id: str = T.APP_ID
    processing_guarantee: str = field(
        default_factory=lambda: os.environ.get("TIDEGATE_GUARANTEE", "exactly_once")
    )
    web_port: int | None = None


def _use_end_offsets_for_highwaters() -> None:
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


def _deliver_each_fetch_in_one_task() -> None:
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


def create_app(config: WorkerConfig) -> Any:
    """A Faust app with the decide, announce and status agents and their tables."""
    import faust

    if config.processing_guarantee == "exactly_once":
        _use_end_offsets_for_highwaters()
    _deliver_each_fetch_in_one_task()

    fixed = config.now

    def clock() -> datetime:
        return fixed if fixed is not None else datetime.now(UTC)

    app = faust.App(
        config.app_id,
        broker=config.broker,
        store="rocksdb://",
        datadir=str(config.state_dir),
        topic_partitions=config.partitions,
        topic_replication_factor=1,
        processing_guarantee=config.processing_guarantee,
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=config.web_port is not None,
        web_port=config.web_port or 6066,
        producer_acks=-1,
        producer_linger_ms=5,
        # Commits end the partitions' transactions: outputs become visible to
        # read_committed consumers at a commit, so the interval bounds the latency.
        broker_commit_every=int(os.environ.get("TIDEGATE_COMMIT_EVERY", "20000")),
        broker_commit_interval=float(os.environ.get("TIDEGATE_COMMIT_INTERVAL", "0.1")),
        # a killed worker's partitions move after this long
        broker_session_timeout=float(os.environ.get("TIDEGATE_SESSION_TIMEOUT", "10")),
        broker_heartbeat_interval=1.0,
        stream_buffer_maxsize=int(os.environ.get("TIDEGATE_STREAM_BUFFER", "16384")),
        stream_wait_empty=False,
        table_cleanup_interval=3600.0,
        # Standby replicas make every worker read the other workers' changelogs all the
        # time (~8 % of a worker's CPU, more in its consumer thread) to take a partition
        # over faster after a crash; without them the new owner recovers the partition from
        # its compacted changelog (under exactly_once a worker's start does that anyway).
        table_standby_replicas=int(os.environ.get("TIDEGATE_STANDBY_REPLICAS", "0")),
        consumer_auto_offset_reset="earliest",
        topic_allow_declare=True,
    )
    tables = {
        name: app.Table(
            name,
            default=None,
            partitions=config.partitions,
            key_type=bytes,
            value_type=bytes,
            help=f"core state table {name}" if name != UPLOADS_TABLE else "per-upload counts",
        )
        for name in (*STATE_TABLES, UPLOADS_TABLE)
    }
    app.tidegate_tables = tables  # type: ignore[attr-defined]
    app.tidegate_agents = register(app, tables, config.settings, clock)  # type: ignore[attr-defined]
    return app
