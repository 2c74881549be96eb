"""The long-running and stateful commands: import, run, worker, uploads, upload."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.files.reader import read_upload, upload_reader
from connectors.ports import FileUpload, UploadView
from streams.core.errors import Rejection
from streams.core.records import Dialect
from streams.core.settings import SettingsRegistry
from streams.embedded.runtime import EmbeddedRuntime
from tidegate.account_settings import load_mappings, load_settings
from tidegate.mapping_arg import load_mapping_arg
from tidegate.reports import print_json, print_refusal, print_summary, report_of
from tidegate.settings import Settings


def make_runtime(
    data: Path, settings: SettingsRegistry, now: datetime | None, reader: Any = None
) -> EmbeddedRuntime:
    clock = (lambda: now) if now is not None else (lambda: datetime.now(UTC))
    return EmbeddedRuntime(data, settings, reader or read_upload, clock=clock)


async def _import(args: argparse.Namespace, settings: Settings) -> int:
    mapping = load_mapping_arg(args)
    if isinstance(mapping, int):
        return mapping
    from tidegate.local_api import RunningInstance

    instance = await RunningInstance.find(settings.data)
    if instance is not None:  # `tidegate run` owns the data directory: submit through it
        if mapping is not None:
            await instance.aclose()
            print(
                "import: --mapping cannot be passed to a running `tidegate run`; set the"
                " account's csv_mapping (tidegate accounts set) or put a mapping.json in an"
                " archive with the file",
                file=sys.stderr,
            )
            return 2
        try:
            return await _import_through(instance, args, settings)
        finally:
            await instance.aclose()
    data = settings.data
    reader = upload_reader(load_mappings(args.config, data), mapping)
    runtime = make_runtime(data, load_settings(args.config, data), args.now, reader)
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
        view = await _wait_with_progress(
            runtime, upload_id, quiet=args.json, every=settings.progress_seconds
        )
    finally:
        await runtime.stop()
    return print_import_report(view, path.name, runtime.outputs_dir, as_json=args.json)


def print_import_report(view: UploadView, name: str, outputs: Path, *, as_json: bool) -> int:
    """The import's report on stdout; returns its exit code."""
    report = report_of(view)
    if as_json:
        print_json(report)
    else:
        print_summary({**report, "errors": []}, name)
        print(f"  outputs: {outputs}")
    if view.status == "fail" and view.fatal:
        return 2
    return 0 if view.status == "success" else 1


async def _import_through(instance: Any, args: argparse.Namespace, settings: Settings) -> int:
    """`import` while `run` owns the data directory: the same report and exit code."""
    from streams.core.errors import ErrorCode, Stage

    path: Path = args.path.resolve()
    answer = await instance.submit(path, args.account, args.dialect, args.trigger, args.now)
    upload_id = answer["upload_id"]
    if upload_id is None:
        refused = answer["refused"]
        rejection = Rejection(ErrorCode(refused["code"]), refused["message"], Stage.UPLOAD)
        print_refusal(rejection, path.name, as_json=args.json)
        return 2
    decided = 0

    async def poll() -> None:
        nonlocal decided
        while True:
            view = await instance.get(upload_id)
            decided = view.progress.get("decided", 0) if view else decided
            await asyncio.sleep(0.5)

    poller = asyncio.ensure_future(poll())
    try:
        waiter = asyncio.ensure_future(instance.wait(upload_id))
        view = await _show_progress(
            waiter, lambda: decided, quiet=args.json, every=settings.progress_seconds
        )
    finally:
        poller.cancel()
    outputs = (settings.data / "out").resolve()
    return print_import_report(view, path.name, outputs, as_json=args.json)


async def _wait_with_progress(
    runtime: EmbeddedRuntime, upload_id: str, quiet: bool, every: float
) -> UploadView:
    def decided() -> int:
        progress = runtime.engine.progress.get(upload_id)
        return progress.decided if progress else 0

    waiter = asyncio.ensure_future(runtime.wait(upload_id))
    return await _show_progress(waiter, decided, quiet, every)


