"""`tidegate run --broker` serves the console too, from the connectors' ledger over Kafka."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.faust_helpers import REPO
from tests.integration.test_run_end_to_end import _read_welcome

pytestmark = [pytest.mark.kafka]


def test_run_with_broker_serves_the_console(kafka_bootstrap: str, tmp_path: Path) -> None:
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
    )
    try:
        text = _read_welcome(run, time.monotonic() + 60)
        passcode = re.search(r"X-CleverTap-Passcode (\S+)", text)
        api_key = re.search(r"Bearer \.\.\.\)\s+(\S+)", text)
        port = re.search(r"http://127\.0\.0\.1:(\d+)/", text)
        assert passcode and api_key and port, text
        base = f"http://127.0.0.1:{port[1]}"
        body = {
            "d": [
                {
                    "identity": "ada@example.com",
                    "ts": int(time.time()) - 60,
                    "type": "event",
                    "evtName": "<script>x</script>",
                    "evtData": {},
                }
            ]
        }
        sent = httpx.post(
            f"{base}/1/upload",
            json=body,
            headers={"X-CleverTap-Account-Id": "demo", "X-CleverTap-Passcode": passcode[1]},
            timeout=30,
        )
        assert sent.status_code == 200, sent.text
        upload_id = sent.headers["X-Tidegate-Upload-Id"]
        with httpx.Client(base_url=base, timeout=30, follow_redirects=True) as client:
            assert client.get("/console/").status_code == 200  # the sign-in form, redirected
            assert "signin" in str(client.get("/console/").url)
            client.post("/console/signin", data={"account": "demo", "api_key": api_key[1]})
            history = client.get("/console/")
            assert history.status_code == 200 and f"row-{upload_id}" in history.text
            with client.stream("GET", "/console/events") as events:
                assert events.headers["content-type"].startswith("text/event-stream")
                seen = ""
                for chunk in events.iter_text():
                    seen += chunk
                    if f"row-{upload_id}" in seen:
                        break
            assert f"row-{upload_id}" in seen
    finally:
        run.terminate()
        run.wait(timeout=30)
