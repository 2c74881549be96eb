"""The embedded runtime as an asyncio service: the Ingest port over the engine and the ledger."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from connectors.ports import (
    FileUpload,
    LedgerHistory,
    LineVerdict,
    Receipt,
    StorageFull,
    UploadView,
)
from streams.core.records import RawRecord, SourceKind
from streams.core.status import FINAL_STATUSES as FINAL
from streams.core.timeparse import from_iso, to_iso
from streams.core.upload import FileReader
from streams.embedded.datadir import DB_NAME, is_disk_full
from streams.embedded.engine import Clock, Engine, SettingsFor, utcnow
from streams.embedded.explain import explain_accepted
from streams.embedded.ledger import Ledger

log = logging.getLogger("tidegate.embedded")


class EmbeddedRuntime(LedgerHistory):
    """One process, no broker: uploads are queued in SQLite and decided by one engine thread."""

    ledger: Ledger  # the SQLite ledger itself: the runtime writes uploads through it

    def __init__(
        self,
        data_dir: Path,
        settings_for: SettingsFor,
        file_reader: FileReader,
        *,
        clock: Clock = utcnow,
        batch_size: int = 2000,
        fsync: bool = False,
        full_retry_seconds: float = 5.0,
    ) -> None:
        self.data_dir = data_dir
        self.clock = clock
        self._engine_args = (settings_for, file_reader, batch_size, fsync)
        self._engine: Engine | None = None
        self.ledger = Ledger(data_dir / DB_NAME, progress=self._progress)
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._done: dict[str, asyncio.Event] = {}
        self._worker: asyncio.Task[None] | None = None
        self.on_finished: list[Callable[[UploadView], Any]] = []
        self.failures: dict[str, bool] = {}
        self._processing: asyncio.Future[str] | None = None
        # Why the data directory is full, while it is: submissions are refused (HTTP 507)
        # and the upload being decided is retried every `full_retry_seconds`.
        self.storage_full: str | None = None
        self.full_retry_seconds = full_retry_seconds

    @property
    def engine(self) -> Engine:
        assert self._engine is not None, "start() the runtime first"
        return self._engine

    @property
    def outputs_dir(self) -> Path:
        return self.data_dir / "out"

    def _progress(self, upload_id: str) -> tuple[int, int] | None:
        progress = self._engine.progress.get(upload_id) if self._engine else None
        return (progress.read, progress.decided) if progress else None

    async def open_ledger(self) -> None:
        """Read access to the ledger only (history commands beside a running `tidegate run`)."""
        await self.ledger.open()

    async def close_ledger(self) -> None:
        await self.ledger.close()

    async def start(self) -> None:
        settings_for, file_reader, batch_size, fsync = self._engine_args
        self._engine = await asyncio.to_thread(
            Engine, self.data_dir, settings_for, file_reader, batch_size=batch_size, fsync=fsync
        )
        await self.ledger.open()
        for upload_id in await self.ledger.unfinished():
            self._enqueue(upload_id)
        self._worker = asyncio.create_task(self._run(), name="tidegate-engine")

    async def stop(self) -> None:
        self.ledger.closed = True  # refuse new submissions (503) while stopping
        if self._engine is not None:
            self._engine.request_stop()
        if self._processing is not None and not self._processing.done():
            # The engine thread stops after its current batch commits; wait for it rather
            # than closing its connection under it.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._processing)
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        await self.ledger.close()
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    def _enqueue(self, upload_id: str) -> None:
        self._done.setdefault(upload_id, asyncio.Event())
        self._queue.put_nowait(upload_id)

    async def _run(self) -> None:
        while True:
            upload_id = await self._queue.get()
            # The engine owns its own SQLite connection and runs off the event loop, so HTTP
            # and SFTP stay responsive during a long import.
            try:
                if await self._process_until_space(upload_id) == "interrupted":
                    return  # stopping: the upload resumes from its last batch on restart
            except Exception:
                # A bug or an infrastructure failure (disk full, corrupt database): the upload
                # stays 'processing' and resumes from its last committed batch on restart.
                log.exception("processing upload %s failed; it resumes on restart", upload_id)
                self.failures[upload_id] = True
            self._done.setdefault(upload_id, asyncio.Event()).set()
            view = await self.get_upload(upload_id)
            for callback in self.on_finished:
                if view is not None:
                    callback(view)

    async def _process_until_space(self, upload_id: str) -> str:
        """Processes the upload; on a full disk, waits and resumes it from its last
        committed batch (the engine rolled back and cut the outputs back) until it ends."""
        while True:
            self._processing = asyncio.ensure_future(
                asyncio.to_thread(self.engine.process, upload_id, self.clock)
            )
            try:
                status = await self._processing
            except Exception as error:
                if not is_disk_full(error):
                    raise
                if self.storage_full is None:
                    log.error(
                        "the data directory %s is full (%s): upload %s is paused at its last "
                        "committed batch and new uploads are refused; it resumes once space "
                        "is freed",
                        self.data_dir,
                        error,
                        upload_id,
                    )
                self.storage_full = f"no space left in the data directory: {error}"
                await asyncio.sleep(self.full_retry_seconds)
                continue
            if self.storage_full is not None:
                log.info("space in %s again: upload %s resumed", self.data_dir, upload_id)
                self.storage_full = None
            return status

    def _refuse_when_full(self) -> None:
        if self.storage_full is not None:
            raise StorageFull(self.storage_full)

    # ------------------------------------------------------------------ Ingest port

    async def submit_file(self, upload: FileUpload) -> Receipt:
        self._refuse_when_full()
        receipt = await self.ledger.register_file(upload, str(uuid.uuid4()))
        if receipt.upload_id is not None:
            self._enqueue(receipt.upload_id)
        return receipt

    async def submit_records(
        self,
        account: str,
        name: str,
        records: list[RawRecord],
        *,
        kind: SourceKind = SourceKind.API,
    ) -> Receipt:
        self._refuse_when_full()
        upload_id = records[0].source.upload_id if records else str(uuid.uuid4())
        received_at = records[0].received_at if records else self.clock()
        rows = [
            (
                upload_id,
                raw.source.line,
                orjson.dumps(
                    {
                        "dialect": raw.source.dialect.value,
                        "received_at": to_iso(raw.received_at),
                        "payload": raw.payload.decode("utf-8", "surrogateescape"),
                        "path_identifier": raw.path_identifier,
                        "trigger": raw.trigger,
                    }
                ),
            )
            for raw in records
        ]
        dialect = records[0].source.dialect.value if records else None
        async with self.ledger.transaction() as db:
            await self.ledger.insert_upload(
                db, upload_id, account, name, kind, dialect, None, True, to_iso(received_at)
            )
            await db.executemany("INSERT INTO inbox VALUES (?, ?, ?)", rows)
        self._enqueue(upload_id)
        return Receipt(upload_id)

    async def wait(self, upload_id: str, timeout: float | None = None) -> UploadView:
        view = await self.get_upload(upload_id)
        if view is None:
            raise KeyError(upload_id)
        if view.status not in FINAL:
            event = self._done.setdefault(upload_id, asyncio.Event())
            await asyncio.wait_for(event.wait(), timeout)
            view = await self.get_upload(upload_id)
            assert view is not None
            if upload_id in self.failures:
                raise RuntimeError(f"processing upload {upload_id} failed; see the log")
        return view

    async def find_upload(self, account: str, filename: str) -> UploadView | None:
        return await self.ledger.find_upload(account, filename)

    async def explain_line(self, upload_id: str, file: str, line: int) -> LineVerdict | None:
        view = await self.ledger.get_upload(upload_id)
        if view is None or line < 1:
            return None
        rejected = await self.ledger.rejection(upload_id, file, line)
        if rejected is not None:
            code, message = rejected
            return LineVerdict("rejected", code, message, False, "a rejected line never triggers")
        if view.status not in FINAL:
            return LineVerdict("unknown", None, "the upload is still being decided", False, None)
        decided_at = from_iso(view.finished_at or "") or self.clock()
        settings_for = self._engine_args[0]
        found = await asyncio.to_thread(
            explain_accepted,
            self.outputs_dir / "accepted.jsonl",
            upload_id,
            file,
            line,
            decided_at,
            settings_for(view.account),
        )
        if found is not None:
            return found
        # Every record has exactly one outcome: a line of the upload that was neither
        # rejected nor accepted was a duplicate. A line beyond the records read is no line.
        if line > int(view.counts.get("records", 0) or 0):
            return None
        return LineVerdict(
            "duplicate", None, "a duplicate of a record already accepted", False,
            "a duplicate never triggers",
        )  # fmt: skip
