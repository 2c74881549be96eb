"""Round trips through a real Apache Kafka broker with aiokafka (the Faust runtime's client).

These pin the broker features the Faust runtime relies on: keyed partitioning, consumer
groups and committed offsets, transactions with read_committed consumers, and compacted
topics (Faust table changelogs).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tests.integration.kafka_helpers import (
    consume,
    create_topic,
    drain,
    partitions_of,
    topic_configs,
)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]


def _consumer(bootstrap: str, *topics: str, **kwargs: object) -> AIOKafkaConsumer:
    kwargs.setdefault("auto_offset_reset", "earliest")
    kwargs.setdefault("enable_auto_commit", False)
    return AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, **kwargs)


async def test_produce_consume_round_trip(kafka_bootstrap: str, topic_name: str) -> None:
    await create_topic(kafka_bootstrap, topic_name, partitions=3)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    sent: list[tuple[bytes, bytes]] = []
    partition_of_key: dict[bytes, set[int]] = defaultdict(set)
    try:
        for i in range(60):
            key = f"user-{i % 7}".encode()
            value = f'{{"seq": {i}, "user": "{i % 7}"}}'.encode()
            meta = await producer.send_and_wait(
                topic_name, value, key=key, headers=[("source", b"test"), ("seq", str(i).encode())]
            )
            assert meta.topic == topic_name
            partition_of_key[key].add(meta.partition)
            sent.append((key, value))
    finally:
        await producer.stop()

    # the default partitioner keeps a key on one partition; 7 keys spread over 3 partitions
    assert all(len(parts) == 1 for parts in partition_of_key.values())
    assert len({p for parts in partition_of_key.values() for p in parts}) > 1

    consumer = _consumer(kafka_bootstrap, topic_name)
    await consumer.start()
    try:
        records = await consume(consumer, len(sent))
        extra = await drain(consumer, quiet=1.0)
    finally:
        await consumer.stop()
    assert extra == []
    assert sorted((r.key, r.value) for r in records) == sorted(sent)
    # order is kept per key (each key lives on one partition)
    by_key: dict[bytes, list[bytes]] = defaultdict(list)
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        by_key[r.key].append(r.value)
    for key, values in by_key.items():
        assert values == [v for k, v in sent if k == key]
    for r in records:
        headers = dict(r.headers)
        assert headers["source"] == b"test"
        assert int(headers["seq"]) == int(r.value.split(b'"seq": ')[1].split(b",")[0])
        assert r.timestamp > 0


async def test_consumer_group_splits_partitions(kafka_bootstrap: str, topic_name: str) -> None:
    partitions = 4
    await create_topic(kafka_bootstrap, topic_name, partitions=partitions)
    group = f"group-{uuid.uuid4().hex[:8]}"
    c1 = _consumer(kafka_bootstrap, topic_name, group_id=group)
    c2 = _consumer(kafka_bootstrap, topic_name, group_id=group)
    await c1.start()
    await c2.start()
    try:
        # keep both polling while the group rebalances to two members
        deadline = asyncio.get_running_loop().time() + 60
        while True:
            await asyncio.gather(c1.getmany(timeout_ms=200), c2.getmany(timeout_ms=200))
            a1, a2 = c1.assignment(), c2.assignment()
            if a1 and a2 and len(a1) + len(a2) == partitions:
                break
            assert asyncio.get_running_loop().time() < deadline, (a1, a2)
        assert a1.isdisjoint(a2)
        assert a1 | a2 == partitions_of(topic_name, partitions)

        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            for p in range(partitions):
                for i in range(5):
                    await producer.send_and_wait(topic_name, f"p{p}-{i}".encode(), partition=p)
        finally:
            await producer.stop()

        got1, got2 = await asyncio.gather(consume(c1, 5 * len(a1)), consume(c2, 5 * len(a2)))
        assert {TopicPartition(r.topic, r.partition) for r in got1} == a1
        assert {TopicPartition(r.topic, r.partition) for r in got2} == a2
        values = sorted(r.value for r in got1 + got2)
        assert values == sorted(f"p{p}-{i}".encode() for p in range(partitions) for i in range(5))
    finally:
        await c1.stop()
        await c2.stop()


async def test_committed_offsets_resume(kafka_bootstrap: str, topic_name: str) -> None:
    await create_topic(kafka_bootstrap, topic_name, partitions=1)
    tp = TopicPartition(topic_name, 0)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(10):
            await producer.send_and_wait(topic_name, f"m{i}".encode())
    finally:
        await producer.stop()

    group = f"group-{uuid.uuid4().hex[:8]}"
    first = _consumer(kafka_bootstrap, topic_name, group_id=group, max_poll_records=1)
    await first.start()
    try:
        seen = [(await first.getone()).value for _ in range(4)]
        assert seen == [b"m0", b"m1", b"m2", b"m3"]
        await first.commit()  # commits the position: offset 4
        assert await first.committed(tp) == 4
    finally:
        await first.stop()

    second = _consumer(kafka_bootstrap, topic_name, group_id=group)
    await second.start()
    try:
        rest = await consume(second, 6)
        assert [r.value for r in rest] == [f"m{i}".encode() for i in range(4, 10)]
        assert rest[0].offset == 4
        assert await drain(second, quiet=1.0) == []
    finally:
        await second.stop()

    # a different group has no committed offset and starts from the beginning
    other = _consumer(kafka_bootstrap, topic_name, group_id=group + "-other")
    await other.start()
    try:
        assert await other.committed(tp) is None
        assert (await other.getone()).value == b"m0"
    finally:
        await other.stop()


async def test_transactions_commit_visible_abort_invisible(
    kafka_bootstrap: str, topic_name: str
) -> None:
    await create_topic(kafka_bootstrap, topic_name, partitions=2)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap,
        transactional_id=f"tidegate-test-{uuid.uuid4().hex[:8]}",
        enable_idempotence=True,
    )
    await producer.start()  # init_transactions: finds the coordinator, gets a producer id
    committed = _consumer(kafka_bootstrap, topic_name, isolation_level="read_committed")
    try:
        async with producer.transaction():
            for i in range(3):
                await producer.send_and_wait(topic_name, f"commit-{i}".encode(), key=b"k")

        await producer.begin_transaction()
        for i in range(3):
            await producer.send_and_wait(topic_name, f"abort-{i}".encode(), key=b"k")
        await producer.abort_transaction()

        # an open transaction is invisible to read_committed until it commits
        await producer.begin_transaction()
        await producer.send_and_wait(topic_name, b"pending", key=b"k")
        await committed.start()
        before = await consume(committed, 3)
        assert [r.value for r in before] == [b"commit-0", b"commit-1", b"commit-2"]
        assert await drain(committed, quiet=2.0) == []
        await producer.commit_transaction()
        after = await consume(committed, 1)
        assert [r.value for r in after] == [b"pending"]
        assert await drain(committed, quiet=1.0) == []
    finally:
        await committed.stop()
        await producer.stop()

    # the aborted records were really written: read_uncommitted sees them
    uncommitted = _consumer(kafka_bootstrap, topic_name, isolation_level="read_uncommitted")
    await uncommitted.start()
    try:
        everything = await consume(uncommitted, 7)
        everything += await drain(uncommitted, quiet=1.0)
    finally:
        await uncommitted.stop()
    assert sorted(r.value for r in everything) == sorted(
        [f"commit-{i}".encode() for i in range(3)]
        + [f"abort-{i}".encode() for i in range(3)]
        + [b"pending"]
    )


async def test_compacted_topic_config(
    kafka_bootstrap: str, new_topic_name: Callable[[str], str]
) -> None:
    compacted = new_topic_name("changelog")
    plain = new_topic_name("plain")
    await create_topic(
        kafka_bootstrap,
        compacted,
        partitions=2,
        configs={"cleanup.policy": "compact", "min.compaction.lag.ms": "0"},
    )
    await create_topic(kafka_bootstrap, plain)
    configs = await topic_configs(kafka_bootstrap, compacted)
    assert configs["cleanup.policy"] == "compact"
    assert configs["min.compaction.lag.ms"] == "0"
    assert (await topic_configs(kafka_bootstrap, plain))["cleanup.policy"] == "delete"


@pytest.mark.slow
async def test_compaction_keeps_latest_value_per_key(kafka_bootstrap: str, topic_name: str) -> None:
    # small segments that roll at once, so the cleaner has closed segments to compact
    await create_topic(
        kafka_bootstrap,
        topic_name,
        configs={
            "cleanup.policy": "compact",
            "segment.ms": "100",
            "min.cleanable.dirty.ratio": "0.001",
            "min.compaction.lag.ms": "0",
            "delete.retention.ms": "100",
        },
    )
    keys = [f"k{i}".encode() for i in range(5)]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for version in range(40):
            for key in keys:
                await producer.send_and_wait(topic_name, f"v{version}".encode(), key=key)
        deadline = asyncio.get_running_loop().time() + 90
        compacted: dict[bytes, bytes] = {}
        while True:
            # writing again rolls the (time-expired) active segment so it becomes cleanable
            await asyncio.sleep(0.5)
            await producer.send_and_wait(topic_name, b"tick", key=b"tick")
            consumer = _consumer(kafka_bootstrap, topic_name)
            await consumer.start()
            try:
                records = await drain(consumer, quiet=0.5)
            finally:
                await consumer.stop()
            compacted = {r.key: r.value for r in records}
            real = [r for r in records if r.key != b"tick"]
            if len(real) <= 2 * len(keys):
                break
            assert asyncio.get_running_loop().time() < deadline, (
                f"log not compacted: {len(real)} records for {len(keys)} keys"
            )
    finally:
        await producer.stop()
    assert {k: compacted[k] for k in keys} == {k: b"v39" for k in keys}
