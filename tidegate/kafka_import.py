"""`tidegate import PATH --account A --broker kafka://HOST:PORT`: import through Kafka.

Reads the upload with the same file readers as the embedded runtime, produces one raw
record per line/row to `tidegate.events.raw` (keyed by account, acks=all, idempotent
producer, so per-account order is the file's order), announces the upload's total on
`tidegate.uploads.announce`, then waits for the upload's final status on the compacted
`tidegate.uploads.status` topic (written by the workers' status agent) and prints the same
report as the embedded `tidegate import`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson

from connectors.ports import UploadView
from streams import topics as T
from streams.core.records import Dialect, SourceKind
from streams.core.timeparse import to_iso
from streams.embedded.engine import FatalUpload, MemberFailure, PlanWarning, UploadRow

FINAL = frozenset({"success", "partial", "warning", "fail"})
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


async def produce_upload(producer: Any, row: UploadRow) -> dict[str, Any]:
    """Produces every record of `row` and then its announcement; returns the announcement."""
    from tidegate.files import read_upload

    warnings: list[str] = []
    failed: list[str] = []
    fatal: dict[str, str] | None = None
    total = 0
    dialect = row.dialect
    pending: list[Any] = []
    key = row.account.encode()
    partition = await T.raw_partition(producer, row.account)
    try:
        for item in read_upload(row):
            if isinstance(item, PlanWarning):
                if item.text not in warnings:
                    warnings.append(item.text)
                continue
            if isinstance(item, MemberFailure):
                if item.member not in failed:
                    failed.append(item.member)
                    warnings.append(
                        f"{item.member}: {item.rejection.code}: {item.rejection.message}"
                    )
                continue
            _, raw = item
            dialect = dialect or raw.source.dialect
            pending.append(
                await producer.send(T.RAW, T.encode_raw(raw), key=key, partition=partition)
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
        "trigger": bool(row.trigger),
        "total": total,
        "warnings": warnings,
        "failed_members": len(failed),
        "fatal": fatal,
    }
    await producer.send_and_wait(T.ANNOUNCE, orjson.dumps(announcement), key=key)
    return announcement


async def wait_statuses(
    bootstrap: str, upload_ids: Iterable[str], timeout: float = 600.0
) -> dict[str, dict[str, Any]]:
    """Reads the compacted status topic (read_committed) until every upload has its final
    status; returns upload id → status document."""
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
        partitions = consumer.partitions_for_topic(T.STATUS) or set()
        while not partitions:
            await asyncio.sleep(0.2)
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(T.STATUS) or set()
        consumer.assign([TopicPartition(T.STATUS, p) for p in partitions])
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


async def _import(args: argparse.Namespace) -> int:
    from tidegate.cli import _print_json, _print_summary
    from tidegate.commands import report_of

    bootstrap = T.bootstrap_of(args.broker)
    await T.ensure_topics(bootstrap, int(getattr(args, "partitions", 0) or T.DEFAULT_PARTITIONS))
    path = args.path.resolve()
    row = UploadRow(
        upload_id=str(uuid.uuid4()),
        account=args.account,
        filename=path.name,
        kind=SourceKind.FILE,
        dialect=Dialect(args.dialect) if args.dialect else None,
        path=str(path),
        trigger=True if args.trigger else None,
        received_at=args.now or datetime.now(UTC),
    )
    producer = new_producer(bootstrap)
    await producer.start()
    try:
        announcement = await produce_upload(producer, row)
    finally:
        await producer.stop()
    if not args.json:
        print(
            f"produced {announcement['total']} records to {T.RAW}; waiting for the workers",
            file=sys.stderr,
            flush=True,
        )
    statuses = await wait_statuses(bootstrap, [row.upload_id])
    view = view_of(statuses[row.upload_id])
    report = report_of(view)
    if args.json:
        _print_json(report)
    else:
        _print_summary({**report, "errors": []}, path.name)
        print(f"  outputs: {T.ACCEPTED}, {T.TRIGGERS}, {T.DEADLETTER} at {args.broker}")
    if view.status == "fail" and view.fatal:
        return 2
    return 0 if view.status == "success" else 1


def import_via_kafka(args: argparse.Namespace) -> int:
    return asyncio.run(_import(args))
