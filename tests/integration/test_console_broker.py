"""`tidegate run --broker` serves the console too, from the connectors' ledger over Kafka."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.integration import run_helpers as welcome
from tests.integration.run_helpers import REPO, read_welcome, start_run, stop_run

pytestmark = [pytest.mark.kafka]


def test_run_with_broker_serves_the_console(kafka_bootstrap: str, tmp_path: Path) -> None:
    run = start_run(tmp_path / "data", "--broker", f"kafka://{kafka_bootstrap}", cwd=REPO)
    try:
        text = read_welcome(run)
        code, key = welcome.passcode(text), welcome.api_key(text)
        base = f"http://127.0.0.1:{welcome.http_port(text)}"
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
            headers={"X-CleverTap-Account-Id": "demo", "X-CleverTap-Passcode": code},
            timeout=30,
        )
        assert sent.status_code == 200, sent.text
        upload_id = sent.headers["X-Tidegate-Upload-Id"]
        with httpx.Client(base_url=base, timeout=30, follow_redirects=True) as client:
            assert client.get("/console/").status_code == 200  # the sign-in form, redirected
            assert "signin" in str(client.get("/console/").url)
            client.post("/console/signin", data={"account": "demo", "api_key": key})
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
        stop_run(run)
