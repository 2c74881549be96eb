"""The file connector's glue: an upload on disk → members → framed `RawRecord`s.

    plan = open_upload(path, account=..., upload_id=..., received_at=..., dialect=None,
                       trigger=False)          # may raise UploadRefused (whole upload)
    with plan:
        for member in plan.members:            # processing order
            try:
                for raw in iter_member_records(plan, member):
                    ...                        # hand to the core
            except MemberFailed as failed:     # this member only; the upload continues
                ...                            # failed.rejection: the member's warning

Whole-upload failures (`UploadRefused`, raised by `open_upload`): an unsafe archive
(UNSAFE_ARCHIVE), an unreadable archive or a plain / single compressed file whose type
is not supported (UNSUPPORTED_FORMAT), and the three manifest errors.

Member failures are reported in ONE way to the caller: `iter_member_records` raises
`MemberFailed` (its `rejection` names the member) — before it yields anything — and also
records the rejection on `MemberPlan.error`. Failures the scan already knows about are
visible up front as `MemberPlan.error` (and `iter_member_records` raises for them at
once): an unsupported extension inside an archive, an encrypted / corrupt / unsupported
zip member. Failures found when the member is opened: no dialect can be determined, a
CleverTap document that is not `{"d": [...]}`, an unreadable CSV header. A plain or single
compressed file has one member, which is the upload: its failure is `UploadRefused`
instead. Member failures are NOT repeated in `plan.warnings`, which only holds what is not
a failure (members skipped in sub-directories); report each MemberFailed as the member's
warning.

Supported member types: `.jsonl .ndjson .txt` (JSON lines), `.json` (JSON lines, or one
CleverTap `{"d": [...]}` document), `.csv`. The dialect of a member is the explicit
`dialect` if one is given, else `streams.core.dialects.detect_dialect(member name, first
non-blank line)`; the first line is peeked without being consumed. Framing follows the
dialect: Vero → CSV rows (`iter_csv_rows`); CleverTap whose first line opens a `{"d"`
object (or is a lone `{`) → one document (`iter_clevertap_items`); everything else →
physical lines (`iter_lines`).
"""

from __future__ import annotations

import re
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import orjson

from connectors.files.archive import (
    ARCHIVE_KINDS,
    ArchiveLimits,
    ArchivePlan,
    ContainerKind,
    detect_container,
    open_member,
    scan_archive,
    single_member_name,
)
from connectors.files.clevertap import PayloadItem, iter_clevertap_items
from connectors.files.csvmapping import MAPPING_NAME, read_archive_mapping
from connectors.files.csvrows import CsvRow, iter_csv_rows
from connectors.files.errors import MemberFailed, UploadRefused
from connectors.files.lines import MAX_LINE_BYTES, UTF8_BOM, frame_lines, iter_lines
from connectors.files.manifest import MANIFEST_NAME, Manifest, order_members, read_manifest
from streams.core.csvmap import CsvMapping, map_row, missing_columns
from streams.core.dialects import DATA_FILE_EXTENSIONS, detect_dialect, is_data_file
from streams.core.errors import ErrorCode, Rejection, Stage
from streams.core.records import Dialect, RawRecord, Source, SourceKind, source_factory

SUPPORTED_EXTENSIONS: tuple[str, ...] = (".jsonl", ".ndjson", ".txt", ".json", ".csv")
PEEK_BYTES = 64 << 10  # how much of a member is looked at to find its first line

# A first line that opens a CleverTap document: `{"d": [...` or a lone `{`.
_CLEVERTAP_HEAD = re.compile(rb'\{\s*(?:"d"\s*:|$)')

# What a damaged member raises when it is read (only if it changed since the scan).
_MEMBER_READ_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    zlib.error,
    zipfile.BadZipFile,
    tarfile.TarError,
)


def has_supported_extension(name: str) -> bool:
    return name.lower().endswith(SUPPORTED_EXTENSIONS)


def _unsupported_message(name: str, what: str) -> str:
    return (
        f"{what} {name}: unsupported file type (supported: {' '.join(SUPPORTED_EXTENSIONS)}, "
        f"also inside .zip .gz .bz2 .tar.gz .tgz .tar.bz2 .tbz2)"
    )


