"""The allowed time window: not more than 365 days before receipt nor 1 day after it."""

from __future__ import annotations

from datetime import datetime, timedelta

from streams.core.errors import ErrorCode, Rejection, Stage
from streams.core.timeparse import to_iso

MAX_AGE = timedelta(days=365)
MAX_AHEAD = timedelta(days=1)


def check_window(timestamp: datetime, received_at: datetime) -> Rejection | None:
    if timestamp < received_at - MAX_AGE:
        return Rejection(
            ErrorCode.TIMESTAMP_TOO_OLD,
            f"timestamp {to_iso(timestamp)} is more than 365 days before receipt "
            f"({to_iso(received_at)})",
            Stage.WINDOW,
            "timestamp",
        )
    if timestamp > received_at + MAX_AHEAD:
        return Rejection(
            ErrorCode.TIMESTAMP_IN_FUTURE,
            f"timestamp {to_iso(timestamp)} is more than 1 day after receipt ({to_iso(received_at)})",
            Stage.WINDOW,
            "timestamp",
        )
    return None
