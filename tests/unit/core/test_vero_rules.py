"""Vero CSV rules."""

from __future__ import annotations

from datetime import UTC, datetime

from streams.core.records import Dialect
from tests.unit.core.rawfactory import accepted, code_of

V = Dialect.VERO
ROW = {
    "email": "Tyrion@CasterlyRock.com",
    "event_name": "Completes checkout",
    "time": "2024-05-02 13:05+10",
}


def test_vero_time_with_hour_offset_is_converted_to_utc() -> None:
    event = accepted(V, b"", fields=ROW)
    assert event.timestamp == datetime(2024, 5, 2, 3, 5, tzinfo=UTC)


def test_vero_time_without_zone_is_utc() -> None:
    assert accepted(V, b"", fields={**ROW, "time": "2024-05-02 13:05"}).timestamp.hour == 13


def test_other_columns_are_properties() -> None:
    event = accepted(V, b"", fields={**ROW, "item_type": "yellow_shirt", "note": ""})
    assert event.properties == {"item_type": "yellow_shirt"}
    assert event.name == "Completes checkout"
    assert event.identifiers == {"email": "tyrion@casterlyrock.com"}


def test_name_column_may_be_called_name() -> None:
    row = {"email": "a@b.com", "name": "Signed up", "time": "2024-05-02 13:05"}
    assert accepted(V, b"", fields=row).name == "Signed up"


def test_vero_row_needs_email_name_and_time() -> None:
    assert code_of(V, b"", fields={**ROW, "email": ""}) == "blocked_identity"
    assert (
        code_of(V, b"", fields={"event_name": "x", "time": "2024-05-02 13:05"})
        == "missing_identity"
    )
    assert code_of(V, b"", fields={**ROW, "event_name": " "}) == "missing_event_name"
    assert code_of(V, b"", fields={**ROW, "time": ""}) == "missing_timestamp"
    assert code_of(V, b"", fields={**ROW, "time": "2 May"}) == "invalid_timestamp"
