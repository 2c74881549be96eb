"""The CSV column-mapping rules of the core: parsing a mapping, typing cells, mapping rows."""

from __future__ import annotations

from typing import Any

import pytest

from streams.core.csvmap import CsvMapping, map_row, missing_columns, parse_mapping, type_cell
from streams.core.errors import ErrorCode, Rejection

MAPPING = CsvMapping((("email", "Mail"), ("user_id", "Id")), "Event", "When", "%d/%m/%Y %H:%M")


@pytest.mark.parametrize(
    ("cell", "typed"),
    [
        ("150", 150),
        ("-3", -3),
        ("0.5", 0.5),
        ("1e3", 1000.0),
        ("true", True),
        ("FALSE", False),
        ("02134", "02134"),  # a leading zero (zip code, id) stays a string
        ("1,5", "1,5"),
        ("nan", "nan"),
        ("inf", "inf"),
        ("[1, 2]", "[1, 2]"),  # arrays and objects stay strings, as Naxai says
        ('{"a": 1}', '{"a": 1}'),
        ("yes", "yes"),
        (" 7", " 7"),
    ],
)
def test_cells_are_numbers_booleans_or_strings(cell: str, typed: Any) -> None:
    result = type_cell(cell)
    assert result == typed and type(result) is type(typed)


def test_every_other_column_is_a_property_under_its_own_case_sensitive_name() -> None:
    row = {
        "Mail": "a@example.com",
        "Id": "",
        "Event": "buy",
        "When": "02/01/2022 13:05",
        "amount": "3",
        "Amount": "4.5",
        "empty": "",
    }
    record = map_row(MAPPING, row)
    assert record == {
        "kind": "event",
        "identifiers": {"email": "a@example.com"},
        "name": "buy",
        "timestamp": "2022-01-02T13:05:00Z",
        "properties": {"amount": 3, "Amount": 4.5},
    }


def test_free_form_identifier_is_an_email_or_a_user_id() -> None:
    mapping = CsvMapping((("identifier", "who"),), "ev")
    assert map_row(mapping, {"who": "x@example.com", "ev": "e"})["identifiers"] == {  # type: ignore[index]
        "email": "x@example.com"
    }
    assert map_row(mapping, {"who": "42", "ev": "e"})["identifiers"] == {"user_id": "42"}  # type: ignore[index]


@pytest.mark.parametrize(
    ("row", "code", "column"),
    [
        (
            {"Mail": "", "Id": "", "Event": "e", "When": "02/01/2022 13:05"},
            ErrorCode.MISSING_IDENTITY,
            "Mail",
        ),
        (
            {"Mail": "a@x.io", "Id": "", "Event": " ", "When": "02/01/2022 13:05"},
            ErrorCode.MISSING_EVENT_NAME,
            "Event",
        ),
        (
            {"Mail": "a@x.io", "Id": "", "Event": "e", "When": ""},
            ErrorCode.MISSING_TIMESTAMP,
            "When",
        ),
        (
            {"Mail": "a@x.io", "Id": "", "Event": "e", "When": "2022-01-02"},
            ErrorCode.INVALID_TIMESTAMP,
            "When",
        ),
    ],
)
def test_a_row_missing_a_mapped_value_is_rejected(
    row: dict[str, str], code: ErrorCode, column: str
) -> None:
    result = map_row(MAPPING, row)
    assert isinstance(result, Rejection)
    assert result.code is code and result.field == column


def test_idempotency_key_column_is_the_key_and_not_a_property() -> None:
    mapping = CsvMapping((("email", "m"),), "e", idempotency_key="Key")
    record = map_row(mapping, {"m": "a@x.io", "e": "buy", "Key": "k-1", "p": "x"})
    assert isinstance(record, dict)
    assert record["idempotencyKey"] == "k-1" and record["properties"] == {"p": "x"}
    assert "timestamp" not in record  # no timestamp column: the time of receipt


def test_ignored_columns_are_not_properties() -> None:
    mapping = CsvMapping((("email", "m"),), "e", ignore=("internal",))
    record = map_row(mapping, {"m": "a@x.io", "e": "buy", "internal": "1"})
    assert isinstance(record, dict) and record["properties"] == {}


def test_missing_columns_names_them_case_sensitively() -> None:
    problem = missing_columns(MAPPING, ["mail", "Id", "Event", "When"])
    assert problem is not None and problem.code is ErrorCode.MAPPING_MISSING_COLUMN
    assert "'Mail'" in problem.message
    assert missing_columns(MAPPING, ["Mail", "Id", "Event", "When", "x"]) is None


@pytest.mark.parametrize(
    ("obj", "fragment"),
    [
        ([], "expected an object"),
        ({"event_name": "e"}, "identifiers"),
        ({"identifiers": {"phone_no": "p"}, "event_name": "e"}, "unknown identifier kind"),
        ({"identifiers": {"email": "m"}}, "event_name"),
        (
            {"identifiers": {"email": "m"}, "event_name": "e", "timestamp_format": "unix"},
            "timestamp_format",
        ),
        ({"identifiers": {"email": "m"}, "event_name": "e", "extra": 1}, "unknown key 'extra'"),
        ({"identifiers": {"email": "m"}, "event_name": "e", "ignore": "x"}, "ignore"),
    ],
)
def test_an_invalid_mapping_says_what_is_wrong(obj: Any, fragment: str) -> None:
    result = parse_mapping(obj)
    assert isinstance(result, Rejection) and result.code is ErrorCode.INVALID_MAPPING
    assert fragment in result.message


def test_a_valid_mapping_round_trips_through_json() -> None:
    parsed = parse_mapping(MAPPING.to_json())
    assert parsed == MAPPING
