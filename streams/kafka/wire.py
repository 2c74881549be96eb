"""The wire forms of the Kafka runtime: raw records (`events.raw`) and hops (`events.by_key`).

A raw record on the raw topic is one JSON object, keyed by account (UTF-8). A hop carries
what the next stage of the keyed topology needs and nothing it would have to look up: the
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
from streams.core.timeparse import from_iso, to_iso
from streams.core.trigger import default_trigger

# --------------------------------------------------------------------------- raw records


class WireError(ValueError):
    """The message on tidegate.events.raw is not a raw record."""


def encode_raw(raw: RawRecord) -> bytes:
    return orjson.dumps(raw_doc(raw))


def raw_doc(raw: RawRecord) -> dict[str, Any]:
    """The wire form of a raw record as a JSON object (also carried inside hops)."""
    source = raw.source
    doc: dict[str, Any] = {
        "account": source.account,
        "upload_id": source.upload_id,
        "file": source.file,
        "member": source.member,
        "line": source.line,
        "dialect": source.dialect.value,
        "kind": source.kind.value,
        "received_at": to_iso(raw.received_at),
        "trigger": raw.trigger,
    }
    try:
        doc["payload"] = raw.payload.decode("utf-8")
    except UnicodeDecodeError:
        doc["payload_b64"] = base64.b64encode(raw.payload).decode("ascii")
    if raw.fields is not None:
        doc["fields"] = raw.fields  # its keys are the header
    elif raw.header is not None:
        doc["header"] = raw.header  # a CSV row that could not be framed
    if raw.path_identifier is not None:
        doc["path_identifier"] = raw.path_identifier
    if raw.framing_error is not None:
        err = raw.framing_error
        doc["framing_error"] = {"code": err.code.value, "message": err.message, "stage": err.stage}
    return doc


def decode_raw(
    data: bytes,
    *,
    topic: str,
    partition: int = 0,
    offset: int = 0,
    default_time: datetime | None = None,
) -> RawRecord:
    """A raw record from its wire form.

    Producers publishing directly may leave out everything but `account`, `dialect` and
    `payload`: `upload_id` defaults to `kafka`, `file` to the topic, `member` to
    `<partition>` and `line` to the offset + 1 (so a redelivery keeps its event id),
    `received_at` to the processing time, `kind` to `kafka` and `trigger` to true.
    A message that is itself a canonical JSON record (no `payload`) is taken as the payload
    of dialect `canonical`.
    """
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise WireError(f"not JSON: {error}") from error
    if not isinstance(doc, dict):
        raise WireError("a raw record must be a JSON object")
    return raw_from_doc(
        doc, data, topic=topic, partition=partition, offset=offset, default_time=default_time
    )


def raw_from_doc(
    doc: dict[str, Any],
    data: bytes = b"",
    *,
    topic: str = "",
    partition: int = 0,
    offset: int = 0,
    default_time: datetime | None = None,
) -> RawRecord:
    """`decode_raw` of an already parsed object (`data`: its bytes, the payload of a
    message that is a canonical record itself; `topic`: the raw topic, the default `file`)."""
    account = doc.get("account")
    if not isinstance(account, str) or not account:
        raise WireError("a raw record needs an account")
    if "payload" not in doc and "payload_b64" not in doc:
        payload = data or orjson.dumps(doc)
        dialect = Dialect.CANONICAL
    else:
        try:
            dialect = Dialect(doc.get("dialect") or "canonical")
        except ValueError as error:
            raise WireError(f"unknown dialect {doc.get('dialect')!r}") from error
        if "payload_b64" in doc:
            payload = base64.b64decode(str(doc["payload_b64"]))
        else:
            text = doc["payload"]
            payload = (
                orjson.dumps(text) if isinstance(text, dict | list) else str(text).encode("utf-8")
            )
    received = from_iso(doc["received_at"]) if isinstance(doc.get("received_at"), str) else None
    received_at = received or default_time or datetime.now(UTC)
    kind = SourceKind(doc.get("kind") or "kafka")
    line = doc.get("line")
    source = Source(
        kind,
        dialect,
        account,
        str(doc.get("upload_id") or "kafka"),
        str(doc.get("file") or topic),
        doc.get("member") if doc.get("line") is not None else str(partition),
        int(line) if isinstance(line, int) else offset + 1,
    )
    fields = doc.get("fields")
    framing = doc.get("framing_error")
    rejection = None
    if isinstance(framing, dict):
        rejection = Rejection(
            ErrorCode(framing["code"]),
            str(framing.get("message", "")),
            Stage(framing.get("stage", "read")),
        )
    trigger = doc.get("trigger")
    header = doc.get("header")
    if isinstance(fields, dict):
        header = tuple(fields)
    return RawRecord(
        source,
        received_at,
        payload,
        header=tuple(str(name) for name in header) if isinstance(header, list | tuple) else None,
        fields=fields if isinstance(fields, dict) else None,
        path_identifier=doc.get("path_identifier"),
        trigger=bool(trigger) if trigger is not None else default_trigger(kind),
        framing_error=rejection,
    )


# --------------------------------------------------------------------------- hops

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
    header: tuple[str, ...] | None = None  # with `raw`: a CSV row's header, for its feedback


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
        doc["record"] = raw_doc(hop.record)
    if hop.upload_id:
        doc["upload_id"] = hop.upload_id
    if hop.known is not None:
        doc["known"] = hop.known
    if hop.origin is not None:
        doc["origin"] = hop.origin
    if hop.header is not None:
        doc["header"] = hop.header
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
            hop.record = raw_from_doc(doc["record"])
        hop.upload_id = str(doc.get("upload_id") or "")
        known = doc.get("known")
        hop.known = [str(name) for name in known] if isinstance(known, list) else None
        origin = doc.get("origin")
        hop.origin = int(origin) if origin is not None else None
        header = doc.get("header")
        hop.header = tuple(str(name) for name in header) if isinstance(header, list) else None
    except (KeyError, ValueError, TypeError) as error:
        raise HopError(f"not a hop: {error!r}") from error
    return hop
