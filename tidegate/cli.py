"""The `tidegate` command line: validate, import, run, worker, uploads, upload, doctor."""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streams.core.records import Dialect
from streams.core.timeparse import from_iso
from tidegate.mapping_arg import load_mapping_arg
from tidegate.reports import print_json, print_summary

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
    v.add_argument("--mapping", type=Path, help="CSV column mapping (JSON or TOML)")

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
    i.add_argument("--mapping", type=Path, help="CSV column mapping (JSON or TOML)")
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
        "--ftp-port",
        type=int,
        default=int(os.environ.get("TIDEGATE_FTP_PORT", "2121")),
        help="FTP drop with explicit TLS (0: any free port, -1: off)",
    )
    r.add_argument(
        "--ftp-passive-ports",
        default=os.environ.get("TIDEGATE_FTP_PASSIVE_PORTS"),
        help="LOW-HIGH: the ports offered for FTP data connections (default: any free port)",
    )
    r.add_argument(
        "--ftp-masquerade-address",
        default=os.environ.get("TIDEGATE_FTP_MASQUERADE_ADDRESS"),
        help="the address announced in PASV replies when behind NAT",
    )
    r.add_argument(
        "--ftp-cert",
        type=Path,
        default=os.environ.get("TIDEGATE_FTP_CERT"),
        help="PEM certificate chain (default: self-signed, generated into DATA)",
    )
    r.add_argument("--ftp-key", type=Path, default=os.environ.get("TIDEGATE_FTP_KEY"))
    r.add_argument(
        "--ftp-allow-plain",
        action="store_true",
        default=os.environ.get("TIDEGATE_FTP_ALLOW_PLAIN") == "1",
        help="also accept plain FTP (passwords in clear text): off by default",
    )
    r.add_argument(
        "--s3-interval",
        type=float,
        default=float(os.environ.get("TIDEGATE_S3_INTERVAL", "30")),
        help="seconds between listings of each account's S3 prefix (docs/S3.md)",
    )
    r.add_argument(
        "--drain-seconds",
        type=float,
        default=float(os.environ.get("TIDEGATE_DRAIN_SECONDS", "10")),
        help="on SIGTERM/SIGINT, how long in-flight HTTP requests may take to finish",
    )
    r.add_argument(
        "--login-timeout",
        type=float,
        default=float(os.environ.get("TIDEGATE_LOGIN_TIMEOUT", "60")),
        help="seconds an SFTP or FTP connection has to log in before it is closed",
    )
    r.add_argument(
        "--idle-timeout",
        type=float,
        default=float(os.environ.get("TIDEGATE_IDLE_TIMEOUT", "300")),
        help="seconds without an SFTP request or FTP command before a connection is closed",
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

    n = sub.add_parser("notifications", help="emails and webhooks: deliveries, re-sends, secrets")
    n.add_argument("action", choices=["list", "resend", "secret"])
    n.add_argument("--data", type=Path, default=DEFAULT_DATA)
    n.add_argument("--account", required=True)
    n.add_argument("--state", choices=["pending", "sending", "delivered", "failed"])
    n.add_argument("--id", action="append", dest="ids", help="resend: only this delivery id")
    n.add_argument("--url", help="secret: the webhook URL whose signing secret to (re)create")
    n.add_argument("--json", action="store_true")

    u = sub.add_parser("upload", help="one upload; --errors downloads its feedback file")
    u.add_argument("upload_id")
    u.add_argument("--data", type=Path, default=DEFAULT_DATA)
    u.add_argument("--errors", action="store_true", help="write the feedback file to stdout")
    u.add_argument("--json", action="store_true")

    from tidegate.accounts_cli import add_parser as add_accounts_parser

    add_accounts_parser(sub, DEFAULT_DATA)
    from tidegate.replay import add_parser as add_replay_parser

    add_replay_parser(sub, DEFAULT_DATA)
    s3 = sub.add_parser("s3-secret", help="store an account's S3 secret access key (stdin)")
    s3.add_argument("account")
    s3.add_argument("--data", type=Path, default=DEFAULT_DATA)
    s3.add_argument("--config", type=Path, help="accounts file (default: DATA/accounts.toml)")
    d = sub.add_parser("doctor", help="check the data directory; --repair fixes what is safe")
    d.add_argument("--data", type=Path, default=DEFAULT_DATA)
    d.add_argument("--repair", action="store_true", help="apply the safe repairs")
    d.add_argument("--json", action="store_true")
    return parser


def cmd_validate(args: argparse.Namespace) -> int:
    from tidegate.validate import validate_path, write_feedback

    rows: list[Any] | None = [] if args.errors_out else None
    now = args.now or datetime.now(UTC)
    dialect = Dialect(args.dialect) if args.dialect else None
    mapping = load_mapping_arg(args)
    if isinstance(mapping, int):
        return mapping
    report = validate_path(args.path, dialect=dialect, now=now, rejected_rows=rows, mapping=mapping)
    if args.errors_out and rows is not None:
        write_feedback(rows, args.errors_out)
    if args.json:
        print_json(report.as_json())
    else:
        print_summary(report.as_json(), args.path.name)
    return report.exit_code


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
        "accounts": _lazy("tidegate.accounts_cli", "cmd_accounts"),
        "replay": _lazy("tidegate.replay", "cmd_replay"),
        "s3-secret": _lazy("tidegate.s3_secret", "cmd_s3_secret"),
        "notifications": _lazy("tidegate.notifications", "cmd_notifications"),
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


if __name__ == "__main__":
    sys.exit(main())
