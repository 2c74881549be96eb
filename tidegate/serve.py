"""`tidegate run`: the embedded runtime with the SFTP drop server, watched folder and HTTP API."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import signal
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from connectors.accounts import Account, Accounts, Credentials, ensure_demo_account, load_accounts
from connectors.accounts_live import LiveAccounts
from connectors.console import ConsoleSecrets, ensure_console_secrets
from connectors.console.app import ConsoleIngest
from connectors.console.mount import attach_console
from connectors.files.reader import upload_reader
from connectors.ftp import FtpDropServer, FtpSettings, start_ftp_server
from connectors.http.app import create_app
from connectors.http.server import serve_http
from connectors.notifications.service import Notifier
from connectors.ops_metrics import install as install_metrics
from connectors.s3 import start_s3_imports
from connectors.sftp import start_sftp_server
from connectors.watch import start_watch_folder
from streams.core.csvmap import CsvMapping
from streams.core.settings import AccountSettings, SettingsRegistry
from streams.embedded.runtime import EmbeddedRuntime
from streams.kafka.topics import Topics
from tidegate.account_settings import accounts_path, mappings_of, settings_of
from tidegate.first_file import first_file_lines
from tidegate.local_api import serve_local
from tidegate.settings import Settings

log = logging.getLogger("tidegate")


class LiveSettings:
    """The rule settings `tidegate run` hands the runtime, swapped when the accounts change."""

    def __init__(self, registry: SettingsRegistry) -> None:
        self.registry = registry
        self.mappings: dict[str, CsvMapping] = {}

    def __call__(self, account: str) -> AccountSettings:
        return self.registry.for_account(account)

    def update(self, accounts: Accounts) -> None:
        self.registry = settings_of(accounts)
        # in place: the upload reader looks an account's mapping up at each upload
        self.mappings.clear()
        self.mappings.update(mappings_of(accounts))


async def run(args: argparse.Namespace, settings: Settings) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    data = settings.data
    data.mkdir(parents=True, exist_ok=True)
    config = accounts_path(args.config, data)
    created = ensure_demo_account(config)
    accounts = load_accounts(config)
    if args.broker:
        from connectors.files.reader import read_upload
        from streams.embedded.ledger import Ledger
        from streams.kafka.ingest import KafkaIngest
        from streams.kafka.topics import bootstrap_of

        kafka = settings.kafka
        # names, history and statuses in a ledger beside the connectors; the workers decide
        ledger = Ledger(data / "connectors.db")
        ingest = KafkaIngest(
            bootstrap_of(kafka.broker), kafka.topics, ledger, read_upload, kafka.partitions
        )
        await ingest.start()
        # the demo account's credentials are shown once, whichever runtime decides
        return await serve_connectors(
            args, settings, accounts, ingest, ingest.stop, created=created, runtime_name="Kafka"
        )

    live_settings = LiveSettings(settings_of(accounts))
    live_settings.update(accounts)
    runtime = EmbeddedRuntime(data, live_settings, upload_reader(live_settings.mappings))
    await runtime.start()
    local = await serve_local(runtime, data)  # `tidegate import` beside `run`

    async def stop() -> None:
        await local.close()
        await runtime.stop()

    return await serve_connectors(
        args, settings, accounts, runtime, stop, created=created, on_accounts=live_settings.update
    )


async def serve_connectors(
    args: argparse.Namespace,
    settings: Settings,
    accounts: Accounts,
    ingest: ConsoleIngest,  # the Ingest port and the history the console reads
    stop_ingest: Callable[[], Awaitable[None]],
    *,
    created: tuple[Account, Credentials] | None = None,
    runtime_name: str = "embedded",
    on_accounts: Callable[[Accounts], None] | None = None,
) -> int:
    """Starts the SFTP drop, the watched folder and the HTTP API over `ingest` until a signal.

    The accounts file is re-read within a second of a change (`tidegate accounts`): every
    part then serves the new accounts, without a restart."""
    data = settings.data
    opts = settings.run
    config = accounts_path(args.config, data)
    live = LiveAccounts(config, accounts)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(stop_ingest)
        # the notifier learns final statuses through the port, so both runtimes notify
        notifier = Notifier(ingest, live, data, settings.notify)
        await notifier.start()
        stack.push_async_callback(notifier.stop)
        ingest = cast(ConsoleIngest, notifier.wrap(ingest))  # extras pass through
        sftp = await start_sftp_server(
            opts.host,
            opts.sftp_port,
            accounts,
            data / "drop",
            ingest,
            opts.settle_seconds,
            data / "ssh_host_ed25519_key",
            login_timeout=opts.login_timeout,
            idle_timeout=opts.idle_timeout,
        )
        stack.push_async_callback(sftp.wait_closed)
        stack.callback(sftp.close)
        ftp_port: int | None = None
        ftp: FtpDropServer | None = None
        ftp_settings = opts.ftp
        if ftp_settings is not None:
            ftp = await start_ftp_server(accounts, sftp, ftp_settings, data)
            stack.push_async_callback(ftp.aclose)
            ftp_port = ftp.port
        watch = await start_watch_folder(data / "watch", accounts, ingest, opts.settle_seconds)
        stack.push_async_callback(watch.aclose)
        s3 = await start_s3_imports(data, accounts, ingest, poll_interval=opts.s3_interval)
        stack.push_async_callback(s3.aclose)
        app = create_app(ingest, live, source_status=s3.source_status)
        # The drain (docs/OPERATING.md): on a signal uvicorn stops accepting, in-flight
        # requests get `drain` seconds to finish; then the ingest stops (503 for anything
        # still submitting, nothing applied) and the engine ends after its current batch.
        drain = opts.drain_seconds
        http = await serve_http(
            app, opts.host, opts.http_port, timeout_graceful_shutdown=max(1, math.ceil(drain))
        )
        stack.push_async_callback(http.close, drain + 1.0)
        live.listeners += [sftp.update_accounts, watch.update_accounts]
        if ftp is not None:
            live.listeners.append(ftp.update_accounts)
        live.listeners.append(lambda _accounts: app.state.tidegate.forget_credentials())
        if on_accounts is not None:
            live.listeners.append(on_accounts)
        live.start()
        stack.push_async_callback(live.aclose)
        secrets = ensure_console_secrets(data)
        console = attach_console(
            app, ingest, live, secrets, validate=dry_run, staging=data / "console-imports"
        )
        stack.callback(console.close)  # ends the event streams first, so the server stops fast
        _metrics, lag = install_metrics(app.state.tidegate.metrics.registry, ingest, sftp, watch)
        stack.callback(lag.cancel)
        if not notifier.settings.console_url:  # links in emails point at this HTTP server
            notifier.settings = replace(
                notifier.settings, console_url=f"http://{opts.host}:{http.port}"
            )
        # before the welcome, which tells a supervisor the server is up: a SIGTERM sent
        # as soon as it is read drains instead of killing the process
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        _print_welcome(
            opts.host,
            args.broker,
            data,
            config,
            accounts,
            sftp.port,
            http.port,
            created,
            runtime_name,
            ftp_line=_ftp_welcome(opts.host, ftp_port, ftp_settings) if ftp_port else None,
            topics=getattr(ingest, "topics", None),
        )
        for source in s3.sources.values():
            print(f"  S3 import        {source.account}: s3://{source.bucket}/{source.prefix}")
        _print_console(opts.host, http.port, secrets)
        await stop.wait()
        log.info("stopping: draining up to %.0f s", drain)
        print("tidegate: stopping", flush=True)
    return 0


def dry_run(path: Path) -> dict[str, Any]:
    """The console's dry run: the report of `tidegate validate --json`."""
    from tidegate.validate import validate_path

    return validate_path(path, dialect=None, now=datetime.now(UTC)).as_json()


