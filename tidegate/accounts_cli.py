"""`tidegate accounts add | list | show | set | rotate | remove`: the accounts file from the shell."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from connectors.accounts import (
    ROTATABLE,
    SETTABLE,
    Account,
    AccountsConfigError,
    add_account,
    load_accounts,
    remove_account,
    rotate_credential,
    set_account,
)
from tidegate.settings import Settings


def add_parser(sub: Any, data_help: str) -> None:
    a = sub.add_parser(
        "accounts",
        help="add, list, show, change, rotate or remove accounts (a running `run` "
        "takes every change within a second)",
    )
    a.add_argument("--data", help=data_help)
    a.add_argument("--config", type=Path, help="accounts file (default: DATA/accounts.toml)")
    a.add_argument("--json", action="store_true")
    acts = a.add_subparsers(dest="action", required=True)
    add = acts.add_parser("add", help="a new account; its credentials are shown once")
    add.add_argument("name")
    add.add_argument("--username", help="SFTP login (default: the name)")
    add.add_argument("--trigger-imports", action="store_true")
    add.add_argument("--dedup-fingerprint", action="store_true")
    acts.add_parser("list", help="the accounts and their settings (never secrets)")
    show = acts.add_parser("show", help="one account's logins and settings (never secrets)")
    show.add_argument("name")
    st = acts.add_parser(
        "set", help=f"change settings: KEY=VALUE, KEY one of {', '.join(SETTABLE)}"
    )
    st.add_argument("name")
    st.add_argument("assignments", nargs="+", metavar="KEY=VALUE")
    rot = acts.add_parser("rotate", help="replace a credential; the new one is shown once")
    rot.add_argument("name")
    rot.add_argument("credential", choices=ROTATABLE)
    rm = acts.add_parser("remove", help="remove an account: its logins stop working at once")
    rm.add_argument("name")


def describe(account: Account) -> dict[str, Any]:
    """What `list` and `show` print: logins and settings, never a secret or its hash."""
    return {
        "account": account.name,
        "username": account.username,
        "clevertap_account_id": account.clevertap_account_id or account.name,
        "password": account.password_hash is not None,
        "api_key": account.api_key_hash is not None,
        "passcode": account.passcode_hash is not None,
        "authorized_keys": len(account.authorized_keys),
        "trigger_imports": account.trigger_imports,
        "dedup_fingerprint": account.dedup_fingerprint,
        "dialect": account.dialect,
        **dict(account.extra_settings),
        # where the end of each upload is told (docs/NOTIFICATIONS.md); their signing
        # secrets are not in the accounts file
        "notify_emails": list(account.notify_emails),
        "webhooks": list(account.webhooks),
    }


def cmd_accounts(args: argparse.Namespace, settings: Settings) -> int:
    from tidegate.account_settings import accounts_path
    from tidegate.reports import print_json as _print_json

    path = accounts_path(args.config, settings.data)
    try:
        return _run(args, path, _print_json)
    except AccountsConfigError as exc:
        print(f"tidegate accounts: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, path: Path, print_json: Any) -> int:
    action = args.action
    if action == "add":
        creds = add_account(
            path,
            args.name,
            username=args.username,
            trigger_imports=args.trigger_imports,
            dedup_fingerprint=args.dedup_fingerprint,
        )
        shown = {
            "account": creds.account,
            "username": creds.username,
            "password": creds.password,
            "api_key": creds.api_key,
            "clevertap_account_id": creds.account,
            "passcode": creds.passcode,
        }
        if args.json:
            print_json(shown)
        else:
            print(f"account {creds.account} added to {path}.")
            print("These credentials are shown ONCE (only hashes are kept):")
            print(f"  SFTP user {creds.username}   password {creds.password}")
            print(f"  HTTP API key (Authorization: Bearer ...)  {creds.api_key}")
            print(
                f"  X-CleverTap-Account-Id {creds.account}   X-CleverTap-Passcode {creds.passcode}"
            )
        return 0
    if action == "rotate":
        secret = rotate_credential(path, args.name, args.credential)
        if args.json:
            print_json({"account": args.name, args.credential: secret})
        else:
            print(f"{args.credential} of {args.name} replaced; the old one no longer works.")
            print(f"  new {args.credential} (shown ONCE): {secret}")
        return 0
    if action == "remove":
        remove_account(path, args.name)
        print(f"account {args.name} removed (its uploads and outputs are kept)")
        return 0
    if action == "set":
        wanted = {}
        for assignment in args.assignments:
            key, eq, value = assignment.partition("=")
            if not eq:
                raise AccountsConfigError(f"{assignment!r}: write KEY=VALUE")
            wanted[key.strip()] = value.strip()
        changed = set_account(path, args.name, wanted)
        if args.json:
            print_json({"account": args.name, **changed})
        else:
            for key, value in changed.items():
                text = "default" if value is None else str(value).lower()
                print(f"{args.name}: {key} = {text}")
        return 0
    accounts = load_accounts(path)
    if action == "show":
        account = accounts.get(args.name)
        if account is None:
            raise AccountsConfigError(f"{path}: no account {args.name!r}")
        info = describe(account)
        if args.json:
            print_json(info)
        else:
            width = max(len(k) for k in info)
            for key, value in info.items():
                print(f"{key:<{width}}  {value}")
        return 0
    rows = [describe(account) for account in accounts]
    if args.json:
        print_json(rows)
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("account", "username", "logins", "trigger", "fingerprint", "dialect"):
        table.add_column(column, overflow="ellipsis", no_wrap=True)
    for row in rows:
        logins = [k for k in ("password", "api_key", "passcode") if row[k]]
        if row["authorized_keys"]:
            logins.append(f"{row['authorized_keys']} keys")
        table.add_row(
            row["account"],
            row["username"],
            ",".join(logins) or "-",
            str(row["trigger_imports"]).lower(),
            str(row["dedup_fingerprint"]).lower(),
            row["dialect"] or "-",
        )
    Console().print(table)
    return 0
