"""The upload contract: the item stream a reader yields for one upload, which runtimes consume."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from streams.core.errors import ErrorCode, Rejection, Stage
from streams.core.records import Dialect, RawRecord, SourceKind


@dataclass(slots=True)
class UploadRow:
    """The ledger row the engine needs to (re)open an upload."""

    upload_id: str
    account: str
    filename: str
    kind: SourceKind
    dialect: Dialect | None
    path: str | None
    trigger: bool | None
    received_at: datetime


@dataclass(slots=True, frozen=True)
class MemberFailure:
    """One member of an archive failed as a whole; the rest of the upload proceeds."""

    member: str
    rejection: Rejection


@dataclass(slots=True, frozen=True)
class PlanWarning:
    text: str


class FatalUpload(Exception):
    """The whole upload is refused (unsafe archive, bad manifest, unsupported format)."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(rejection.message)
        self.rejection = rejection


# A reader yields, in processing order: (member index, record), member failures, warnings.
Item = tuple[int, RawRecord] | MemberFailure | PlanWarning
FileReader = Callable[[UploadRow], Iterator[Item]]


@dataclass(slots=True)
class UploadNotes:
    """An upload's warnings and failed members, folded from its reader's items."""

    warnings: list[str]
    failed: list[str]

    def note(self, item: PlanWarning | MemberFailure) -> None:
        """A warning once; a failed member once, its rejection (whose message names the
        member already) as a warning."""
        if isinstance(item, PlanWarning):
            if item.text not in self.warnings:
                self.warnings.append(item.text)
        elif item.member not in self.failed:
            self.failed.append(item.member)
            self.warnings.append(f"{item.rejection.code}: {item.rejection.message}")


def duplicate_filename(account: str, filename: str) -> Rejection:
    """The refusal of a filename the account has used already (one name per account)."""
    return Rejection(
        ErrorCode.DUPLICATE_FILENAME,
        f"File {filename} was already uploaded to account {account}.",
        Stage.UPLOAD,
    )
