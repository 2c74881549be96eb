"""The Faust app factory of the Kafka runtime (`tidegate worker`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streams import topics as T
from streams.agents import register
from streams.core.settings import AccountSettings, SettingsRegistry
from streams.faust_store import STATE_TABLES


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


def create_app(config: WorkerConfig) -> Any:
    """A Faust app with the decide, announce and status agents and their tables."""
    import faust

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
        broker_commit_every=1000,
        broker_commit_interval=0.5,
        stream_wait_empty=False,
        table_cleanup_interval=3600.0,
        consumer_auto_offset_reset="earliest",
        topic_allow_declare=True,
    )
    tables = {
        name: app.Table(
            name,
            default=None,
            partitions=config.partitions,
            key_type=str,
            help=f"core state table {name}",
        )
        for name in STATE_TABLES
    }
    uploads = app.Table(
        "uploads",
        default=None,
        partitions=config.partitions,
        key_type=str,
        help="per-upload outcome counts",
    )
    app.tidegate_tables = tables  # type: ignore[attr-defined]
    app.tidegate_agents = register(  # type: ignore[attr-defined]
        app, tables, uploads, config.settings, clock
    )
    return app
