"""iter_lines: physical lines, read in chunks."""

from __future__ import annotations

import io
import time

from connectors.files.lines import MAX_LINE_BYTES, TOO_LONG_KEEP_BYTES, Line, iter_lines


def lines(data: bytes, **kw: int) -> list[Line]:
    return list(iter_lines(io.BytesIO(data), **kw))


def view(data: bytes, **kw: int) -> list[tuple[int, bytes, bool]]:
    return [(line.number, line.data, line.too_long) for line in lines(data, **kw)]


class Trickle(io.RawIOBase):
    """A stream that hands out at most `step` bytes per read."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = memoryview(data)
        self._step = step

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1, /) -> bytes:
        n = self._step if size is None or size < 0 else min(size, self._step)
        out, self._data = bytes(self._data[:n]), self._data[n:]
        return out


def test_lf_line_ends_are_stripped() -> None:
    assert view(b'{"a":1}\n{"b":2}\n') == [(1, b'{"a":1}', False), (2, b'{"b":2}', False)]


def test_crlf_line_ends_are_fine() -> None:
    assert view(b'{"a":1}\r\n{"b":2}\r\n') == [(1, b'{"a":1}', False), (2, b'{"b":2}', False)]


def test_lone_cr_inside_a_line_is_kept() -> None:
    assert view(b"a\rb\r\nc") == [(1, b"a\rb", False), (2, b"c", False)]


def test_last_line_without_terminator_is_read() -> None:
    assert view(b"a\nb") == [(1, b"a", False), (2, b"b", False)]
    assert view(b"a\nb\r") == [(1, b"a", False), (2, b"b", False)]


def test_bom_is_allowed() -> None:
    assert view(b'\xef\xbb\xbf{"a":1}\n{"b":2}') == [(1, b'{"a":1}', False), (2, b'{"b":2}', False)]


def test_bom_is_only_stripped_from_the_start_of_the_stream() -> None:
    assert view(b"a\n\xef\xbb\xbfb\n") == [(1, b"a", False), (2, b"\xef\xbb\xbfb", False)]


def test_bom_split_across_reads_is_still_stripped() -> None:
    got = list(iter_lines(Trickle(b"\xef\xbb\xbfab\ncd", 1)))  # type: ignore[arg-type]
    assert [(line.number, line.data) for line in got] == [(1, b"ab"), (2, b"cd")]


def test_blank_lines_are_skipped_but_counted() -> None:
    data = b"\na\n\n   \n\t\r\nb\n\n"
    assert view(data) == [(2, b"a", False), (6, b"b", False)]


def test_empty_stream_has_no_lines() -> None:
    assert lines(b"") == []
    assert lines(b"\xef\xbb\xbf") == []
    assert lines(b"\n\n\r\n") == []


def test_line_over_limit_is_rejected_as_its_own_record() -> None:
    long = b"x" * 50
    got = view(b"ok\n" + long + b"\nafter\n", max_line_bytes=10)
    assert got == [(1, b"ok", False), (2, b"x" * 10, True), (3, b"after", False)]


def test_line_at_the_limit_is_fine_even_with_crlf() -> None:
    exact = b"y" * 10
    assert view(exact + b"\r\n" + exact, max_line_bytes=10) == [
        (1, exact, False),
        (2, exact, False),
    ]


def test_too_long_line_keeps_only_its_first_64_kib() -> None:
    huge = b"{" + b"z" * (MAX_LINE_BYTES * 3) + b"}"
    got = lines(b"a\n" + huge + b"\nb\n")
    assert [(line.number, line.too_long) for line in got] == [(1, False), (2, True), (3, False)]
    assert got[1].data == huge[:TOO_LONG_KEEP_BYTES]
    assert TOO_LONG_KEEP_BYTES == 64 * 1024
    assert MAX_LINE_BYTES == 1024 * 1024


def test_too_long_line_spanning_many_reads_is_one_record() -> None:
    data = b"a\n" + b"q" * 5000 + b"\nb"
    got = list(
        iter_lines(io.BytesIO(data), max_line_bytes=100, chunk_bytes=64)  # small reads
    )
    assert [(line.number, line.too_long, len(line.data)) for line in got] == [
        (1, False, 1),
        (2, True, 100),
        (3, False, 1),
    ]


def test_too_long_whitespace_line_is_blank() -> None:
    assert view(b"a\n" + b" " * 500 + b"\nb", max_line_bytes=10) == [
        (1, b"a", False),
        (3, b"b", False),
    ]


def test_lines_split_across_reads_are_joined() -> None:
    data = b'{"first": 1}\r\n\r\n{"second": 2}\n{"third": 3}'
    for step in (1, 2, 3, 5, 7):
        got = list(iter_lines(Trickle(data, step)))  # type: ignore[arg-type]
        assert [(line.number, line.data) for line in got] == [
            (1, b'{"first": 1}'),
            (3, b'{"second": 2}'),
            (4, b'{"third": 3}'),
        ]


def test_invalid_utf8_is_passed_through_for_the_core_to_judge() -> None:
    assert view(b"\xff\xfe\n{}") == [(1, b"\xff\xfe", False), (2, b"{}", False)]


def test_iter_lines_sustains_over_100k_lines_per_second() -> None:
    line = (
        b'{"user_id": "1234", "event_type": "purchased", "timestamp": "2024-05-31T18:41:44", '
        b'"keywords": ["clothing", "footwear"]}\n'
    )
    data = line * 200_000
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        count = sum(1 for _ in iter_lines(io.BytesIO(data)))
        best = max(best, count / (time.perf_counter() - start))
    assert count == 200_000
    assert best > 100_000
