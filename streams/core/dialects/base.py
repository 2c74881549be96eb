"""What every dialect shares: turning mapped fields into a checked canonical Event."""

from __future__ import annotations

from contextvars import ContextVar
from datetime import datetime
from typing import Any

from streams.core.errors import ErrorCode, Rejection
from streams.core.identifiers import IdentifierSet
from streams.core.limits import (
    MAX_IDEMPOTENCY_KEY_CHARS,
    MAX_KEY_CHARS,
    check_idempotency_key,
    check_name,
    check_properties,
)
from streams.core.records import Event, RawRecord, RecordKind, make_event_id

# False while normalizing for a caller that only wants the verdict (a dry run): the
# Event's event_id is left empty instead of hashed. See `normalize(..., event_id=False)`.
WANT_EVENT_ID: ContextVar[bool] = ContextVar("want_event_id", default=True)


def reject(code: ErrorCode, message: str, field: str | None = None) -> Rejection:
    return Rejection(code, message, field=field)


def take_idempotency_key(obj: dict[str, Any]) -> str | Rejection | None:
    """Pops the top-level `idempotencyKey`, the idempotency key in every JSON dialect.

    A blank key is no key: an exporter that leaves the column empty means "none", and
    taken as a key it would make every later record of the profile a duplicate."""
    value = obj.pop("idempotencyKey", None)
    if value is None:
        return None
    if type(value) is str and len(value) <= MAX_IDEMPOTENCY_KEY_CHARS:
        return value if value and not value.isspace() else None  # the common case
    if isinstance(value, bool) or not isinstance(value, str | int):
        return reject(ErrorCode.INVALID_FIELD, "idempotencyKey must be a string", "idempotencyKey")
    key = str(value)
    return check_idempotency_key(key) or key


def name_of(value: Any, field: str) -> str | Rejection:
    """An event name: a non-empty string within the key length limit."""
    if type(value) is str:  # the common case
        name = value.strip()
        if name and len(name) <= MAX_KEY_CHARS:
            return name
    if value is None or (isinstance(value, str) and not value.strip()):
        return reject(ErrorCode.MISSING_EVENT_NAME, f"{field} is required", field)
    if not isinstance(value, str):
        return reject(ErrorCode.INVALID_FIELD, f"{field} must be a string", field)
    name = value.strip()
    return check_name(name) or name


def identity_rejection(ids: IdentifierSet, wanted: str) -> Rejection | None:
    if ids.values:
        return None
    if ids.blocked:
        return reject(
            ErrorCode.BLOCKED_IDENTITY,
            f"{wanted} holds only placeholder values (empty, null, undefined, 0, -1, anonymous)",
        )
    return reject(ErrorCode.MISSING_IDENTITY, f"{wanted} is required")


def build_event(
    raw: RawRecord,
    *,
    kind: RecordKind,
    name: str | None,
    ids: IdentifierSet,
    timestamp: datetime,
    properties: dict[str, Any],
    idempotency_key: str | None,
    alias: dict[str, str] | None = None,
    url: str | None = None,
    resource_id: str | None = None,
    resource_type: str | None = None,
) -> Event | Rejection:
    return event_of(
        raw, kind, name, ids.values, timestamp, properties, idempotency_key, alias, url,
        resource_id, resource_type,
    )  # fmt: skip


def event_of(
    raw: RawRecord,
    kind: RecordKind,
    name: str | None,
    identifiers: dict[str, str],
    timestamp: datetime,
    properties: dict[str, Any],
    idempotency_key: str | None,
    alias: dict[str, str] | None,
    url: str | None,
    resource_id: str | None,
    resource_type: str | None,
) -> Event | Rejection:
    """`build_event` with positional arguments and the identifiers' values (the per-record
    path of a dialect adapter; keyword arguments cost more to pass)."""
    rejection = check_properties(properties)
    if rejection is not None:
        return rejection
    source = raw.source
    # Positional, in field order: event_id, kind, account, name, identifiers, timestamp,
    # received_at, properties, source, idempotency_key, profile_id, alias, url,
    # resource_id, resource_type, trigger_requested (this runs once per record).
    return Event(
        make_event_id(source) if WANT_EVENT_ID.get() else "",
        kind,
        source.account,
        name,
        identifiers,
        timestamp,
        raw.received_at,
        properties,
        source,
        idempotency_key,
        None,
        alias,
        url,
        resource_id,
        resource_type,
        raw.trigger,
    )
