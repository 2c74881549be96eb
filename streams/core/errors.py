"""The error-code table and the rejection value: errors are data, not exceptions."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Stage(StrEnum):
    """Where in the pipeline a record was rejected."""

    READ = "read"  # framing: encoding, JSON/CSV syntax, line length
    NORMALIZE = "normalize"  # dialect mapping and stateless field rules
    WINDOW = "window"  # the 365-day / 1-day time window
    IDENTITY = "identity"
    CATALOG = "catalog"  # per-account event-type / property limits
    UPLOAD = "upload"  # whole upload / request


class ErrorCode(StrEnum):
    """Stable, lowercase error codes. New codes may be added; existing ones keep meaning."""

    # record level
    INVALID_JSON = "invalid_json"
    INVALID_ENCODING = "invalid_encoding"
    INVALID_ROW = "invalid_row"
    LINE_TOO_LONG = "line_too_long"
    MISSING_IDENTITY = "missing_identity"
    BLOCKED_IDENTITY = "blocked_identity"
    MISSING_EVENT_NAME = "missing_event_name"
    MISSING_TIMESTAMP = "missing_timestamp"
    INVALID_TIMESTAMP = "invalid_timestamp"
    TIMESTAMP_TOO_OLD = "timestamp_too_old"
    TIMESTAMP_IN_FUTURE = "timestamp_in_future"
    RESERVED_FIELD = "reserved_field"
    INVALID_FIELD = "invalid_field"
    KEY_TOO_LONG = "key_too_long"
    VALUE_TOO_LONG = "value_too_long"
    IDEMPOTENCY_KEY_TOO_LONG = "idempotency_key_too_long"
    EMPTY_RECORD = "empty_record"
    TOO_MANY_EVENT_TYPES = "too_many_event_types"
    TOO_MANY_PROPERTIES = "too_many_properties"
    # upload / request level
    INVALID_MANIFEST = "invalid_manifest"
    MANIFEST_MISSING_FILE = "manifest_missing_file"
    FILE_NOT_IN_MANIFEST = "file_not_in_manifest"
    DUPLICATE_FILENAME = "duplicate_filename"
    UNSUPPORTED_FORMAT = "unsupported_format"
    UNSAFE_ARCHIVE = "unsafe_archive"
    BATCH_TOO_LARGE = "batch_too_large"
    INVALID_PAYLOAD = "invalid_payload"
    UNAUTHORIZED = "unauthorized"
    INVALID_MAPPING = "invalid_mapping"
    MAPPING_MISSING_COLUMN = "mapping_missing_column"


# One table: code -> (stable number for APIs that want integers, what it means).
ERROR_TABLE: dict[ErrorCode, tuple[int, str]] = {
    ErrorCode.INVALID_JSON: (501, "the line is not a JSON object"),
    ErrorCode.INVALID_ENCODING: (502, "the line is not valid UTF-8"),
    ErrorCode.INVALID_ROW: (503, "the CSV row cannot be read against the header"),
    ErrorCode.LINE_TOO_LONG: (504, "the line is longer than the reader's limit"),
    ErrorCode.MISSING_IDENTITY: (511, "no user identifier in the record"),
    ErrorCode.BLOCKED_IDENTITY: (512, "the only identifiers are placeholder values"),
    ErrorCode.MISSING_EVENT_NAME: (513, "no event name"),
    ErrorCode.MISSING_TIMESTAMP: (514, "no timestamp where the dialect requires one"),
    ErrorCode.INVALID_TIMESTAMP: (515, "the timestamp cannot be read"),
    ErrorCode.TIMESTAMP_TOO_OLD: (516, "timestamp more than 365 days before receipt"),
    ErrorCode.TIMESTAMP_IN_FUTURE: (517, "timestamp more than 1 day after receipt"),
    ErrorCode.RESERVED_FIELD: (518, "the record uses a key reserved by the system"),
    ErrorCode.INVALID_FIELD: (519, "a field has the wrong type or format"),
    ErrorCode.KEY_TOO_LONG: (520, "event name or property key longer than 120 characters"),
    ErrorCode.VALUE_TOO_LONG: (521, "a property value longer than 512 bytes"),
    ErrorCode.IDEMPOTENCY_KEY_TOO_LONG: (522, "idempotency key longer than 128 characters"),
    ErrorCode.EMPTY_RECORD: (523, "the record carries no event, alias or property"),
    ErrorCode.TOO_MANY_EVENT_TYPES: (524, "the account already has 512 event types"),
    ErrorCode.TOO_MANY_PROPERTIES: (525, "the event type already has 256 property names"),
    ErrorCode.INVALID_MANIFEST: (601, "manifest.json is not in the expected format"),
    ErrorCode.MANIFEST_MISSING_FILE: (602, "a file listed in the manifest is missing"),
    ErrorCode.FILE_NOT_IN_MANIFEST: (603, "a file in the archive is not in the manifest"),
    ErrorCode.DUPLICATE_FILENAME: (604, "the account already used this filename"),
    ErrorCode.UNSUPPORTED_FORMAT: (605, "the file type or dialect is not supported"),
    ErrorCode.UNSAFE_ARCHIVE: (606, "the archive has traversal, links or is a bomb"),
    ErrorCode.BATCH_TOO_LARGE: (607, "more than 1000 records in one API call"),
    ErrorCode.INVALID_PAYLOAD: (608, "the request body is not in the expected shape"),
    ErrorCode.UNAUTHORIZED: (609, "missing or wrong credentials"),
    ErrorCode.INVALID_MAPPING: (610, "the CSV column mapping is not in the expected format"),
    ErrorCode.MAPPING_MISSING_COLUMN: (611, "the CSV lacks a column the mapping names"),
}


def error_number(code: ErrorCode) -> int:
    """The stable integer for a code (CleverTap-style APIs report integers)."""
    return ERROR_TABLE[code][0]


@dataclass(slots=True, frozen=True)
class Rejection:
    """Why a record (or upload) was refused: a stable code and a human message."""

    code: ErrorCode
    message: str
    stage: Stage = Stage.NORMALIZE
    field: str | None = None
