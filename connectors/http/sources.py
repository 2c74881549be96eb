"""`GET /sources`: the status of an account's import sources (its S3 bucket, docs/S3.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from connectors.http.context import HttpContext, json_response

#: The S3 source status of an account, or None when it has no S3 source.
SourceStatus = Callable[[str], dict[str, Any] | None]


async def list_sources(ctx: HttpContext, request: Request, status: SourceStatus) -> Response:
    account = await ctx.authenticate(request, prefer="bearer")
    return json_response({"account": account, "s3": status(account)})
