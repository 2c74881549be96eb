"""The wire form of a record between two stages of the keyed topology (`events.by_key`).

A hop carries what the next stage needs and nothing it would have to look up: the
normalized record (field by field, times as epoch microseconds, so the record that
arrives is equal to the one that left), the catalog's rejection, the original payload for
dead letters, and the profile or link the previous stage decided. Stage 1 hops carry the
raw record instead (streams/topics.py `raw_doc`), when a producer put it on a partition
other than its account's.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson

from streams import topics as T
from streams.core.errors import ErrorCode, Rejection, Stage
from streams.core.records import Dialect, Event, RawRecord, RecordKind, Source, SourceKind
from streams.core.stages import LinkRequest

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


class HopStage(StrEnum):
    """The stage a hop is addressed to (streams/core/stages.py)."""

    ACCOUNT = "account"  # stage 1: the raw record, to its account's partition
    ROUTE = "route"  # stage 2: to the partition of the highest identifier
    LINK = "link"  # stage 3: one link request, to the identifier's partition
    DECIDE = "decide"  # stage 4: to the profile's partition


@dataclass(slots=True)
class Hop:
    """One record on its way to `stage`, routed by `key` (`topics.partition_of`)."""

    stage: HopStage
    key: str
    event: Event | None = None
    rejection: Rejection | None = None  # the catalog's, carried to stage 4
    raw: bytes | None = None  # the original payload, for dead letters
    profile_id: str | None = None  # stage 4
    link: LinkRequest | None = None  # stage 3
    record: RawRecord | None = None  # stage 1
    upload_id: str = ""  # stage 3: for the conflict record's headers


class HopError(ValueError):
    """A message on `events.by_key` that is not a hop."""


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICRO


def _moment(micros: int) -> datetime:
    return _EPOCH + micros * _MICRO


def _bytes_doc(data: bytes) -> dict[str, str]:
    try:
        return {"raw": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"raw_b64": base64.b64encode(data).decode("ascii")}


def _event_doc(event: Event) -> list[Any]:
    s = event.source
    return [
        event.event_id,
        event.kind.value,
        event.account,
        event.name,
        event.identifiers,
        _micros(event.timestamp),
        _micros(event.received_at),
        event.properties,
        [s.kind.value, s.dialect.value, s.account, s.upload_id, s.file, s.member, s.line],
        event.idempotency_key,
        event.profile_id,
        event.alias,
        event.url,
        event.resource_id,
        event.resource_type,
        event.trigger_requested,
        event.triggered,
    ]


def _event_of(doc: list[Any]) -> Event:
    (event_id, kind, account, name, identifiers, ts, rt, properties, s, key, profile, alias) = doc[
        :12
    ]
    url, resource_id, resource_type, requested, triggered = doc[12:]
    source = Source(SourceKind(s[0]), Dialect(s[1]), s[2], s[3], s[4], s[5], s[6])
    return Event(
        event_id,
        RecordKind(kind),
        account,
        name,
        identifiers,
        _moment(ts),
        _moment(rt),
        properties,
        source,
        key,
        profile,
        alias,
        url,
        resource_id,
        resource_type,
        requested,
        triggered,
    )


def encode_hop(hop: Hop) -> bytes:
    doc: dict[str, Any] = {"stage": hop.stage.value, "key": hop.key}
    if hop.event is not None:
        doc["event"] = _event_doc(hop.event)
    if hop.rejection is not None:
        r = hop.rejection
        doc["rejection"] = [r.code.value, r.message, r.stage.value, r.field]
    if hop.raw is not None:
        doc.update(_bytes_doc(hop.raw))
    if hop.profile_id is not None:
        doc["profile_id"] = hop.profile_id
    if hop.link is not None:
        link = hop.link
        doc["link"] = [link.account, link.identifier, link.profile_id, link.event_id]
    if hop.record is not None:
        doc["record"] = T.raw_doc(hop.record)
    if hop.upload_id:
        doc["upload_id"] = hop.upload_id
    return orjson.dumps(doc)


def decode_hop(data: bytes) -> Hop:
    try:
        doc = orjson.loads(data)
        hop = Hop(HopStage(doc["stage"]), str(doc["key"]))
        if "event" in doc:
            hop.event = _event_of(doc["event"])
        if "rejection" in doc:
            code, message, stage, field = doc["rejection"]
            hop.rejection = Rejection(ErrorCode(code), message, Stage(stage), field)
        if "raw" in doc:
            hop.raw = str(doc["raw"]).encode("utf-8")
        elif "raw_b64" in doc:
            hop.raw = base64.b64decode(doc["raw_b64"])
        hop.profile_id = doc.get("profile_id")
        if "link" in doc:
            hop.link = LinkRequest(*doc["link"])
        if "record" in doc:
            hop.record = T.raw_from_doc(doc["record"])
        hop.upload_id = str(doc.get("upload_id") or "")
    except (KeyError, ValueError, TypeError) as error:
        raise HopError(f"not a hop: {error!r}") from error
    return hop
