"""`tidegate replay UPLOAD [--code C] [--force]`: re-submit an upload's dead letters as a new upload.

Once the cause of rejections is fixed (a raised limit, a new account), the rejected rows
of an upload (its feedback rows, in their own format, which re-import as they are) are
submitted as a new file upload of the same account and dialect, named
`replay-<n>-of-<upload>-<feedback file name>`. Every replayed row is written to the
`replays` table beside the ledger (source upload, file, line, replay file), so a row is
not replayed twice unless `--force`. The new upload goes through a running `tidegate run`
when there is one, like `tidegate import`, with the same report and exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson

from streams.core.feedback import RejectedRow, feedback_file
from tidegate.settings import Settings

DB_NAME = "tidegate.db"  # the embedded runtime's ledger (streams/embedded/engine.py)
REPLAYS = """
CREATE TABLE IF NOT EXISTS replays (
    source_upload TEXT NOT NULL, file TEXT NOT NULL, line INTEGER NOT NULL,
    replay_file TEXT NOT NULL, replayed_at TEXT NOT NULL,
    PRIMARY KEY (source_upload, file, line, replay_file)
) WITHOUT ROWID
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], data_help: str) -> None:
    r = sub.add_parser("replay", help="re-submit an upload's rejected rows as a new upload")
    r.add_argument("upload_id", help="the upload (or a unique prefix of its id)")
    r.add_argument("--code", action="append", help="only rows rejected with this code")
    r.add_argument("--force", action="store_true", help="also rows replayed before")
    r.add_argument("--data", help=data_help)
    r.add_argument("--config", type=Path)
    r.add_argument("--json", action="store_true")


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    db = settings.data / DB_NAME
    if not db.exists():
        print(f"tidegate replay: no data in {settings.data}", file=sys.stderr)
        return 2
    conn = sqlite3.connect(db, timeout=30, isolation_level=None)
    try:
        conn.execute(REPLAYS)
        found = conn.execute(
            "SELECT upload_id, account, filename, dialect, trigger FROM uploads "
            "WHERE upload_id LIKE ? || '%' AND kind != 'refused'",
            (args.upload_id,),
        ).fetchall()
        if len(found) != 1:
            print(f"tidegate replay: no single upload {args.upload_id}", file=sys.stderr)
            return 2
        source, account, filename, dialect, trigger = found[0]
        query = "SELECT file, line, code, message, raw, header FROM rejections WHERE upload_id = ?"
        params: list[object] = [source]
        if args.code:
            query += f" AND code IN ({', '.join('?' * len(args.code))})"
            params += args.code
        if not args.force:
            query += (
                " AND NOT EXISTS (SELECT 1 FROM replays r WHERE r.source_upload = upload_id "
                "AND r.file = rejections.file AND r.line = rejections.line)"
            )
        rows = [
            RejectedRow(f, line, code, message, raw, tuple(orjson.loads(h)) if h else None)
            for f, line, code, message, raw, h in conn.execute(
                query + " ORDER BY file, line", params
            ).fetchall()
        ]
        if not rows:
            print(
                f"tidegate replay: nothing to replay in {source[:8]} ({filename}): no rejected "
                "row" + (" with that code" if args.code else "") + " that was not replayed "
                "before (--force replays again)",
                file=sys.stderr,
            )
            return 1
        (n,) = conn.execute(
            "SELECT COUNT(DISTINCT replay_file) FROM replays WHERE source_upload = ?", (source,)
        ).fetchone()
        name, content = feedback_file(rows, filename)
        replay_name = f"replay-{n + 1}-of-{source[:8]}-{name}"
        directory = settings.data / "replays"
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / replay_name
        path.write_bytes(b"".join(content))
        now = datetime.now(UTC).isoformat()
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT OR REPLACE INTO replays VALUES (?, ?, ?, ?, ?)",
            [(source, row.file, row.line, replay_name, now) for row in rows],
        )
        conn.execute("COMMIT")
    finally:
        conn.close()
    if not args.json:
        print(f"replaying {len(rows)} rows of {source[:8]} ({filename}) as {replay_name}")
    from tidegate.commands import _import

    return asyncio.run(
        _import(
            argparse.Namespace(
                path=path,
                account=account,
                dialect=dialect,
                trigger=bool(trigger),
                now=None,
                config=args.config,
                json=args.json,
                broker=None,
            ),
            settings,
        )
    )
