"""Timestamp parsing for every dialect; a timestamp without a zone is UTC."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

# Epochs outside years 1970..9999 are not timestamps anyone means.
_MAX_EPOCH_S = 253402300799

# Vero: `2022-01-02 13:05+10`, seconds optional, zone as +HH, +HHMM, +HH:MM, Z or absent.
_VERO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?"
    r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?$"
)


def from_epoch_seconds(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not 0 <= value <= _MAX_EPOCH_S:
        return None
    return datetime.fromtimestamp(value, UTC)


def from_epoch_millis(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return from_epoch_seconds(value / 1000)


def from_iso(value: str) -> datetime | None:
    """ISO-8601 (with `Z` or an offset, or naive meaning UTC); anything else is None."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _zone(text: str | None) -> timezone:
    if not text or text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours = int(digits[:2])
    minutes = int(digits[2:4] or 0)
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def from_vero(value: str) -> datetime | None:
    """Vero's CSV time column, falling back to ISO-8601."""
    match = _VERO.match(value.strip())
    if match is None:
        return from_iso(value)
    y, mo, d, h, mi, s, frac, zone = match.groups()
    try:
        hours, minutes = int(h), int(mi)
        if hours > 23 or minutes > 59:
            return None
        micro = int((frac or "0").ljust(6, "0"))
        local = datetime(int(y), int(mo), int(d), hours, minutes, int(s or 0), micro, _zone(zone))
    except ValueError:
        return None
    return local.astimezone(UTC)


def to_iso(value: datetime) -> str:
    """UTC ISO-8601 with a `Z`, the form every output uses."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
