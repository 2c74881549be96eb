"""Kissmetrics JSON lines: `_p` identity, `_t` epoch seconds, `_n` event, `_p2` alias."""

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

# Kissmetrics API plumbing that is not user data.
IGNORED = ("_k", "_d")


def _seconds(value: Any) -> Any:
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return value


def to_event(raw: RawRecord, obj: dict[str, Any]) -> Event | Rejection:
    key = take_idempotency_key(obj)
    if isinstance(key, Rejection):
        return key
    for ignored in IGNORED:
        obj.pop(ignored, None)
    ids = IdentifierSet()
    if "_p" in obj:
        ids.add(*classify_freeform(obj.pop("_p")))
    missing = identity_rejection(ids, "_p")
    if missing:
        return missing
    if "_t" not in obj:
        return reject(ErrorCode.MISSING_TIMESTAMP, "_t is required", "_t")
    raw_ts = obj.pop("_t")
    timestamp = from_epoch_seconds(_seconds(raw_ts))
    if timestamp is None:
        return reject(ErrorCode.INVALID_TIMESTAMP, f"_t {raw_ts!r} is not epoch seconds", "_t")
    alias: dict[str, str] | None = None
    if "_p2" in obj:
        alias_ids = IdentifierSet()
        alias_ids.add(*classify_freeform(obj.pop("_p2")))
        blocked = identity_rejection(alias_ids, "_p2")
        if blocked:
            return blocked
        alias = alias_ids.values
    name: str | None = None
    if "_n" in obj:
        checked = name_of(obj.pop("_n"), "_n")
        if isinstance(checked, Rejection):
            return checked
        name = checked
    if name is not None:
        kind = RecordKind.EVENT
    elif alias is not None:
        kind = RecordKind.ALIAS
    elif obj:
        kind = RecordKind.PROFILE
    else:
        return reject(
            ErrorCode.EMPTY_RECORD, "the line has none of _n (event), _p2 (alias) or properties"
        )
    return build_event(
        raw,
        kind=kind,
        name=name,
        ids=ids,
        timestamp=timestamp,
        properties=obj,
        idempotency_key=key,
        alias=alias,
    )
