"""open_upload / iter_member_records: members, dialects, sources, framing errors."""

from __future__ import annotations

import gzip
import shutil
import zipfile
from pathlib import Path

import pytest

import connectors.files.upload as upload_module
from connectors.files.errors import MemberFailed, UploadRefused
from connectors.files.upload import iter_member_records
from streams.core.errors import ErrorCode, Stage
from streams.core.records import Dialect, RawRecord, Source, SourceKind

from .filehelpers import ARCHIVES, NOW, SEEDS, all_records, plan


def records(path: Path, **kw: object) -> list[tuple[str, RawRecord | MemberFailed]]:
    with plan(path, **kw) as upload:  # type: ignore[arg-type]
        return list(all_records(upload))


def test_records_are_stamped_with_their_source() -> None:
    got = records(ARCHIVES / "events.jsonl", trigger=True)
    first = got[0][1]
    assert isinstance(first, RawRecord)
    assert first.source == Source(
        SourceKind.FILE, Dialect.ZETA, "acme", "up-1", "events.jsonl", None, 1
    )
    assert first.received_at == NOW
    assert first.trigger is True
    assert first.framing_error is None and first.fields is None
    assert [r.source.line for _, r in got if isinstance(r, RawRecord)] == [1, 3, 4]


def test_archive_records_name_their_member() -> None:
    got = records(ARCHIVES / "bundle.zip")
    members = {r.source.member for _, r in got if isinstance(r, RawRecord)}
    assert members == {"events.jsonl", "checkouts.csv"}
    assert {r.source.file for _, r in got if isinstance(r, RawRecord)} == {"bundle.zip"}


def test_gzip_member_is_named_without_gz() -> None:
    got = records(ARCHIVES / "events.jsonl.gz")
    assert {(r.source.file, r.source.member) for _, r in got if isinstance(r, RawRecord)} == {
        ("events.jsonl.gz", "events.jsonl")
    }


@pytest.mark.parametrize(
    "name",
    [
        "events.jsonl",
        "events.jsonl.gz",
        "events.jsonl.bz2",
        "bundle.zip",
        "bundle.tar.gz",
        "bundle.tgz",
        "bundle.tar.bz2",
        "bundle.tbz2",
    ],
)
def test_every_archive_extension_round_trips(name: str) -> None:
    plain = [r.payload for _, r in records(ARCHIVES / "events.jsonl") if isinstance(r, RawRecord)]
    got = records(ARCHIVES / name)
    events = [
        r.payload
        for _, r in got
        if isinstance(r, RawRecord) and r.source.member in (None, "events.jsonl")
    ]
    assert events == plain


def test_dialect_is_detected_per_member() -> None:
    with plan(ARCHIVES / "bundle.zip") as upload:
        got = list(all_records(upload))
        assert upload.dialects == {"checkouts.csv": Dialect.VERO, "events.jsonl": Dialect.ZETA}
    csv_rows = [r for name, r in got if name == "checkouts.csv" and isinstance(r, RawRecord)]
    assert [r.source.line for r in csv_rows] == [2, 3]
    assert csv_rows[0].fields is not None and csv_rows[0].fields["item_type"] == "yellow_shirt"
    assert csv_rows[0].payload.startswith(b"tyrion.lannister@casterlyrock.com, Completes")


@pytest.mark.parametrize(
    ("seed", "dialect"),
    [
        ("zeta_sample.jsonl", Dialect.ZETA),
        ("vero_checkouts.csv", Dialect.VERO),
        ("kissmetrics_valid.json", Dialect.KISSMETRICS),
        ("naxai_events.jsonl", Dialect.NAXAI),
        ("clevertap_upload.json", Dialect.CLEVERTAP),
    ],
)
def test_seed_files_frame_in_their_dialect(seed: str, dialect: Dialect) -> None:
    got = records(SEEDS / seed)
    assert got
    assert all(isinstance(r, RawRecord) and r.source.dialect is dialect for _, r in got)


def test_explicit_dialect_wins() -> None:
    got = records(ARCHIVES / "events.jsonl", dialect=Dialect.NAXAI)
    assert {r.source.dialect for _, r in got if isinstance(r, RawRecord)} == {Dialect.NAXAI}


def test_peeking_the_first_line_does_not_consume_it(tmp_path: Path) -> None:
    path = tmp_path / "peek.jsonl"
    lines = [b'{"user_id": "%d", "event_type": "x", "timestamp": 1}' % i for i in range(20000)]
    path.write_bytes(b"\n\n" + b"\n".join(lines) + b"\n")  # far more than the peeked bytes
    got = [r for _, r in records(path) if isinstance(r, RawRecord)]
    assert [r.payload for r in got] == lines
    assert got[0].source.line == 3


def test_unsupported_extension_refuses_a_plain_upload(tmp_path: Path) -> None:
    for name in ("events.xlsx", "events.tar", "events.pdf.gz"):
        path = tmp_path / name
        path.write_bytes(b"{}\n")
        with pytest.raises(UploadRefused) as refused:
            plan(path)
        assert refused.value.rejection.code is ErrorCode.UNSUPPORTED_FORMAT
        assert name in refused.value.message


