"""Shared helpers for the file-connector tests (a module, not a conftest: the directory
is shared with the HTTP connector's tests)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from connectors.files.errors import MemberFailed
from connectors.files.upload import UploadPlan, iter_member_records, open_upload
from streams.core.records import Dialect, RawRecord

ARCHIVES = Path(__file__).resolve().parents[2] / "fixtures" / "archives"
SEEDS = Path(__file__).resolve().parents[2] / "fixtures" / "seeds"
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def plan(
    path: Path, *, dialect: Dialect | None = None, trigger: bool = False, **kw: object
) -> UploadPlan:
    return open_upload(
        path,
        account="acme",
        upload_id="up-1",
        received_at=NOW,
        dialect=dialect,
        trigger=trigger,
        **kw,  # type: ignore[arg-type]
    )


def all_records(upload: UploadPlan) -> Iterator[tuple[str, RawRecord | MemberFailed]]:
    """(member name, record) for every record; (member name, MemberFailed) for failures."""
    for member in upload.members:
        try:
            for record in iter_member_records(upload, member):
                yield member.name, record
        except MemberFailed as failed:
            yield member.name, failed
