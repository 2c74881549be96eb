"""The Faust agents: decide every raw record, count outcomes per upload, publish statuses.

No rule lives here: every decision is `streams.core` (`normalize`, `decide`,
`decide_rejection`, `expire_state`, `final_status`); this module only moves bytes between
topics and tables. Keying (docs/OPERATING_KAFKA.md): raw records are keyed by account, so
all state of an account (identity links, dedup keys, catalog, seen ids) lives in one
partition and the core runs against it exactly as in the embedded runtime.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from streams import topics as T
from streams.core.decide import decide, decide_rejection, expire_state
from streams.core.errors import ErrorCode, Rejection, Stage
from streams.core.normalize import normalize
from streams.core.outputs import DUMPS_OPTIONS, deadletter, dump_event, dump_outcome, raw_text
from streams.core.records import Outcome, OutcomeKind, RawRecord, make_event_id
from streams.core.settings import AccountSettings
from streams.core.status import UploadCounts, final_status
from streams.core.timeparse import to_iso
from streams.embedded.engine import counts_dict, counts_from
from streams.faust_store import FaustStore

log = logging.getLogger("tidegate.agents")

Clock = Callable[[], datetime]
SettingsFor = Callable[[str], AccountSettings]

EXPIRE_EVERY_SECONDS = 60.0
PROCESSING_ERROR = "processing_error"  # a runtime failure, never a rule: see OPERATING_KAFKA.md


@dataclass(slots=True)
class Out:
    """One message to publish."""

    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def _outcome_message(
    upload_id: str,
    event_id: str,
    account: str,
    outcome: str,
    code: str | None,
    triggered: bool,
    profile_id: str | None,
) -> Out:
    value = orjson.dumps(
        {
            "type": "outcome",
            "upload_id": upload_id,
            "event_id": event_id,
            "account": account,
            "outcome": outcome,
            "code": code,
            "triggered": triggered,
            "profile_id": profile_id,
        }
    )
    return Out(T.OUTCOMES, upload_id.encode(), value)


def outputs_of(outcome: Outcome, conflicts: list[bytes]) -> list[Out]:
    """The messages one decided record publishes (accepted/triggers/deadletter + outcome)."""
    source = outcome.source
    event = outcome.event
    account = source.account
    out: list[Out] = []
    triggered = bool(event and event.triggered)
    profile_id = event.profile_id if event else None
    headers = [
        ("event_id", outcome.event_id.encode()),
        ("account", account.encode()),
        ("upload_id", source.upload_id.encode()),
    ]
    if outcome.kind is OutcomeKind.ACCEPTED and event is not None:
        line = dump_event(event)
        key = f"{account}\x1f{profile_id}".encode()
        hdrs = [*headers, ("profile_id", (profile_id or "").encode())]
        out.append(Out(T.ACCEPTED, key, line, hdrs))
        if triggered:
            out.append(Out(T.TRIGGERS, key, line, hdrs))
    elif outcome.kind is OutcomeKind.REJECTED:
        hdrs = [*headers, ("code", str(outcome.code or "").encode())]
        out.append(Out(T.DEADLETTER, account.encode(), dump_outcome(outcome), hdrs))
    for conflict in conflicts:
        out.append(Out(T.CONFLICTS, account.encode(), conflict, headers))
    out.append(
        _outcome_message(
            source.upload_id,
            outcome.event_id,
            account,
            outcome.kind.value,
            str(outcome.code) if outcome.code else None,
            triggered,
            profile_id,
        )
    )
    return out


def decide_raw(
    raw: RawRecord, store: FaustStore, now: datetime, settings: AccountSettings, shard: str
) -> list[Out]:
    """normalize → decide (identity, catalog, dedup, trigger), all in the core."""
    result = normalize(raw)
    conflicts: list[bytes] = []
    outcome: Outcome | None
    if isinstance(result, Rejection):
        outcome = decide_rejection(
            make_event_id(raw.source), raw.source, result, store, now, raw=raw.payload, shard=shard
        )
    else:
        decision = decide(result, store, now, settings, raw=raw.payload, shard=shard)
        outcome = decision.outcome if decision else None
        if decision is not None:
            conflicts = [orjson.dumps(c, option=DUMPS_OPTIONS) for c in decision.conflicts]
    if outcome is None:
        return []  # a redelivery: decided once already, nothing is published again
    return outputs_of(outcome, conflicts)


def failure_outputs(data: bytes, raw: RawRecord | None, error: BaseException) -> list[Out]:
    """A record whose processing raised: a dead letter and a `rejected` outcome, so the
    record still has exactly one outcome and the agent keeps running."""
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
    out = [Out(T.DEADLETTER, account.encode(), body, hdrs)]
    if raw is not None:
        out.append(
            _outcome_message(
                upload_id, event_id, account, "rejected", PROCESSING_ERROR, False, None
            )
        )
    return out


# --------------------------------------------------------------------------- upload status


def empty_upload() -> dict[str, Any]:
    return {"counts": counts_dict(UploadCounts()), "total": None, "final": None}


def apply_upload_message(
    state: dict[str, Any] | None, message: Mapping[str, Any], now: datetime
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Folds one outcome or announcement into an upload's state; returns the new state and
    the final status document once every announced record has its outcome."""
    state = dict(state) if state else empty_upload()
    if state.get("final"):
        return state, None
    if message.get("type") == "announce":
        for key in ("total", "account", "filename", "kind", "dialect", "received_at", "trigger"):
            if key in message:
                state[key] = message[key]
        state["warnings"] = list(message.get("warnings") or [])
        state["failed_members"] = int(message.get("failed_members") or 0)
        state["fatal"] = message.get("fatal")
    else:
        counts = counts_from(state["counts"])
        counts.count(
            OutcomeKind(message["outcome"]), message.get("code"), bool(message.get("triggered"))
        )
        state["counts"] = counts_dict(counts)
    total = state.get("total")
    if total is None or state["counts"]["records"] < int(total):
        return state, None
    counts = counts_from(state["counts"])
    counts.failed_members = int(state.get("failed_members") or 0)
    fatal_doc = state.get("fatal")
    fatal = (
        Rejection(ErrorCode(fatal_doc["code"]), fatal_doc["message"], Stage.UPLOAD)
        if fatal_doc
        else None
    )
    status = final_status(counts, fatal)
    state["final"] = status.value
    doc = {
        "upload_id": message["upload_id"],
        "account": state.get("account"),
        "filename": state.get("filename"),
        "kind": state.get("kind", "file"),
        "dialect": state.get("dialect"),
        "status": status.value,
        "received_at": state.get("received_at"),
        "finished_at": to_iso(now),
        "trigger": bool(state.get("trigger")),
        "counts": state["counts"],
        "warnings": state.get("warnings") or [],
        "fatal": fatal_doc,
    }
    return state, doc


