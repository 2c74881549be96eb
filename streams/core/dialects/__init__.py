"""One adapter per source dialect, and dialect detection from a filename and first record."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from streams.core.dialects import canonical, clevertap, kissmetrics, naxai, zeta
from streams.core.errors import Rejection
from streams.core.records import Dialect, Event, RawRecord

JsonAdapter = Callable[[RawRecord, dict[str, Any]], Event | Rejection]

JSON_ADAPTERS: dict[Dialect, JsonAdapter] = {
    Dialect.ZETA: zeta.to_event,
    Dialect.KISSMETRICS: kissmetrics.to_event,
    Dialect.NAXAI: naxai.to_event,
    Dialect.CLEVERTAP: clevertap.to_event,
    Dialect.CANONICAL: canonical.to_event,
}

JSON_LINE_EXTENSIONS = (".jsonl", ".ndjson", ".json", ".txt")

# The file types each dialect's data files come in. Inside an archive a member of another
# type (a notes.txt or README.md beside the .jsonl files of a Zeta drop, an .xlsx in a Vero
# zip) is not data: it fails as a whole (Zeta: "each data file is a .jsonl file").
DATA_FILE_EXTENSIONS: dict[Dialect, tuple[str, ...]] = {
    Dialect.ZETA: (".jsonl", ".ndjson", ".json"),
    Dialect.VERO: (".csv",),
    Dialect.KISSMETRICS: (".json", ".jsonl", ".ndjson", ".txt"),
    Dialect.NAXAI: (".json", ".jsonl", ".ndjson"),
    Dialect.CLEVERTAP: (".json", ".jsonl", ".ndjson"),
    Dialect.CANONICAL: (".json", ".jsonl", ".ndjson"),
}


def is_data_file(dialect: Dialect, filename: str) -> bool:
    """Is `filename` of one of the file types `dialect`'s data files come in?"""
    return filename.lower().endswith(DATA_FILE_EXTENSIONS[dialect])


def _dialect_of_object(obj: dict[str, Any]) -> Dialect | None:
    if "d" in obj and isinstance(obj["d"], list):
        return Dialect.CLEVERTAP
    if "_p" in obj or "_t" in obj or "_n" in obj:
        return Dialect.KISSMETRICS
    if "event_type" in obj:
        return Dialect.ZETA
    if "evtName" in obj or "evtData" in obj:
        return Dialect.CLEVERTAP
    if "identifiers" in obj and "kind" in obj:
        return Dialect.CANONICAL
    if "name" in obj and ("data" in obj or "identifier" in obj):
        return Dialect.NAXAI
    return None


def detect_dialect(filename: str, first_line: bytes | None) -> Dialect | None:
    """The dialect of a file from its extension and its first non-blank line."""
    lower = filename.lower()
    if lower.endswith(".csv"):
        return Dialect.VERO
    if not lower.endswith(JSON_LINE_EXTENSIONS):
        return None
    head = (first_line or b"").lstrip(b"\xef\xbb\xbf").strip()
    if head.startswith(b"{"):
        compact = head[1:].lstrip()
        if not compact or compact.startswith(b'"d"'):
            # `{` alone or `{"d": [` begins a pretty-printed or one-line CleverTap payload.
            return Dialect.CLEVERTAP
        try:
            obj = orjson.loads(head)
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            if isinstance(obj.get("record"), dict) and "code" in obj:
                obj = obj["record"]  # a JSONL feedback file wraps the original records
            found = _dialect_of_object(obj)
            if found is not None:
                return found
    if lower.endswith(".json"):
        return Dialect.KISSMETRICS  # Kissmetrics' own extension for JSON-lines imports
    return Dialect.ZETA
