"""An upload read as the item stream of the upload contract (streams/core/upload.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from connectors.files.errors import MemberFailed, UploadRefused
from connectors.files.upload import iter_member_records, open_upload
from streams.core.csvmap import CsvMapping
from streams.core.errors import ErrorCode, Rejection, Stage
from streams.core.trigger import default_trigger
from streams.core.upload import FatalUpload, Item, MemberFailure, PlanWarning, UploadRow


def upload_reader(
    mappings: Mapping[str, CsvMapping], override: CsvMapping | None = None
) -> Callable[[UploadRow], Iterator[Item]]:
    """`read_upload` with CSV column mappings: `override` for every upload (``import
    --mapping``), else the account's default (its ``csv_mapping``)."""

    def read(row: UploadRow) -> Iterator[Item]:
        return read_upload(row, override or mappings.get(row.account))

    return read


def read_upload(row: UploadRow, mapping: CsvMapping | None = None) -> Iterator[Item]:
    """Every record of a file upload in processing order, member failures and warnings inline.

    `mapping` maps the columns of CSV members (an archive's own ``mapping.json`` wins)."""
    if row.path is None:
        raise ValueError("a file upload needs a path")
    try:
        plan = open_upload(
            Path(row.path),
            account=row.account,
            upload_id=row.upload_id,
            received_at=row.received_at,
            dialect=row.dialect,
            trigger=default_trigger(row.kind) if row.trigger is None else row.trigger,
            filename=row.filename,
            mapping=mapping,
        )
    except UploadRefused as refused:
        raise FatalUpload(refused.rejection) from refused
    except FileNotFoundError as missing:
        gone = Rejection(
            ErrorCode.UNSUPPORTED_FORMAT, f"{row.filename}: the uploaded file is gone", Stage.UPLOAD
        )
        raise FatalUpload(gone) from missing
    with plan:
        for warning in plan.warnings:
            yield PlanWarning(warning)
        for index, member in enumerate(plan.members):
            try:
                for raw in iter_member_records(plan, member):
                    yield index, raw
            except MemberFailed as failed:
                yield MemberFailure(member.name, failed.rejection)
            except UploadRefused as refused:
                raise FatalUpload(refused.rejection) from refused
