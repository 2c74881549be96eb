"""Archives: container detection, top-level members, safety refusals, streaming members."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest

from connectors.files.archive import (
    ArchiveLimits,
    ContainerKind,
    detect_container,
    open_member,
    scan_archive,
)
from connectors.files.errors import UploadRefused
from connectors.files.lines import iter_lines
from streams.core.errors import ErrorCode, Stage

from .bombs import bz2_bomb, gzip_bomb, tar_gz_bomb, zip_bomb
from .filehelpers import ARCHIVES

MiB = 1 << 20
SMALL = ArchiveLimits(ratio_floor_bytes=1 * MiB)  # the 200:1 ratio, from 1 MiB on


def refusal(path: Path, limits: ArchiveLimits | None = None) -> UploadRefused:
    with pytest.raises(UploadRefused) as refused:
        scan_archive(path, limits)
    return refused.value


def read_all(path: Path, name: str) -> bytes:
    with scan_archive(path) as plan, open_member(plan, name) as stream:
        return stream.read()


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize(
    ("filename", "kind"),
    [
        ("x.jsonl", ContainerKind.PLAIN),
        ("x.jsonl.gz", ContainerKind.GZIP),
        ("X.JSONL.GZ", ContainerKind.GZIP),
        ("x.csv.bz2", ContainerKind.BZIP2),
        ("x.zip", ContainerKind.ZIP),
        ("x.tar.gz", ContainerKind.TAR_GZ),
        ("x.tgz", ContainerKind.TAR_GZ),
        ("x.tar.bz2", ContainerKind.TAR_BZ2),
        ("x.tbz2", ContainerKind.TAR_BZ2),
    ],
)
def test_container_is_detected_from_the_filename(filename: str, kind: ContainerKind) -> None:
    assert detect_container(filename) is kind


@pytest.mark.parametrize(
    "name", ["bundle.zip", "bundle.tar.gz", "bundle.tgz", "bundle.tar.bz2", "bundle.tbz2"]
)
def test_every_archive_extension_round_trips(name: str) -> None:
    with scan_archive(ARCHIVES / name) as plan:
        assert sorted(plan.names()) == ["checkouts.csv", "events.jsonl"]
        assert plan.warnings == []
        for member in plan.members:
            assert member.error is None
            with open_member(plan, member.name) as stream:
                content = stream.read()
            assert member.size == len(content)
    assert read_all(ARCHIVES / name, "events.jsonl") == (ARCHIVES / "events.jsonl").read_bytes()


@pytest.mark.parametrize(
    ("name", "member"), [("events.jsonl.gz", "events.jsonl"), ("events.jsonl.bz2", "events.jsonl")]
)
def test_single_compressed_file_round_trips(name: str, member: str) -> None:
    with scan_archive(ARCHIVES / name) as plan:
        assert plan.names() == [member]
    assert read_all(ARCHIVES / name, member) == (ARCHIVES / "events.jsonl").read_bytes()


def test_plain_file_is_its_own_member() -> None:
    with scan_archive(ARCHIVES / "events.jsonl") as plan:
        assert plan.kind is ContainerKind.PLAIN
        assert plan.names() == ["events.jsonl"]


@pytest.mark.parametrize("name", ["subdirs.zip", "subdirs.tar.gz"])
def test_members_in_subdirectories_are_not_traversed(name: str) -> None:
    with scan_archive(ARCHIVES / name) as plan:
        assert plan.names() == ["top.jsonl"]
        skipped = "dir/nested.jsonl" if name.endswith(".zip") else "./dir/nested.jsonl"
        assert plan.warnings == [f"only top-level members are read: skipped {skipped}"]


@pytest.mark.parametrize("name", ["subdirs.zip", "subdirs.tar.gz"])
def test_directory_entries_macosx_and_ds_store_are_ignored(name: str) -> None:
    with scan_archive(ARCHIVES / name) as plan:
        assert ".DS_Store" not in plan.names()
        assert not any("MACOSX" in w or "DS_Store" in w or "._" in w for w in plan.warnings)


@pytest.mark.parametrize(
    "name",
    [
        "traversal.tar.gz",
        "traversal_nested.tar.gz",
        "absolute.tar.gz",
        "traversal.zip",
        "backslash.zip",
        "drive.zip",
    ],
)
def test_path_traversal_is_refused_as_unsafe_archive(name: str, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    upload = work / name
    shutil.copy(ARCHIVES / name, upload)
    before_tmp, before_parent = tree(tmp_path), set(os.listdir(tmp_path.parent))
    refused = refusal(upload)
    assert refused.rejection.code is ErrorCode.UNSAFE_ARCHIVE
    assert refused.rejection.stage is Stage.UPLOAD
    assert "evil.jsonl" in refused.message
    assert tree(tmp_path) == before_tmp
    assert set(os.listdir(tmp_path.parent)) == before_parent
    assert not Path("/tmp/evil.jsonl").exists()


@pytest.mark.parametrize("name", ["symlink.tar.gz", "symlink.zip"])
def test_symlink_member_is_refused(name: str) -> None:
    refused = refusal(ARCHIVES / name)
    assert refused.rejection.code is ErrorCode.UNSAFE_ARCHIVE
    assert "link.jsonl" in refused.message and "symbolic link" in refused.message


def test_hardlink_member_is_refused() -> None:
    refused = refusal(ARCHIVES / "hardlink.tar.gz")
    assert refused.rejection.code is ErrorCode.UNSAFE_ARCHIVE
    assert "link.jsonl" in refused.message and "hard link" in refused.message


def test_device_member_is_refused() -> None:
    refused = refusal(ARCHIVES / "device.tar.gz")
    assert refused.rejection.code is ErrorCode.UNSAFE_ARCHIVE
    assert "tty.jsonl" in refused.message


def test_duplicate_member_names_are_refused() -> None:
    refused = refusal(ARCHIVES / "duplicate_names.zip")
    assert refused.rejection.code is ErrorCode.UNSAFE_ARCHIVE
    assert "a.jsonl" in refused.message


def test_zip_bomb_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bomb.zip"
    zip_bomb(path, 16 * MiB)
    refused = refusal(path, SMALL)
    assert refused.rejection.code is ErrorCode.UNSAFE_ARCHIVE
    assert "bomb.jsonl" in refused.message and "decompression bomb" in refused.message


def test_zip_with_lying_sizes_cannot_expand_past_them(tmp_path: Path) -> None:
    path = tmp_path / "liar.zip"
    zip_bomb(path, 16 * MiB, declared_size=1000)
    with scan_archive(path, SMALL) as plan:
        (member,) = plan.members
        assert plan.expanded_size <= 1000  # never read past the declared size
        assert member.error is not None  # the member is corrupt: its CRC cannot match
        assert member.error.code is ErrorCode.UNSUPPORTED_FORMAT
        assert "bomb.jsonl" in member.error.message


def test_gzip_bomb_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bomb.jsonl.gz"
    gzip_bomb(path, 16 * MiB)
    refused = refusal(path, SMALL)
    assert refused.rejection.code is ErrorCode.UNSAFE_ARCHIVE
    assert "bomb.jsonl" in refused.message


def test_bzip2_bomb_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bomb.jsonl.bz2"
    bz2_bomb(path, 4 * MiB)
    refused = refusal(path, ArchiveLimits(ratio_floor_bytes=MiB // 2))
    assert refused.rejection.code is ErrorCode.UNSAFE_ARCHIVE


def test_tar_bomb_is_refused_from_its_header(tmp_path: Path) -> None:
    path = tmp_path / "bomb.tar.gz"
    tar_gz_bomb(path, 16 * MiB)
    refused = refusal(path, SMALL)
    assert refused.rejection.code is ErrorCode.UNSAFE_ARCHIVE
    assert "bomb.jsonl" in refused.message


def test_total_size_limit_is_enforced(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl.gz"
    gzip_bomb(path, 4 * MiB)
    refused = refusal(path, ArchiveLimits(max_total_bytes=MiB))
    assert refused.rejection.code is ErrorCode.UNSAFE_ARCHIVE
    assert str(MiB) in refused.message


def test_small_archives_under_the_ratio_floor_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "dense.jsonl.gz"
    size = gzip_bomb(path, 4 * MiB)  # ratio far over 200:1, but only 4 MiB
    with scan_archive(path) as plan:
        assert plan.members[0].size == size


def test_too_many_entries_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(5):
            archive.writestr(f"{i}.jsonl", b"{}\n")
    refused = refusal(path, ArchiveLimits(max_members=3))
    assert refused.rejection.code is ErrorCode.UNSAFE_ARCHIVE


def test_oversized_tar_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pax.tar.gz"
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo("a.jsonl")
        info.size = 3
        info.pax_headers = {"comment": "x" * (512 * 1024)}
        archive.addfile(info, io.BytesIO(b"{}\n"))
    refused = refusal(path, ArchiveLimits(max_header_bytes=16 * 1024))
    assert refused.rejection.code is ErrorCode.UNSAFE_ARCHIVE
    assert "header" in refused.message


@pytest.mark.parametrize("name", ["junk.zip", "junk.tar.gz", "junk.jsonl.gz", "junk.tbz2"])
def test_unreadable_archive_is_refused_as_unsupported_format(name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_bytes(b"this is not an archive at all\n" * 10)
    refused = refusal(path)
    assert refused.rejection.code is ErrorCode.UNSUPPORTED_FORMAT
    assert name in refused.message


def test_truncated_gzip_is_refused(tmp_path: Path) -> None:
    data = (ARCHIVES / "bundle.tar.gz").read_bytes()
    path = tmp_path / "cut.tar.gz"
    path.write_bytes(data[: len(data) // 2])
    assert refusal(path).rejection.code is ErrorCode.UNSUPPORTED_FORMAT


def test_open_member_enforces_the_limits_while_reading(tmp_path: Path) -> None:
    path = tmp_path / "bomb.jsonl.gz"
    gzip_bomb(path, 8 * MiB)
    with scan_archive(path) as plan:  # under the 64 MiB floor: accepted
        plan.limits = SMALL  # as if the scan had missed it
        with pytest.raises(UploadRefused) as refused, open_member(plan, "bomb.jsonl") as stream:
            for _ in iter_lines(stream):
                pass
    assert refused.value.rejection.code is ErrorCode.UNSAFE_ARCHIVE


def test_member_cannot_yield_more_than_the_scan_measured(tmp_path: Path) -> None:
    path = tmp_path / "grows.jsonl.gz"
    gzip_bomb(path, 1 * MiB)
    with scan_archive(path) as plan:
        gzip_bomb(path, 2 * MiB)  # the file changes after the scan
        with pytest.raises(UploadRefused) as refused, open_member(plan, "grows.jsonl") as stream:
            while stream.read(64 * 1024):
                pass
    assert "measured when the archive was scanned" in refused.value.message


def test_tar_members_can_be_opened_in_any_order(tmp_path: Path) -> None:
    path = tmp_path / "three.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for name in ("c.jsonl", "a.jsonl", "b.jsonl"):
            info = tarfile.TarInfo(name)
            data = name.encode() * 1000
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    with scan_archive(path) as plan:
        for name in ("a.jsonl", "b.jsonl", "c.jsonl", "b.jsonl", "c.jsonl"):
            with open_member(plan, name) as stream:
                assert stream.read() == name.encode() * 1000
        # two members open at once: the second gets a pass of its own
        with open_member(plan, "a.jsonl") as first, open_member(plan, "b.jsonl") as second:
            assert first.read(7) == b"a.jsonl"
            assert second.read() == b"b.jsonl" * 1000
            assert first.read() == b"a.jsonl" * 999


def test_zip_member_that_is_not_decompressible_fails_alone(tmp_path: Path) -> None:
    path = tmp_path / "broken.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("good.jsonl", b"{}\n" * 100)
        archive.writestr("bad.jsonl", b"{}\n" * 100)
    data = bytearray(path.read_bytes())
    info = zipfile.ZipFile(path).getinfo("bad.jsonl")
    start = info.header_offset + 30 + len("bad.jsonl")
    data[start : start + 8] = b"\xff" * 8  # damage the compressed data
    path.write_bytes(bytes(data))
    with scan_archive(path) as plan:
        assert plan.member("good.jsonl").error is None
        error = plan.member("bad.jsonl").error
        assert error is not None and "bad.jsonl" in error.message
