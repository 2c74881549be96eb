"""The upload ledger in SQLite: unique filenames, history, status, feedback rows.

Shared by the embedded runtime (which also decides the uploads) and the Kafka connectors
(which record the statuses the workers publish), so both keep the same history.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import aiosqlite
import orjson

from connectors.ports import (
    CollectedRejection,
    DeadLetter,
    FileUpload,
    IngestUnavailable,
    Receipt,
    StorageFull,
    UploadView,
)
from streams.core.errors import Rejection
from streams.core.feedback import RejectedRow, feedback_file
from streams.core.records import Dialect, SourceKind
from streams.core.status import REFUSED_KIND
from streams.core.timeparse import to_iso
from streams.core.upload import UploadRow
from streams.core.upload import duplicate_filename as refuse_duplicate
from streams.embedded.datadir import is_disk_full
from streams.embedded.schema import connect

log = logging.getLogger("tidegate.ledger")

_VIEW_COLUMNS = (
    "upload_id, account, filename, kind, dialect, status, received_at, finished_at, trigger, "
    "counts, warnings, fatal"
)


Progress = Callable[[str], tuple[int, int] | None]


def duplicate_filename(upload: FileUpload) -> Rejection:
    return refuse_duplicate(upload.account, upload.filename)


def _rejected_row(r: Any) -> RejectedRow:
    return RejectedRow(r[0], r[1], r[2], r[3], r[4], tuple(orjson.loads(r[5])) if r[5] else None)


# How long a write waits for SQLite's write lock (the engine commits a batch in one
# transaction) before the ledger answers busy (HTTP 503): shorter than the HTTP API's
# submit timeout (30 s), so a long wait ends in the ledger's own answer, never in a
# cancellation half-way through a transaction.
WRITE_WAIT_MS = 20_000


class Ledger:
    """Two aiosqlite connections to the database: one writes, one reads.

    The writer runs one transaction at a time and waits for SQLite's write lock (the
    busy timeout). SQLite does not wait (no busy handler: SQLITE_BUSY or
    SQLITE_BUSY_SNAPSHOT at once) when the connection that asks for the lock holds a read
    snapshot, and a query on an aiosqlite connection holds one across awaits, from its
    first row until it is fetched to the end. So no query runs on the writer, and each
    query on the reader is fetched whole in one call: no read holds a snapshot between
    awaits, and none sees a transaction before it commits.
    """

    def __init__(self, path: Path, progress: Progress | None = None) -> None:
        self.path = path
        self.progress = progress
        self._db: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self.closed = False

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connect(str(self.path)).close()  # schema in place
        self._db = await aiosqlite.connect(self.path, isolation_level=None)
        await self._db.execute(f"PRAGMA busy_timeout={WRITE_WAIT_MS}")
        await self._db.execute("PRAGMA synchronous=FULL")  # an acknowledged API call is on disk
        self._reader = await aiosqlite.connect(self.path, isolation_level=None)
        await self._reader.execute(f"PRAGMA busy_timeout={WRITE_WAIT_MS}")
        await self._reader.execute("PRAGMA query_only=ON")

    async def close(self) -> None:
        self.closed = True
        for conn in (self._reader, self._db):
            if conn is not None:
                await conn.close()
        self._db = self._reader = None

    @property
    def db(self) -> aiosqlite.Connection:
        """The writing connection: for `transaction` only (see the class)."""
        assert self._db is not None, "open() the ledger first"
        return self._db

    async def _rows(self, query: str, args: Sequence[Any] = ()) -> list[Any]:
        """Every row of a query on the reading connection, fetched in one call."""
        assert self._reader is not None, "open() the ledger first"
        return list(await self._reader.execute_fetchall(query, args))

    async def _row(self, query: str, args: Sequence[Any] = ()) -> Any | None:
        rows = await self._rows(query, args)
        return rows[0] if rows else None

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction; a busy or failing database is a retriable IngestUnavailable,
        never a half-written submission.

        A caller that gives up (cancelled: the HTTP API's submit timeout) gets its
        cancellation with nothing stored while the COMMIT is not sent yet; once it is sent
        the transaction is stored and completes, so no caller answers 503 for a stored
        submission (``asyncio.wait_for`` returns the result of a task that completes)."""
        if self._db is None or self.closed:
            raise IngestUnavailable("the runtime is not running", retry_after=5)
        async with self._lock:
            db = self._db
            started = time.monotonic()
            begin = asyncio.ensure_future(db.execute("BEGIN IMMEDIATE"))
            try:
                await asyncio.shield(begin)
            except asyncio.CancelledError:
                # The BEGIN runs in aiosqlite's thread all the same: end the transaction it
                # may open before another caller gets the connection.
                with contextlib.suppress(sqlite3.Error):
                    await begin
                    await db.execute("ROLLBACK")
                raise
            except sqlite3.OperationalError as busy:
                log.warning(
                    "the ledger answered busy after waiting %.1f s for the write lock: %s (%s)",
                    time.monotonic() - started,
                    busy,
                    busy.sqlite_errorname,
                )
                raise IngestUnavailable(
                    f"the ledger is busy: {busy} ({busy.sqlite_errorname})", retry_after=1
                ) from busy
            try:
                yield db
                commit = asyncio.ensure_future(db.execute("COMMIT"))
                try:
                    await asyncio.shield(commit)
                except asyncio.CancelledError:
                    await commit  # sent: it is stored (or fails) whatever the caller does
            except sqlite3.OperationalError as failure:
                if db.in_transaction:
                    await db.execute("ROLLBACK")
                if is_disk_full(failure):
                    raise StorageFull(f"no space left for the ledger: {failure}") from failure
                raise IngestUnavailable(f"the ledger failed: {failure}", retry_after=1) from failure
            except BaseException:
                if db.in_transaction:
                    await db.execute("ROLLBACK")
                raise

    @staticmethod
    async def insert_upload(
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

    async def register_file(self, upload: FileUpload, upload_id: str) -> Receipt:
        """Records a file upload; a name the account already used is refused."""
        try:
            async with self.transaction() as db:
                await self.insert_upload(
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
            refused = duplicate_filename(upload)
            await self.record_refusal(upload, upload_id, refused)
            return Receipt(None, refused)
        return Receipt(upload_id)

    async def record_refusal(self, upload: FileUpload, upload_id: str, refused: Rejection) -> None:
        """Keeps a refused file in the history: status fail with its code, kind `refused`
        (outside the one-name-per-account rule, which holds for accepted files only)."""
        fatal = orjson.dumps({"code": refused.code.value, "message": refused.message}).decode()
        async with self.transaction() as db:
            await db.execute(
                "INSERT INTO uploads (upload_id, seq, account, filename, kind, dialect, path, "
                "trigger, status, received_at, finished_at, fatal) VALUES (?, "
                "(SELECT COALESCE(MAX(seq), 0) + 1 FROM uploads), ?, ?, ?, ?, NULL, ?, 'fail', ?, ?, ?)",
                (
                    upload_id,
                    upload.account,
                    upload.filename,
                    REFUSED_KIND,
                    upload.dialect.value if upload.dialect else None,
                    upload.trigger,
                    to_iso(upload.received_at),
                    to_iso(upload.received_at),
                    fatal,
                ),
            )

    async def unfinished(self) -> list[str]:
        rows = await self._rows(
            "SELECT upload_id FROM uploads WHERE status IN ('queued', 'processing') ORDER BY seq"
        )
        return [r[0] for r in rows]

    async def record_status(self, doc: dict[str, Any]) -> None:
        """Stores a status another process decided (the Kafka workers' status agent)."""
        async with self.transaction() as db:
            await db.execute(
                "UPDATE uploads SET status = ?, finished_at = ?, counts = ?, warnings = ?, "
                "fatal = ?, dialect = COALESCE(dialect, ?) WHERE upload_id = ?",
                (
                    doc["status"],
                    doc.get("finished_at"),
                    orjson.dumps(doc.get("counts") or {}).decode(),
                    orjson.dumps(doc.get("warnings") or []).decode(),
                    orjson.dumps(doc["fatal"]).decode() if doc.get("fatal") else None,
                    doc.get("dialect"),
                    doc["upload_id"],
                ),
            )

    async def file_row(self, upload_id: str) -> UploadRow | None:
        """A file upload as it was registered (the Kafka ingest produces it again after a
        restart)."""
        r = await self._row(
            "SELECT account, filename, dialect, path, trigger, received_at FROM uploads "
            "WHERE upload_id = ?",
            (upload_id,),
        )
        if r is None:
            return None
        return UploadRow(
            upload_id,
            r[0],
            r[1],
            SourceKind.FILE,
            Dialect(r[2]) if r[2] else None,
            r[3],
            None if r[4] is None else bool(r[4]),
            datetime.fromisoformat(r[5]),
        )

    async def mark_processing(self, upload_id: str, records: int) -> None:
        """Every record of the upload is handed on (produced); its decisions are to come."""
        async with self.transaction() as db:
            await db.execute(
                "UPDATE uploads SET status = 'processing', counts = ? WHERE upload_id = ?",
                (orjson.dumps({"records": records}).decode(), upload_id),
            )

    async def register_records(
        self,
        upload_id: str,
        account: str,
        name: str,
        kind: SourceKind,
        dialect: str | None,
        received_at: str,
    ) -> None:
        """Records an upload of API records (no file, triggering by default)."""
        async with self.transaction() as db:
            await self.insert_upload(
                db, upload_id, account, name, kind, dialect, None, True, received_at
            )

    def _view(self, r: Any) -> UploadView:
        counts = orjson.loads(r[9])
        progress = self.progress(r[0]) if self.progress else None
        read, decided = progress or (counts.get("records", 0), counts.get("records", 0))
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
            progress={"read": read, "decided": decided},
        )

    async def find_upload(self, account: str, filename: str) -> UploadView | None:
        """The file upload of that name in the account, if any (names are unique per account)."""
        r = await self._row(
            f"SELECT {_VIEW_COLUMNS} FROM uploads WHERE account = ? AND filename = ? AND kind = 'file'",
            (account, filename),
        )
        return self._view(r) if r else None

    async def list_uploads(self, account: str | None = None, limit: int = 100) -> list[UploadView]:
        query = f"SELECT {_VIEW_COLUMNS} FROM uploads"
        args: tuple[Any, ...] = ()
        if account is not None:
            query += " WHERE account = ?"
            args = (account,)
        query += " ORDER BY seq DESC LIMIT ?"
        return [self._view(r) for r in await self._rows(query, (*args, limit))]

    async def page_uploads(
        self,
        account: str | None,
        limit: int,
        *,
        before: int | None = None,
        status: str | None = None,
        name: str | None = None,
    ) -> tuple[list[UploadView], int | None]:
        """A page of the history, newest first, after the keyset cursor ``before`` (a seq);
        returns the views and the cursor of the next page (None on the last page).
        ``status`` "active" is every upload not final yet (queued or processing)."""
        where: list[str] = []
        args: list[Any] = []
        if account is not None:
            where.append("account = ?")
            args.append(account)
        if before is not None:
            where.append("seq < ?")
            args.append(before)
        if status == "active":  # in progress: not final yet
            where.append("status IN ('queued', 'processing')")
        elif status:
            where.append("status = ?")
            args.append(status)
        if name:
            where.append("instr(lower(filename), ?) > 0")
            args.append(name.lower())
        query = f"SELECT {_VIEW_COLUMNS}, seq FROM uploads"
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY seq DESC LIMIT ?"
        rows = await self._rows(query, (*args, limit + 1))
        more = len(rows) > limit
        rows = rows[:limit]
        return [self._view(r) for r in rows], (rows[-1][12] if more and rows else None)

    async def rejections(self, upload_id: str, limit: int = 500) -> list[RejectedRow]:
        """The upload's rejected lines in file and line order (the first ``limit``)."""
        rows = await self._rows(
            "SELECT file, line, code, message, raw, header FROM rejections "
            "WHERE upload_id = ? ORDER BY file, line LIMIT ?",
            (upload_id, limit),
        )
        return [_rejected_row(r) for r in rows]

    async def dead_letters(
        self, account: str, *, code: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]:
        """The account's rejected lines (each one is a dead letter), newest upload first."""
        query = (
            "SELECT r.upload_id, u.filename, r.file, r.line, r.code, r.message, r.raw, "
            "u.received_at FROM uploads u JOIN rejections r ON r.upload_id = u.upload_id "
            "WHERE u.account = ?"
        )
        args: list[Any] = [account]
        if code:
            query += " AND r.code = ?"
            args.append(code)
        query += " ORDER BY u.seq DESC, r.file, r.line LIMIT ? OFFSET ?"
        return [DeadLetter(*r) for r in await self._rows(query, (*args, limit, offset))]

    async def rejection(self, upload_id: str, file: str, line: int) -> tuple[str, str] | None:
        """(code, message) of a rejected line, or None when that line was not rejected."""
        r = await self._row(
            "SELECT code, message FROM rejections WHERE upload_id = ? AND file = ? AND line = ?",
            (upload_id, file, line),
        )
        return (r[0], r[1]) if r else None

    async def rejection_count(self, upload_id: str) -> int:
        r = await self._row("SELECT COUNT(*) FROM rejections WHERE upload_id = ?", (upload_id,))
        return int(r[0]) if r else 0

    async def collected_positions(self, source: str) -> dict[int, int]:
        """How far rejected rows were collected from `source` (a dead-letter topic): the
        next offset to read, by partition."""
        prefix = f"collected:{source}:"
        rows = await self._rows(
            "SELECT name, offset FROM sinks WHERE substr(name, 1, ?) = ?", (len(prefix), prefix)
        )
        return {int(r[0][len(prefix) :]): int(r[1]) for r in rows}

    async def collect_rejections(
        self, rows: Sequence[CollectedRejection], source: str, positions: Mapping[int, int]
    ) -> None:
        """Rejected rows decided elsewhere, kept for this ledger's uploads only, and the
        position read up to in `source`, in one transaction: none lost or kept twice."""
        async with self.transaction() as db:
            await db.executemany(
                "INSERT OR REPLACE INTO rejections SELECT ?, ?, ?, ?, ?, ?, ? "
                "WHERE EXISTS (SELECT 1 FROM uploads WHERE upload_id = ?)",
                [(*row, row[0]) for row in rows],
            )
            await db.executemany(
                "INSERT OR REPLACE INTO sinks VALUES (?, ?)",
                [(f"collected:{source}:{p}", offset) for p, offset in positions.items()],
            )

    async def dead_letter_codes(self, account: str) -> dict[str, int]:
        """How many dead letters the account has, by error code."""
        rows = await self._rows(
            "SELECT r.code, COUNT(*) FROM uploads u JOIN rejections r "
            "ON r.upload_id = u.upload_id WHERE u.account = ? GROUP BY r.code ORDER BY r.code",
            (account,),
        )
        return {r[0]: r[1] for r in rows}

    async def get_upload(self, upload_id: str) -> UploadView | None:
        r = await self._row(
            f"SELECT {_VIEW_COLUMNS} FROM uploads WHERE upload_id = ?", (upload_id,)
        )
        return self._view(r) if r else None

    async def feedback(self, upload_id: str) -> tuple[str, bytes] | None:
        view = await self.get_upload(upload_id)
        if view is None:
            return None
        rows = [
            _rejected_row(r)
            for r in await self._rows(
                "SELECT file, line, code, message, raw, header FROM rejections "
                "WHERE upload_id = ? ORDER BY file, line",
                (upload_id,),
            )
        ]
        if not rows:
            return None  # nothing was rejected: no feedback file (HTTP 404)
        name, lines = feedback_file(rows, view.filename)
        return name, b"".join(lines)
