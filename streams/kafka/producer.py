"""The raw-topic producer: an upload's records into Kafka, filename claims, final statuses.

`tidegate import --broker` and the connectors' Kafka ingest read an upload with the same
file readers as the embedded runtime and hand its items here; `produce_upload` produces one raw
record per line/row to `tidegate.events.raw` (keyed by account, acks=all, idempotent
producer, so per-account order is the file's order), announces the upload's total on
`tidegate.uploads.announce`, and `wait_statuses` waits for the upload's final status on the compacted
`tidegate.uploads.status` topic (written by the workers' status agent).

Filenames: before producing, the import claims the account's filename on the compacted
`tidegate.uploads.names` topic (key `account \x1f filename`). A name whose upload has a
final status is refused with `duplicate_filename`, as the embedded runtime refuses it. A
name claimed by an upload without a final status (an import interrupted, or one still
running) is imported again under that upload's id: event ids are derived from the upload
id and the line, so the workers' redelivery suppression drops every record they have
decided already, and the upload completes once with the file's counts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

import orjson

from connectors.ports import UploadView
from streams.core.records import Dialect
from streams.core.status import FINAL_STATUSES as FINAL
from streams.core.timeparse import from_iso, to_iso
from streams.core.upload import (
    FatalUpload,
    Item,
    MemberFailure,
    PlanWarning,
    UploadNotes,
    UploadRow,
)
from streams.kafka import topics as T
from streams.kafka.routing import arrival_partition
from streams.kafka.topics import Topics
from streams.kafka.wire import encode_raw

IN_FLIGHT = 5000  # sends awaited in groups of this size


def new_producer(bootstrap: str) -> Any:
    from aiokafka import AIOKafkaProducer

    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=10,
        max_batch_size=256 * 1024,
        compression_type=None,
    )


async def produce_upload(
    producer: Any, topics: Topics, row: UploadRow, items: Iterable[Item]
) -> dict[str, Any]:
    """Produces every record of `row` (`items`: what the file reader yields for it) and then
    its announcement; returns the announcement."""
    warnings: list[str] = []
    failed: list[str] = []
    notes = UploadNotes(warnings, failed)
    trigger = bool(row.trigger)
    fatal: dict[str, str] | None = None
    total = 0
    dialect = row.dialect
    pending: list[Any] = []
    key = row.account.encode()
    partitions = await T.raw_partitions(producer, topics)
    try:
        for item in items:
            if isinstance(item, PlanWarning | MemberFailure):
                notes.note(item)
                continue
            _, raw = item
            if dialect is None:
                # the upload shows the trigger opt-in its records carry (an archive's
                # manifest may set it), as it shows the dialect of its first record
                dialect, trigger = raw.source.dialect, raw.trigger
            partition = arrival_partition(raw, partitions)
            pending.append(
                await producer.send(topics.raw, encode_raw(raw), key=key, partition=partition)
            )
            total += 1
            if len(pending) >= IN_FLIGHT:
                await asyncio.gather(*pending)
                pending.clear()
    except FatalUpload as error:
        fatal = {"code": error.rejection.code.value, "message": error.rejection.message}
    await asyncio.gather(*pending)
    announcement = {
        "type": "announce",
        "upload_id": row.upload_id,
        "account": row.account,
        "filename": row.filename,
        "kind": row.kind.value,
        "dialect": dialect.value if dialect else None,
        "received_at": to_iso(row.received_at),
        "trigger": trigger,
        "total": total,
        "warnings": warnings,
        "failed_members": len(failed),
        "fatal": fatal,
    }
    await producer.send_and_wait(topics.announce, orjson.dumps(announcement), key=key)
    return announcement


def name_key(account: str, filename: str) -> str:
    """The key of an account's filename on the names topic."""
    return f"{account}\x1f{filename}"


async def read_to_end(
    bootstrap: str, topic: str, partitions: Iterable[int] | None = None
) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of `topic` (or of its `partitions`) up to its current end, in
    offset order per partition (read_committed)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    found: list[tuple[bytes, bytes]] = []
    try:
        numbers = partitions
        if numbers is None:
            numbers = consumer.partitions_for_topic(topic) or set()
            if not numbers:
                await consumer._client.force_metadata_update()
                numbers = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(numbers)]
        if not tps:
            return found
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if await consumer.position(tp) < ends[tp]}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=500)
            for records in batch.values():
                found.extend((r.key or b"", r.value or b"") for r in records)
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return found


