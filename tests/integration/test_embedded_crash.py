"""Crash safety of the embedded runtime: kill -9 mid-import, restart, every outcome once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

NOW = "2024-06-01T12:00:00Z"
LINES = 200_000


def _write_drop(path: Path) -> int:
    """Writes the drop; returns how many distinct idempotency keys have a good line."""
    keys: set[int] = set()
    with path.open("wb") as out:
        for i in range(LINES):
            if i % 1000 == 7:
                out.write(b"{not json\n")  # a bad line: dead-lettered, neighbours unaffected
                continue
            record = {
                "user_id": f"u{i % 5000}",
                "event_type": "viewed",
                "timestamp": "2024-06-01T10:00:00Z",
                "idempotencyKey": f"k{i % 150_000}",  # 50,000 repeats: duplicates
                "page": i,
            }
            out.write(orjson.dumps(record) + b"\n")
            keys.add(i % 150_000)
    return len(keys)


def _import(data: Path, drop: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tidegate.cli",
            "import",
            str(drop),
            "--account",
            "acme",
            "--data",
            str(data),
            "--now",
            NOW,
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _event_ids(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [json.loads(line)["event_id"] for line in path.read_bytes().splitlines() if line]


@pytest.mark.slow
def test_kill_9_mid_import_then_restart_writes_every_outcome_once(tmp_path: Path) -> None:
    drop = tmp_path / "events-200k.jsonl"
    distinct_keys = _write_drop(drop)
    data = tmp_path / "data"
    accepted = data / "out" / "accepted.jsonl"

    first = _import(data, drop)
    deadline = time.monotonic() + 120
    # Kill once a good part, but not all, of the upload has been committed.
    while time.monotonic() < deadline:
        if accepted.exists() and accepted.stat().st_size > 5_000_000:
            break
        assert first.poll() is None, first.stderr.read() if first.stderr else b""
        time.sleep(0.05)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    lines_before = len(_event_ids(accepted))
    assert 0 < lines_before < 150_000, "the kill must land mid-import"

    second = _import(data, drop)
    out, err = second.communicate(timeout=600)
    assert second.returncode == 1, err.decode()  # partial: the bad lines are rejected
    report = orjson.loads(out)
    counts = report["counts"]

    accepted_ids = _event_ids(accepted)
    dead_ids = _event_ids(data / "out" / "deadletter.jsonl")
    assert not [i for i, n in Counter(accepted_ids).items() if n > 1], "an event_id twice"
    assert not [i for i, n in Counter(dead_ids).items() if n > 1]
    assert not set(accepted_ids) & set(dead_ids)
    bad = LINES // 1000
    assert counts["records"] == LINES
    assert counts["rejected"] == len(dead_ids) == bad
    assert counts["accepted"] == len(accepted_ids) == distinct_keys
    assert counts["duplicate"] == LINES - counts["accepted"] - bad
