#!/usr/bin/env python3
"""Benchmarks the streaming file readers on a generated 1,000,000-line Zeta JSONL file.

    .venv/bin/python scripts/bench_readers.py [--lines N] [--runs 3] [--all]

Prints lines/s for `iter_lines` over the plain file (the median of `--runs` runs). With
`--all`, also the same file gzip-compressed, and the full framing path
(`open_upload` + `iter_member_records`, which builds a `RawRecord` per line). The files
are written to a temporary directory and removed afterwards.
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.files.lines import iter_lines
from connectors.files.upload import iter_member_records, open_upload


def write_zeta(path: Path, count: int) -> int:
    """A Zeta JSONL drop with varied lines (~190 bytes each); returns its size."""
    base_ms = 1_717_000_000_000
    events = ("purchased", "viewed", "liked", "shared", "added_to_cart")
    with path.open("wb") as out:
        batch: list[bytes] = []
        for i in range(count):
            batch.append(
                b'{"user_id": "u%d", "event_type": "%s", "timestamp": %d, '
                b'"url": "https://shop.example.com/p/%d", "resource_id": "sku-%d", '
                b'"keywords": ["clothing", "footwear"], "price": %d.99}\n'
                % (
                    i % 50_000,
                    events[i % 5].encode(),
                    base_ms + i * 1000,
                    i % 997,
                    i % 997,
                    i % 300,
                )
            )
            if len(batch) == 10_000:
                out.write(b"".join(batch))
                batch.clear()
        out.write(b"".join(batch))
    return path.stat().st_size


def measure(label: str, count: int, runs: int, body: Callable[[], int], size: int) -> float:
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        seen = body()
        elapsed = time.perf_counter() - start
        if seen != count:
            raise SystemExit(f"{label}: expected {count} lines, got {seen}")
        rates.append(count / elapsed)
    median = statistics.median(rates)
    print(
        f"{label:<34} {median:>12,.0f} lines/s   {median * size / count / 1e6:>7.1f} MB/s   "
        f"(runs: {', '.join(f'{r:,.0f}' for r in rates)})"
    )
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--all", action="store_true", help="also gzip and full framing")
    args = parser.parse_args()
    count: int = args.lines

    with tempfile.TemporaryDirectory(prefix="tidegate-bench-") as tmp:
        plain = Path(tmp) / "zeta.jsonl"
        size = write_zeta(plain, count)
        print(f"{count:,} Zeta lines, {size / 1e6:.1f} MB, median of {args.runs} runs")

        def lines_plain() -> int:
            with plain.open("rb") as stream:
                return sum(1 for _ in iter_lines(stream))

        measure("iter_lines (plain file)", count, args.runs, lines_plain, size)
        if not args.all:
            return

        packed = Path(tmp) / "zeta.jsonl.gz"
        with plain.open("rb") as source, gzip.open(packed, "wb", compresslevel=6) as sink:
            while chunk := source.read(1 << 20):
                sink.write(chunk)

        def lines_gzip() -> int:
            with gzip.open(packed, "rb") as stream:
                return sum(1 for _ in iter_lines(cast(BinaryIO, stream)))

        measure("iter_lines (gzip)", count, args.runs, lines_gzip, size)

        def framed(path: Path) -> Callable[[], int]:
            def run() -> int:
                with open_upload(
                    path,
                    account="bench",
                    upload_id="bench",
                    received_at=datetime.now(UTC),
                    dialect=None,
                    trigger=False,
                ) as upload:
                    return sum(
                        1 for member in upload.members for _ in iter_member_records(upload, member)
                    )

            return run

        measure("open_upload + records (plain)", count, args.runs, framed(plain), size)
        measure("open_upload + records (gzip)", count, args.runs, framed(packed), size)


if __name__ == "__main__":
    main()
