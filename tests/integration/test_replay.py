"""`tidegate replay`: an upload's dead letters re-submitted once the cause is fixed, never twice."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any


def tidegate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tidegate.cli", *args], capture_output=True, text=True, check=False
    )


def report(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_replay_after_a_raised_limit_accepts_the_dead_letters_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert tidegate("accounts", "--data", str(data), "add", "acme").returncode == 0
    assert (
        tidegate("accounts", "--data", str(data), "set", "acme", "max_properties=2").returncode == 0
    )
    ts = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S")
    lines = [
        {"user_id": "u1", "event_type": "viewed", "timestamp": ts, "a": 1},
        {"user_id": "u2", "event_type": "viewed", "timestamp": ts, "a": 1, "b": 2, "c": 3},
        {"user_id": "u3", "event_type": "viewed", "timestamp": ts, "d": 4, "e": 5},
    ]
    drop = tmp_path / "drop.jsonl"
    drop.write_text("\n".join(json.dumps(x) for x in lines) + "\n{broken\n")
    first = report(
        tidegate("import", str(drop), "--account", "acme", "--data", str(data), "--json")
    )
    assert first["rejected_by_code"] == {"too_many_properties": 2, "invalid_json": 1}

    tidegate("accounts", "--data", str(data), "set", "acme", "max_properties=256")
    replay = tidegate(
        "replay",
        first["upload_id"][:8],
        "--code",
        "too_many_properties",
        "--data",
        str(data),
        "--json",
    )
    assert replay.returncode == 0, replay.stderr
    second = report(replay)
    assert second["counts"]["accepted"] == 2 and second["counts"]["rejected"] == 0

    again = tidegate(
        "replay", first["upload_id"], "--code", "too_many_properties", "--data", str(data)
    )
    assert again.returncode == 1 and "nothing to replay" in again.stderr

    forced = tidegate("replay", first["upload_id"], "--force", "--data", str(data), "--json")
    assert report(forced)["counts"]["records"] == 3  # both rows again, and the invalid line
    history = report(tidegate("uploads", "--data", str(data), "--json"))
    names = [u["filename"] for u in history]  # type: ignore[index]
    short = first["upload_id"][:8]
    assert names[:2] == [
        f"replay-2-of-{short}-drop.errors.jsonl",
        f"replay-1-of-{short}-drop.errors.jsonl",
    ]
