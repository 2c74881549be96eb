"""`?wait=N`: an API answer that holds each record's decided outcome, never a guess."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request

from connectors.http import errors
from connectors.http.errors import ApiError
from connectors.ports import Ingest, UploadView
from streams.core.errors import Rejection
from streams.core.records import Event

#: The longest a caller may ask to wait (seconds); a larger `wait` is cut to this.
MAX_WAIT_SECONDS = 30.0

RECEIVED = "received"  # stored, not decided yet: never "accepted" before the decision
ACCEPTED = "accepted"
DUPLICATE = "duplicate"
REJECTED = "rejected"
UNKNOWN = "decided"  # decided, but which of accepted/duplicate it was cannot be told apart


def wait_seconds(request: Request) -> float | None:
    """The `wait` query parameter: None when absent, else seconds in (0, MAX_WAIT_SECONDS]."""
    value = request.query_params.get("wait")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise ApiError(
            400,
            errors.INVALID_PARAMETER,
            f"wait must be a number of seconds (0 to {MAX_WAIT_SECONDS:g}), not {value!r}",
        )
    return min(seconds, MAX_WAIT_SECONDS)


@dataclass(slots=True)
class Decided:
    """The final upload and each record's outcome (same order as the request)."""

    view: UploadView
    outcomes: list[dict[str, Any]]


async def wait_decided(
    ingest: Ingest, upload_id: str, results: list[Event | Rejection], timeout: float
) -> Decided | None:
    """Waits up to `timeout` for the upload's final status; None when it is not decided yet.

    A record rejected by a stateless rule keeps that rejection; a rejection decided later
    (limits, stateful rules) comes from the upload's feedback rows by line. The others are
    accepted or duplicate: the upload's counts tell which whenever they are all of one kind
    (always, for a single record); a batch that mixes both gets `decided` for those records
    and the counts, rather than a guess.
    """
    try:
        view = await asyncio.wait_for(ingest.wait(upload_id), timeout)
    except TimeoutError:
        return None
    later: dict[int, tuple[str, str]] = {}
    if int(view.counts.get("rejected", 0)) > sum(isinstance(r, Rejection) for r in results):
        feedback = await ingest.feedback(upload_id)
        for text in feedback[1].splitlines() if feedback else []:
            row = orjson.loads(text)
            later[int(row["line"])] = (str(row["code"]), str(row["message"]))
    passed = [
        i + 1
        for i, r in enumerate(results)
        if isinstance(r, Event) and i + 1 not in later  # lines are 1-based
    ]
    accepted = int(view.counts.get("accepted", 0))
    duplicate = int(view.counts.get("duplicate", 0))
    triggered = int(view.counts.get("triggered", 0))
    if duplicate == 0:
        kind = ACCEPTED
    elif accepted == 0:
        kind = DUPLICATE
    else:
        kind = UNKNOWN if len(passed) > 1 else ACCEPTED
    outcomes: list[dict[str, Any]] = []
    for index, result in enumerate(results):
        line = index + 1
        if isinstance(result, Rejection):
            outcomes.append(
                {"status": REJECTED, "code": result.code.value, "message": result.message}
            )
        elif line in later:
            code, message = later[line]
            outcomes.append(
                {"status": REJECTED, "code": code, "message": message, "event_id": result.event_id}
            )
        else:
            item: dict[str, Any] = {"status": kind, "event_id": result.event_id}
            if kind == ACCEPTED:  # all or none triggered when the counts say so
                item["triggered"] = (
                    triggered > 0 if triggered in (0, accepted) else result.triggered
                )
            outcomes.append(item)
    return Decided(view, outcomes)
