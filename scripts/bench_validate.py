#!/usr/bin/env python3
"""`tidegate validate` throughput on a 1,000,000-line Zeta file, one core (median of runs)."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_zeta import write


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "drop.jsonl"
        write(path, args.lines)
        rates, peaks = [], []
        for _ in range(args.runs):
            cmd = [
                "taskset",
                "-c",
                "0",
                sys.executable,
                "-m",
                "tidegate.cli",
                "validate",
                str(path),
                "--now",
                "2024-06-01T12:00:00Z",
                "--json",
            ]
            out = Path(tmp) / "report.json"
            start = time.perf_counter()
            with out.open("wb") as sink:
                proc = subprocess.Popen(cmd, stdout=sink)
                _, _status, usage = os.wait4(proc.pid, 0)
            elapsed = time.perf_counter() - start
            report = orjson.loads(out.read_bytes())
            assert report["counts"]["records"] == args.lines, report["counts"]
            rates.append(args.lines / elapsed)
            peaks.append(usage.ru_maxrss / 1024)
    print(
        f"validate {args.lines:,} Zeta lines on one core: median {statistics.median(rates):,.0f} "
        f"lines/s (runs {[round(r) for r in rates]}), peak RSS {statistics.median(peaks):.0f} MiB"
    )


if __name__ == "__main__":
    main()
