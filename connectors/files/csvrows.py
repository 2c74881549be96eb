"""CSV rows over physical lines, with the stdlib `csv` module (Vero event imports).

`iter_csv_rows` takes the `Line`s of `iter_lines` (so blank lines are already skipped,
BOM and CRLF already handled) and yields one `CsvRow` per CSV record:

* the header is the first CSV record (normally the first non-blank line). Header names
  are stripped of surrounding whitespace. A header that cannot be read — too long, not
  UTF-8, bad quoting, an empty or duplicate column name — makes the whole member
  unreadable: `MemberFailed` is raised before any row is yielded.
* cells are read with `skipinitialspace=True` (Vero's `email, event_name, time`: the
  spaces after the commas are dropped; inner and trailing spaces are kept) and
  `strict=True` (bad quoting such as `"a"b` or a quote left open at the end of the file is
  an error instead of being silently glued together).
* every line is decoded on its own, with `errors="surrogateescape"`, so invalid UTF-8
  only spoils the row it is in: that row gets `INVALID_ENCODING`.
* a row whose cell count differs from the header's, or that the CSV parser refuses, gets
  `INVALID_ROW`; a physical line over the reader's length limit gets `LINE_TOO_LONG` (the
  row that was being read when it came is reported together with it).
* quoted cells may span lines. `number` is the physical line where the row starts and
  `last_line` the one where it ends; `raw` is the bytes of those lines joined with `\\n`.
  Because blank lines are skipped before CSV parsing, a blank line inside a quoted cell
  is lost from that cell, and CRLF inside a quoted cell becomes LF.
* a single cell is limited by `csv.field_size_limit()` (131072 characters by default;
  this module does not change that process-wide setting): a longer cell is an
  `INVALID_ROW`. This also bounds the memory an unclosed quote can hold.

Every non-blank physical line after the header belongs to exactly one yielded row.
Rows with an error have `fields = None`; rows without have `error = None`.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from connectors.files.errors import MemberFailed
from connectors.files.lines import MAX_LINE_BYTES, Line
from streams.core.errors import ErrorCode, Rejection, Stage


@dataclass(slots=True)
class CsvRow:
    """One CSV record: its physical position, its original bytes, and cells or an error."""

    number: int  # physical line where the row starts (the header is line 1)
    raw: bytes  # the row's physical lines joined with b"\n" (no terminators)
    fields: dict[str, str] | None
    error: Rejection | None
    last_line: int = 0  # physical line where the row ends (== number for one-line rows)


class _TooLong(Exception):
    """Raised through the csv reader when a too-long physical line comes in."""

    def __init__(self, line: Line) -> None:
        super().__init__(line.number)
        self.line = line


class _Feed:
    """Feeds decoded physical lines to `csv.reader`, remembering what the row consumed.

    An iterator object (not a generator) so that it survives an exception thrown through
    the csv reader: after a bad row, a fresh reader continues on the same feed.
    """

    __slots__ = ("_it", "bad_encoding", "consumed")

    def __init__(self, lines: Iterable[Line]) -> None:
        self._it = iter(lines)
        self.consumed: list[Line] = []
        self.bad_encoding: tuple[int, int] | None = None  # (line, byte offset) of bad UTF-8

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> str:
        line = next(self._it)
        if line.too_long:
            raise _TooLong(line)
        self.consumed.append(line)
        data = line.data
        try:
            return data.decode("utf-8") + "\n"
        except UnicodeDecodeError as error:
            if self.bad_encoding is None:
                self.bad_encoding = (line.number, error.start)
            return data.decode("utf-8", "surrogateescape") + "\n"

    def take(self) -> tuple[list[Line], tuple[int, int] | None]:
        consumed, bad = self.consumed, self.bad_encoding
        self.consumed = []
        self.bad_encoding = None
        return consumed, bad


def _reader(feed: _Feed) -> Iterator[list[str]]:
    return csv.reader(feed, skipinitialspace=True, strict=True)


def _raw(lines: list[Line]) -> bytes:
    if len(lines) == 1:
        return lines[0].data
    return b"\n".join(line.data for line in lines)


def _header_failure(code: ErrorCode, message: str) -> MemberFailed:
    return MemberFailed(Rejection(code, message, Stage.READ))


def _read_header(feed: _Feed, reader: Iterator[list[str]], line_limit: int) -> list[str] | None:
    """The header's column names, or None for an empty member; raises MemberFailed."""
    try:
        cells = next(reader)
    except StopIteration:
        if feed.consumed:  # csv gave up at the end of the data (e.g. an open quote)
            raise _header_failure(
                ErrorCode.INVALID_ROW, "the CSV header cannot be read: unexpected end of data"
            ) from None
        return None
    except _TooLong as error:
        raise _header_failure(
            ErrorCode.LINE_TOO_LONG,
            f"the CSV header (line {error.line.number}) is longer than the {line_limit}-byte "
            f"line limit",
        ) from None
    except csv.Error as error:
        raise _header_failure(
            ErrorCode.INVALID_ROW, f"the CSV header cannot be read: {error}"
        ) from None
    consumed, bad = feed.take()
    if bad is not None:
        raise _header_failure(
            ErrorCode.INVALID_ENCODING,
            f"the CSV header is not valid UTF-8 (line {bad[0]}, byte {bad[1]})",
        )
    names = [cell.strip() for cell in cells]
    seen: set[str] = set()
    for position, name in enumerate(names, start=1):
        if not name:
            raise _header_failure(
                ErrorCode.INVALID_ROW,
                f"the CSV header (line {consumed[0].number}) has an empty column name "
                f"(column {position})",
            )
        if name in seen:
            raise _header_failure(
                ErrorCode.INVALID_ROW,
                f"the CSV header (line {consumed[0].number}) names column {name!r} twice",
            )
        seen.add(name)
    return names


