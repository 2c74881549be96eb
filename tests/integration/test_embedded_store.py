"""The embedded runtime's StateStore on SQLite: per-table storage, round trips, migration."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest

from streams.embedded.schema import connect
from streams.embedded.store import SqliteStateStore, table_name


def _commit(store: SqliteStateStore, conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    store.flush()
    conn.execute("COMMIT")


def test_state_values_round_trip_through_a_new_connection(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    conn = connect(db)
    store = SqliteStateStore(conn)
    values = {"a": 1_717_243_200, "b": [17, "x"], "c": "user_id:42", "d": True, "e": {"k": 1.5}}
    for key, value in values.items():
        store.put("dedup", key, value)
    store.put("identity", "gone", "p")
    _commit(store, conn)
    store.delete("identity", "gone")
    _commit(store, conn)
    conn.close()

    reopened = SqliteStateStore(connect(db))
    assert {key: reopened.get("dedup", key) for key in values} == values
    assert type(reopened.get("dedup", "d")) is bool  # not the integer 1
    assert reopened.get("identity", "gone") is None
    reopened.prefetch("dedup", ["a", "b", "missing"])
    assert reopened.get("dedup", "a") == values["a"] and reopened.get("dedup", "missing") is None


def test_integers_are_stored_as_sqlite_integers(tmp_path: Path) -> None:
    conn = connect(str(tmp_path / "t.db"))
    store = SqliteStateStore(conn)
    store.put("dedup", "k", 1_717_243_200)
    store.put("dedup", "flag", False)
    _commit(store, conn)
    rows = dict(conn.execute("SELECT key, typeof(value) FROM st_dedup").fetchall())
    assert rows == {"k": "integer", "flag": "blob"}


def test_unwritten_pending_state_is_discarded_on_rollback(tmp_path: Path) -> None:
    conn = connect(str(tmp_path / "t.db"))
    store = SqliteStateStore(conn)
    store.put("seen", "e1", [1, "accepted"])
    store.discard()
    assert store.get("seen", "e1") is None


def test_single_state_table_of_older_data_dirs_is_migrated(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    old = sqlite3.connect(db, isolation_level=None)
    old.execute(
        "CREATE TABLE state (tbl TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, "
        "PRIMARY KEY (tbl, key)) WITHOUT ROWID"
    )
    old.executemany(
        "INSERT INTO state VALUES (?, ?, ?)",
        [
            ("identity", "acme\x1femail:a@x.com", orjson.dumps("user_id:42")),
            ("dedup", "digest", orjson.dumps(1_717_243_200)),
            ("catalog_props", "acme\x1fviewed", orjson.dumps(["price"])),
        ],
    )
    old.close()

    conn = connect(db)
    store = SqliteStateStore(conn)
    assert store.get("identity", "acme\x1femail:a@x.com") == "user_id:42"
    assert store.get("dedup", "digest") == 1_717_243_200
    assert store.get("catalog_props", "acme\x1fviewed") == ["price"]
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "state" not in tables


@pytest.mark.parametrize("name", ["", "a b", "x;drop", "ünï"])
def test_state_table_names_are_plain_identifiers(name: str) -> None:
    with pytest.raises(ValueError):
        table_name(name)