async def _show_progress(
    waiter: asyncio.Future[UploadView], decided: Any, quiet: bool, every: float
) -> UploadView:
    """Waits for `waiter`, showing `decided()` records on stderr (a bar on a terminal;
    else a plain line every `every` seconds, for logs and CI)."""
    if quiet:
        return await waiter
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
                bar.update(task, completed=decided())
        return await waiter
    while not waiter.done():
        await asyncio.wait({waiter}, timeout=every)
        if not waiter.done():
            print(f"progress: {decided()} records decided", file=sys.stderr, flush=True)
    return await waiter


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    if args.broker:
        from tidegate.kafka_cli import import_via_kafka

        return int(import_via_kafka(args, settings))
    return asyncio.run(_import(args, settings))


async def _uploads(args: argparse.Namespace, data: Path) -> int:
    runtime = make_runtime(data, SettingsRegistry(), None)
    await runtime.open_ledger()
    try:
        views = await runtime.list_uploads(args.account, args.limit)
    finally:
        await runtime.close_ledger()
    if args.json:
        print_json(
            [
                report_of(v)
                | {
                    "kind": v.kind,
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

    table = history_table(views)
    Console().print(table)
    return 0


def history_table(views: list[UploadView]) -> Any:
    """The history as a table that fits 80 columns: long names are cut (`--json` has them
    whole), a refused file's status carries its code, times are UTC to the minute."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False, collapse_padding=True)
    table.add_column("upload", no_wrap=True, min_width=8)
    table.add_column("account", overflow="ellipsis", no_wrap=True, max_width=8)
    table.add_column("file", overflow="ellipsis", no_wrap=True, max_width=18)
    table.add_column("status", overflow="ellipsis", no_wrap=True, max_width=14)
    for name in ("recs", "ok", "dup", "rej"):
        table.add_column(name, justify="right", no_wrap=True, min_width=len(name))
    table.add_column("received", no_wrap=True, min_width=11)
    for v in views:
        c = v.counts
        status = f"{v.status} {v.fatal['code']}" if v.fatal else v.status
        table.add_row(
            v.upload_id[:8],
            v.account,
            v.filename,
            status,
            str(c.get("records", 0)),
            str(c.get("accepted", 0)),
            str(c.get("duplicate", 0)),
            str(c.get("rejected", 0)),
            (v.received_at or "")[5:16].replace("T", " "),
        )
    return table


def cmd_uploads(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_uploads(args, settings.data))


async def _upload(args: argparse.Namespace, data: Path) -> int:
    runtime = make_runtime(data, SettingsRegistry(), None)
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
            print(f"tidegate: {no_feedback_reason(view)}", file=sys.stderr)
            return 1
    finally:
        await runtime.close_ledger()
    report = report_of(view) | {"filename": view.filename, "account": view.account}
    if args.json:
        print_json(report)
    else:
        print_summary({**report, "errors": []}, view.filename)
    return 0


def no_feedback_reason(view: UploadView) -> str:
    """Why an upload has no feedback file, in the words `upload --errors` prints."""
    where = f"upload {view.upload_id[:8]} ({view.filename})"
    if view.fatal:
        return (
            f"{where} was refused as a whole: {view.fatal['code']}: {view.fatal['message']}; "
            "no record was read, so there is no feedback file"
        )
    if view.status in ("queued", "processing"):
        return f"{where} is still {view.status}: the feedback file exists once it is finished"
    return f"{where} has no rejected record ({view.status}): there is no feedback file"


def cmd_upload(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_upload(args, settings.data))


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from tidegate.serve import run

    return int(asyncio.run(run(args, settings)))


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from streams.kafka.worker import run_worker
    from tidegate.kafka_cli import config_from_args

    return int(run_worker(config_from_args(args, settings)))
