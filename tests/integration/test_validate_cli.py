"""`tidegate validate` as a user runs it: the seeds, the report contract, exit codes, feedback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

FIXTURES = Path(__file__).parent.parent / "fixtures"
SEEDS = FIXTURES / "seeds"
ARCHIVES = FIXTURES / "archives"


def validate(path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-m", "tidegate.cli", "validate", str(path), "--json", *args],
        capture_output=True,
        check=False,
    )
    return proc.returncode, orjson.loads(proc.stdout)


@pytest.mark.parametrize(
    ("name", "now", "dialect", "records"),
    [
        ("zeta_sample.jsonl", "2018-09-02T00:00:00Z", "zeta", 2),
        ("vero_checkouts.csv", "2022-02-01T00:00:00Z", "vero", 3),
        ("kissmetrics_valid.json", "2014-03-01T00:00:00Z", "kissmetrics", 4),
        ("kissmetrics_examples.json", "2012-02-01T00:00:00Z", "kissmetrics", 4),
        ("clevertap_upload.json", "2016-07-13T00:00:00Z", "clevertap", 2),
        ("naxai_events.jsonl", "2023-10-02T14:00:00Z", "naxai", 4),
    ],
)
def test_every_seed_example_is_accepted(name: str, now: str, dialect: str, records: int) -> None:
    code, report = validate(SEEDS / name, "--now", now)
    assert code == 0, report["errors"]
    assert report["status"] == "success"
    assert report["dialect"] == dialect
    assert report["counts"] == {"records": records, "accepted": records, "rejected": 0}
    assert report["fatal"] is None


def test_seed_invalid_kissmetrics_block_is_rejected_line_by_line() -> None:
    code, report = validate(SEEDS / "kissmetrics_invalid.json", "--now", "2014-03-01T00:00:00Z")
    assert code == 1
    assert [(e["line"], e["code"]) for e in report["errors"]] == [
        (n, "invalid_json") for n in range(1, 8)
    ]


def test_seed_examples_are_too_old_at_todays_clock() -> None:
    code, report = validate(SEEDS / "zeta_sample.jsonl", "--now", "2026-01-01T00:00:00Z")
    assert code == 1
    assert {e["code"] for e in report["errors"]} == {"timestamp_too_old"}


def test_a_broken_line_does_not_affect_its_neighbours(tmp_path: Path) -> None:
    drop = tmp_path / "drop.jsonl"
    good = b'{"user_id": "1", "event_type": "x", "timestamp": "2024-06-01T10:00:00Z"}'
    drop.write_bytes(
        b"\xef\xbb\xbf" + good + b"\r\n{broken\r\n\r\n" + good + b"\n\xff\xfe\n" + good
    )
    code, report = validate(drop, "--now", "2024-06-01T12:00:00Z")
    assert code == 1
    assert report["counts"] == {"records": 5, "accepted": 3, "rejected": 2}
    assert [(e["line"], e["code"]) for e in report["errors"]] == [
        (2, "invalid_json"),
        (5, "invalid_encoding"),
    ]


@pytest.mark.parametrize(
    ("archive", "code", "message"),
    [
        ("manifest_invalid.zip", "invalid_manifest", "Invalid manifest file format"),
        (
            "manifest_missing_file.zip",
            "manifest_missing_file",
            "File missing.jsonl was included in the manifest but not found in the archive.",
        ),
        (
            "manifest_unlisted_file.zip",
            "file_not_in_manifest",
            "File extra.jsonl was found in the archive but not included in the manifest.",
        ),
    ],
)
def test_manifest_errors_fail_the_whole_import_with_the_exact_message(
    archive: str, code: str, message: str
) -> None:
    exit_code, report = validate(ARCHIVES / archive, "--now", "2024-06-01T12:00:00Z")
    assert exit_code == 2
    assert report["status"] == "fail"
    assert report["fatal"] == {"code": code, "message": message}
    assert report["counts"]["records"] == 0


@pytest.mark.parametrize(
    "archive", ["traversal.zip", "traversal.tar.gz", "symlink.tar.gz", "hardlink.tar.gz"]
)
def test_unsafe_archive_is_refused(archive: str) -> None:
    exit_code, report = validate(ARCHIVES / archive)
    assert exit_code == 2
    assert report["fatal"]["code"] == "unsafe_archive"


def test_failed_member_gives_warning_and_the_rest_proceed() -> None:
    exit_code, report = validate(
        ARCHIVES / "unsupported_member.zip", "--now", "2024-06-01T12:00:00Z"
    )
    assert exit_code == 1
    assert report["status"] == "warning"
    assert report["counts"]["accepted"] >= 1
    assert any(
        e["file"] == "notes.pdf" and e["code"] == "unsupported_format" for e in report["errors"]
    )


def test_jsonl_feedback_file_revalidates_once_fixed(tmp_path: Path) -> None:
    drop = tmp_path / "drop.jsonl"
    drop.write_text(
        '{"user_id": "1", "event_type": "x", "timestamp": "2024-06-01T10:00:00Z"}\n'
        '{"user_id": "2", "event_type": "x", "timestamp": "yesterday"}\n'
        '{"user_id": "3", "event_type": "x", "timestamp": "2024-06-01T10:00:00Z", "status": "y"}\n'
    )
    feedback = tmp_path / "drop.errors.jsonl"
    code, _ = validate(drop, "--now", "2024-06-01T12:00:00Z", "--errors-out", str(feedback))
    assert code == 1
    entries = [orjson.loads(line) for line in feedback.read_bytes().splitlines()]
    assert [(e["line"], e["code"]) for e in entries] == [
        (2, "invalid_timestamp"),
        (3, "reserved_field"),
    ]
    assert entries[0]["record"] == {"user_id": "2", "event_type": "x", "timestamp": "yesterday"}
    entries[0]["record"]["timestamp"] = "2024-06-01T09:00:00Z"
    entries[1]["record"]["order_status"] = entries[1]["record"].pop("status")
    feedback.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in entries))
    code, report = validate(feedback, "--now", "2024-06-01T12:00:00Z")
    assert code == 0, report["errors"]
    assert report["counts"]["accepted"] == 2


def test_csv_feedback_file_revalidates_once_fixed(tmp_path: Path) -> None:
    feedback = tmp_path / "bad_rows.errors.csv"
    code, _ = validate(
        FIXTURES / "uploads" / "bad_rows.csv",
        "--now",
        "2024-06-01T12:00:00Z",
        "--errors-out",
        str(feedback),
    )
    assert code == 1
    text = feedback.read_text()
    assert text.splitlines()[0].endswith(",error_code,error_message")
    fixed = text.replace(", Completes", "a@b.com, Completes", 1).replace(
        "not a time", "2024-05-03 10:00"
    )
    feedback.write_text(fixed)
    code, report = validate(feedback, "--now", "2024-06-01T12:00:00Z")
    assert code == 0, report["errors"]
    assert report["counts"]["accepted"] == 2


def test_unknown_extension_is_unsupported_format(tmp_path: Path) -> None:
    sheet = tmp_path / "events.xlsx"
    sheet.write_bytes(b"PK\x03\x04 not really")
    code, report = validate(sheet)
    assert code == 2
    assert report["fatal"]["code"] == "unsupported_format"


def test_one_file_that_cannot_be_read_at_all_is_fatal(tmp_path: Path) -> None:
    sheet = tmp_path / "events.csv"
    sheet.write_bytes(b"email, name, time, x, x\na@b.com, e, 2024-05-31 10:00, 1, 2\n")
    code, report = validate(sheet)
    assert code == 2
    assert report["fatal"]["code"] == "invalid_row"
    assert "names column 'x' twice" in report["fatal"]["message"]
    assert report["errors"] == []
