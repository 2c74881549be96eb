"""The wire form of a record between two stages of the keyed topology (`events.by_key`).

A hop carries what the next stage needs and nothing it would have to look up: the
normalized record (field by field, times as epoch microseconds, so the record that
arrives is equal to the one that left), the catalog's rejection, the original payload for
dead letters, and the profile or link the previous stage decided. Hops of one batch for
one partition travel together in one message (`encode_hops`).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson

from streams.core.errors import ErrorCode, Rejection, Stage
from streams.core.records import Dialect, Event, RawRecord, RecordKind, Source, SourceKind
from streams.core.stages import LinkRequest
from streams.kafka import topics as T

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


class HopStage(StrEnum):
    """The stage a hop is addressed to (streams/core/stages.py)."""

    ARRIVAL = "arrival"  # stage 1: the raw record, on the partition where it arrived
    CATALOG = "catalog"  # stage 1b: a record with names new to its partition, to its account's
    ADMITTED = "admitted"  # stage 1c: back to the arrival partition (`origin`) with the answer
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
    known: list[str] | None = None  # stage 1c: the type's committed names, to learn
    origin: int | None = None  # stages 1b and 1c: the partition where the record arrived


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
    return orjson.dumps(_hop_doc(hop))


def encode_hops(hops: list[Hop]) -> bytes:
    """The envelope of a batch's hops for one destination partition, in order: one Kafka
    message per destination partition and batch (a message per hop costs ~4x as much on
    Faust's per-message send and consume paths)."""
    return orjson.dumps({"hops": [_hop_doc(hop) for hop in hops]})


def _hop_doc(hop: Hop) -> dict[str, Any]:
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
    if hop.known is not None:
        doc["known"] = hop.known
    if hop.origin is not None:
        doc["origin"] = hop.origin
    return doc


def decode_hops(data: bytes) -> list[Hop | HopError]:
    """The hops of one `events.by_key` message, in order: an envelope (`encode_hops`) or a
    single hop (`encode_hop`, messages written before hops were batched). A hop that does
    not decode is its `HopError`, in its place: it never takes its neighbours with it."""
    try:
        doc = orjson.loads(data)
    except ValueError as error:
        return [HopError(f"not a hop: {error!r}")]
    items = doc["hops"] if isinstance(doc, dict) and isinstance(doc.get("hops"), list) else [doc]
    hops: list[Hop | HopError] = []
    for item in items:
        try:
            hops.append(_hop_of(item))
        except HopError as error:
            hops.append(error)
    return hops


def decode_hop(data: bytes) -> Hop:
    try:
        doc = orjson.loads(data)
    except ValueError as error:
        raise HopError(f"not a hop: {error!r}") from error
    return _hop_of(doc)


def _hop_of(doc: Any) -> Hop:
    try:
        stage = doc["stage"]
        # "account": stage 1 before it ran on the arrival partition (the same work)
        hop = Hop(HopStage.ARRIVAL if stage == "account" else HopStage(stage), str(doc["key"]))
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
        known = doc.get("known")
        hop.known = [str(name) for name in known] if isinstance(known, list) else None
        origin = doc.get("origin")
        hop.origin = int(origin) if origin is not None else None
    except (KeyError, ValueError, TypeError) as error:
        raise HopError(f"not a hop: {error!r}") from error
    return hop
