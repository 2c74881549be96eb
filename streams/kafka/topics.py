"""Topic names, partition counts and topic configuration of the Kafka runtime.

Every topic has the same partition count (default 8), so the raw topic, the internal
`events.by_key` topic, the state changelogs and the outputs are co-partitioned: partition p
of each belongs to one worker. State of a key lives in partition `partition_of(key)`; the
upload topics (outcomes, announce, status) are keyed by upload id.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streams.kafka.faust_store import STATE_TABLES

DEFAULT_PARTITIONS = 8

# Outputs keep 7 days by default (consumers re-read within that); status is compacted.
_DELETE_7D = {"cleanup.policy": "delete", "retention.ms": str(7 * 24 * 3600 * 1000)}
_COMPACT = {"cleanup.policy": "compact"}


@dataclass(frozen=True, slots=True)
class Topics:
    """The topic names under one prefix (`<prefix>.events.raw` ...; `tidegate` unless
    TIDEGATE_TOPIC_PREFIX says otherwise, tests use their own prefix per run)."""

    prefix: str
    raw: str
    accepted: str
    triggers: str
    deadletter: str
    outcomes: str
    announce: str
    status: str
    conflicts: str
    by_key: str  # internal: records between the stages (streams/kafka/wire.py)
    names: str  # the filenames accounts have used (streams/kafka/producer.py)

    @classmethod
    def of(cls, prefix: str) -> Topics:
        return cls(
            prefix,
            raw=f"{prefix}.events.raw",
            accepted=f"{prefix}.events.accepted",
            triggers=f"{prefix}.events.triggers",
            deadletter=f"{prefix}.events.deadletter",
            outcomes=f"{prefix}.uploads.outcomes",
            announce=f"{prefix}.uploads.announce",
            status=f"{prefix}.uploads.status",
            conflicts=f"{prefix}.identity.conflicts",
            by_key=f"{prefix}.events.by_key",
            names=f"{prefix}.uploads.names",
        )

    @property
    def configs(self) -> dict[str, Mapping[str, str]]:
        """Each topic's configuration."""
        compacted = (self.status, self.names)
        return {name: _COMPACT if name in compacted else _DELETE_7D for name in self.all}

    @property
    def all(self) -> tuple[str, ...]:
        return (
            self.raw,
            self.accepted,
            self.triggers,
            self.deadletter,
            self.outcomes,
            self.announce,
            self.conflicts,
            self.by_key,
            self.status,
            self.names,
        )


def partition_of(key: str, partitions: int) -> int:
    """The partition of a routing key on the internal topics (and, for connectors, of an
    account on the raw topic): CRC-32 of its UTF-8 bytes modulo the partition count. Our
    own choice, not a client's default partitioner, so that every worker and connector
    computes the same partition whatever Kafka client it runs."""
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % partitions


async def raw_partitions(producer: Any, topics: Topics) -> int:
    """The raw topic's partition count (aiokafka producer), for
    `routing.arrival_partition`."""
    return len(await producer.partitions_for(topics.raw))


def bootstrap_of(broker: str) -> str:
    """`kafka://host:port[;kafka://host2:port]` → `host:port[,host2:port]`."""
    parts = [p.strip() for p in broker.replace(";", ",").split(",") if p.strip()]
    return ",".join(p.split("://", 1)[-1] for p in parts)


# the core's state tables, and the status agent's count of each upload
CHANGELOG_TABLES = (*STATE_TABLES, "uploads")


def changelog_topics(app_id: str) -> dict[str, Mapping[str, str]]:
    """The Faust table changelogs (compacted), created up front so that every worker sees
    them in its first metadata (Faust otherwise races its own topic creation)."""
    return {f"{app_id}-{t}-changelog": {"cleanup.policy": "compact"} for t in CHANGELOG_TABLES}


async def ensure_topics(
    bootstrap: str,
    topics: Topics,
    partitions: int = DEFAULT_PARTITIONS,
    app_id: str | None = None,
) -> None:
    """Creates the runtime's topics when missing (existing topics are left as they are)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        configs = dict(topics.configs)
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
