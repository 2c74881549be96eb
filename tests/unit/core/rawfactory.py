"""Builds raw records for the stateless-rule tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from streams.core.errors import Rejection
from streams.core.normalize import normalize
from streams.core.records import Dialect, Event, RawRecord, Source, SourceKind

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
NOW_S = int(NOW.timestamp())


def raw(
    dialect: Dialect,
    payload: bytes | dict[str, Any],
    *,
    fields: dict[str, str] | None = None,
    path_identifier: str | None = None,
    line: int = 1,
    received_at: datetime = NOW,
) -> RawRecord:
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    source = Source(SourceKind.FILE, dialect, "acme", "up-1", "drop.jsonl", None, line)
    return RawRecord(source, received_at, body, fields, path_identifier)


def run(dialect: Dialect, payload: bytes | dict[str, Any], **kwargs: Any) -> Event | Rejection:
    return normalize(raw(dialect, payload, **kwargs))


def accepted(dialect: Dialect, payload: bytes | dict[str, Any], **kwargs: Any) -> Event:
    result = run(dialect, payload, **kwargs)
    assert isinstance(result, Event), result
    return result


def code_of(dialect: Dialect, payload: bytes | dict[str, Any], **kwargs: Any) -> str:
    result = run(dialect, payload, **kwargs)
    assert isinstance(result, Rejection), result
    return result.code.value
