"""What connectors need from a runtime: the ports the embedded and Kafka runtimes implement."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from streams.core.errors import Rejection
from streams.core.feedback import RejectedRow
from streams.core.records import Dialect, RawRecord, SourceKind
from streams.core.upload import UploadRow


class IngestUnavailable(Exception):
    """The runtime cannot take records right now (store busy or down, shutting down).

    Retriable: the HTTP API answers 503 with `Retry-After` (``retry_after`` seconds when
    given, else the app's default). Nothing of the request is stored.
    """

    def __init__(
        self, message: str = "the ingest is unavailable", retry_after: float | None = None
    ):
        super().__init__(message)
        self.retry_after = retry_after


class StorageFull(IngestUnavailable):
    """The runtime's disk is full: nothing is taken until space is freed (HTTP 507)."""


@dataclass(slots=True)
class FileUpload:
    """A completely received file (or archive) handed over for processing."""

    account: str
    filename: str  # unique per account (duplicate_filename otherwise)
    path: Path  # where the bytes are now; the runtime owns it from here
    received_at: datetime
    dialect: Dialect | None = None
    trigger: bool | None = None  # None: the account's default applies
    kind: SourceKind = SourceKind.FILE


@dataclass(slots=True)
class Receipt:
    """The answer to a submission: an upload id, or a refusal of the whole upload."""

    upload_id: str | None
    refused: Rejection | None = None


@dataclass(slots=True)
class UploadView:
    """One upload as the history, the status pages and the CLI show it."""

    upload_id: str
    account: str
    filename: str
    kind: str
    dialect: str | None
    status: str  # queued | processing | success | partial | warning | fail
    received_at: str
    finished_at: str | None
    trigger: bool
    # records, accepted, duplicate, rejected, triggered, by_code
    counts: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    fatal: dict[str, str] | None = None
    progress: dict[str, int] = field(default_factory=dict)  # read / decided


class Ingest(Protocol):
    """The runtime as connectors see it."""

    async def submit_file(self, upload: FileUpload) -> Receipt:
        """Registers the upload (unique filename per account) and queues it."""
        ...

    async def submit_records(
        self,
        account: str,
        name: str,
        records: list[RawRecord],
        *,
        kind: SourceKind = SourceKind.API,
    ) -> Receipt:
        """Durably stores API records (returns only after they are written) and queues them."""
        ...

    async def wait(self, upload_id: str, timeout: float | None = None) -> UploadView:
        """Waits until the upload has its final status."""
        ...

    async def list_uploads(
        self, account: str | None = None, limit: int = 100
    ) -> list[UploadView]: ...

    async def get_upload(self, upload_id: str) -> UploadView | None: ...

    async def feedback(self, upload_id: str) -> tuple[str, bytes] | None:
        """(filename, content) of the upload's feedback file: rejected rows, own format."""
        ...


@dataclass(slots=True, frozen=True)
class DeadLetter:
    """A rejected line of an account, as the console lists and downloads it."""

    upload_id: str
    filename: str  # the upload's name
    file: str  # member of an archive, else the upload's name
    line: int
    code: str
    message: str
    raw: bytes
    received_at: str


@dataclass(slots=True, frozen=True)
class LineVerdict:
    """The outcome of one line of an upload, and the rule behind it."""

    outcome: str  # accepted | duplicate | rejected | unknown
    code: str | None  # the rule that rejected it (an error code), for a rejected line
    detail: str  # the rule's message, or what decided it
    triggered: bool
    why_not: str | None  # why it did not trigger, when known


class UploadHistory(Protocol):
    """What the console reads besides `Ingest`: keyset pages of the history, rejected lines."""

    async def page_uploads(
        self,
        account: str | None,
        limit: int,
        *,
        before: int | None = None,
        status: str | None = None,
        name: str | None = None,
    ) -> tuple[list[UploadView], int | None]:
        """Newest first after the cursor ``before``; the views and the next page's cursor.

        ``status``: one status, or "active" for every upload not final yet."""
        ...

    async def rejections(self, upload_id: str, limit: int = 500) -> list[RejectedRow]: ...

    async def dead_letters(
        self, account: str, *, code: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]:
        """The account's dead letters (rejected lines), newest upload first."""
        ...

    async def dead_letter_codes(self, account: str) -> dict[str, int]: ...

    async def explain_line(self, upload_id: str, file: str, line: int) -> LineVerdict | None:
        """Which rule decided the line and whether it triggered; None: no such line."""
        ...


#: A rejected row from elsewhere: upload id, file, line, code, message, raw line, CSV header
#: (JSON list, or None).
CollectedRejection = tuple[str, str, int, str, str, bytes, str | None]


class UploadLedger(Protocol):
    """The ledger of uploads a runtime keeps for the connectors: unique names, history,
    statuses. The embedded runtime's SQLite ledger implements it; the Kafka ingest keeps one
    beside the connectors (handed to it by the command line)."""

    closed: bool

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def register_file(self, upload: FileUpload, upload_id: str) -> Receipt:
        """Records a file upload; a name the account already used is refused."""
        ...

    async def register_records(
        self,
        upload_id: str,
        account: str,
        name: str,
        kind: SourceKind,
        dialect: str | None,
        received_at: str,
    ) -> None: ...

    async def file_row(self, upload_id: str) -> UploadRow | None: ...

    async def mark_processing(self, upload_id: str, records: int) -> None: ...

    async def record_status(self, doc: dict[str, Any]) -> None:
        """Stores a final status decided elsewhere (the Kafka workers' status agent)."""
        ...

    async def list_uploads(
        self, account: str | None = None, limit: int = 100
    ) -> list[UploadView]: ...

    async def get_upload(self, upload_id: str) -> UploadView | None: ...

    async def page_uploads(
        self,
        account: str | None,
        limit: int,
        *,
        before: int | None = None,
        status: str | None = None,
        name: str | None = None,
    ) -> tuple[list[UploadView], int | None]: ...

    async def rejections(self, upload_id: str, limit: int = 500) -> list[RejectedRow]: ...

    async def dead_letters(
        self, account: str, *, code: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]: ...

    async def dead_letter_codes(self, account: str) -> dict[str, int]: ...

    async def rejection(self, upload_id: str, file: str, line: int) -> tuple[str, str] | None:
        """(code, message) of a rejected line, or None when that line was not rejected."""
        ...

    async def rejection_count(self, upload_id: str) -> int: ...

    async def feedback(self, upload_id: str) -> tuple[str, bytes] | None: ...

    async def collected_positions(self, source: str) -> dict[int, int]: ...

    async def collect_rejections(
        self, rows: Sequence[CollectedRejection], source: str, positions: Mapping[int, int]
    ) -> None:
        """Rejected rows decided elsewhere (the Kafka workers' dead letters) and the position
        read up to in `source`, stored together."""
        ...


class LedgerHistory:
    """The history half of the connectors' port answered from an `UploadLedger`: the two
    runtimes decide uploads differently but keep and read their history the same way."""

    ledger: UploadLedger

    async def list_uploads(self, account: str | None = None, limit: int = 100) -> list[UploadView]:
        return await self.ledger.list_uploads(account, limit)

    async def get_upload(self, upload_id: str) -> UploadView | None:
        return await self.ledger.get_upload(upload_id)

    async def page_uploads(
        self,
        account: str | None,
        limit: int,
        *,
        before: int | None = None,
        status: str | None = None,
        name: str | None = None,
    ) -> tuple[list[UploadView], int | None]:
        return await self.ledger.page_uploads(
            account, limit, before=before, status=status, name=name
        )

    async def rejections(self, upload_id: str, limit: int = 500) -> list[RejectedRow]:
        return await self.ledger.rejections(upload_id, limit)

    async def dead_letters(
        self, account: str, *, code: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]:
        return await self.ledger.dead_letters(account, code=code, limit=limit, offset=offset)

    async def dead_letter_codes(self, account: str) -> dict[str, int]:
        return await self.ledger.dead_letter_codes(account)

    async def feedback(self, upload_id: str) -> tuple[str, bytes] | None:
        return await self.ledger.feedback(upload_id)
