"""`tidegate run`: the embedded runtime with the SFTP drop server, watched folder and HTTP API."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

from connectors.accounts import Account, Accounts, Credentials, ensure_demo_account, load_accounts
from connectors.ftp import FtpSettings, parse_port_range, start_ftp_server
from connectors.http.app import create_app
from connectors.http.server import serve_http
from connectors.ports import Ingest
from connectors.sftp import start_sftp_server
from connectors.watch import start_watch_folder
from streams import topics as T
from streams.core.csvmap import CsvMapping
from streams.core.settings import SettingsRegistry
from streams.embedded.runtime import EmbeddedRuntime
from tidegate.files import upload_reader

log = logging.getLogger("tidegate")


def settings_of(accounts: Accounts) -> SettingsRegistry:
    """The rule settings of every account in the accounts file."""
    return SettingsRegistry.from_mapping(
        {"accounts": {account.name: account.settings_mapping() for account in accounts}}
    )


def mappings_of(accounts: Accounts) -> dict[str, CsvMapping]:
    """The default CSV column mapping of each account that has one (``csv_mapping``)."""
    return {a.name: a.csv_mapping for a in accounts if a.csv_mapping is not None}


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

    runtime = EmbeddedRuntime(data, settings_of(accounts), upload_reader(mappings_of(accounts)))
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
        ftp_port: int | None = None
        ftp_settings = ftp_settings_of(args)
        if ftp_settings is not None:
            ftp = await start_ftp_server(accounts, sftp, ftp_settings, data)
            stack.push_async_callback(ftp.aclose)
            ftp_port = ftp.port
        watch = await start_watch_folder(data / "watch", accounts, ingest, args.settle)
        stack.push_async_callback(watch.aclose)
        http = await serve_http(create_app(ingest, accounts), args.host, args.http_port)
        stack.push_async_callback(http.close)
        _print_welcome(
            args,
            data,
            config,
            accounts,
            sftp.port,
            http.port,
            created,
            runtime_name,
            ftp_line=_ftp_welcome(args.host, ftp_port, ftp_settings) if ftp_port else None,
        )

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        print("tidegate: stopping", flush=True)
    return 0


def ftp_settings_of(args: argparse.Namespace) -> FtpSettings | None:
    """The FTP drop's settings from `tidegate run`'s options; None when it is off."""
    port = getattr(args, "ftp_port", -1)
    if port is None or port < 0:
        return None
    passive = getattr(args, "ftp_passive_ports", None)
    cert = getattr(args, "ftp_cert", None)
    key = getattr(args, "ftp_key", None)
    return FtpSettings(
        host=args.host,
        port=port,
        allow_plain=bool(getattr(args, "ftp_allow_plain", False)),
        passive_ports=parse_port_range(passive) if passive else None,
        masquerade_address=getattr(args, "ftp_masquerade_address", None),
        certfile=Path(cert) if cert else None,
        keyfile=Path(key) if key else None,
    )


def _ftp_welcome(host: str, port: int, settings: FtpSettings | None) -> str:
    tls = "TLS optional" if settings is not None and settings.allow_plain else "TLS required"
    return (
        f"  FTP drop         curl --ssl-reqd -k -T FILE ftp://{host}:{port}/events/ -u <username>"
        f"   ({tls}; same accounts as SFTP)"
    )


def _print_welcome(
    args: argparse.Namespace,
    data: Path,
    config: Path,
    accounts: Accounts,
    sftp_port: int,
    http_port: int,
    created: tuple[Account, Credentials] | None,
    runtime_name: str,
    *,
    ftp_line: str | None = None,
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
            "Send a first file:",
            f"  echo 'put tests/fixtures/seeds/zeta_sample.jsonl events/' | sftp -P {sftp_port} {creds.username}@{host}",
            f"  .venv/bin/tidegate uploads --data {data}",
        ]
    print("\n".join(lines), flush=True)
