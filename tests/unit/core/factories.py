"""Builds normalized Events directly, for the stateful-rule tests."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

from streams.core.records import Dialect, Event, RecordKind, Source, SourceKind, make_event_id

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)

_lines = itertools.count(1)


def make_event(
    *,
    account: str = "acme",
    name: str | None = "purchase",
    kind: RecordKind = RecordKind.EVENT,
    user_id: str | None = None,
    email: str | None = None,
    identifiers: dict[str, str] | None = None,
    alias: dict[str, str] | None = None,
    timestamp: datetime = T0,
    received_at: datetime | None = None,
    properties: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    source_kind: SourceKind = SourceKind.API,
    dialect: Dialect = Dialect.CANONICAL,
    trigger_requested: bool | None = None,
    line: int | None = None,
    event_id: str | None = None,
) -> Event:
    """An Event as normalization would emit it. Each call gets its own source line (so its
    own event_id) unless `line` or `event_id` is given. `trigger_requested` defaults to
    the connectors' default: yes for API and Kafka, no for file imports."""
    ids = dict(identifiers or {})
    if user_id is not None:
        ids["user_id"] = user_id
    if email is not None:
        ids["email"] = email
    if not ids and kind is not RecordKind.ALIAS:
        ids["user_id"] = "u1"
    source = Source(
        source_kind,
        dialect,
        account,
        "up-1",
        "events.jsonl",
        None,
        next(_lines) if line is None else line,
    )
    if trigger_requested is None:
        trigger_requested = source_kind is not SourceKind.FILE
    return Event(
        event_id=event_id or make_event_id(source),
        kind=kind,
        account=account,
        name=name if kind is RecordKind.EVENT else None,
        identifiers=ids,
        timestamp=timestamp,
        received_at=received_at or timestamp,
        properties=dict(properties or {}),
        source=source,
        idempotency_key=idempotency_key,
        alias=alias,
        trigger_requested=trigger_requested,
    )
