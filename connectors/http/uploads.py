"""`GET /uploads`, `/uploads/{id}`, `/uploads/{id}/errors`: an account's own upload history."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from connectors.http import errors
from connectors.http.context import HttpContext, json_response
from connectors.http.errors import ApiError
from connectors.ports import UploadView

MEDIA_TYPES = {
    ".jsonl": "application/x-ndjson",
    ".ndjson": "application/x-ndjson",
    ".json": "application/json",
    ".csv": "text/csv; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}


def view_body(view: UploadView) -> dict[str, Any]:
    return dataclasses.asdict(view)


def not_found(upload_id: str) -> ApiError:
    return ApiError(404, errors.NOT_FOUND, f"no upload {upload_id!r} in this account")


def parse_limit(raw: str | None, default: int, maximum: int) -> int:
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= maximum:
        raise ApiError(
            400, errors.INVALID_PARAMETER, f"limit must be an integer from 1 to {maximum}"
        )
    return value


async def own_upload(ctx: HttpContext, account: str, upload_id: str) -> UploadView:
    """The upload if it belongs to ``account``; another account's id is simply not found."""
    view = await ctx.call_ingest(ctx.ingest.get_upload(upload_id))
    if view is None or view.account != account:
        raise not_found(upload_id)
    return view


async def list_uploads(ctx: HttpContext, request: Request) -> Response:
    account = await ctx.authenticate(request, prefer="bearer")
    limit = parse_limit(
        request.query_params.get("limit"), ctx.limits.default_list_limit, ctx.limits.max_list_limit
    )
    views = await ctx.call_ingest(ctx.ingest.list_uploads(account, limit))
    return json_response({"uploads": [view_body(v) for v in views if v.account == account][:limit]})


async def get_upload(ctx: HttpContext, request: Request) -> Response:
    account = await ctx.authenticate(request, prefer="bearer")
    view = await own_upload(ctx, account, request.path_params["upload_id"])
    return json_response(view_body(view))


def safe_filename(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._")
    return cleaned or "feedback"


async def feedback(ctx: HttpContext, request: Request) -> Response:
    account = await ctx.authenticate(request, prefer="bearer")
    upload_id: str = request.path_params["upload_id"]
    await own_upload(ctx, account, upload_id)
    found = await ctx.call_ingest(ctx.ingest.feedback(upload_id))
    if found is None:
        raise ApiError(404, errors.NOT_FOUND, f"upload {upload_id!r} has no feedback file")
    filename, content = found
    filename = safe_filename(filename)
    suffix = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return Response(
        content,
        media_type=MEDIA_TYPES.get(suffix, "application/octet-stream"),
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
