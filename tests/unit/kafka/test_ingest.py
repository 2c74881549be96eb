"""The Kafka connectors' reading of a dead letter as a rejected row of the ledger."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from streams.core.errors import ErrorCode, Rejection
from streams.core.outputs import DUMPS_OPTIONS, deadletter
from streams.core.records import Dialect, RawRecord, Source, SourceKind
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
    raw = RawRecord(_source(), AT, b"\xff\xfe,x", fields={"email": "\xff", "time": "x"})
    rejection = Rejection(ErrorCode.INVALID_PAYLOAD, "bad")
    letter = orjson.dumps(
        deadletter("e-2", raw.source, rejection, raw, raw.payload), option=DUMPS_OPTIONS
    )
    row = rejection_of(letter, [])
    assert row is not None
    assert row[1] == "drop.zip" and row[5] == b"\xff\xfe,x"
    assert row[6] == '["email","time"]'


def test_a_letter_naming_no_line_of_an_upload_is_skipped() -> None:
    assert rejection_of(b'{"code": "invalid_payload", "raw": "x"}', []) is None
    assert rejection_of(b"not json", [("upload_id", b"u-1")]) is None
