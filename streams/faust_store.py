"""The core's `StateStore` over Faust tables: one table per state table name.

Every write goes to the table's changelog on the partition of the record being processed
(Faust tables must be written from inside an agent's stream iteration). The core passes the
partition number as `shard` to the expiry indexes, so two partitions never write one key.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

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


class FaustStore:
    """Synchronous get/put/delete over dict-like Faust tables (the `StateStore` protocol)."""

    def __init__(self, tables: Mapping[str, MutableMapping[str, Any]]) -> None:
        self.tables = tables

    def _table(self, table: str) -> MutableMapping[str, Any]:
        try:
            return self.tables[table]
        except KeyError:
            raise KeyError(f"no Faust table for state table {table!r}") from None

    def get(self, table: str, key: str) -> Any | None:
        return self._table(table).get(key)

    def put(self, table: str, key: str, value: Any) -> None:
        self._table(table)[key] = value

    def delete(self, table: str, key: str) -> None:
        data = self._table(table)
        if key in data:
            del data[key]
