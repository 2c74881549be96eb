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
from tidegate.settings import Settings, SettingsError, build_settings

# every command: the parsed flags and the settings built from them once in `main`
Command = Callable[[argparse.Namespace, Settings], int]
DIALECTS = [d.value for d in Dialect if d is not Dialect.CANONICAL]
DATA_HELP = "data directory (default: data; TIDEGATE_DATA)"
# a command's --config is its accounts file; the settings file goes before the command
ACCOUNTS_HELP = (
    "accounts file (default: DATA/accounts.toml; a settings file is `tidegate --config FILE run`)"
)


def _now_arg(value: str) -> datetime:
    parsed = from_iso(value)
    if parsed is None:
        raise argparse.ArgumentTypeError(f"--now wants an ISO-8601 time, not {value!r}")
    return parsed


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tidegate", description=__doc__)
    # before the command: `tidegate --config tidegate.toml run`. A command's own --config
    # is its accounts file (kept as it was), hence the different dest.
    parser.add_argument(
        "--config",
        dest="settings_file",
        metavar="FILE",
        help="settings file (TOML; default: TIDEGATE_CONFIG; docs/CONFIGURATION.md)",
    )
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
    i.add_argument("--data", help=DATA_HELP)
    i.add_argument("--config", type=Path, help=ACCOUNTS_HELP)
    i.add_argument("--broker", help="kafka://HOST:PORT to import through the Kafka runtime")
    i.add_argument("--mapping", type=Path, help="CSV column mapping (JSON or TOML)")
    i.add_argument("--json", action="store_true")

    r = sub.add_parser("run", help="run Tidegate: drop server, watched folder, HTTP API")
    r.add_argument("--data", help=DATA_HELP)
    r.add_argument("--config", type=Path, help=ACCOUNTS_HELP)
    r.add_argument("--broker", help="kafka://HOST:PORT: run the connectors against Kafka")
    # No defaults here: a flag left out is absent from the merged settings, so the
    # environment, the config file or the default applies (tidegate/settings.py).
    r.add_argument("--host", help="listen address (default: 127.0.0.1)")
    r.add_argument("--sftp-port", help="SFTP drop (default: 2222; 0: any free port)")
    r.add_argument("--http-port", help="HTTP API and console (default: 8080; 0: any free port)")
    r.add_argument("--settle", help="seconds after an upload completes (default: 2)")
    r.add_argument(
        "--ftp-port", help="FTP drop with explicit TLS (default: 2121; 0: any free port, -1: off)"
    )
    r.add_argument(
        "--ftp-passive-ports",
        help="LOW-HIGH: the ports offered for FTP data connections (default: any free port)",
    )
    r.add_argument(
        "--ftp-masquerade-address",
        help="the address announced in PASV replies when behind NAT",
    )
    r.add_argument(
        "--ftp-cert", help="PEM certificate chain (default: self-signed, generated into DATA)"
    )
    r.add_argument("--ftp-key", help="PEM private key (default: in the certificate file)")
    r.add_argument(
        "--ftp-allow-plain",
        action="store_true",
        default=None,
        help="also accept plain FTP (passwords in clear text): off by default",
    )
    r.add_argument(
        "--s3-interval",
        help="seconds between listings of each account's S3 prefix (default: 30; docs/S3.md)",
    )
    r.add_argument(
        "--drain-seconds",
        help="on SIGTERM/SIGINT, how long in-flight HTTP requests may take to finish (default: 10)",
    )
    r.add_argument(
        "--login-timeout",
        help="seconds an SFTP or FTP connection has to log in before it is closed (default: 60)",
    )
    r.add_argument(
        "--idle-timeout",
        help="seconds without an SFTP request or FTP command before a connection is closed"
        " (default: 300)",
    )

    w = sub.add_parser("worker", help="run a Faust worker of the Kafka runtime")
    # no defaults here: an unset flag falls back to TIDEGATE_BROKER / _PARTITIONS / _STATE /
    # _METRICS_PORT or the settings file, read once into Settings.kafka (tidegate/settings.py)

    w.add_argument("--broker", help="kafka://HOST:PORT (default kafka://127.0.0.1:9092)")
    w.add_argument("--partitions", help="partitions of every topic (default 8)")
    w.add_argument("--state-dir", help="the worker's RocksDB tables (default data/faust)")
    w.add_argument("--metrics-port", help="serve Prometheus series on this port (0: any free)")
    w.add_argument("--config", type=Path)

    us = sub.add_parser("uploads", help="the upload history")
    us.add_argument("--account")
    us.add_argument("--data", help=DATA_HELP)
    us.add_argument("--json", action="store_true")
    us.add_argument("--limit", type=int, default=50)

    n = sub.add_parser("notifications", help="emails and webhooks: deliveries, re-sends, secrets")
    n.add_argument("action", choices=["list", "resend", "secret"])
    n.add_argument("--data", help=DATA_HELP)
    n.add_argument("--account", required=True)
    n.add_argument("--state", choices=["pending", "sending", "delivered", "failed"])
    n.add_argument("--id", action="append", dest="ids", help="resend: only this delivery id")
    n.add_argument("--url", help="secret: the webhook URL whose signing secret to (re)create")
    n.add_argument("--json", action="store_true")

    u = sub.add_parser("upload", help="one upload; --errors downloads its feedback file")
    u.add_argument("upload_id")
    u.add_argument("--data", help=DATA_HELP)
    u.add_argument("--errors", action="store_true", help="write the feedback file to stdout")
    u.add_argument("--json", action="store_true")

    from tidegate.accounts_cli import add_parser as add_accounts_parser

    add_accounts_parser(sub, DATA_HELP)
    from tidegate.replay import add_parser as add_replay_parser

    add_replay_parser(sub, DATA_HELP)
    s3 = sub.add_parser("s3-secret", help="store an account's S3 secret access key (stdin)")
    s3.add_argument("account")
    s3.add_argument("--data", help=DATA_HELP)
    s3.add_argument("--config", type=Path, help="accounts file (default: DATA/accounts.toml)")
    d = sub.add_parser("doctor", help="check the data directory; --repair fixes what is safe")
    d.add_argument("--data", help=DATA_HELP)
    d.add_argument("--repair", action="store_true", help="apply the safe repairs")
    d.add_argument("--json", action="store_true")
    return parser


def cmd_validate(args: argparse.Namespace, settings: Settings) -> int:
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
    try:  # the one place that reads the environment
        settings = build_settings(args, os.environ, args.settings_file)
    except SettingsError as bad:
        print(f"tidegate: {bad}", file=sys.stderr)
        return 2
    tune_gc()
    commands: dict[str, Command] = {
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
    from streams.core.config_values import SettingError
    from streams.embedded.datadir import DataDirDamaged
    from streams.embedded.engine import DataDirInUse

    try:
        return commands[args.command](args, settings)
    except KeyboardInterrupt:
        return 130
    except DataDirInUse as busy:
        print(f"tidegate: {busy}", file=sys.stderr)
        return 2
    except DataDirDamaged as damaged:
        print(f"tidegate: {damaged}", file=sys.stderr)
        return 3
    except SettingError as bad:  # one line naming the setting and its value, no traceback
        print(f"tidegate: {bad}", file=sys.stderr)
        return 2


def _lazy(module: str, name: str) -> Command:
    def call(args: argparse.Namespace, settings: Settings) -> int:
        import importlib

        command: Command = getattr(importlib.import_module(module), name)
        return command(args, settings)

    return call


if __name__ == "__main__":
    sys.exit(main())
