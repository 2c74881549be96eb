"""GET /metrics: records by outcome and code, batch sizes, request latency."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from connectors.http import HttpLimits, IngestUnavailable, create_app
from tests.integration.memory_ingest import MemoryIngest, StaticAuth

NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)
CT = {"X-CleverTap-Account-Id": "acme", "X-CleverTap-Passcode": "p"}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def test_metrics_count_records_batches_and_latency() -> None:
    ingest = MemoryIngest()
    app = create_app(
        ingest,
        StaticAuth(passcodes={"acme": "p"}),
        clock=lambda: NOW,
        limits=HttpLimits(records_per_second=None),
    )
    ok = {"identity": "u", "type": "event", "evtName": "e", "evtData": {}}
    bad = {"identity": "u", "type": "event"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        await client.post("/1/upload", headers=CT, content=orjson.dumps({"d": [ok, ok, bad]}))
        await client.post("/1/upload?dryRun=1", headers=CT, content=orjson.dumps({"d": [bad]}))
        await client.post("/1/upload", content=b"{}")  # 401
        ingest.fail_with = IngestUnavailable()
        await client.post("/1/upload", headers=CT, content=orjson.dumps({"d": [ok]}))
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    got = samples(response.text)

    def records(outcome: str, code: str, dry_run: str) -> float:
        labels = {"api": "clevertap", "outcome": outcome, "code": code, "dry_run": dry_run}
        return got.get(("tidegate_http_records_total", tuple(sorted(labels.items()))), 0.0)

    assert records("accepted", "", "false") == 2
    assert records("rejected", "missing_event_name", "false") == 1
    assert records("rejected", "missing_event_name", "true") == 1
    assert got[("tidegate_http_batch_records_count", (("api", "clevertap"),))] == 2
    assert got[("tidegate_http_batch_records_sum", (("api", "clevertap"),))] == 4
    assert got[("tidegate_http_submitted_records_total", (("api", "clevertap"),))] == 3
    latency = {
        labels: value
        for (name, labels), value in got.items()
        if name == "tidegate_http_request_duration_seconds_count"
    }
    route = (("method", "POST"), ("route", "/1/upload"))
    assert latency[(*route, ("status", "200"))] == 2
    assert latency[(*route, ("status", "401"))] == 1
    assert latency[(*route, ("status", "503"))] == 1
    refused = got[
        ("tidegate_http_refused_requests_total", (("code", "unavailable"), ("route", "/1/upload")))
    ]
    assert refused == 1


async def test_each_app_has_its_own_registry() -> None:
    auth = StaticAuth()
    first = create_app(MemoryIngest(), auth)
    second = create_app(MemoryIngest(), auth)
    assert first.state.tidegate.metrics.registry is not second.state.tidegate.metrics.registry
