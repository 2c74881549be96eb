#!/usr/bin/env python3
"""Import throughput of the embedded runtime with a webhook receiver that hangs, beside the
same imports with no notifications, in the same run (medians of --runs, modes alternated).

Each run imports --files uploads of --lines Zeta lines through the `Ingest` port (as the
connectors do) into a fresh data directory and times submission to the last final status.
In the `hang` mode the account has a webhook whose receiver (uvicorn on loopback, another
process) accepts each request and never answers: every delivery holds a slot until its
timeout, so the import shares the machine with a notifier that is stuck. The records are
timestamped an hour before the run (inside the allowed window) and each upload holds its own
events, so every line is decided and none is a duplicate of another file's.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def one_run(sources: list[Path], url: str | None, work: Path) -> tuple[float, int]:
    """Seconds from the first submission to the last final status, and the records accepted."""
    files = len(sources)
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
    for i, source in enumerate(sources):
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
    views = [await ingest.wait(upload_id, timeout=3600) for upload_id in ids]
    elapsed = time.perf_counter() - started
    accepted = sum(int(v.counts.get("accepted", 0)) for v in views)
    if notifier is not None:
        await asyncio.sleep(2 * notifier.settings.poll_seconds)
        pending = await notifier.outbox.deliveries("acme")
        assert len(pending) == files, "every upload has its delivery"
        assert not any(d.state == "delivered" for d in pending), "the receiver answered"
        await notifier.stop()
    await runtime.stop()
    return elapsed, accepted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--port", type=int, default=0, help="the receiver's (0: a free one)")
    args = parser.parse_args()
    port = args.port or free_port()
    stamp = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "hang.py").write_text(HANGING_APP)
        sources = []
        for i in range(args.files):
            source = root / f"source{i}.jsonl"
            write(source, args.lines, timestamp=stamp, first=i * args.lines)
            sources.append(source)
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
                str(port),
                "--log-level",
                "warning",
            ]
        )
        time.sleep(2)
        url = f"http://127.0.0.1:{port}/hook"
        times: dict[str, list[float]] = {"none": [], "hang": []}
        try:
            for run in range(args.runs):
                order = ("none", "hang") if run % 2 == 0 else ("hang", "none")
                for mode in order:
                    work = root / f"{mode}{run}"
                    work.mkdir()
                    elapsed, accepted = asyncio.run(
                        one_run(sources, url if mode == "hang" else None, work)
                    )
                    times[mode].append(elapsed)
                    rate = args.files * args.lines / elapsed
                    print(
                        f"run {run + 1} {mode:5} {elapsed:7.2f} s  {rate:9,.0f} ev/s  "
                        f"accepted {accepted:,}",
                        flush=True,
                    )
        finally:
            # SIGKILL: uvicorn's graceful shutdown waits for the requests it holds, which
            # this receiver never answers
            receiver.kill()
            receiver.wait()
    total = args.files * args.lines
    none = total / statistics.median(times["none"])
    hang = total / statistics.median(times["hang"])
    print(f"\n{args.files} uploads x {args.lines} lines, medians of {args.runs}:")
    print(f"  no notifications        {none:9,.0f} ev/s")
    print(f"  webhook receiver hangs  {hang:9,.0f} ev/s  ({hang / none:.1%} of the reference)")


if __name__ == "__main__":
    main()
