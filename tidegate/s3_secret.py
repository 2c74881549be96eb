"""`tidegate s3-secret ACCOUNT`: stores an account's S3 secret access key, read from stdin."""

from __future__ import annotations

import argparse
import getpass
import sys

from connectors.accounts import AccountsConfigError, load_accounts
from connectors.s3 import s3_source_of, write_s3_secret
from tidegate.settings import Settings


def cmd_s3_secret(args: argparse.Namespace, settings: Settings) -> int:
    config = args.config or settings.data / "accounts.toml"
    try:
        account = load_accounts(config).get(args.account)
    except AccountsConfigError as exc:
        print(f"tidegate: {exc}", file=sys.stderr)
        return 2
    if account is None:
        print(f"tidegate: no account {args.account!r} in {config}", file=sys.stderr)
        return 2
    if s3_source_of(account) is None:
        print(f"tidegate: account {args.account!r} has no s3_bucket in {config}", file=sys.stderr)
        return 2
    # never echoed: a terminal gets a hidden prompt, a pipe is read as it is
    secret = getpass.getpass("S3 secret access key: ") if sys.stdin.isatty() else sys.stdin.read()
    if not secret.strip():
        print("tidegate: empty secret; nothing stored", file=sys.stderr)
        return 2
    path = write_s3_secret(settings.data, account.name, secret)
    print(f"stored the S3 secret access key of {account.name} in {path} (mode 0600)")
    return 0