async def find_claim(
    bootstrap: str, topics: Topics, account: str, filename: str, partitions: int
) -> dict[str, Any] | None:
    """The first claim of the account's filename still on the names topic, or None."""
    key = name_key(account, filename)
    wanted = key.encode("utf-8", "surrogatepass")
    for record_key, value in await read_to_end(
        bootstrap, topics.names, [T.partition_of(key, partitions)]
    ):
        if record_key == wanted and value:
            claim: dict[str, Any] = orjson.loads(value)
            return claim
    return None


async def claim_name(
    producer: Any, bootstrap: str, topics: Topics, row: UploadRow
) -> dict[str, Any]:
    """The claim that holds for `row`'s account and filename: an earlier upload's, or a new
    one for `row`. Of two imports claiming at once, the claim first in the log wins (both
    then import under its upload id)."""
    partitions = len(await producer.partitions_for(topics.names))
    existing = await find_claim(bootstrap, topics, row.account, row.filename, partitions)
    if existing is not None:
        return existing
    claim = await write_claim(producer, topics, row)
    return await find_claim(bootstrap, topics, row.account, row.filename, partitions) or claim


async def write_claim(producer: Any, topics: Topics, row: UploadRow) -> dict[str, Any]:
    """Records on the names topic that `row`'s upload uses its account's filename."""
    partitions = len(await producer.partitions_for(topics.names))
    key = name_key(row.account, row.filename)
    claim = {
        "upload_id": row.upload_id,
        "account": row.account,
        "filename": row.filename,
        "dialect": row.dialect.value if row.dialect else None,
        "trigger": row.trigger,
        "received_at": to_iso(row.received_at),
    }
    await producer.send_and_wait(
        topics.names,
        orjson.dumps(claim),
        key=key.encode("utf-8", "surrogatepass"),
        partition=T.partition_of(key, partitions),
    )
    return claim


async def final_status_of(
    bootstrap: str, topics: Topics, upload_id: str, partitions: int
) -> dict[str, Any] | None:
    """The upload's final status document on the status topic so far, or None. The status
    agent publishes it to the upload's partition (`partition_of(upload_id)`): only that
    partition is read."""
    wanted = upload_id.encode()
    final: dict[str, Any] | None = None
    where = [T.partition_of(upload_id, partitions)]
    for key, value in await read_to_end(bootstrap, topics.status, where):
        if key == wanted and value:
            doc = orjson.loads(value)
            if doc.get("status") in FINAL:
                final = doc
    return final


def resumed(row: UploadRow, claim: dict[str, Any]) -> UploadRow:
    """`row` as the claimed upload: its id, clock and flags, so every record is produced
    exactly as the first import produced it."""
    received_at = from_iso(claim["received_at"]) if claim.get("received_at") else None
    return UploadRow(
        upload_id=claim["upload_id"],
        account=row.account,
        filename=row.filename,
        kind=row.kind,
        dialect=Dialect(claim["dialect"]) if claim.get("dialect") else row.dialect,
        path=row.path,
        trigger=claim.get("trigger", row.trigger),
        received_at=received_at or row.received_at,
    )


async def wait_statuses(
    bootstrap: str, topics: Topics, upload_ids: Iterable[str], timeout: float = 600.0
) -> dict[str, dict[str, Any]]:
    """Reads the compacted status topic (read_committed) until every upload has its final
    status; returns upload id → status document. Only the uploads' own partitions are
    read (`final_status_of`)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    wanted = set(upload_ids)
    found: dict[str, dict[str, Any]] = {}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topics.status) or set()
        while not partitions:
            await asyncio.sleep(0.2)
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topics.status) or set()
        count = len(partitions)
        mine = sorted({T.partition_of(upload_id, count) for upload_id in wanted})
        consumer.assign([TopicPartition(topics.status, p) for p in mine])
        await consumer.seek_to_beginning()
        deadline = time.monotonic() + timeout
        while wanted - found.keys():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no final status for {sorted(wanted - found.keys())}")
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    key = record.key.decode() if record.key else ""
                    if key in wanted and record.value:
                        doc = orjson.loads(record.value)
                        if doc.get("status") in FINAL:
                            found[key] = doc
    finally:
        await consumer.stop()
    return found


def view_of(doc: dict[str, Any]) -> UploadView:
    return UploadView(
        upload_id=doc["upload_id"],
        account=doc.get("account") or "",
        filename=doc.get("filename") or "",
        kind=doc.get("kind") or "file",
        dialect=doc.get("dialect"),
        status=doc["status"],
        received_at=doc.get("received_at") or "",
        finished_at=doc.get("finished_at"),
        trigger=bool(doc.get("trigger")),
        counts=doc.get("counts") or {},
        warnings=doc.get("warnings") or [],
        fatal=doc.get("fatal"),
    )
