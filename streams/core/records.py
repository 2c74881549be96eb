"""Record types that cross the core's boundary: raw records in, canonical records out."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Any

from streams.core.errors import ErrorCode, Rejection

# Namespace for deterministic event ids: the same source line always gets the same id.
EVENT_ID_NAMESPACE = uuid.UUID("6f1c4e0a-6a43-4b8e-9d1e-7e1d2a0c5b11")

# Identifier namespaces in precedence order, highest first.
IDENTIFIER_PRECEDENCE: tuple[str, ...] = ("user_id", "email", "phone", "object_id", "fbid", "gpid")


class SourceKind(StrEnum):
    FILE = "file"
    API = "api"
    KAFKA = "kafka"


class Dialect(StrEnum):
    ZETA = "zeta"
    VERO = "vero"
    KISSMETRICS = "kissmetrics"
    NAXAI = "naxai"
    CLEVERTAP = "clevertap"
    CANONICAL = "canonical"


class RecordKind(StrEnum):
    EVENT = "event"
    PROFILE = "profile"
    ALIAS = "alias"


class OutcomeKind(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


@dataclass(slots=True, frozen=True)
class Source:
    """Where a record came from; `line` is the 1-based physical line (or position in `d`)."""

    kind: SourceKind
    dialect: Dialect
    account: str
    upload_id: str
    file: str
    member: str | None
    line: int


# The slot descriptors' setters, in field order (see `source_factory`).
_SOURCE_SETTERS = tuple(getattr(Source, f.name).__set__ for f in fields(Source))

_NAMESPACE_BYTES = EVENT_ID_NAMESPACE.bytes
_sha1 = hashlib.sha1
# The uuid variant bits (10xx) set on the high nibble of byte 8, by that nibble's hex digit.
_VARIANT = {f"{n:x}": f"{(n & 0x3) | 0x8:x}" for n in range(16)}
# Hashed name prefixes by (account, upload_id, file, member): every line of an upload
# shares one, so only the line number is encoded per record.
_ID_PREFIXES: dict[tuple[str, str, str, str | None], bytes] = {}
_ID_PREFIXES_MAX = 4096


def make_event_id(source: Source) -> str:
    """Deterministic id: uuid5 of account, upload, file, member and line.

    Equal to `str(uuid.uuid5(EVENT_ID_NAMESPACE, name))` with `name` =
    `"<account>\\x1f<upload_id>\\x1f<file>\\x1f<member or ''>\\x1f<line>"`, computed without
    building UUID objects: this runs once per record and uuid5 itself costs several
    microseconds. The namespace and name prefix of an upload's member are encoded once.
    """
    parts = (source.account, source.upload_id, source.file, source.member)
    prefix = _ID_PREFIXES.get(parts)
    if prefix is None:
        if len(_ID_PREFIXES) >= _ID_PREFIXES_MAX:
            _ID_PREFIXES.clear()
        prefix = (
            _NAMESPACE_BYTES
            + (
                f"{source.account}\x1f{source.upload_id}\x1f{source.file}\x1f{source.member or ''}\x1f"
            ).encode()
        )
        _ID_PREFIXES[parts] = prefix
    h = _sha1(prefix + str(source.line).encode(), usedforsecurity=False).hexdigest()
    # Version 5 in the high nibble of byte 6, variant 10xx in the high nibble of byte 8.
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


_new_object = object.__new__


def source_factory(
    kind: SourceKind,
    dialect: Dialect,
    account: str,
    upload_id: str,
    file: str,
    member: str | None,
) -> Callable[[int], Source]:
    """`make(line)` → `Source(kind, dialect, account, upload_id, file, member, line)`.

    For readers that make one Source per line of a member: the same object as the
    constructor makes, built without the frozen dataclass's per-field `object.__setattr__`.
    """
    set_kind, set_dialect, set_account, set_upload, set_file, set_member, set_line = _SOURCE_SETTERS

    def make(line: int) -> Source:
        source: Source = _new_object(Source)
        set_kind(source, kind)
        set_dialect(source, dialect)
        set_account(source, account)
        set_upload(source, upload_id)
        set_file(source, file)
        set_member(source, member)
        set_line(source, line)
        return source

    return make


@dataclass(slots=True)
class RawRecord:
    """One framed line, CSV row or API record, as a connector read it.

    Connectors only frame: they never decide validity beyond "not a line at all"
    (`framing_error`, e.g. a line over the length limit or bad CSV quoting).
    """

    source: Source
    received_at: datetime
    payload: bytes  # original bytes of the line / row / API record (no line terminator)
    fields: dict[str, str] | None = None  # CSV rows: header name -> cell, framed by the reader
    path_identifier: str | None = None  # Naxai: the {identifier} of the request path
    trigger: bool = False  # the source asked for its events to trigger campaigns
    framing_error: Rejection | None = None
    # CSV rows: the member's header, also on a row that could not be framed (no `fields`),
    # for its feedback file (core/feedback.py `feedback_header`)
    header: tuple[str, ...] | None = None


@dataclass(slots=True)
class Event:
    """The canonical record: the same shape on every output."""

    event_id: str
    kind: RecordKind
    account: str
    name: str | None
    identifiers: dict[str, str]
    timestamp: datetime
    received_at: datetime
    properties: dict[str, Any]
    source: Source
    idempotency_key: str | None = None
    profile_id: str | None = None
    alias: dict[str, str] | None = None  # kind=alias: the identifier to link, {namespace: value}
    url: str | None = None  # Zeta top-level resource fields
    resource_id: str | None = None
    resource_type: str | None = None
    trigger_requested: bool = False
    triggered: bool = False


@dataclass(slots=True)
class Outcome:
    """Exactly one per record: accepted (maybe triggered), duplicate, or rejected."""

    kind: OutcomeKind
    event_id: str
    source: Source
    event: Event | None = None
    rejection: Rejection | None = None
    raw: bytes | None = None  # the original payload, kept for dead letters and feedback files
    notes: list[str] = field(default_factory=list)  # e.g. identity conflicts reported
    # When the record arrived, for a rejection that has no Event to carry it (stateless).
    received_at: datetime | None = None
    header: tuple[str, ...] | None = None  # a rejected CSV row: its member's header

    @property
    def code(self) -> ErrorCode | None:
        return self.rejection.code if self.rejection else None
