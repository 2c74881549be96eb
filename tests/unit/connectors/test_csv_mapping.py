"""Mapped CSV uploads read by the real readers give the same events as their own dialects."""

from __future__ import annotations

import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.files.csvmapping import MappingError, load_mapping
from connectors.files.reader import read_upload
from streams.core.csvmap import CsvMapping
from streams.core.errors import ErrorCode, Rejection
from streams.core.normalize import normalize
from streams.core.records import Dialect, SourceKind
from streams.core.upload import FatalUpload, MemberFailure, UploadRow

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
MAPPING = FIXTURES / "mapping"
NAXAI_NOW = datetime(2023, 10, 3, tzinfo=UTC)
VERO_NOW = datetime(2022, 2, 1, tzinfo=UTC)


def _row(path: Path, now: datetime, dialect: Dialect | None = None) -> UploadRow:
    return UploadRow("u1", "acme", path.name, SourceKind.FILE, dialect, str(path), False, now)


def outcomes(
    path: Path, now: datetime, mapping: CsvMapping | None = None, dialect: Dialect | None = None
) -> list[tuple[Any, ...]]:
    """What becomes of each record, in order: its rejection code or the event's content."""
    seen: list[tuple[Any, ...]] = []
    for item in read_upload(_row(path, now, dialect), mapping):
        if isinstance(item, MemberFailure):
            seen.append(("member_failed", item.rejection.code))
            continue
        assert isinstance(item, tuple)
        result = normalize(item[1])
        if isinstance(result, Rejection):
            seen.append(("rejected", result.code))
        else:
            seen.append(
                (
                    "accepted",
                    result.name,
                    result.identifiers,
                    result.timestamp,
                    result.properties,
                    result.idempotency_key,
                )
            )
    return seen


def test_naxai_style_csv_gives_the_events_of_the_same_naxai_lines() -> None:
    mapping = load_mapping(MAPPING / "naxai_contacts.mapping.json")
    mapped = outcomes(MAPPING / "naxai_contacts.csv", NAXAI_NOW, mapping)
    own = outcomes(MAPPING / "naxai_contacts.jsonl", NAXAI_NOW)
    assert mapped == own
    # headers are properties, case kept; numbers and booleans typed, the rest strings
    first = mapped[0]
    assert first[4] == {
        "total": 150,
        "Total": 2,
        "vip": True,
        "coupon": "SAVE10",
        "zip": "02134",
        "ratio": 0.5,
        "note": "tags: [a, b]",
    }
    assert [o[0] for o in mapped].count("accepted") == 3
    assert [o[1] for o in mapped if o[0] == "rejected"] == [
        ErrorCode.MISSING_IDENTITY,
        ErrorCode.MISSING_EVENT_NAME,
        ErrorCode.INVALID_TIMESTAMP,
    ]


def test_vero_csv_with_other_column_names_gives_the_events_of_the_vero_seed() -> None:
    mapping = load_mapping(MAPPING / "vero_renamed.mapping.toml")
    mapped = outcomes(MAPPING / "vero_renamed.csv", VERO_NOW, mapping)
    own = outcomes(FIXTURES / "seeds" / "vero_checkouts.csv", VERO_NOW)
    assert mapped == own
    assert [o[0] for o in mapped] == ["accepted"] * 3


def test_a_mapping_naming_a_missing_column_refuses_the_whole_file() -> None:
    mapping = load_mapping(MAPPING / "missing_column.mapping.json")
    with pytest.raises(FatalUpload) as refused:
        list(read_upload(_row(FIXTURES / "seeds" / "vero_checkouts.csv", VERO_NOW), mapping))
    rejection = refused.value.rejection
    assert rejection.code is ErrorCode.MAPPING_MISSING_COLUMN
    assert "'Event'" in rejection.message and "case-sensitive" in rejection.message


def test_a_row_missing_a_mapped_value_is_rejected_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text(
        "mail,ev,at\na@example.com,signup,2022-01-30T10:00:00Z\na@example.com,signup,\n"
    )
    mapping = CsvMapping((("email", "mail"),), "ev", "at", "iso8601")
    lines = []
    for item in read_upload(_row(path, VERO_NOW), mapping):
        assert isinstance(item, tuple)
        result = normalize(item[1])
        lines.append((item[1].source.line, getattr(result, "code", "accepted")))
    assert lines == [(2, "accepted"), (3, ErrorCode.MISSING_TIMESTAMP)]


def test_mapping_json_beside_the_files_in_an_archive_maps_its_csv_members(tmp_path: Path) -> None:
    archive = tmp_path / "contacts.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(MAPPING / "naxai_contacts.mapping.json", "mapping.json")
        zf.write(MAPPING / "naxai_contacts.csv", "naxai_contacts.csv")
    mapped = outcomes(archive, NAXAI_NOW)
    assert mapped == outcomes(MAPPING / "naxai_contacts.jsonl", NAXAI_NOW)


def test_an_unreadable_mapping_json_in_an_archive_refuses_the_upload(tmp_path: Path) -> None:
    archive = tmp_path / "contacts.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("mapping.json", '{"event_name": "name"}')
        zf.write(MAPPING / "naxai_contacts.csv", "naxai_contacts.csv")
    with pytest.raises(FatalUpload) as refused:
        list(read_upload(_row(archive, NAXAI_NOW)))
    assert refused.value.rejection.code is ErrorCode.INVALID_MAPPING


def test_a_mapping_file_that_is_not_a_mapping_is_refused_with_its_code(tmp_path: Path) -> None:
    bad = tmp_path / "m.json"
    bad.write_bytes(b'{"identifiers": {"email": "e"}, "event_name": "n", "colour": 1}')
    with pytest.raises(MappingError) as error:
        load_mapping(bad)
    assert error.value.rejection.code is ErrorCode.INVALID_MAPPING
    assert "colour" in str(error.value)
