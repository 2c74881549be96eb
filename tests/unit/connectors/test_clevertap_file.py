"""CleverTap `{"d": [...]}` documents as files: one framed item per element of `d`."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pytest

from connectors.files.clevertap import iter_clevertap_items
from connectors.files.errors import MemberFailed, UploadRefused
from streams.core.errors import ErrorCode, Rejection
from streams.core.normalize import normalize
from streams.core.records import Dialect, Event, RawRecord, Source, SourceKind

from .filehelpers import ARCHIVES, NOW, SEEDS, all_records, plan


def _source(line: int) -> Source:
    return Source(SourceKind.FILE, Dialect.CLEVERTAP, "acme", "up-1", "p.json", None, line)


def test_clevertap_payload_yields_positions() -> None:
    seed = SEEDS / "clevertap_upload.json"
    elements = orjson.loads(seed.read_bytes())["d"]
    with plan(seed) as upload:
        records = [record for _, record in all_records(upload)]
    assert all(isinstance(record, RawRecord) for record in records)
    raws = [record for record in records if isinstance(record, RawRecord)]
    assert [record.source.line for record in raws] == [1, 2]
    assert [record.source.dialect for record in raws] == [Dialect.CLEVERTAP] * 2
    assert [record.payload for record in raws] == [orjson.dumps(e) for e in elements]


def test_one_line_payload_and_non_object_elements_are_framed() -> None:
    items = list(iter_clevertap_items(io.BytesIO(b'{"d": [{"a": 1}, 2, "x"]}')))
    assert [(item.number, item.raw) for item in items] == [(1, b'{"a":1}'), (2, b"2"), (3, b'"x"')]


@pytest.mark.parametrize(
    "data",
    [
        b'{"d": {"not": "a list"}}',
        b"[1, 2]",
        b'{"e": []}',
        b'{"d": [1]}\n{"d": [2]}\n',
        b'{\n"d": [\n{"ts": 1468308340, // a comment\n"type": "event"}]}',
        b"\xff\xfe",
    ],
)
def test_document_that_is_not_d_list_is_invalid_payload(data: bytes) -> None:
    with pytest.raises(MemberFailed) as failed:
        list(iter_clevertap_items(io.BytesIO(data), name="member x.json"))
    assert failed.value.rejection.code is ErrorCode.INVALID_PAYLOAD
    assert "x.json" in failed.value.rejection.message
    assert not isinstance(failed.value, UploadRefused)


def test_payload_over_the_size_cap_is_invalid_payload() -> None:
    data = b'{"d": [' + b'{"a": 1},' * 100 + b'{"a": 1}]}'
    with pytest.raises(MemberFailed) as failed:
        list(iter_clevertap_items(io.BytesIO(data), max_bytes=100))
    assert failed.value.rejection.code is ErrorCode.INVALID_PAYLOAD
    assert "100 bytes" in failed.value.rejection.message


def test_bad_clevertap_member_fails_only_that_member() -> None:
    with plan(ARCHIVES / "clevertap_bad_member.zip") as upload:
        got = list(all_records(upload))
        assert [name for name, _ in got] == ["a.jsonl", "payload.json"]
        assert isinstance(got[0][1], RawRecord)
        failed = got[1][1]
        assert isinstance(failed, MemberFailed)
        assert failed.rejection.code is ErrorCode.INVALID_PAYLOAD
        assert "payload.json" in failed.rejection.message
        assert upload.members[1].error == failed.rejection


def test_clevertap_records_in_json_lines_are_framed_as_lines(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_bytes(b'{"identity": "a@b.c", "type": "event", "evtName": "x", "evtData": {}}\n' * 2)
    with plan(path, dialect=Dialect.CLEVERTAP) as upload:
        lines = [r.source.line for _, r in all_records(upload) if isinstance(r, RawRecord)]
    assert lines == [1, 2]


def test_invalid_utf8_rejects_only_its_own_element() -> None:
    data = (
        b'{"d": [\n {"identity": "x", "type": "event", "evtName": "e", "evtData": {"a": "caf\xe9"}},\n'
        b' {"identity": "y", "type": "event", "evtName": "e", "evtData": {"n": 12345678901234567890}}\n]}'
    )
    first, second = iter_clevertap_items(io.BytesIO(data))
    assert (first.number, second.number) == (1, 2)
    assert b'"a":"caf\xe9"' in first.raw
    bad = normalize(RawRecord(_source(1), NOW, first.raw))
    assert isinstance(bad, Rejection) and bad.code is ErrorCode.INVALID_ENCODING
    good = normalize(RawRecord(_source(2), NOW, second.raw))
    assert isinstance(good, Event) and good.identifiers == {"user_id": "y"}