def _print_console(host: str, port: int, secrets: ConsoleSecrets) -> None:
    lines = [
        f"  web console      http://{host}:{port}/console/  (sign in with an account's API key)"
    ]
    if secrets.new_operator_token is not None:
        lines += [
            "",
            "The console's operator token (sees every account) is shown ONCE (only its hash is kept):",
            f"  operator token   {secrets.new_operator_token}",
        ]
    print("\n".join(lines), flush=True)


def _ftp_welcome(host: str, port: int, settings: FtpSettings | None) -> str:
    tls = "TLS optional" if settings is not None and settings.allow_plain else "TLS required"
    return (
        f"  FTP drop         curl --ssl-reqd -k -T FILE ftp://{host}:{port}/events/ -u <username>"
        f"   ({tls}; same accounts as SFTP)"
    )


def _print_welcome(
    host: str,
    broker: str | None,
    data: Path,
    config: Path,
    accounts: Accounts,
    sftp_port: int,
    http_port: int,
    created: tuple[Account, Credentials] | None,
    runtime_name: str,
    *,
    ftp_line: str | None = None,
    topics: Topics | None = None,
) -> None:
    where = (
        "embedded runtime: no broker, state in SQLite"
        if runtime_name == "embedded"
        else f"connectors on Kafka at {broker}; run `tidegate worker` for the decisions"
    )
    lines = [
        f"Tidegate is running ({where}).",
        f"  data directory   {data.resolve()}",
        f"  accounts file    {config.resolve()}",
        f"  outputs          {(data / 'out').resolve()}/{{accepted,triggers,deadletter,conflicts}}.jsonl"
        if topics is None
        else f"  outputs          topics {topics.accepted}, {topics.triggers}, {topics.deadletter},"
        f" {topics.conflicts}",
        f"  SFTP drop        sftp -P {sftp_port} <username>@{host}   (put files into events/)",
        *([ftp_line] if ftp_line is not None else []),
        f"  watched folder   {(data / 'watch').resolve()}/<account>/events/",
        f"  HTTP API         http://{host}:{http_port}/  (POST /1/upload, /people/contacts/{{id}}/events,"
        " GET /uploads, /metrics, /openapi.json)",
        f"  accounts         {', '.join(accounts.names)}",
    ]
    if created is not None:
        account, creds = created
        lines += [
            "",
            f"A demo account was created. These credentials are shown ONCE (only hashes are kept in {config.name}):",
            f"  account {creds.account}   SFTP user {creds.username}   password {creds.password}",
            f"  HTTP API key (Authorization: Bearer ...)  {creds.api_key}",
            f"  CleverTap X-CleverTap-Account-Id {account.clevertap_account_id or creds.account}"
            f"   X-CleverTap-Passcode {creds.passcode}",
            "",
            *first_file_lines(
                data=data,
                host=host,
                sftp_port=sftp_port,
                http_port=http_port,
                username=creds.username,
                password=creds.password,
                api_key=creds.api_key,
            ),
        ]
    print("\n".join(lines), flush=True)
