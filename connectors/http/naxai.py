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
    if dry_run:
        headers["X-Tidegate-Dry-Run"] = "1"
    elif records:
        # Rejected records are stored too: the runtime records every outcome (dead letter,
        # upload history, feedback file), the response tells the client at once.
        receipt = await ctx.submit(account, FILE, records)
        headers[UPLOAD_ID_HEADER] = receipt.upload_id or upload_id
        ctx.metrics.submitted.labels(API).inc(len(records))
    ctx.metrics.batch_size.labels(API).observe(len(records))
    ctx.metrics.count_records(API, verdicts, dry_run=dry_run)

    if single:
        result = results[0]
        if isinstance(result, Rejection):
            return json_response(
                {"code": result.code.value, "message": result.message}, 400, headers
            )
        return json_response({"status": "accepted", "event_id": result.event_id}, 202, headers)

    items: list[dict[str, Any]] = []
    for index, result in enumerate(results):
        if isinstance(result, Rejection):
            items.append(
                {
                    "index": index,
                    "status": "rejected",
                    "code": result.code.value,
                    "message": result.message,
                }
            )
        else:
            items.append({"index": index, "status": "accepted", "event_id": result.event_id})
    rejected = verdicts.total() - verdicts[""]
    accepted = len(results) - rejected
    if rejected == 0:
        status = "accepted"
    elif accepted == 0:
        status = "rejected"
    else:
        status = "partial"
    return json_response(
        {"status": status, "accepted": accepted, "rejected": rejected, "events": items},
        400 if status == "rejected" else 202,
        headers,
    )