@dataclass(slots=True)
class MemberPlan:
    """One member to process. `member` is what `Source.member` gets (None: plain file)."""

    name: str  # the member's name (for a plain file: the upload's filename)
    member: str | None
    size: int  # bytes it expands to, as measured by the scan
    error: Rejection | None = None  # its failure, once known (see the module docstring)


@dataclass(slots=True)
class UploadPlan:
    """A scanned upload: its members in processing order, and its warnings so far."""

    path: Path
    filename: str
    account: str
    upload_id: str
    received_at: datetime
    dialect: Dialect | None
    trigger: bool  # the manifest's "trigger" when it has one, else the caller's
    members: list[MemberPlan]
    warnings: list[str]
    archive: ArchivePlan
    manifest: Manifest | None = None
    max_line_bytes: int = MAX_LINE_BYTES
    dialects: dict[str, Dialect] = field(default_factory=dict)  # member name -> dialect used
    mapping: CsvMapping | None = None  # CSV column mapping (an archive's mapping.json wins)

    def close(self) -> None:
        self.archive.close()

    def __enter__(self) -> UploadPlan:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_upload(
    path: Path,
    *,
    account: str,
    upload_id: str,
    received_at: datetime,
    dialect: Dialect | None,
    trigger: bool,
    limits: ArchiveLimits | None = None,
    filename: str | None = None,
    max_line_bytes: int = MAX_LINE_BYTES,
    mapping: CsvMapping | None = None,
) -> UploadPlan:
    """Scans an upload and plans its members; raises UploadRefused for the whole upload.

    `filename` is the name the upload was received under, when the file on disk is
    stored under another name (defaults to `path.name`).
    """
    name = filename or path.name
    kind = detect_container(name)
    if kind not in ARCHIVE_KINDS:
        inner = name if kind is ContainerKind.PLAIN else single_member_name(name)
        if not has_supported_extension(inner):
            raise UploadRefused(
                Rejection(
                    ErrorCode.UNSUPPORTED_FORMAT, _unsupported_message(name, "upload"), Stage.UPLOAD
                )
            )
    archive = scan_archive(path, limits, filename=name)
    try:
        plan = _plan(
            archive, path, account, upload_id, received_at, dialect, trigger, max_line_bytes
        )
        plan.mapping = plan.mapping or mapping
        return plan
    except BaseException:
        archive.close()
        raise


def _plan(
    archive: ArchivePlan,
    path: Path,
    account: str,
    upload_id: str,
    received_at: datetime,
    dialect: Dialect | None,
    trigger: bool,
    max_line_bytes: int,
) -> UploadPlan:
    plan = UploadPlan(
        path=path,
        filename=archive.filename,
        account=account,
        upload_id=upload_id,
        received_at=received_at,
        dialect=dialect,
        trigger=trigger,
        members=[],
        warnings=list(archive.warnings),
        archive=archive,
        max_line_bytes=max_line_bytes,
    )
    kind = archive.kind
    if kind not in ARCHIVE_KINDS:
        only = archive.members[0]
        member = only.name if kind is not ContainerKind.PLAIN else None
        plan.members.append(MemberPlan(only.name, member, only.size, only.error))
        return plan

    manifest = read_manifest(archive)
    plan.mapping = read_archive_mapping(archive)
    names = [m.name for m in archive.members if m.name not in (MANIFEST_NAME, MAPPING_NAME)]
    if manifest is not None:
        order = order_members(names, manifest)
        plan.manifest = manifest
        if manifest.trigger is not None:
            plan.trigger = manifest.trigger
    else:
        order = sorted(names)
    for member_name in order:
        scanned = archive.member(member_name)
        error = scanned.error
        if error is None and not has_supported_extension(member_name):
            error = Rejection(
                ErrorCode.UNSUPPORTED_FORMAT,
                _unsupported_message(member_name, "member"),
                Stage.UPLOAD,
            )
        plan.members.append(MemberPlan(member_name, member_name, scanned.size, error))
    return plan


class _Replayed:
    """A stream whose first bytes were already read (peeked): they are served again."""

    __slots__ = ("_prefix", "_stream")

    def __init__(self, prefix: bytes, stream: BinaryIO | None) -> None:
        self._prefix = prefix
        self._stream = stream

    def read(self, size: int = -1, /) -> bytes:
        prefix = self._prefix
        if prefix:
            if size < 0:
                self._prefix = b""
                return prefix + (self._stream.read() if self._stream else b"")
            self._prefix = prefix[size:]
            return prefix[:size]
        return self._stream.read(size) if self._stream else b""


