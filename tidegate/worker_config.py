"""The Faust worker's configuration from the `tidegate worker` command line."""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path

from streams.app import WorkerConfig
from tidegate.account_settings import load_settings


def config_from_args(args: argparse.Namespace, now: datetime | None = None) -> WorkerConfig:
    """`now`: the fixed processing time of the settings (TIDEGATE_NOW), None for the clock."""
    state_dir = Path(args.state_dir)
    return WorkerConfig(
        broker=args.broker,
        partitions=int(args.partitions),
        state_dir=state_dir,
        settings=load_settings(args.config, state_dir),
        now=now,
    )
