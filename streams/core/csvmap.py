"""CSV column mappings: which columns hold what, and how the other cells are typed (pure).

A mapping (docs/CSV_MAPPING.md) names the columns of the identifier(s), the event name,
the timestamp (with its format) and the idempotency key; every other column becomes a
property under its header, case kept, typed as Naxai's CSV import does: numbers and
booleans are recognised, everything else stays a string. A mapped row becomes a record
of the canonical dialect (`map_row`), so it meets every rule any other record meets.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from streams.core.errors import ErrorCode, Rejection, Stage
from streams.core.identifiers import classify_freeform
from streams.core.records import IDENTIFIER_PRECEDENCE
from streams.core.timeparse import (
    from_epoch_millis,
    from_epoch_seconds,
    from_iso,
    from_vero,
    to_iso,
)

#: Identifier kinds a mapping can name; ``identifier`` is Naxai's free-form one (an email
#: address is an email, anything else a user id).
IDENTIFIER_KINDS: tuple[str, ...] = (*IDENTIFIER_PRECEDENCE, "identifier")
#: Named timestamp formats; anything else containing ``%`` is a `strptime` pattern.
TIME_FORMATS: tuple[str, ...] = ("iso8601", "epoch_seconds", "epoch_millis", "vero")
KEYS = frozenset(
    {"identifiers", "event_name", "timestamp", "timestamp_format", "idempotency_key", "ignore"}
)

# Numbers as a spreadsheet writes them; a leading zero ("007", a zip code) stays a string.
_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)")
_DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_BOOLEANS = {"true": True, "false": False}


@dataclass(frozen=True, slots=True)
class CsvMapping:
    """Columns by role; `identifiers` maps an identifier kind to its column."""

    identifiers: tuple[tuple[str, str], ...]
    event_name: str
    timestamp: str | None = None
    timestamp_format: str = "iso8601"
    idempotency_key: str | None = None
    ignore: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column the mapping names (each must be in the header)."""
        named = [column for _, column in self.identifiers]
        named.append(self.event_name)
        named += [c for c in (self.timestamp, self.idempotency_key) if c is not None]
        return tuple(dict.fromkeys(named))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "identifiers": dict(self.identifiers),
            "event_name": self.event_name,
            "timestamp_format": self.timestamp_format,
        }
        if self.timestamp is not None:
            out["timestamp"] = self.timestamp
        if self.idempotency_key is not None:
            out["idempotency_key"] = self.idempotency_key
        if self.ignore:
            out["ignore"] = list(self.ignore)
        return out


def _invalid(message: str) -> Rejection:
    return Rejection(ErrorCode.INVALID_MAPPING, message, Stage.UPLOAD)


def _column(obj: Mapping[str, Any], key: str, *, required: bool) -> str | Rejection | None:
    value = obj.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        return _invalid(f"mapping: {key!r} must name a column (a non-empty string)")
    return value.strip()


def parse_mapping(obj: Any) -> CsvMapping | Rejection:
    """A mapping from its JSON/TOML object, or `invalid_mapping` saying what is wrong."""
    if not isinstance(obj, Mapping):
        return _invalid("mapping: expected an object")
    unknown = sorted(set(obj) - KEYS)
    if unknown:
        return _invalid(f"mapping: unknown key {unknown[0]!r} (known: {', '.join(sorted(KEYS))})")
    raw_ids = obj.get("identifiers")
    if not isinstance(raw_ids, Mapping) or not raw_ids:
        return _invalid(
            "mapping: 'identifiers' must map at least one identifier kind "
            f"({', '.join(IDENTIFIER_KINDS)}) to a column"
        )
    identifiers: list[tuple[str, str]] = []
    for kind, column in raw_ids.items():
        if kind not in IDENTIFIER_KINDS:
            return _invalid(
                f"mapping: unknown identifier kind {kind!r} (known: {', '.join(IDENTIFIER_KINDS)})"
            )
        if not isinstance(column, str) or not column.strip():
            return _invalid(f"mapping: identifiers.{kind} must name a column")
        identifiers.append((str(kind), column.strip()))
    name = _column(obj, "event_name", required=True)
    timestamp = _column(obj, "timestamp", required=False)
    key = _column(obj, "idempotency_key", required=False)
    for checked in (name, timestamp, key):
        if isinstance(checked, Rejection):
            return checked
    assert isinstance(name, str)
    fmt = obj.get("timestamp_format", "iso8601")
    if not isinstance(fmt, str) or (fmt not in TIME_FORMATS and "%" not in fmt):
        return _invalid(
            f"mapping: timestamp_format must be one of {', '.join(TIME_FORMATS)} "
            "or a strptime pattern such as '%d/%m/%Y %H:%M'"
        )
    ignore = obj.get("ignore", [])
    if not isinstance(ignore, list) or not all(isinstance(c, str) for c in ignore):
        return _invalid("mapping: 'ignore' must be a list of column names")
    return CsvMapping(
        tuple(identifiers),
        name,
        timestamp if isinstance(timestamp, str) else None,
        fmt,
        key if isinstance(key, str) else None,
        tuple(ignore),
    )


