"""iter_csv_rows: CSV records over physical lines (Vero imports)."""

from __future__ import annotations

import io

import pytest

from connectors.files.csvrows import CsvRow, iter_csv_rows
from connectors.files.errors import MemberFailed
from connectors.files.lines import iter_lines
from streams.core.errors import ErrorCode, Stage

from .filehelpers import SEEDS


def rows(data: bytes, max_line_bytes: int = 1 << 20) -> list[CsvRow]:
    lines = iter_lines(io.BytesIO(data), max_line_bytes)
    return list(iter_csv_rows(lines, line_limit=max_line_bytes))


def test_vero_seed_spaces_after_commas_are_dropped() -> None:
    got = rows((SEEDS / "vero_checkouts.csv").read_bytes())
    assert [row.number for row in got] == [2, 3, 4]
    assert got[0].error is None
    assert got[0].fields == {
        "email": "tyrion.lannister@casterlyrock.com",
        "event_name": "Completes checkout",
        "time": "2022-01-02 13:05+10",
        "item_type": "yellow_shirt",
    }


def test_header_names_are_stripped_and_values_keep_inner_spaces() -> None:
    (row,) = rows(b"  email ,\tname  \na@b.c, Completes  big checkout \n")
    assert row.fields == {"email": "a@b.c", "name": "Completes  big checkout "}


def test_header_is_the_first_non_blank_line() -> None:
    (row,) = rows(b"\n\nemail,name\n\na@b.c,x\n")
    assert row.number == 5
    assert row.fields == {"email": "a@b.c", "name": "x"}


def test_crlf_line_ends_are_fine() -> None:
    got = rows(b"\xef\xbb\xbfemail,name\r\na@b.c,x\r\nd@e.f,y\r\n")
    assert [(row.number, row.fields) for row in got] == [
        (2, {"email": "a@b.c", "name": "x"}),
        (3, {"email": "d@e.f", "name": "y"}),
    ]
    assert got[0].raw == b"a@b.c,x"


def test_invalid_utf8_rejects_only_its_own_line() -> None:
    got = rows(b"email,name\na@b.c,caf\xe9\nd@e.f,ok\n")
    assert got[0].number == 2
    assert got[0].fields is None
    assert got[0].error is not None
    assert got[0].error.code is ErrorCode.INVALID_ENCODING
    assert got[0].error.stage is Stage.READ
    assert got[0].raw == b"a@b.c,caf\xe9"
    assert got[1].error is None
    assert got[1].fields == {"email": "d@e.f", "name": "ok"}


def test_row_with_wrong_cell_count_is_an_invalid_row() -> None:
    got = rows(b"email,name,time\na@b.c,x\nd@e.f,y,1,extra\ng@h.i,z,2\n")
    assert [(row.number, row.error.code if row.error else None) for row in got] == [
        (2, ErrorCode.INVALID_ROW),
        (3, ErrorCode.INVALID_ROW),
        (4, None),
    ]
    assert got[0].error is not None and "2 cells, the header has 3" in got[0].error.message


def test_quoted_cells_may_span_lines_and_numbering_stays_physical() -> None:
    data = b'email,note\na@b.c,"line one\nline two, still"\n\nd@e.f,plain\n'
    got = rows(data)
    assert [(row.number, row.last_line) for row in got] == [(2, 3), (5, 5)]
    assert got[0].fields == {"email": "a@b.c", "note": "line one\nline two, still"}
    assert got[0].raw == b'a@b.c,"line one\nline two, still"'


def test_bad_quoting_rejects_only_its_row() -> None:
    got = rows(b'email,name\na@b.c,"x"y\nd@e.f,"ok, quoted"\n')
    assert got[0].error is not None and got[0].error.code is ErrorCode.INVALID_ROW
    assert got[1].fields == {"email": "d@e.f", "name": "ok, quoted"}


def test_quote_left_open_at_the_end_is_an_invalid_row() -> None:
    got = rows(b'email,name\na@b.c,x\nd@e.f,"never closed\ng@h.i,z\n')
    assert got[0].fields == {"email": "a@b.c", "name": "x"}
    assert (got[1].number, got[1].last_line) == (3, 4)
    assert got[1].error is not None and got[1].error.code is ErrorCode.INVALID_ROW


def test_line_over_limit_is_rejected_as_its_own_record() -> None:
    got = rows(b"email,name\na@b.c," + b"x" * 100 + b"\nd@e.f,y\n", max_line_bytes=50)
    assert got[0].number == 2
    assert got[0].error is not None and got[0].error.code is ErrorCode.LINE_TOO_LONG
    assert "50-byte" in got[0].error.message
    assert got[1].fields == {"email": "d@e.f", "name": "y"}


def test_header_only_or_empty_file_has_no_rows() -> None:
    assert rows(b"") == []
    assert rows(b"email,name\n") == []


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (b"email,caf\xe9\n", ErrorCode.INVALID_ENCODING),
        (b"email,name,email\n", ErrorCode.INVALID_ROW),
        (b"email,,name\n", ErrorCode.INVALID_ROW),
        (b'email,"name\n', ErrorCode.INVALID_ROW),
    ],
)
def test_unreadable_header_fails_the_member(header: bytes, code: ErrorCode) -> None:
    with pytest.raises(MemberFailed) as failed:
        rows(header + b"a@b.c,x\n")
    assert failed.value.rejection.code is code
    assert "header" in failed.value.rejection.message