def _as_binary(stream: _Replayed) -> BinaryIO:
    # _Replayed has the one method the readers use; typing.BinaryIO is nominal.
    return stream  # type: ignore[return-value]


def _peek(stream: BinaryIO) -> tuple[bytes, bytes | None]:
    """Reads up to PEEK_BYTES: (the bytes read, the first non-blank line among them).

    Stops early once a complete non-blank line was read. The line may be cut short when
    it is longer than what was read.
    """
    prefix = b""
    while len(prefix) < PEEK_BYTES:
        chunk = stream.read(PEEK_BYTES - len(prefix))
        if not chunk:
            break
        prefix += chunk
        complete = prefix[: prefix.rfind(b"\n") + 1]
        if complete.removeprefix(UTF8_BOM).strip():
            break
    for line in iter_lines(_as_binary(_Replayed(prefix, None)), max_line_bytes=PEEK_BYTES):
        return prefix, line.data
    return prefix, None


def _member_failed(plan: UploadPlan, member: MemberPlan, rejection: Rejection) -> MemberFailed:
    """Records the member's failure on its plan and builds the exception."""
    if member.error is None:
        member.error = rejection
    return MemberFailed(rejection, member.name)


def iter_member_records(plan: UploadPlan, member: MemberPlan) -> Iterator[RawRecord]:
    """Frames one member into raw records; raises MemberFailed for this member only.

    MemberFailed comes before the first record, except when a member turns out damaged
    while being read, which the scan rules out unless the file changed since. The one
    member of a plain or single compressed file is the whole upload: its failure before
    any record is raised as UploadRefused (there is no other member to proceed with, as
    for an unsupported plain file).
    """
    records = _framed_member(plan, member)
    if plan.archive.kind in ARCHIVE_KINDS:
        yield from records
        return
    try:
        first = next(records, None)
    except MemberFailed as failed:
        raise UploadRefused(failed.rejection) from None
    if first is not None:
        yield first
        yield from records


def _framed_member(plan: UploadPlan, member: MemberPlan) -> Iterator[RawRecord]:
    if member.error is not None:
        raise MemberFailed(member.error, member.name)
    try:
        with open_member(plan.archive, member.name) as stream:
            yield from _frame(plan, member, stream)
    except _MEMBER_READ_ERRORS as error:
        raise _member_failed(
            plan,
            member,
            Rejection(
                ErrorCode.UNSUPPORTED_FORMAT,
                f"member {member.name} cannot be read: {error}",
                Stage.UPLOAD,
            ),
        ) from None


def _frame(plan: UploadPlan, member: MemberPlan, stream: BinaryIO) -> Iterator[RawRecord]:
    prefix, first_line = _peek(stream)
    dialect = plan.dialect or detect_dialect(member.name, first_line)
    if dialect is None:
        raise _member_failed(
            plan,
            member,
            Rejection(
                ErrorCode.UNSUPPORTED_FORMAT,
                f"member {member.name}: cannot tell which dialect it is in "
                f"(name the dialect explicitly)",
                Stage.UPLOAD,
            ),
        )
    if plan.archive.kind in ARCHIVE_KINDS and not is_data_file(dialect, member.name):
        kinds = " ".join(DATA_FILE_EXTENSIONS[dialect])
        raise _member_failed(
            plan,
            member,
            Rejection(
                ErrorCode.UNSUPPORTED_FORMAT,
                f"member {member.name}: not a {dialect} data file ({kinds})",
                Stage.UPLOAD,
            ),
        )
    plan.dialects[member.name] = dialect
    replayed = _as_binary(_Replayed(prefix, stream))
    if dialect is Dialect.VERO:
        yield from _csv_records(plan, member, dialect, replayed)
    elif (
        dialect is Dialect.CLEVERTAP
        and first_line is not None
        and _CLEVERTAP_HEAD.match(first_line.strip())
    ):
        yield from _document_records(plan, member, dialect, replayed)
    else:
        yield from _line_records(plan, member, dialect, replayed)


