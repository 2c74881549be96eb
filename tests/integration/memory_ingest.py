"""An in-memory `Ingest` for the HTTP connector's tests and benchmark.

Stores what is submitted and answers the history calls; an upload's outcome is worked out
with the stateless rules only (``normalize``), which is all the HTTP tests need. Knobs:
``fail_with`` (raised by submit_records), ``delay`` (seconds before answering), ``refuse``
(a Rejection refusing every submission), ``keep_records`` (False: count, keep nothing).
Also holds ``StaticAuth``, a plain-text `Authenticator` for tests.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from connectors.ports import FileUpload, Receipt, UploadView
from streams.core.errors import Rejection
from streams.core.normalize import normalize
from streams.core.records import Event, RawRecord, SourceKind


@dataclass(slots=True)
class StoredUpload:
    upload_id: str
    account: str
    name: str
    kind: SourceKind
    received_at: datetime
    records: list[RawRecord] = field(default_factory=list)
    count: int = 0
    view: UploadView | None = None  # planted views (tests) win over computed ones


class MemoryIngest:
    def __init__(self, *, keep_records: bool = True) -> None:
        self.keep_records = keep_records
        self.uploads: dict[str, StoredUpload] = {}
        self.files: list[FileUpload] = []
        self.submissions = 0
        self.records_submitted = 0
        self.fail_with: BaseException | None = None
        self.delay = 0.0
        self.refuse: Rejection | None = None
        self._planted_feedback: dict[str, tuple[str, bytes]] = {}

    # -- what the tests look at ---------------------------------------------------------

    def records(self, account: str | None = None) -> list[RawRecord]:
        return [
            record
            for upload in self.uploads.values()
            if account is None or upload.account == account
            for record in upload.records
        ]

    def plant(self, view: UploadView, feedback: tuple[str, bytes] | None = None) -> None:
        """Adds a finished upload as-is (e.g. another account's)."""
        stored = StoredUpload(
            view.upload_id, view.account, view.filename, SourceKind(view.kind), datetime.now(UTC)
        )
        stored.view = view
        self.uploads[view.upload_id] = stored
        if feedback is not None:
            self._planted_feedback[view.upload_id] = feedback

    # -- the Ingest port ----------------------------------------------------------------

    async def submit_file(self, upload: FileUpload) -> Receipt:
        self.files.append(upload)
        return Receipt(str(uuid.uuid4()))

    async def submit_records(
        self,
        account: str,
        name: str,
        records: list[RawRecord],
        *,
        kind: SourceKind = SourceKind.API,
    ) -> Receipt:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_with is not None:
            raise self.fail_with
        if self.refuse is not None:
            return Receipt(None, self.refuse)
        upload_id = records[0].source.upload_id if records else str(uuid.uuid4())
        received_at = records[0].received_at if records else datetime.now(UTC)
        stored = StoredUpload(upload_id, account, name, kind, received_at, count=len(records))
        if self.keep_records:
            stored.records = list(records)
        self.uploads[upload_id] = stored
        self.submissions += 1
        self.records_submitted += len(records)
        return Receipt(upload_id)

    async def wait(self, upload_id: str, timeout: float | None = None) -> UploadView:
        view = await self.get_upload(upload_id)
        if view is None:
            raise KeyError(upload_id)
        return view

    async def list_uploads(self, account: str | None = None, limit: int = 100) -> list[UploadView]:
        chosen = [u for u in self.uploads.values() if account is None or u.account == account]
        chosen.reverse()  # newest first (dicts keep insertion order)
        return [self._view(u) for u in chosen[:limit]]

    async def get_upload(self, upload_id: str) -> UploadView | None:
        stored = self.uploads.get(upload_id)
        return None if stored is None else self._view(stored)

    async def feedback(self, upload_id: str) -> tuple[str, bytes] | None:
        if upload_id in self._planted_feedback:
            return self._planted_feedback[upload_id]
        stored = self.uploads.get(upload_id)
        if stored is None:
            return None
        lines = []
        for record, result in self._results(stored):
            if isinstance(result, Rejection):
                try:
                    original: Any = orjson.loads(record.payload)
                except orjson.JSONDecodeError:
                    original = record.payload.decode("utf-8", "replace")
                lines.append(
                    orjson.dumps(
                        {
                            "record": original,
                            "line": record.source.line,
                            "code": result.code.value,
                            "message": result.message,
                        }
                    )
                )
        if not lines:
            return None
        return f"{upload_id}.errors.jsonl", b"\n".join(lines) + b"\n"

    # -- internals ----------------------------------------------------------------------

    @staticmethod
    def _results(stored: StoredUpload) -> list[tuple[RawRecord, Event | Rejection]]:
        return [(record, normalize(record)) for record in stored.records]

    def _view(self, stored: StoredUpload) -> UploadView:
        if stored.view is not None:
            return stored.view
        by_code: Counter[str] = Counter()
        accepted = 0
        triggered = 0
        for _record, result in self._results(stored):
            if isinstance(result, Rejection):
                by_code[result.code.value] += 1
            else:
                accepted += 1
                triggered += int(result.trigger_requested)
        rejected = by_code.total()
        if not stored.records and stored.count:
            status = "success"  # keep_records=False: nothing to judge by
        elif rejected == 0:
            status = "success"
        elif accepted == 0:
            status = "fail"
        else:
            status = "partial"
        dialect = stored.records[0].source.dialect.value if stored.records else None
        return UploadView(
            upload_id=stored.upload_id,
            account=stored.account,
            filename=stored.name,
            kind=stored.kind.value,
            dialect=dialect,
            status=status,
            received_at=stored.received_at.isoformat(),
            finished_at=stored.received_at.isoformat(),
            trigger=any(r.trigger for r in stored.records),
            counts={
                "records": stored.count,
                "accepted": accepted,
                "duplicate": 0,
                "rejected": rejected,
                "triggered": triggered,
                "by_code": dict(by_code),
            },
            progress={"read": stored.count, "decided": stored.count},
        )


class StaticAuth:
    """Plain-text credentials: ``{account: api_key}`` and ``{account: passcode}``."""

    def __init__(
        self, api_keys: dict[str, str] | None = None, passcodes: dict[str, str] | None = None
    ) -> None:
        self.api_keys = dict(api_keys or {})
        self.passcodes = dict(passcodes or {})
        self.calls = 0

    def verify_api_key(self, account: str, key: str) -> bool:
        self.calls += 1
        return account in self.api_keys and self.api_keys[account] == key

    def verify_passcode(self, account: str, passcode: str) -> bool:
        self.calls += 1
        return account in self.passcodes and self.passcodes[account] == passcode
