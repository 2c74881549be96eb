"""The connectors' Ingest port on Kafka (`run --broker`): connectors publish, workers decide.

`KafkaIngest`: file uploads are read with the same streaming readers (handed in) and
produced to `tidegate.events.raw` (acks=all), API records are produced before the HTTP
answer, and the final statuses the workers publish on `tidegate.uploads.status` are
recorded in a ledger of uploads (unique filenames, history): the command line hands it the
embedded runtime's SQLite ledger under the connector process's data directory. The
rejected rows of its uploads are collected there from the dead-letter topic, so the
feedback file (HTTP API, console, the notifications' emails) exists on this runtime too.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import uuid
from typing import Any

import orjson

from connectors.ports import (
    CollectedRejection,
    FileUpload,
    IngestUnavailable,
    LedgerHistory,
    LineVerdict,
    Receipt,
    UploadLedger,
    UploadView,
)
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
# A final status with rejected records is recorded once its rejected rows are in the ledger
# (they were committed on the dead-letter topic before the workers published the status,
# so this is the follower catching up), or after this many seconds without them all.
REJECTIONS_WAIT = 30.0


def rejection_of(value: bytes, headers: list[tuple[str, bytes]]) -> CollectedRejection | None:
    """A dead letter as a rejected row of an upload (the ledger's columns); None when it
    names no line of an upload. A Vero CSV row's dead letter carries its member's header
    (core/feedback.py `feedback_header`), so its feedback is CSV, as on the embedded
    runtime."""
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    source = doc.get("source") or (doc.get("record") or {}).get("source") or {}
    upload_id = source.get("upload_id") or dict(headers).get("upload_id", b"").decode()
    if not upload_id or not isinstance(source.get("line"), int):
        return None
    text = str(doc.get("raw") or "")
    raw = base64.b64decode(text) if doc.get("raw_encoding") == "base64" else text.encode()
    names = doc.get("header")
    header = orjson.dumps(names).decode() if isinstance(names, list) else None
    file = source.get("member") or source.get("file") or ""
    code, message = str(doc.get("code") or ""), str(doc.get("message") or "")
    return (upload_id, file, source["line"], code, message, raw, header)


class KafkaIngest(LedgerHistory):
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
        self._deadletter_task: asyncio.Task[None] | None = None
        self._finishing: dict[str, asyncio.Task[None]] = {}  # statuses awaiting their rows
        self._rows_arrived = asyncio.Event()

    async def start(self, *, resume: bool = True) -> None:
        """`resume`: produce again the files of the ledger left queued (the connector
        process, `run --broker`); False for a process that follows its own upload only
        (`tidegate import --broker` beside it)."""
        await T.ensure_topics(self.bootstrap, self.topics, self.partitions)
        await self.ledger.open()
        self._producer = new_producer(self.bootstrap)
        await self._producer.start()
        self._deadletter_task = asyncio.create_task(
            self._keep_following_deadletters(), name="tidegate-deadletters"
        )
        self._status_task = asyncio.create_task(self._follow_statuses(), name="tidegate-status")
        # A file whose records were not all produced before a crash is produced again: event
        # ids are deterministic, so the workers' redelivery suppression drops the repeats.
        for view in await self.ledger.list_uploads(None, 10_000) if resume else []:
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
        # a status still waiting for its rows is read again from the topic at the next start
        followers = [self._status_task, self._deadletter_task, *self._finishing.values()]
        for follower in followers:
            if follower is not None:
                follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follower
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

    def _reader(self, *topics: str) -> Any:
        """A consumer of committed records from the start, without a group (this process
        keeps its own position: the ledger)."""
        from aiokafka import AIOKafkaConsumer

        return AIOKafkaConsumer(
            *topics,
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            group_id=None,
        )

    async def _follow_statuses(self) -> None:
        consumer = self._reader(self.topics.status)
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
                if view is None or view.status in FINAL or upload_id in self._finishing:
                    continue
                if int((doc.get("counts") or {}).get("rejected", 0) or 0):
                    self._finishing[upload_id] = asyncio.create_task(self._finish_with_rows(doc))
                    continue
                await self._finish(doc)
        finally:
            await consumer.stop()

    async def _finish(self, doc: dict[str, Any]) -> None:
        await self.ledger.record_status(doc)
        self._done.setdefault(doc["upload_id"], asyncio.Event()).set()

    async def _finish_with_rows(self, doc: dict[str, Any]) -> None:
        """The final status once the ledger holds the upload's rejected rows, so that whoever
        sees it final (a waiting import, the console, the notifier) finds its feedback."""
        upload_id, wanted = doc["upload_id"], int(doc["counts"]["rejected"])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REJECTIONS_WAIT
        while True:
            self._rows_arrived.clear()
            have = await self.ledger.rejection_count(upload_id)
            left = deadline - loop.time()
            if have >= wanted or left <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._rows_arrived.wait(), min(left, 1.0))
        if have < wanted:
            log.warning(
                "upload %s: %d of its %d rejected rows on %s; recorded final without the rest",
                *(upload_id, have, wanted, self.topics.deadletter),
            )
        try:
            await self._finish(doc)
        finally:
            self._finishing.pop(upload_id, None)

    async def _keep_following_deadletters(self) -> None:
        # a broker that goes away must not end the collection for good: the statuses with
        # rejects would each wait REJECTIONS_WAIT, and their feedback would stay empty
        while True:
            try:
                await self._follow_deadletters()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reading %s failed; again in 5 s", self.topics.deadletter)
                await asyncio.sleep(5)

    async def _follow_deadletters(self) -> None:
        """The rejected rows of this connector's uploads, from the dead-letter topic into the
        ledger, with the position read up to in the same transaction (no row is lost or
        collected twice across restarts)."""
        from aiokafka import TopicPartition

        topic = self.topics.deadletter
        consumer = self._reader()
        await consumer.start()
        try:
            numbers = sorted(await self._producer.partitions_for(topic))
            partitions = [TopicPartition(topic, n) for n in numbers]
            consumer.assign(partitions)
            known = await self.ledger.collected_positions(topic)
            for tp in partitions:
                if tp.partition in known:
                    consumer.seek(tp, known[tp.partition])
                else:
                    await consumer.seek_to_beginning(tp)
            while True:
                batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
                rows = [
                    found
                    for records in batches.values()
                    for record in records
                    if (found := rejection_of(record.value or b"", list(record.headers)))
                ]
                positions = {
                    tp.partition: records[-1].offset + 1
                    for tp, records in batches.items()
                    if records
                }
                if not positions:
                    continue
                await self.ledger.collect_rejections(rows, topic, positions)
                self._rows_arrived.set()
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

    async def explain_line(self, upload_id: str, file: str, line: int) -> LineVerdict | None:
        if await self.ledger.get_upload(upload_id) is None or line < 1:
            return None
        rejected = await self.ledger.rejection(upload_id, file, line)  # from the dead letters
        if rejected is not None:
            code, message = rejected
            return LineVerdict("rejected", code, message, False, "a rejected line never triggers")
        # The accepted outcomes are on the Kafka topics, which the connectors do not index.
        return LineVerdict("unknown", None, "not available with the Kafka runtime", False, None)
