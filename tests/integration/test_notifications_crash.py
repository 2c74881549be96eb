"""kill -9 of `tidegate run` with webhook deliveries pending, then restart: every one arrives."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from connectors.notifications.signing import verify
from tests.integration.notify_helpers import Hook, free_port, until, webhook_server
from tests.integration.run_helpers import read_welcome, start_run

UPLOADS = Path(__file__).parent.parent / "fixtures" / "uploads"
FILES = 4

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "TIDEGATE_NOTIFY_POLL": "0.1",
        "TIDEGATE_NOTIFY_RETRY_BASE": "3",
        "TIDEGATE_NOTIFY_RETRY_MAX_DELAY": "3",
        "TIDEGATE_NOTIFY_TIMEOUT": "2",
    }


async def _start(data: Path) -> subprocess.Popen[str]:
    proc = start_run(data, "--settle", "0.2", env=_env())
    # in a thread: the webhook receiver shares this event loop and must answer meanwhile
    await asyncio.to_thread(read_welcome, proc, 60, "Tidegate is running")
    return proc


def _attempted(data: Path) -> list[tuple[str, int]]:
    path = data / "notifications.sqlite3"
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        return list(db.execute("SELECT state, attempts FROM deliveries"))


async def test_kill_9_with_deliveries_pending_then_restart_delivers_every_one(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    config = data / "accounts.toml"
    config.write_text(f'[accounts.acme]\nwebhooks = ["{url}"]\n')
    config.chmod(0o600)
    made = subprocess.run(
        [
            *(sys.executable, "-m", "tidegate.cli", "notifications", "secret"),
            *("--data", str(data), "--account", "acme", "--url", url),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    secret = made.stdout.split()[-1]
    assert secret.startswith("whsec_")

    proc = await _start(data)  # the receiver is down: every attempt fails, all stay pending
    try:
        events = data / "watch" / "acme" / "events"
        for i in range(FILES):
            (events / f".drop{i}").write_bytes((UPLOADS / "new_users.jsonl").read_bytes())
            (events / f".drop{i}").rename(events / f"drop{i}.jsonl")
        await until(
            lambda: (
                (rows := _attempted(data)) != []
                and len(rows) == FILES
                and all(state == "pending" and n >= 1 for state, n in rows)
            ),
            timeout=60,
        )
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    hook = Hook()
    async with webhook_server(hook, port):
        proc = await _start(data)
        try:
            await until(lambda: len(hook.received) >= FILES, timeout=60)
            await asyncio.sleep(2 * 3)  # a retry period: nothing more comes
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    reports = [orjson.loads(body) for _, body in hook.received]
    assert sorted(r["filename"] for r in reports) == [f"drop{i}.jsonl" for i in range(FILES)]
    assert len({r["delivery_id"] for r in reports}) == FILES
    now = int(time.time())
    assert all(verify(secret, h["tidegate-signature"], b, now) for h, b in hook.received)
    assert sorted(state for state, _ in _attempted(data)) == ["delivered"] * FILES
