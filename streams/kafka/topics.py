"""Topic names, partition counts and topic configuration of the Kafka runtime.

Every topic has the same partition count (default 8), so the raw topic, the internal
`events.by_key` topic, the state changelogs and the outputs are co-partitioned: partition p
of each belongs to one worker. State of a key lives in partition `partition_of(key)`; the
upload topics (outcomes, announce, status) are keyed by upload id.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import zlib
from collections.abc import Mapping
from typing import Any

PREFIX = os.environ.get("TIDEGATE_TOPIC_PREFIX", "tidegate")
RAW = ACCEPTED = TRIGGERS = DEADLETTER = OUTCOMES = ANNOUNCE = STATUS = CONFLICTS = BY_KEY = ""
NAMES = ""
TOPIC_CONFIGS: dict[str, Mapping[str, str]] = {}
ALL_TOPICS: tuple[str, ...] = ()

DEFAULT_PARTITIONS = 8
APP_ID = os.environ.get("TIDEGATE_APP_ID", "tidegate")

# Outputs keep 7 days by default (consumers re-read within that); status is compacted.
_DELETE_7D = {"cleanup.policy": "delete", "retention.ms": str(7 * 24 * 3600 * 1000)}


def use_prefix(prefix: str) -> None:
    """Sets the topic names (`<prefix>.events.raw` ...); `tidegate` unless
    TIDEGATE_TOPIC_PREFIX says otherwise (tests use their own prefix per run)."""
    global PREFIX, RAW, ACCEPTED, TRIGGERS, DEADLETTER, OUTCOMES, ANNOUNCE, STATUS, CONFLICTS
    global BY_KEY, NAMES
    global TOPIC_CONFIGS, ALL_TOPICS
    PREFIX = prefix
    RAW = f"{prefix}.events.raw"
    ACCEPTED = f"{prefix}.events.accepted"
    TRIGGERS = f"{prefix}.events.triggers"
    DEADLETTER = f"{prefix}.events.deadletter"
    OUTCOMES = f"{prefix}.uploads.outcomes"
    ANNOUNCE = f"{prefix}.uploads.announce"
    STATUS = f"{prefix}.uploads.status"
    CONFLICTS = f"{prefix}.identity.conflicts"
    BY_KEY = (
        f"{prefix}.events.by_key"  # internal: records between the stages (streams/kafka/wire.py)
    )
    NAMES = (
        f"{prefix}.uploads.names"  # the filenames accounts have used (streams/kafka/producer.py)
    )
    TOPIC_CONFIGS = {
        RAW: _DELETE_7D,
        ACCEPTED: _DELETE_7D,
        TRIGGERS: _DELETE_7D,
        DEADLETTER: _DELETE_7D,
        OUTCOMES: _DELETE_7D,
        ANNOUNCE: _DELETE_7D,
        CONFLICTS: _DELETE_7D,
        BY_KEY: _DELETE_7D,
        STATUS: {"cleanup.policy": "compact"},
        NAMES: {"cleanup.policy": "compact"},
    }
    ALL_TOPICS = tuple(TOPIC_CONFIGS)


use_prefix(PREFIX)


def partition_of(key: str, partitions: int) -> int:
    """The partition of a routing key on the internal topics (and, for connectors, of an
    account on the raw topic): CRC-32 of its UTF-8 bytes modulo the partition count. Our
    own choice, not a client's default partitioner, so that every worker and connector
    computes the same partition whatever Kafka client it runs."""
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % partitions


async def raw_partitions(producer: Any) -> int:
    """The raw topic's partition count (aiokafka producer), for
    `routing.arrival_partition`."""
    return len(await producer.partitions_for(RAW))


def bootstrap_of(broker: str) -> str:
    """`kafka://host:port[;kafka://host2:port]` → `host:port[,host2:port]`."""
    parts = [p.strip() for p in broker.replace(";", ",").split(",") if p.strip()]
    return ",".join(p.split("://", 1)[-1] for p in parts)


CHANGELOG_TABLES = (
    "identity",
    "seen",
    "seen_expiry",
    "dedup",
    "dedup_expiry",
    "catalog_types",
    "catalog_props",
    "uploads",
)


def changelog_topics(app_id: str) -> dict[str, Mapping[str, str]]:
    """The Faust table changelogs (compacted), created up front so that every worker sees
    them in its first metadata (Faust otherwise races its own topic creation)."""
    return {f"{app_id}-{t}-changelog": {"cleanup.policy": "compact"} for t in CHANGELOG_TABLES}


async def ensure_topics(
    bootstrap: str, partitions: int = DEFAULT_PARTITIONS, app_id: str | None = None
) -> None:
    """Creates the runtime's topics when missing (existing topics are left as they are)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        configs = dict(TOPIC_CONFIGS)
        if app_id is not None:
            configs.update(changelog_topics(app_id))
        missing = [
            NewTopic(name, partitions, 1, topic_configs=dict(config))
            for name, config in configs.items()
            if name not in existing
        ]
        if missing:
            # a concurrent creator may win the race: fine
            with contextlib.suppress(Exception):
                await admin.create_topics(missing, timeout_ms=30000)
        for _ in range(100):
            described = await admin.describe_topics(list(configs))
            if all(
                t.get("error_code") == 0 and all(p["leader"] >= 0 for p in t["partitions"])
                for t in described
            ):
                return
            await asyncio.sleep(0.1)
    finally:
        await admin.close()
