"""`?wait=N` on a real runtime behind a real server: answers name the decided outcome, never guess."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest

from connectors.files.reader import read_upload
from connectors.http import HttpLimits, create_app, serve_http
from streams.core.settings import SettingsRegistry
from streams.embedded.runtime import EmbeddedRuntime
from tests.integration.memory_ingest import StaticAuth

NOW = datetime(2023, 10, 2, 14, 0, tzinfo=UTC)
AUTH = {"Authorization": "Bearer acme.key"}
EVENT = {"name": "purchase", "idempotencyKey": "order-1", "data": {"total": 150}}
PATH = "/people/contacts/gamer%40example.com/events"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    runtime = EmbeddedRuntime(tmp_path / "data", SettingsRegistry(), read_upload, clock=lambda: NOW)
    await runtime.start()
    app = create_app(
        runtime,
        StaticAuth(api_keys={"acme": "acme.key"}, passcodes={"acme": "acme.pass"}),
        clock=lambda: NOW,
        limits=HttpLimits(records_per_second=None),
    )
    server = await serve_http(app)
    try:
        async with httpx.AsyncClient(base_url=server.url, headers=AUTH, timeout=30) as client:
            yield client
    finally:
        await server.close()
        await runtime.stop()


async def test_the_same_naxai_record_twice_with_wait_says_duplicate(
    api: httpx.AsyncClient,
) -> None:
    first = await api.post(f"{PATH}?wait=10", content=orjson.dumps(EVENT))
    second = await api.post(f"{PATH}?wait=10", content=orjson.dumps(EVENT))
    assert (first.status_code, first.json()["status"], first.json()["decided"]) == (
        200,
        "accepted",
        True,
    )
    assert first.json()["triggered"] is True
    assert (second.status_code, second.json()["status"]) == (200, "duplicate")
    assert second.json()["upload_id"] == second.headers["X-Tidegate-Upload-Id"]
    assert second.json()["upload_id"] != first.json()["upload_id"]


async def test_without_wait_the_answer_is_received_not_accepted(api: httpx.AsyncClient) -> None:
    response = await api.post(PATH, content=orjson.dumps(EVENT))
    body = response.json()
    assert response.status_code == 202
    assert body["status"] == "received" and body["decided"] is False
    assert body["event_id"] and body["upload_id"] == response.headers["X-Tidegate-Upload-Id"]


async def test_a_batch_with_wait_gives_each_record_its_outcome(api: httpx.AsyncClient) -> None:
    await api.post(f"{PATH}?wait=10", content=orjson.dumps(EVENT))
    batch = [EVENT, {"data": {}}, {**EVENT, "idempotencyKey": "order-2"}]
    response = await api.post(f"{PATH}?wait=10", content=orjson.dumps(batch))
    body = response.json()
    assert body["decided"] is True
    # accepted and duplicate mixed in one batch: not told apart, never guessed
    assert [(e["status"], e.get("code")) for e in body["events"]] == [
        ("decided", None),
        ("rejected", "missing_event_name"),
        ("decided", None),
    ]
    single = await api.post(f"{PATH}?wait=10", content=orjson.dumps([EVENT, {"data": {}}]))
    assert [(e["status"], e.get("code")) for e in single.json()["events"]] == [
        ("duplicate", None),
        ("rejected", "missing_event_name"),
    ]


@pytest.mark.parametrize("value", ["-1", "soon", "nan"])
async def test_a_bad_wait_is_invalid_parameter(api: httpx.AsyncClient, value: str) -> None:
    response = await api.post(f"{PATH}?wait={value}", content=orjson.dumps(EVENT))
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_parameter"


async def test_clevertap_with_wait_keeps_clevertaps_shape(api: httpx.AsyncClient) -> None:
    record = {"identity": "u1", "ts": 1696255200, "type": "event", "evtName": "e", "evtData": {}}
    headers = {"X-CleverTap-Account-Id": "acme", "X-CleverTap-Passcode": "acme.pass"}
    response = await api.post(
        "/1/upload?wait=10", headers=headers, content=orjson.dumps({"d": [record, 5]})
    )
    body = response.json()
    assert set(body) == {"status", "processed", "unprocessed"}
    assert (body["status"], body["processed"], len(body["unprocessed"])) == ("partial", 1, 1)
    assert response.headers["X-Tidegate-Decided"] == "1"
