"""The small state-store interface the stateful rules use; SQLite and Faust tables implement it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol


class StateStore(Protocol):
    """Synchronous key-value state, partitioned by table name.

    Synchronous on purpose: Faust tables are dict-like, and the embedded runtime keeps a
    write-behind overlay that it flushes to SQLite in the same transaction as the outcomes.
    Values are JSON-compatible (str, int, float, bool, None, list, dict).
    """

    def get(self, table: str, key: str) -> Any | None: ...

    def put(self, table: str, key: str, value: Any) -> None: ...

    def delete(self, table: str, key: str) -> None: ...


class MemoryStore:
    """A dict-backed StateStore for tests and dry runs."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, Any]] = {}

    def get(self, table: str, key: str) -> Any | None:
        return self.tables.get(table, {}).get(key)

    def put(self, table: str, key: str, value: Any) -> None:
        self.tables.setdefault(table, {})[key] = value

    def delete(self, table: str, key: str) -> None:
        self.tables.get(table, {}).pop(key, None)

    def items(self, table: str) -> Iterator[tuple[str, Any]]:
        return iter(list(self.tables.get(table, {}).items()))
