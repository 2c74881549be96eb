"""The embedded runtime's SQLite schema: upload ledger, rejections, API inbox, sinks (state tables: store.py)."""

from __future__ import annotations

import sqlite3

SCHEMA = """
CREATE TABLE IF NOT EXISTS uploads (
    upload_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    account TEXT NOT NULL,
    filename TEXT NOT NULL,
    kind TEXT NOT NULL,
    dialect TEXT,
    path TEXT,
    trigger INTEGER,
    status TEXT NOT NULL,
    received_at TEXT NOT NULL,
    finished_at TEXT,
    counts TEXT NOT NULL DEFAULT '{}',
    warnings TEXT NOT NULL DEFAULT '[]',
    failed_members TEXT NOT NULL DEFAULT '[]',
    fatal TEXT,
    pos_member INTEGER NOT NULL DEFAULT -1,
    pos_line INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS uploads_unique_filename ON uploads (account, filename)
    WHERE kind = 'file';
CREATE INDEX IF NOT EXISTS uploads_by_account ON uploads (account, seq);
CREATE INDEX IF NOT EXISTS uploads_by_seq ON uploads (seq);
CREATE TABLE IF NOT EXISTS rejections (
    upload_id TEXT NOT NULL, file TEXT NOT NULL, line INTEGER NOT NULL,
    code TEXT NOT NULL, message TEXT NOT NULL, raw BLOB NOT NULL, header TEXT,
    PRIMARY KEY (upload_id, file, line)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inbox (
    upload_id TEXT NOT NULL, line INTEGER NOT NULL, record BLOB NOT NULL,
    PRIMARY KEY (upload_id, line)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sinks (name TEXT PRIMARY KEY, offset INTEGER NOT NULL);
"""


def connect(path: str, *, synchronous: str = "NORMAL") -> sqlite3.Connection:
    """A connection in WAL mode with the schema in place; autocommit, transactions explicit."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    # 8 KiB pages (a new database only; ignored once it exists): a dedup expiry-index
    # chunk (64 digests, ~1.6 KB) then fits its leaf page instead of spilling to an
    # overflow page, which made the index 2.7x larger than the keys it indexes.
    conn.execute("PRAGMA page_size = 8192")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.executescript(SCHEMA)
    return conn
