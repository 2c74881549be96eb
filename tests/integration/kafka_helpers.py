"""Helpers for tests that talk to a real Apache Kafka broker (see conftest.kafka_bootstrap).

Everything here goes through aiokafka, the client the Faust runtime uses, so a helper that
works here exercises the same protocol versions as Tidegate itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager, suppress
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

# Kafka error codes the helpers treat specially.
TOPIC_ALREADY_EXISTS = 36


class KafkaHelperError(AssertionError):
    """A broker answered with an error the test did not expect."""


@asynccontextmanager
async def admin_client(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def broker_answers(bootstrap: str, timeout: float = 10.0) -> bool:
    """True when a metadata request to ``bootstrap`` lists at least one broker."""
    deadline = time.monotonic() + timeout
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
        try:
            await asyncio.wait_for(admin.start(), 5)
            meta = await asyncio.wait_for(admin.describe_cluster(), 5)
            if meta.get("brokers"):
                return True
        except Exception:
            pass
        finally:
            with suppress(Exception):
                await asyncio.wait_for(admin.close(), 2)
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.5)


async def create_topic(
    bootstrap: str,
    name: str,
    *,
    partitions: int = 1,
    replication_factor: int = 1,
    configs: Mapping[str, str] | None = None,
    exist_ok: bool = False,
    timeout: float = 30.0,
) -> None:
    """Create ``name`` and wait until every partition has a leader in the metadata."""
    async with admin_client(bootstrap) as admin:
        response = await admin.create_topics(
            [NewTopic(name, partitions, replication_factor, topic_configs=dict(configs or {}))],
            timeout_ms=int(timeout * 1000),
        )
        for err in response.to_object()["topic_errors"]:
            code = err["error_code"]
            if code == 0 or (code == TOPIC_ALREADY_EXISTS and exist_ok):
                continue
            raise KafkaHelperError(
                f"create_topics({name}) failed: error {code}: {err.get('error_message')}"
            )
        await _wait_for_leaders(admin, name, partitions, timeout)


async def _wait_for_leaders(
    admin: AIOKafkaAdminClient, name: str, partitions: int, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        topics = await admin.describe_topics([name])
        parts = topics[0]["partitions"] if topics and topics[0]["error_code"] == 0 else []
        if len(parts) == partitions and all(p["leader"] >= 0 for p in parts):
            return
        if time.monotonic() >= deadline:
            raise KafkaHelperError(f"topic {name} has no leader for every partition: {topics}")
        await asyncio.sleep(0.1)


async def delete_topics(bootstrap: str, names: Iterable[str]) -> None:
    names = list(names)
    if names:
        async with admin_client(bootstrap) as admin:
            await admin.delete_topics(names)


async def topic_configs(bootstrap: str, name: str) -> dict[str, str]:
    """The effective configuration of topic ``name`` (describe_configs), name → value."""
    async with admin_client(bootstrap) as admin:
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
    out: dict[str, str] = {}
    for response in responses:
        for resource in response.to_object()["resources"]:
            if resource["error_code"] != 0:
                raise KafkaHelperError(
                    f"describe_configs({name}) failed: error {resource['error_code']}: "
                    f"{resource['error_message']}"
                )
            for entry in resource["config_entries"]:
                # aiokafka names the field config_names in its schema
                key = entry.get("config_names", entry.get("config_name"))
                out[str(key)] = str(entry["config_value"])
    return out


async def topic_partition_count(bootstrap: str, name: str) -> int:
    async with admin_client(bootstrap) as admin:
        topics = await admin.describe_topics([name])
    return len(topics[0]["partitions"])


async def consume(
    consumer: AIOKafkaConsumer,
    count: int,
    *,
    timeout: float = 30.0,
) -> list[ConsumerRecord[Any, Any]]:
    """Poll ``consumer`` until ``count`` records arrived (or fail after ``timeout``)."""
    records: list[ConsumerRecord[Any, Any]] = []
    deadline = time.monotonic() + timeout
    while len(records) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"expected {count} records, got {len(records)} within {timeout}s")
        batch = await consumer.getmany(timeout_ms=int(min(remaining, 1.0) * 1000))
        for tp_records in batch.values():
            records.extend(tp_records)
    return records


async def drain(
    consumer: AIOKafkaConsumer, *, quiet: float = 2.0, timeout: float = 30.0
) -> list[ConsumerRecord[Any, Any]]:
    """Poll until no record arrives for ``quiet`` seconds; return everything seen."""
    records: list[ConsumerRecord[Any, Any]] = []
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    while time.monotonic() - last < quiet:
        if time.monotonic() >= deadline:
            raise AssertionError(f"consumer still receiving records after {timeout}s")
        batch = await consumer.getmany(timeout_ms=250)
        for tp_records in batch.values():
            if tp_records:
                records.extend(tp_records)
                last = time.monotonic()
    return records


def partitions_of(topic: str, count: int) -> set[TopicPartition]:
    return {TopicPartition(topic, p) for p in range(count)}


# Topic names and name prefixes the tests of this session created; their topics are deleted
# when the session's broker fixture ends (see conftest.kafka_bootstrap), so a developer's
# broker does not collect thousands of partitions that slow its every start.
SESSION_TOPICS: set[str] = set()
SESSION_PREFIXES: set[str] = set()


async def delete_topics_matching(
    bootstrap: str, names: Iterable[str] = (), prefixes: Iterable[str] = ()
) -> int:
    """Deletes the topics named in `names` or starting with one of `prefixes`; how many."""
    wanted, starts = set(names), tuple(prefixes)
    if not wanted and not starts:
        return 0
    async with admin_client(bootstrap) as admin:
        doomed = [
            name
            for name in await admin.list_topics()
            if name in wanted or (starts and name.startswith(starts))
        ]
        for start in range(0, len(doomed), 100):
            await admin.delete_topics(doomed[start : start + 100], timeout_ms=30000)
    return len(doomed)


async def delete_session_topics(bootstrap: str) -> int:
    """Deletes this session's topics (SESSION_TOPICS, SESSION_PREFIXES). Best effort: the
    topics are disposable."""
    return await delete_topics_matching(bootstrap, SESSION_TOPICS, SESSION_PREFIXES)