def _source(plan: UploadPlan, member: MemberPlan, dialect: Dialect, line: int) -> Source:
    return Source(
        SourceKind.FILE,
        dialect,
        plan.account,
        plan.upload_id,
        plan.filename,
        member.member,
        line,
    )


def _line_records(
    plan: UploadPlan, member: MemberPlan, dialect: Dialect, stream: BinaryIO
) -> Iterator[RawRecord]:
    limit = plan.max_line_bytes
    received_at, trigger = plan.received_at, plan.trigger
    new_source = source_factory(
        SourceKind.FILE, dialect, plan.account, plan.upload_id, plan.filename, member.member
    )

    def record(number: int, data: bytes, too_long: bool) -> RawRecord:
        if not too_long:
            return RawRecord(new_source(number), received_at, data, None, None, trigger)
        return RawRecord(
            new_source(number),
            received_at,
            data,
            trigger=trigger,
            framing_error=Rejection(
                ErrorCode.LINE_TOO_LONG,
                f"the line is longer than the {limit}-byte line limit "
                f"(only its first {len(data)} bytes are kept)",
                Stage.READ,
            ),
        )

    return frame_lines(stream, record, limit)


def _csv_records(
    plan: UploadPlan, member: MemberPlan, dialect: Dialect, stream: BinaryIO
) -> Iterator[RawRecord]:
    mapping = plan.mapping
    if mapping is not None:
        plan.dialects[member.name] = Dialect.CANONICAL
    names: tuple[str, ...] = ()

    def on_header(header: list[str]) -> None:
        nonlocal names
        names = tuple(header)  # every row's, for the feedback of a row without fields
        if mapping is not None:
            problem = missing_columns(mapping, header)
            if problem is not None:
                raise MemberFailed(problem)

    rows = iter_csv_rows(
        iter_lines(stream, plan.max_line_bytes),
        line_limit=plan.max_line_bytes,
        on_header=on_header,
    )
    try:
        first = next(rows, None)
    except MemberFailed as failed:
        rejection = failed.rejection
        raise _member_failed(
            plan,
            member,
            Rejection(rejection.code, f"member {member.name}: {rejection.message}", Stage.UPLOAD),
        ) from None
    if first is None:
        return
    yield _csv_record(plan, member, dialect, first, names)
    for row in rows:
        yield _csv_record(plan, member, dialect, row, names)


def _csv_record(
    plan: UploadPlan, member: MemberPlan, dialect: Dialect, row: CsvRow, header: tuple[str, ...]
) -> RawRecord:
    if plan.mapping is not None:
        return _mapped_record(plan, member, plan.mapping, row)
    return RawRecord(
        _source(plan, member, dialect, row.number),
        plan.received_at,
        row.raw,
        fields=row.fields,
        trigger=plan.trigger,
        framing_error=row.error,
        header=header,
    )


def _mapped_record(
    plan: UploadPlan, member: MemberPlan, mapping: CsvMapping, row: CsvRow
) -> RawRecord:
    """A mapped CSV row as a canonical record (its payload: the canonical JSON; see
    docs/CSV_MAPPING.md), or the row's framing or mapping error."""
    error = row.error
    payload = row.raw
    if error is None and row.fields is not None:
        mapped = map_row(mapping, row.fields)
        if isinstance(mapped, Rejection):
            error = mapped
        else:
            payload = orjson.dumps(mapped)
    return RawRecord(
        _source(plan, member, Dialect.CANONICAL, row.number),
        plan.received_at,
        payload,
        trigger=plan.trigger,
        framing_error=error,
    )


def _document_records(
    plan: UploadPlan, member: MemberPlan, dialect: Dialect, stream: BinaryIO
) -> Iterator[RawRecord]:
    items = iter_clevertap_items(stream, name=f"member {member.name}")
    try:
        first = next(items, None)
    except MemberFailed as failed:
        raise _member_failed(plan, member, failed.rejection) from None
    if first is None:
        return
    yield _item_record(plan, member, dialect, first)
    for item in items:
        yield _item_record(plan, member, dialect, item)


def _item_record(
    plan: UploadPlan, member: MemberPlan, dialect: Dialect, item: PayloadItem
) -> RawRecord:
    return RawRecord(
        _source(plan, member, dialect, item.number),
        plan.received_at,
        item.raw,
        trigger=plan.trigger,
    )
