#!/usr/bin/env python3
"""Peak memory of `tidegate import` against drop size: a 1 GB drop beside a 100 MB one.

Memory must be flat in file size: the readers stream, the engine works in batches, and
state is bounded by the keys inside the dedup window (here every key is distinct, the
worst case for the state table, which lives on disk in SQLite).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peak_rss
from gen_zeta import write

LINE_BYTES = 215  # the generator's average line length, to size the drops


def import_peak(path: Path, data: Path) -> tuple[float, float, dict[str, int]]:
    cmd = [
        sys.executable,
        "-m",
        "tidegate.cli",
        "import",
        str(path),
        "--account",
        "bench",
        "--data",
        str(data),
        "--now",
        "2024-06-01T12:00:00Z",
        "--json",
    ]
    report = data.parent / f"{path.stem}.report.json"
    with report.open("wb") as sink:
        _code, elapsed, peak = peak_rss.run(cmd, sink)
    return peak, elapsed, orjson.loads(report.read_bytes())["counts"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--big-mb", type=int, default=1024)
    parser.add_argument("--small-mb", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = []
        for megabytes in (args.small_mb, args.big_mb):
            drop = Path(tmp) / f"drop-{megabytes}mb.jsonl"
            write(drop, megabytes * 1_000_000 // LINE_BYTES)
            size = drop.stat().st_size
            peak, elapsed, counts = import_peak(drop, Path(tmp) / f"data-{megabytes}")
            drop.unlink()
            results.append((size, peak, elapsed, counts))
            print(
                f"{size / 1e6:,.0f} MB drop, {counts['records']:,} records: peak RSS {peak:,.0f} MiB, "
                f"{elapsed:,.0f} s ({counts['records'] / elapsed:,.0f} records/s)",
                flush=True,
            )
    (small_size, small_peak, _, _), (big_size, big_peak, _, _) = results
    print(f"file {big_size / small_size:.1f}x larger -> peak RSS {big_peak / small_peak:.2f}x")


if __name__ == "__main__":
    main()
