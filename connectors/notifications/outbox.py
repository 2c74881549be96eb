"""The durable outbox of deliveries (SQLite, DATA/notifications.sqlite3).

One row per (subject, target): the primary key makes each delivery enqueued exactly once,
however often the watcher sees the same final status. A row is marked ``sending`` before
its attempt; a row still ``sending`` at start-up had an attempt whose result is unknown and
is sent again with the same delivery id (the receiver deduplicates by it).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
import orjson

DB_NAME = "notifications.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS watched (
    upload_id TEXT PRIMARY KEY,
    done INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS deliveries (
    delivery_id TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    account TEXT NOT NULL,
    target TEXT NOT NULL,
    report BLOB NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    last_error TEXT,
    created_at REAL NOT NULL,
    delivered_at REAL,
    UNIQUE (subject, target)
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (state, next_at);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

STATES = ("pending", "sending", "delivered", "failed")


@dataclass(slots=True)
class Delivery:
    delivery_id: str
    subject: str
    account: str
    target: str  # "email:<address>" or "webhook:<url>"
    report: dict[str, Any]
    state: str
    attempts: int
    next_at: float
    last_error: str | None
    created_at: float
    delivered_at: float | None

    def as_json(self) -> dict[str, Any]:
        row = {k: getattr(self, k) for k in self.__slots__ if k != "report"}
        row["status"] = self.report.get("status")
        row["filename"] = self.report.get("filename")
        return row


_COLUMNS = (
    "delivery_id, subject, account, target, report, state, attempts, next_at, last_error, "
    "created_at, delivered_at"
)


def _delivery(r: Any) -> Delivery:
    return Delivery(r[0], r[1], r[2], r[3], orjson.loads(r[4]), *r[5:])


class Outbox:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        # one connection shared by the watcher, the senders and the port: a transaction
        # of one task must never take in another task's statement
        self._lock = asyncio.Lock()

    @property
    def db(self) -> aiosqlite.Connection:
        assert self._db is not None, "open() the outbox first"
        return self._db

    async def open(self) -> bool:
        """Opens (creates) the outbox; True when it was just created."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self.path, isolation_level=None)
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute("PRAGMA busy_timeout=30000")
        await self._db.execute("PRAGMA synchronous=FULL")
        await self._db.executescript(_SCHEMA)
        async with self._db.execute("SELECT value FROM meta WHERE key = 'created'") as cur:
            if await cur.fetchone() is not None:
                return False
        await self._db.execute(
            "INSERT OR IGNORE INTO meta VALUES ('created', ?)", (str(time.time()),)
        )
        return True

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
                await self.db.execute("COMMIT")
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    # ---------------------------------------------------------------- watcher side

    async def watch(self, upload_ids: list[str], *, done: bool = False) -> None:
        async with self._write() as db:
            await db.executemany(
                "INSERT OR IGNORE INTO watched VALUES (?, ?)", [(u, int(done)) for u in upload_ids]
            )

    async def watching(self) -> list[str]:
        async with self.db.execute("SELECT upload_id FROM watched WHERE done = 0") as cur:
            return [r[0] for r in await cur.fetchall()]

    async def enqueue(
        self,
        subject: str,
        account: str,
        targets: list[str],
        report: dict[str, Any],
        *,
        finishes_watch: bool = False,
    ) -> None:
        """One delivery per target, in one transaction with the end of the watch."""
        now = time.time()
        body = orjson.dumps(report)
        async with self._write() as db:
            await db.executemany(
                "INSERT OR IGNORE INTO deliveries (delivery_id, subject, account, target, "
                "report, next_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(str(uuid.uuid4()), subject, account, t, body, now, now) for t in targets],
            )
            if finishes_watch:
                await db.execute("UPDATE watched SET done = 1 WHERE upload_id = ?", (subject,))

    # ---------------------------------------------------------------- sender side

    async def recover(self) -> int:
        """Attempts cut short by a crash: their result is unknown, so they are sent again."""
        async with self._write() as db:
            cursor = await db.execute(
                "UPDATE deliveries SET state = 'pending' WHERE state = 'sending'"
            )
        return cursor.rowcount

    async def claim_due(self, limit: int, now: float | None = None) -> list[Delivery]:
        """Due pending deliveries, marked ``sending`` before any attempt starts."""
        now = time.time() if now is None else now
        return await self._claim(
            "state = 'pending' AND next_at <= ? ORDER BY next_at LIMIT ?", (now, limit)
        )

    async def claim_subject(self, subject: str) -> list[Delivery]:
        """The pending deliveries of one subject (an upload), due or not, marked ``sending``:
        none that another process has already claimed."""
        return await self._claim("subject = ? AND state = 'pending' ORDER BY target", (subject,))

    async def _claim(self, where: str, params: tuple[object, ...]) -> list[Delivery]:
        """The deliveries `where` selects, marked ``sending`` in the same write transaction
        (so no other process claims them too)."""
        async with self._write() as db:
            async with db.execute(
                f"SELECT {_COLUMNS} FROM deliveries WHERE {where}", params
            ) as cur:
                rows = [_delivery(r) for r in await cur.fetchall()]
            await db.executemany(
                "UPDATE deliveries SET state = 'sending' WHERE delivery_id = ?",
                [(d.delivery_id,) for d in rows],
            )
        return rows

    async def of_subject(self, subject: str) -> list[Delivery]:
        async with self.db.execute(
            f"SELECT {_COLUMNS} FROM deliveries WHERE subject = ? ORDER BY target", (subject,)
        ) as cur:
            return [_delivery(r) for r in await cur.fetchall()]

    async def next_due(self) -> float | None:
        async with self.db.execute(
            "SELECT MIN(next_at) FROM deliveries WHERE state = 'pending'"
        ) as cur:
            row = await cur.fetchone()
        return row[0] if row else None

    async def delivered(self, delivery_id: str) -> None:
        async with self._write() as db:
            await db.execute(
                "UPDATE deliveries SET state = 'delivered', attempts = attempts + 1, "
                "delivered_at = ?, last_error = NULL WHERE delivery_id = ?",
                (time.time(), delivery_id),
            )

    async def attempt_failed(self, delivery_id: str, error: str, retry_at: float | None) -> None:
        """A failed attempt: retried at `retry_at`, or ``failed`` for good when None."""
        async with self._write() as db:
            await db.execute(
                "UPDATE deliveries SET state = ?, attempts = attempts + 1, last_error = ?, "
                "next_at = COALESCE(?, next_at) WHERE delivery_id = ?",
                (
                    "pending" if retry_at is not None else "failed",
                    error[:500],
                    retry_at,
                    delivery_id,
                ),
            )

    # ---------------------------------------------------------------- operator side

    async def deliveries(
        self, account: str | None = None, state: str | None = None, limit: int = 100
    ) -> list[Delivery]:
        query = f"SELECT {_COLUMNS} FROM deliveries WHERE 1 = 1"
        args: list[Any] = []
        if account is not None:
            query += " AND account = ?"
            args.append(account)
        if state is not None:
            query += " AND state = ?"
            args.append(state)
        query += " ORDER BY created_at DESC LIMIT ?"
        async with self.db.execute(query, (*args, limit)) as cur:
            return [_delivery(r) for r in await cur.fetchall()]

    async def resend(self, account: str, delivery_ids: list[str] | None = None) -> int:
        """Failed deliveries of the account (all, or those ids) queued again, same ids."""
        query = (
            "UPDATE deliveries SET state = 'pending', attempts = 0, next_at = ? "
            "WHERE account = ? AND state = 'failed'"
        )
        args: list[Any] = [time.time(), account]
        if delivery_ids is not None:
            query += f" AND delivery_id IN ({','.join('?' * len(delivery_ids))})"
            args += delivery_ids
        async with self._write() as db:
            cursor = await db.execute(query, args)
        return cursor.rowcount
