"""Reads CSV column mappings (JSON or TOML files, or an archive's ``mapping.json``)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from connectors.files.archive import ArchivePlan, read_member_capped
from connectors.files.errors import UploadRefused
from streams.core.csvmap import CsvMapping, parse_mapping
from streams.core.errors import ErrorCode, Rejection, Stage

MAPPING_NAME = "mapping.json"  # an archive member beside the CSV files it maps
MAX_MAPPING_BYTES = 64 * 1024


class MappingError(ValueError):
    """A mapping that cannot be used; `rejection` has the stable code."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(rejection.message)
        self.rejection = rejection


def parse_mapping_text(data: bytes, name: str) -> CsvMapping:
    """A mapping from the bytes of a ``.toml`` (by `name`) or JSON file; raises MappingError."""
    try:
        text = data.decode("utf-8-sig")
        obj = tomllib.loads(text) if name.lower().endswith(".toml") else json.loads(text)
    except (UnicodeDecodeError, ValueError) as error:
        raise MappingError(
            Rejection(ErrorCode.INVALID_MAPPING, f"{name}: cannot be read: {error}", Stage.UPLOAD)
        ) from None
    mapping = parse_mapping(obj)
    if isinstance(mapping, Rejection):
        raise MappingError(Rejection(mapping.code, f"{name}: {mapping.message}", Stage.UPLOAD))
    return mapping


def load_mapping(path: Path) -> CsvMapping:
    """The mapping in the file at `path`; raises MappingError (or OSError)."""
    with path.open("rb") as handle:
        data = handle.read(MAX_MAPPING_BYTES + 1)
    if len(data) > MAX_MAPPING_BYTES:
        raise MappingError(
            Rejection(
                ErrorCode.INVALID_MAPPING,
                f"{path.name}: larger than {MAX_MAPPING_BYTES} bytes",
                Stage.UPLOAD,
            )
        )
    return parse_mapping_text(data, path.name)


def read_archive_mapping(archive: ArchivePlan) -> CsvMapping | None:
    """The archive's ``mapping.json``, or None; raises UploadRefused when it is unusable."""
    if MAPPING_NAME not in archive.names():
        return None
    member = archive.member(MAPPING_NAME)
    data = None
    if member.error is None and member.size <= MAX_MAPPING_BYTES:
        data = read_member_capped(archive, MAPPING_NAME, MAX_MAPPING_BYTES)
    if data is None:
        raise UploadRefused(
            Rejection(
                ErrorCode.INVALID_MAPPING,
                f"{MAPPING_NAME} cannot be read (at most {MAX_MAPPING_BYTES} bytes)",
                Stage.UPLOAD,
            )
        )
    try:
        return parse_mapping_text(data, MAPPING_NAME)
    except MappingError as error:
        raise UploadRefused(error.rejection) from None
