"""Notifications on the Kafka runtime: `tidegate run --broker` with a worker, a real SMTP
server and a real HTTP receiver; each finished upload is told once by email and webhook."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from pathlib import Path

import httpx
import orjson
import pytest

from connectors.notifications.signing import verify
from tests.integration.faust_helpers import REPO, Workers
from tests.integration.notify_helpers import (
    Hook,
    hand_over_partial,
    smtp_server,
    tidegate_cli,
    until,
    webhook_server,
)
from tests.integration.run_helpers import read_welcome, start_run

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


async def test_run_with_broker_tells_each_finished_upload_once_by_email_and_webhook(
    kafka_bootstrap: str, tmp_path: Path, prefix: str
) -> None:
    data = tmp_path / "data"
    workers = Workers(kafka_bootstrap, tmp_path, prefix)
    # the real clock on both sides: the connectors stamp what they receive with it
    fixed = workers.env
    workers.env = lambda: {k: v for k, v in fixed().items() if k != "TIDEGATE_NOW"}  # type: ignore[method-assign]
    hook = Hook()
    run: subprocess.Popen[str] | None = None
    async with smtp_server() as (sink, smtp_port), webhook_server(hook) as url:
        # the targets as a user sets them (docs/NOTIFICATIONS.md)
        added = tidegate_cli("accounts", "--data", str(data), "add", "acme")
        api_key = re.search(r"Bearer \.\.\.\)\s+(\S+)", added)
        assert api_key, added
        tidegate_cli(
            *("accounts", "--data", str(data), "set", "acme"),
            *("notify_emails=ops@acme.test", f"webhooks={url}"),
        )
        made = tidegate_cli(
            *("notifications", "secret", "--data", str(data)),
            *("--account", "acme", "--url", url),
        )
        secret = made.split()[-1]
        try:
            workers.start(1)
            env = {
                **workers.env(),
                "TIDEGATE_SMTP_HOST": "127.0.0.1",
                "TIDEGATE_SMTP_PORT": str(smtp_port),
                "TIDEGATE_SMTP_SECURITY": "none",
                "TIDEGATE_NOTIFY_POLL": "0.1",
            }
            run = start_run(
                data,
                *("--broker", f"kafka://{kafka_bootstrap}", "--ftp-port", "-1", "--settle", "0.2"),
                stderr=(tmp_path / "run.log").open("wb"),
                cwd=REPO,
                env=env,
            )
            await asyncio.to_thread(read_welcome, run, 60, "web console")
            events = data / "watch" / "acme" / "events"
            hand_over_partial(events, "drop.jsonl")
            await until(lambda: len(hook.received) >= 1 and len(sink.messages) >= 1, 180)
            # the same name again: refused as a whole, and told so once as well
            hand_over_partial(events, "drop.jsonl")
            await until(lambda: len(hook.received) >= 2 and len(sink.messages) >= 2, 60)
            await asyncio.sleep(3.0)  # thirty polls of the history: nothing more comes
            report = next(orjson.loads(b) for _, b in hook.received if b"partial" in b)
            async with httpx.AsyncClient(timeout=30) as client:
                answer = await client.get(
                    report["errors_url"], headers={"Authorization": f"Bearer {api_key[1]}"}
                )
                # the console explains the rejected line from the collected rows
                base = report["errors_url"].split("/uploads/")[0]
                await client.post(
                    f"{base}/console/signin", data={"account": "acme", "api_key": api_key[1]}
                )
                page = await client.get(
                    f"{base}/console/uploads/{report['upload_id']}", params={"line": "3"}
                )
            assert answer.status_code == 200, answer.text
            by_api = answer.content
        except BaseException:
            print(workers.report())
            print((tmp_path / "run.log").read_text(errors="replace")[-5000:])
            raise
        finally:
            if run is not None:
                run.terminate()
                await asyncio.to_thread(run.wait, 30)
            await asyncio.to_thread(workers.stop)

    assert len(hook.received) == 2 and len(sink.messages) == 2
    now = int(time.time())
    reports = []
    for headers, body in hook.received:
        assert verify(secret, headers["tidegate-signature"], body, now)
        assert not verify(secret, headers["tidegate-signature"], body + b" ", now)
        report = orjson.loads(body)
        assert report["delivery_id"] == headers["tidegate-delivery"]
        reports.append(report)
    finished, refused = sorted(reports, key=lambda r: r["status"] == "refused")
    assert finished["status"] == "partial" and finished["filename"] == "drop.jsonl"
    assert finished["counts"]["accepted"] == 2 and finished["counts"]["rejected"] == 1
    assert refused["status"] == "refused" and refused["upload_id"] is None
    assert refused["fatal"]["code"] == "duplicate_filename"
    subjects = sorted(str(m["Subject"]) for m in sink.messages)
    assert subjects == [
        "Tidegate: drop.jsonl partly imported: some rows were rejected",
        "Tidegate: drop.jsonl refused",
    ]
    assert all(m["To"] == "ops@acme.test" for m in sink.messages)
    # the rejected row, collected from the dead-letter topic, is attached as on the embedded
    # runtime
    partial = next(m for m in sink.messages if "partly" in str(m["Subject"]))
    [attachment] = list(partial.iter_attachments())
    content = attachment.get_content()
    attached = content if isinstance(content, bytes) else content.encode()
    rows = [orjson.loads(line) for line in attached.splitlines()]
    assert [(r["record"]["idempotencyKey"], r["code"]) for r in rows] == [
        ("k3", "invalid_timestamp")
    ]
    assert by_api == attached  # the webhook's errors_url gives the same file
    assert page.status_code == 200
    verdict = page.text.split('id="verdict"')[1].split("</p>")[0]
    assert "<strong>rejected</strong>" in verdict and "invalid_timestamp" in verdict
