"""Topic names, partition counts and topic configuration of the Kafka runtime.

Every topic has the same partition count (default 8), so the raw topic, the internal
`events.by_key` topic, the state changelogs and the outputs are co-partitioned: partition p
of each belongs to one worker. State of a key lives in partition `partition_of(key)`; the
upload topics (outcomes, announce, status) are keyed by upload id.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import zlib
from collections.abc import Mapping
from typing import Any

PREFIX = os.environ.get("TIDEGATE_TOPIC_PREFIX", "tidegate")
RAW = ACCEPTED = TRIGGERS = DEADLETTER = OUTCOMES = ANNOUNCE = STATUS = CONFLICTS = BY_KEY = ""
NAMES = ""
TOPIC_CONFIGS: dict[str, Mapping[str, str]] = {}
ALL_TOPICS: tuple[str, ...] = ()

DEFAULT_PARTITIONS = 8
APP_ID = os.environ.get("TIDEGATE_APP_ID", "tidegate")

# Outputs keep 7 days by default (consumers re-read within that); status is compacted.
_DELETE_7D = {"cleanup.policy": "delete", "retention.ms": str(7 * 24 * 3600 * 1000)}


def use_prefix(prefix: str) -> None:
    """Sets the topic names (`<prefix>.events.raw` ...); `tidegate` unless
    TIDEGATE_TOPIC_PREFIX says otherwise (tests use their own prefix per run)."""
    global PREFIX, RAW, ACCEPTED, TRIGGERS, DEADLETTER, OUTCOMES, ANNOUNCE, STATUS, CONFLICTS
    global BY_KEY, NAMES
    global TOPIC_CONFIGS, ALL_TOPICS
    PREFIX = prefix
    RAW = f"{prefix}.events.raw"
    ACCEPTED = f"{prefix}.events.accepted"
    TRIGGERS = f"{prefix}.events.triggers"
    DEADLETTER = f"{prefix}.events.deadletter"
    OUTCOMES = f"{prefix}.uploads.outcomes"
    ANNOUNCE = f"{prefix}.uploads.announce"
    STATUS = f"{prefix}.uploads.status"
    CONFLICTS = f"{prefix}.identity.conflicts"
    BY_KEY = (
        f"{prefix}.events.by_key"  # internal: records between the stages (streams/kafka/hops.py)
    )
    NAMES = f"{prefix}.uploads.names"  # the filenames accounts have used (tidegate/kafka_import.py)
    TOPIC_CONFIGS = {
        RAW: _DELETE_7D,
        ACCEPTED: _DELETE_7D,
        TRIGGERS: _DELETE_7D,
        DEADLETTER: _DELETE_7D,
        OUTCOMES: _DELETE_7D,
        ANNOUNCE: _DELETE_7D,
        CONFLICTS: _DELETE_7D,
        BY_KEY: _DELETE_7D,
        STATUS: {"cleanup.policy": "compact"},
        NAMES: {"cleanup.policy": "compact"},
    }
    ALL_TOPICS = tuple(TOPIC_CONFIGS)


use_prefix(PREFIX)


def partition_of(key: str, partitions: int) -> int:
    """The partition of a routing key on the internal topics (and, for connectors, of an
    account on the raw topic): CRC-32 of its UTF-8 bytes modulo the partition count. Our
    own choice, not a client's default partitioner, so that every worker and connector
    computes the same partition whatever Kafka client it runs."""
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % partitions


async def raw_partitions(producer: Any) -> int:
    """The raw topic's partition count (aiokafka producer), for
    `routing.arrival_partition`."""
    return len(await producer.partitions_for(RAW))


def bootstrap_of(broker: str) -> str:
    """`kafka://host:port[;kafka://host2:port]` → `host:port[,host2:port]`."""
    parts = [p.strip() for p in broker.replace(";", ",").split(",") if p.strip()]
    return ",".join(p.split("://", 1)[-1] for p in parts)


CHANGELOG_TABLES = (
    "identity",
    "seen",
    "seen_expiry",
    "dedup",
    "dedup_expiry",
    "catalog_types",
    "catalog_props",
    "uploads",
)


def changelog_topics(app_id: str) -> dict[str, Mapping[str, str]]:
    """The Faust table changelogs (compacted), created up front so that every worker sees
    them in its first metadata (Faust otherwise races its own topic creation)."""
    return {f"{app_id}-{t}-changelog": {"cleanup.policy": "compact"} for t in CHANGELOG_TABLES}


async def ensure_topics(
    bootstrap: str, partitions: int = DEFAULT_PARTITIONS, app_id: str | None = None
) -> None:
    """Creates the runtime's topics when missing (existing topics are left as they are)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        configs = dict(TOPIC_CONFIGS)
        if app_id is not None:
            configs.update(changelog_topics(app_id))
        missing = [
            NewTopic(name, partitions, 1, topic_configs=dict(config))
            for name, config in configs.items()
            if name not in existing
        ]
        if missing:
            # a concurrent creator may win the race: fine
            with contextlib.suppress(Exception):
                await admin.create_topics(missing, timeout_ms=30000)
        for _ in range(100):
            described = await admin.describe_topics(list(configs))
            if all(
                t.get("error_code") == 0 and all(p["leader"] >= 0 for p in t["partitions"])
                for t in described
            ):
                return
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


# --------------------------------------------------------------------------- wire format
# A raw record on tidegate.events.raw is one JSON object, keyed by account (UTF-8).

from datetime import UTC, datetime  # noqa: E402

import orjson  # noqa: E402

from streams.core.errors import ErrorCode, Rejection, Stage  # noqa: E402
from streams.core.records import Dialect, RawRecord, Source, SourceKind  # noqa: E402
from streams.core.timeparse import from_iso, to_iso  # noqa: E402
from streams.core.trigger import default_trigger  # noqa: E402


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
        import base64

        doc["payload_b64"] = base64.b64encode(raw.payload).decode("ascii")
    if raw.fields is not None:
        doc["fields"] = raw.fields
    if raw.path_identifier is not None:
        doc["path_identifier"] = raw.path_identifier
    if raw.framing_error is not None:
        err = raw.framing_error
        doc["framing_error"] = {"code": err.code.value, "message": err.message, "stage": err.stage}
    return doc


def decode_raw(
    data: bytes, *, partition: int = 0, offset: int = 0, default_time: datetime | None = None
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
    return raw_from_doc(doc, data, partition=partition, offset=offset, default_time=default_time)


def raw_from_doc(
    doc: dict[str, Any],
    data: bytes = b"",
    *,
    partition: int = 0,
    offset: int = 0,
    default_time: datetime | None = None,
) -> RawRecord:
    """`decode_raw` of an already parsed object (`data`: its bytes, the payload of a
    message that is a canonical record itself)."""
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
            import base64

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
        str(doc.get("file") or RAW),
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
    return RawRecord(
        source,
        received_at,
        payload,
        fields=fields if isinstance(fields, dict) else None,
        path_identifier=doc.get("path_identifier"),
        trigger=bool(trigger) if trigger is not None else default_trigger(kind),
        framing_error=rejection,
    )
