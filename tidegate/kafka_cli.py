"""The Kafka runtime's commands: `tidegate worker`'s configuration and `import --broker`."""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from datetime import UTC, datetime

from streams.core.records import Dialect, SourceKind
from streams.core.upload import UploadRow, duplicate_filename
from streams.kafka import topics as T
from streams.kafka.app import WorkerConfig
from streams.kafka.producer import (
    claim_name,
    final_status_of,
    new_producer,
    produce_upload,
    resumed,
    view_of,
    wait_statuses,
)
from streams.kafka.settings import KafkaSettings
from tidegate.account_settings import load_settings
from tidegate.settings import Settings


def config_from_args(args: argparse.Namespace, settings: Settings) -> WorkerConfig:
    """The worker's configuration: the Kafka settings, the accounts' rule settings and the
    fixed processing time (TIDEGATE_NOW, tests and replays), all read once by `main`."""
    kafka = settings.kafka
    return WorkerConfig(
        kafka=kafka,
        settings=load_settings(args.config, kafka.state_dir),
        now=settings.now,
    )


async def _import(args: argparse.Namespace, kafka: KafkaSettings) -> int:
    from connectors.files.reader import read_upload
    from tidegate.reports import print_json, print_refusal, print_summary, report_of

    topics = kafka.topics
    bootstrap = T.bootstrap_of(kafka.broker)
    await T.ensure_topics(bootstrap, topics, kafka.partitions)
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
        claim = await claim_name(producer, bootstrap, topics, row)
        if claim["upload_id"] != row.upload_id:
            count = len(await producer.partitions_for(topics.status))
            if await final_status_of(bootstrap, topics, claim["upload_id"], count) is not None:
                refused = duplicate_filename(row.account, row.filename)
                print_refusal(refused, path.name, as_json=args.json)
                return 2
            row = resumed(row, claim)
            if not args.json:
                print(
                    f"{path.name} was claimed by upload {row.upload_id}, not finished: "
                    "importing it again under that upload (records already decided are "
                    "dropped as redeliveries)",
                    file=sys.stderr,
                    flush=True,
                )
        announcement = await produce_upload(producer, topics, row, read_upload(row))
    finally:
        await producer.stop()
    if not args.json:
        print(
            f"produced {announcement['total']} records to {topics.raw}; waiting for the workers",
            file=sys.stderr,
            flush=True,
        )
    statuses = await wait_statuses(bootstrap, topics, [row.upload_id])
    view = view_of(statuses[row.upload_id])
    report = report_of(view)
    if args.json:
        print_json(report)
    else:
        print_summary({**report, "errors": []}, path.name)
        print(
            f"  outputs: {topics.accepted}, {topics.triggers}, {topics.deadletter} at {args.broker}"
        )
    if view.status == "fail" and view.fatal:
        return 2
    return 0 if view.status == "success" else 1


def import_via_kafka(args: argparse.Namespace, kafka: KafkaSettings) -> int:
    """`tidegate import PATH --account A --broker kafka://HOST:PORT`: produces the upload,
    waits for its final status and prints the same report as the embedded `import`."""
    return asyncio.run(_import(args, kafka))
