"""`tidegate import` shows progress: a rich progress display on a terminal, plain lines otherwise."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[2]
NOW = "2024-06-01T12:00:00Z"


def write_drop(path: Path, lines: int) -> None:
    with path.open("wb") as out:
        for i in range(lines):
            out.write(
                orjson.dumps(
                    {
                        "user_id": f"u{i}",
                        "event_type": "viewed",
                        "timestamp": "2024-06-01T10:00:00Z",
                        "idempotencyKey": f"k{i}",
                    }
                )
                + b"\n"
            )


def import_command(drop: Path, data: Path) -> list[str]:
    return [
        sys.executable, "-m", "tidegate.cli", "import", str(drop), "--account", "acme",
        "--data", str(data), "--now", NOW,
    ]  # fmt: skip


def test_import_prints_plain_progress_lines_when_not_on_a_terminal(tmp_path: Path) -> None:
    drop = tmp_path / "drop.jsonl"
    write_drop(drop, 20_000)
    done = subprocess.run(
        import_command(drop, tmp_path / "data"),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={**os.environ, "TIDEGATE_PROGRESS_SECONDS": "0.05"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("progress: ")]
    assert lines, done.stderr
    counts = [int(ln.split()[1]) for ln in lines]
    assert counts == sorted(counts) and counts[-1] <= 20_000
    assert "\x1b[" not in done.stderr  # no terminal control codes in a log
    assert "20000" in done.stdout.replace(",", "")


def test_import_shows_a_rich_progress_display_on_a_terminal(tmp_path: Path) -> None:
    drop = tmp_path / "drop.jsonl"
    write_drop(drop, 20_000)
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        import_command(drop, tmp_path / "data"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=follower,
        cwd=REPO,
        env={**os.environ, "TERM": "xterm", "COLUMNS": "100"},
    )
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    out, _ = proc.communicate(timeout=60)
    os.close(leader)
    assert proc.returncode == 0, seen.decode(errors="replace")
    text = seen.decode(errors="replace")
    assert "importing" in text and "records" in text
    assert "\x1b[" in text  # drawn with terminal control codes (rich)
    assert "progress: " not in text
    assert b"20000" in out.replace(b",", b"")
