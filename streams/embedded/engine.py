"""The embedded runtime's processing loop: raw records → core rules → outputs, one batch per transaction."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import orjson

from streams.core.decide import decide, decide_rejection, expire_state
from streams.core.errors import Rejection
from streams.core.normalize import normalize
from streams.core.outputs import DUMPS_OPTIONS, dump_event, dump_outcome
from streams.core.records import (
    Dialect,
    Outcome,
    OutcomeKind,
    RawRecord,
    Source,
    SourceKind,
    make_event_id,
)
from streams.core.settings import AccountSettings
from streams.core.status import UploadCounts, final_status
from streams.core.timeparse import to_iso
from streams.embedded.schema import connect
from streams.embedded.sinks import OutputFiles
from streams.embedded.store import SqliteStateStore

DB_NAME = "tidegate.db"
Clock = Callable[[], datetime]
SettingsFor = Callable[[str], AccountSettings]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class UploadRow:
    """The ledger row the engine needs to (re)open an upload."""

    upload_id: str
    account: str
    filename: str
    kind: SourceKind
    dialect: Dialect | None
    path: str | None
    trigger: bool | None
    received_at: datetime


@dataclass(slots=True, frozen=True)
class MemberFailure:
    """One member of an archive failed as a whole; the rest of the upload proceeds."""

    member: str
    rejection: Rejection


@dataclass(slots=True, frozen=True)
class PlanWarning:
    text: str


class FatalUpload(Exception):
    """The whole upload is refused (unsafe archive, bad manifest, unsupported format)."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(rejection.message)
        self.rejection = rejection


# A reader yields, in processing order: (member index, record), member failures, warnings.
Item = tuple[int, RawRecord] | MemberFailure | PlanWarning
FileReader = Callable[[UploadRow], Iterator[Item]]


@dataclass(slots=True)
class Progress:
    read: int = 0
    decided: int = 0
    done: bool = False


@dataclass(slots=True)
class _Batch:
    outcomes: list[tuple[Outcome, RawRecord]] = field(default_factory=list)
    rejections: list[tuple[Any, ...]] = field(default_factory=list)
    last_position: tuple[int, int] | None = None


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def counts_dict(counts: UploadCounts) -> dict[str, Any]:
    return {
        "records": counts.records,
        "accepted": counts.accepted,
        "duplicate": counts.duplicate,
        "rejected": counts.rejected,
        "triggered": counts.triggered,
        "by_code": dict(counts.by_code),
    }


def counts_from(data: dict[str, Any]) -> UploadCounts:
    counts = UploadCounts()
    for name in ("records", "accepted", "duplicate", "rejected", "triggered"):
        setattr(counts, name, int(data.get(name, 0)))
    counts.by_code.update(data.get("by_code", {}))
    return counts


class DataDirInUse(RuntimeError):
    """Another Tidegate process holds the data directory."""


def _lock_data_dir(data_dir: Path) -> TextIO:
    """One engine per data directory: a second would cut the other's outputs back."""
    handle = (data_dir / "engine.lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise DataDirInUse(
            f"{data_dir} is in use by {holder}; stop it or use another --data directory"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"tidegate pid {os.getpid()}")
    handle.flush()
    return handle