def test_unsupported_member_extension_fails_only_that_member() -> None:
    with plan(ARCHIVES / "unsupported_member.zip") as upload:
        notes = next(m for m in upload.members if m.name == "notes.pdf")
        assert notes.error is not None
        assert notes.error.code is ErrorCode.UNSUPPORTED_FORMAT
        assert "notes.pdf" in notes.error.message
        assert upload.warnings == []  # failures are reported once, by MemberFailed
        got = dict(all_records(upload))
    assert isinstance(got["a.jsonl"], RawRecord)
    failed = got["notes.pdf"]
    assert isinstance(failed, MemberFailed) and failed.member == "notes.pdf"


def test_member_whose_dialect_cannot_be_determined_fails_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(upload_module, "detect_dialect", lambda name, line: None)
    with plan(ARCHIVES / "bundle.zip") as upload:
        got = list(all_records(upload))
        assert all(isinstance(r, MemberFailed) for _, r in got)
        assert all(m.error is not None for m in upload.members)
    failed = got[0][1]
    assert isinstance(failed, MemberFailed)
    assert failed.rejection.code is ErrorCode.UNSUPPORTED_FORMAT
    assert "checkouts.csv" in failed.rejection.message


def test_line_over_limit_is_rejected_as_its_own_record(tmp_path: Path) -> None:
    path = tmp_path / "long.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": "' + b"x" * 500 + b'"}\n{"c": 3}\n')
    got = [r for _, r in records(path, max_line_bytes=100) if isinstance(r, RawRecord)]
    assert [r.source.line for r in got] == [1, 2, 3]
    error = got[1].framing_error
    assert error is not None
    assert (error.code, error.stage) == (ErrorCode.LINE_TOO_LONG, Stage.READ)
    assert "100-byte" in error.message
    assert got[1].payload == (b'{"b": "' + b"x" * 500)[:100]
    assert got[0].framing_error is None and got[2].framing_error is None


def test_invalid_utf8_rejects_only_its_own_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(
        b"email, name, time\na@b.c, caf\xe9, 2024-01-01 10:00\nd@e.f, ok, 2024-01-01\n"
    )
    got = [r for _, r in records(path) if isinstance(r, RawRecord)]
    assert got[0].framing_error is not None
    assert got[0].framing_error.code is ErrorCode.INVALID_ENCODING
    assert got[0].payload == b"a@b.c, caf\xe9, 2024-01-01 10:00"
    assert got[1].framing_error is None and got[1].fields == {
        "email": "d@e.f",
        "name": "ok",
        "time": "2024-01-01",
    }


def test_unreadable_csv_header_fails_the_member(tmp_path: Path) -> None:
    path = tmp_path / "drop.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("dup.csv", b"email,email\na,b\n")
        archive.writestr("ok.csv", b"email,name,time\na@b.c,x,2024-05-31 10:00\n")
    (failure, good) = [r for _, r in records(path)]
    assert isinstance(failure, MemberFailed)
    assert failure.rejection.code is ErrorCode.INVALID_ROW
    assert "dup.csv" in failure.rejection.message
    assert isinstance(good, RawRecord) and good.source.member == "ok.csv"


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [
        ("dup.csv", b"email,email\na,b\n", ErrorCode.INVALID_ROW),
        ("bad.csv", b"email,n\xffame\na,b\n", ErrorCode.INVALID_ENCODING),
        ("cut.json", b'{"d": [', ErrorCode.INVALID_PAYLOAD),
        ("dup.csv.gz", gzip.compress(b"email,email\na,b\n"), ErrorCode.INVALID_ROW),
    ],
)
def test_one_file_upload_whose_only_member_fails_is_refused(
    tmp_path: Path, name: str, data: bytes, code: ErrorCode
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    dialect = Dialect.CLEVERTAP if name.endswith(".json") else None
    with plan(path, dialect=dialect) as upload, pytest.raises(UploadRefused) as refused:
        list(all_records(upload))
    assert refused.value.rejection.code is code


def test_filename_overrides_the_stored_name(tmp_path: Path) -> None:
    stored = tmp_path / "0b3c-upload"
    shutil.copy(ARCHIVES / "events.jsonl.gz", stored)
    got = records(stored, filename="events.jsonl.gz")
    assert {(r.source.file, r.source.member) for _, r in got if isinstance(r, RawRecord)} == {
        ("events.jsonl.gz", "events.jsonl")
    }


def test_members_of_a_failed_plan_raise_at_once() -> None:
    with plan(ARCHIVES / "unsupported_member.zip") as upload:
        notes = next(m for m in upload.members if m.name == "notes.pdf")
        with pytest.raises(MemberFailed):
            next(iter_member_records(upload, notes))


def test_empty_member_yields_nothing(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    assert records(path) == []
