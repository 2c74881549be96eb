"""Property tests: arbitrary bytes never break the readers, and no line is lost or doubled."""

from __future__ import annotations

import io
import itertools

from hypothesis import example, given, settings
from hypothesis import strategies as st

from connectors.files.csvrows import CsvRow, iter_csv_rows
from connectors.files.errors import MemberFailed
from connectors.files.lines import UTF8_BOM, Line, iter_lines

LIMIT = 16  # small limits and reads so that lines straddle reads and overflow often
CHUNK = 7

# Bytes that matter to the readers, mixed with anything at all.
INTERESTING = st.sampled_from(
    [
        b"\n",
        b"\r",
        b"\r\n",
        b" ",
        b"\t",
        b",",
        b'"',
        b"a",
        b"xyz",
        b"\xff",
        b"\xc3",
        b"\xe9",
        UTF8_BOM,
        b"\x00",
        b"\xe2\x80\xa8",
    ]
)
RUNS = st.builds(
    lambda byte, n: byte * n, st.sampled_from([b" ", b"\t", b"x", b'"']), st.integers(0, 40)
)  # long runs: lines around the limit, long blank lines, long quoted cells
DATA = st.one_of(
    st.binary(max_size=300),
    st.lists(st.one_of(INTERESTING, RUNS, st.binary(max_size=5)), max_size=80).map(b"".join),
)


def reference_lines(data: bytes, limit: int) -> dict[int, tuple[bytes, bool]]:
    """What iter_lines should yield, computed the slow obvious way."""
    if data.startswith(UTF8_BOM):
        data = data[len(UTF8_BOM) :]
    pieces = data.split(b"\n")
    terminated = [True] * (len(pieces) - 1) + [False]
    if pieces[-1] == b"":
        pieces, terminated = pieces[:-1], terminated[:-1]
    expected: dict[int, tuple[bytes, bool]] = {}
    for number, (piece, _) in enumerate(zip(pieces, terminated, strict=True), start=1):
        if piece.endswith(b"\r"):
            piece = piece[:-1]
        if not piece or piece.isspace():
            continue
        if len(piece) > limit:
            expected[number] = (piece[:limit], True)
        else:
            expected[number] = (piece, False)
    return expected


def read_lines(data: bytes) -> list[Line]:
    return list(iter_lines(io.BytesIO(data), LIMIT, chunk_bytes=CHUNK))


@settings(max_examples=1000, deadline=None)
@given(DATA)
@example(b" " * 30 + b"x\n")  # a long line that only turns non-blank after some reads
@example(b"x" * 17 + b"\r\n" + b"y" * 16 + b"\r\n" + b"z" * 16 + b"\r")  # at the limit, CRLF
@example(UTF8_BOM[:2] + b"\n" + UTF8_BOM)  # half a BOM is data; a later BOM is data too
def test_iter_lines_covers_every_non_blank_line_exactly_once(data: bytes) -> None:
    got = read_lines(data)
    numbers = [line.number for line in got]
    assert numbers == sorted(set(numbers))  # strictly increasing: nothing twice
    assert {line.number: (line.data, line.too_long) for line in got} == reference_lines(data, LIMIT)


@settings(max_examples=100, deadline=None)
@given(DATA, st.integers(min_value=1, max_value=64))
def test_iter_lines_does_not_depend_on_read_sizes(data: bytes, chunk: int) -> None:
    big = list(iter_lines(io.BytesIO(data), LIMIT))
    small = list(iter_lines(io.BytesIO(data), LIMIT, chunk_bytes=chunk))
    assert small == big


def check_rows(data: bytes) -> None:
    lines = read_lines(data)
    rows: list[CsvRow] = []
    try:
        for row in iter_csv_rows(lines, line_limit=LIMIT):
            rows.append(row)
    except MemberFailed:
        assert rows == []  # only an unreadable header fails, and before any row
        return
    for row in rows:
        assert (row.fields is None) != (row.error is None)
        assert row.number <= row.last_line
    for before, after in itertools.pairwise(rows):
        assert before.last_line < after.number  # disjoint, in order
    nonblank = [line.number for line in lines]
    if not rows:
        return
    header_lines = [n for n in nonblank if n < rows[0].number]
    assert header_lines  # the header came first
    covered = [n for n in nonblank if any(r.number <= n <= r.last_line for r in rows)]
    assert covered == [n for n in nonblank if n > header_lines[-1]]


@settings(max_examples=500, deadline=None)
@given(DATA)
def test_iter_csv_rows_never_raises_and_covers_every_line_after_the_header(data: bytes) -> None:
    check_rows(data)


@settings(max_examples=500, deadline=None)
@given(DATA)
@example(b'a@b.c,"x\n\n  y",1\n"' + b"q" * 40 + b"\nd,e,f\n")  # quoted newlines, too-long line
def test_iter_csv_rows_with_a_good_header_covers_every_line(body: bytes) -> None:
    check_rows(b"email, name, time\n" + body)
