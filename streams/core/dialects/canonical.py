"""Canonical JSON published by Kafka producers: the output record shape, minus decisions."""

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
from streams.core.identifiers import IdentifierSet
from streams.core.records import IDENTIFIER_PRECEDENCE, Event, RawRecord, RecordKind
from streams.core.timeparse import from_iso


def to_event(raw: RawRecord, obj: dict[str, Any]) -> Event | Rejection:
    key = take_idempotency_key(obj)
    if isinstance(key, Rejection):
        return key
    if key is None and isinstance(obj.get("idempotency_key"), str):
        key = obj["idempotency_key"]
    try:
        kind = RecordKind(obj.get("kind", "event"))
    except ValueError:
        return reject(ErrorCode.INVALID_FIELD, "kind must be event, profile or alias", "kind")
    identifiers = obj.get("identifiers")
    if not isinstance(identifiers, dict):
        return reject(ErrorCode.MISSING_IDENTITY, "identifiers must be an object", "identifiers")
    ids = IdentifierSet()
    for namespace in IDENTIFIER_PRECEDENCE:
        if namespace in identifiers:
            ids.add(namespace, identifiers[namespace])
    missing = identity_rejection(ids, "identifiers")
    if missing:
        return missing
    name: str | None = None
    if kind is RecordKind.EVENT:
        checked = name_of(obj.get("name"), "name")
        if isinstance(checked, Rejection):
            return checked
        name = checked
    raw_ts = obj.get("timestamp")
    if raw_ts is None:
        timestamp = raw.received_at
    else:
        parsed = from_iso(raw_ts) if isinstance(raw_ts, str) else None
        if parsed is None:
            return reject(ErrorCode.INVALID_TIMESTAMP, "timestamp must be ISO-8601", "timestamp")
        timestamp = parsed
    properties = obj.get("properties", {})
    if not isinstance(properties, dict):
        return reject(ErrorCode.INVALID_FIELD, "properties must be an object", "properties")
    alias = None
    if kind is RecordKind.ALIAS:
        alias_ids = IdentifierSet()
        raw_alias = obj.get("alias")
        if isinstance(raw_alias, dict):
            for namespace, value in raw_alias.items():
                if namespace in IDENTIFIER_PRECEDENCE:
                    alias_ids.add(namespace, value)
        blocked = identity_rejection(alias_ids, "alias")
        if blocked:
            return blocked
        alias = alias_ids.values
    return build_event(
        raw,
        kind=kind,
        name=name,
        ids=ids,
        timestamp=timestamp,
        properties=properties,
        idempotency_key=key,
        alias=alias,
    )
