"""The final-status fold: every upload's status and the notes it carries."""

from __future__ import annotations

from streams.core.errors import ErrorCode, Rejection, Stage
from streams.core.records import OutcomeKind
from streams.core.status import (
    NO_RECORDS,
    UploadCounts,
    UploadStatus,
    final_status,
    final_warnings,
)


def test_an_upload_with_no_records_is_warning_no_records() -> None:
    counts = UploadCounts()
    assert final_status(counts, None) is UploadStatus.WARNING
    assert final_warnings(counts, None, []) == [NO_RECORDS]
    assert final_warnings(counts, None, [NO_RECORDS]) == [NO_RECORDS]


def test_an_upload_with_records_has_no_no_records_note() -> None:
    counts = UploadCounts()
    counts.count(OutcomeKind.ACCEPTED)
    assert final_status(counts, None) is UploadStatus.SUCCESS
    assert final_warnings(counts, None, []) == []


def test_a_refused_upload_stays_fail_without_the_no_records_note() -> None:
    fatal = Rejection(ErrorCode.DUPLICATE_FILENAME, "again", Stage.UPLOAD)
    assert final_status(UploadCounts(), fatal) is UploadStatus.FAIL
    assert final_warnings(UploadCounts(), fatal, []) == []


def test_every_member_failed_is_still_fail() -> None:
    counts = UploadCounts(failed_members=2)
    assert final_status(counts, None) is UploadStatus.FAIL
    assert final_warnings(counts, None, ["a.csv: unreadable"]) == ["a.csv: unreadable"]
