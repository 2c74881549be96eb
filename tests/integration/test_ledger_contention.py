"""The ledger beside the engine: submissions wait for the engine's commit, never refused by it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from connectors.files.reader import read_upload
from streams.core.records import Dialect, RawRecord, Source, SourceKind
from streams.core.settings import SettingsRegistry
from streams.embedded.runtime import EmbeddedRuntime

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[EmbeddedRuntime]:
    rt = EmbeddedRuntime(tmp_path / "data", SettingsRegistry(), read_upload, clock=lambda: NOW)
    await rt.start()
    yield rt
    await rt.stop()


def _records(upload_id: str, n: int) -> list[RawRecord]:
    return [
        RawRecord(
            Source(SourceKind.API, Dialect.NAXAI, "acme", upload_id, "api:/events", None, i + 1),
            NOW,
            orjson.dumps(
                {"name": "viewed", "data": {"n": i}, "idempotencyKey": f"{upload_id}-{i}"}
            ),
            path_identifier=f"{upload_id}-{i}@example.com",
            trigger=True,
        )
        for i in range(n)
    ]


async def test_api_submissions_are_not_refused_while_the_engine_commits(
    runtime: EmbeddedRuntime,
) -> None:
    """A history read in flight (the lag gauge reads the latest 1000 uploads every second)
    and an API submission arrive while the engine holds SQLite's write lock for a commit:
    the submission waits for the commit, then is stored and decided (it was answered
    503 "the ledger is busy" at once: the read's open snapshot kept SQLite from waiting)."""
    await runtime.submit_records("acme", "api:/events", _records("first", 2))
    await runtime.wait("first", timeout=30)

    engine = runtime.engine.conn  # idle now: nothing is queued
    engine.execute("BEGIN IMMEDIATE")  # the engine's commit has begun
    engine.execute("UPDATE sinks SET offset = offset WHERE name = 'accepted'")
    history = asyncio.ensure_future(runtime.list_uploads(None, 1000))
    submission = asyncio.ensure_future(
        runtime.submit_records("acme", "api:/events", _records("second", 3))
    )
    try:
        assert [v.upload_id for v in await history] == ["first"]
    finally:
        engine.execute("COMMIT")  # the commit ends; the submission may take the lock
    receipt = await submission
    assert receipt.upload_id == "second"
    view = await runtime.wait("second", timeout=30)
    assert (view.status, view.counts["accepted"]) == ("success", 3)


async def test_a_submission_cancelled_while_it_waits_for_the_lock_applies_nothing(
    runtime: EmbeddedRuntime,
) -> None:
    """The HTTP API gives up on a slow submission (its submit timeout cancels it) while
    the submission waits for the engine's commit: nothing of it is stored, and the ledger
    takes the next submission (the BEGIN it had sent must not leave a transaction open)."""
    engine = runtime.engine.conn
    engine.execute("BEGIN IMMEDIATE")
    given_up = asyncio.ensure_future(
        runtime.submit_records("acme", "api:/events", _records("given-up", 2))
    )
    try:
        await asyncio.sleep(0)  # it has sent its BEGIN
        given_up.cancel()
    finally:
        engine.execute("COMMIT")
    with pytest.raises(asyncio.CancelledError):
        await given_up
    receipt = await runtime.submit_records("acme", "api:/events", _records("next", 2))
    assert receipt.upload_id == "next"
    assert (await runtime.wait("next", timeout=30)).status == "success"
    assert await runtime.get_upload("given-up") is None


async def test_a_submission_given_up_on_after_its_commit_is_sent_is_stored_and_answered(
    runtime: EmbeddedRuntime,
) -> None:
    """Given up on (cancelled) while SQLite runs its COMMIT: the submission is stored, so
    the caller gets its receipt, not a 503 (it was answered 500, stored and never decided
    until a restart)."""
    committing, go_on = threading.Event(), threading.Event()

    def on_statement(sql: str) -> None:  # in the ledger's writer thread
        if sql == "COMMIT":
            committing.set()
            go_on.wait()

    await runtime.ledger.db.set_trace_callback(on_statement)
    submission = asyncio.ensure_future(
        runtime.submit_records("acme", "api:/events", _records("late", 2))
    )
    try:
        await asyncio.to_thread(committing.wait)
        submission.cancel()
        await asyncio.sleep(0)  # the cancellation is delivered
    finally:
        go_on.set()
    receipt = await submission
    assert receipt.upload_id == "late"
    await runtime.ledger.db.set_trace_callback(None)  # type: ignore[arg-type]  # None turns the trace off
    assert (await runtime.wait("late", timeout=30)).status == "success"
