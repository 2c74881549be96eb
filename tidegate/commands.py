"""The long-running and stateful commands: import, run, worker, uploads, upload."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.ports import FileUpload, UploadView
from streams.core.errors import Rejection
from streams.core.records import Dialect
from streams.core.settings import SettingsRegistry
from streams.embedded.runtime import EmbeddedRuntime
from tidegate.cli import _print_json, _print_summary, load_mapping_arg
from tidegate.files import read_upload, upload_reader


def load_settings(config: Path | None, data: Path) -> SettingsRegistry:
    """Per-account rule settings from the accounts file, when there is one."""
    from connectors.accounts import load_accounts
    from tidegate.serve import accounts_path, settings_of

    path = accounts_path(config, data)
    return settings_of(load_accounts(path)) if path.exists() else SettingsRegistry()


def make_runtime(
    data: Path, settings: SettingsRegistry, now: datetime | None, reader: Any = None
) -> EmbeddedRuntime:
    clock = (lambda: now) if now is not None else (lambda: datetime.now(UTC))
    return EmbeddedRuntime(data, settings, reader or read_upload, clock=clock)


def load_mappings(config: Path | None, data: Path) -> dict[str, Any]:
    """The accounts' default CSV mappings (``csv_mapping``), when there is an accounts file."""
    from connectors.accounts import load_accounts
    from tidegate.serve import accounts_path, mappings_of

    path = accounts_path(config, data)
    return mappings_of(load_accounts(path)) if path.exists() else {}


def report_of(view: UploadView) -> dict[str, Any]:
    counts = view.counts
    return {
        "upload_id": view.upload_id,
        "status": view.status,
        "dialect": view.dialect,
        "counts": {
            "records": counts.get("records", 0),
            "accepted": counts.get("accepted", 0),
            "duplicate": counts.get("duplicate", 0),
            "rejected": counts.get("rejected", 0),
            "triggered": counts.get("triggered", 0),
        },
        "rejected_by_code": counts.get("by_code", {}),
        "warnings": view.warnings,
        "fatal": view.fatal,
    }


def print_refusal(refused: Rejection, name: str, *, as_json: bool) -> None:
    """The report of an upload refused as a whole before any record was read."""
    fatal = {"code": refused.code.value, "message": refused.message}
    report = {"status": "fail", "counts": {}, "warnings": [], "fatal": fatal}
    _print_json(report) if as_json else _print_summary({**report, "errors": []}, name)


async def _import(args: argparse.Namespace) -> int:
    mapping = load_mapping_arg(args)
    if isinstance(mapping, int):
        return mapping
    reader = upload_reader(load_mappings(args.config, args.data), mapping)
    runtime = make_runtime(args.data, load_settings(args.config, args.data), args.now, reader)
    await runtime.start()
    try:
        path: Path = args.path.resolve()
        upload = FileUpload(
            account=args.account,
            filename=path.name,
            path=path,
            received_at=args.now or datetime.now(UTC),
            dialect=Dialect(args.dialect) if args.dialect else None,
            trigger=True if args.trigger else None,
        )
        receipt = await runtime.submit_file(upload)
        upload_id = receipt.upload_id
        if upload_id is None:
            existing = await runtime.find_upload(args.account, path.name)
            if existing is None or existing.status not in ("queued", "processing"):
                assert receipt.refused is not None
                print_refusal(receipt.refused, path.name, as_json=args.json)
                return 2
            upload_id = existing.upload_id  # an interrupted import of this file: resume it
        view = await _wait_with_progress(runtime, upload_id, quiet=args.json)
    finally:
        await runtime.stop()
    report = report_of(view)
    if args.json:
        _print_json(report)
    else:
        _print_summary({**report, "errors": []}, path.name)
        print(f"  outputs: {runtime.outputs_dir}")
    if view.status == "fail" and view.fatal:
        return 2
    return 0 if view.status == "success" else 1


async def _wait_with_progress(runtime: EmbeddedRuntime, upload_id: str, quiet: bool) -> UploadView:
    waiter = asyncio.ensure_future(runtime.wait(upload_id))
    if quiet:
        return await waiter
    # Plain progress lines this often when stderr is not a terminal (logs, CI).
    every = float(os.environ.get("TIDEGATE_PROGRESS_SECONDS", "5"))
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        # On stderr: stdout carries the report (and may be piped to a file or jq).
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TextColumn("{task.completed:,} records"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        ) as bar:
            task = bar.add_task("importing", total=None)
            while not waiter.done():
                await asyncio.wait({waiter}, timeout=min(every, 0.2))
                progress = runtime.engine.progress.get(upload_id)
                bar.update(task, completed=progress.decided if progress else 0)
        return await waiter
    while not waiter.done():
        await asyncio.wait({waiter}, timeout=every)
        progress = runtime.engine.progress.get(upload_id)
        if progress and not waiter.done():
            print(f"progress: {progress.decided} records decided", file=sys.stderr, flush=True)
    return await waiter


def cmd_import(args: argparse.Namespace) -> int:
    if args.broker:
        from tidegate.kafka_import import import_via_kafka

        return int(import_via_kafka(args))
    return asyncio.run(_import(args))


async def _uploads(args: argparse.Namespace) -> int:
    runtime = make_runtime(args.data, SettingsRegistry(), None)
    await runtime.open_ledger()
    try:
        views = await runtime.list_uploads(args.account, args.limit)
    finally:
        await runtime.close_ledger()
    if args.json:
        _print_json(
            [
                report_of(v)
                | {
                    "filename": v.filename,
                    "account": v.account,
                    "received_at": v.received_at,
                    "finished_at": v.finished_at,
                }
                for v in views
            ]
        )
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(
        "upload", "account", "file", "status", "records", "accepted", "dup", "rejected", "received"
    )
    for v in views:
        c = v.counts
        table.add_row(
            v.upload_id[:8],
            v.account,
            v.filename,
            v.status,
            str(c.get("records", 0)),
            str(c.get("accepted", 0)),
            str(c.get("duplicate", 0)),
            str(c.get("rejected", 0)),
            v.received_at,
        )
    Console().print(table)
    return 0


def cmd_uploads(args: argparse.Namespace) -> int:
    return asyncio.run(_uploads(args))


async def _upload(args: argparse.Namespace) -> int:
    runtime = make_runtime(args.data, SettingsRegistry(), None)
    await runtime.open_ledger()
    try:
        view = await runtime.get_upload(args.upload_id)
        if view is None:
            matches = [
                v
                for v in await runtime.list_uploads(None, 10_000)
                if v.upload_id.startswith(args.upload_id)
            ]
            view = matches[0] if len(matches) == 1 else None
        if view is None:
            print(f"no upload {args.upload_id}", file=sys.stderr)
            return 2
        if args.errors:
            feedback = await runtime.feedback(view.upload_id)
            if feedback is not None:
                sys.stdout.buffer.write(feedback[1])
            return 0
    finally:
        await runtime.close_ledger()
    report = report_of(view) | {"filename": view.filename, "account": view.account}
    if args.json:
        _print_json(report)
    else:
        _print_summary({**report, "errors": []}, view.filename)
    return 0


def cmd_upload(args: argparse.Namespace) -> int:
    return asyncio.run(_upload(args))


def cmd_run(args: argparse.Namespace) -> int:
    from tidegate.serve import run

    return int(asyncio.run(run(args)))


def cmd_worker(args: argparse.Namespace) -> int:
    from streams.worker import run_worker

    return int(run_worker(args))
