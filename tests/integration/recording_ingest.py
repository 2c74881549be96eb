"""A real, in-memory implementation of the `Ingest` port for the connector tests.

It stands in for the runtime in the SFTP / watched-folder tests only: it records every
`FileUpload` handed over (with a copy of its bytes, taken at submission, and the
monotonic time it arrived), applies the unique-filename rule per account like the
runtime does (`duplicate_filename`), and can be told to refuse or fail submissions.
End-to-end wiring to the real runtime is tested elsewhere.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from connectors.ports import FileUpload, Receipt, UploadView
from streams.core.errors import ErrorCode, Rejection, Stage
from streams.core.records import RawRecord, SourceKind


@dataclass(slots=True)
class Handed:
    """One accepted or refused submission."""

    upload: FileUpload
    content: bytes
    at: float  # time.monotonic() when submit_file was called
    receipt: Receipt

    @property
    def accepted(self) -> bool:
        return self.receipt.refused is None


@dataclass
class RecordingIngest:
    """Records hand-overs; refuses a filename already used by the account."""

    enforce_unique_filenames: bool = True
    handed: list[Handed] = field(default_factory=list)
    records: dict[str, list[RawRecord]] = field(default_factory=dict)
    fail_next: int = 0  # raise RuntimeError from the next N submit_file calls
    refuse_with: Rejection | None = None  # refuse every submission with this
    _used: dict[str, set[str]] = field(default_factory=dict)
    _views: dict[str, UploadView] = field(default_factory=dict)
    _changed: asyncio.Condition | None = None

    def _cond(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    def mark_used(self, account: str, filename: str) -> None:
        """As if the account had uploaded `filename` earlier (another run, the API…)."""
        self._used.setdefault(account, set()).add(filename)

    @property
    def accepted(self) -> list[Handed]:
        return [h for h in self.handed if h.accepted]

    @property
    def refused(self) -> list[Handed]:
        return [h for h in self.handed if not h.accepted]

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Handed]:
        """Waits until at least `count` submissions (accepted or refused) arrived."""
        cond = self._cond()
        async with cond:
            await asyncio.wait_for(cond.wait_for(lambda: len(self.handed) >= count), timeout)
        return list(self.handed)

    # -- the port

    async def submit_file(self, upload: FileUpload) -> Receipt:
        at = time.monotonic()
        if self.fail_next > 0:
            self.fail_next -= 1
            raise RuntimeError("runtime unavailable (test)")
        content = upload.path.read_bytes()
        used = self._used.setdefault(upload.account, set())
        if self.refuse_with is not None:
            receipt = Receipt(None, self.refuse_with)
        elif self.enforce_unique_filenames and upload.filename in used:
            receipt = Receipt(
                None,
                Rejection(
                    ErrorCode.DUPLICATE_FILENAME,
                    f"File {upload.filename} was already uploaded to account {upload.account}.",
                    Stage.UPLOAD,
                ),
            )
        else:
            used.add(upload.filename)
            upload_id = str(uuid.uuid4())
            receipt = Receipt(upload_id)
            self._views[upload_id] = UploadView(
                upload_id=upload_id,
                account=upload.account,
                filename=upload.filename,
                kind=upload.kind.value,
                dialect=upload.dialect.value if upload.dialect else None,
                status="queued",
                received_at=upload.received_at.isoformat(),
                finished_at=None,
                trigger=bool(upload.trigger),
            )
        cond = self._cond()
        async with cond:
            self.handed.append(Handed(upload, content, at, receipt))
            cond.notify_all()
        return receipt

    async def submit_records(
        self,
        account: str,
        name: str,
        records: list[RawRecord],
        *,
        kind: SourceKind = SourceKind.API,
    ) -> Receipt:
        upload_id = str(uuid.uuid4())
        self.records[upload_id] = list(records)
        self._views[upload_id] = UploadView(
            upload_id=upload_id,
            account=account,
            filename=name,
            kind=kind.value,
            dialect=records[0].source.dialect.value if records else None,
            status="queued",
            received_at=datetime.now(UTC).isoformat(),
            finished_at=None,
            trigger=any(r.trigger for r in records),
        )
        return Receipt(upload_id)

    async def wait(self, upload_id: str, timeout: float | None = None) -> UploadView:
        view = self._views[upload_id]
        return view

    async def list_uploads(self, account: str | None = None, limit: int = 100) -> list[UploadView]:
        views = [v for v in self._views.values() if account is None or v.account == account]
        return views[-limit:]

    async def get_upload(self, upload_id: str) -> UploadView | None:
        return self._views.get(upload_id)

    async def feedback(self, upload_id: str) -> tuple[str, bytes] | None:
        return None
