#!/usr/bin/env python3
"""End-to-end import throughput of the embedded runtime beside the single-core floor.

The floor is the least any implementation must do per line in Python on this machine:
parse the JSON, look the idempotency key up in a dict, serialize the record. The core
alone is Tidegate's own rules with no runtime: normalize, decide against an in-memory
store, serialize the accepted records (no reader, no SQLite, no output file), the most
the embedded runtime could reach with free I/O. All are measured in the same run, so the
ratios are meaningful on a noisy shared machine.
Reports medians of --runs runs, peak RSS of each import, and dedup bytes per key.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import peak_rss
from gen_zeta import write

from streams.core.decide import decide
from streams.core.normalize import normalize
from streams.core.outputs import dump_event
from streams.core.records import (
    Dialect,
    Event,
    OutcomeKind,
    RawRecord,
    SourceKind,
    source_factory,
)
from streams.core.settings import DEFAULT_SETTINGS
from streams.core.state import MemoryStore
from streams.core.timeparse import from_iso

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


def core_alone(path: Path) -> float:
    """Lines/s of the core's rules alone: normalize, decide on a MemoryStore, serialize."""
    now = from_iso(NOW)
    assert now is not None
    make = source_factory(SourceKind.FILE, Dialect.ZETA, "bench", "bench", path.name, None)
    store = MemoryStore()
    lines = 0
    start = time.perf_counter()
    with path.open("rb") as handle:
        for lines, line in enumerate(handle, 1):
            result = normalize(RawRecord(make(lines), now, line.rstrip(b"\n")))
            if type(result) is Event:
                decision = decide(
                    result, store, now, DEFAULT_SETTINGS, in_place=True, track_seen=False
                )
                if decision is not None and decision.outcome.kind is OutcomeKind.ACCEPTED:
                    dump_event(result)
    return lines / (time.perf_counter() - start)


def run_core_alone(path: Path) -> float:
    """`core_alone` in its own process pinned to one core, as the import is: run here, its
    store would stay in this process's memory and inflate the imports' peak RSS (a forked
    child's maximum RSS counts the parent's pages)."""
    script = Path(__file__).resolve()
    out = subprocess.run(
        ["taskset", "-c", "0", sys.executable, str(script), "--core-alone", str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout.strip())


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


def run_import(path: Path, lines: int) -> tuple[float, float, tuple[float, int]]:
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
        out = Path(data) / "report.json"
        with out.open("wb") as sink:
            # taskset pins the import to one core: the target is per core.
            code, elapsed, peak = peak_rss.run(["taskset", "-c", "0", *cmd], sink)
        if code not in (0, 1):
            raise SystemExit(f"import failed: exit {code}")
        report = orjson.loads(out.read_bytes())
        assert report["counts"]["records"] == lines, report
        return lines / elapsed, peak, dedup_bytes_per_key(Path(data) / "tidegate.db")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--core-alone", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.core_alone:
        print(core_alone(args.core_alone))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.jsonl"
        write(path, args.lines)
        rates, floors, cores, peaks = [], [], [], []
        for _ in range(args.runs):
            floors.append(floor(path))
            cores.append(run_core_alone(path))
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
    median_core = statistics.median(cores)
    print(
        f"core alone (normalize+decide in memory+serialize): median {median_core:,.0f} lines/s "
        f"(runs: {[round(c) for c in cores]})"
    )
    print(f"ratio import/floor: {median_rate / median_floor:.2f}")
    print(f"ratio import/core alone: {median_rate / median_core:.2f}")
    print(
        f"peak RSS: {statistics.median(peaks):.0f} MiB for {args.lines:,} lines, "
        f"{small_peak:.0f} MiB for {args.lines // 10:,} lines "
        f"({small_rate:,.0f} ev/s)"
    )
    print(f"dedup state on disk: {per_key:.0f} B per key ({keys:,} keys, table + expiry index)")


if __name__ == "__main__":
    main()
