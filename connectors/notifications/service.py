"""The notifier: learns final statuses through the Ingest port and delivers from the outbox.

It works the same over both runtimes because it only uses the port: `NotifyingIngest`
wraps the runtime's port (so a refused drop and every new upload id are seen at once),
and a watcher polls the history for the uploads it watches until they are final. The
deliveries run in their own tasks, bounded in number and time, so a slow or dead receiver
never holds up a submission or an import.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
import orjson

from connectors.accounts import Account
from connectors.notifications.mail import build_message, send_message
from connectors.notifications.outbox import DB_NAME, Delivery, Outbox
from connectors.notifications.report import final_report, refused_report
from connectors.notifications.secrets import FILE_NAME, WebhookSecrets
from connectors.notifications.settings import NotifySettings
from connectors.notifications.webhook import post_webhook
from connectors.ports import FileUpload, Ingest, Receipt, UploadView
from streams.core.records import RawRecord, SourceKind
from streams.core.status import FINAL_STATUSES as FINAL
from streams.core.status import REFUSED_KIND

log = logging.getLogger("tidegate.notify")

HISTORY_PAGE = 1000  # uploads read per history poll (more new uploads than this per poll
# are still seen: each submission through the port is watched at once)


class AccountLookup(Protocol):
    """The accounts as the notifier reads them (`Accounts`, or `LiveAccounts` in `run`)."""

    def get(self, name: str) -> Account | None: ...


class Notifier:
    def __init__(
        self,
        ingest: Ingest,
        accounts: AccountLookup,
        data_dir: Path,
        settings: NotifySettings,
    ) -> None:
        self.ingest = ingest
        self.accounts = accounts
        self.settings = settings
        self.outbox = Outbox(data_dir / DB_NAME)
        self.secrets = WebhookSecrets(data_dir / FILE_NAME)
        self._tasks: list[asyncio.Task[None]] = []
        self._inflight: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._client: httpx.AsyncClient | None = None

    # ------------------------------------------------------------------ life cycle

    async def open(self) -> None:
        """The outbox and the HTTP client, without the loops (`start`, or `tell` alone)."""
        created = await self.outbox.open()
        if created:
            # uploads finished before notifications existed are not announced
            views = await self.ingest.list_uploads(None, HISTORY_PAGE)
            await self.outbox.watch([v.upload_id for v in views if v.status in FINAL], done=True)
        self._client = httpx.AsyncClient(
            timeout=self.settings.timeout,
            limits=httpx.Limits(max_connections=self.settings.concurrency),
            follow_redirects=False,
        )

    async def start(self) -> None:
        await self.open()
        # only the data directory's own notifier (`run`) recovers: a `tidegate import`
        # telling its one upload beside it must not resend the attempts `run` has under way
        recovered = await self.outbox.recover()
        if recovered:
            log.info("%d deliveries had an attempt of unknown result: sending again", recovered)
        self._tasks = [
            asyncio.create_task(self._watch_loop(), name="tidegate-notify-watch"),
            asyncio.create_task(self._send_loop(), name="tidegate-notify-send"),
        ]

    async def stop(self) -> None:
        for task in [*self._tasks, *self._inflight]:
            task.cancel()
        for task in [*self._tasks, *self._inflight]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        # attempts cut short stay 'sending': sent again at the next start (unknown result)
        if self._client is not None:
            await self._client.aclose()
        await self.outbox.close()

    def wrap(self, ingest: Ingest) -> NotifyingIngest:
        return NotifyingIngest(ingest, self)

    # ------------------------------------------------------------------ watching

    def targets_of(self, account: str) -> list[str]:
        found = self.accounts.get(account)
        if found is None:
            return []
        emails = [f"email:{a}" for a in found.notify_emails] if self.settings.smtp else []
        return emails + [f"webhook:{url}" for url in found.webhooks]

    async def watch(self, upload_id: str) -> None:
        await self.outbox.watch([upload_id])

    async def refused(self, upload: FileUpload, receipt: Receipt) -> None:
        assert receipt.refused is not None
        targets = self.targets_of(upload.account)
        if not targets:
            return
        at = datetime.now(UTC)
        report = refused_report(upload.account, upload.filename, receipt.refused, at)
        subject = f"refused:{upload.account}:{upload.filename}:{upload.received_at.isoformat()}"
        await self.outbox.enqueue(subject, upload.account, targets, report)
        self._wake.set()

    async def check_once(self) -> None:
        """One pass: new uploads from the history are watched; final ones are enqueued."""
        views = await self.ingest.list_uploads(None, HISTORY_PAGE)
        # a refused drop is announced once, by `refused`, on both runtimes (the embedded
        # one also keeps it in the history)
        await self.outbox.watch([v.upload_id for v in views if v.kind != REFUSED_KIND])
        for upload_id in await self.outbox.watching():
            view = await self.ingest.get_upload(upload_id)
            if view is None or view.status not in FINAL:
                continue
            await self.outbox.enqueue(
                upload_id,
                view.account,
                self.targets_of(view.account),
                final_report(view, self.settings.console_url),
                finishes_watch=True,
            )
            self._wake.set()

    async def tell(self, upload_id: str) -> list[Delivery]:
        """One upload told now, by a process that is not `run` (`tidegate import --broker`):
        its deliveries enqueued once it is final, and each attempted once here unless
        another notifier (a `run` on the same data directory) claimed it first. A failed
        one stays in the outbox, retried by `run` on its schedule. Returns the upload's
        deliveries as they are after these attempts."""
        view = await self.ingest.get_upload(upload_id)
        if view is None or view.status not in FINAL:
            return []
        await self.outbox.watch([upload_id])
        await self.outbox.enqueue(
            upload_id,
            view.account,
            self.targets_of(view.account),
            final_report(view, self.settings.console_url),
            finishes_watch=True,
        )
        slots = asyncio.Semaphore(self.settings.concurrency)
        attempts = []
        for delivery in await self.outbox.claim_subject(upload_id):
            await slots.acquire()
            attempts.append(asyncio.create_task(self._deliver(delivery, slots)))
        await asyncio.gather(*attempts)
        return await self.outbox.of_subject(upload_id)

    async def _watch_loop(self) -> None:
        while True:
            try:
                await self.check_once()
            except Exception:
                log.exception("notifications: reading the upload history failed; retrying")
            await asyncio.sleep(self.settings.poll_seconds)

    # ------------------------------------------------------------------ sending

    async def _send_loop(self) -> None:
        slots = asyncio.Semaphore(self.settings.concurrency)
        while True:
            free = self.settings.concurrency - len(self._inflight)
            due = await self.outbox.claim_due(free) if free > 0 else []
            for delivery in due:
                await slots.acquire()
                task = asyncio.create_task(self._deliver(delivery, slots))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_seconds)

    async def _deliver(self, delivery: Delivery, slots: asyncio.Semaphore) -> None:
        try:
            await asyncio.wait_for(self._attempt(delivery), self.settings.timeout)
        except asyncio.CancelledError:
            raise
        except Exception as failure:
            error = (
                f"{type(failure).__name__}: {failure}" if str(failure) else type(failure).__name__
            )
            attempts = delivery.attempts + 1
            retry_at = (
                time.time() + self.settings.delay(attempts)
                if attempts < self.settings.max_attempts
                else None
            )
            # the target is shown, never a secret (secrets are not in targets or errors)
            log.warning(
                "notification %s to %s failed (attempt %d): %s%s",
                delivery.delivery_id,
                delivery.target,
                attempts,
                error,
                "" if retry_at else "; given up (tidegate notifications resend)",
            )
            await self.outbox.attempt_failed(delivery.delivery_id, error, retry_at)
        else:
            await self.outbox.delivered(delivery.delivery_id)
        finally:
            slots.release()
            self._wake.set()

    async def _attempt(self, delivery: Delivery) -> None:
        kind, _, address = delivery.target.partition(":")
        if kind == "webhook":
            secret = self.secrets.get(delivery.account, address)
            if secret is None:
                raise LookupError(
                    "no signing secret for this webhook: create one with "
                    "`tidegate notifications secret`"
                )
            assert self._client is not None
            body = orjson.dumps({**delivery.report, "delivery_id": delivery.delivery_id})
            await post_webhook(self._client, address, body, secret, delivery.delivery_id)
        elif kind == "email":
            smtp = self.settings.smtp
            if smtp is None:
                raise LookupError("no SMTP server is configured (TIDEGATE_SMTP_HOST)")
            upload_id = delivery.report.get("upload_id")
            feedback = await self.ingest.feedback(upload_id) if upload_id else None
            message = build_message(
                delivery.report,
                address,
                smtp.sender,
                feedback,
                attach_limit=self.settings.attach_limit,
                console_url=self.settings.console_url,
                delivery_id=delivery.delivery_id,
            )
            await send_message(message, smtp, self.settings.timeout)
        else:
            raise ValueError(f"unknown target kind {kind!r}")


class NotifyingIngest:
    """The runtime's port, told to the notifier: each upload id is watched as soon as it
    exists, and a drop refused as a whole is announced (it never reaches the history)."""

    def __init__(self, inner: Ingest, notifier: Notifier) -> None:
        self.inner = inner
        self.notifier = notifier

    async def submit_file(self, upload: FileUpload) -> Receipt:
        receipt = await self.inner.submit_file(upload)
        try:
            if receipt.upload_id is not None:
                await self.notifier.watch(receipt.upload_id)
            elif receipt.refused is not None:
                await self.notifier.refused(upload, receipt)
        except Exception:  # the history poll still finds the upload; never fail a drop
            log.exception("notifications: recording upload %s failed", receipt.upload_id)
        return receipt

    async def submit_records(
        self,
        account: str,
        name: str,
        records: list[RawRecord],
        *,
        kind: SourceKind = SourceKind.API,
    ) -> Receipt:
        receipt = await self.inner.submit_records(account, name, records, kind=kind)
        if receipt.upload_id is not None:
            with contextlib.suppress(Exception):
                await self.notifier.watch(receipt.upload_id)
        return receipt

    async def wait(self, upload_id: str, timeout: float | None = None) -> UploadView:
        return await self.inner.wait(upload_id, timeout)

    async def list_uploads(self, account: str | None = None, limit: int = 100) -> list[UploadView]:
        return await self.inner.list_uploads(account, limit)

    async def get_upload(self, upload_id: str) -> UploadView | None:
        return await self.inner.get_upload(upload_id)

    async def feedback(self, upload_id: str) -> tuple[str, bytes] | None:
        return await self.inner.feedback(upload_id)

    def __getattr__(self, name: str) -> Any:  # runtime extras (find_upload, ...) pass through
        return getattr(self.inner, name)
