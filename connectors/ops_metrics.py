"""Prometheus series of the running instance: records, uploads, decision lag, SFTP, watched folder."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from connectors.ports import Ingest, UploadView
from connectors.staging import HandOverResult
from streams.core.status import FINAL_STATUSES as FINAL
from streams.core.timeparse import from_iso

DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


class OpsMetrics:
    """Registered on the HTTP app's registry, so `/metrics` carries them (docs/RUNNING.md)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.records = Counter(
            "tidegate_records",
            "Records by their decided outcome (accepted, duplicate, rejected) and error code",
            ["account", "outcome", "code"],
            registry=registry,
        )
        self.triggered = Counter(
            "tidegate_records_triggered",
            "Accepted records that trigger campaigns",
            ["account"],
            registry=registry,
        )
        self.uploads = Counter(
            "tidegate_uploads", "Finished uploads by final status", ["status"], registry=registry
        )
        self.upload_seconds = Histogram(
            "tidegate_upload_duration_seconds",
            "From receipt to final status",
            ["status"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.decision_lag = Gauge(
            "tidegate_decision_lag_seconds",
            "Age of the oldest undecided record (its upload's receipt); 0 when none waits",
            registry=registry,
        )
        self.sftp_sessions = Gauge(
            "tidegate_sftp_sessions", "Open SFTP connections", registry=registry
        )
        self.handovers = Counter(
            "tidegate_handovers",
            "Files handed over to the runtime, by source (sftp, watch) and result",
            ["source", "result"],
            registry=registry,
        )
        self.handover_bytes = Counter(
            "tidegate_handover_bytes",
            "Bytes of the files handed over, by source (sftp: bytes received over SFTP)",
            ["source"],
            registry=registry,
        )

    def upload_finished(self, view: UploadView) -> None:
        if view.status not in FINAL:
            return
        counts = view.counts
        by_code = dict(counts.get("by_code") or {})
        self.records.labels(view.account, "accepted", "").inc(int(counts.get("accepted", 0)))
        self.records.labels(view.account, "duplicate", "").inc(int(counts.get("duplicate", 0)))
        for code, n in by_code.items():
            self.records.labels(view.account, "rejected", code).inc(int(n))
        self.triggered.labels(view.account).inc(int(counts.get("triggered", 0)))
        self.uploads.labels(view.status).inc()
        start, end = from_iso(view.received_at), from_iso(view.finished_at or "")
        if start is not None and end is not None:
            self.upload_seconds.labels(view.status).observe(max(0.0, (end - start).total_seconds()))

    def handed_over(self, result: HandOverResult) -> None:
        source = result.claim.source
        self.handovers.labels(source, "accepted" if result.accepted else "refused").inc()
        with contextlib.suppress(OSError):
            size = (result.claim.dir / result.claim.filename).stat().st_size
            self.handover_bytes.labels(source).inc(size)

    def observe_lag(self, undecided: list[UploadView], now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        times = [t for t in (from_iso(v.received_at) for v in undecided) if t is not None]
        self.decision_lag.set(max(0.0, (now - min(times)).total_seconds()) if times else 0.0)


async def watch_lag(metrics: OpsMetrics, ingest: Ingest, every: float = 1.0) -> None:
    """Keeps the decision-lag gauge current (the oldest of the latest 1000 uploads)."""
    while True:
        with contextlib.suppress(Exception):
            views = await ingest.list_uploads(None, 1000)
            metrics.observe_lag([v for v in views if v.status in ("queued", "processing")])
        await asyncio.sleep(every)


def install(
    registry: CollectorRegistry, ingest: Ingest, sftp: Any, watch: Any
) -> tuple[OpsMetrics, asyncio.Task[None]]:
    """Hooks the series onto a running instance's parts; returns them and the lag task."""
    metrics = OpsMetrics(registry)
    metrics.sftp_sessions.set_function(lambda: len(getattr(sftp, "_connections", ())))
    for part in (sftp, watch):
        part.handover.on_result = chain(part.handover.on_result, metrics.handed_over)
    finished = getattr(ingest, "on_finished", None)
    if isinstance(finished, list):  # the embedded runtime; Kafka: the workers' status topic
        finished.append(metrics.upload_finished)
    task = asyncio.get_running_loop().create_task(watch_lag(metrics, ingest), name="lag")
    return metrics, task


def chain(
    first: Callable[[HandOverResult], None] | None, then: Callable[[HandOverResult], None]
) -> Callable[[HandOverResult], None]:
    """Both observers of a hand-over, the existing one first."""

    def both(result: HandOverResult) -> None:
        if first is not None:
            first(result)
        then(result)

    return both
