"""The stateless half of the rules: raw record → canonical Event, or a Rejection."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson

from streams.core.dialects import JSON_ADAPTERS, vero
from streams.core.dialects.base import WANT_EVENT_ID
from streams.core.errors import ErrorCode, Rejection, Stage
from streams.core.records import Dialect, Event, RawRecord
from streams.core.window import check_window


def _decode_failure(payload: bytes, error: orjson.JSONDecodeError) -> Rejection:
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError as bad:
        return Rejection(
            ErrorCode.INVALID_ENCODING,
            f"invalid UTF-8 at byte {bad.start}",
            Stage.READ,
        )
    # The parser's reason and where: "unexpected end of data at character 8".
    return Rejection(
        ErrorCode.INVALID_JSON,
        f"the line is not valid JSON: {error.msg} at character {error.pos + 1}",
        Stage.READ,
    )


FEEDBACK_KEYS = frozenset({"record", "line", "code", "message", "file"})


def unwrap_feedback(obj: dict[str, Any]) -> dict[str, Any]:
    """A line of a JSONL feedback file re-imports as the (fixed) original record it wraps."""
    inner = obj.get("record")
    if isinstance(inner, dict) and "code" in obj and obj.keys() <= FEEDBACK_KEYS:
        return inner
    return obj


_VERO = Dialect.VERO
_ZETA = Dialect.ZETA
_zeta_to_event = JSON_ADAPTERS[Dialect.ZETA]
_loads = orjson.loads
_JSONDecodeError = orjson.JSONDecodeError


@contextmanager
def verdicts_only() -> Iterator[None]:
    """Inside it, `normalize` leaves every Event's `event_id` empty instead of hashing it:
    for callers that only want the verdict (`tidegate validate`), set once per run."""
    token = WANT_EVENT_ID.set(False)
    try:
        yield
    finally:
        WANT_EVENT_ID.reset(token)


def normalize(raw: RawRecord, *, event_id: bool = True) -> Event | Rejection:
    """Maps one raw record through its dialect and every stateless rule.

    `event_id=False` is `verdicts_only()` for one record: the Event's `event_id` is then
    left empty instead of computed.
    """
    if not event_id:
        with verdicts_only():
            return normalize(raw)
    if raw.framing_error is not None:
        return raw.framing_error
    dialect = raw.source.dialect
    if dialect is _VERO:
        if raw.fields is None:
            return Rejection(ErrorCode.INVALID_ROW, "the CSV row has no fields", Stage.READ)
        result = vero.to_event(raw, raw.fields)
    else:
        try:
            obj = _loads(raw.payload)
        except _JSONDecodeError as error:
            return _decode_failure(raw.payload, error)
        if type(obj) is not dict:
            return Rejection(ErrorCode.INVALID_JSON, "each line must be a JSON object", Stage.READ)
        if "record" in obj:
            obj = unwrap_feedback(obj)
        if not obj:
            return Rejection(ErrorCode.EMPTY_RECORD, "the JSON object is empty")
        adapter = _zeta_to_event if dialect is _ZETA else JSON_ADAPTERS[dialect]
        result = adapter(raw, obj)
    if isinstance(result, Rejection):
        return result
    return check_window(result.timestamp, result.received_at) or result
