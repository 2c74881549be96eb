"""The core's StateStore on SQLite: a read cache and a write-behind overlay flushed per batch."""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

_MISSING = object()
_DELETED = object()


class SqliteStateStore:
    """Reads through to SQLite; writes stay in memory until `flush` inside the batch's transaction.

    Flushing in the same transaction as the batch's outcomes and output offsets is what makes a
    crash roll state and outputs back together.
    """

    def __init__(self, conn: sqlite3.Connection, cache_limit: int = 500_000) -> None:
        self._conn = conn
        self._cache: dict[tuple[str, str], Any] = {}
        self._dirty: dict[tuple[str, str], Any] = {}
        self._cache_limit = cache_limit

    def get(self, table: str, key: str) -> Any | None:
        slot = (table, key)
        value = self._dirty.get(slot, _MISSING)
        if value is _MISSING:
            value = self._cache.get(slot, _MISSING)
            if value is _MISSING:
                row = self._conn.execute(
                    "SELECT value FROM state WHERE tbl = ? AND key = ?", slot
                ).fetchone()
                value = orjson.loads(row[0]) if row else None
                self._cache[slot] = value
        return None if value is _DELETED else value

    def put(self, table: str, key: str, value: Any) -> None:
        self._dirty[(table, key)] = value

    def delete(self, table: str, key: str) -> None:
        self._dirty[(table, key)] = _DELETED

    def flush(self) -> None:
        """Writes pending changes; the caller owns the transaction."""
        if not self._dirty:
            return
        upserts = [
            (t, k, orjson.dumps(v)) for (t, k), v in self._dirty.items() if v is not _DELETED
        ]
        deletes = [slot for slot, v in self._dirty.items() if v is _DELETED]
        if upserts:
            self._conn.executemany(
                "INSERT INTO state (tbl, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (tbl, key) DO UPDATE SET value = excluded.value",
                upserts,
            )
        if deletes:
            self._conn.executemany("DELETE FROM state WHERE tbl = ? AND key = ?", deletes)
        if len(self._cache) > self._cache_limit:
            self._cache.clear()
        for slot, value in self._dirty.items():
            self._cache[slot] = None if value is _DELETED else value
        self._dirty.clear()

    def discard(self) -> None:
        """Drops unflushed writes (the batch's transaction was rolled back)."""
        self._dirty.clear()
        self._cache.clear()
