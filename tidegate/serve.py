"""`tidegate run`: the embedded runtime with the SFTP drop server, watched folder and HTTP API."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

from connectors.accounts import Account, Accounts, Credentials, ensure_demo_account, load_accounts
from connectors.http.app import create_app
from connectors.http.server import serve_http
from connectors.ports import Ingest
from connectors.sftp import start_sftp_server
from connectors.watch import start_watch_folder
from streams import topics as T
from streams.core.settings import SettingsRegistry
from streams.embedded.runtime import EmbeddedRuntime
from tidegate.files import read_upload

log = logging.getLogger("tidegate")


def settings_of(accounts: Accounts) -> SettingsRegistry:
    """The rule settings of every account in the accounts file."""
    return SettingsRegistry.from_mapping(
        {"accounts": {account.name: account.settings_mapping() for account in accounts}}
    )


def accounts_path(config: Path | None, data: Path) -> Path:
    return config or data / "accounts.toml"


async def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    data: Path = args.data
    data.mkdir(parents=True, exist_ok=True)
    config = accounts_path(args.config, data)
    created = ensure_demo_account(config)
    accounts = load_accounts(config)
    if args.broker:
        from tidegate.kafka_connectors import run_connectors_on_kafka

        # the demo account's credentials are shown once, whichever runtime decides
        return await run_connectors_on_kafka(args, accounts, created)

    runtime = EmbeddedRuntime(data, settings_of(accounts), read_upload)
    await runtime.start()
    return await serve_connectors(args, accounts, runtime, runtime.stop, created=created)


async def serve_connectors(
    args: argparse.Namespace,
    accounts: Accounts,
    ingest: Ingest,
    stop_ingest: Callable[[], Awaitable[None]],
    *,
    created: tuple[Account, Credentials] | None = None,
    runtime_name: str = "embedded",
) -> int:
    """Starts the SFTP drop, the watched folder and the HTTP API over `ingest` until a signal."""
    data: Path = args.data
    config = accounts_path(args.config, data)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(stop_ingest)
        sftp = await start_sftp_server(
            args.host,
            args.sftp_port,
            accounts,
            data / "drop",
            ingest,
            args.settle,
            data / "ssh_host_ed25519_key",
        )
        stack.push_async_callback(sftp.wait_closed)
        stack.callback(sftp.close)
        watch = await start_watch_folder(data / "watch", accounts, ingest, args.settle)
        stack.push_async_callback(watch.aclose)
        # The drain (docs/OPERATING.md): on a signal uvicorn stops accepting, in-flight
        # requests get `drain` seconds to finish; then the ingest stops (503 for anything
        # still submitting, nothing applied) and the engine ends after its current batch.
        drain = float(getattr(args, "drain_seconds", 10.0))
        http = await serve_http(
            create_app(ingest, accounts),
            args.host,
            args.http_port,
            timeout_graceful_shutdown=max(1, math.ceil(drain)),
        )
        stack.push_async_callback(http.close, drain + 1.0)
        _print_welcome(args, data, config, accounts, sftp.port, http.port, created, runtime_name)

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("stopping: draining up to %.0f s", drain)
        print("tidegate: stopping", flush=True)
    return 0


def _print_welcome(
    args: argparse.Namespace,
    data: Path,
    config: Path,
    accounts: Accounts,
    sftp_port: int,
    http_port: int,
    created: tuple[Account, Credentials] | None,
    runtime_name: str,
) -> None:
    host = args.host
    where = (
        "embedded runtime: no broker, state in SQLite"
        if runtime_name == "embedded"
        else f"connectors on Kafka at {args.broker}; run `tidegate worker` for the decisions"
    )
    lines = [
        f"Tidegate is running ({where}).",
        f"  data directory   {data.resolve()}",
        f"  accounts file    {config.resolve()}",
        f"  outputs          {(data / 'out').resolve()}/{{accepted,triggers,deadletter,conflicts}}.jsonl"
        if runtime_name == "embedded"
        else f"  outputs          topics {T.ACCEPTED}, {T.TRIGGERS}, {T.DEADLETTER}, {T.CONFLICTS}",
        f"  SFTP drop        sftp -P {sftp_port} <username>@{host}   (put files into events/)",
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
            "Send a first file:",
            f"  echo 'put tests/fixtures/seeds/zeta_sample.jsonl events/' | sftp -P {sftp_port} {creds.username}@{host}",
            f"  .venv/bin/tidegate uploads --data {data}",
        ]
    print("\n".join(lines), flush=True)
