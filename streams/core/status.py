"""Per-upload counts and the final status: success, partial, warning or fail."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from streams.core.errors import Rejection
from streams.core.records import OutcomeKind


class UploadStatus(StrEnum):
    SUCCESS = "success"  # every record accepted (or a recognised duplicate)
    PARTIAL = "partial"  # some records rejected, the rest accepted
    WARNING = "warning"  # a member of an archive failed as a whole, or there were no records
    FAIL = "fail"  # the upload was refused, or no record was accepted


@dataclass(slots=True)
class UploadCounts:
    records: int = 0
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    triggered: int = 0
    by_code: Counter[str] = field(default_factory=Counter)
    failed_members: int = 0

    def count(self, kind: OutcomeKind, code: str | None = None, triggered: bool = False) -> None:
        self.records += 1
        if kind is OutcomeKind.ACCEPTED:
            self.accepted += 1
            self.triggered += triggered
        elif kind is OutcomeKind.DUPLICATE:
            self.duplicate += 1
        else:
            self.rejected += 1
            if code is not None:
                self.by_code[str(code)] += 1


#: The warning of an upload that held no record (an empty file, an archive of folders).
NO_RECORDS = "no records"
#: The kind of a history row that records a file refused as a whole (none of it was read).
REFUSED_KIND = "refused"
#: The statuses an upload ends in (the others, queued and processing, are on the way).
FINAL_STATUSES = frozenset(status.value for status in UploadStatus)


def final_status(counts: UploadCounts, fatal: Rejection | None) -> UploadStatus:
    """Fatal → fail; nothing got through → fail; a failed member or no record → warning;
    rejects → partial."""
    if fatal is not None:
        return UploadStatus.FAIL
    if counts.records and counts.accepted + counts.duplicate == 0:
        return UploadStatus.FAIL
    if not counts.records and counts.failed_members:
        return UploadStatus.FAIL  # every member failed
    if counts.failed_members or not counts.records:
        return UploadStatus.WARNING
    if counts.rejected:
        return UploadStatus.PARTIAL
    return UploadStatus.SUCCESS


def counts_dict(counts: UploadCounts) -> dict[str, Any]:
    return {
        "records": counts.records,
        "accepted": counts.accepted,
        "duplicate": counts.duplicate,
        "rejected": counts.rejected,
        "triggered": counts.triggered,
        "by_code": dict(counts.by_code),
    }


def counts_from(data: dict[str, Any]) -> UploadCounts:
    counts = UploadCounts()
    for name in ("records", "accepted", "duplicate", "rejected", "triggered"):
        setattr(counts, name, int(data.get(name, 0)))
    counts.by_code.update(data.get("by_code", {}))
    return counts


def final_warnings(counts: UploadCounts, fatal: Rejection | None, warnings: list[str]) -> list[str]:
    """The upload's warnings plus the status's own note: an upload with no record says so."""
    empty = fatal is None and not counts.records and not counts.failed_members
    if empty and NO_RECORDS not in warnings:
        return [*warnings, NO_RECORDS]
    return list(warnings)