# --------------------------------------------------------------------------- registration


def register(
    app: Any,
    tables: Mapping[str, MutableMapping[str, Any]],
    uploads: MutableMapping[str, Any],
    settings_for: SettingsFor,
    clock: Clock,
) -> dict[str, Any]:
    """Defines the agents and the expiry timer on `app`."""
    raw_topic = app.topic(T.RAW, key_type=bytes, value_type=bytes, value_serializer="raw")
    outcomes_topic = app.topic(T.OUTCOMES, key_type=bytes, value_type=bytes, value_serializer="raw")
    announce_topic = app.topic(T.ANNOUNCE, key_type=bytes, value_type=bytes, value_serializer="raw")
    out_topics = {
        name: app.topic(name, key_type=bytes, value_type=bytes, value_serializer="raw")
        for name in (T.ACCEPTED, T.TRIGGERS, T.DEADLETTER, T.CONFLICTS, T.STATUS)
    }
    out_topics[T.OUTCOMES] = outcomes_topic
    store = FaustStore(tables)
    last_expired: dict[int, float] = {}
    guard = asyncio.Lock()
    installed: list[bool] = []

    def install_commit_guard() -> None:
        """Makes one record's work (table writes, outputs, ack) and Faust's transactional
        commit mutually exclusive, and flushes the changelog buffer into the transaction
        before committing. Without this a commit can carry the outputs of a record whose
        offset is not acked yet, or leave its `seen` write for the next transaction — both
        give a second outcome after a crash (found by test_faust_crash_kill_9)."""
        if installed or not app.in_transaction:
            return
        installed.append(True)
        transactions = app.consumer.transactions
        original = transactions.commit

        async def guarded_commit(offsets: Any, start_new_transaction: bool = True) -> bool:
            async with guard:
                await app.producer.buffer.flush()
                return bool(
                    await original(offsets, start_new_transaction=start_new_transaction)
                )

        transactions.commit = guarded_commit

    def _log_failure(fut: Any) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            log.error("send failed: %r", fut.exception())

    async def publish(outs: list[Out], partition: int) -> None:
        """Every output goes to the SAME partition number as its input record.

        Under exactly_once Faust runs one transactional producer per (topic group,
        partition) and commits the input offsets of partition p in the transaction
        `<app>-<group>-p`; it only routes a send into a transaction when the target topic
        is one the app consumes, so outputs would otherwise be sent outside any
        transaction. Sending each output to partition p in p's own transaction makes the
        outputs, the table changelog writes and the input offset commit one atomic unit.
        """
        if app.in_transaction:
            group = app.assignor.group_for_topic(T.RAW)
            tid = f"{app.conf.id}-{group}-{partition}"
            producer = app.consumer.transactions.producer
            for o in outs:
                fut = await producer.send(
                    o.topic, o.key, o.value, partition, None, o.headers, transactional_id=tid
                )
                fut.add_done_callback(_log_failure)
            return
        for o in outs:
            await out_topics[o.topic].send(
                key=o.key, value=o.value, headers=o.headers, partition=partition
            )

    @app.agent(raw_topic, concurrency=1, name="tidegate.decide")  # type: ignore[untyped-decorator]
    async def decide_agent(stream: Any) -> None:
        install_commit_guard()
        async for event in stream.events():
            async with guard:
                await _decide_one(event)
                event.ack()

    async def _decide_one(event: Any) -> None:
        if True:
            partition = event.message.partition
            data: bytes = event.value
            raw: RawRecord | None = None
            outs: list[Out]
            try:
                raw = T.decode_raw(
                    data, partition=partition, offset=event.message.offset, default_time=clock()
                )
                outs = decide_raw(
                    raw, store, clock(), settings_for(raw.source.account), str(partition)
                )
                # Expiry runs inside stream iteration (Faust tables cannot be written from a
                # timer, faust #385; a timer that sends "tick" records would deadlock under
                # exactly_once, the tick staying invisible until its own transaction commits).
                mono = time.monotonic()
                if mono - last_expired.get(partition, 0.0) >= EXPIRE_EVERY_SECONDS:
                    last_expired[partition] = mono
                    expire_state(store, clock(), shard=str(partition), max_buckets=64)
            except Exception as error:  # never let an exception leave the agent
                log.error("record failed: %s\n%s", error, traceback.format_exc())
                try:
                    outs = failure_outputs(data, raw, error)
                except Exception:  # pragma: no cover - last resort
                    log.exception("could not even dead-letter a record")
                    outs = []
            try:
                await publish(outs, partition)
            except Exception:
                log.exception("publishing outputs failed")
                raise

    @app.agent(announce_topic, concurrency=1, name="tidegate.announce")  # type: ignore[untyped-decorator]
    async def announce_agent(stream: Any) -> None:
        install_commit_guard()
        async for event in stream.events():
            async with guard:
                await _announce_one(event)
                event.ack()

    async def _announce_one(event: Any) -> None:
        if True:
            try:
                doc = orjson.loads(event.value)
                # keyed by account like the raw records: same partition as their outcomes
                await publish(
                    [
                        Out(
                            T.OUTCOMES,
                            str(doc["upload_id"]).encode(),
                            orjson.dumps({**doc, "type": "announce"}),
                        )
                    ],
                    event.message.partition,
                )
            except Exception:
                log.exception("bad announcement %r", event.value[:200])

    @app.agent(outcomes_topic, concurrency=1, name="tidegate.status")  # type: ignore[untyped-decorator]
    async def status_agent(stream: Any) -> None:
        install_commit_guard()
        async for event in stream.events():
            async with guard:
                await _status_one(event)
                event.ack()

    async def _status_one(event: Any) -> None:
        if True:
            try:
                message = orjson.loads(event.value)
                upload_id = str(message["upload_id"])
                if not upload_id:
                    return
                state, final = apply_upload_message(uploads.get(upload_id), message, clock())
                uploads[upload_id] = state
                if final is not None:
                    status = Out(T.STATUS, upload_id.encode(), orjson.dumps(final))
                    await publish([status], event.message.partition)
            except Exception:
                log.exception("bad outcome message %r", event.value[:200])

    return {
        "decide": decide_agent,
        "announce": announce_agent,
        "status": status_agent,
        "now": lambda: datetime.now(UTC),
    }
