"""The Faust app factory of the Kafka runtime (`tidegate worker`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from streams.core.settings import AccountSettings, SettingsRegistry
from streams.kafka import faust_patches
from streams.kafka.agents import register
from streams.kafka.faust_store import STATE_TABLES, UPLOADS_TABLE
from streams.kafka.metrics import WorkerMetrics
from streams.kafka.settings import KafkaSettings


@dataclass(slots=True)
class WorkerConfig:
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    settings: Callable[[str], AccountSettings] = field(default_factory=SettingsRegistry)
    now: datetime | None = None  # a fixed processing clock, for tests only
    web_port: int | None = None


def create_app(config: WorkerConfig, metrics: WorkerMetrics | None = None) -> Any:
    """A Faust app with the decide, announce and status agents and their tables."""
    import faust

    kafka = config.kafka
    if kafka.exactly_once:
        faust_patches.use_end_offsets_for_highwaters()
    faust_patches.DEBUG_DELIVERY = kafka.debug_eos
    faust_patches.deliver_each_fetch_in_one_task()
    faust_patches.reread_what_recovery_seeks()
    faust_patches.recover_until_applied()
    faust_patches.resume_streams_after_seek()

    fixed = config.now

    def clock() -> datetime:
        return fixed if fixed is not None else datetime.now(UTC)

    app = faust.App(
        kafka.app_id,
        broker=kafka.broker,
        store="rocksdb://",
        datadir=str(kafka.state_dir),
        topic_partitions=kafka.partitions,
        topic_replication_factor=1,
        processing_guarantee=kafka.guarantee,
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=config.web_port is not None,
        web_port=config.web_port or 6066,
        producer_acks=-1,
        producer_linger_ms=5,
        # Commits end the partitions' transactions: outputs become visible to
        # read_committed consumers at a commit, so the interval bounds the latency.
        broker_commit_every=kafka.commit_every,
        broker_commit_interval=kafka.commit_interval,
        # a killed worker's partitions move after this long
        broker_session_timeout=kafka.session_timeout,
        broker_heartbeat_interval=1.0,
        stream_buffer_maxsize=kafka.stream_buffer,
        stream_wait_empty=False,
        table_cleanup_interval=3600.0,
        # Standby replicas make every worker read the other workers' changelogs all the
        # time (~8 % of a worker's CPU, more in its consumer thread) to take a partition
        # over faster after a crash; without them the new owner recovers the partition from
        # its compacted changelog (under exactly_once a worker's start does that anyway).
        table_standby_replicas=kafka.standby_replicas,
        consumer_auto_offset_reset="earliest",
        topic_allow_declare=True,
    )
    tables = {
        name: app.Table(
            name,
            default=None,
            partitions=kafka.partitions,
            key_type=bytes,
            value_type=bytes,
            help=f"core state table {name}" if name != UPLOADS_TABLE else "per-upload counts",
        )
        for name in (*STATE_TABLES, UPLOADS_TABLE)
    }
    app.tidegate_tables = tables  # type: ignore[attr-defined]
    app.tidegate_agents = register(app, tables, config.settings, clock, kafka, metrics)  # type: ignore[attr-defined]
    return app
