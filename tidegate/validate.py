"""`tidegate validate`: a dry run of a file or archive through every stateless rule."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from connectors.files.reader import read_upload
from streams.core.csvmap import CsvMapping
from streams.core.errors import Rejection
from streams.core.feedback import RejectedRow, feedback_file
from streams.core.normalize import normalize, verdicts_only
from streams.core.records import Dialect, OutcomeKind, RawRecord, SourceKind
from streams.core.status import UploadCounts, final_status, final_warnings
from streams.core.upload import FatalUpload, Item, MemberFailure, PlanWarning, UploadRow

MAX_REPORTED_ERRORS = 1_000_000


@dataclass(slots=True)
class Report:
    """The `--json` report of DESIGN.md's command-line contract."""

    dialects: list[str] = field(default_factory=list)
    counts: UploadCounts = field(default_factory=UploadCounts)
    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    fatal: Rejection | None = None

    @property
    def status(self) -> str:
        return final_status(self.counts, self.fatal).value

    @property
    def exit_code(self) -> int:
        if self.fatal is not None:
            return 2
        return 1 if self.counts.rejected or self.counts.failed_members else 0

    def as_json(self) -> dict[str, Any]:
        dialect = (
            self.dialects[0] if len(self.dialects) == 1 else ("mixed" if self.dialects else None)
        )
        return {
            "status": self.status,
            "dialect": dialect,
            "counts": {
                "records": self.counts.records,
                "accepted": self.counts.accepted,
                "rejected": self.counts.rejected,
            },
            "errors": self.errors,
            "warnings": final_warnings(self.counts, self.fatal, self.warnings),
            "fatal": (
                {"code": self.fatal.code.value, "message": self.fatal.message}
                if self.fatal
                else None
            ),
        }


def validate_path(
    path: Path,
    *,
    dialect: Dialect | None,
    now: datetime,
    rejected_rows: list[RejectedRow] | None = None,
    mapping: CsvMapping | None = None,
) -> Report:
    """Reads the upload as an import would and applies every stateless rule; stores nothing."""
    row = UploadRow(
        upload_id=f"dry-run-{uuid.uuid4()}",
        account="dry-run",
        filename=path.name,
        kind=SourceKind.FILE,
        dialect=dialect,
        path=str(path),
        trigger=False,
        received_at=now,
    )
    report = Report()
    headers: dict[str, tuple[str, ...]] = {}
    try:
        with verdicts_only():  # only the verdict is needed: no event id is computed
            _validate_items(read_upload(row, mapping), report, headers, rejected_rows)
    except FatalUpload as fatal:
        report.fatal = fatal.rejection
    return report


def _validate_items(
    items: Iterator[Item],
    report: Report,
    headers: dict[str, tuple[str, ...]],
    rejected_rows: list[RejectedRow] | None,
) -> None:
    counts = report.counts
    accepted = 0  # counted here, added to the report at the end (the common case)
    dialect_seen: Dialect | None = None
    try:
        for item in items:
            if type(item) is tuple:
                raw = item[1]
                if raw.source.dialect is not dialect_seen:
                    dialect_seen = raw.source.dialect
                    if dialect_seen.value not in report.dialects:
                        report.dialects.append(dialect_seen.value)
                if raw.fields is not None:
                    headers[raw.source.member or raw.source.file] = tuple(raw.fields)
                result = normalize(raw)
                if isinstance(result, Rejection):
                    _reject(raw, result, report, headers, rejected_rows)
                else:
                    accepted += 1
            elif isinstance(item, PlanWarning):
                report.warnings.append(item.text)
            elif isinstance(item, MemberFailure):
                counts.failed_members += 1
                report.warnings.append(f"{item.rejection.code}: {item.rejection.message}")
                report.errors.append(
                    {
                        "file": item.member,
                        "line": None,
                        "code": item.rejection.code.value,
                        "message": item.rejection.message,
                    }
                )
    finally:
        counts.records += accepted
        counts.accepted += accepted


def _reject(
    raw: RawRecord,
    result: Rejection,
    report: Report,
    headers: dict[str, tuple[str, ...]],
    rejected_rows: list[RejectedRow] | None,
) -> None:
    file = raw.source.member or raw.source.file
    report.counts.count(OutcomeKind.REJECTED, result.code.value)
    if len(report.errors) < MAX_REPORTED_ERRORS:
        report.errors.append(
            {
                "file": file,
                "line": raw.source.line,
                "code": result.code.value,
                "message": result.message,
            }
        )
    if rejected_rows is not None:
        header = headers.get(file) if raw.source.dialect is Dialect.VERO else None
        rejected_rows.append(
            RejectedRow(
                file, raw.source.line, result.code.value, result.message, raw.payload, header
            )
        )


def write_feedback(rows: list[RejectedRow], path: Path) -> None:
    _, lines = feedback_file(rows, path.name)
    with path.open("wb") as out:
        out.writelines(lines)
