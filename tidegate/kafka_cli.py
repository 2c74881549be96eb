"""The Kafka runtime's commands: `tidegate worker`'s configuration and `import --broker`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from connectors.ports import UploadView
from streams.core.records import Dialect, SourceKind
from streams.core.status import FINAL_STATUSES
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
from tidegate.account_settings import accounts_path, load_settings
from tidegate.settings import Settings

if TYPE_CHECKING:  # loaded only by an import that tells (the Kafka ingest and the notifier)
    from connectors.notifications.service import Notifier
    from streams.kafka.ingest import KafkaIngest


def config_from_args(args: argparse.Namespace, settings: Settings) -> WorkerConfig:
    """The worker's configuration: the Kafka settings, the accounts' rule settings and the
    fixed processing time (TIDEGATE_NOW, tests and replays), all read once by `main`."""
    kafka = settings.kafka
    return WorkerConfig(
        kafka=kafka,
        settings=load_settings(args.config, kafka.state_dir),
        now=settings.now,
    )


async def _import(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.files.reader import read_upload
    from tidegate.reports import print_json, print_refusal, print_summary, report_of

    kafka = settings.kafka
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
    async with contextlib.AsyncExitStack() as stack:
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
            telling = await _Telling.begin(stack, args, settings, row)
            announcement = await produce_upload(producer, topics, row, read_upload(row))
        finally:
            await producer.stop()
        if not args.json:
            print(
                f"produced {announcement['total']} records to {topics.raw}; waiting for the workers",
                file=sys.stderr,
                flush=True,
            )
        if telling is not None:
            view = await telling.wait(announcement["total"])
            await telling.tell(quiet=args.json)
        else:
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


class _Telling:
    """`import --broker` of an account with notification targets: the upload is kept in the
    data directory's Kafka history (`DATA/connectors.db`, the ledger of `run --broker`),
    its rejected rows collected there, and it is told through `DATA`'s outbox like an
    upload of `run --broker` (docs/NOTIFICATIONS.md)."""

    def __init__(self, ingest: KafkaIngest, notifier: Notifier, row: UploadRow, data: Path) -> None:
        self.ingest = ingest
        self.notifier = notifier
        self.row = row
        self.data = data

    @classmethod
    async def begin(
        cls,
        stack: contextlib.AsyncExitStack,
        args: argparse.Namespace,
        settings: Settings,
        row: UploadRow,
    ) -> _Telling | None:
        """Registers `row` in the history before any record is produced; None when the
        account has no target (nothing is written in the data directory then)."""
        from connectors.accounts import load_accounts
        from connectors.files.reader import read_upload
        from connectors.notifications.service import Notifier
        from connectors.ports import FileUpload
        from streams.embedded.ledger import Ledger
        from streams.kafka.ingest import KafkaIngest

        data = settings.data
        config = accounts_path(args.config, data)
        if not config.exists():
            return None
        accounts = load_accounts(config)
        account = accounts.get(row.account)
        notify = settings.notify
        if account is None or not (
            account.webhooks or (account.notify_emails and notify.smtp is not None)
        ):
            return None
        kafka = settings.kafka
        ledger = Ledger(data / "connectors.db")
        ingest = KafkaIngest(
            T.bootstrap_of(kafka.broker), kafka.topics, ledger, read_upload, kafka.partitions
        )
        await ingest.start(resume=False)  # the queued uploads of a `run --broker` are its own
        stack.push_async_callback(ingest.stop)
        if await ledger.get_upload(row.upload_id) is None:  # else: a resumed upload of ours
            other = await ledger.find_upload(row.account, row.filename)
            if other is not None:
                print(
                    f"import: {row.filename} is in {data}'s history as upload "
                    f"{other.upload_id}, not as {row.upload_id}: this upload is not told "
                    "to the account's notification targets",
                    file=sys.stderr,
                    flush=True,
                )
                return None
            path = Path(row.path or row.filename)  # the file `_import` produces: always set
            upload = FileUpload(
                row.account,
                row.filename,
                path,
                row.received_at,
                row.dialect,
                row.trigger,
                row.kind,
            )
            await ledger.register_file(upload, row.upload_id)
        if not notify.console_url:  # the links of `run` on this data directory
            notify = replace(
                notify, console_url=f"http://{settings.run.host}:{settings.run.http_port}"
            )
        notifier = Notifier(ingest, accounts, data, notify)
        await notifier.open()
        stack.push_async_callback(notifier.stop)
        await notifier.watch(row.upload_id)  # a `run` beside tells it if this process dies
        return cls(ingest, notifier, row, data)

    async def wait(self, total: int) -> UploadView:
        upload_id = self.row.upload_id
        view = await self.ingest.ledger.get_upload(upload_id)
        if view is not None and view.status not in FINAL_STATUSES:
            await self.ingest.ledger.mark_processing(upload_id, total)
        # final once its rejected rows are collected from the dead-letter topic as well
        view = await self.ingest.wait(upload_id)
        if view.status not in FINAL_STATUSES:
            # the final status was recorded just before `processing` above overwrote it
            ingest = self.ingest
            statuses = await wait_statuses(ingest.bootstrap, ingest.topics, [upload_id])
            await ingest.ledger.record_status(statuses[upload_id])
            view = view_of(statuses[upload_id])
        return view

    async def tell(self, *, quiet: bool) -> None:
        deliveries = await self.notifier.tell(self.row.upload_id)
        if quiet:
            return
        for delivery in deliveries:
            if delivery.state == "delivered":
                print(f"told {delivery.target}", file=sys.stderr, flush=True)
            elif delivery.state == "sending":
                print(
                    f"telling {delivery.target}: sent by `tidegate run` on {self.data}",
                    file=sys.stderr,
                    flush=True,
                )
            else:
                print(
                    f"not yet told {delivery.target}: {delivery.last_error}; retried by "
                    f"`tidegate run --broker --data {self.data}` (tidegate notifications list)",
                    file=sys.stderr,
                    flush=True,
                )


def import_via_kafka(args: argparse.Namespace, settings: Settings) -> int:
    """`tidegate import PATH --account A --broker kafka://HOST:PORT`: produces the upload,
    waits for its final status and prints the same report as the embedded `import`; an
    account with notification targets is told (`_Telling`)."""
    return asyncio.run(_import(args, settings))
