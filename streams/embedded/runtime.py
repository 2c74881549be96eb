"""The embedded runtime as an asyncio service: the Ingest port over the engine and the ledger."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiosqlite
import orjson

from connectors.ports import FileUpload, IngestUnavailable, Receipt, UploadView
from streams.core.errors import ErrorCode, Rejection, Stage
from streams.core.feedback import RejectedRow, feedback_file
from streams.core.records import RawRecord, SourceKind
from streams.core.timeparse import to_iso
from streams.embedded.engine import DB_NAME, Clock, Engine, FileReader, SettingsFor, utcnow
from streams.embedded.schema import connect

log = logging.getLogger("tidegate.embedded")

FINAL = frozenset({"success", "partial", "warning", "fail"})

_VIEW_COLUMNS = (
    "upload_id, account, filename, kind, dialect, status, received_at, finished_at, trigger, "
    "counts, warnings, fatal"
)


class EmbeddedRuntime:
    """One process, no broker: uploads are queued in SQLite and decided by one engine thread."""

    def __init__(
        self,
        data_dir: Path,
        settings_for: SettingsFor,
        file_reader: FileReader,
        *,
        clock: Clock = utcnow,
        batch_size: int = 2000,
        fsync: bool = False,
    ) -> None:
        self.data_dir = data_dir
        self.clock = clock
        self._engine_args = (settings_for, file_reader, batch_size, fsync)
        self._engine: Engine | None = None
        self._db: aiosqlite.Connection | None = None
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._done: dict[str, asyncio.Event] = {}
        self._worker: asyncio.Task[None] | None = None
        self.on_finished: list[Callable[[UploadView], Any]] = []
        self.failures: dict[str, bool] = {}
        # One aiosqlite connection serves every submission: transactions on it must not
        # interleave when several HTTP requests submit at once.
        self._write_lock = asyncio.Lock()
        self._processing: asyncio.Future[str] | None = None
        self._stopping = False

    @property
    def engine(self) -> Engine:
        assert self._engine is not None, "start() the runtime first"
        return self._engine

    @property
    def outputs_dir(self) -> Path:
        return self.data_dir / "out"

    async def open_ledger(self) -> None:
        """Read access to the ledger only (history commands beside a running `tidegate run`)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        connect(str(self.data_dir / DB_NAME)).close()  # schema in place
        self._db = await aiosqlite.connect(self.data_dir / DB_NAME, isolation_level=None)
        await self._db.execute("PRAGMA busy_timeout=30000")
        await self._db.execute("PRAGMA synchronous=FULL")  # an acknowledged API call is on disk

    async def close_ledger(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def start(self) -> None:
        settings_for, file_reader, batch_size, fsync = self._engine_args
        self._engine = await asyncio.to_thread(
            Engine, self.data_dir, settings_for, file_reader, batch_size=batch_size, fsync=fsync
        )
        await self.open_ledger()
        assert self._db is not None
        async with self._db.execute(
            "SELECT upload_id FROM uploads WHERE status IN ('queued', 'processing') ORDER BY seq"
        ) as cursor:
            for (upload_id,) in await cursor.fetchall():
                self._enqueue(upload_id)
        self._worker = asyncio.create_task(self._run(), name="tidegate-engine")

    async def stop(self) -> None:
        self._stopping = True
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
        await self.close_ledger()
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
                self._processing = asyncio.ensure_future(
                    asyncio.to_thread(self.engine.process, upload_id, self.clock)
                )
                if await self._processing == "interrupted":
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

    # ------------------------------------------------------------------ Ingest port

    async def _insert_upload(
        self,
        db: aiosqlite.Connection,
        upload_id: str,
        account: str,
        filename: str,
        kind: SourceKind,
        dialect: str | None,
        path: str | None,
        trigger: bool | None,
        received_at: str,
    ) -> None:
        await db.execute(
            "INSERT INTO uploads (upload_id, seq, account, filename, kind, dialect, path, trigger, "
            "status, received_at) VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM uploads), "
            "?, ?, ?, ?, ?, ?, 'queued', ?)",
            (upload_id, account, filename, kind.value, dialect, path, trigger, received_at),
        )

    async def submit_file(self, upload: FileUpload) -> Receipt:
        upload_id = str(uuid.uuid4())
        try:
            async with self._transaction() as db:
                await self._insert_upload(
                    db,
                    upload_id,
                    upload.account,
                    upload.filename,
                    upload.kind,
                    upload.dialect.value if upload.dialect else None,
                    str(upload.path),
                    upload.trigger,
                    to_iso(upload.received_at),
                )
        except sqlite3.IntegrityError:
            return Receipt(
                None,
                Rejection(
                    ErrorCode.DUPLICATE_FILENAME,
                    f"File {upload.filename} was already uploaded to account {upload.account}.",
                    Stage.UPLOAD,
                ),
            )
        self._enqueue(upload_id)
        return Receipt(upload_id)

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction at a time on the shared connection; a busy or failing
        database is a retriable IngestUnavailable, never a half-written submission."""
        if self._db is None or self._stopping:
            raise IngestUnavailable("the runtime is not running", retry_after=5)
        async with self._write_lock:
            db = self._db
            try:
                await db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as busy:
                raise IngestUnavailable(f"the ledger is busy: {busy}", retry_after=1) from busy
            try:
                yield db
                await db.execute("COMMIT")
            except sqlite3.IntegrityError:
                await db.execute("ROLLBACK")
                raise
            except sqlite3.OperationalError as failure:
                await db.execute("ROLLBACK")
                raise IngestUnavailable(f"the ledger failed: {failure}", retry_after=1) from failure
            except BaseException:
                await db.execute("ROLLBACK")
                raise

    async def submit_records(
        self,
        account: str,
        name: str,
        records: list[RawRecord],
        *,
        kind: SourceKind = SourceKind.API,
    ) -> Receipt:
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
        async with self._transaction() as db:
            await self._insert_upload(
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
        """The file upload of that name in the account, if any (names are unique per account)."""
        assert self._db is not None
        async with self._db.execute(
            f"SELECT {_VIEW_COLUMNS} FROM uploads WHERE account = ? AND filename = ? AND kind = 'file'",
            (account, filename),
        ) as cursor:
            r = await cursor.fetchone()
        return self._view(r) if r else None

    def _view(self, r: Any) -> UploadView:
        progress = self._engine.progress.get(r[0]) if self._engine else None
        counts = orjson.loads(r[9])
        return UploadView(
            upload_id=r[0],
            account=r[1],
            filename=r[2],
            kind=r[3],
            dialect=r[4],
            status=r[5],
            received_at=r[6],
            finished_at=r[7],
            trigger=bool(r[8]),
            counts=counts,
            warnings=orjson.loads(r[10]),
            fatal=orjson.loads(r[11]) if r[11] else None,
            progress={
                "read": progress.read if progress else counts.get("records", 0),
                "decided": progress.decided if progress else counts.get("records", 0),
            },
        )

    async def list_uploads(self, account: str | None = None, limit: int = 100) -> list[UploadView]:
        assert self._db is not None
        query = f"SELECT {_VIEW_COLUMNS} FROM uploads"
        args: tuple[Any, ...] = ()
        if account is not None:
            query += " WHERE account = ?"
            args = (account,)
        query += " ORDER BY seq DESC LIMIT ?"
        async with self._db.execute(query, (*args, limit)) as cursor:
            return [self._view(r) for r in await cursor.fetchall()]

    async def get_upload(self, upload_id: str) -> UploadView | None:
        assert self._db is not None
        async with self._db.execute(
            f"SELECT {_VIEW_COLUMNS} FROM uploads WHERE upload_id = ?", (upload_id,)
        ) as cursor:
            r = await cursor.fetchone()
        return self._view(r) if r else None

    async def feedback(self, upload_id: str) -> tuple[str, bytes] | None:
        assert self._db is not None
        view = await self.get_upload(upload_id)
        if view is None:
            return None
        async with self._db.execute(
            "SELECT file, line, code, message, raw, header FROM rejections "
            "WHERE upload_id = ? ORDER BY file, line",
            (upload_id,),
        ) as cursor:
            rows = [
                RejectedRow(
                    r[0], r[1], r[2], r[3], r[4], tuple(orjson.loads(r[5])) if r[5] else None
                )
                for r in await cursor.fetchall()
            ]
        name, lines = feedback_file(rows, view.filename)
        return name, b"".join(lines)
