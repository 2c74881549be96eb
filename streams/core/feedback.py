"""Feedback files: the rejected rows in their own format, with the code and message added.

CSV uploads get a CSV with the original header plus two trailing columns `error_code,
error_message`; every other dialect gets JSON lines `{"record": <original object>, "file",
"line", "code", "message"}` (`"raw"` instead of `"record"` when the line was not JSON).
Both re-import once fixed, as they are: the Vero adapter ignores the two extra CSV columns,
and `normalize` unwraps a JSONL feedback line to its `record`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import orjson

from streams.core.records import Dialect, Outcome, OutcomeKind, RawRecord

CSV_EXTRA_COLUMNS = ("error_code", "error_message")


@dataclass(slots=True, frozen=True)
class RejectedRow:
    file: str  # member name inside an archive, else the uploaded file's name
    line: int
    code: str
    message: str
    raw: bytes  # the original line or CSV row, as received
    header: tuple[str, ...] | None = None  # CSV: the member's header


def _csv_cells(values: Iterable[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(list(values))
    return buffer.getvalue().encode("utf-8")


def is_csv_feedback(rows: list[RejectedRow]) -> bool:
    return bool(rows) and all(row.header is not None for row in rows)


def csv_feedback(rows: Iterable[RejectedRow]) -> Iterator[bytes]:
    """CSV feedback lines (with line terminators), header first."""
    header_written = False
    for row in rows:
        if not header_written:
            yield _csv_cells([*(row.header or ()), *CSV_EXTRA_COLUMNS]) + b"\r\n"
            header_written = True
        yield row.raw.rstrip(b"\r\n") + b"," + _csv_cells([row.code, row.message]) + b"\r\n"


def jsonl_feedback(rows: Iterable[RejectedRow]) -> Iterator[bytes]:
    """JSON-lines feedback: the original object under `record` plus where and why."""
    for row in rows:
        entry: dict[str, object] = {}
        try:
            entry["record"] = orjson.loads(row.raw)
        except orjson.JSONDecodeError:
            entry["raw"] = row.raw.decode("utf-8", "replace")
        entry.update(file=row.file, line=row.line, code=row.code, message=row.message)
        yield orjson.dumps(entry) + b"\n"


def feedback_header(raw: RawRecord) -> tuple[str, ...] | None:
    """The header a rejected record's feedback row is written under: its CSV member's, for
    a Vero CSV row (a mapped CSV row's feedback is its canonical record, as JSON lines)."""
    return raw.header if raw.source.dialect is Dialect.VERO else None


def with_feedback_header(outcome: Outcome, raw: RawRecord) -> Outcome:
    """A rejected outcome of `raw` with its feedback header, which its dead letter carries
    (the Kafka connectors build the feedback file from the dead letters)."""
    header = feedback_header(raw)
    if header is None or outcome.kind is not OutcomeKind.REJECTED:
        return outcome
    outcome.header = header
    return outcome


def feedback_payload(raw: RawRecord) -> bytes:
    """The row a feedback file shows for a rejected record: its payload, and for a Naxai
    API record also its request path's identifier, as the `identifier` field of a Naxai
    file, so that the row re-imports as a file once fixed."""
    if raw.path_identifier is None:
        return raw.payload
    try:
        obj = orjson.loads(raw.payload)
    except orjson.JSONDecodeError:
        return raw.payload
    if type(obj) is not dict or "identifier" in obj:
        return raw.payload
    return orjson.dumps({"identifier": raw.path_identifier, **obj})


def feedback_file(rows: list[RejectedRow], base_name: str) -> tuple[str, Iterator[bytes]]:
    """(suggested filename, content lines) for a list of rejected rows."""
    stem = base_name.rsplit("/", 1)[-1]
    for suffix in (".tar.gz", ".tar.bz2", ".tgz", ".tbz2", ".gz", ".bz2", ".zip"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    if is_csv_feedback(rows):
        return f"{stem}.errors.csv", csv_feedback(rows)
    return f"{stem}.errors.jsonl", jsonl_feedback(rows)
