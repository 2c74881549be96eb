"""Vero CSV event imports: email, event name and time columns; other columns are properties."""

from __future__ import annotations

from streams.core.dialects.base import build_event, identity_rejection, name_of, reject
from streams.core.errors import ErrorCode, Rejection
from streams.core.identifiers import IdentifierSet
from streams.core.records import Event, RawRecord, RecordKind
from streams.core.timeparse import from_vero

# Header spellings seen in Vero's docs and exports, matched case-insensitively.
EMAIL_COLUMNS = ("email",)
USER_ID_COLUMNS = ("id", "user_id")
NAME_COLUMNS = ("name", "event_name", "event")
TIME_COLUMNS = ("time", "timestamp", "date", "created_at")
IDEMPOTENCY_COLUMNS = ("idempotencykey", "idempotency_key")
FEEDBACK_COLUMNS = frozenset({"error_code", "error_message"})


def _pop_first(
    fields: dict[str, str], lowered: dict[str, str], names: tuple[str, ...]
) -> str | None:
    for name in names:
        header = lowered.get(name)
        if header is not None:
            return fields.pop(header)
    return None


def to_event(raw: RawRecord, fields: dict[str, str]) -> Event | Rejection:
    fields = dict(fields)
    lowered = {header.lower(): header for header in fields}
    ids = IdentifierSet()
    user_id = _pop_first(fields, lowered, USER_ID_COLUMNS)
    email = _pop_first(fields, lowered, EMAIL_COLUMNS)
    if user_id is not None:
        ids.add("user_id", user_id)
    if email is not None:
        ids.add("email", email)
    missing = identity_rejection(ids, "email")
    if missing:
        return missing
    name = name_of(_pop_first(fields, lowered, NAME_COLUMNS), "name")
    if isinstance(name, Rejection):
        return name
    raw_time = _pop_first(fields, lowered, TIME_COLUMNS)
    if raw_time is None or not raw_time.strip():
        return reject(ErrorCode.MISSING_TIMESTAMP, "time is required", "time")
    timestamp = from_vero(raw_time)
    if timestamp is None:
        return reject(
            ErrorCode.INVALID_TIMESTAMP,
            f"time {raw_time!r} is not like 2022-01-02 13:05+10",
            "time",
        )
    key = _pop_first(fields, lowered, IDEMPOTENCY_COLUMNS) or None
    if key is not None and len(key) > 128:
        return reject(ErrorCode.IDEMPOTENCY_KEY_TOO_LONG, "idempotency key over 128 characters")
    # Empty cells mean "no value" in a spreadsheet export, not an empty-string property; the
    # two columns a feedback file adds are not event data, so a fixed feedback file re-imports.
    properties = {
        header: value
        for header, value in fields.items()
        if value != "" and header not in FEEDBACK_COLUMNS
    }
    return build_event(
        raw,
        kind=RecordKind.EVENT,
        name=name,
        ids=ids,
        timestamp=timestamp,
        properties=dict(properties),
        idempotency_key=key,
    )
