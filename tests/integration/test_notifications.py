"""Notifications end to end: a real SMTP server and a real HTTP receiver, the embedded runtime."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import orjson

from connectors.accounts import Account, Accounts
from connectors.files.reader import read_upload
from connectors.notifications.service import Notifier, NotifyingIngest
from connectors.notifications.settings import NotifySettings, SmtpSettings
from connectors.notifications.signing import verify
from connectors.ports import FileUpload
from streams.core.settings import SettingsRegistry
from streams.embedded.runtime import EmbeddedRuntime
from tests.integration.notify_helpers import Hook, smtp_server, until, webhook_server

UPLOADS = Path(__file__).parent.parent / "fixtures" / "uploads"
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
FAST = NotifySettings(retry_base=0.05, retry_max_delay=0.2, timeout=5.0, poll_seconds=0.05)


@asynccontextmanager
async def notifying(
    data: Path, account: Account, settings: NotifySettings
) -> AsyncIterator[tuple[NotifyingIngest, Notifier]]:
    runtime = EmbeddedRuntime(data, SettingsRegistry(), read_upload, clock=lambda: NOW)
    await runtime.start()
    notifier = Notifier(runtime, Accounts([account]), data, settings)
    await notifier.start()
    try:
        yield notifier.wrap(runtime), notifier
    finally:
        await notifier.stop()
        await runtime.stop()


async def drop(ingest: NotifyingIngest, source: Path, name: str | None = None) -> str | None:
    receipt = await ingest.submit_file(FileUpload("acme", name or source.name, source, NOW))
    if receipt.upload_id is not None:
        await ingest.wait(receipt.upload_id, timeout=60)
    return receipt.upload_id


def staged(tmp_path: Path, name: str) -> Path:
    """A copy to hand over (the runtime owns the file it is given)."""
    copy = tmp_path / "in" / name
    copy.parent.mkdir(exist_ok=True)
    copy.write_bytes((UPLOADS / name).read_bytes())
    return copy


async def test_one_email_per_finished_upload_with_the_rejected_rows_attached_to_a_partial(
    tmp_path: Path,
) -> None:
    async with smtp_server() as (sink, port):
        smtp = SmtpSettings("127.0.0.1", port, security="none", sender="tidegate@test")
        account = Account("acme", "acme", notify_emails=("ops@acme.test",))
        async with notifying(tmp_path / "data", account, replace(FAST, smtp=smtp)) as (ingest, _):
            good = await drop(ingest, staged(tmp_path, "new_users.jsonl"))
            bad = await drop(ingest, staged(tmp_path, "bad_rows.csv"))
            refused = await drop(ingest, staged(tmp_path, "new_users.jsonl"))  # same name
            empty = tmp_path / "in" / "empty.jsonl"
            empty.write_bytes(b"")
            none_good = tmp_path / "in" / "none_good.jsonl"
            none_good.write_bytes(b'{"user_id": "9", "event_type": "x", "timestamp": "soon"}\n')
            warned = await drop(ingest, empty)  # no records: warning
            failed = await drop(ingest, none_good)  # nothing accepted: fail
            assert good and bad and warned and failed and refused is None
            await until(lambda: len(sink.messages) >= 5)
            await asyncio.sleep(1.0)  # nothing more comes
    assert len(sink.messages) == 5
    by_subject = {m["Subject"]: m for m in sink.messages}
    assert set(by_subject) == {
        "Tidegate: new_users.jsonl imported",
        "Tidegate: bad_rows.csv partly imported: some rows were rejected",
        "Tidegate: new_users.jsonl refused",
        "Tidegate: empty.jsonl imported with warnings",
        "Tidegate: none_good.jsonl failed: nothing was imported",
    }
    partial = by_subject["Tidegate: bad_rows.csv partly imported: some rows were rejected"]
    assert partial["To"] == "ops@acme.test"
    body = partial.get_body(("plain",))
    assert body is not None and "Status:  partial" in body.get_content()
    attachments = list(partial.iter_attachments())
    assert len(attachments) == 1
    rows = attachments[0].get_content()
    rows = rows.decode() if isinstance(rows, bytes) else rows
    assert "not a time" in rows  # the rejected row itself, with its error
    assert "yellow_shirt" not in rows  # an accepted row is not in the feedback
    success = by_subject["Tidegate: new_users.jsonl imported"]
    assert not list(success.iter_attachments())
    refusal = by_subject["Tidegate: new_users.jsonl refused"].get_body(("plain",))
    assert refusal is not None and "duplicate_filename" in refusal.get_content()


async def test_an_oversized_feedback_file_is_linked_to_the_console_not_attached(
    tmp_path: Path,
) -> None:
    async with smtp_server() as (sink, port):
        smtp = SmtpSettings("127.0.0.1", port, security="none")
        settings = replace(FAST, smtp=smtp, attach_limit=10, console_url="https://tg.example")
        account = Account("acme", "acme", notify_emails=("ops@acme.test",))
        async with notifying(tmp_path / "data", account, settings) as (ingest, _):
            upload_id = await drop(ingest, staged(tmp_path, "bad_rows.csv"))
            await until(lambda: len(sink.messages) >= 1)
    message = sink.messages[0]
    assert not list(message.iter_attachments())
    body = message.get_body(("plain",))
    assert body is not None
    assert f"https://tg.example/console/uploads/{upload_id}/feedback" in body.get_content()


async def test_each_webhook_is_signed_with_its_secret_and_a_tampered_one_is_detected(
    tmp_path: Path,
) -> None:
    hook = Hook()
    async with webhook_server(hook) as url:
        account = Account("acme", "acme", webhooks=(url,))
        async with notifying(tmp_path / "data", account, FAST) as (ingest, notifier):
            secret = notifier.secrets.create("acme", url)
            good = await drop(ingest, staged(tmp_path, "new_users.jsonl"))
            bad = await drop(ingest, staged(tmp_path, "bad_rows.csv"))
            await until(lambda: len(hook.received) >= 2)
    assert len(hook.received) == 2
    now = int(time.time())
    reports = {}
    for headers, body in hook.received:
        signature = headers["tidegate-signature"]
        assert verify(secret, signature, body, now)
        assert not verify(secret, signature, body.replace(b"acme", b"acmf"), now)  # tampered
        assert not verify("whsec_wrong", signature, body, now)
        assert not verify(secret, signature, body, now + 3600)  # replayed an hour later
        report = orjson.loads(body)
        assert report["delivery_id"] == headers["tidegate-delivery"]
        reports[report["upload_id"]] = report
    assert reports[good]["status"] == "success"
    assert reports[bad]["status"] == "partial"
    assert reports[bad]["counts"]["rejected"] >= 1
    assert reports[bad]["errors_url"].endswith(f"/uploads/{bad}/errors")  # the HTTP API's
    assert "/console/" not in reports[bad]["errors_url"]
    mode = (tmp_path / "data" / "webhook_secrets.json").stat().st_mode & 0o777
    assert mode == 0o600


async def test_a_receiver_answering_500_twice_gets_the_same_delivery_id_three_times(
    tmp_path: Path,
) -> None:
    hook = Hook(answers=[500, 500])
    async with webhook_server(hook) as url:
        account = Account("acme", "acme", webhooks=(url,))
        async with notifying(tmp_path / "data", account, FAST) as (ingest, notifier):
            notifier.secrets.create("acme", url)
            await drop(ingest, staged(tmp_path, "new_users.jsonl"))
            await until(lambda: len(hook.received) >= 3)
            await asyncio.sleep(1.0)  # nothing more comes
            listed = await notifier.outbox.deliveries("acme")
    ids = [headers["tidegate-delivery"] for headers, _ in hook.received]
    assert len(ids) == 3 and len(set(ids)) == 1
    assert [(d.state, d.attempts) for d in listed] == [("delivered", 3)]


async def test_a_webhook_failing_every_attempt_is_listed_failed_and_resent(tmp_path: Path) -> None:
    hook = Hook(answers=[500, 500])
    settings = replace(FAST, max_attempts=2)
    async with webhook_server(hook) as url:
        account = Account("acme", "acme", webhooks=(url,))
        async with notifying(tmp_path / "data", account, settings) as (ingest, notifier):
            notifier.secrets.create("acme", url)
            await drop(ingest, staged(tmp_path, "new_users.jsonl"))
            await until(lambda: len(hook.received) >= 2)
            for _ in range(100):
                failed = await notifier.outbox.deliveries("acme", "failed")
                if failed:
                    break
                await asyncio.sleep(0.05)
            assert len(failed) == 1 and failed[0].attempts == 2
            assert await notifier.outbox.deliveries("other") == []  # per account
            assert await notifier.outbox.resend("acme") == 1
            await until(lambda: len(hook.received) >= 3)
    ids = {headers["tidegate-delivery"] for headers, _ in hook.received}
    assert len(ids) == 1  # the re-send carries the same delivery id


async def test_a_hanging_receiver_holds_neither_the_uploads_nor_the_other_targets(
    tmp_path: Path,
) -> None:
    hook = Hook(hang=True)
    async with smtp_server() as (sink, port), webhook_server(hook) as url:
        smtp = SmtpSettings("127.0.0.1", port, security="none")
        settings = replace(FAST, smtp=smtp, timeout=0.5, concurrency=2)
        account = Account("acme", "acme", notify_emails=("ops@acme.test",), webhooks=(url,))
        async with notifying(tmp_path / "data", account, settings) as (ingest, notifier):
            notifier.secrets.create("acme", url)
            names = ["new_users.jsonl", "bad_rows.csv"]
            finished = [await drop(ingest, staged(tmp_path, name)) for name in names]
            assert all(finished)  # both uploads ended while the receiver hung
            await until(lambda: len(sink.messages) >= 2)  # the emails still go
            await until(lambda: len(hook.received) >= 2)
            listed = await notifier.outbox.deliveries("acme")
    assert sorted(str(m["Subject"]).split()[1] for m in sink.messages) == sorted(names)
    webhooks = [d for d in listed if d.target.startswith("webhook:")]
    assert len(webhooks) == 2 and not any(d.state == "delivered" for d in webhooks)
