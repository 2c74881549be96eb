"""Prometheus metrics of one HTTP app (its own registry, so apps and tests never collide)."""

from __future__ import annotations

import re
import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BATCH_BUCKETS = (1, 5, 10, 50, 100, 250, 500, 750, 1000)
_CONVERTOR = re.compile(r"\{(\w+):\w+\}")
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


class HttpMetrics:
    """The series `/metrics` exposes (see docs/HTTP_API.md#metrics)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.records = Counter(
            "tidegate_http_records",
            "API records by the edge's stateless verdict (accepted/rejected) and error code",
            ["api", "outcome", "code", "dry_run"],
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "tidegate_http_batch_records",
            "Records per API request",
            ["api"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.latency = Histogram(
            "tidegate_http_request_duration_seconds",
            "HTTP request latency, first byte received to last byte sent",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.refusals = Counter(
            "tidegate_http_refused_requests",
            "Requests refused as a whole, by route and code",
            ["route", "code"],
            registry=self.registry,
        )
        self.submitted = Counter(
            "tidegate_http_submitted_records",
            "Records handed to the ingest (durably written)",
            ["api"],
            registry=self.registry,
        )

    def count_records(self, api: str, verdicts: dict[str, int], *, dry_run: bool) -> None:
        """``verdicts``: code (or "" for accepted) -> count."""
        flag = "true" if dry_run else "false"
        for code, n in verdicts.items():
            outcome = "rejected" if code else "accepted"
            self.records.labels(api, outcome, code, flag).inc(n)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def route_label(scope: Scope) -> str:
    """The matched route's template, as the OpenAPI document spells it (no convertors)."""
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return _CONVERTOR.sub(r"{\1}", path) if isinstance(path, str) else "unmatched"


class MetricsMiddleware:
    """Times every HTTP request by method, route template (not the raw path) and status."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.latency.labels(scope["method"], route_label(scope), str(status)).observe(
                time.perf_counter() - start
            )
