"""Why one line of an upload ended as it did: its rule, and whether it triggered (and why not)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from connectors.ports import LineVerdict
from streams.core.records import Dialect, Event, RecordKind, Source, SourceKind
from streams.core.settings import AccountSettings
from streams.core.timeparse import from_iso
from streams.core.trigger import why_not_triggered


def _accepted_lines(path: Path, needle: bytes) -> Iterator[dict[str, Any]]:
    """The accepted output's records that mention ``needle`` (the upload id), parsed."""
    if not path.exists():
        return
    with path.open("rb") as handle:
        for line in handle:
            if needle in line:
                yield orjson.loads(line)


def _event(doc: dict[str, Any]) -> Event:
    source = doc["source"]
    return Event(
        event_id=doc["event_id"],
        kind=RecordKind(doc["kind"]),
        account=doc["account"],
        name=doc.get("name"),
        identifiers=doc.get("identifiers") or {},
        timestamp=from_iso(doc["timestamp"]) or datetime.min,
        received_at=from_iso(doc["received_at"]) or datetime.min,
        properties=doc.get("properties") or {},
        source=Source(
            SourceKind(source["kind"]),
            Dialect(source["dialect"]),
            source["account"],
            source["upload_id"],
            source["file"],
            source.get("member"),
            source["line"],
        ),
        trigger_requested=bool(doc.get("trigger_requested")),
        triggered=bool(doc.get("triggered")),
    )


def explain_accepted(
    accepted: Path,
    upload_id: str,
    file: str,
    line: int,
    decided_at: datetime,
    settings: AccountSettings,
) -> LineVerdict | None:
    """The verdict of an accepted line found on the accepted output, else None."""
    for doc in _accepted_lines(accepted, upload_id.encode()):
        source = doc["source"]
        if source["upload_id"] != upload_id or source["line"] != line:
            continue
        if file not in (source["file"], source.get("member")):
            continue
        event = _event(doc)
        if event.triggered:
            return LineVerdict("accepted", None, "passed every rule", True, None)
        # The decision time of its batch is at most the upload's end: the reason is
        # computed as of then.
        reason = why_not_triggered(event, decided_at, settings)
        return LineVerdict("accepted", None, "passed every rule", False, reason)
    return None
