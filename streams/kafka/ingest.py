"""The connectors' Ingest port on Kafka (`run --broker`): connectors publish, workers decide.

`KafkaIngest`: file uploads are read with the same streaming readers (handed in) and
produced to `tidegate.events.raw` (acks=all), API records are produced before the HTTP
answer, and the final statuses the workers publish on `tidegate.uploads.status` are
recorded in a ledger of uploads (unique filenames, history): the command line hands it the
embedded runtime's SQLite ledger under the connector process's data directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

import orjson

from connectors.ports import (
    DeadLetter,
    FileUpload,
    IngestUnavailable,
    LineVerdict,
    Receipt,
    UploadLedger,
    UploadView,
)
from streams.core.feedback import RejectedRow
from streams.core.records import RawRecord, SourceKind
from streams.core.status import FINAL_STATUSES as FINAL
from streams.core.timeparse import to_iso
from streams.core.upload import FileReader, UploadRow, duplicate_filename
from streams.kafka import topics as T
from streams.kafka.producer import find_claim, new_producer, produce_upload, write_claim
from streams.kafka.routing import arrival_partition
from streams.kafka.topics import Topics
from streams.kafka.wire import encode_raw

log = logging.getLogger("tidegate.kafka")
CLAIM_TIMEOUT = 10.0  # seconds


class KafkaIngest:
    """The Ingest port over Kafka, with a local ledger for names, history and waiting."""

    def __init__(
        self,
        bootstrap: str,
        topics: Topics,
        ledger: UploadLedger,
        read: FileReader,
        partitions: int = T.DEFAULT_PARTITIONS,
    ) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.partitions = partitions
        self.ledger = ledger
        self.read = read
        self._producer: Any = None
        self._done: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._status_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await T.ensure_topics(self.bootstrap, self.topics, self.partitions)
        await self.ledger.open()
        self._producer = new_producer(self.bootstrap)
        await self._producer.start()
        self._status_task = asyncio.create_task(self._follow_statuses(), name="tidegate-status")
        # A file whose records were not all produced before a crash is produced again: event
        # ids are deterministic, so the workers' redelivery suppression drops the repeats.
        for view in await self.ledger.list_uploads(None, 10_000):
            if view.status == "queued" and view.kind == SourceKind.FILE.value:
                row = await self.ledger.file_row(view.upload_id)
                if row is not None:
                    self._spawn(self._produce(row))

    async def stop(self) -> None:
        # The connectors stop first (`serve_connectors`); uploads still being produced then
        # finish, and record that they did, before the ledger closes.
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task
        self.ledger.closed = True
        if self._status_task is not None:
            self._status_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._status_task
        if self._producer is not None:
            await self._producer.stop()
        await self.ledger.close()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _produce(self, row: UploadRow) -> None:
        try:
            announcement = await produce_upload(self._producer, self.topics, row, self.read(row))
            await self.ledger.mark_processing(row.upload_id, announcement["total"])
        except Exception:
            log.exception(
                "producing upload %s failed; it is produced again on restart", row.upload_id
            )

    async def _follow_statuses(self) -> None:
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(
            self.topics.status,
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            group_id=None,
        )
        await consumer.start()
        try:
            async for record in consumer:
                if not record.value:
                    continue
                doc = orjson.loads(record.value)
                if doc.get("status") not in FINAL:
                    continue
                upload_id = doc.get("upload_id")
                view = await self.ledger.get_upload(upload_id) if upload_id else None
                if view is None or view.status in FINAL:
                    continue
                await self.ledger.record_status(doc)
                self._done.setdefault(upload_id, asyncio.Event()).set()
        finally:
            await consumer.stop()

    # ------------------------------------------------------------------ Ingest port

    async def submit_file(self, upload: FileUpload) -> Receipt:
        if await self._claimed_elsewhere(upload):
            return Receipt(None, duplicate_filename(upload.account, upload.filename))
        upload_id = str(uuid.uuid4())
        receipt = await self.ledger.register_file(upload, upload_id)
        if receipt.upload_id is None:
            return receipt
        row = UploadRow(
            upload_id,
            upload.account,
            upload.filename,
            upload.kind,
            upload.dialect,
            str(upload.path),
            upload.trigger,
            upload.received_at,
        )
        # the cluster's record of the name, which `tidegate import --broker` checks (this
        # connector refuses names by its own ledger, so the claim is best effort)
        try:
            await asyncio.wait_for(write_claim(self._producer, self.topics, row), CLAIM_TIMEOUT)
        except Exception:
            log.warning(
                "could not record the name of upload %s on %s", upload_id, self.topics.names
            )
        self._spawn(self._produce(row))
        return receipt

    async def _claimed_elsewhere(self, upload: FileUpload) -> bool:
        """Whether the cluster's record of names holds the account's filename for an upload
        this connector did not make (`tidegate import --broker`, or another connector
        process). Best effort like the claim itself: unreadable means no."""
        try:
            partitions = len(await self._producer.partitions_for(self.topics.names))
            claim = await asyncio.wait_for(
                find_claim(
                    self.bootstrap, self.topics, upload.account, upload.filename, partitions
                ),
                CLAIM_TIMEOUT,
            )
        except Exception:
            log.warning("could not read the names on %s; only the ledger checks", self.topics.names)
            return False
        # A claim of one of ours is left to the ledger, whose refusal a recovered staging
        # claim reads as "it was ours" (connectors/staging.py).
        return claim is not None and await self.ledger.get_upload(claim["upload_id"]) is None

    async def submit_records(
        self,
        account: str,
        name: str,
        records: list[RawRecord],
        *,
        kind: SourceKind = SourceKind.API,
    ) -> Receipt:
        upload_id = records[0].source.upload_id if records else str(uuid.uuid4())
        received_at = records[0].received_at if records else None
        dialect = records[0].source.dialect.value if records else None
        await self.ledger.register_records(
            upload_id, account, name, kind, dialect, to_iso(received_at) if received_at else ""
        )
        key = account.encode()
        try:
            partitions = await T.raw_partitions(self._producer, self.topics)
            sends = [
                await self._producer.send(
                    self.topics.raw,
                    encode_raw(raw),
                    key=key,
                    partition=arrival_partition(raw, partitions),
                )
                for raw in records
            ]
            await asyncio.gather(*sends)  # acks=all: on the in-sync replicas before we answer
            announcement: dict[str, Any] = {
                "type": "announce",
                "upload_id": upload_id,
                "account": account,
                "filename": name,
                "kind": kind.value,
                "dialect": dialect,
                "trigger": True,
                "total": len(records),
                "received_at": to_iso(received_at) if received_at else None,
                "warnings": [],
                "failed_members": 0,
                "fatal": None,
            }
            await self._producer.send_and_wait(
                self.topics.announce, orjson.dumps(announcement), key=key
            )
        except Exception as error:  # the broker is unreachable or refused: the client retries
            raise IngestUnavailable(f"Kafka did not acknowledge the records: {error}", 5) from error
        return Receipt(upload_id)

    async def wait(self, upload_id: str, timeout: float | None = None) -> UploadView:
        view = await self.ledger.get_upload(upload_id)
        if view is None:
            raise KeyError(upload_id)
        if view.status not in FINAL:
            await asyncio.wait_for(
                self._done.setdefault(upload_id, asyncio.Event()).wait(), timeout
            )
            view = await self.ledger.get_upload(upload_id)
            assert view is not None
        return view

    async def list_uploads(self, account: str | None = None, limit: int = 100) -> list[UploadView]:
        return await self.ledger.list_uploads(account, limit)

    async def get_upload(self, upload_id: str) -> UploadView | None:
        return await self.ledger.get_upload(upload_id)

    async def page_uploads(
        self,
        account: str | None,
        limit: int,
        *,
        before: int | None = None,
        status: str | None = None,
        name: str | None = None,
    ) -> tuple[list[UploadView], int | None]:
        return await self.ledger.page_uploads(
            account, limit, before=before, status=status, name=name
        )

    async def rejections(self, upload_id: str, limit: int = 500) -> list[RejectedRow]:
        return await self.ledger.rejections(upload_id, limit)

    async def dead_letters(
        self, account: str, *, code: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]:
        return await self.ledger.dead_letters(account, code=code, limit=limit, offset=offset)

    async def dead_letter_codes(self, account: str) -> dict[str, int]:
        return await self.ledger.dead_letter_codes(account)

    async def explain_line(self, upload_id: str, file: str, line: int) -> LineVerdict | None:
        # The outcomes are on the Kafka topics, which the connectors do not index.
        if await self.ledger.get_upload(upload_id) is None:
            return None
        return LineVerdict("unknown", None, "not available with the Kafka runtime", False, None)

    async def feedback(self, upload_id: str) -> tuple[str, bytes] | None:
        # Rejected rows are on tidegate.events.deadletter (with the original line); the
        # connector's ledger does not collect them yet, so there is no feedback file here.
        return None
