#!/usr/bin/env python3
"""Writes a synthetic Zeta JSONL drop for benchmarks: N lines, realistic keys, some repeats."""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson


def write(
    path: Path,
    lines: int,
    users: int = 50_000,
    repeat_every: int = 10,
    *,
    timestamp: str = "2024-06-01T10:00:00Z",
    first: int = 0,
) -> None:
    """`first` numbers the lines (keys ``evt-<n>``), so files written from different
    `first`s hold different events; `timestamp` is every record's time."""
    with path.open("wb", buffering=1 << 20) as out:
        for i in range(first, first + lines):
            # Every 10th line repeats the previous line's event (same user, same key).
            n = i - 1 if i % repeat_every == 0 and i else i
            out.write(
                orjson.dumps(
                    {
                        "user_id": f"user-{n % users}",
                        "email": f"user-{n % users}@example.com",
                        "event_type": "viewed_product",
                        "timestamp": timestamp,
                        "idempotencyKey": f"evt-{n}",
                        "url": f"https://shop.example/p/{i % 977}",
                        "price": 19.99,
                        "tags": ["a", "b"],
                    }
                )
                + b"\n"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("path", type=Path)
    parser.add_argument("--lines", type=int, default=1_000_000)
    args = parser.parse_args()
    write(args.path, args.lines)
