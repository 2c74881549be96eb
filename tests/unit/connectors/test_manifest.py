"""manifest.json: member order, trigger opt-in, and the three exact refusal messages."""

from __future__ import annotations

import pytest

from connectors.files.errors import UploadRefused
from connectors.files.manifest import MAX_MANIFEST_BYTES, Manifest, parse_manifest
from streams.core.errors import ErrorCode, Stage
from streams.core.records import RawRecord

from .filehelpers import ARCHIVES, all_records, plan


def refusal(name: str) -> UploadRefused:
    with pytest.raises(UploadRefused) as refused:
        plan(ARCHIVES / name)
    assert refused.value.rejection.stage is Stage.UPLOAD
    return refused.value


@pytest.mark.parametrize("name", ["manifest_order.zip", "manifest_order.tar.gz"])
def test_manifest_fixes_member_order(name: str) -> None:
    with plan(ARCHIVES / name) as upload:
        assert [m.name for m in upload.members] == ["b.jsonl", "a.jsonl"]
        users = [
            record.payload.split(b'"')[3]
            for _, record in all_records(upload)
            if isinstance(record, RawRecord)
        ]
    assert users == [b"b", b"a"]


def test_without_a_manifest_members_are_processed_in_name_order() -> None:
    with plan(ARCHIVES / "bundle.tar.gz") as upload:  # stored as events.jsonl, checkouts.csv
        assert [m.name for m in upload.members] == ["checkouts.csv", "events.jsonl"]
        assert upload.manifest is None


def test_manifest_is_not_a_member() -> None:
    with plan(ARCHIVES / "manifest_order.zip") as upload:
        assert "manifest.json" not in [m.name for m in upload.members]


def test_manifest_trigger_opts_the_upload_in() -> None:
    with plan(ARCHIVES / "manifest_order.zip", trigger=False) as upload:
        assert upload.trigger is True
        assert all(
            record.trigger for _, record in all_records(upload) if isinstance(record, RawRecord)
        )


def test_manifest_with_full_line_comments_is_accepted() -> None:
    with plan(ARCHIVES / "manifest_comment.zip", trigger=True) as upload:
        assert [m.name for m in upload.members] == ["b.jsonl", "a.jsonl"]
        assert upload.trigger is True  # no "trigger" in this manifest: the caller's choice


def test_invalid_manifest_file_format() -> None:
    refused = refusal("manifest_invalid.zip")
    assert refused.rejection.code is ErrorCode.INVALID_MANIFEST
    assert refused.message == "Invalid manifest file format"


def test_file_included_in_the_manifest_but_not_found_in_the_archive() -> None:
    refused = refusal("manifest_missing_file.zip")
    assert refused.rejection.code is ErrorCode.MANIFEST_MISSING_FILE
    assert (
        refused.message
        == "File missing.jsonl was included in the manifest but not found in the archive."
    )


def test_file_found_in_the_archive_but_not_included_in_the_manifest() -> None:
    refused = refusal("manifest_unlisted_file.zip")
    assert refused.rejection.code is ErrorCode.FILE_NOT_IN_MANIFEST
    assert (
        refused.message
        == "File extra.jsonl was found in the archive but not included in the manifest."
    )


def test_parse_manifest_accepts_bom_comments_and_extra_keys() -> None:
    data = (
        b'\xef\xbb\xbf// ordered\n{"contents": [{"filename": "x.jsonl", "note": 1}],'
        b' "version": 2, "trigger": false}'
    )
    assert parse_manifest(data) == Manifest(("x.jsonl",), False)


def test_manifest_urls_with_double_slashes_are_not_comments() -> None:
    data = b'{"contents": [{"filename": "a.jsonl"}], "source": "https://example.com/x"}'
    assert parse_manifest(data).filenames == ("a.jsonl",)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"[]",
        b'{"contents": {}}',
        b'{"contents": ["a.jsonl"]}',
        b'{"contents": [{"name": "a.jsonl"}]}',
        b'{"contents": [{"filename": ""}]}',
        b'{"contents": [{"filename": 3}]}',
        b'{"contents": [{"filename": "a.jsonl"}, {"filename": "a.jsonl"}]}',
        b'{"contents": [{"filename": "manifest.json"}]}',
        b'{"contents": [], "trigger": "yes"}',
        b'{"contents": [{"filename": "a.jsonl"}]} // trailing comment',
        b'{"contents": [{"filename": "caf\xe9.jsonl"}]}',
        b'{"contents": []' + b" " * MAX_MANIFEST_BYTES + b"}",
    ],
)
def test_malformed_manifests_are_invalid(data: bytes) -> None:
    with pytest.raises(UploadRefused) as refused:
        parse_manifest(data)
    assert refused.value.rejection.code is ErrorCode.INVALID_MANIFEST
    assert refused.value.message == "Invalid manifest file format"
