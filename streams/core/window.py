"""The allowed time window: not more than 365 days before receipt nor 1 day after it."""

from __future__ import annotations

from datetime import datetime, timedelta

from streams.core.errors import ErrorCode, Rejection, Stage
from streams.core.timeparse import to_iso

MAX_AGE = timedelta(days=365)
MAX_AHEAD = timedelta(days=1)


# (received_at, oldest allowed, latest allowed) of the last call: every record of an upload
# shares its received_at. One tuple, replaced whole, so threads never see mixed bounds.
_bounds: tuple[object, datetime, datetime] = (None, datetime.min, datetime.max)


def check_window(timestamp: datetime, received_at: datetime) -> Rejection | None:
    global _bounds
    bounds = _bounds
    if bounds[0] is not received_at:
        bounds = _bounds = (received_at, received_at - MAX_AGE, received_at + MAX_AHEAD)
    _, oldest, latest = bounds
    if oldest <= timestamp <= latest:
        return None
    if timestamp < oldest:
        return Rejection(
            ErrorCode.TIMESTAMP_TOO_OLD,
            f"timestamp {to_iso(timestamp)} is more than 365 days before receipt "
            f"({to_iso(received_at)})",
            Stage.WINDOW,
            "timestamp",
        )
    if timestamp > latest:
        return Rejection(
            ErrorCode.TIMESTAMP_IN_FUTURE,
            f"timestamp {to_iso(timestamp)} is more than 1 day after receipt ({to_iso(received_at)})",
            Stage.WINDOW,
            "timestamp",
        )
    return None
