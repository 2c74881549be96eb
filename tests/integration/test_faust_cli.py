"""`tidegate import --broker`: an upload submitted to the Kafka runtime waits for its final
status and prints the same report as the embedded runtime gives for the same file."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.faust_helpers import NOW, NOW_ISO, REPO, SEEDS, Workers, _lines, _ts

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _import(path: Path, *extra: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tidegate.cli",
            "import",
            str(path),
            "--account",
            "acme",
            "--now",
            NOW_ISO,
            "--json",
            *extra,
        ],
        capture_output=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )
    assert done.returncode in (0, 1), done.stderr.decode()[-2000:]
    report: dict[str, Any] = orjson.loads(done.stdout)
    return report


def test_import_via_broker_reports_as_the_embedded_runtime(
    kafka_bootstrap: str, tmp_path: Path, prefix: str
) -> None:
    zeta = tmp_path / "mixed.jsonl"
    _lines(
        zeta,
        [
            {
                "user_id": "1",
                "email": "a@acme.com",
                "event_type": "buy",
                "timestamp": _ts(5),
                "idempotencyKey": "k1",
            },
            {"user_id": "1", "event_type": "buy", "timestamp": _ts(4), "idempotencyKey": "k1"},
            b"{not json",
            {"event_type": "orphan", "timestamp": _ts(3)},
            {"user_id": "2", "event_type": "view", "timestamp": "2019-01-01T00:00:00Z"},
            {"user_id": "3", "event_type": "view", "timestamp": _ts(1)},
        ],
    )
    vero = tmp_path / "checkouts.csv"
    seed_header = (SEEDS / "vero_checkouts.csv").read_bytes().splitlines()[0]
    moments = [(NOW - timedelta(minutes=m)).strftime("%Y-%m-%d %H:%M+00") for m in (90, 30)]
    vero.write_bytes(
        seed_header
        + b"\n"
        + b"".join(f"v@acme.com, Completes checkout, {m}, shirt\n".encode() for m in moments)
        + b"v@acme.com, Completes checkout, 2019-01-02 13:05+10, hat\n"
    )
    workers = Workers(kafka_bootstrap, tmp_path, prefix)
    try:
        workers.start(1)
        env = workers.env()
        for path, flags in ((zeta, ["--trigger"]), (vero, [])):
            embedded = _import(path, *flags, "--data", str(tmp_path / "embedded"))
            kafka = _import(path, *flags, "--broker", f"kafka://{kafka_bootstrap}", env=env)
            for field in ("status", "counts"):
                assert kafka[field] == embedded[field], (path.name, field, kafka, embedded)
            counts = kafka["counts"]
            assert counts["accepted"] and counts["rejected"], counts  # not a trivial file
            assert bool(counts["triggered"]) == bool(flags), counts
    except BaseException:
        print(workers.report())
        raise
    finally:
        workers.stop()
