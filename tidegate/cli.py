"""The `tidegate` command line: validate, import, run, worker, uploads, upload, doctor."""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from streams.core.records import Dialect
from streams.core.timeparse import from_iso

DIALECTS = [d.value for d in Dialect if d is not Dialect.CANONICAL]
DEFAULT_DATA = Path(os.environ.get("TIDEGATE_DATA", "data"))


def _now_arg(value: str) -> datetime:
    parsed = from_iso(value)
    if parsed is None:
        raise argparse.ArgumentTypeError(f"--now wants an ISO-8601 time, not {value!r}")
    return parsed


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tidegate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    v = sub.add_parser("validate", help="dry-run a file or archive through every stateless rule")
    v.add_argument("path", type=Path)
    v.add_argument("--dialect", choices=DIALECTS)
    v.add_argument("--now", type=_now_arg, help="receipt time for the time window (default: now)")
    v.add_argument("--json", action="store_true", help="print one JSON report")
    v.add_argument("--errors-out", type=Path, help="write the rejected rows as a feedback file")

    i = sub.add_parser("import", help="import a file or archive as one upload and wait for it")
    i.add_argument("path", type=Path)
    i.add_argument("--account", required=True)
    i.add_argument("--dialect", choices=DIALECTS)
    i.add_argument(
        "--trigger", action="store_true", help="let the imported events trigger campaigns"
    )
    i.add_argument("--now", type=_now_arg, help="fix the receipt and processing clock (tests)")
    i.add_argument("--data", type=Path, default=DEFAULT_DATA)
    i.add_argument("--config", type=Path, help="accounts file (default: DATA/accounts.toml)")
    i.add_argument("--broker", help="kafka://HOST:PORT to import through the Kafka runtime")
    i.add_argument("--json", action="store_true")

    r = sub.add_parser("run", help="run Tidegate: drop server, watched folder, HTTP API")
    r.add_argument("--data", type=Path, default=DEFAULT_DATA)
    r.add_argument("--config", type=Path, help="accounts file (default: DATA/accounts.toml)")
    r.add_argument("--broker", help="kafka://HOST:PORT: run the connectors against Kafka")
    r.add_argument("--host", default=os.environ.get("TIDEGATE_HOST", "127.0.0.1"))
    r.add_argument(
        "--sftp-port", type=int, default=int(os.environ.get("TIDEGATE_SFTP_PORT", "2222"))
    )
    r.add_argument(
        "--http-port", type=int, default=int(os.environ.get("TIDEGATE_HTTP_PORT", "8080"))
    )
    r.add_argument("--settle", type=float, default=2.0, help="seconds after an upload completes")
    r.add_argument(
        "--drain-seconds",
        type=float,
        default=float(os.environ.get("TIDEGATE_DRAIN_SECONDS", "10")),
        help="on SIGTERM/SIGINT, how long in-flight HTTP requests may take to finish",
    )

    w = sub.add_parser("worker", help="run a Faust worker of the Kafka runtime")
    w.add_argument("--broker", default=os.environ.get("TIDEGATE_BROKER", "kafka://127.0.0.1:9092"))
    w.add_argument(
        "--partitions", type=int, default=int(os.environ.get("TIDEGATE_PARTITIONS", "8"))
    )
    w.add_argument(
        "--state-dir", type=Path, default=Path(os.environ.get("TIDEGATE_STATE", "data/faust"))
    )
    w.add_argument("--config", type=Path)

    us = sub.add_parser("uploads", help="the upload history")
    us.add_argument("--account")
    us.add_argument("--data", type=Path, default=DEFAULT_DATA)
    us.add_argument("--json", action="store_true")
    us.add_argument("--limit", type=int, default=50)

    u = sub.add_parser("upload", help="one upload; --errors downloads its feedback file")
    u.add_argument("upload_id")
    u.add_argument("--data", type=Path, default=DEFAULT_DATA)
    u.add_argument("--errors", action="store_true", help="write the feedback file to stdout")
    u.add_argument("--json", action="store_true")
    d = sub.add_parser("doctor", help="check the data directory; --repair fixes what is safe")
    d.add_argument("--data", type=Path, default=DEFAULT_DATA)
    d.add_argument("--repair", action="store_true", help="apply the safe repairs")
    d.add_argument("--json", action="store_true")
    return parser


def _print_json(value: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(value, option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.flush()


def cmd_validate(args: argparse.Namespace) -> int:
    from tidegate.validate import validate_path, write_feedback

    rows: list[Any] | None = [] if args.errors_out else None
    now = args.now or datetime.now(UTC)
    dialect = Dialect(args.dialect) if args.dialect else None
    report = validate_path(args.path, dialect=dialect, now=now, rejected_rows=rows)
    if args.errors_out and rows is not None:
        write_feedback(rows, args.errors_out)
    if args.json:
        _print_json(report.as_json())
    else:
        _print_summary(report.as_json(), args.path.name)
    return report.exit_code


def _print_summary(data: dict[str, Any], name: str, limit: int = 20) -> None:
    counts = data["counts"]
    print(f"{name}: {data['status']} ({data.get('dialect') or 'unknown dialect'})")
    if counts:
        print("  " + ", ".join(f"{k} {v}" for k, v in counts.items() if not isinstance(v, dict)))
    if data.get("fatal"):
        print(f"  fatal: {data['fatal']['code']}: {data['fatal']['message']}")
    for warning in data.get("warnings", []):
        print(f"  warning: {warning}")
    errors = data.get("errors", [])
    for error in errors[:limit]:
        where = error["file"] if error["line"] is None else f"{error['file']}:{error['line']}"
        print(f"  {where}: {error['code']}: {error['message']}")
    if len(errors) > limit:
        print(f"  ... and {len(errors) - limit} more (use --json for all)")


# Cyclic-GC thresholds for the data commands: the pipelines allocate millions of small
# acyclic objects (records, dicts) while holding large state caches, so the default
# thresholds (700, 10, 10) run full collections that walk those caches over and over:
# ~12 % of a 200k-line import's CPU (measured with the collector off). Cycles are still
# collected, just in larger steps.
GC_THRESHOLDS = (100_000, 50, 100)


def tune_gc() -> None:
    gc.set_threshold(*GC_THRESHOLDS)
    gc.freeze()  # what is loaded by now (modules, tables) is never garbage: never scan it


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    tune_gc()
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "validate": cmd_validate,
        "import": _lazy("tidegate.commands", "cmd_import"),
        "run": _lazy("tidegate.commands", "cmd_run"),
        "worker": _lazy("tidegate.commands", "cmd_worker"),
        "uploads": _lazy("tidegate.commands", "cmd_uploads"),
        "upload": _lazy("tidegate.commands", "cmd_upload"),
        "doctor": _lazy("tidegate.doctor", "cmd_doctor"),
    }
    from streams.embedded.datadir import DataDirDamaged
    from streams.embedded.engine import DataDirInUse

    try:
        return commands[args.command](args)
    except KeyboardInterrupt:
        return 130
    except DataDirInUse as busy:
        print(f"tidegate: {busy}", file=sys.stderr)
        return 2
    except DataDirDamaged as damaged:
        print(f"tidegate: {damaged}", file=sys.stderr)
        return 3


def _lazy(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    def call(args: argparse.Namespace) -> int:
        import importlib

        command: Callable[[argparse.Namespace], int] = getattr(
            importlib.import_module(module), name
        )
        return command(args)

    return call


def run_async(coro: Any) -> Any:
    return asyncio.run(coro)


if __name__ == "__main__":
    sys.exit(main())
