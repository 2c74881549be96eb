"""Notifications of `tidegate import --broker`: a real SMTP server and a real HTTP receiver
are told of the upload as of any upload of `run --broker`, through the data directory's
outbox; a delivery the import could not make is retried by `run --broker` with its id."""

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

from connectors.notifications.signing import verify
from streams.embedded.ledger import Ledger
from tests.integration.faust_helpers import NOW_ISO, REPO, Workers, _lines, _ts
from tests.integration.notify_helpers import (
    Hook,
    free_port,
    smtp_server,
    tidegate_cli,
    until,
    webhook_server,
)
from tests.integration.run_helpers import read_welcome, start_run

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


async def test_import_with_broker_is_told_and_run_retries_what_failed(
    kafka_bootstrap: str, tmp_path: Path, prefix: str
) -> None:
    data = tmp_path / "data"
    path = tmp_path / "march.jsonl"
    _lines(
        path,
        [
            {"user_id": "u1", "event_type": "view", "timestamp": _ts(5), "idempotencyKey": "k1"},
            {"user_id": "u2", "event_type": "view", "timestamp": "soon", "idempotencyKey": "k2"},
        ],
    )
    workers = Workers(kafka_bootstrap, tmp_path, prefix)
    hook = Hook(answers=[500])  # the import's attempt fails; `run` makes the retry
    http = free_port()
    run: subprocess.Popen[str] | None = None
    async with smtp_server() as (sink, smtp_port), webhook_server(hook) as url:
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
        env = {
            **workers.env(),
            "TIDEGATE_SMTP_HOST": "127.0.0.1",
            "TIDEGATE_SMTP_PORT": str(smtp_port),
            "TIDEGATE_SMTP_SECURITY": "none",
            "TIDEGATE_NOTIFY_POLL": "0.1",
            "TIDEGATE_CONSOLE_URL": f"http://127.0.0.1:{http}",  # where `run` will serve
        }
        try:
            workers.start(1)
            imported = await asyncio.to_thread(
                subprocess.run,
                [
                    *(sys.executable, "-m", "tidegate.cli", "import", str(path)),
                    *("--account", "acme", "--now", NOW_ISO, "--data", str(data)),
                    *("--broker", f"kafka://{kafka_bootstrap}"),
                ],
                capture_output=True,
                text=True,
                cwd=REPO,
                env=env,
                timeout=300,
            )
            assert imported.returncode == 1, imported.stderr[-3000:]  # partial
            assert "told email:ops@acme.test" in imported.stderr, imported.stderr
            assert f"not yet told webhook:{url}: WebhookRefused: HTTP 500" in imported.stderr
            # told before the import exited: the email, and the webhook's first attempt
            assert len(sink.messages) == 1 and len(hook.received) == 1
            listed = orjson.loads(
                tidegate_cli(
                    *("notifications", "list", "--data", str(data), "--account", "acme", "--json")
                )
            )
            states = {d["target"]: (d["state"], d["attempts"]) for d in listed}
            assert states == {
                "email:ops@acme.test": ("delivered", 1),
                f"webhook:{url}": ("pending", 1),
            }

            # the data directory's `run --broker` makes the retry, with the same delivery id
            run = start_run(
                data,
                *("--broker", f"kafka://{kafka_bootstrap}", "--ftp-port", "-1"),
                *("--http-port", str(http)),
                stderr=(tmp_path / "run.log").open("wb"),
                cwd=REPO,
                env=env,
            )
            await asyncio.to_thread(read_welcome, run, 60, "web console")
            await until(lambda: len(hook.received) >= 2, 60)
            report = orjson.loads(hook.received[1][1])
            async with httpx.AsyncClient(timeout=30) as client:
                answer = await client.get(
                    report["errors_url"], headers={"Authorization": f"Bearer {api_key[1]}"}
                )
            assert answer.status_code == 200, answer.text
        except BaseException:
            print(workers.report())
            log = tmp_path / "run.log"
            print(log.read_text(errors="replace")[-5000:] if log.exists() else "")
            raise
        finally:
            if run is not None:
                run.terminate()
                await asyncio.to_thread(run.wait, 30)
            await asyncio.to_thread(workers.stop)

    first, retry = hook.received
    assert first[0]["tidegate-delivery"] == retry[0]["tidegate-delivery"]
    assert orjson.loads(first[1]) == report
    assert verify(secret, retry[0]["tidegate-signature"], retry[1], int(time.time()))
    assert report["status"] == "partial" and report["filename"] == "march.jsonl"
    assert report["counts"]["accepted"] == 1 and report["counts"]["rejected"] == 1
    assert report["errors_url"] == f"http://127.0.0.1:{http}/uploads/{report['upload_id']}/errors"
    [mail] = sink.messages
    assert str(mail["Subject"]) == "Tidegate: march.jsonl partly imported: some rows were rejected"
    # the rejected row, collected from the dead-letter topic by the import, is attached, and
    # the same file is what `run --broker` serves at `errors_url` (the upload is in its history)
    [attachment] = list(mail.iter_attachments())
    content = attachment.get_content()
    attached = content if isinstance(content, bytes) else content.encode()
    rows = [orjson.loads(line) for line in attached.splitlines()]
    assert [(r["record"]["idempotencyKey"], r["code"]) for r in rows] == [
        ("k2", "invalid_timestamp")
    ]
    assert answer.content == attached
    ledger = Ledger(data / "connectors.db")
    await ledger.open()
    try:
        view = await ledger.get_upload(report["upload_id"])
    finally:
        await ledger.close()
    assert view is not None and view.status == "partial" and view.kind == "file"


def test_import_with_broker_of_an_account_without_targets_writes_no_data_directory(
    kafka_bootstrap: str, tmp_path: Path, prefix: str
) -> None:
    """Nothing to tell: the import does not create a data directory (it never needed one)."""
    path = tmp_path / "april.jsonl"
    _lines(path, [{"user_id": "u1", "event_type": "view", "timestamp": _ts(5)}])
    data = tmp_path / "data"
    workers = Workers(kafka_bootstrap, tmp_path, prefix)
    try:
        workers.start(1)
        imported = subprocess.run(
            [
                *(sys.executable, "-m", "tidegate.cli", "import", str(path)),
                *("--account", "acme", "--now", NOW_ISO, "--data", str(data)),
                *("--broker", f"kafka://{kafka_bootstrap}", "--json"),
            ],
            capture_output=True,
            cwd=REPO,
            env=workers.env(),
            timeout=300,
        )
    finally:
        workers.stop()
    assert imported.returncode == 0, imported.stderr.decode()[-3000:]
    assert orjson.loads(imported.stdout)["status"] == "success"
    assert not data.exists()
