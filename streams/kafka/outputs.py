"""The messages a batch publishes: outputs, hops, dead letters and per-upload outcome tallies."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from streams.core.errors import ErrorCode, Rejection, Stage
from streams.core.fanout import Output, route_outcome
from streams.core.feedback import feedback_header
from streams.core.identity import IdentityConflict
from streams.core.outputs import DUMPS_OPTIONS, deadletter, raw_text
from streams.core.records import Outcome, OutcomeKind, RawRecord, make_event_id
from streams.core.status import UploadCounts, counts_dict
from streams.kafka.routing import account_of, event_id_of, owns_outcome
from streams.kafka.topics import Topics, partition_of
from streams.kafka.wire import Hop, encode_hops

PROCESSING_ERROR = "processing_error"  # a runtime failure, never a rule: see OPERATING_KAFKA.md


@dataclass(slots=True)
class Out:
    """One message to publish."""

    topic: str
    key: bytes
    value: bytes | None  # None: a tombstone (changelogs)
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    partition: int | None = None  # None: the partition of the record being processed


class Tally:
    """The outcomes of one batch of a partition, per upload: one `outcomes` message per
    upload and batch instead of one message per record. Each message carries the upload's
    counts for the batch (what the status agent adds up) and every record's outcome
    `[event_id, outcome, code, triggered, profile_id]` (the ledger: exactly one entry per
    record, in the same transaction as the record's outputs and input offset)."""

    __slots__ = ("topics", "uploads")

    def __init__(self, topics: Topics) -> None:
        self.topics = topics  # where the batch's messages go (its outputs' topics too)
        self.uploads: dict[str, tuple[str, UploadCounts, list[list[Any]]]] = {}

    def add(
        self,
        upload_id: str,
        event_id: str,
        account: str,
        outcome: OutcomeKind,
        code: str | None,
        triggered: bool,
        profile_id: str | None,
    ) -> None:
        entry = self.uploads.get(upload_id)
        if entry is None:
            entry = self.uploads[upload_id] = (account, UploadCounts(), [])
        entry[1].count(outcome, code, triggered)
        entry[2].append([event_id, outcome.value, code, triggered, profile_id])

    def __len__(self) -> int:
        return sum(len(records) for _, _, records in self.uploads.values())

    def outcome_counts(self) -> dict[str, int]:
        """The batch's records per outcome (accepted, duplicate, rejected)."""
        totals = {"accepted": 0, "duplicate": 0, "rejected": 0}
        for _, counts, _ in self.uploads.values():
            totals["accepted"] += counts.accepted
            totals["duplicate"] += counts.duplicate
            totals["rejected"] += counts.rejected
        return totals

    def messages(self, partitions: int) -> list[Out]:
        """One message per upload, to the upload's partition of the outcomes topic (where
        its status is kept), whichever partition decided the records."""
        out = [
            Out(
                self.topics.outcomes,
                upload_id.encode(),
                orjson.dumps(
                    {
                        "type": "outcomes",
                        "upload_id": upload_id,
                        "account": account,
                        "counts": counts_dict(counts),
                        "records": records,
                    }
                ),
                [],
                partition_of(upload_id, partitions),
            )
            for upload_id, (account, counts, records) in self.uploads.items()
        ]
        self.uploads.clear()
        return out


def outcome_records(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The per-record outcomes of one message of the outcomes topic (consumers, tests)."""
    if message.get("type") == "outcome":  # one record per message (before batching)
        return [dict(message)]
    if message.get("type") != "outcomes":
        return []
    upload_id, account = message.get("upload_id"), message.get("account")
    return [
        {
            "type": "outcome",
            "upload_id": upload_id,
            "account": account,
            "event_id": event_id,
            "outcome": outcome,
            "code": code,
            "triggered": triggered,
            "profile_id": profile_id,
        }
        for event_id, outcome, code, triggered, profile_id in message.get("records") or []
    ]


class _OutSink:
    """The Kafka producer's side of `route_outcome`: messages appended to a batch's list."""

    __slots__ = ("out", "topics")

    def __init__(self, out: list[Out], topics: Topics) -> None:
        self.out = out
        self.topics = topics

    def emit(self, output: Output, line: bytes, outcome: Outcome) -> None:
        source = outcome.source
        account = source.account
        headers = [
            ("event_id", outcome.event_id.encode()),
            ("account", account.encode()),
            ("upload_id", source.upload_id.encode()),
        ]
        if output is Output.DEADLETTER:
            headers.append(("code", str(outcome.code or "").encode()))
            self.out.append(Out(self.topics.deadletter, account.encode(), line, headers))
            return
        event = outcome.event
        profile_id = event.profile_id if event else None
        headers.append(("profile_id", (profile_id or "").encode()))
        key = f"{account}\x1f{profile_id}".encode()
        topic = self.topics.accepted if output is Output.ACCEPTED else self.topics.triggers
        self.out.append(Out(topic, key, line, headers))


def outputs_of(outcome: Outcome, tally: Tally, out: list[Out]) -> None:
    """Appends the messages one decided record publishes (`route_outcome`) to `out` and its
    outcome to `tally`."""
    route_outcome(outcome, _OutSink(out, tally.topics))
    source = outcome.source
    event = outcome.event
    tally.add(
        source.upload_id,
        outcome.event_id,
        source.account,
        outcome.kind,
        str(outcome.code) if outcome.code else None,
        bool(event and event.triggered),
        event.profile_id if event else None,
    )


def conflict_output(conflict: IdentityConflict, upload_id: str, topics: Topics) -> Out:
    """The identity-conflicts record of a link that was refused (first link wins)."""
    headers = [
        ("event_id", conflict.event_id.encode()),
        ("account", conflict.account.encode()),
        ("upload_id", upload_id.encode()),
    ]
    body = orjson.dumps(conflict, option=DUMPS_OPTIONS)
    return Out(topics.conflicts, conflict.account.encode(), body, headers)


def hop_messages(forwards: Mapping[int, list[Hop]], topics: Topics) -> list[Out]:
    """One `events.by_key` message per destination partition, carrying the batch's hops
    for that partition in the order they were made (docs/decisions/batched-hops.md)."""
    return [
        Out(topics.by_key, str(target).encode(), encode_hops(hops), [], target)
        for target, hops in forwards.items()
        if hops
    ]


def failure_outputs(
    data: bytes, raw: RawRecord | None, error: BaseException, tally: Tally
) -> list[Out]:
    """A record whose processing raised: a dead letter and a `rejected` outcome (in
    `tally`), so the record still has exactly one outcome and the agent keeps running."""
    message = f"{type(error).__name__}: {error}"
    if raw is not None:
        source = raw.source
        event_id = make_event_id(source)
        record = deadletter(
            event_id,
            source,
            Rejection(ErrorCode.INVALID_PAYLOAD, message, Stage.READ),
            raw,
            raw.payload,
        )
        record["code"] = PROCESSING_ERROR
        record["stage"] = "runtime"
        header = feedback_header(raw)
        if header is not None:
            record["header"] = header
        body = orjson.dumps(record, option=DUMPS_OPTIONS)
        account, upload_id = source.account, source.upload_id
    else:
        event_id = ""
        account, upload_id = "", ""
        body = orjson.dumps(
            {"code": str(ErrorCode.INVALID_PAYLOAD), "stage": "read", "message": message}
            | raw_text(data)
        )
    hdrs = [("code", PROCESSING_ERROR.encode() if raw else b"invalid_payload")]
    if raw is not None:
        tally.add(upload_id, event_id, account, OutcomeKind.REJECTED, PROCESSING_ERROR, False, None)
    return [Out(tally.topics.deadletter, account.encode(), body, hdrs)]


def hop_failure_outputs(hop: Hop, error: BaseException, tally: Tally) -> list[Out]:
    """A stage that raised: a dead letter, and the record's `rejected` outcome when this
    hop still owned it (a failed link request is a lost link, not a second outcome)."""
    if hop.record is not None:
        return failure_outputs(b"", hop.record, error, tally)
    message = f"{type(error).__name__}: {error}"
    event = hop.event
    event_id = event_id_of(hop)
    account = account_of(hop)
    upload_id = event.source.upload_id if event is not None else hop.upload_id
    body = orjson.dumps(
        {
            "event_id": event_id,
            "account": account,
            "stage": "runtime",
            "code": PROCESSING_ERROR,
            "message": message,
            "hop": hop.stage.value,
            "record": event,
        },
        option=DUMPS_OPTIONS,
    )
    if owns_outcome(hop):
        tally.add(upload_id, event_id, account, OutcomeKind.REJECTED, PROCESSING_ERROR, False, None)
    code = [("code", PROCESSING_ERROR.encode())]
    return [Out(tally.topics.deadletter, account.encode(), body, code)]
