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


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def trigger_requested(event: Event, settings: AccountSettings) -> bool:
    """Did the record's source (or the account, for file imports) ask for triggers?"""
    if event.trigger_requested:
        return True
    return event.source.kind is SourceKind.FILE and settings.trigger_imports


def why_not_triggered(event: Event, now: datetime, settings: AccountSettings) -> str | None:
    """None when an accepted record is eligible, else a short reason."""
    if event.kind is not RecordKind.EVENT:
        return f"a {event.kind} record never triggers"
    if not trigger_requested(event, settings):
        return "the source did not ask for triggers (passive import)"
    timestamp, current = _aware(event.timestamp), _aware(now)
    if timestamp > current:
        return "the timestamp is in the future"
    if current - timestamp > TRIGGER_MAX_AGE:
        return "decided more than 24 hours after its timestamp"
    return None


_EVENT = RecordKind.EVENT
_FILE = SourceKind.FILE


def is_trigger_eligible(event: Event, now: datetime, settings: AccountSettings) -> bool:
    """`why_not_triggered(...) is None`, without building the reason."""
    if event.kind is not _EVENT:
        return False
    if not event.trigger_requested and not (
        event.source.kind is _FILE and settings.trigger_imports
    ):
        return False
    timestamp = event.timestamp
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=UTC)
    current = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    return timestamp <= current and current - timestamp <= TRIGGER_MAX_AGE
