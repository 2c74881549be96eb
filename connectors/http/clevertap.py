"""`POST /1/upload`: CleverTap's Upload Events API (`{"d": [...]}`, ≤ 1000 records, dryRun)."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from connectors.http import errors
from connectors.http.context import UPLOAD_ID_HEADER, HttpContext, is_true, json_response, judge
from connectors.http.decided import REJECTED, wait_decided, wait_seconds
from connectors.http.errors import ApiError
from streams.core.errors import ErrorCode, Rejection, error_number
from streams.core.records import Dialect, RawRecord, Source, SourceKind
from streams.core.trigger import default_trigger

PATH = "/1/upload"
FILE = "api:/1/upload"  # Source.file (and the upload's name) of every record of this API
API = "clevertap"


def parse_batch(body: bytes) -> list[Any]:
    """The `d` array of a `{"d": [...]}` body, or 400 invalid_payload."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise ApiError(
            400, errors.INVALID_PAYLOAD, f"the request body is not valid UTF-8 JSON: {error}"
        ) from None
    if not isinstance(document, dict):
        raise ApiError(
            400, errors.INVALID_PAYLOAD, 'the request body must be an object {"d": [...]}'
        )
    batch = document.get("d")
    if not isinstance(batch, list):
        raise ApiError(400, errors.INVALID_PAYLOAD, '"d" must be an array of records')
    return batch


def build_records(
    account: str, upload_id: str, batch: list[Any], ctx: HttpContext
) -> list[RawRecord]:
    received_at = ctx.clock()
    return [
        RawRecord(
            source=Source(SourceKind.API, Dialect.CLEVERTAP, account, upload_id, FILE, None, line),
            received_at=received_at,
            payload=orjson.dumps(element),
            trigger=default_trigger(SourceKind.API),
        )
        for line, element in enumerate(batch, start=1)
    ]


async def upload(ctx: HttpContext, request: Request) -> Response:
    account = await ctx.authenticate(request, prefer="clevertap")
    dry_run = is_true(request.query_params.get("dryRun"))
    wait = wait_seconds(request)
    batch = parse_batch(await ctx.read_body(request))
    ctx.check_batch(len(batch))
    ctx.check_rate(account, len(batch))

    upload_id = str(uuid.uuid4())
    records = build_records(account, upload_id, batch, ctx)
    unprocessed: list[dict[str, Any]] = []
    verdicts: Counter[str] = Counter()
    results = await judge(records)
    for result, element in zip(results, batch, strict=True):
        if isinstance(result, Rejection):
            verdicts[result.code.value] += 1
            unprocessed.append(
                {
                    "status": "fail",
                    "code": error_number(result.code),
                    "error": result.message,
                    "record": element,
                }
            )
        else:
            verdicts[""] += 1

    headers: dict[str, str] = {}
    stored: str | None = None
    if dry_run:
        headers["X-Tidegate-Dry-Run"] = "1"
    elif records:
        receipt = await ctx.submit(account, FILE, records)
        stored = headers[UPLOAD_ID_HEADER] = receipt.upload_id or upload_id
        ctx.metrics.submitted.labels(API).inc(len(records))
    ctx.metrics.batch_size.labels(API).observe(len(records))
    ctx.metrics.count_records(API, verdicts, dry_run=dry_run)

    if wait is not None and stored is not None:
        # CleverTap's shape kept: a record rejected by a later rule (a limit) moves to
        # `unprocessed`; accepted and duplicate records are both `processed`.
        decided = await wait_decided(ctx.ingest, stored, results, wait)
        headers["X-Tidegate-Decided"] = "1" if decided else "0"
        for outcome, result, element in zip(
            decided.outcomes if decided else [], results, batch, strict=False
        ):
            if outcome["status"] == REJECTED and not isinstance(result, Rejection):
                unprocessed.append(
                    {
                        "status": "fail",
                        "code": error_number(ErrorCode(outcome["code"])),
                        "error": outcome["message"],
                        "record": element,
                    }
                )
    processed = len(records) - len(unprocessed)
    if not unprocessed:
        status = "success"
    elif processed == 0:
        status = "fail"
    else:
        status = "partial"
    return json_response(
        {"status": status, "processed": processed, "unprocessed": unprocessed}, headers=headers
    )
