"""A damaged data directory: `import` and `run` refuse with what is wrong and how to recover; doctor."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson

NOW = "2024-06-01T12:00:00Z"
LINES = 300


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tidegate.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _drop(path: Path, first: int = 0) -> Path:
    with path.open("wb") as out:
        for i in range(first, first + LINES):
            record = {
                "user_id": f"u{i % 40}",
                "event_type": "viewed",
                "timestamp": "2024-06-01T10:00:00Z",
                "idempotencyKey": f"k{i}",
            }
            out.write(orjson.dumps(record) + b"\n")
    return path


def _import(data: Path, drop: Path) -> subprocess.CompletedProcess[str]:
    return _cli(
        "import", str(drop), "--account", "acme", "--data", str(data), "--now", NOW, "--json"
    )


def _accepted_keys(data: Path) -> list[str]:
    path = data / "out" / "accepted.jsonl"
    return [json.loads(line)["event_id"] for line in path.read_bytes().splitlines() if line]


def _imported(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    first = _import(data, _drop(tmp_path / "a.jsonl"))
    assert first.returncode == 0, first.stderr
    assert len(_accepted_keys(data)) == LINES
    return data


def _doctor(data: Path, *extra: str) -> tuple[int, dict[str, object]]:
    done = _cli("doctor", "--data", str(data), "--json", *extra)
    return done.returncode, orjson.loads(done.stdout)


def _codes(report: dict[str, object]) -> list[str]:
    problems = report["problems"]
    assert isinstance(problems, list)
    return [p["code"] for p in problems]


def _assert_refused(done: subprocess.CompletedProcess[str], code: str) -> None:
    assert done.returncode == 3, done.stderr
    assert f"{code}:" in done.stderr
    assert "to recover:" in done.stderr
    assert "tidegate doctor" in done.stderr


def test_a_new_data_directory_gets_its_format_version(tmp_path: Path) -> None:
    data = _imported(tmp_path)
    assert (data / "FORMAT").read_text() == "tidegate-data-format 1\n"
    code, report = _doctor(data)
    assert code == 0 and report["usable"] is True and _codes(report) == []


def test_a_truncated_state_database_refuses_to_start_and_is_left_as_it_is(tmp_path: Path) -> None:
    data = _imported(tmp_path)
    db = data / "tidegate.db"
    size = db.stat().st_size
    with db.open("r+b") as handle:
        handle.truncate(size // 2)
    damaged = db.read_bytes()
    _assert_refused(_import(data, _drop(tmp_path / "b.jsonl", LINES)), "state_corrupt")
    assert db.read_bytes() == damaged, "the damaged file must not be touched"
    assert len(_accepted_keys(data)) == LINES
    code, report = _doctor(data, "--repair")
    assert code == 1 and "state_corrupt" in _codes(report) and report["repaired"] == []


def test_a_state_database_cut_to_nothing_is_not_taken_for_a_new_one(tmp_path: Path) -> None:
    data = _imported(tmp_path)
    (data / "tidegate.db").write_bytes(b"")
    _assert_refused(_import(data, _drop(tmp_path / "a2.jsonl")), "state_missing")
    assert len(_accepted_keys(data)) == LINES, "no record decided again on an empty state"


def test_a_deleted_state_database_refuses_to_start(tmp_path: Path) -> None:
    data = _imported(tmp_path)
    (data / "tidegate.db").unlink()
    (data / "FORMAT").unlink()  # even without the version file: the outputs tell
    _assert_refused(_import(data, _drop(tmp_path / "a2.jsonl")), "state_missing")
    assert not (data / "tidegate.db").exists()


def test_corrupted_pages_refuse_to_start(tmp_path: Path) -> None:
    data = _imported(tmp_path)
    db = data / "tidegate.db"
    raw = bytearray(db.read_bytes())
    page = 8192
    assert len(raw) >= 3 * page
    raw[page : 3 * page] = b"\xa5" * (2 * page)  # the pages after the schema page
    db.write_bytes(bytes(raw))
    _assert_refused(_import(data, _drop(tmp_path / "b.jsonl", LINES)), "state_corrupt")


def test_a_missing_output_refuses_to_start_until_restored_then_nothing_twice(
    tmp_path: Path,
) -> None:
    data = _imported(tmp_path)
    accepted = data / "out" / "accepted.jsonl"
    backup = tmp_path / "accepted.backup"
    shutil.copyfile(accepted, backup)
    accepted.unlink()
    done = _import(data, _drop(tmp_path / "b.jsonl", LINES))
    _assert_refused(done, "output_missing")
    assert "accepted.jsonl" in done.stderr
    assert not accepted.exists(), "not recreated empty"

    shutil.copyfile(backup, accepted)
    # The first drop again under another name: every record a duplicate, plus new ones.
    again = _import(data, _drop(tmp_path / "c.jsonl", LINES // 2))
    assert again.returncode == 0, again.stderr
    counts = orjson.loads(again.stdout)["counts"]
    assert counts["duplicate"] == LINES // 2 and counts["accepted"] == LINES // 2
    keys = _accepted_keys(data)
    assert len(keys) == LINES + LINES // 2
    assert max(Counter(keys).values()) == 1


def test_a_shortened_output_refuses_to_start(tmp_path: Path) -> None:
    data = _imported(tmp_path)
    accepted = data / "out" / "accepted.jsonl"
    with accepted.open("r+b") as handle:
        handle.truncate(accepted.stat().st_size - 10)
    _assert_refused(_import(data, _drop(tmp_path / "b.jsonl", LINES)), "output_short")


def test_a_directory_of_a_newer_version_refuses_run_and_import(tmp_path: Path) -> None:
    data = _imported(tmp_path)
    (data / "FORMAT").write_text("tidegate-data-format 2\n")
    _assert_refused(_import(data, _drop(tmp_path / "b.jsonl", LINES)), "format_newer")
    run = _cli(
        "run", "--data", str(data), "--sftp-port", "0", "--http-port", "0", "--settle", "0.1"
    )
    _assert_refused(run, "format_newer")
    assert "newer Tidegate" in run.stderr
    assert (data / "FORMAT").read_text() == "tidegate-data-format 2\n"


def test_an_uncommitted_tail_is_a_note_that_repair_cuts(tmp_path: Path) -> None:
    data = _imported(tmp_path)
    accepted = data / "out" / "accepted.jsonl"
    size = accepted.stat().st_size
    with accepted.open("ab") as handle:
        handle.write(b'{"event_id": "half a li')
    code, report = _doctor(data)
    assert code == 0 and _codes(report) == ["output_uncommitted"]
    code, report = _doctor(data, "--repair")
    assert code == 0 and report["repaired"] == ["output_uncommitted"] and _codes(report) == []
    assert accepted.stat().st_size == size


def test_a_damaged_index_is_found_by_doctor_and_rebuilt_without_loss(tmp_path: Path) -> None:
    # Start-up runs quick_check, which does not compare indexes with tables; doctor does.
    data = _imported(tmp_path)
    db = data / "tidegate.db"
    conn = sqlite3.connect(db)
    # Make the index describe other columns than the ones its entries were built from.
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute(
        "UPDATE sqlite_master SET sql = 'CREATE INDEX uploads_by_account ON uploads "
        "(filename, seq)' WHERE name = 'uploads_by_account'"
    )
    conn.commit()
    conn.close()
    code, report = _doctor(data)
    assert code == 1 and _codes(report) == ["index_corrupt"]
    code, report = _doctor(data, "--repair")
    assert code == 0 and report["repaired"] == ["index_corrupt"], report
    again = _import(data, _drop(tmp_path / "a2.jsonl"))
    assert again.returncode == 0, again.stderr
    assert orjson.loads(again.stdout)["counts"]["duplicate"] == LINES
    assert len(_accepted_keys(data)) == LINES
