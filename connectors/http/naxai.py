"""`POST /people/contacts/{identifier}/events`: Naxai events (one object, or an array ≤ 1000)."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from connectors.http import errors
from connectors.http.context import UPLOAD_ID_HEADER, HttpContext, is_true, json_response, judge
from connectors.http.decided import RECEIVED, REJECTED, wait_decided, wait_seconds
from connectors.http.errors import ApiError
from streams.core.errors import Rejection
from streams.core.records import Dialect, Event, RawRecord, Source, SourceKind
from streams.core.trigger import default_trigger

PATH = "/people/contacts/{identifier:path}/events"
FILE = "api:/people/contacts/{identifier}/events"  # Source.file; the identifier is per record
API = "naxai"


async def events(ctx: HttpContext, request: Request) -> Response:
    account = await ctx.authenticate(request, prefer="bearer")
    identifier: str = request.path_params["identifier"]
    dry_run = is_true(request.query_params.get("dryRun"))
    wait = wait_seconds(request)
    body = await ctx.read_body(request)
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise ApiError(
            400, errors.INVALID_PAYLOAD, f"the request body is not valid UTF-8 JSON: {error}"
        ) from None
    single = isinstance(document, dict)
    if single:
        batch: list[Any] = [document]
    elif isinstance(document, list):
        batch = document
    else:
        raise ApiError(
            400,
            errors.INVALID_PAYLOAD,
            "the request body must be an event object or an array of them",
        )
    ctx.check_batch(len(batch))
    ctx.check_rate(account, len(batch))

    upload_id = str(uuid.uuid4())
    received_at = ctx.clock()
    records = [
        RawRecord(
            source=Source(SourceKind.API, Dialect.NAXAI, account, upload_id, FILE, None, line),
            received_at=received_at,
            payload=orjson.dumps(element),
            path_identifier=identifier,
            trigger=default_trigger(SourceKind.API),
        )
        for line, element in enumerate(batch, start=1)
    ]
    results: list[Event | Rejection] = await judge(records)
    verdicts: Counter[str] = Counter(
        result.code.value if isinstance(result, Rejection) else "" for result in results
    )

    headers: dict[str, str] = {}
    stored: str | None = None
    if dry_run:
        headers["X-Tidegate-Dry-Run"] = "1"
    elif records:
        # Rejected records are stored too: the runtime records every outcome (dead letter,
        # upload history, feedback file), the response tells the client at once.
        receipt = await ctx.submit(account, FILE, records)
        stored = headers[UPLOAD_ID_HEADER] = receipt.upload_id or upload_id
        ctx.metrics.submitted.labels(API).inc(len(records))
    ctx.metrics.batch_size.labels(API).observe(len(records))
    ctx.metrics.count_records(API, verdicts, dry_run=dry_run)

    # Until the runtime decides, a record that passed the stateless rules is `received`:
    # it may still turn out a duplicate or break a limit. `?wait=N` waits for the decision.
    items: list[dict[str, Any]] = []
    for result in results:
        if isinstance(result, Rejection):
            items.append({"status": REJECTED, "code": result.code.value, "message": result.message})
        else:
            items.append({"status": RECEIVED, "event_id": result.event_id})
    decided = False
    if wait is not None and stored is not None:
        outcome = await wait_decided(ctx.ingest, stored, results, wait)
        if outcome is not None:
            items, decided = outcome.outcomes, True

    if single:
        item = items[0]
        if item["status"] == REJECTED:
            # the error shape of every 400; the upload id is in the header
            return json_response({"code": item["code"], "message": item["message"]}, 400, headers)
        answer = {**item, "upload_id": stored, "decided": decided}
        return json_response(answer, 200 if decided else 202, headers)

    tally: Counter[str] = Counter(item["status"] for item in items)
    rejected = tally[REJECTED]
    if rejected == len(items):
        status = REJECTED
    elif rejected:
        status = "partial"
    else:
        status = RECEIVED if not decided else ("accepted" if tally["accepted"] else "decided")
    return json_response(
        {
            "status": status,
            "upload_id": stored,
            "decided": decided,
            "received": len(items) - rejected,
            "rejected": rejected,
            "counts": dict(tally),
            "events": [{"index": index, **item} for index, item in enumerate(items)],
        },
        400 if status == REJECTED else (200 if decided else 202),
        headers,
    )
