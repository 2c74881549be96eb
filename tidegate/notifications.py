"""`tidegate notifications list|resend|secret`: the outbox and webhook secrets of an account."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from connectors.notifications.outbox import DB_NAME, Outbox
from connectors.notifications.secrets import FILE_NAME, WebhookSecrets
from tidegate.settings import Settings


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if ts else "-"


async def _list(args: argparse.Namespace, data: Path) -> int:
    outbox = Outbox(data / DB_NAME)
    await outbox.open()
    try:
        rows = await outbox.deliveries(args.account, args.state, limit=1000)
    finally:
        await outbox.close()
    if args.json:
        print(json.dumps([d.as_json() for d in rows], indent=1))
        return 0
    for d in rows:
        print(
            f"{d.delivery_id}  {d.state:9}  attempts {d.attempts}  {_when(d.created_at)}  "
            f"{d.report.get('filename')} ({d.report.get('status')}) -> {d.target}"
            + (f"\n    last error: {d.last_error}" if d.last_error else "")
        )
    if not rows:
        print("no deliveries")
    return 0


async def _resend(args: argparse.Namespace, data: Path) -> int:
    outbox = Outbox(data / DB_NAME)
    await outbox.open()
    try:
        count = await outbox.resend(args.account, args.ids)
    finally:
        await outbox.close()
    print(f"{count} failed deliveries queued again (a running tidegate sends them)")
    return 0


def _secret(args: argparse.Namespace, data: Path) -> int:
    if not args.url:
        print("tidegate notifications secret: --url is required", file=sys.stderr)
        return 2
    secret = WebhookSecrets(data / FILE_NAME).create(args.account, args.url)
    print(f"Signing secret for {args.url} (shown ONCE; kept in {data / FILE_NAME}, mode 0600):")
    print(secret)
    return 0


def cmd_notifications(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "secret":
        return _secret(args, settings.data)
    command = _list if args.action == "list" else _resend
    return asyncio.run(command(args, settings.data))
