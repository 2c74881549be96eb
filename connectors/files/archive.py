"""Archives and compressed files, read as streams: scanned once for safety, then opened.

The container is chosen from the upload's filename (`detect_container`):

=============================  ==========================================================
`x.tar.gz`, `x.tgz`            tar in gzip        (members: the tar's top-level files)
`x.tar.bz2`, `x.tbz2`          tar in bzip2
`x.zip`                        zip
`x.gz`                         one gzip member, named `x`
`x.bz2`                        one bzip2 member, named `x`
anything else                  a plain file (one member: the file itself)
=============================  ==========================================================

`scan_archive(path, limits)` makes a first streaming pass over the whole archive: it
lists the top-level members and measures how many bytes each one expands to, writing
nothing to disk and holding no member content in memory (only one read chunk at a time).
It refuses the whole upload with `UploadRefused(Rejection(UNSAFE_ARCHIVE, ...,
Stage.UPLOAD))`, naming the member, when:

* a member name escapes the archive: a `..` component, an absolute path (`/x`, `\\x`,
  `C:x`), with `\\` treated as a path separator (the backslash trick), or a NUL byte;
* a tar entry is a symbolic link, a hard link, a device, a FIFO, a sparse file or of an
  unknown type; a zip entry's Unix mode (`external_attr`) says symlink or special file.
  Links are refused anywhere in the archive, even in sub-directories that are not read;
* the archive is a decompression bomb: the bytes it expands to exceed
  `limits.max_total_bytes` (20 GiB), or exceed `limits.ratio_floor_bytes` (64 MiB) and
  are more than `limits.max_ratio` (200) times the size of the upload. Expanded bytes
  are counted as they are decompressed, and for tar also every header byte, so the count
  cannot be lied about; zip and tar header sizes are only used to refuse early;
* the archive has more than `limits.max_members` (10,000) entries, a zip central
  directory larger than `max_members` KiB, or a tar header (pax / long name) larger than
  `limits.max_header_bytes` (1 MiB) — each would otherwise be held in memory;
* a top-level name appears twice (an ambiguous archive).

An archive that cannot be read at all (not a zip / gzip / bzip2 / tar, truncated) is
refused as `UNSUPPORTED_FORMAT`. A zip member that cannot be read (encrypted, corrupt,
unsupported compression method) only fails itself: `ArchiveMember.error` is set.

Only top-level members are read. Members inside sub-directories are skipped with a
warning (`only top-level members are read: skipped dir/x.jsonl`); directory entries,
anything under `__MACOSX/`, `.DS_Store` files and AppleDouble `._*` files are ignored
silently.

`open_member(plan, name)` then streams one member: gzip / bzip2 through `gzip` / `bz2`,
zip through `zipfile.ZipFile.open`, tar by re-reading the tar stream sequentially (a
cursor is kept on the plan, so opening members in archive order reads the archive only
once more; going back re-opens it). Reading enforces the same limits again, and a member
can never yield more bytes than the scan measured: if the file changed in between,
`UploadRefused(UNSAFE_ARCHIVE)` is raised from `read()`. One tar member is read at a time
per plan (opening another while one is open uses a separate pass). Close the plan (or use
it as a context manager) to release the open zip / tar handles.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import re
import stat
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Protocol, cast

from connectors.files.errors import UploadRefused
from streams.core.errors import ErrorCode, Rejection, Stage

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
READ_CHUNK_BYTES = MiB  # decompressed bytes per read while scanning
TAR_BUFFER_BYTES = 64 * KiB  # tarfile's stream buffer (small headers copy this much)


class ContainerKind(StrEnum):
    PLAIN = "plain"
    GZIP = "gzip"
    BZIP2 = "bzip2"
    ZIP = "zip"
    TAR_GZ = "tar.gz"
    TAR_BZ2 = "tar.bz2"


# Longest suffixes first: `.tar.gz` must win over `.gz`.
_SUFFIXES: tuple[tuple[str, ContainerKind], ...] = (
    (".tar.gz", ContainerKind.TAR_GZ),
    (".tgz", ContainerKind.TAR_GZ),
    (".tar.bz2", ContainerKind.TAR_BZ2),
    (".tbz2", ContainerKind.TAR_BZ2),
    (".zip", ContainerKind.ZIP),
    (".gz", ContainerKind.GZIP),
    (".bz2", ContainerKind.BZIP2),
)

ARCHIVE_KINDS = frozenset({ContainerKind.ZIP, ContainerKind.TAR_GZ, ContainerKind.TAR_BZ2})


def detect_container(filename: str) -> ContainerKind:
    """The container kind of an upload, from its filename (case-insensitive)."""
    lower = filename.lower()
    for suffix, kind in _SUFFIXES:
        if lower.endswith(suffix):
            return kind
    return ContainerKind.PLAIN


def single_member_name(filename: str) -> str:
    """The one member of `x.jsonl.gz` / `x.jsonl.bz2` is `x.jsonl`."""
    lower = filename.lower()
    for suffix in (".gz", ".bz2"):
        if lower.endswith(suffix):
            return filename[: -len(suffix)]
    return filename


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    """Safety limits for one upload (see the module docstring)."""

    max_ratio: float = 200.0
    ratio_floor_bytes: int = 64 * MiB
    max_total_bytes: int = 20 * GiB
    max_members: int = 10_000
    max_header_bytes: int = 1 * MiB


@dataclass(slots=True)
class ArchiveMember:
    """A top-level member: its name, the bytes it expands to, and a per-member failure."""

    name: str
    size: int
    error: Rejection | None = None
    index: int = 0  # position among all entries of the archive (tar: in stream order)


@dataclass(slots=True)
class ArchivePlan:
    """What the scan found: the members to read (archive order) and the warnings."""

    path: Path
    filename: str
    kind: ContainerKind
    limits: ArchiveLimits
    compressed_size: int
    members: list[ArchiveMember]
    warnings: list[str]
    expanded_size: int = 0
    _zip: zipfile.ZipFile | None = field(default=None, repr=False)
    _tar: _TarCursor | None = field(default=None, repr=False)

    def member(self, name: str) -> ArchiveMember:
        for member in self.members:
            if member.name == name:
                return member
        raise KeyError(name)

    def names(self) -> list[str]:
        return [member.name for member in self.members]

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None
        if self._tar is not None:
            self._tar.close()
            self._tar = None

    def __enter__(self) -> ArchivePlan:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# --------------------------------------------------------------------------- refusals


def _unsafe(message: str) -> UploadRefused:
    return UploadRefused(Rejection(ErrorCode.UNSAFE_ARCHIVE, message, Stage.UPLOAD))


def _unreadable(filename: str, kind: ContainerKind, error: BaseException) -> UploadRefused:
    what = {
        ContainerKind.GZIP: "gzip file",
        ContainerKind.BZIP2: "bzip2 file",
        ContainerKind.ZIP: "zip archive",
        ContainerKind.TAR_GZ: "gzip-compressed tar archive",
        ContainerKind.TAR_BZ2: "bzip2-compressed tar archive",
    }.get(kind, "file")
    detail = str(error) or type(error).__name__
    return UploadRefused(
        Rejection(
            ErrorCode.UNSUPPORTED_FORMAT,
            f"{filename} is not a readable {what}: {detail}",
            Stage.UPLOAD,
        )
    )


# Errors the stdlib readers raise on damaged input (never on our own refusals).
_READ_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # gzip.BadGzipFile, bz2 "Invalid data stream"
    EOFError,  # truncated gzip / bzip2
    zlib.error,
    tarfile.TarError,
    zipfile.BadZipFile,
    NotImplementedError,  # zip compression method
    RuntimeError,  # encrypted zip member
    ValueError,
)

try:  # zip members may be LZMA-compressed
    import lzma

    _READ_ERRORS = (*_READ_ERRORS, lzma.LZMAError)
except ImportError:  # pragma: no cover - lzma is optional in CPython builds
    pass


_DRIVE = re.compile(r"^[A-Za-z]:")


def _name_parts(raw: str, filename: str) -> list[str]:
    """The path components of an entry name; refuses names that escape the archive."""
    if "\x00" in raw:
        raise _unsafe(f"{filename}: member {raw!r} has a NUL byte in its name")
    norm = raw.replace("\\", "/")
    if norm.startswith("/") or _DRIVE.match(norm):
        raise _unsafe(
            f"{filename}: member {raw!r} has an absolute path; only relative names are allowed"
        )
    parts = [part for part in norm.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise _unsafe(f"{filename}: member {raw!r} points outside the archive (path traversal)")
    return parts


def _is_ignored(parts: list[str]) -> bool:
    """macOS litter: `__MACOSX/`, `.DS_Store`, AppleDouble `._x` files."""
    return parts[0] == "__MACOSX" or parts[-1] == ".DS_Store" or parts[-1].startswith("._")


def _subdir_warning(raw: str) -> str:
    return f"only top-level members are read: skipped {raw}"


# --------------------------------------------------------------------------- metering


class _Budget:
    """Counts expanded bytes of one pass and refuses the upload past the limits."""

    __slots__ = ("cap", "compressed", "filename", "limits", "total")

    def __init__(self, filename: str, limits: ArchiveLimits, compressed: int) -> None:
        self.filename = filename
        self.limits = limits
        self.compressed = compressed
        self.total = 0
        ratio_cap = max(limits.ratio_floor_bytes, int(limits.max_ratio * max(compressed, 1)))
        self.cap = min(limits.max_total_bytes, ratio_cap)

    def check(self, total: int, member: str | None) -> None:
        if total <= self.cap:
            return
        where = f"member {member!r}" if member else "the archive"
        if total > self.limits.max_total_bytes:
            raise _unsafe(
                f"{self.filename}: {where} expands past the limit of "
                f"{self.limits.max_total_bytes} bytes; refused as a decompression bomb"
            )
        raise _unsafe(
            f"{self.filename}: {where} expands to more than {self.limits.max_ratio:g} times "
            f"the {self.compressed} bytes uploaded (over {self.cap} bytes); refused as a "
            f"decompression bomb"
        )

    def add(self, count: int, member: str | None) -> None:
        self.total += count
        self.check(self.total, member)


class _Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...

    def close(self) -> None: ...


class _Metered(io.RawIOBase):
    """A read-only stream that counts what passes through it and enforces the limits.

    `budget` (shared by a whole pass) bounds the archive's expanded bytes; `cap` bounds
    this stream alone (a member can never yield more than the scan measured); `stop_at`,
    when set, bounds the position (tar headers between two members).
    """

    def __init__(
        self,
        inner: _Readable,
        *,
        budget: _Budget | None = None,
        cap: int | None = None,
        member: str | None = None,
        filename: str = "",
    ) -> None:
        super().__init__()
        self._inner = inner
        self.budget = budget
        self.cap = cap
        self.member = member
        self.filename = filename
        self.position = 0
        self.stop_at: int | None = None
        self.header_limit = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1, /) -> bytes:
        if size is None or size < 0:
            return self.readall()
        data = self._inner.read(size)
        if data:
            self._count(len(data))
        return data

    def readall(self) -> bytes:
        chunks = []
        while chunk := self.read(READ_CHUNK_BYTES):
            chunks.append(chunk)
        return b"".join(chunks)

    def readinto(self, buffer: bytearray | memoryview, /) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def _count(self, count: int) -> None:
        self.position += count
        if self.cap is not None and self.position > self.cap:
            raise _unsafe(
                f"{self.filename}: member {self.member!r} expands beyond the {self.cap} bytes "
                f"measured when the archive was scanned"
            )
        if self.stop_at is not None and self.position > self.stop_at:
            raise _unsafe(
                f"{self.filename}: a tar header after member {self.member!r} is larger than "
                f"{self.header_limit} bytes"
            )
        if self.budget is not None:
            self.budget.add(count, self.member)

    def close(self) -> None:
        if not self.closed:
            self._inner.close()
        super().close()


def _decompressor(kind: ContainerKind, raw: BinaryIO) -> _Readable:
    if kind in (ContainerKind.GZIP, ContainerKind.TAR_GZ):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    return bz2.BZ2File(raw, "rb")


def _drain(stream: _Readable) -> int:
    size = 0
    while chunk := stream.read(READ_CHUNK_BYTES):
        size += len(chunk)
    return size


# --------------------------------------------------------------------------- scanning


def scan_archive(
    path: Path, limits: ArchiveLimits | None = None, *, filename: str | None = None
) -> ArchivePlan:
    """Lists the top-level members and their expanded sizes; refuses unsafe archives.

    `filename` is the name the upload was received under (defaults to `path.name`); it
    picks the container kind and names the upload in messages.
    """
    limits = limits or ArchiveLimits()
    name = filename or path.name
    kind = detect_container(name)
    compressed = path.stat().st_size
    plan = ArchivePlan(path, name, kind, limits, compressed, [], [])
    if kind is ContainerKind.PLAIN:
        plan.members.append(ArchiveMember(name, compressed))
        plan.expanded_size = compressed
    elif kind in (ContainerKind.GZIP, ContainerKind.BZIP2):
        _scan_single(plan)
    elif kind is ContainerKind.ZIP:
        _scan_zip(plan)
    else:
        _scan_tar(plan)
    return plan


def _scan_single(plan: ArchivePlan) -> None:
    member = single_member_name(plan.filename)
    budget = _Budget(plan.filename, plan.limits, plan.compressed_size)
    with plan.path.open("rb") as raw:
        try:
            with _Metered(
                _decompressor(plan.kind, raw), budget=budget, member=member, filename=plan.filename
            ) as stream:
                size = _drain(stream)
        except UploadRefused:
            raise
        except _READ_ERRORS as error:
            raise _unreadable(plan.filename, plan.kind, error) from None
    plan.members.append(ArchiveMember(member, size))
    plan.expanded_size = size


class _TopLevel:
    """Collects top-level members, refusing duplicates and too many entries."""

    def __init__(self, plan: ArchivePlan) -> None:
        self.plan = plan
        self.seen: set[str] = set()
        self.entries = 0

    def entry(self) -> None:
        self.entries += 1
        if self.entries > self.plan.limits.max_members:
            raise _unsafe(
                f"{self.plan.filename}: the archive has more than "
                f"{self.plan.limits.max_members} entries"
            )

    def classify(self, raw: str, is_dir: bool) -> str | None:
        """The top-level member name for an entry, or None when it is not read."""
        parts = _name_parts(raw, self.plan.filename)
        if not parts or is_dir or _is_ignored(parts):
            return None
        if len(parts) > 1:
            self.plan.warnings.append(_subdir_warning(raw))
            return None
        name = parts[0]
        if name in self.seen:
            raise _unsafe(f"{self.plan.filename}: member {name!r} appears more than once")
        self.seen.add(name)
        return name


# ---- tar


def _check_tar_entry(info: tarfile.TarInfo, filename: str) -> None:
    """Refuses links, devices and other non-regular entries (directories are fine)."""
    name = info.name
    if info.issym():
        raise _unsafe(
            f"{filename}: member {name!r} is a symbolic link; links are not allowed in uploads"
        )
    if info.islnk():
        raise _unsafe(
            f"{filename}: member {name!r} is a hard link; links are not allowed in uploads"
        )
    if info.ischr() or info.isblk() or info.isfifo():
        raise _unsafe(f"{filename}: member {name!r} is a device or FIFO, not a file")
    if info.type == tarfile.GNUTYPE_SPARSE or info.sparse is not None:
        raise _unsafe(f"{filename}: member {name!r} is a sparse file")
    if not (info.isreg() or info.isdir()):
        raise _unsafe(f"{filename}: member {name!r} has an unsupported entry type")


class _TarStream:
    """A tar archive read sequentially from its decompressed, metered stream."""

    def __init__(self, plan: ArchivePlan) -> None:
        self.plan = plan
        self.budget = _Budget(plan.filename, plan.limits, plan.compressed_size)
        self.raw = plan.path.open("rb")
        try:
            self.stream = _Metered(
                _decompressor(plan.kind, self.raw), budget=self.budget, filename=plan.filename
            )
            self.stream.header_limit = plan.limits.max_header_bytes
            self.stream.stop_at = plan.limits.max_header_bytes + TAR_BUFFER_BYTES
            self.tar = tarfile.open(  # noqa: SIM115 - closed by close()
                fileobj=self.stream, mode="r|", bufsize=TAR_BUFFER_BYTES
            )
            self.stream.stop_at = None
        except UploadRefused:
            self.raw.close()
            raise
        except _READ_ERRORS as error:
            self.raw.close()
            raise _unreadable(plan.filename, plan.kind, error) from None
        self.index = -1  # index of the entry last returned by next()

    def next(self) -> tarfile.TarInfo | None:
        """The next entry, with the header bytes between two members bounded."""
        stream = self.stream
        stream.stop_at = self.tar.offset + self.plan.limits.max_header_bytes + TAR_BUFFER_BYTES
        try:
            info = self.tar.next()
        except UploadRefused:
            raise
        except _READ_ERRORS as error:
            raise _unreadable(self.plan.filename, self.plan.kind, error) from None
        finally:
            stream.stop_at = None
        # tarfile keeps every entry it returns; a stream needs none of them.
        self.tar.members.clear()  # type: ignore[attr-defined]
        if info is not None:
            self.index += 1
            stream.member = info.name
        return info

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.tar.close()
        with contextlib.suppress(Exception):
            self.stream.close()
        self.raw.close()


def _scan_tar(plan: ArchivePlan) -> None:
    tar = _TarStream(plan)
    top = _TopLevel(plan)
    try:
        while (info := tar.next()) is not None:
            top.entry()
            _name_parts(info.name, plan.filename)
            _check_tar_entry(info, plan.filename)
            # Refuse early from the header; the metered stream counts the real bytes.
            tar.budget.check(info.offset_data + info.size, info.name)
            name = top.classify(info.name, info.isdir())
            if name is None:
                continue
            plan.members.append(ArchiveMember(name, info.size, index=tar.index))
        plan.expanded_size = tar.budget.total
    finally:
        tar.close()


# ---- zip

_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_EOCD64 = b"PK\x06\x06"


def _zip_directory_size(raw: BinaryIO, size: int) -> tuple[int, int] | None:
    """(entry count, central directory bytes) from the end records, or None if not found."""
    tail_len = min(size, 22 + 65535)
    raw.seek(size - tail_len)
    tail = raw.read(tail_len)
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) - at < 22:
        return None
    entries, cd_size = struct.unpack_from("<HI", tail, at + 10)
    if entries == 0xFFFF or cd_size == 0xFFFFFFFF:
        loc = at - 20
        if loc >= 0 and tail[loc : loc + 4] == _EOCD64_LOCATOR:
            (offset,) = struct.unpack_from("<Q", tail, loc + 8)
            if offset + 56 <= size:
                raw.seek(offset)
                record = raw.read(56)
                if record[:4] == _EOCD64:
                    entries, cd_size = struct.unpack_from("<QQ", record, 32)
    return int(entries), int(cd_size)


def _zip_entry_kind(info: zipfile.ZipInfo) -> tuple[bool, bool, bool]:
    """(is a symlink, is another special file, is a directory) from the Unix mode bits."""
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if kind == 0:  # no Unix mode (e.g. made on Windows): a file, or a directory by its name
        return False, False, info.is_dir()
    is_dir = kind == stat.S_IFDIR or info.is_dir()
    return stat.S_ISLNK(mode), kind not in (stat.S_IFREG, stat.S_IFDIR), is_dir


_ZIP_METHODS = frozenset(
    {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
)


def _member_error(member: str, message: str) -> Rejection:
    return Rejection(ErrorCode.UNSUPPORTED_FORMAT, f"member {member}: {message}", Stage.UPLOAD)


def _scan_zip(plan: ArchivePlan) -> None:
    limits = plan.limits
    with plan.path.open("rb") as raw:
        found = _zip_directory_size(raw, plan.compressed_size)
    if found is not None:
        entries, cd_size = found
        if entries > limits.max_members or cd_size > limits.max_members * KiB:
            raise _unsafe(
                f"{plan.filename}: the archive has more than {limits.max_members} entries "
                f"(or a central directory over {limits.max_members} KiB)"
            )
    try:
        archive = zipfile.ZipFile(plan.path)
    except _READ_ERRORS as error:
        raise _unreadable(plan.filename, plan.kind, error) from None
    plan._zip = archive
    try:
        _scan_zip_entries(plan, archive)
    except BaseException:
        plan.close()
        raise


def _scan_zip_entries(plan: ArchivePlan, archive: zipfile.ZipFile) -> None:
    top = _TopLevel(plan)
    to_read: list[tuple[ArchiveMember, zipfile.ZipInfo]] = []
    for index, info in enumerate(archive.infolist()):
        top.entry()
        _name_parts(info.filename, plan.filename)
        is_link, is_special, is_dir = _zip_entry_kind(info)
        if is_link:
            raise _unsafe(
                f"{plan.filename}: member {info.filename!r} is a symbolic link; links are not "
                f"allowed in uploads"
            )
        if is_special:
            raise _unsafe(f"{plan.filename}: member {info.filename!r} is a device or special file")
        name = top.classify(info.filename, is_dir)
        if name is None:
            continue
        member = ArchiveMember(name, info.file_size, index=index)
        plan.members.append(member)
        if info.flag_bits & 0x1:
            member.error = _member_error(name, "the file is encrypted")
        elif info.compress_type not in _ZIP_METHODS:
            member.error = _member_error(
                name, f"unsupported zip compression method {info.compress_type}"
            )
        else:
            to_read.append((member, info))

    # Refuse early from the declared sizes, then count the real bytes.
    budget = _Budget(plan.filename, plan.limits, plan.compressed_size)
    declared = 0
    for member, info in to_read:
        declared += info.file_size
        budget.check(declared, member.name)
    for member, info in to_read:
        try:
            with (
                archive.open(info) as opened,
                _Metered(
                    opened, budget=budget, member=member.name, filename=plan.filename
                ) as stream,
            ):
                member.size = _drain(stream)
        except UploadRefused:
            raise
        except _READ_ERRORS as error:
            member.error = _member_error(member.name, f"cannot be read: {error}")
    plan.expanded_size = budget.total


# --------------------------------------------------------------------------- opening


class _TarCursor:
    """A sequential reader over a tar archive, kept on the plan between members."""

    def __init__(self, plan: ArchivePlan) -> None:
        self.tar = _TarStream(plan)
        self.busy = False

    def close(self) -> None:
        self.tar.close()


def _changed(plan: ArchivePlan, name: str) -> UploadRefused:
    return _unsafe(f"{plan.filename}: member {name!r} changed since the archive was scanned")


def _advance(tar: _TarStream, plan: ArchivePlan, member: ArchiveMember) -> tarfile.TarInfo:
    info: tarfile.TarInfo | None = None
    while tar.index < member.index:
        info = tar.next()
        if info is None:
            raise _changed(plan, member.name)
    if info is None or tar.index != member.index:
        raise _changed(plan, member.name)
    parts = _name_parts(info.name, plan.filename)
    if parts != [member.name] or info.size != member.size or not info.isreg():
        raise _changed(plan, member.name)
    return info


@contextlib.contextmanager
def _open_tar_member(plan: ArchivePlan, member: ArchiveMember) -> Iterator[BinaryIO]:
    cursor = plan._tar
    if cursor is not None and not cursor.busy and cursor.tar.index >= member.index:
        cursor.close()  # already at or past the entry: read the archive again
        plan._tar = cursor = None
    separate = False
    if cursor is None:
        cursor = plan._tar = _TarCursor(plan)
    elif cursor.busy:  # another member of this plan is open: use a pass of our own
        cursor = _TarCursor(plan)
        separate = True
    cursor.busy = True
    finished = False
    try:
        info = _advance(cursor.tar, plan, member)
        extracted = cursor.tar.tar.extractfile(info)
        if extracted is None:
            raise _changed(plan, member.name)
        with _Metered(
            cast(_Readable, extracted), cap=member.size, member=member.name, filename=plan.filename
        ) as stream:
            yield cast(BinaryIO, stream)
        finished = True
    finally:
        cursor.busy = False
        if separate or not finished:
            cursor.close()
            if plan._tar is cursor:
                plan._tar = None


@contextlib.contextmanager
def open_member(plan: ArchivePlan, name: str) -> Iterator[BinaryIO]:
    """Streams one member of a scanned upload (see the module docstring)."""
    member = plan.member(name)
    kind = plan.kind
    if kind is ContainerKind.PLAIN:
        with plan.path.open("rb") as raw:
            yield raw
        return
    if kind in (ContainerKind.TAR_GZ, ContainerKind.TAR_BZ2):
        with _open_tar_member(plan, member) as stream:
            yield stream
        return
    budget = _Budget(plan.filename, plan.limits, plan.compressed_size)
    if kind is ContainerKind.ZIP:
        if plan._zip is None:
            plan._zip = zipfile.ZipFile(plan.path)
        archive = plan._zip
        with (
            archive.open(archive.infolist()[member.index]) as opened,
            _Metered(
                cast(_Readable, opened),
                budget=budget,
                cap=member.size,
                member=member.name,
                filename=plan.filename,
            ) as stream,
        ):
            yield cast(BinaryIO, stream)
        return
    with (
        plan.path.open("rb") as raw,
        _Metered(
            _decompressor(kind, raw),
            budget=budget,
            cap=member.size,
            member=member.name,
            filename=plan.filename,
        ) as stream,
    ):
        yield cast(BinaryIO, stream)


def read_member_capped(plan: ArchivePlan, name: str, max_bytes: int) -> bytes | None:
    """A small member read whole, or None when it is larger than `max_bytes`."""
    with open_member(plan, name) as stream:
        data = stream.read(max_bytes + 1)
        while len(data) <= max_bytes:
            more = stream.read(max_bytes + 1 - len(data))
            if not more:
                break
            data += more
    return None if len(data) > max_bytes else data


__all__ = [
    "ARCHIVE_KINDS",
    "ArchiveLimits",
    "ArchiveMember",
    "ArchivePlan",
    "ContainerKind",
    "detect_container",
    "open_member",
    "read_member_capped",
    "scan_archive",
    "single_member_name",
]
