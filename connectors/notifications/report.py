"""The final report of an upload, as webhooks carry it and emails summarise it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from connectors.ports import UploadView
from streams.core.errors import Rejection
from streams.core.timeparse import to_iso

EVENT = "upload.finished"


def console_feedback_url(base_url: str, upload_id: str) -> str:
    """The console's download of the upload's feedback file (a person, signed in): the
    link of an email whose feedback file is too large to attach."""
    return f"{base_url}/console/uploads/{upload_id}/feedback"


def api_feedback_url(base_url: str, upload_id: str) -> str:
    """The HTTP API's download of the same file (a program, with the account's API key as
    a bearer token): the `errors_url` of a webhook's report."""
    return f"{base_url}/uploads/{upload_id}/errors"


def final_report(view: UploadView, base_url: str) -> dict[str, Any]:
    rejected = int(view.counts.get("rejected", 0) or 0)
    return {
        "event": EVENT,
        "upload_id": view.upload_id,
        "account": view.account,
        "filename": view.filename,
        "kind": view.kind,
        "dialect": view.dialect,
        "status": view.status,
        "received_at": view.received_at,
        "finished_at": view.finished_at,
        "counts": view.counts,
        "warnings": view.warnings,
        "fatal": view.fatal,
        "errors_url": api_feedback_url(base_url, view.upload_id) if rejected else None,
    }


def refused_report(account: str, filename: str, refused: Rejection, at: datetime) -> dict[str, Any]:
    """A drop refused as a whole before it became an upload (no upload id, no history row)."""
    return {
        "event": EVENT,
        "upload_id": None,
        "account": account,
        "filename": filename,
        "kind": "file",
        "dialect": None,
        "status": "refused",
        "received_at": to_iso(at),
        "finished_at": to_iso(at),
        "counts": {},
        "warnings": [],
        "fatal": {"code": refused.code.value, "message": refused.message},
        "errors_url": None,
    }
