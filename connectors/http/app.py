"""The Starlette app of the HTTP upload API (CleverTap and Naxai dialects, upload history)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.http import clevertap, errors, naxai, sources, uploads
from connectors.http.context import (
    Authenticator,
    Clock,
    HttpContext,
    HttpLimits,
    json_response,
    utc_now,
)
from connectors.http.errors import ApiError
from connectors.http.metrics import HttpMetrics, MetricsMiddleware, route_label
from connectors.http.openapi import build_openapi
from connectors.http.ratelimit import RateLimiter
from connectors.ports import Ingest
from connectors.throttle import LoginThrottle

__all__ = ["Authenticator", "HttpLimits", "create_app"]

Handler = Callable[[HttpContext, Request], Awaitable[Response]]


def _bind(ctx: HttpContext, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await handler(ctx, request)

    endpoint.__name__ = handler.__name__
    return endpoint


def create_app(
    ingest: Ingest,
    auth: Authenticator,
    *,
    clock: Clock = utc_now,
    limits: HttpLimits = HttpLimits(),  # noqa: B008 (frozen, immutable default)
    source_status: sources.SourceStatus | None = None,
    throttle: LoginThrottle | None = None,
) -> Starlette:
    """The HTTP API over ``ingest``; ``auth`` checks credentials; ``clock`` stamps receipt.

    The app's context is at ``app.state.tidegate`` (an `HttpContext`: metrics, limiter).
    """
    metrics = HttpMetrics()
    limiter = RateLimiter(
        limits.records_per_second, limits.burst_records, min_burst=limits.max_batch
    )
    ctx = HttpContext(
        ingest,
        auth,
        clock=clock,
        limits=limits,
        metrics=metrics,
        limiter=limiter,
        throttle=throttle,
    )
    openapi_body = orjson.dumps(build_openapi(limits))

    async def healthz(request: Request) -> Response:
        return json_response({"status": "ok"})

    async def metrics_endpoint(request: Request) -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    async def openapi(request: Request) -> Response:
        return Response(openapi_body, media_type="application/json")

    def render(request: Request, error: ApiError) -> Response:
        metrics.refusals.labels(route_label(request.scope), error.code).inc()
        body = error.body(clevertap=request.url.path == clevertap.PATH)
        return json_response(body, error.status, error.headers)

    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return render(request, exc)

    async def on_http_exception(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: errors.NOT_FOUND, 405: errors.METHOD_NOT_ALLOWED}.get(
            exc.status_code, errors.INVALID_PAYLOAD
        )
        return render(
            request, ApiError(exc.status_code, code, str(exc.detail), headers=exc.headers)
        )

    async def on_error(request: Request, exc: Exception) -> Response:
        return render(request, ApiError(500, errors.INTERNAL_ERROR, "internal error"))

    async def list_sources(request: Request) -> Response:
        return await sources.list_sources(ctx, request, source_status or (lambda _account: None))

    routes = [
        Route(clevertap.PATH, _bind(ctx, clevertap.upload), methods=["POST"]),
        Route(naxai.PATH, _bind(ctx, naxai.events), methods=["POST"]),
        Route("/uploads", _bind(ctx, uploads.list_uploads), methods=["GET"]),
        Route("/uploads/{upload_id}", _bind(ctx, uploads.get_upload), methods=["GET"]),
        Route("/uploads/{upload_id}/errors", _bind(ctx, uploads.feedback), methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/sources", list_sources, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(MetricsMiddleware, metrics=metrics)],
        exception_handlers={
            ApiError: on_api_error,
            HTTPException: on_http_exception,
            Exception: on_error,
        },
    )
    app.state.tidegate = ctx
    return app
