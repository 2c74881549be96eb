"""The core's `StateStore` over Faust tables, with a write-behind overlay per partition.

Every Faust table (one per core state table, plus `uploads`) keeps its state in a local
RocksDB database per partition and in a compacted changelog topic, from which Faust
recovers a partition (read_committed) before the partition is processed.

The runtime does not write through Faust's table API: a `table[key] = value` becomes a
changelog send through Faust's producer buffer, outside the control of our transactions
(and 6–8 of them per record were the main cost). Instead:

* `get` reads the overlay of the current partition first, then the table's RocksDB
  database of that partition;
* `put` / `delete` only record the encoded value in the overlay;
* `flush(partition)` (called by the commit, inside the partition's transaction) writes
  every dirty key once into RocksDB and returns the changelog records to send in that
  transaction: at most one changelog record per distinct key per commit.

Keys and values are encoded with orjson (the changelog bytes are what RocksDB stores on
recovery, so both sides use the same codec). The core passes the partition number as
`shard` to the expiry indexes, so two partitions never write one key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

# Every table the core uses (docs/decisions/stateful-rules.md, "State tables").
STATE_TABLES = (
    "identity",
    "seen",
    "seen_expiry",
    "dedup",
    "dedup_expiry",
    "catalog_types",
    "catalog_props",
)
UPLOADS_TABLE = "uploads"

_OPTS = orjson.OPT_NON_STR_KEYS

Dirty = dict[tuple[str, bytes], bytes | None]


class FaustStore:
    """Synchronous get/put/delete (the `StateStore` protocol) for the record being processed.

    `partition` must be set to the partition of the record before the core runs.
    """

    def __init__(self, tables: Mapping[str, Any]) -> None:
        self.tables = tables
        self.partition = 0
        self.dirty: dict[int, Dirty] = {}

    def _db(self, table: str, partition: int) -> Any:
        try:
            faust_table = self.tables[table]
        except KeyError:
            raise KeyError(f"no Faust table for state table {table!r}") from None
        return faust_table.data._db_for_partition(partition)

    def get(self, table: str, key: str) -> Any | None:
        k = key.encode()
        overlay = self.dirty.get(self.partition)
        if overlay is not None:
            hit = overlay.get((table, k), _MISSING)
            if hit is not _MISSING:
                return None if hit is None else orjson.loads(hit)  # type: ignore[arg-type]
        value = self._db(table, self.partition).get(k)
        return None if value is None else orjson.loads(value)

    def put(self, table: str, key: str, value: Any) -> None:
        if table not in self.tables:
            raise KeyError(f"no Faust table for state table {table!r}")
        overlay = self.dirty.setdefault(self.partition, {})
        overlay[(table, key.encode())] = orjson.dumps(value, option=_OPTS)

    def delete(self, table: str, key: str) -> None:
        if table not in self.tables:
            raise KeyError(f"no Faust table for state table {table!r}")
        self.dirty.setdefault(self.partition, {})[(table, key.encode())] = None

    def changelog_topic(self, table: str) -> str:
        return str(self.tables[table].changelog_topic.get_topic_name())

    def flush(self, partition: int) -> list[tuple[str, bytes, bytes | None]]:
        """Writes the partition's dirty keys into RocksDB; returns (changelog topic, key,
        value-or-tombstone) for each, to be sent in the partition's transaction."""
        overlay = self.dirty.pop(partition, None)
        if not overlay:
            return []
        from rocksdict import WriteBatch

        out: list[tuple[str, bytes, bytes | None]] = []
        topics: dict[str, str] = {}
        batches: dict[str, Any] = {}  # one RocksDB write per table, not one per key
        for (table, key), value in overlay.items():
            batch = batches.get(table)
            if batch is None:
                batch = batches[table] = WriteBatch(raw_mode=True)
                topics[table] = self.changelog_topic(table)
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
            out.append((topics[table], key, value))
        for table, batch in batches.items():
            self._db(table, partition).write(batch)
        return out

    def discard(self, partition: int) -> None:
        """Drops unflushed writes of a partition (it is no longer ours)."""
        self.dirty.pop(partition, None)


class _Missing:
    pass


_MISSING: Any = _Missing()
