"""The confirmation email: status, file name, counts, rejected rows attached or linked."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any

import aiosmtplib

from connectors.notifications.report import console_feedback_url
from connectors.notifications.settings import SmtpSettings

_SUBJECTS = {
    "success": "imported",
    "warning": "imported with warnings",
    "partial": "partly imported: some rows were rejected",
    "fail": "failed: nothing was imported",
    "refused": "refused",
}


def build_message(
    report: dict[str, Any],
    to: str,
    sender: str,
    feedback: tuple[str, bytes] | None,
    *,
    attach_limit: int,
    console_url: str,
    delivery_id: str,
) -> EmailMessage:
    status = report["status"]
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = f"Tidegate: {report['filename']} {_SUBJECTS.get(status, status)}"
    message["Tidegate-Delivery"] = delivery_id
    counts = report.get("counts") or {}
    lines = [
        f"File:    {report['filename']}",
        f"Account: {report['account']}",
        f"Status:  {status}",
    ]
    if report.get("upload_id"):
        lines.append(f"Upload:  {report['upload_id']}")
    scalar = [(k, v) for k, v in counts.items() if not isinstance(v, dict)]
    if scalar:
        lines += ["", "Counts:"] + [f"  {k}: {v}" for k, v in scalar]
    for code, n in (counts.get("by_code") or {}).items():
        lines.append(f"  rejected as {code}: {n}")
    if report.get("fatal"):
        lines += ["", f"Reason: {report['fatal']['code']}: {report['fatal']['message']}"]
    for warning in report.get("warnings") or []:
        lines.append(f"Warning: {warning}")
    attach = None
    if feedback is not None:
        name, content = feedback
        if len(content) <= attach_limit:
            attach = (name, content)
            lines += ["", f"The rejected rows are attached ({name}), each with its error."]
        else:
            url = console_feedback_url(console_url, str(report["upload_id"]))
            lines += [
                "",
                f"The rejected rows ({len(content)} bytes, over the attachment limit) can be "
                f"downloaded from the console: {url}",
            ]
    message.set_content("\n".join(lines) + "\n")
    if attach is not None:
        maintype, subtype = (
            ("text", "csv") if attach[0].endswith(".csv") else ("application", "octet-stream")
        )
        message.add_attachment(attach[1], maintype=maintype, subtype=subtype, filename=attach[0])
    return message


async def send_message(message: EmailMessage, smtp: SmtpSettings, timeout: float) -> None:
    """Through the configured server; raises on any refusal or failure."""
    await aiosmtplib.send(
        message,
        hostname=smtp.host,
        port=smtp.port,
        username=smtp.username,
        password=smtp.password,
        use_tls=smtp.security == "tls",
        start_tls=smtp.security == "starttls",
        timeout=timeout,
    )
