"""`tidegate run` (embedded) notifying a partial upload: the email's console link and the
webhook's `errors_url` both download the rejected rows, as a person and as a program."""

from __future__ import annotations

import asyncio
import os
import re
import time
from pathlib import Path

import httpx
import orjson
import pytest

from connectors.notifications.signing import verify
from tests.integration.notify_helpers import (
    REPO,
    Hook,
    hand_over_partial,
    smtp_server,
    tidegate_cli,
    until,
    webhook_server,
)
from tests.integration.run_helpers import read_welcome, start_run

pytestmark = pytest.mark.slow


async def test_the_links_of_an_email_and_a_webhook_download_the_rejected_rows(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    added = tidegate_cli("accounts", "--data", str(data), "add", "acme")
    api_key = re.search(r"Bearer \.\.\.\)\s+(\S+)", added)
    assert api_key, added
    hook = Hook()
    async with smtp_server() as (sink, smtp_port), webhook_server(hook) as url:
        tidegate_cli(
            *("accounts", "--data", str(data), "set", "acme"),
            *("notify_emails=ops@acme.test", f"webhooks={url}"),
        )
        shown = orjson.loads(
            tidegate_cli("accounts", "--data", str(data), "--json", "show", "acme")
        )
        assert (shown["notify_emails"], shown["webhooks"]) == (["ops@acme.test"], [url])
        secret = tidegate_cli(
            *("notifications", "secret", "--data", str(data), "--account", "acme"),
            *("--url", url),
        ).split()[-1]
        env = {
            **os.environ,
            "TIDEGATE_SMTP_HOST": "127.0.0.1",
            "TIDEGATE_SMTP_PORT": str(smtp_port),
            "TIDEGATE_SMTP_SECURITY": "none",
            "TIDEGATE_NOTIFY_POLL": "0.1",
            "TIDEGATE_NOTIFY_ATTACH_BYTES": "10",  # the feedback file is linked, not attached
        }
        run = start_run(data, "--ftp-port", "-1", "--settle", "0.2", cwd=REPO, env=env)
        try:
            text = await asyncio.to_thread(read_welcome, run, 60, "web console")
            port = re.search(r"HTTP API\s+http://127\.0\.0\.1:(\d+)/", text)
            assert port, text
            base = f"http://127.0.0.1:{port[1]}"
            hand_over_partial(data / "watch" / "acme" / "events", "drop.jsonl")
            await until(lambda: len(hook.received) >= 1 and len(sink.messages) >= 1, 60)
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                # a person: the email's link, in the console, signed in with the API key
                [message] = sink.messages
                assert not list(message.iter_attachments())
                body = message.get_body(("plain",))
                assert body is not None
                link = re.search(r"http://\S+/feedback", body.get_content())
                assert link and link[0].startswith(base), body.get_content()
                refused = await client.get(link[0])
                assert refused.status_code in (302, 303, 401, 403)  # not signed in
                await client.post(
                    "/console/signin", data={"account": "acme", "api_key": api_key[1]}
                )
                by_console = await client.get(link[0])
                # a program: the webhook's errors_url, with the API key as a bearer token
                [(headers, raw)] = hook.received
                assert verify(secret, headers["tidegate-signature"], raw, int(time.time()))
                report = orjson.loads(raw)
                by_api = await client.get(
                    report["errors_url"], headers={"Authorization": f"Bearer {api_key[1]}"}
                )
        finally:
            run.terminate()
            await asyncio.to_thread(run.wait, 30)
    assert report["status"] == "partial" and report["counts"]["rejected"] == 1
    assert by_console.status_code == 200 and by_api.status_code == 200
    assert by_console.content == by_api.content
    [row] = [orjson.loads(line) for line in by_api.content.splitlines()]
    assert row["record"]["idempotencyKey"] == "k3" and row["code"] == "invalid_timestamp"
