"""Trigger eligibility: may an accepted record go to the triggers topic?

An accepted `kind=event` record triggers only when all hold:

1. its source asked: `Event.trigger_requested` (connectors set it: real-time API and Kafka
   producers yes by default; file imports only when the upload opted in — Vero: "importing
   CSV files … is passive … If you want to have these events act as triggers, simply tick
   the appropriate box"), or it is a file import and the account has the standing opt-in
   `AccountSettings.trigger_imports`;
2. its timestamp is not in the future of `now` by any amount — the time window accepts up
   to 1 day ahead, but Vero: "It is not possible to trigger for a future date and time";
3. it is decided no more than 24 hours after its timestamp (`now - timestamp <= 24 h`,
   inclusive) — Zeta: "triggered messages will not be sent for events that are processed
   more than 24 hours after their timestamp".

Profile updates and aliases never trigger. `now` is the decision (processing) time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from streams.core.records import Event, RecordKind, SourceKind
from streams.core.settings import AccountSettings

TRIGGER_MAX_AGE = timedelta(hours=24)


def default_trigger(kind: SourceKind) -> bool:
    """Whether a record asks for triggers when its source says nothing: real-time sources
    (HTTP APIs, Kafka producers) do, file imports do not (an import is passive unless the
    upload or the account opts in)."""
    return kind is not SourceKind.FILE


_EVENT = RecordKind.EVENT
_FILE = SourceKind.FILE


def why_not_triggered(event: Event, now: datetime, settings: AccountSettings) -> str | None:
    """None when an accepted record may trigger (the three rules above), else the reason."""
    if event.kind is not _EVENT:
        return "only event records trigger (profile updates and aliases never do)"
    if not event.trigger_requested and not (
        event.source.kind is _FILE and settings.trigger_imports
    ):
        return "the source did not ask for triggers (passive import)"
    timestamp = event.timestamp
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=UTC)
    current = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    if timestamp > current:
        return "the timestamp is in the future"
    if current - timestamp > TRIGGER_MAX_AGE:
        return "decided more than 24 hours after its timestamp"
    return None


def is_trigger_eligible(event: Event, now: datetime, settings: AccountSettings) -> bool:
    """May this accepted record go to the triggers topic?"""
    return why_not_triggered(event, now, settings) is None
