#!/usr/bin/env python3
"""End-to-end import throughput of the embedded runtime beside the single-core floor.

The floor is the least any implementation must do per line in Python on this machine:
parse the JSON, look the idempotency key up in a dict, serialize the record. Both are
measured in the same run, so the ratio is meaningful on a noisy shared machine.
Reports medians of --runs runs, peak RSS of each import, and dedup bytes per key.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_zeta import write

NOW = "2024-06-01T12:00:00Z"


def floor(path: Path) -> float:
    """Lines/s of parse + dict dedup + serialize: the single-core floor."""
    seen: dict[str, int] = {}
    start = time.perf_counter()
    lines = 0
    with path.open("rb") as handle:
        for line in handle:
            record = orjson.loads(line)
            key = record["idempotencyKey"]
            if key not in seen:
                seen[key] = lines
                orjson.dumps(record)
            lines += 1
    return lines / (time.perf_counter() - start)


def dedup_bytes_per_key(db: Path) -> tuple[float, int]:
    """On-disk bytes of the dedup state (the `dedup` table and its expiry index, pages as
    SQLite's dbstat counts them) per dedup key, and the number of keys."""
    conn = sqlite3.connect(db)
    try:
        sizes = dict(conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"))
        keys = conn.execute("SELECT COUNT(*) FROM st_dedup").fetchone()[0]
    finally:
        conn.close()
    total = sizes.get("st_dedup", 0) + sizes.get("st_dedup_expiry", 0)
    return total / max(keys, 1), keys


def run_import(path: Path, lines: int) -> tuple[float, int, tuple[float, int]]:
    with tempfile.TemporaryDirectory() as data:
        cmd = [
            sys.executable,
            "-m",
            "tidegate.cli",
            "import",
            str(path),
            "--account",
            "bench",
            "--data",
            data,
            "--now",
            NOW,
            "--json",
        ]
        start = time.perf_counter()
        out = Path(data) / "report.json"
        with out.open("wb") as sink:
            # taskset pins the import to one core: the target is per core.
            proc = subprocess.Popen(["taskset", "-c", "0", *cmd], stdout=sink)
            _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) not in (0, 1):
            raise SystemExit(f"import failed: {status}")
        report = orjson.loads(out.read_bytes())
        assert report["counts"]["records"] == lines, report
        return lines / elapsed, usage.ru_maxrss, dedup_bytes_per_key(Path(data) / "tidegate.db")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.jsonl"
        write(path, args.lines)
        rates, floors, peaks = [], [], []
        for _ in range(args.runs):
            floors.append(floor(path))
            rate, peak, (per_key, keys) = run_import(path, args.lines)
            rates.append(rate)
            peaks.append(peak)
        small = Path(tmp) / "small.jsonl"
        write(small, args.lines // 10)
        small_rate, small_peak, _ = run_import(small, args.lines // 10)
        small.unlink()
    median_rate, median_floor = statistics.median(rates), statistics.median(floors)
    print(f"lines: {args.lines:,}  runs: {args.runs}")
    print(
        f"embedded import: median {median_rate:,.0f} events/s (runs: {[round(r) for r in rates]})"
    )
    print(f"single-core floor (parse+dict dedup+serialize): median {median_floor:,.0f} lines/s")
    print(f"ratio import/floor: {median_rate / median_floor:.2f}")
    print(
        f"peak RSS: {statistics.median(peaks) / 1024:.0f} MiB for {args.lines:,} lines, "
        f"{small_peak / 1024:.0f} MiB for {args.lines // 10:,} lines "
        f"({small_rate:,.0f} ev/s)"
    )
    print(f"dedup state on disk: {per_key:.0f} B per key ({keys:,} keys, table + expiry index)")


if __name__ == "__main__":
    main()
