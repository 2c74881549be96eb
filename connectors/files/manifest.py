"""The optional `manifest.json` of an archive: the order its members are processed in.

Format (Zeta's file drops)::

    // An optional comment line.
    {
        "contents": [
            {"filename": "file1.jsonl"},
            {"filename": "file2.jsonl"}
        ],
        "trigger": false
    }

* Only a top-level member named exactly `manifest.json` of a zip / tar archive is a
  manifest (a single `.gz` / `.bz2` member never is). It is read whole, but at most
  `MAX_MANIFEST_BYTES` (1 MiB); a larger one is invalid.
* It must be UTF-8 (a BOM is allowed) JSON with a `contents` list of objects, each with a
  non-empty string `filename`, no filename twice. Other keys are ignored (at the top level
  and in the entries), so manifests written for other tools still load.
* Full-line `//` comments are accepted, because Zeta's own example starts with one: any
  line whose first non-blank characters are `//` is dropped before parsing. Comments at
  the end of a line are not (a `//` may be part of a string such as a URL); `/* */` is
  not accepted either.
* `"trigger": true | false` (optional) is the upload's opt-in to campaign triggers; it
  overrides the upload's own setting. Any other type is invalid.

Errors refuse the whole upload (`UploadRefused`) with exactly these messages:

* `Invalid manifest file format` (INVALID_MANIFEST)
* `File <name> was included in the manifest but not found in the archive.`
  (MANIFEST_MISSING_FILE) — checked first, in manifest order;
* `File <name> was found in the archive but not included in the manifest.`
  (FILE_NOT_IN_MANIFEST) — in archive (name) order.

"Found in the archive" means the members that would be read: top-level files other than
the manifest, without ignored litter (`__MACOSX/`, `.DS_Store`, `._*`) and without files
in sub-directories (those are never read, so a manifest cannot name them either).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from connectors.files.archive import ARCHIVE_KINDS, ArchivePlan, read_member_capped
from connectors.files.errors import UploadRefused
from streams.core.errors import ErrorCode, Rejection, Stage

MANIFEST_NAME = "manifest.json"
MAX_MANIFEST_BYTES = 1 << 20  # 1 MiB

INVALID_MANIFEST_MESSAGE = "Invalid manifest file format"


@dataclass(frozen=True, slots=True)
class Manifest:
    filenames: tuple[str, ...]
    trigger: bool | None = None


def _invalid() -> UploadRefused:
    return UploadRefused(
        Rejection(ErrorCode.INVALID_MANIFEST, INVALID_MANIFEST_MESSAGE, Stage.UPLOAD)
    )


def _strip_comment_lines(text: str) -> str:
    return "\n".join("" if line.lstrip().startswith("//") else line for line in text.split("\n"))


def parse_manifest(data: bytes) -> Manifest:
    """Parses manifest bytes; raises UploadRefused(INVALID_MANIFEST) when malformed."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise _invalid()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _invalid() from None
    if "//" in text:
        text = _strip_comment_lines(text)
    try:
        document: Any = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise _invalid() from None
    if not isinstance(document, dict):
        raise _invalid()
    contents = document.get("contents")
    if not isinstance(contents, list):
        raise _invalid()
    names: list[str] = []
    seen: set[str] = set()
    for entry in contents:
        if not isinstance(entry, dict):
            raise _invalid()
        name = entry.get("filename")
        if not isinstance(name, str) or not name or name in seen or name == MANIFEST_NAME:
            raise _invalid()
        seen.add(name)
        names.append(name)
    trigger = document.get("trigger")
    if trigger is not None and not isinstance(trigger, bool):
        raise _invalid()
    return Manifest(tuple(names), trigger)


def order_members(archive_names: Sequence[str], manifest: Manifest) -> list[str]:
    """The members in manifest order; refuses missing and unlisted files."""
    present = set(archive_names)
    for name in manifest.filenames:
        if name not in present:
            raise UploadRefused(
                Rejection(
                    ErrorCode.MANIFEST_MISSING_FILE,
                    f"File {name} was included in the manifest but not found in the archive.",
                    Stage.UPLOAD,
                )
            )
    listed = set(manifest.filenames)
    for name in sorted(archive_names):
        if name not in listed:
            raise UploadRefused(
                Rejection(
                    ErrorCode.FILE_NOT_IN_MANIFEST,
                    f"File {name} was found in the archive but not included in the manifest.",
                    Stage.UPLOAD,
                )
            )
    return list(manifest.filenames)


def read_manifest(plan: ArchivePlan) -> Manifest | None:
    """The archive's manifest, or None when it has none (plain and single-member files)."""
    if plan.kind not in ARCHIVE_KINDS or MANIFEST_NAME not in plan.names():
        return None
    member = plan.member(MANIFEST_NAME)
    if member.error is not None or member.size > MAX_MANIFEST_BYTES:
        raise _invalid()
    data = read_member_capped(plan, MANIFEST_NAME, MAX_MANIFEST_BYTES)
    if data is None:
        raise _invalid()
    return parse_manifest(data)
