"""Zeta JSONL events: user_id/email, event_type, ISO or epoch-millisecond timestamp."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from streams.core.dialects.base import (
    event_of,
    identity_rejection,
    name_of,
    reject,
    take_idempotency_key,
)
from streams.core.errors import ErrorCode, Rejection
from streams.core.identifiers import IdentifierSet
from streams.core.records import Event, RawRecord, RecordKind
from streams.core.timeparse import from_epoch_millis, from_iso

RESERVED = frozenset(
    {
        "enriched",
        "identity",
        "status",
        "identified",
        "properties",
        "event_id",
        "is_test",
        "bsin",
        "site_id",
    }
)
MAX_RESOURCE_CHARS = 2048
_EVENT = RecordKind.EVENT

# A stripped ASCII URL that `urlsplit` certainly reads as http(s) with a non-empty netloc:
# nothing it removes or rejects (tab, CR, LF, brackets), and a netloc character right
# after `//`. Anything else takes the `urlsplit` path. (ASCII is checked by `str.isascii`,
# several times cheaper than excluding U+0080.. in the character classes.)
_PLAIN_HTTP_URL = re.compile(r"https?://[^/?#\t\r\n\[\]][^\t\r\n\[\]]*")

# Parsed ISO timestamps by their text: the records of a file often share timestamps.
_ISO_CACHE: dict[str, datetime | None] = {}
_ISO_CACHE_MAX = 1024


def _iso(value: str) -> datetime | None:
    parsed = _ISO_CACHE.get(value, _ISO_CACHE)
    if parsed is _ISO_CACHE:
        if len(_ISO_CACHE) >= _ISO_CACHE_MAX:
            _ISO_CACHE.clear()
        parsed = _ISO_CACHE[value] = from_iso(value)
    return parsed  # type: ignore[return-value]


def _url(value: Any) -> str | Rejection:
    if type(value) is str and len(value) <= MAX_RESOURCE_CHARS:
        text = value.strip()
        if text.isascii() and _PLAIN_HTTP_URL.fullmatch(text) is not None:
            return text
    if not isinstance(value, str):
        return reject(ErrorCode.INVALID_FIELD, "url must be a string", "url")
    try:
        parts = urlsplit(value.strip())
    except ValueError:  # e.g. "http://[x": an unclosed IPv6 bracket
        return reject(ErrorCode.INVALID_FIELD, "url must be an absolute http(s) URL", "url")
    if parts.scheme not in ("http", "https") or not parts.netloc or len(value) > MAX_RESOURCE_CHARS:
        return reject(ErrorCode.INVALID_FIELD, "url must be an absolute http(s) URL", "url")
    return value.strip()


def _resource(value: Any, field: str) -> str | Rejection:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return reject(ErrorCode.INVALID_FIELD, f"{field} must be a string", field)
    text = str(value).strip()
    if not text or len(text) > MAX_RESOURCE_CHARS:
        return reject(ErrorCode.INVALID_FIELD, f"{field} must be a non-empty string", field)
    return text


def to_event(raw: RawRecord, obj: dict[str, Any]) -> Event | Rejection:
    if not RESERVED.isdisjoint(obj):
        field = min(RESERVED.intersection(obj))
        return reject(ErrorCode.RESERVED_FIELD, f"{field} is reserved by the events system", field)
    key = take_idempotency_key(obj)
    if isinstance(key, Rejection):
        return key
    ids = IdentifierSet()
    if "user_id" in obj:
        ids.add("user_id", obj.pop("user_id"))
    if "email" in obj:
        ids.add("email", obj.pop("email"))
    if not ids.values:
        missing = identity_rejection(ids, "user_id or email")
        if missing:
            return missing
    name = name_of(obj.pop("event_type", None), "event_type")
    if isinstance(name, Rejection):
        return name
    raw_ts = obj.pop("timestamp", None)
    if raw_ts is None:
        return reject(ErrorCode.MISSING_TIMESTAMP, "timestamp is required", "timestamp")
    timestamp = _iso(raw_ts) if isinstance(raw_ts, str) else from_epoch_millis(raw_ts)
    if timestamp is None:
        return reject(
            ErrorCode.INVALID_TIMESTAMP,
            f"timestamp {raw_ts!r} is neither ISO-8601 nor epoch milliseconds",
            "timestamp",
        )
    url = resource_id = resource_type = None
    if "url" in obj:
        checked = _url(obj.pop("url"))
        if isinstance(checked, Rejection):
            return checked
        url = checked
    if "resource_id" in obj:
        checked = _resource(obj.pop("resource_id"), "resource_id")
        if isinstance(checked, Rejection):
            return checked
        resource_id = checked
    if "resource_type" in obj:
        checked = _resource(obj.pop("resource_type"), "resource_type")
        if isinstance(checked, Rejection):
            return checked
        resource_type = checked
    return event_of(
        raw, _EVENT, name, ids.values, timestamp, obj, key, None, url, resource_id, resource_type
    )
