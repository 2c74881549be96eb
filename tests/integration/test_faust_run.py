"""`tidegate run --broker`: the connectors (here the CleverTap HTTP API) hand records to the
Kafka runtime, and the workers decide them."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest

from streams.kafka.topics import Topics
from tests.integration.faust_helpers import REPO, Workers, read_topic
from tests.integration.test_run_end_to_end import _read_welcome

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
        run = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tidegate.cli",
                "run",
                "--broker",
                f"kafka://{kafka_bootstrap}",
                "--data",
                str(tmp_path / "data"),
                "--sftp-port",
                "0",
                "--ftp-port",
                "0",
                "--http-port",
                "0",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=REPO,
            env=workers.env(),
        )
        text = _read_welcome(run, time.monotonic() + 60)
        passcode = re.search(r"X-CleverTap-Passcode (\S+)", text)
        port = re.search(r"http://127\.0\.0\.1:(\d+)/", text)
        assert passcode and port, text
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
            f"http://127.0.0.1:{port[1]}/1/upload",
            json=body,
            headers={"X-CleverTap-Account-Id": "demo", "X-CleverTap-Passcode": passcode[1]},
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
            run.terminate()
            run.wait(timeout=30)
        workers.stop()
    [record] = accepted
    assert orjson.loads(record.value)["profile_id"] == "email:ada@example.com"  # type: ignore[attr-defined]
    assert len(triggers) == 1  # real-time API events trigger by default
