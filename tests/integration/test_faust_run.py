"""`tidegate run --broker`: the connectors (here the CleverTap HTTP API) hand records to the
Kafka runtime, and the workers decide them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import orjson
import pytest

from streams.kafka.topics import Topics
from tests.integration.faust_helpers import REPO, Workers, read_topic
from tests.integration.run_helpers import http_port, passcode, read_welcome, start_run, stop_run

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_run_with_broker_hands_api_records_to_the_workers(
    kafka_bootstrap: str, tmp_path: Path, prefix: str
) -> None:
    workers = Workers(kafka_bootstrap, tmp_path, prefix)
    # the real clock on both sides: the HTTP API checks timestamps as it receives them
    fixed = workers.env
    workers.env = lambda: {k: v for k, v in fixed().items() if k != "TIDEGATE_NOW"}  # type: ignore[method-assign]
    run = None
    try:
        workers.start(1)
        run = start_run(
            tmp_path / "data",
            "--broker",
            f"kafka://{kafka_bootstrap}",
            cwd=REPO,
            env=workers.env(),
        )
        text = read_welcome(run)
        code, port = passcode(text), http_port(text)
        ts = int(time.time()) - 60
        body = {
            "d": [
                {
                    "identity": "ada@example.com",
                    "ts": ts,
                    "type": "event",
                    "evtName": "Charged",
                    "evtData": {"Amount": 300},
                },
                {"identity": "", "ts": ts, "type": "event", "evtName": "Charged", "evtData": {}},
            ]
        }
        response = httpx.post(
            f"http://127.0.0.1:{port}/1/upload",
            json=body,
            headers={"X-CleverTap-Account-Id": "demo", "X-CleverTap-Passcode": code},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        assert response.json()["processed"] == 1
        deadline = time.monotonic() + 120
        accepted: list[object] = []
        while not accepted and time.monotonic() < deadline:
            accepted = asyncio.run(
                read_topic(kafka_bootstrap, Topics.of(prefix).accepted, quiet=1.0)
            )
        triggers = asyncio.run(read_topic(kafka_bootstrap, Topics.of(prefix).triggers, quiet=1.0))
    except BaseException:
        print(workers.report())
        raise
    finally:
        if run is not None:
            stop_run(run)
        workers.stop()
    [record] = accepted
    assert orjson.loads(record.value)["profile_id"] == "email:ada@example.com"  # type: ignore[attr-defined]
    assert len(triggers) == 1  # real-time API events trigger by default
