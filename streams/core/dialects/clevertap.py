"""CleverTap upload records: `type`, `evtName`, `evtData`, `ts`, one of four identities."""

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
from streams.core.timeparse import from_epoch_seconds, to_iso

IDENTITY_FIELDS = (("objectId", "object_id"), ("FBID", "fbid"), ("GPID", "gpid"))
DATE_PREFIX = "$D_"


def convert_dates(value: Any) -> Any:
    """`"$D_<epoch seconds>"` values are dates: written out as ISO-8601 UTC strings."""
    if isinstance(value, str):
        if value.startswith(DATE_PREFIX) and value[3:].isdigit():
            when = from_epoch_seconds(int(value[3:]))
            return to_iso(when) if when is not None else value
        return value
    if isinstance(value, dict):
        return {k: convert_dates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [convert_dates(v) for v in value]
    return value


def to_event(raw: RawRecord, obj: dict[str, Any]) -> Event | Rejection:
    key = take_idempotency_key(obj)
    if isinstance(key, Rejection):
        return key
    record_type = obj.get("type")
    if record_type not in ("event", "profile"):
        return reject(ErrorCode.INVALID_FIELD, "type must be 'event' or 'profile'", "type")
    ids = IdentifierSet()
    if "identity" in obj:
        ids.add(*classify_freeform(obj["identity"]))
    for field, namespace in IDENTITY_FIELDS:
        if field in obj:
            ids.add(namespace, obj[field])
    missing = identity_rejection(ids, "one of identity, FBID, GPID or objectId")
    if missing:
        return missing
    raw_ts = obj.get("ts")
    if raw_ts is None:
        timestamp = raw.received_at
    else:
        parsed = from_epoch_seconds(raw_ts)
        if parsed is None:
            return reject(ErrorCode.INVALID_TIMESTAMP, f"ts {raw_ts!r} is not epoch seconds", "ts")
        timestamp = parsed
    name: str | None = None
    kind = RecordKind.PROFILE
    if record_type == "event":
        checked = name_of(obj.get("evtName"), "evtName")
        if isinstance(checked, Rejection):
            return checked
        name, kind = checked, RecordKind.EVENT
    data_field = "evtData" if record_type == "event" else "profileData"
    data = obj.get(data_field)
    if data is None:  # CleverTap: "(Required)"; `{}` is an event with no properties
        return reject(
            ErrorCode.INVALID_FIELD,
            f"{data_field} is required (an object of properties, {{}} for none)",
            data_field,
        )
    if not isinstance(data, dict):
        return reject(ErrorCode.INVALID_FIELD, f"{data_field} must be an object", data_field)
    return build_event(
        raw,
        kind=kind,
        name=name,
        ids=ids,
        timestamp=timestamp,
        properties=convert_dates(data),
        idempotency_key=key,
    )
