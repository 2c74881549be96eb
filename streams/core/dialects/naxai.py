"""Naxai events: `name`, `data`, optional `idempotencyKey` and epoch-second `timestamp`."""

from __future__ import annotations

from typing import Any

from streams.core.dialects.base import (
    build_event,
    identity_rejection,
    name_of,
    reject,
    take_idempotency_key,
)
from streams.core.errors import ErrorCode, Rejection
from streams.core.identifiers import IdentifierSet, classify_freeform
from streams.core.records import Event, RawRecord, RecordKind
from streams.core.timeparse import from_epoch_seconds

KNOWN = frozenset({"name", "data", "type", "timestamp", "identifier"})


def to_event(raw: RawRecord, obj: dict[str, Any]) -> Event | Rejection:
    key = take_idempotency_key(obj)
    if isinstance(key, Rejection):
        return key
    unknown = sorted(set(obj) - KNOWN)
    if unknown:
        # Naxai keeps event data under `data`; a stray top-level key is a client bug.
        return reject(
            ErrorCode.INVALID_FIELD,
            f"unknown top-level field {unknown[0]!r}; put event data under 'data'",
            unknown[0],
        )
    kind = obj.get("type", "event")
    if kind != "event":
        return reject(ErrorCode.INVALID_FIELD, "type must be 'event'", "type")
    ids = IdentifierSet()
    identifier = raw.path_identifier if raw.path_identifier is not None else obj.get("identifier")
    if identifier is not None:
        ids.add(*classify_freeform(identifier))
    missing = identity_rejection(ids, "identifier")
    if missing:
        return missing
    name = name_of(obj.get("name"), "name")
    if isinstance(name, Rejection):
        return name
    data = obj.get("data", {})
    if not isinstance(data, dict):
        return reject(ErrorCode.INVALID_FIELD, "data must be an object", "data")
    raw_ts = obj.get("timestamp")
    if raw_ts is None:
        timestamp = raw.received_at  # Naxai: no timestamp means "when processed"
    else:
        parsed = from_epoch_seconds(raw_ts)
        if parsed is None:
            return reject(
                ErrorCode.INVALID_TIMESTAMP,
                f"timestamp {raw_ts!r} is not epoch seconds",
                "timestamp",
            )
        timestamp = parsed
    return build_event(
        raw,
        kind=RecordKind.EVENT,
        name=name,
        ids=ids,
        timestamp=timestamp,
        properties=data,
        idempotency_key=key,
    )
