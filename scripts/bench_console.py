#!/usr/bin/env python3
"""Server time of the console's history page with 10,000 uploads in the account.

Fills a ledger on disk (SQLite, as `tidegate run` keeps it) with --uploads uploads of one
account (and as many of another, which the page must skip), then renders the history page
in-process through the ASGI app (no network) and reports the median over --runs renders
of: the first page, a page deep in the history (keyset cursor), a status filter and a name
filter. Beside each, the ledger query alone (page_uploads) in the same run, for the share
the template takes.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from connectors.console.app import ConsoleSettings, create_console
from connectors.console.session import COOKIE, Sessions
from connectors.files.reader import read_upload
from streams.core.records import SourceKind
from streams.core.settings import SettingsRegistry
from streams.embedded.runtime import EmbeddedRuntime

STATUSES = ("success", "success", "success", "partial", "fail", "warning")


class _Accounts:
    def __init__(self) -> None:
        self.names = ["bench", "other"]

    def verify_api_key(self, account: str, key: str) -> bool:
        return False


async def fill(runtime: EmbeddedRuntime, uploads: int) -> None:
    counts = orjson.dumps(
        {"records": 1000, "accepted": 990, "duplicate": 5, "rejected": 5, "by_code": {}}
    ).decode()
    async with runtime.ledger.transaction() as db:
        for i in range(uploads * 2):
            account = "bench" if i % 2 == 0 else "other"
            upload_id = str(uuid.uuid4())
            await runtime.ledger.insert_upload(
                db,
                upload_id,
                account,
                f"drop-{i:06d}.jsonl",
                SourceKind.FILE,
                "zeta",
                None,
                False,
                "2026-12-05T10:00:00.000Z",
            )
            await db.execute(
                "UPDATE uploads SET status = ?, finished_at = ?, counts = ? WHERE upload_id = ?",
                (STATUSES[i % len(STATUSES)], "2026-12-05T10:00:01.000Z", counts, upload_id),
            )


async def median_ms(call: object, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()  # type: ignore[operator]
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--uploads", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        runtime = EmbeddedRuntime(data, SettingsRegistry.from_mapping({}), read_upload)
        await runtime.open_ledger()
        await fill(runtime, args.uploads)
        settings = ConsoleSettings()
        app, _ = create_console(
            runtime,
            _Accounts(),
            signing_key="bench-key",
            operator_check=lambda t: False,
            validate=lambda p: {},
            staging=data / "imports",
            settings=settings,
        )
        _, cookie = Sessions("bench-key", 3600).new("bench")
        _, deep_cursor = await runtime.page_uploads("bench", args.uploads // 2)
        cases = {
            "first page": ("/", {}),
            "page in the middle (keyset)": ("/", {"before": str(deep_cursor)}),
            "status filter (fail)": ("/", {"status": "fail"}),
            "name filter (drop-0099)": ("/", {"name": "drop-0099"}),
        }
        transport = httpx.ASGITransport(app=app)
        print(
            f"history page, {args.uploads} uploads in the account (+{args.uploads} in another),"
            f" {settings.page_size} rows a page, median of {args.runs} renders"
        )
        print(f"{'case':32} {'page ms':>9} {'query ms':>9}")
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", cookies={COOKIE: cookie}
        ) as client:
            for label, (path, params) in cases.items():
                answer = await client.get(path, params=params)
                assert answer.status_code == 200 and "<tbody" in answer.text, answer.status_code

                async def page(path: str = path, params: dict[str, str] = params) -> None:
                    await client.get(path, params=params)

                async def query(params: dict[str, str] = params) -> None:
                    before = params.get("before")
                    await runtime.page_uploads(
                        "bench",
                        settings.page_size,
                        before=int(before) if before else None,
                        status=params.get("status"),
                        name=params.get("name"),
                    )

                page_ms = await median_ms(page, args.runs)
                query_ms = await median_ms(query, args.runs)
                print(f"{label:32} {page_ms:9.2f} {query_ms:9.2f}")
        await runtime.close_ledger()


if __name__ == "__main__":
    asyncio.run(main())
