#!/usr/bin/env python3
"""Import throughput of the embedded runtime with a webhook receiver that hangs, beside the
same imports with no notifications, in the same run (medians of --runs, modes alternated).

Each run imports --files uploads of --lines Zeta lines through the `Ingest` port (as the
connectors do) into a fresh data directory and times submission to the last final status.
In the `hang` mode the account has a webhook whose receiver (uvicorn on loopback, another
process) accepts each request and never answers: every delivery holds a slot until its
timeout, so the import shares the machine with a notifier that is stuck.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from gen_zeta import write

from connectors.accounts import Account, Accounts
from connectors.files.reader import read_upload
from connectors.notifications.service import Notifier
from connectors.notifications.settings import NotifySettings
from connectors.ports import FileUpload, Ingest
from streams.core.settings import SettingsRegistry
from streams.embedded.runtime import EmbeddedRuntime

HANGING_APP = """
import asyncio
async def app(scope, receive, send):
    if scope["type"] == "http":
        await asyncio.sleep(3600)
"""


async def one_run(source: Path, files: int, url: str | None, work: Path) -> float:
    data = work / "data"
    runtime = EmbeddedRuntime(data, SettingsRegistry(), read_upload)
    await runtime.start()
    ingest: Ingest = runtime
    notifier = None
    if url is not None:
        account = Account("acme", "acme", webhooks=(url,))
        notifier = Notifier(runtime, Accounts([account]), data, NotifySettings())
        notifier.secrets.create("acme", url)
        await notifier.start()
        ingest = notifier.wrap(runtime)
    copies = []
    for i in range(files):
        copy = work / f"in{i}.jsonl"
        copy.write_bytes(source.read_bytes())
        copies.append(copy)
    started = time.perf_counter()
    ids = []
    for i, copy in enumerate(copies):
        upload = FileUpload("acme", f"drop{i}.jsonl", copy, datetime.now(UTC))
        receipt = await ingest.submit_file(upload)
        assert receipt.upload_id is not None
        ids.append(receipt.upload_id)
    for upload_id in ids:
        await ingest.wait(upload_id, timeout=3600)
    elapsed = time.perf_counter() - started
    if notifier is not None:
        await asyncio.sleep(2 * notifier.settings.poll_seconds)
        pending = await notifier.outbox.deliveries("acme")
        assert len(pending) == files, "every upload has its delivery"
        await notifier.stop()
    await runtime.stop()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--port", type=int, default=18931)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "hang.py").write_text(HANGING_APP)
        source = root / "source.jsonl"
        write(source, args.lines)
        receiver = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--app-dir",
                str(root),
                "hang:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(args.port),
                "--log-level",
                "warning",
            ]
        )
        time.sleep(2)
        url = f"http://127.0.0.1:{args.port}/hook"
        times: dict[str, list[float]] = {"none": [], "hang": []}
        try:
            for run in range(args.runs):
                order = ("none", "hang") if run % 2 == 0 else ("hang", "none")
                for mode in order:
                    work = root / f"{mode}{run}"
                    work.mkdir()
                    elapsed = asyncio.run(
                        one_run(source, args.files, url if mode == "hang" else None, work)
                    )
                    times[mode].append(elapsed)
                    rate = args.files * args.lines / elapsed
                    print(f"run {run + 1} {mode:5} {elapsed:7.2f} s  {rate:9,.0f} ev/s", flush=True)
        finally:
            receiver.terminate()
            receiver.wait()
    total = args.files * args.lines
    none = total / statistics.median(times["none"])
    hang = total / statistics.median(times["hang"])
    print(f"\n{args.files} uploads x {args.lines} lines, medians of {args.runs}:")
    print(f"  no notifications        {none:9,.0f} ev/s")
    print(f"  webhook receiver hangs  {hang:9,.0f} ev/s  ({hang / none:.1%} of the reference)")


if __name__ == "__main__":
    main()
