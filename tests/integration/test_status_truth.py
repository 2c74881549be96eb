"""Statuses that tell the truth: no records, refused files in the history, `upload --errors`, 80 columns."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

SEEDS = Path(__file__).parent.parent / "fixtures" / "seeds"
NOW = "2023-10-02T14:00:00Z"


def tidegate(*args: str, columns: int | None = None) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ)
    if columns is not None:
        env["COLUMNS"] = str(columns)
    return subprocess.run(
        [sys.executable, "-m", "tidegate.cli", *args], capture_output=True, check=False, env=env
    )


def import_json(data: Path, path: Path) -> tuple[int, dict[str, Any]]:
    proc = tidegate(
        "import", str(path), "--account", "acme", "--data", str(data), "--now", NOW, "--json"
    )
    return proc.returncode, orjson.loads(proc.stdout)


def history(data: Path) -> list[dict[str, Any]]:
    proc = tidegate("uploads", "--data", str(data), "--json")
    assert proc.returncode == 0, proc.stderr
    rows: list[dict[str, Any]] = orjson.loads(proc.stdout)
    return rows


def test_an_empty_file_is_warning_no_records(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    code, report = import_json(tmp_path / "data", empty)
    assert report["status"] == "warning"
    assert "no records" in report["warnings"]
    assert code == 1


def test_a_refused_file_is_in_the_history_as_fail_with_its_code(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert import_json(data, SEEDS / "naxai_events.jsonl")[0] == 0
    code, report = import_json(data, SEEDS / "naxai_events.jsonl")
    assert code == 2 and report["fatal"]["code"] == "duplicate_filename"
    rows = history(data)
    assert [(r["status"], (r["fatal"] or {}).get("code")) for r in rows] == [
        ("fail", "duplicate_filename"),
        ("success", None),
    ]
    assert rows[0]["kind"] == "refused"


def test_upload_errors_says_why_there_is_no_file_and_exits_non_zero(tmp_path: Path) -> None:
    data = tmp_path / "data"
    import_json(data, SEEDS / "naxai_events.jsonl")
    import_json(data, SEEDS / "naxai_events.jsonl")
    refused, clean = history(data)
    proc = tidegate("upload", refused["upload_id"], "--data", str(data), "--errors")
    assert proc.returncode == 1 and proc.stdout == b""
    assert b"refused as a whole: duplicate_filename" in proc.stderr
    proc = tidegate("upload", clean["upload_id"], "--data", str(data), "--errors")
    assert proc.returncode == 1 and b"no rejected record" in proc.stderr


def test_the_history_table_fits_80_columns(tmp_path: Path) -> None:
    data = tmp_path / "data"
    long = tmp_path / ("a-very-long-file-name-that-would-push-the-table-wide-" * 2 + ".jsonl")
    long.write_bytes((SEEDS / "naxai_events.jsonl").read_bytes())
    import_json(data, long)
    import_json(data, long)
    proc = tidegate("uploads", "--data", str(data), columns=80)
    lines = proc.stdout.decode().splitlines()
    assert lines and max(len(line) for line in lines) <= 80
    assert len(lines) == 3  # the header and one line per upload: nothing wraps
    assert "fail duplicat" in lines[1]  # a refused file shows its code (cut to fit)
    assert history(data)[1]["filename"] == long.name  # --json keeps the whole name


def test_a_tar_holding_only_a_folder_is_warning_no_records(tmp_path: Path) -> None:
    import tarfile

    folder = tmp_path / "only"
    folder.mkdir()
    archive = tmp_path / "folder.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="only")
    _code, report = import_json(tmp_path / "data", archive)
    assert (report["status"], report["warnings"], report["fatal"]) == (
        "warning",
        ["no records"],
        None,
    )
