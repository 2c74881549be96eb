"""The Kafka connectors' reading of a dead letter as a rejected row of the ledger."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from streams.core.errors import ErrorCode, Rejection
from streams.core.feedback import with_feedback_header
from streams.core.outputs import DUMPS_OPTIONS, deadletter, dump_outcome
from streams.core.records import Dialect, Outcome, OutcomeKind, RawRecord, Source, SourceKind
from streams.kafka.ingest import rejection_of

AT = datetime(2024, 6, 1, tzinfo=UTC)


def _source(member: str | None = None) -> Source:
    return Source(SourceKind.FILE, Dialect.ZETA, "acme", "u-1", "drop.zip", member, 7)


def test_a_rejected_line_becomes_its_row_with_the_original_bytes() -> None:
    payload = b'{"user_id": "9", "timestamp": "soon"}'
    rejection = Rejection(ErrorCode.INVALID_TIMESTAMP, "time 'soon' is not a time")
    letter = orjson.dumps(
        deadletter("e-1", _source("a.jsonl"), rejection, None, payload, received_at=AT),
        option=DUMPS_OPTIONS,
    )
    row = rejection_of(letter, [("upload_id", b"u-1")])
    assert row == (
        "u-1",
        "a.jsonl",  # the archive's member, as the embedded runtime keeps it
        7,
        "invalid_timestamp",
        "time 'soon' is not a time",
        payload,
        None,
    )


def test_bytes_that_are_not_utf8_come_back_whole_and_a_csv_row_keeps_its_header() -> None:
    source = Source(SourceKind.FILE, Dialect.VERO, "acme", "u-1", "drop.csv", None, 7)
    raw = RawRecord(source, AT, b"\xff\xfe,x", header=("email", "time"))  # not framed
    rejection = Rejection(ErrorCode.INVALID_ROW, "bad")
    outcome = Outcome(OutcomeKind.REJECTED, "e-2", source, rejection=rejection, raw=raw.payload)
    letter = dump_outcome(with_feedback_header(outcome, raw))
    row = rejection_of(letter, [])
    assert row is not None
    assert row[1] == "drop.csv" and row[5] == b"\xff\xfe,x"
    assert row[6] == '["email","time"]'
    # a JSON line has no header, and neither does a mapped CSV row (dialect canonical)
    other = RawRecord(_source(), AT, b"{}", header=("email", "time"))
    plain = Outcome(OutcomeKind.REJECTED, "e-3", other.source, rejection=rejection, raw=b"{}")
    found = rejection_of(dump_outcome(with_feedback_header(plain, other)), [])
    assert found is not None and found[6] is None


def test_a_letter_naming_no_line_of_an_upload_is_skipped() -> None:
    assert rejection_of(b'{"code": "invalid_payload", "raw": "x"}', []) is None
    assert rejection_of(b"not json", [("upload_id", b"u-1")]) is None