def missing_columns(mapping: CsvMapping, header: list[str]) -> Rejection | None:
    """`mapping_missing_column` when the header lacks a column the mapping names."""
    present = set(header)
    missing = [column for column in mapping.columns if column not in present]
    if not missing:
        return None
    listed = ", ".join(repr(c) for c in missing)
    return Rejection(
        ErrorCode.MAPPING_MISSING_COLUMN,
        f"the mapping names column(s) {listed} that the CSV header does not have "
        f"(header: {', '.join(header)}); column names are case-sensitive",
        Stage.UPLOAD,
    )


def type_cell(text: str) -> str | int | float | bool:
    """A cell as Naxai types it: a number, a boolean, or else the string itself."""
    lowered = text.lower()
    if lowered in _BOOLEANS:
        return _BOOLEANS[lowered]
    if _INTEGER.fullmatch(text):
        return int(text)
    if _DECIMAL.fullmatch(text):
        number = float(text)
        if math.isfinite(number):
            return number
    return text


def parse_time(text: str, fmt: str) -> datetime | None:
    """A timestamp cell in the mapping's format (naive times are UTC)."""
    text = text.strip()
    if fmt == "iso8601":
        return from_iso(text)
    if fmt == "vero":
        return from_vero(text)
    if fmt in ("epoch_seconds", "epoch_millis"):
        number = type_cell(text)
        if isinstance(number, bool) or not isinstance(number, int | float):
            return None
        return from_epoch_seconds(number) if fmt == "epoch_seconds" else from_epoch_millis(number)
    try:
        parsed = datetime.strptime(text, fmt)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _missing(code: ErrorCode, column: str, role: str) -> Rejection:
    return Rejection(code, f"column {column!r} ({role}) is empty", Stage.NORMALIZE, column)


def map_row(mapping: CsvMapping, fields: Mapping[str, str]) -> dict[str, Any] | Rejection:
    """One CSV row as a canonical-dialect record, or why its mapped values cannot be used.

    Empty cells are absent values (as in Vero's import): an empty property is left out,
    an empty identifier, event name or timestamp column rejects the row.
    """
    identifiers: dict[str, Any] = {}
    for kind, column in mapping.identifiers:
        value = fields.get(column, "").strip()
        if not value:
            continue
        namespace, typed = classify_freeform(value) if kind == "identifier" else (kind, value)
        identifiers.setdefault(namespace, typed)
    if not identifiers:
        columns = ", ".join(repr(c) for _, c in mapping.identifiers)
        return Rejection(
            ErrorCode.MISSING_IDENTITY,
            f"the identifier column(s) {columns} are empty",
            Stage.NORMALIZE,
            mapping.identifiers[0][1],
        )
    name = fields.get(mapping.event_name, "").strip()
    if not name:
        return _missing(ErrorCode.MISSING_EVENT_NAME, mapping.event_name, "event name")
    record: dict[str, Any] = {"kind": "event", "identifiers": identifiers, "name": name}
    if mapping.timestamp is not None:
        text = fields.get(mapping.timestamp, "")
        if not text.strip():
            return _missing(ErrorCode.MISSING_TIMESTAMP, mapping.timestamp, "timestamp")
        when = parse_time(text, mapping.timestamp_format)
        if when is None:
            return Rejection(
                ErrorCode.INVALID_TIMESTAMP,
                f"column {mapping.timestamp!r}: {text!r} is not a {mapping.timestamp_format} time",
                Stage.NORMALIZE,
                mapping.timestamp,
            )
        record["timestamp"] = to_iso(when)
    if mapping.idempotency_key is not None:
        key = fields.get(mapping.idempotency_key, "").strip()
        if key:
            record["idempotencyKey"] = key
    skip = {*mapping.columns, *mapping.ignore}
    record["properties"] = {
        header: type_cell(value)
        for header, value in fields.items()
        if header not in skip and value != ""
    }
    return record
