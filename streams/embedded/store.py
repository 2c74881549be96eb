"""The core's StateStore on SQLite: a read cache and a write-behind overlay flushed per batch."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

import orjson

_MISSING = object()
_DELETED = object()

# Keys per `IN (...)` query when prefetching (well under SQLite's variable limit).
PREFETCH_CHUNK = 900


class SqliteStateStore:
    """Reads through to SQLite; writes stay in memory until `flush` inside the batch's transaction.

    Flushing in the same transaction as the batch's outcomes and output offsets is what makes a
    crash roll state and outputs back together. Pending writes are in the read cache as well
    (a deleted key as None), so a read is one dictionary lookup; the cache is only cleared
    when nothing is pending.

    `prefetch` loads many keys of a table with one query per chunk and caches the keys it
    does not find as absent, so that a batch's decisions read no row one at a time.
    """

    def __init__(self, conn: sqlite3.Connection, cache_limit: int = 500_000) -> None:
        self._conn = conn
        self._cache: dict[tuple[str, str], Any] = {}
        self._dirty: dict[tuple[str, str], Any] = {}
        self._cache_limit = cache_limit

    def get(self, table: str, key: str) -> Any | None:
        # The cache holds pending writes too (see `put`): one lookup answers.
        slot = (table, key)
        value = self._cache.get(slot, _MISSING)
        if value is _MISSING:
            row = self._conn.execute(
                "SELECT value FROM state WHERE tbl = ? AND key = ?", slot
            ).fetchone()
            value = self._cache[slot] = orjson.loads(row[0]) if row else None
        return value

    def put(self, table: str, key: str, value: Any) -> None:
        slot = (table, key)
        self._dirty[slot] = value
        self._cache[slot] = value

    def delete(self, table: str, key: str) -> None:
        slot = (table, key)
        self._dirty[slot] = _DELETED
        self._cache[slot] = None

    def prefetch(self, table: str, keys: Iterable[str]) -> None:
        """Caches `keys` of `table` not known yet: their stored values, or absent."""
        cache = self._cache
        wanted = sorted({key for key in keys if (table, key) not in cache})
        if not wanted:
            return
        loads = orjson.loads
        execute = self._conn.execute
        for start in range(0, len(wanted), PREFETCH_CHUNK):
            chunk = wanted[start : start + PREFETCH_CHUNK]
            for key in chunk:
                cache[(table, key)] = None
            marks = ",".join("?" * len(chunk))
            rows = execute(
                f"SELECT key, value FROM state WHERE tbl = ? AND key IN ({marks})",
                (table, *chunk),
            ).fetchall()
            for key, value in rows:
                cache[(table, key)] = loads(value)

    def mark_absent(self, table: str, keys: Iterable[str]) -> None:
        """Caches `keys` as absent without reading them: for keys the caller knows no
        committed transaction wrote (a key already cached or written is left as it is)."""
        cache = self._cache
        for key in keys:
            slot = (table, key)
            if slot not in cache:
                cache[slot] = None

    def flush(self) -> None:
        """Writes pending changes; the caller owns the transaction."""
        if not self._dirty:
            return
        dirty = self._dirty
        dumps = orjson.dumps
        # In key order: neighbouring keys share B-tree pages. Rows are serialized as they
        # are bound (a generator): orjson's results keep their whole output buffer
        # (kilobytes each), so a commit's worth of them at once would weigh far more than
        # their text.
        slots = sorted(dirty)
        upserts = ((t, k, dumps(dirty[t, k])) for t, k in slots if dirty[t, k] is not _DELETED)
        self._conn.executemany(
            "INSERT INTO state (tbl, key, value) VALUES (?, ?, ?) "
            "ON CONFLICT (tbl, key) DO UPDATE SET value = excluded.value",
            upserts,
        )
        deletes = [slot for slot in slots if dirty[slot] is _DELETED]
        if deletes:
            self._conn.executemany("DELETE FROM state WHERE tbl = ? AND key = ?", deletes)
        self._dirty.clear()
        if len(self._cache) > self._cache_limit:
            self._cache.clear()  # only ever with nothing pending: the cache holds those

    def discard(self) -> None:
        """Drops unflushed writes (the batch's transaction was rolled back)."""
        self._dirty.clear()
        self._cache.clear()
