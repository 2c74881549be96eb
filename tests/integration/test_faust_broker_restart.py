"""The Faust runtime across a broker restart: the broker is killed (SIGKILL) while two
workers are mid-stream and started again; every record still gets exactly one outcome.

The test runs its own single-node broker (scripts/kafka on a free port), so the shared
test broker is never restarted under other tests. Size: TIDEGATE_FAUST_RESTART_RECORDS
(default 20,000).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from connectors.files.reader import read_upload
from streams.core.records import make_event_id
from streams.kafka import topics as T
from streams.kafka.outputs import outcome_records
from streams.kafka.producer import wait_statuses
from streams.kafka.topics import Topics
from tests.integration.conftest import KAFKA_SCRIPT, broker_unavailable
from tests.integration.faust_helpers import (
    PARTITIONS,
    Workers,
    header_ids,
    make_uploads,
    outcome_set,
    produce_all,
    read_topic,
    row_of,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _free_port_pair() -> int:
    """A port p with p and p + 1 (the controller) both free."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port >= 65535:
            continue
        with socket.socket() as second:
            try:
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return int(port)
    raise RuntimeError("no free port pair")


class Broker:
    """A dedicated broker of scripts/kafka on its own port and data directory."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.bootstrap = f"127.0.0.1:{port}"
        self.env = {**os.environ, "KAFKA_PORT": str(port), "KAFKA_HEAP_OPTS": "-Xmx512m -Xms512m"}

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(KAFKA_SCRIPT), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    def start(self) -> None:
        done = self.run("start")
        if done.returncode != 0:
            raise RuntimeError(f"broker on {self.port} did not start:\n{done.stderr[-2000:]}")

    def kill(self) -> None:
        """SIGKILL: no controlled shutdown, the log is recovered at the next start."""
        done = subprocess.run(
            [str(KAFKA_SCRIPT), "stop"],
            env={**self.env, "KAFKA_STOP_TIMEOUT": "0"},
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        assert done.returncode == 0, done.stderr


@pytest.fixture
def own_broker(kafka_bootstrap: str) -> Iterator[Broker]:
    # kafka_bootstrap first: the shared broker's lease has resolved the jars
    if not os.access(KAFKA_SCRIPT, os.X_OK):
        broker_unavailable(f"{KAFKA_SCRIPT} is missing")
    broker = Broker(_free_port_pair())
    try:
        broker.start()
    except RuntimeError as error:
        broker_unavailable(str(error))
    try:
        yield broker
    finally:
        broker.run("reset", timeout=120)  # stop and delete this port's data


@pytest.fixture
def restart_prefix() -> str:
    return f"tgrestart.{uuid.uuid4().hex[:8]}"  # the broker is deleted: no cleanup needed


async def _wait_outcomes(bootstrap: str, topics: Topics, wanted: int, timeout: float) -> int:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topics.outcomes,
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen = 0
    deadline = time.monotonic() + timeout
    try:
        while seen < wanted and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            seen += sum(
                len(outcome_records(orjson.loads(r.value)))
                for records in batch.values()
                for r in records
            )
    finally:
        await consumer.stop()
    return seen


def test_faust_broker_restart(own_broker: Broker, tmp_path: Path, restart_prefix: str) -> None:
    total = int(os.environ.get("TIDEGATE_FAUST_RESTART_RECORDS", "20000"))
    bootstrap = own_broker.bootstrap
    uploads = make_uploads(tmp_path / "files", total)
    for upload in uploads:
        upload.upload_id = str(uuid.uuid4())
    event_ids = {
        make_event_id(item[1].source)
        for upload in uploads
        for item in read_upload(row_of(upload))
        if isinstance(item, tuple)
    }
    asyncio.run(T.ensure_topics(bootstrap, Topics.of(restart_prefix), PARTITIONS))
    workers = Workers(bootstrap, tmp_path, restart_prefix)
    try:
        workers.start(1)
        workers.start(2)
        asyncio.run(
            produce_all(bootstrap, Topics.of(restart_prefix), uploads)
        )  # all in raw before the restart
        seen = asyncio.run(
            _wait_outcomes(bootstrap, Topics.of(restart_prefix), len(event_ids) // 4, timeout=300)
        )
        assert seen >= len(event_ids) // 4, f"only {seen} outcomes before the restart"
        own_broker.kill()  # mid-stream: workers keep their state, the broker loses its page cache
        time.sleep(3)
        own_broker.start()
        asyncio.run(
            wait_statuses(
                bootstrap, Topics.of(restart_prefix), [u.upload_id for u in uploads], timeout=420
            )
        )
        records = asyncio.run(read_topic(bootstrap, Topics.of(restart_prefix).outcomes))
        accepted = asyncio.run(read_topic(bootstrap, Topics.of(restart_prefix).accepted, quiet=1.0))
        triggers = asyncio.run(read_topic(bootstrap, Topics.of(restart_prefix).triggers, quiet=1.0))
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
    assert triggers and max(header_ids(triggers).values()) == 1
    kinds = {outcome for _, _, outcome, _, _ in found}
    assert kinds == {"accepted", "duplicate", "rejected"}