class Engine:
    """Synchronous and single-threaded: the async runtime runs it in a worker thread.

    Each batch commits the core's state changes, the output files' new lengths, the upload's
    counts and its read position in ONE SQLite transaction; on start-up the output files are
    cut back to the committed lengths and an unfinished upload resumes after its position.
    """

    def __init__(
        self,
        data_dir: Path,
        settings_for: SettingsFor,
        file_reader: FileReader,
        *,
        batch_size: int = 2000,
        fsync: bool = False,
    ) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        self._lock = _lock_data_dir(data_dir)
        self.db_path = data_dir / DB_NAME
        self.conn: sqlite3.Connection = connect(str(self.db_path))
        committed = dict(self.conn.execute("SELECT name, offset FROM sinks").fetchall())
        self.outputs = OutputFiles(data_dir / "out", committed, fsync=fsync)
        self.store = SqliteStateStore(self.conn)
        self.settings_for = settings_for
        self.file_reader = file_reader
        self.batch_size = batch_size
        self.progress: dict[str, Progress] = {}
        self._stop = threading.Event()

    def request_stop(self) -> None:
        """Asks `process` to return after its current batch commits (thread-safe)."""
        self._stop.set()

    def close(self) -> None:
        self.outputs.close()
        self.conn.close()
        self._lock.close()

    # ------------------------------------------------------------------ reading an upload

    def load_row(self, upload_id: str) -> tuple[UploadRow, dict[str, Any]]:
        cur = self.conn.execute(
            "SELECT account, filename, kind, dialect, path, trigger, received_at, counts, "
            "warnings, failed_members, pos_member, pos_line FROM uploads WHERE upload_id = ?",
            (upload_id,),
        )
        r = cur.fetchone()
        if r is None:
            raise KeyError(upload_id)
        row = UploadRow(
            upload_id,
            r[0],
            r[1],
            SourceKind(r[2]),
            Dialect(r[3]) if r[3] else None,
            r[4],
            None if r[5] is None else bool(r[5]),
            datetime.fromisoformat(r[6]),
        )
        extra = {
            "counts": counts_from(orjson.loads(r[7])),
            "warnings": orjson.loads(r[8]),
            "failed": orjson.loads(r[9]),
            "position": (r[10], r[11]),
        }
        return row, extra

    def _inbox(self, row: UploadRow) -> Iterator[Item]:
        cursor = self.conn.execute(
            "SELECT line, record FROM inbox WHERE upload_id = ? ORDER BY line", (row.upload_id,)
        )
        for line, blob in cursor.fetchall():
            data = orjson.loads(blob)
            source = Source(
                row.kind,
                Dialect(data["dialect"]),
                row.account,
                row.upload_id,
                row.filename,
                None,
                line,
            )
            yield (
                0,
                RawRecord(
                    source,
                    datetime.fromisoformat(data["received_at"]),
                    data["payload"].encode("utf-8", "surrogateescape"),
                    path_identifier=data.get("path_identifier"),
                    trigger=bool(data.get("trigger", True)),
                ),
            )

    # ------------------------------------------------------------------ processing

    def process(self, upload_id: str, clock: Clock = utcnow) -> str:
        """Processes (or resumes) one upload to its final status; returns the status."""
        row, extra = self.load_row(upload_id)
        counts: UploadCounts = extra["counts"]
        warnings: list[str] = extra["warnings"]
        failed: list[str] = extra["failed"]
        done_member, done_line = extra["position"]
        progress = self.progress.setdefault(upload_id, Progress())
        progress.read = progress.decided = counts.records
        self.conn.execute(
            "UPDATE uploads SET status = 'processing' WHERE upload_id = ?", (upload_id,)
        )
        settings = self.settings_for(row.account)
        reader = self._inbox(row) if row.kind is not SourceKind.FILE else self.file_reader(row)
        batch = _Batch()
        headers: dict[str, tuple[str, ...]] = {}
        try:
            for item in reader:
                if isinstance(item, PlanWarning):
                    if item.text not in warnings:
                        warnings.append(item.text)
                    continue
                if isinstance(item, MemberFailure):
                    if item.member not in failed:
                        failed.append(item.member)
                        # The reader's message names the member already.
                        warnings.append(f"{item.rejection.code}: {item.rejection.message}")
                        counts.failed_members += 1
                    continue
                member_index, raw = item
                if row.dialect is None:
                    row.dialect = raw.source.dialect
                    self.conn.execute(
                        "UPDATE uploads SET dialect = ? WHERE upload_id = ?",
                        (row.dialect.value, upload_id),
                    )
                if (member_index, raw.source.line) <= (done_member, done_line):
                    continue  # committed before a crash or restart
                progress.read += 1
                self._decide_one(raw, settings, batch, counts, headers, clock)
                batch.last_position = (member_index, raw.source.line)
                if len(batch.outcomes) + len(batch.rejections) >= self.batch_size:
                    self._commit(row, batch, counts, warnings, failed, clock)
                    progress.decided = counts.records
                    batch = _Batch()
                    if self._stop.is_set():
                        return "interrupted"  # resumes after this batch on the next start
        except FatalUpload as fatal:
            self._commit(row, batch, counts, warnings, failed, clock)
            return self._finish(row, counts, warnings, failed, fatal.rejection, clock)
        self._commit(row, batch, counts, warnings, failed, clock)
        progress.decided = counts.records
        counts.failed_members = len(failed)
        return self._finish(row, counts, warnings, failed, None, clock)

    def _decide_one(
        self,
        raw: RawRecord,
        settings: AccountSettings,
        batch: _Batch,
        counts: UploadCounts,
        headers: dict[str, tuple[str, ...]],
        clock: Clock,
    ) -> None:
        now = clock()
        result = normalize(raw)
        outcome: Outcome | None
        if isinstance(result, Rejection):
            outcome = decide_rejection(
                make_event_id(raw.source), raw.source, result, self.store, now, raw=raw.payload
            )
        else:
            decision = decide(result, self.store, now, settings, raw=raw.payload)
            outcome = decision.outcome if decision else None
            if decision is not None:
                for conflict in decision.conflicts:
                    self.outputs.add("conflicts", orjson.dumps(conflict, option=DUMPS_OPTIONS))
        if outcome is None:
            return  # redelivered: decided once already
        event = outcome.event
        counts.count(outcome.kind, outcome.code, bool(event and event.triggered))
        if outcome.kind is OutcomeKind.ACCEPTED and event is not None:
            line = dump_event(event)
            self.outputs.add("accepted", line)
            if event.triggered:
                self.outputs.add("triggers", line)
        elif outcome.kind is OutcomeKind.REJECTED and outcome.rejection is not None:
            self.outputs.add("deadletter", dump_outcome(outcome))
            member = raw.source.member or raw.source.file
            if raw.fields is not None:
                headers[member] = tuple(raw.fields)
            header = headers.get(member) if raw.source.dialect is Dialect.VERO else None
            batch.rejections.append(
                (
                    raw.source.upload_id,
                    member,
                    raw.source.line,
                    outcome.rejection.code.value,
                    outcome.rejection.message,
                    raw.payload,
                    _json(header) if header is not None else None,
                )
            )
        batch.outcomes.append((outcome, raw))

    def _commit(
        self,
        row: UploadRow,
        batch: _Batch,
        counts: UploadCounts,
        warnings: list[str],
        failed: list[str],
        clock: Clock,
    ) -> None:
        offsets = self.outputs.write_pending()
        conn = self.conn
        # IMMEDIATE: take the write lock up front, so a concurrent API submission makes this
        # wait (busy timeout) instead of failing a read-to-write upgrade.
        conn.execute("BEGIN IMMEDIATE")
        try:
            expire_state(self.store, clock(), max_buckets=64)
            self.store.flush()
            if batch.rejections:
                conn.executemany(
                    "INSERT OR REPLACE INTO rejections VALUES (?, ?, ?, ?, ?, ?, ?)",
                    batch.rejections,
                )
            conn.executemany(
                "INSERT INTO sinks (name, offset) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET offset = excluded.offset",
                list(offsets.items()),
            )
            position = batch.last_position
            conn.execute(
                "UPDATE uploads SET counts = ?, warnings = ?, failed_members = ?, "
                "pos_member = COALESCE(?, pos_member), pos_line = COALESCE(?, pos_line) "
                "WHERE upload_id = ?",
                (
                    _json(counts_dict(counts)),
                    _json(warnings),
                    _json(failed),
                    position[0] if position else None,
                    position[1] if position else None,
                    row.upload_id,
                ),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            self.store.discard()
            raise

    def _finish(
        self,
        row: UploadRow,
        counts: UploadCounts,
        warnings: list[str],
        failed: list[str],
        fatal: Rejection | None,
        clock: Clock,
    ) -> str:
        counts.failed_members = len(failed)
        status = final_status(counts, fatal)
        fatal_json = _json({"code": fatal.code.value, "message": fatal.message}) if fatal else None
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.execute(
            "UPDATE uploads SET status = ?, finished_at = ?, fatal = ?, counts = ?, warnings = ? "
            "WHERE upload_id = ?",
            (
                status.value,
                to_iso(clock()),
                fatal_json,
                _json(counts_dict(counts)),
                _json(warnings),
                row.upload_id,
            ),
        )
        self.conn.execute("DELETE FROM inbox WHERE upload_id = ?", (row.upload_id,))
        self.conn.execute("COMMIT")
        self.progress.setdefault(row.upload_id, Progress()).done = True
        return status.value
