"""A watched-folder drop refused as duplicate_filename is in the history as fail with its code."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from tests.integration.test_run_end_to_end import Running, _events, running  # noqa: F401


def history(r: Running) -> list[dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-m", "tidegate.cli", "uploads", "--data", str(r.data), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    rows: list[dict[str, object]] = json.loads(done.stdout or "[]")
    return rows


def test_a_refused_watched_folder_drop_is_a_fail_in_the_history(running: Running) -> None:  # noqa: F811
    folder = running.data / "watch" / "demo" / "events"
    deadline = time.monotonic() + 10
    while not folder.is_dir() and time.monotonic() < deadline:
        time.sleep(0.05)
    (folder / "again.jsonl").write_bytes(_events(2, "w"))
    while len(history(running)) < 1 and time.monotonic() < deadline + 10:
        time.sleep(0.1)
    time.sleep(0.5)
    (folder / "again.jsonl").write_bytes(_events(2, "w2"))
    rows: list[dict[str, object]] = []
    end = time.monotonic() + 15
    while time.monotonic() < end:
        rows = history(running)
        if any(r["status"] == "fail" for r in rows):
            break
        time.sleep(0.1)
    refused = [r for r in rows if r["status"] == "fail"]
    assert len(refused) == 1, rows
    assert refused[0]["fatal"] == {
        "code": "duplicate_filename",
        "message": "File again.jsonl was already uploaded to account demo.",
    }
    assert refused[0]["filename"] == "again.jsonl" and refused[0]["kind"] == "refused"
    assert (folder / "again.jsonl.rejected.txt").exists()
