"""What the commands print: an upload's report as JSON or as a short summary."""

from __future__ import annotations

import sys
from typing import Any

import orjson

from connectors.ports import UploadView
from streams.core.errors import Rejection


def print_json(value: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(value, option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.flush()


def print_summary(data: dict[str, Any], name: str, limit: int = 20) -> None:
    counts = data["counts"]
    print(f"{name}: {data['status']} ({data.get('dialect') or 'unknown dialect'})")
    if counts:
        print("  " + ", ".join(f"{k} {v}" for k, v in counts.items() if not isinstance(v, dict)))
    if data.get("fatal"):
        print(f"  fatal: {data['fatal']['code']}: {data['fatal']['message']}")
    for warning in data.get("warnings", []):
        print(f"  warning: {warning}")
    errors = data.get("errors", [])
    for error in errors[:limit]:
        where = error["file"] if error["line"] is None else f"{error['file']}:{error['line']}"
        print(f"  {where}: {error['code']}: {error['message']}")
    if len(errors) > limit:
        print(f"  ... and {len(errors) - limit} more (use --json for all)")


def report_of(view: UploadView) -> dict[str, Any]:
    counts = view.counts
    return {
        "upload_id": view.upload_id,
        "status": view.status,
        "dialect": view.dialect,
        "counts": {
            "records": counts.get("records", 0),
            "accepted": counts.get("accepted", 0),
            "duplicate": counts.get("duplicate", 0),
            "rejected": counts.get("rejected", 0),
            "triggered": counts.get("triggered", 0),
        },
        "rejected_by_code": counts.get("by_code", {}),
        "warnings": view.warnings,
        "fatal": view.fatal,
    }


def print_refusal(refused: Rejection, name: str, *, as_json: bool) -> None:
    """The report of an upload refused as a whole before any record was read."""
    fatal = {"code": refused.code.value, "message": refused.message}
    report = {"status": "fail", "counts": {}, "warnings": [], "fatal": fatal}
    print_json(report) if as_json else print_summary({**report, "errors": []}, name)
