#!/usr/bin/env python3
"""`tidegate validate` throughput on a 1,000,000-line Zeta file, one core (median of runs)."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peak_rss
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
            with out.open("wb") as sink:
                _code, elapsed, peak = peak_rss.run(cmd, sink)
            report = orjson.loads(out.read_bytes())
            assert report["counts"]["records"] == args.lines, report["counts"]
            rates.append(args.lines / elapsed)
            peaks.append(peak)
    print(
        f"validate {args.lines:,} Zeta lines on one core: median {statistics.median(rates):,.0f} "
        f"lines/s (runs {[round(r) for r in rates]}), peak RSS {statistics.median(peaks):.0f} MiB"
    )


if __name__ == "__main__":
    main()
