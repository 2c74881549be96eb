"""`tidegate import --broker`: an upload submitted to the Kafka runtime waits for its final
status and prints the same report as the embedded runtime gives for the same file."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.kafka.topics import Topics
from tests.integration.faust_helpers import (
    NOW,
    NOW_ISO,
    PARTITIONS,
    REPO,
    SEEDS,
    Workers,
    _lines,
    _ts,
    header_ids,
    read_topic,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _import(
    path: Path, *extra: str, env: dict[str, str] | None = None, exit_codes: tuple[int, ...] = (0, 1)
) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tidegate.cli",
            "import",
            str(path),
            "--account",
            "acme",
            "--now",
            NOW_ISO,
            "--json",
            *extra,
        ],
        capture_output=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )
    assert done.returncode in exit_codes, done.stderr.decode()[-2000:]
    report: dict[str, Any] = orjson.loads(done.stdout)
    return report


def test_import_via_broker_reports_as_the_embedded_runtime(
    kafka_bootstrap: str, tmp_path: Path, prefix: str
) -> None:
    zeta = tmp_path / "mixed.jsonl"
    _lines(
        zeta,
        [
            {
                "user_id": "1",
                "email": "a@acme.com",
                "event_type": "buy",
                "timestamp": _ts(5),
                "idempotencyKey": "k1",
            },
            {"user_id": "1", "event_type": "buy", "timestamp": _ts(4), "idempotencyKey": "k1"},
            b"{not json",
            {"event_type": "orphan", "timestamp": _ts(3)},
            {"user_id": "2", "event_type": "view", "timestamp": "2019-01-01T00:00:00Z"},
            {"user_id": "3", "event_type": "view", "timestamp": _ts(1)},
        ],
    )
    vero = tmp_path / "checkouts.csv"
    seed_header = (SEEDS / "vero_checkouts.csv").read_bytes().splitlines()[0]
    moments = [(NOW - timedelta(minutes=m)).strftime("%Y-%m-%d %H:%M+00") for m in (90, 30)]
    vero.write_bytes(
        seed_header
        + b"\n"
        + b"".join(f"v@acme.com, Completes checkout, {m}, shirt\n".encode() for m in moments)
        + b"v@acme.com, Completes checkout, 2019-01-02 13:05+10, hat\n"
    )
    workers = Workers(kafka_bootstrap, tmp_path, prefix)
    try:
        workers.start(1)
        env = workers.env()
        for path, flags in ((zeta, ["--trigger"]), (vero, [])):
            embedded = _import(path, *flags, "--data", str(tmp_path / "embedded"))
            kafka = _import(path, *flags, "--broker", f"kafka://{kafka_bootstrap}", env=env)
            for field in ("status", "counts"):
                assert kafka[field] == embedded[field], (path.name, field, kafka, embedded)
            counts = kafka["counts"]
            assert counts["accepted"] and counts["rejected"], counts  # not a trivial file
            assert bool(counts["triggered"]) == bool(flags), counts
    except BaseException:
        print(workers.report())
        raise
    finally:
        workers.stop()


def _raw_end(bootstrap: str, topics: Topics) -> int:
    """How many records the raw topic holds (all partitions)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def count() -> int:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        await consumer.start()
        try:
            tps = [TopicPartition(topics.raw, p) for p in range(PARTITIONS)]
            consumer.assign(tps)
            return sum((await consumer.end_offsets(tps)).values())
        finally:
            await consumer.stop()

    return asyncio.run(count())


def test_import_via_broker_refuses_a_filename_the_account_used(
    kafka_bootstrap: str, tmp_path: Path, prefix: str
) -> None:
    """duplicate_filename, as on the embedded runtime: a second import of a name whose
    upload finished is refused before any record is produced; another account may use it."""
    path = tmp_path / "march.jsonl"
    _lines(
        path, [{"user_id": f"u{n}", "event_type": "view", "timestamp": _ts(2)} for n in range(5)]
    )
    broker = ("--broker", f"kafka://{kafka_bootstrap}")
    workers = Workers(kafka_bootstrap, tmp_path, prefix)
    try:
        workers.start(1)
        env = workers.env()
        first = _import(path, *broker, env=env)
        assert first["status"] == "success" and first["counts"]["accepted"] == 5, first
        produced = _raw_end(kafka_bootstrap, Topics.of(prefix))
        again = _import(path, *broker, env=env, exit_codes=(2,))
        assert again["status"] == "fail", again
        assert again["fatal"]["code"] == "duplicate_filename", again
        assert (
            _raw_end(kafka_bootstrap, Topics.of(prefix)) == produced
        )  # nothing produced for the refused one
        embedded = tmp_path / "embedded"
        _import(path, "--data", str(embedded))
        refused_embedded = _import(path, "--data", str(embedded), exit_codes=(2,))
        assert refused_embedded == again  # the same report
        other = _import(path, *broker, "--account", "globex", env=env)
        assert other["status"] == "success" and other["counts"]["accepted"] == 5, other
    except BaseException:
        print(workers.report())
        raise
    finally:
        workers.stop()


def test_import_via_broker_resumes_an_unfinished_upload_of_the_name(
    kafka_bootstrap: str, tmp_path: Path, prefix: str
) -> None:
    """A name claimed by an upload that never finished (its import was interrupted after
    some records) is imported again under that upload: the records decided before are
    dropped as redeliveries, and the upload completes once with the file's counts."""
    from datetime import UTC, datetime

    from streams.core.records import SourceKind
    from streams.core.upload import UploadRow
    from streams.kafka.producer import new_producer, write_claim

    path = tmp_path / "april.jsonl"
    rows = [
        {"user_id": f"u{n}", "event_type": "view", "timestamp": _ts(2), "idempotencyKey": f"a{n}"}
        for n in range(6)
    ]
    _lines(path, rows)
    broker = ("--broker", f"kafka://{kafka_bootstrap}")
    workers = Workers(kafka_bootstrap, tmp_path, prefix)
    try:
        workers.start(1)
        env = workers.env()
        # an interrupted import: the claim and the first three records, no announcement
        head = tmp_path / "head" / "april.jsonl"
        head.parent.mkdir()
        _lines(head, rows[:3])
        interrupted = UploadRow(
            "11111111-2222-4333-8444-555555555555",
            "acme",
            "april.jsonl",
            SourceKind.FILE,
            None,
            str(head),
            None,
            datetime.fromisoformat(NOW_ISO.replace("Z", "+00:00")).astimezone(UTC),
        )

        async def interrupt() -> None:
            from connectors.files.reader import read_upload
            from streams.kafka import topics as T
            from streams.kafka.producer import produce_upload

            await T.ensure_topics(kafka_bootstrap, Topics.of(prefix), 8)
            producer = new_producer(kafka_bootstrap)
            await producer.start()
            try:
                await write_claim(producer, Topics.of(prefix), interrupted)
                announcement = await produce_upload(
                    producer, Topics.of(prefix), interrupted, read_upload(interrupted)
                )
            finally:
                await producer.stop()
            assert announcement["total"] == 3

        asyncio.run(interrupt())
        report = _import(path, *broker, env=env)
        assert report["upload_id"] == interrupted.upload_id, report
        assert report["status"] == "success", report
        assert report["counts"]["records"] == 6 and report["counts"]["accepted"] == 6, report
        assert report["counts"]["duplicate"] == 0, report

        accepted = header_ids(asyncio.run(read_topic(kafka_bootstrap, Topics.of(prefix).accepted)))
        assert len(accepted) == 6 and set(accepted.values()) == {1}, accepted  # none twice
    except BaseException:
        print(workers.report())
        raise
    finally:
        workers.stop()
