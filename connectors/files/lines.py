"""Physical lines of a byte stream, read in chunks: the hot path of every file import.

`iter_lines` reads the stream in `READ_CHUNK_BYTES` chunks and splits them with
`bytes.split` (C speed); the only per-line Python work is a few comparisons and one small
object. Memory is bounded by one chunk plus one line (at most `max_line_bytes`) no matter
how large the stream or how long a line is.

Rules (DESIGN.md, "Blank lines are skipped; a UTF-8 BOM is allowed; CRLF line ends are
fine"):

* lines end at LF; a CR right before the LF is part of the terminator (CRLF); a lone CR
  inside a line is kept. A trailing CR on the last line (no LF after it) is also dropped.
* a UTF-8 BOM at the very start of the stream is dropped (it belongs to line 1).
* blank and whitespace-only lines (ASCII whitespace) are not yielded, but they count in
  the numbering: `Line.number` is always the 1-based physical line number.
* a line longer than `max_line_bytes` (default `MAX_LINE_BYTES` = 1 MiB, terminator not
  counted) is yielded once with `too_long=True` and only its first
  `min(TOO_LONG_KEEP_BYTES, max_line_bytes)` bytes (64 KiB by default), so a dead letter
  can show how it starts; the rest of it is skipped without being buffered. A
  whitespace-only line is blank whatever its length.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, TypeVar

T = TypeVar("T")

MAX_LINE_BYTES = 1 << 20  # 1 MiB: longest line accepted (without its terminator)
TOO_LONG_KEEP_BYTES = 64 << 10  # 64 KiB of a too-long line are kept for its dead letter
READ_CHUNK_BYTES = 1 << 20  # bytes asked of the stream per read
UTF8_BOM = b"\xef\xbb\xbf"


@dataclass(slots=True)
class Line:
    """One non-blank physical line.

    `number` is the 1-based physical line number; `data` has no terminator. When
    `too_long` is true, `data` holds only the start of the line.
    """

    number: int
    data: bytes
    too_long: bool = False


def _chunks(read: Callable[[int], bytes], size: int) -> Iterator[bytes]:
    """The stream's bytes in chunks, without a leading UTF-8 BOM."""
    data = read(size)
    # A stream may hand out fewer than 3 bytes at first: make sure a BOM is seen whole.
    while data and len(data) < len(UTF8_BOM) and UTF8_BOM.startswith(data):
        more = read(size)
        if not more:
            break
        data += more
    if data.startswith(UTF8_BOM):
        data = data[len(UTF8_BOM) :]
    if data:
        yield data
    while True:
        data = read(size)
        if not data:
            return
        yield data


def iter_lines(
    stream: BinaryIO,
    max_line_bytes: int = MAX_LINE_BYTES,
    *,
    chunk_bytes: int = READ_CHUNK_BYTES,
) -> Iterator[Line]:
    """Yields the non-blank physical lines of `stream` (see the module docstring)."""
    return frame_lines(stream, Line, max_line_bytes, chunk_bytes=chunk_bytes)


def frame_lines(
    stream: BinaryIO,
    make: Callable[[int, bytes, bool], T],
    max_line_bytes: int = MAX_LINE_BYTES,
    *,
    chunk_bytes: int = READ_CHUNK_BYTES,
) -> Iterator[T]:
    """`iter_lines` yielding `make(number, data, too_long)` instead of a `Line`.

    Readers that turn each line into their own record pass their constructor here and
    skip the intermediate `Line` object (this is the per-line hot path of every import).
    """
    if max_line_bytes < 1:
        raise ValueError("max_line_bytes must be positive")
    limit = max_line_bytes
    keep = min(TOO_LONG_KEEP_BYTES, max_line_bytes)
    number = 0
    tail = b""  # the unterminated start of the current line
    long_head: bytes | None = None  # set while skipping the rest of a too-long line
    long_blank = True  # the too-long line has been whitespace only so far

    for chunk in _chunks(stream.read, chunk_bytes):
        if long_head is not None:
            end = chunk.find(b"\n")
            if end < 0:
                if long_blank and not chunk.isspace():
                    long_blank = False
                continue
            if long_blank and end and not chunk[:end].isspace():
                long_blank = False
            if not long_blank:
                yield make(number, long_head, True)
            long_head = None
            chunk = chunk[end + 1 :]
            if not chunk:
                continue

        data = tail + chunk if tail else chunk
        parts = data.split(b"\n")
        tail = parts.pop()
        for part in parts:
            number += 1
            if part[-1:] == b"\r":
                part = part[:-1]
            if not part or part.isspace():
                continue
            if len(part) > limit:
                yield make(number, part[:keep], True)
            else:
                yield make(number, part, False)

        # One byte of slack: a CR at the end of the tail may be the start of a CRLF.
        if len(tail) > limit + 1:
            number += 1
            long_head = tail[:keep]
            long_blank = tail.isspace()
            tail = b""

    if long_head is not None:
        if not long_blank:
            yield make(number, long_head, True)
    elif tail:
        number += 1
        if tail[-1:] == b"\r":
            tail = tail[:-1]
        if tail and not tail.isspace():
            if len(tail) > limit:
                yield make(number, tail[:keep], True)
            else:
                yield make(number, tail, False)
