"""The status agent's fold: an upload's outcomes and announcement into its final status."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from streams.core.errors import ErrorCode, Rejection, Stage
from streams.core.records import OutcomeKind
from streams.core.status import UploadCounts, counts_dict, counts_from, final_status, final_warnings
from streams.core.timeparse import to_iso


def empty_upload() -> dict[str, Any]:
    return {"counts": counts_dict(UploadCounts()), "total": None, "final": None}


def apply_upload_message(
    state: dict[str, Any] | None, message: Mapping[str, Any], now: datetime
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Folds one outcome or announcement into an upload's state; returns the new state and
    the final status document once every announced record has its outcome."""
    state = dict(state) if state else empty_upload()
    if state.get("final"):
        return state, None
    if message.get("type") == "announce":
        for key in ("total", "account", "filename", "kind", "dialect", "received_at", "trigger"):
            if key in message:
                state[key] = message[key]
        state["warnings"] = list(message.get("warnings") or [])
        state["failed_members"] = int(message.get("failed_members") or 0)
        state["fatal"] = message.get("fatal")
    elif message.get("type") == "outcomes":  # one batch's counts of the upload
        counts = counts_from(state["counts"])
        add = message["counts"]
        for name in ("records", "accepted", "duplicate", "rejected", "triggered"):
            setattr(counts, name, getattr(counts, name) + int(add.get(name, 0)))
        counts.by_code.update(add.get("by_code") or {})
        state["counts"] = counts_dict(counts)
    else:  # one record's outcome (messages written before outcomes were batched)
        counts = counts_from(state["counts"])
        counts.count(
            OutcomeKind(message["outcome"]), message.get("code"), bool(message.get("triggered"))
        )
        state["counts"] = counts_dict(counts)
    total = state.get("total")
    if total is None or state["counts"]["records"] < int(total):
        return state, None
    counts = counts_from(state["counts"])
    counts.failed_members = int(state.get("failed_members") or 0)
    fatal_doc = state.get("fatal")
    fatal = (
        Rejection(ErrorCode(fatal_doc["code"]), fatal_doc["message"], Stage.UPLOAD)
        if fatal_doc
        else None
    )
    status = final_status(counts, fatal)
    state["final"] = status.value
    doc = {
        "upload_id": message["upload_id"],
        "account": state.get("account"),
        "filename": state.get("filename"),
        "kind": state.get("kind", "file"),
        "dialect": state.get("dialect"),
        "status": status.value,
        "received_at": state.get("received_at"),
        "finished_at": to_iso(now),
        "trigger": bool(state.get("trigger")),
        "counts": state["counts"],
        "warnings": final_warnings(counts, fatal, state.get("warnings") or []),
        "fatal": fatal_doc,
    }
    return state, doc
