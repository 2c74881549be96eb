"""The embedded runtime's processing loop: raw records → core rules → outputs, one batch per transaction."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import orjson

from streams.core.catalog import CATALOG_PROPS_TABLE, CATALOG_TYPES_TABLE
from streams.core.decide import decide, expire_state
from streams.core.dedup import DEDUP_TABLE
from streams.core.errors import Rejection
from streams.core.fanout import Output, route_outcome
from streams.core.feedback import feedback_header, feedback_payload, with_feedback_header
from streams.core.identity import (
    IDENTITY_TABLE,
)
from streams.core.normalize import normalize
from streams.core.outputs import DUMPS_OPTIONS
from streams.core.prefetch import dedup_digests, state_keys
from streams.core.records import (
    Dialect,
    Event,
    Outcome,
    OutcomeKind,
    RawRecord,
    Source,
    SourceKind,
    make_event_id,
)
from streams.core.settings import AccountSettings
from streams.core.status import UploadCounts, counts_dict, counts_from, final_status, final_warnings
from streams.core.timeparse import to_iso
from streams.core.trigger import default_trigger
from streams.core.upload import (
    FatalUpload,
    FileReader,
    Item,
    MemberFailure,
    PlanWarning,
    UploadNotes,
    UploadRow,
)
from streams.embedded.datadir import DB_NAME, read_format, verify_data_dir, write_format
from streams.embedded.schema import connect
from streams.embedded.sinks import OutputFiles
from streams.embedded.store import SqliteStateStore

# A transaction commits the decisions of this many records, or of this long, whichever
# comes first (and always at the end of an upload): a commit writes every state page the
# records touched, and dedup digests are random keys, so fewer, larger commits write far
# less (measured: 100k / 5 s against 50k / 1 s, 8 % less CPU on a 500k-line import). A
# crash redoes at most one commit's worth of decisions; the outputs are cut back to match.
COMMIT_RECORDS = 100_000
COMMIT_SECONDS = 5.0
# The engine's connection: a page cache that holds the hot state (SQLite's default is
# 2 MiB), temporary b-trees in memory, and WAL checkpoints every ~64 MiB rather than every
# 4 MiB (each one syncs the database file).
ENGINE_PRAGMAS = (
    "cache_size = -131072",
    "temp_store = MEMORY",
    "wal_autocheckpoint = 16384",
)
Clock = Callable[[], datetime]
SettingsFor = Callable[[str], AccountSettings]


def utcnow() -> datetime:
    return datetime.now(UTC)


_ACCEPTED = OutcomeKind.ACCEPTED
_DUPLICATE = OutcomeKind.DUPLICATE
_REJECTED = OutcomeKind.REJECTED


class _BatchSink:
    """The output files' side of `route_outcome` for one decision batch: accepted and
    trigger lines are gathered and written as one block each; dead letters go straight
    to the pending output."""

    __slots__ = ("accepted", "outputs", "triggers")

    def __init__(self, outputs: OutputFiles) -> None:
        self.outputs = outputs
        self.accepted: list[bytes] = []
        self.triggers: list[bytes] = []

    def emit(self, output: Output, line: bytes, outcome: Outcome) -> None:
        if output is Output.ACCEPTED:
            self.accepted.append(line)
        elif output is Output.TRIGGERS:
            self.triggers.append(line)
        else:
            self.outputs.add(output.value, line)


@dataclass(slots=True)
class Progress:
    read: int = 0
    decided: int = 0
    done: bool = False


@dataclass(slots=True)
class _Batch:
    """What one transaction commits: the decisions since the last commit."""

    rejections: list[tuple[Any, ...]] = field(default_factory=list)
    last_position: tuple[int, int] | None = None
    now: datetime = field(default_factory=utcnow)  # the last decision time
    decided: int = 0  # records decided
    started: float = field(default_factory=time.monotonic)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


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
        commit_records: int = COMMIT_RECORDS,
        commit_seconds: float = COMMIT_SECONDS,
    ) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        self._lock = _lock_data_dir(data_dir)
        try:
            # Damaged or newer state refuses to start: never a silent reset (datadir.py).
            verify_data_dir(data_dir)
        except BaseException:
            self._lock.close()
            raise
        self.db_path = data_dir / DB_NAME
        self.conn: sqlite3.Connection = connect(str(self.db_path))
        if read_format(data_dir) is None:
            write_format(data_dir)
        for pragma in ENGINE_PRAGMAS:
            self.conn.execute(f"PRAGMA {pragma}")
        committed = dict(self.conn.execute("SELECT name, offset FROM sinks").fetchall())
        self.outputs = OutputFiles(data_dir / "out", committed, fsync=fsync)
        self.store = SqliteStateStore(self.conn)
        self.settings_for = settings_for
        self.file_reader = file_reader
        self.batch_size = batch_size
        self.commit_records = commit_records
        self.commit_seconds = commit_seconds
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
                    trigger=bool(data.get("trigger", default_trigger(row.kind))),
                ),
            )

    # ------------------------------------------------------------------ processing

    def process(self, upload_id: str, clock: Clock = utcnow) -> str:
        """Processes (or resumes) one upload to its final status; returns the status.

        On a failure (a full disk, an I/O error) the open transaction is rolled back and the
        outputs cut back to their committed lengths: calling it again resumes the upload
        from its last committed batch, in this process or after a restart."""
        try:
            return self._process(upload_id, clock)
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            self.store.discard()
            self.outputs.rewind(dict(self.conn.execute("SELECT name, offset FROM sinks")))
            raise

    def _process(self, upload_id: str, clock: Clock) -> str:
        row, extra = self.load_row(upload_id)
        counts: UploadCounts = extra["counts"]
        warnings: list[str] = extra["warnings"]
        failed: list[str] = extra["failed"]
        notes = UploadNotes(warnings, failed)
        done_member, done_line = extra["position"]
        progress = self.progress.setdefault(upload_id, Progress())
        progress.read = progress.decided = counts.records
        self.conn.execute(
            "UPDATE uploads SET status = 'processing' WHERE upload_id = ?", (upload_id,)
        )
        settings = self.settings_for(row.account)
        reader = self._inbox(row) if row.kind is not SourceKind.FILE else self.file_reader(row)
        batch = _Batch()
        batch_size = self.batch_size
        records: list[RawRecord] = []  # read, not decided yet
        # The furthest position read: readers number lines in increasing order, so a record
        # at or before it (at or before the committed position, or read before in this
        # run) is a line read again, already decided. This position ledger is the embedded
        # runtime's redelivery suppression: the core's `seen` table is not used here (see
        # docs/decisions/stateful-rules.md, "Redelivery").
        furthest = (done_member, done_line)
        try:
            for item in reader:
                if type(item) is tuple:
                    member_index, raw = item
                elif isinstance(item, PlanWarning | MemberFailure):
                    notes.note(item)
                    continue
                else:
                    member_index, raw = item
                if row.dialect is None:
                    row.dialect = raw.source.dialect
                    self.conn.execute(
                        "UPDATE uploads SET dialect = ? WHERE upload_id = ?",
                        (row.dialect.value, upload_id),
                    )
                if raw.trigger is not row.trigger:
                    # The reader knows the effective opt-in (an archive's manifest may
                    # set it): the upload's row shows what its records carry.
                    row.trigger = raw.trigger
                    self.conn.execute(
                        "UPDATE uploads SET trigger = ? WHERE upload_id = ?",
                        (raw.trigger, upload_id),
                    )
                position = (member_index, raw.source.line)
                if position <= furthest:
                    continue  # decided already: committed before a restart, or read twice
                furthest = position
                progress.read += 1
                records.append(raw)
                batch.last_position = position
                if len(records) >= batch_size:
                    self._decide_batch(records, batch, settings, counts, clock)
                    records = []
                    progress.decided = counts.records  # decided; committed with the batch
                    if (
                        batch.decided >= self.commit_records
                        or time.monotonic() - batch.started >= self.commit_seconds
                        or self._stop.is_set()
                    ):
                        self._commit(row, batch, counts, warnings, failed)
                        progress.decided = counts.records
                        batch = _Batch()
                        if self._stop.is_set():
                            return "interrupted"  # resumes after this batch on the next start
        except FatalUpload as fatal:
            self._decide_batch(records, batch, settings, counts, clock)
            self._commit(row, batch, counts, warnings, failed)
            return self._finish(row, counts, warnings, failed, fatal.rejection, clock)
        self._decide_batch(records, batch, settings, counts, clock)
        self._commit(row, batch, counts, warnings, failed)
        progress.decided = counts.records
        counts.failed_members = len(failed)
        return self._finish(row, counts, warnings, failed, None, clock)

    def _decide_batch(
        self,
        records: list[RawRecord],
        batch: _Batch,
        settings: AccountSettings,
        counts: UploadCounts,
        clock: Clock,
    ) -> None:
        """Normalizes `records`, prefetches the state they read, then decides each one.

        One `now` per call: every record of a decision batch (`batch_size` records, well
        under a second of work) is decided at the time the batch starts, and the commit's
        expiry pass uses the last such time. The time window (stateless) uses
        `received_at`, not `now`. Every record here is decided for the first time (see
        `process`), so `decide` runs without the `seen` table.
        """
        now = batch.now = clock()
        if not records:
            return
        batch.decided += len(records)
        store = self.store
        results = [normalize(raw) for raw in records]
        self._prefetch(results, settings)
        outputs = self.outputs
        sink = _BatchSink(outputs)
        accepted_lines, trigger_lines = sink.accepted, sink.triggers
        route = route_outcome
        accepted = duplicate = triggered = 0
        for raw, result in zip(records, results, strict=True):
            outcome: Outcome
            if type(result) is Event:
                decision = decide(
                    result, store, now, settings, raw=raw.payload, in_place=True, track_seen=False
                )
                assert decision is not None  # only None for a redelivery, with track_seen
                outcome = decision.outcome
                if decision.conflicts:
                    for conflict in decision.conflicts:
                        outputs.add("conflicts", orjson.dumps(conflict, option=DUMPS_OPTIONS))
                kind = outcome.kind
                if kind is _ACCEPTED:
                    accepted += 1
                    triggered += result.triggered
                    route(outcome, sink)
                    continue
                if kind is _DUPLICATE:
                    duplicate += 1
                    continue
            else:
                assert isinstance(result, Rejection)
                outcome = Outcome(
                    _REJECTED, make_event_id(raw.source), raw.source, rejection=result,
                    raw=raw.payload, received_at=raw.received_at,
                )  # fmt: skip
            route(with_feedback_header(outcome, raw), sink)
            self._reject(raw, outcome, batch, counts)
        counts.records += accepted + duplicate
        counts.accepted += accepted
        counts.duplicate += duplicate
        counts.triggered += triggered
        # One joined block per decision batch: orjson's results keep their whole output
        # buffer (kilobytes each), so a commit's worth of single lines would weigh far more
        # than its text. The block goes to the file with the same newlines.
        if accepted_lines:
            outputs.add("accepted", b"\n".join(accepted_lines))
        if trigger_lines:
            outputs.add("triggers", b"\n".join(trigger_lines))
        # To the files now (the commit records their lengths): a transaction's lines are
        # written a decision batch at a time, never held until its commit.
        outputs.write_pending(sync=False)

    def _prefetch(self, results: list[Event | Rejection], settings: AccountSettings) -> None:
        """Loads every state key the batch's decisions will read (`core/prefetch.py`), one
        query per table; keys not found are remembered as absent, so deciding the batch
        reads no row one at a time."""
        store = self.store
        events = [result for result in results if type(result) is Event]
        keys = state_keys(events)
        store.prefetch(IDENTITY_TABLE, keys.identity)
        store.prefetch(CATALOG_PROPS_TABLE, keys.types)
        store.prefetch(CATALOG_TYPES_TABLE, keys.accounts)
        digests, unborn = dedup_digests(events, settings, store.get)
        store.prefetch(DEDUP_TABLE, digests)
        store.know_absent(DEDUP_TABLE, unborn)

    def _reject(
        self,
        raw: RawRecord,
        outcome: Outcome,
        batch: _Batch,
        counts: UploadCounts,
    ) -> None:
        event = outcome.event
        counts.count(outcome.kind, outcome.code, bool(event and event.triggered))
        if outcome.kind is not OutcomeKind.REJECTED or outcome.rejection is None:
            return
        member = raw.source.member or raw.source.file
        header = feedback_header(raw)
        batch.rejections.append(
            (
                raw.source.upload_id,
                member,
                raw.source.line,
                outcome.rejection.code.value,
                outcome.rejection.message,
                feedback_payload(raw),
                _json(header) if header is not None else None,
            )
        )

    def _commit(
        self,
        row: UploadRow,
        batch: _Batch,
        counts: UploadCounts,
        warnings: list[str],
        failed: list[str],
    ) -> None:
        offsets = self.outputs.write_pending()
        conn = self.conn
        # IMMEDIATE: take the write lock up front, so a concurrent API submission makes this
        # wait (busy timeout) instead of failing a read-to-write upgrade.
        conn.execute("BEGIN IMMEDIATE")
        try:
            expire_state(self.store, batch.now, max_buckets=64)
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
            if conn.in_transaction:  # SQLite may have rolled back already (a full disk)
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
        warnings = final_warnings(counts, fatal, warnings)
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
