"""`tidegate import` beside a running `tidegate run`: submitted through it, same report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.integration.test_run_end_to_end import Running, _accepted, _events, running  # noqa: F401


def tidegate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tidegate.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k != "upload_id"}


def test_import_beside_run_gives_the_same_report_and_reaches_its_outputs(
    running: Running,  # noqa: F811
    tmp_path: Path,
) -> None:
    upload = tmp_path / "mixed.jsonl"
    upload.write_bytes(_events(5, "beside") + b"{broken\n")
    alone = tidegate(
        "import", str(upload), "--account", "demo", "--data", str(tmp_path / "alone"), "--json"
    )
    beside = tidegate(
        "import", str(upload), "--account", "demo", "--data", str(running.data), "--json"
    )
    assert beside.returncode == alone.returncode == 1, beside.stderr
    assert "in use" not in beside.stderr
    report = json.loads(beside.stdout)
    assert comparable(report) == comparable(json.loads(alone.stdout))
    assert report["counts"]["accepted"] == 5 and report["rejected_by_code"] == {"invalid_json": 1}
    text = json.dumps(_accepted(running.data))
    assert all(f"beside-{i}" in text for i in range(5))

    again = tidegate(
        "import", str(upload), "--account", "demo", "--data", str(running.data), "--json"
    )
    assert again.returncode == 2
    assert json.loads(again.stdout)["fatal"]["code"] == "duplicate_filename"

    # read-only commands work beside it
    history = tidegate("uploads", "--data", str(running.data), "--json")
    assert history.returncode == 0, history.stderr
    assert report["upload_id"] in {u["upload_id"] for u in json.loads(history.stdout)}
    one = tidegate("upload", report["upload_id"], "--data", str(running.data), "--errors")
    assert one.returncode == 0 and "invalid_json" in one.stdout
