"""`tidegate doctor`: checks a stopped data directory and, with --repair, applies the safe repairs."""

from __future__ import annotations

import argparse
import sys

import orjson

from streams.embedded.datadir import check_data_dir
from streams.embedded.engine import _lock_data_dir
from tidegate.settings import Settings


def cmd_doctor(args: argparse.Namespace, settings: Settings) -> int:
    """0 when the directory can be used (after the repairs asked for), 1 when it cannot."""
    data = settings.data
    if not data.is_dir():
        print(f"tidegate doctor: {data} is not a directory", file=sys.stderr)
        return 2
    lock = _lock_data_dir(data)  # DataDirInUse while `tidegate run` or an import uses it
    try:
        problems = check_data_dir(data, thorough=True)
        repaired: list[str] = []
        if args.repair:
            for problem in problems:
                if problem.repair is not None:
                    problem.repair()
                    repaired.append(problem.code.value)
            if repaired:
                problems = check_data_dir(data, thorough=True)
    finally:
        lock.close()
    blocking = [p for p in problems if p.blocking]
    if args.json:
        report = {
            "data": str(data),
            "usable": not blocking,
            "repaired": repaired,
            "problems": [p.as_json() for p in problems],
        }
        sys.stdout.buffer.write(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        for code in repaired:
            print(f"repaired: {code}")
        for problem in problems:
            kind = "problem" if problem.blocking else "note"
            print(f"{kind}: {problem.code.value}: {problem.message}")
            print(f"  to recover: {problem.remedy}")
        print(f"{data}: " + ("cannot be used (see above)" if blocking else "ok"))
    return 1 if blocking else 0