def iter_csv_rows(
    lines: Iterable[Line],
    *,
    line_limit: int = MAX_LINE_BYTES,
    on_header: Callable[[list[str]], None] | None = None,
) -> Iterator[CsvRow]:
    """Yields the CSV records after the header (see the module docstring).

    `line_limit` is the limit `lines` were read with; it is only used in messages.
    `on_header` sees the column names before any row (it may raise MemberFailed).
    """
    feed = _Feed(lines)
    reader = _reader(feed)
    header = _read_header(feed, reader, line_limit)
    if header is None:
        return
    if on_header is not None:
        on_header(header)
    width = len(header)

    while True:
        try:
            cells = next(reader)
        except StopIteration:
            consumed, _ = feed.take()
            if consumed:  # csv stopped inside a quoted cell at the end of the data
                yield _error_row(
                    consumed,
                    Rejection(
                        ErrorCode.INVALID_ROW,
                        "the CSV row cannot be read: a quoted cell is not closed",
                        Stage.READ,
                    ),
                )
            return
        except _TooLong as error:
            consumed, _ = feed.take()
            consumed.append(error.line)
            yield _error_row(
                consumed,
                Rejection(
                    ErrorCode.LINE_TOO_LONG,
                    f"line {error.line.number} is longer than the {line_limit}-byte line limit",
                    Stage.READ,
                ),
            )
            reader = _reader(feed)
            continue
        except csv.Error as error:
            consumed, _ = feed.take()
            yield _error_row(
                consumed,
                Rejection(
                    ErrorCode.INVALID_ROW, f"the CSV row cannot be read: {error}", Stage.READ
                ),
            )
            reader = _reader(feed)
            continue

        consumed, bad = feed.take()
        if bad is not None:
            yield _error_row(
                consumed,
                Rejection(
                    ErrorCode.INVALID_ENCODING,
                    f"invalid UTF-8 on line {bad[0]} at byte {bad[1]}",
                    Stage.READ,
                ),
            )
        elif len(cells) != width:
            yield _error_row(
                consumed,
                Rejection(
                    ErrorCode.INVALID_ROW,
                    f"the row has {len(cells)} cells, the header has {width}",
                    Stage.READ,
                ),
            )
        else:
            yield CsvRow(
                consumed[0].number,
                _raw(consumed),
                dict(zip(header, cells, strict=True)),
                None,
                consumed[-1].number,
            )


def _error_row(consumed: list[Line], error: Rejection) -> CsvRow:
    if not consumed:  # pragma: no cover - the csv module always consumes a line first
        return CsvRow(0, b"", None, error, 0)
    return CsvRow(consumed[0].number, _raw(consumed), None, error, consumed[-1].number)
