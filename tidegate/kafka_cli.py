"""The Kafka runtime's commands: `tidegate worker`'s configuration and `import --broker`."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

from streams.core.records import Dialect, SourceKind
from streams.core.timeparse import from_iso
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
from tidegate.account_settings import load_settings


def config_from_args(args: argparse.Namespace) -> WorkerConfig:
    state_dir = Path(args.state_dir)
    now_text = getattr(args, "now", None) or os.environ.get("TIDEGATE_NOW")
    now = from_iso(now_text) if isinstance(now_text, str) and now_text else None
    if now_text and now is None:
        raise SystemExit(f"TIDEGATE_NOW wants an ISO-8601 time, not {now_text!r}")
    return WorkerConfig(
        broker=args.broker,
        partitions=int(args.partitions),
        state_dir=state_dir,
        settings=load_settings(args.config, state_dir),
        now=now,
    )


async def _import(args: argparse.Namespace) -> int:
    from connectors.files.reader import read_upload
    from tidegate.reports import print_json, print_refusal, print_summary, report_of

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
        claim = await claim_name(producer, bootstrap, row)
        if claim["upload_id"] != row.upload_id:
            count = len(await producer.partitions_for(T.STATUS))
            if await final_status_of(bootstrap, claim["upload_id"], count) is not None:
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
        announcement = await produce_upload(producer, row, read_upload(row))
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
        print_json(report)
    else:
        print_summary({**report, "errors": []}, path.name)
        print(f"  outputs: {T.ACCEPTED}, {T.TRIGGERS}, {T.DEADLETTER} at {args.broker}")
    if view.status == "fail" and view.fatal:
        return 2
    return 0 if view.status == "success" else 1


def import_via_kafka(args: argparse.Namespace) -> int:
    """`tidegate import PATH --account A --broker kafka://HOST:PORT`: produces the upload,
    waits for its final status and prints the same report as the embedded `import`."""
    return asyncio.run(_import(args))
