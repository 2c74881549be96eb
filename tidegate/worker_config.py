"""The Faust worker's configuration from the `tidegate worker` command line."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from streams.core.timeparse import from_iso
from streams.kafka.app import WorkerConfig
from tidegate.account_settings import load_settings


def config_from_args(args: argparse.Namespace) -> WorkerConfig:
    state_dir = Path(args.state_dir)
    now_text = getattr(args, "now", None) or os.environ.get("TIDEGATE_NOW")
    now = from_iso(now_text) if isinstance(now_text, str) and now_text else None
    if now_text and now is None:
        raise SystemExit(f"TIDEGATE_NOW wants an ISO-8601 time, not {now_text!r}")
    return WorkerConfig(
        broker=args.broker,
        partitions=int(args.partitions),
        state_dir=state_dir,
        settings=load_settings(args.config, state_dir),
        now=now,
    )
