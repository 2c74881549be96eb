"""The Faust runtime against a real broker: same outputs as the embedded runtime, and
exactly one outcome per record across a kill -9 of a worker.

Sizes: TIDEGATE_FAUST_EQ_RECORDS (default 50,000) and TIDEGATE_FAUST_CRASH_RECORDS
(default 20,000) make a smaller run possible.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections import Counter
from pathlib import Path

import orjson
import pytest

from connectors.files.reader import read_upload
from streams.core.records import Dialect, make_event_id
from streams.kafka import topics as T
from streams.kafka.outputs import outcome_records
from streams.kafka.producer import wait_statuses
from streams.kafka.topics import Topics
from tests.integration.faust_helpers import (
    ACCOUNTS,
    PARTITIONS,
    Upload,
    Workers,
    _lines,
    _ts,
    embedded_reference,
    header_ids,
    make_uploads,
    outcome_set,
    produce_all,
    produce_in_waves,
    read_topic,
    row_of,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


# --------------------------------------------------------------------------- tests


def test_faust_equals_embedded(kafka_bootstrap: str, tmp_path: Path, prefix: str) -> None:
    equality_run(kafka_bootstrap, tmp_path, prefix, ACCOUNTS)


def test_faust_equals_embedded_with_every_record_in_one_account(
    kafka_bootstrap: str, tmp_path: Path, prefix: str
) -> None:
    # one account's records arrive on every partition (stage 1 runs where they arrive)
    equality_run(kafka_bootstrap, tmp_path, prefix, ("acme",))


def equality_run(
    kafka_bootstrap: str, tmp_path: Path, prefix: str, accounts: tuple[str, ...]
) -> None:
    total = int(os.environ.get("TIDEGATE_FAUST_EQ_RECORDS", "50000"))
    uploads = make_uploads(tmp_path / "files", total, accounts)
    expected, statuses = embedded_reference(uploads, tmp_path / "embedded")
    assert len(expected) >= total * 0.8
    kinds = Counter(o[2] for o in expected)
    assert kinds["duplicate"] and kinds["rejected"] and kinds["accepted"]

    asyncio.run(T.ensure_topics(kafka_bootstrap, Topics.of(prefix), PARTITIONS))
    workers = Workers(kafka_bootstrap, tmp_path, prefix)
    try:
        workers.start(1)
        workers.start(2)
        started = time.monotonic()
        found_status = produce_in_waves(kafka_bootstrap, Topics.of(prefix), uploads, timeout=420)
        elapsed = time.monotonic() - started
        print(
            f"faust: {len(expected)} records in {elapsed:.1f}s "
            f"({len(expected) / elapsed:.0f} ev/s incl. startup)"
        )
        records = asyncio.run(read_topic(kafka_bootstrap, Topics.of(prefix).outcomes))
        accepted = asyncio.run(read_topic(kafka_bootstrap, Topics.of(prefix).accepted, quiet=1.0))
    except BaseException:
        print(workers.report())  # shown with the failure: why the workers did not finish
        raise
    finally:
        workers.stop()
    found, per_id = outcome_set(records)
    assert max(per_id.values()) == 1
    missing = expected - found
    extra = found - expected
    assert not missing and not extra, (sorted(missing)[:5], sorted(extra)[:5])
    assert {k: v["status"] for k, v in found_status.items()} == statuses
    assert max(header_ids(accepted).values()) == 1


def test_faust_crash_kill_9(kafka_bootstrap: str, tmp_path: Path, prefix: str) -> None:
    total = int(os.environ.get("TIDEGATE_FAUST_CRASH_RECORDS", "20000"))
    uploads = make_uploads(tmp_path / "files", total)
    for upload in uploads:
        upload.upload_id = str(uuid.uuid4())
    event_ids = {
        make_event_id(item[1].source)
        for upload in uploads
        for item in read_upload(row_of(upload))
        if isinstance(item, tuple)
    }
    asyncio.run(T.ensure_topics(kafka_bootstrap, Topics.of(prefix), PARTITIONS))
    workers = Workers(kafka_bootstrap, tmp_path, prefix)
    try:
        workers.start(1)
        workers.start(2)

        async def produce_and_kill() -> None:
            task = asyncio.create_task(produce_all(kafka_bootstrap, Topics.of(prefix), uploads))
            from aiokafka import AIOKafkaConsumer

            consumer = AIOKafkaConsumer(
                Topics.of(prefix).outcomes,
                bootstrap_servers=kafka_bootstrap,
                isolation_level="read_uncommitted",
                auto_offset_reset="earliest",
                enable_auto_commit=False,
            )
            await consumer.start()
            seen = 0
            deadline = time.monotonic() + 600
            try:
                while seen < len(event_ids) // 4 and time.monotonic() < deadline:
                    batch = await consumer.getmany(timeout_ms=200)
                    seen += sum(
                        len(outcome_records(orjson.loads(r.value)))
                        for records in batch.values()
                        for r in records
                    )
            finally:
                await consumer.stop()
            workers.kill(1)  # kill -9 mid-stream
            await asyncio.sleep(2)
            workers.start(1)
            await task

        asyncio.run(produce_and_kill())
        asyncio.run(
            wait_statuses(
                kafka_bootstrap, Topics.of(prefix), [u.upload_id for u in uploads], timeout=420
            )
        )

        # after recovery: a repeated idempotency key is still a duplicate, and an
        # email-only record still follows the link made before the crash
        account = ACCOUNTS[0]
        probe = tmp_path / "files" / "probe.jsonl"
        first_zeta = next(u for u in uploads if u.account == account and "zeta-0" in u.filename)
        rows = [
            orjson.loads(x)
            for x in first_zeta.path.read_bytes().splitlines()
            if x.startswith(b'{"user_id"')
        ]
        keyed = next(r for r in rows if "idempotencyKey" in r)
        linked = next(r for r in rows if "email" in r)
        _lines(
            probe,
            [
                {**keyed, "page": "again"},
                {"email": linked["email"], "event_type": "after_crash", "timestamp": _ts(1)},
            ],
        )
        extra = Upload(account, probe.name, probe, Dialect.ZETA, False, str(uuid.uuid4()))
        asyncio.run(produce_all(kafka_bootstrap, Topics.of(prefix), [extra]))
        asyncio.run(
            wait_statuses(kafka_bootstrap, Topics.of(prefix), [extra.upload_id], timeout=300)
        )
        records = asyncio.run(read_topic(kafka_bootstrap, Topics.of(prefix).outcomes))
        accepted = asyncio.run(read_topic(kafka_bootstrap, Topics.of(prefix).accepted, quiet=1.0))
        triggers = asyncio.run(read_topic(kafka_bootstrap, Topics.of(prefix).triggers, quiet=1.0))
    except BaseException:
        print(workers.report())  # shown with the failure: why the workers did not finish
        raise
    finally:
        workers.stop()
    print(f"worker exits on their own: {workers.exits}")
    found, per_id = outcome_set(records)
    assert event_ids <= set(per_id), f"{len(event_ids - set(per_id))} records without outcome"
    assert max(per_id.values()) == 1, [k for k, v in per_id.items() if v > 1][:5]
    assert max(header_ids(accepted).values()) == 1
    if triggers:
        assert max(header_ids(triggers).values()) == 1
    probe_ids = [
        make_event_id(item[1].source)
        for item in read_upload(row_of(extra))
        if isinstance(item, tuple)
    ]
    by_id = {o[0]: o for o in found}
    assert by_id[probe_ids[0]][2] == "duplicate"
    # Every upload was in flight at once, so the email's link may have come from its
    # email-only records (a profile of its own) before the user_id+email record's link
    # request arrived: the probe must see the link as it was before the crash, whichever.
    earlier = {
        profile
        for upload in uploads
        if upload.account == account and "zeta-email" in upload.filename
        for item in read_upload(row_of(upload))
        if isinstance(item, tuple) and orjson.loads(item[1].payload).get("email") == linked["email"]
        for _, profile, *_ in [by_id[make_event_id(item[1].source)]]
    }
    assert len(earlier) == 1, earlier
    assert by_id[probe_ids[1]][1] == next(iter(earlier))


def test_faust_restarted_worker_decides_against_recovered_state(
    kafka_bootstrap: str, tmp_path: Path, prefix: str
) -> None:
    """A worker killed with kill -9 and started again while records wait for it: it must
    read its tables' changelogs before deciding any of them (links and dedup keys of the
    first upload hold for the second), and every upload must complete."""
    files = tmp_path / "files"
    files.mkdir()
    n = 300
    first = files / "links.jsonl"
    _lines(
        first,
        [
            {
                "user_id": f"r{i}",
                "email": f"r{i}@acme.com",
                "event_type": "signup",
                "timestamp": _ts(5),
                "idempotencyKey": f"s{i}",
            }
            for i in range(n)
        ],
    )
    second = files / "after.jsonl"
    rows: list[dict[str, object]] = []
    for i in range(n):
        rows.append({"email": f"r{i}@acme.com", "event_type": "open", "timestamp": _ts(1)})
        rows.append(
            {
                "user_id": f"r{i}",
                "event_type": "signup",
                "timestamp": _ts(5),
                "idempotencyKey": f"s{i}",
            }
        )
    _lines(second, rows)
    one = Upload("acme", first.name, first, Dialect.ZETA, False, str(uuid.uuid4()))
    two = Upload("acme", second.name, second, Dialect.ZETA, False, str(uuid.uuid4()))
    asyncio.run(T.ensure_topics(kafka_bootstrap, Topics.of(prefix), PARTITIONS))
    workers = Workers(kafka_bootstrap, tmp_path, prefix)
    try:
        workers.start(1)
        asyncio.run(produce_all(kafka_bootstrap, Topics.of(prefix), [one]))
        asyncio.run(wait_statuses(kafka_bootstrap, Topics.of(prefix), [one.upload_id], timeout=300))
        workers.kill(1)
        asyncio.run(produce_all(kafka_bootstrap, Topics.of(prefix), [two]))  # waits in events.raw
        workers.start(1)
        statuses = asyncio.run(
            wait_statuses(kafka_bootstrap, Topics.of(prefix), [two.upload_id], timeout=300)
        )
        records = asyncio.run(read_topic(kafka_bootstrap, Topics.of(prefix).outcomes))
    except BaseException:
        print(workers.report())
        raise
    finally:
        workers.stop()
    assert statuses[two.upload_id]["counts"]["records"] == 2 * n
    found, per_id = outcome_set(records)
    assert max(per_id.values()) == 1
    by_id = {o[0]: o for o in found}
    ids = [
        make_event_id(item[1].source)
        for item in read_upload(row_of(two))
        if isinstance(item, tuple)
    ]
    for i in range(n):
        opened, again = by_id[ids[2 * i]], by_id[ids[2 * i + 1]]
        assert opened[1] == f"user_id:r{i}", opened  # the link of the first upload
        assert again[2] == "duplicate", again  # its dedup key
