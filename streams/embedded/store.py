"""The core's StateStore on SQLite: one table per core table, a read cache and a write-behind overlay."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import orjson

_MISSING = object()
_loads = orjson.loads
_dumps = orjson.dumps
_DELETED = object()

# Keys per `IN (...)` query when prefetching (well under SQLite's variable limit).
PREFETCH_CHUNK = 900


def table_name(table: str) -> str:
    """The SQLite table holding one core table: `st_<name>`, for names made of [a-z0-9_]."""
    if not table or not all(c.isalnum() or c == "_" for c in table) or not table.isascii():
        raise ValueError(f"not a state table name: {table!r}")
    return f"st_{table}"


def _decode(value: Any) -> Any:
    # Integers are stored as SQLite integers, everything else as orjson text (see `flush`).
    return value if type(value) is int else orjson.loads(value)


class SqliteStateStore:
    """Reads through to SQLite; writes stay in memory until `flush` inside the batch's transaction.

    Flushing in the same transaction as the batch's outcomes and output offsets is what makes a
    crash roll state and outputs back together. Pending writes are in the read cache as well
    (a deleted key as None), so a read is one dictionary lookup; the cache is only cleared
    when nothing is pending.

    Each core table is its own SQLite table (`st_<name>`, key TEXT PRIMARY KEY, WITHOUT
    ROWID): rows carry no table name, so more of them fit a page and an upsert of random
    keys (dedup digests) touches fewer pages; integer values (dedup expiries, counts) are
    stored as SQLite integers, not JSON.

    `prefetch` loads many keys of a table with one query per chunk and caches the keys it
    does not find as absent, so that a batch's decisions read no row one at a time.
    """

    def __init__(self, conn: sqlite3.Connection, cache_limit: int = 500_000) -> None:
        self._conn = conn
        # One dict per table, keyed by the plain key: no (table, key) tuple to keep per
        # cached entry (64 bytes each). Measured on a 1M-line import: peak RSS 266 → 210
        # MiB (100k lines: 145 → 118 MiB); the speed did not change measurably.
        self._cache: defaultdict[str, dict[str, Any]] = defaultdict(dict)
        self._dirty: defaultdict[str, dict[str, Any]] = defaultdict(dict)
        self._cache_limit = cache_limit
        self._tables: dict[str, str] = {}  # core table -> SQLite table known to exist
        self._migrate()

    def _migrate(self) -> None:
        """Moves rows of the single `state` table that data directories before per-table
        storage used into the per-table form (once; the old table is dropped)."""
        conn = self._conn
        old = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'state'"
        ).fetchone()
        if old is None:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            for (table,) in conn.execute("SELECT DISTINCT tbl FROM state").fetchall():
                name = self._sql_table(table)
                conn.execute(
                    f"INSERT OR REPLACE INTO {name} (key, value) "
                    "SELECT key, value FROM state WHERE tbl = ?",
                    (table,),
                )
            conn.execute("DROP TABLE state")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            self._tables.clear()
            raise

    def _sql_table(self, table: str) -> str:
        name = self._tables.get(table)
        if name is None:
            name = table_name(table)
            self._conn.execute(
                f"CREATE TABLE IF NOT EXISTS {name} "
                "(key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID"
            )
            self._tables[table] = name
        return name

    def get(self, table: str, key: str) -> Any | None:
        # The cache holds pending writes too (see `put`): one lookup answers.
        cache = self._cache[table]
        value = cache.get(key, _MISSING)
        if value is _MISSING:
            row = self._conn.execute(
                f"SELECT value FROM {self._sql_table(table)} WHERE key = ?", (key,)
            ).fetchone()
            value = cache[key] = _decode(row[0]) if row else None
        return value

    def put(self, table: str, key: str, value: Any) -> None:
        self._dirty[table][key] = value
        self._cache[table][key] = value

    def delete(self, table: str, key: str) -> None:
        self._dirty[table][key] = _DELETED
        self._cache[table][key] = None

    def prefetch(self, table: str, keys: Iterable[str]) -> None:
        """Caches `keys` of `table` not known yet: their stored values, or absent."""
        cache = self._cache[table]
        wanted = sorted({key for key in keys if key not in cache})
        if not wanted:
            return
        execute = self._conn.execute
        name = self._sql_table(table)
        for start in range(0, len(wanted), PREFETCH_CHUNK):
            chunk = wanted[start : start + PREFETCH_CHUNK]
            cache.update(dict.fromkeys(chunk))  # absent unless found below
            marks = ",".join("?" * len(chunk))
            rows = execute(f"SELECT key, value FROM {name} WHERE key IN ({marks})", chunk)
            for key, value in rows.fetchall():
                cache[key] = value if type(value) is int else _loads(value)

    def know_absent(self, table: str, keys: Iterable[str]) -> None:
        """Caches `keys` of `table` not known yet as absent, without reading them: for a
        caller that knows they cannot be stored (see `Engine._prefetch`)."""
        cache = self._cache[table]
        for key in keys:
            cache.setdefault(key, None)

    def flush(self) -> None:
        """Writes pending changes; the caller owns the transaction."""
        executemany = self._conn.executemany
        for table, dirty in self._dirty.items():
            if not dirty:
                continue
            name = self._sql_table(table)
            # In key order: neighbouring keys share B-tree pages. Rows are serialized as
            # they are bound (a generator): orjson's results keep their whole output
            # buffer (kilobytes each), so a commit's worth of them at once would weigh far
            # more than their text.
            keys = sorted(dirty)
            upserts = (
                (key, value if type(value) is int else _dumps(value))
                for key in keys
                if (value := dirty[key]) is not _DELETED
            )
            executemany(
                f"INSERT INTO {name} (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                upserts,
            )
            deletes = [(key,) for key in keys if dirty[key] is _DELETED]
            if deletes:
                executemany(f"DELETE FROM {name} WHERE key = ?", deletes)
        self._dirty.clear()
        if sum(map(len, self._cache.values())) > self._cache_limit:
            self._cache.clear()  # only ever with nothing pending: the cache holds those

    def discard(self) -> None:
        """Drops unflushed writes (the batch's transaction was rolled back)."""
        self._dirty.clear()
        self._cache.clear()
