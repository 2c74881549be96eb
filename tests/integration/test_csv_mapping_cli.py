"""CSV column mappings as a user sets them: `validate`/`import --mapping`, and per account."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

FIXTURES = Path(__file__).parent.parent / "fixtures"
MAPPING = FIXTURES / "mapping"
NOW = "2023-10-03T00:00:00Z"


def tidegate(*args: str) -> tuple[int, dict[str, Any], str]:
    proc = subprocess.run(
        [sys.executable, "-m", "tidegate.cli", *args, "--json"],
        capture_output=True,
        check=False,
        timeout=120,
    )
    return proc.returncode, orjson.loads(proc.stdout), proc.stderr.decode()


def _outcome(report: dict[str, Any]) -> tuple[Any, ...]:
    return (report["status"], report["counts"], report.get("rejected_by_code"))


def test_validate_with_a_mapping_reports_what_the_own_dialect_reports() -> None:
    code, mapped, _ = tidegate(
        "validate",
        str(MAPPING / "naxai_contacts.csv"),
        "--mapping",
        str(MAPPING / "naxai_contacts.mapping.json"),
        "--now",
        NOW,
    )
    own_code, own, _ = tidegate("validate", str(MAPPING / "naxai_contacts.jsonl"), "--now", NOW)
    assert (
        (code, mapped["counts"])
        == (own_code, own["counts"])
        == (
            1,
            {"records": 6, "accepted": 3, "rejected": 3},
        )
    )
    assert [(e["line"], e["code"]) for e in mapped["errors"]] == [
        (5, "missing_identity"),
        (6, "missing_event_name"),
        (7, "invalid_timestamp"),
    ]  # the CSV's physical lines (the header is line 1)


def test_validate_refuses_a_file_lacking_a_mapped_column_with_a_stable_code() -> None:
    code, report, _ = tidegate(
        "validate",
        str(FIXTURES / "seeds" / "vero_checkouts.csv"),
        "--mapping",
        str(MAPPING / "missing_column.mapping.json"),
    )
    assert code == 2
    assert report["fatal"]["code"] == "mapping_missing_column"
    assert "'Event'" in report["fatal"]["message"]


def test_an_invalid_mapping_file_is_refused_before_reading(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"identifiers": {}, "event_name": "e"}')
    code, report, _ = tidegate(
        "validate", str(MAPPING / "naxai_contacts.csv"), "--mapping", str(bad)
    )
    assert code == 2 and report["fatal"]["code"] == "invalid_mapping"


def test_import_with_a_mapping_gives_the_outcomes_of_the_own_dialect(tmp_path: Path) -> None:
    common = ("--data", str(tmp_path / "data"), "--now", NOW)
    code, mapped, err = tidegate(
        "import",
        str(MAPPING / "naxai_contacts.csv"),
        "--account",
        "csvco",
        "--mapping",
        str(MAPPING / "naxai_contacts.mapping.json"),
        *common,
    )
    assert code == 1, err
    _, own, _ = tidegate(
        "import", str(MAPPING / "naxai_contacts.jsonl"), "--account", "jsonco", *common
    )
    assert _outcome(mapped) == _outcome(own)
    assert mapped["counts"]["accepted"] == 3


def test_an_accounts_default_mapping_applies_to_its_csv_uploads(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "accounts.toml").write_text(
        "[accounts.vero]\n"
        'csv_mapping = { identifiers = { email = "Customer Email" }, event_name = "What", '
        'timestamp = "When", timestamp_format = "vero" }\n'
        "[accounts.plain]\n"
    )
    common = ("--data", str(data), "--now", "2022-02-01T00:00:00Z")
    code, mapped, err = tidegate(
        "import", str(MAPPING / "vero_renamed.csv"), "--account", "vero", *common
    )
    assert code == 0, err
    assert mapped["counts"]["accepted"] == 3
    # another account has no mapping: the same file is read with Vero's own columns
    _, plain, _ = tidegate(
        "import", str(MAPPING / "vero_renamed.csv"), "--account", "plain", *common
    )
    assert plain["counts"]["accepted"] == 0 and plain["counts"]["rejected"] == 3
