"""POST /1/upload: CleverTap's Upload Events API on the in-memory ingest."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from connectors.http import HttpLimits, create_app
from streams.core.errors import ErrorCode, error_number
from streams.core.records import Dialect, SourceKind
from tests.integration.memory_ingest import MemoryIngest, StaticAuth

SEED_DAY = datetime(2016, 7, 13, tzinfo=UTC)  # the seed's ts 1468308340 is 2016-07-12
SEEDS = Path(__file__).resolve().parents[2] / "fixtures" / "seeds"
HEADERS = {
    "X-CleverTap-Account-Id": "ACCOUNT_ID",
    "X-CleverTap-Passcode": "PASSCODE",
    "Content-Type": "application/json; charset=utf-8",
}
# The seed's own curl/requests body, verbatim.
SEED_BODY = (
    '{ "d": [ { "FBID": "34322423", "ts": 1468308340, "type": "event", "evtName": "Product '
    'viewed", "evtData": { "Product name": "Casio Chronograph Watch", "Category": "Mens Watch",'
    ' "Price": 59.99, "Currency": "USD" } } ] }'
)


def good(i: int = 0) -> dict[str, Any]:
    return {
        "identity": f"user-{i}",
        "ts": 1468308340,
        "type": "event",
        "evtName": "Product viewed",
        "evtData": {"n": i},
    }


@pytest.fixture
def ingest() -> MemoryIngest:
    return MemoryIngest()


@pytest.fixture
async def client(ingest: MemoryIngest) -> AsyncIterator[httpx.AsyncClient]:
    auth = StaticAuth(passcodes={"ACCOUNT_ID": "PASSCODE", "other": "other-pass"})
    app = create_app(
        ingest, auth, clock=lambda: SEED_DAY, limits=HttpLimits(records_per_second=None)
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://tidegate.test") as c:
        yield c


async def test_seed_example_request_gets_the_seed_example_response(
    client: httpx.AsyncClient, ingest: MemoryIngest
) -> None:
    response = await client.post("/1/upload", headers=HEADERS, content=SEED_BODY)
    assert response.status_code == 200
    assert response.json() == {"status": "success", "processed": 1, "unprocessed": []}
    [record] = ingest.records("ACCOUNT_ID")
    assert response.headers["X-Tidegate-Upload-Id"] == record.source.upload_id
    assert record.source.kind is SourceKind.API
    assert record.source.dialect is Dialect.CLEVERTAP
    assert record.source.file == "api:/1/upload"
    assert record.source.member is None
    assert record.source.line == 1
    assert record.received_at == SEED_DAY
    assert record.trigger is True
    assert orjson.loads(record.payload) == orjson.loads(SEED_BODY)["d"][0]


async def test_a_utf8_bom_before_the_body_is_allowed(
    client: httpx.AsyncClient, ingest: MemoryIngest
) -> None:
    response = await client.post(
        "/1/upload", headers=HEADERS, content=b"\xef\xbb\xbf" + SEED_BODY.encode()
    )
    assert response.status_code == 200
    assert response.json() == {"status": "success", "processed": 1, "unprocessed": []}
    assert len(ingest.records("ACCOUNT_ID")) == 1


async def test_seed_payload_file_both_records_processed(
    client: httpx.AsyncClient, ingest: MemoryIngest
) -> None:
    body = (SEEDS / "clevertap_upload.json").read_bytes()
    response = await client.post("/1/upload", headers=HEADERS, content=body)
    assert response.json() == {"status": "success", "processed": 2, "unprocessed": []}
    assert [r.source.line for r in ingest.records()] == [1, 2]


async def test_each_request_is_a_new_upload(
    client: httpx.AsyncClient, ingest: MemoryIngest
) -> None:
    first = await client.post("/1/upload", headers=HEADERS, content=SEED_BODY)
    second = await client.post("/1/upload", headers=HEADERS, content=SEED_BODY)
    ids = {first.headers["X-Tidegate-Upload-Id"], second.headers["X-Tidegate-Upload-Id"]}
    assert len(ids) == 2
    assert set(ingest.uploads) == ids


async def test_dry_run_validates_and_stores_nothing(
    client: httpx.AsyncClient, ingest: MemoryIngest
) -> None:
    body = {"d": [good(1), {"type": "event", "evtName": "x"}]}
    response = await client.post("/1/upload?dryRun=1", headers=HEADERS, content=orjson.dumps(body))
    assert response.status_code == 200
    result = response.json()
    assert result["status"] == "partial"
    assert result["processed"] == 1
    assert [u["code"] for u in result["unprocessed"]] == [error_number(ErrorCode.MISSING_IDENTITY)]
    assert "X-Tidegate-Upload-Id" not in response.headers
    assert ingest.uploads == {} and ingest.submissions == 0


async def test_1000_records_pass_and_1001_are_batch_too_large(
    client: httpx.AsyncClient, ingest: MemoryIngest
) -> None:
    ok = await client.post(
        "/1/upload", headers=HEADERS, content=orjson.dumps({"d": [good(i) for i in range(1000)]})
    )
    assert ok.json()["processed"] == 1000
    response = await client.post(
        "/1/upload", headers=HEADERS, content=orjson.dumps({"d": [good(i) for i in range(1001)]})
    )
    assert response.status_code == 400
    assert response.json()["code"] == "batch_too_large"
    assert response.json()["status"] == "fail"
    assert len(ingest.records()) == 1000


async def test_record_errors_list_the_failing_records_and_the_rest_are_stored(
    client: httpx.AsyncClient, ingest: MemoryIngest
) -> None:
    too_old = {**good(2), "ts": 1300000000}
    no_name = {"identity": "u", "type": "event", "evtData": {}}
    batch = [good(0), too_old, good(1), no_name, 7, "text", [1]]
    response = await client.post("/1/upload", headers=HEADERS, content=orjson.dumps({"d": batch}))
    assert response.status_code == 200
    result = response.json()
    assert result["status"] == "partial"
    assert result["processed"] == 2
    assert result["unprocessed"] == [
        {
            "status": "fail",
            "code": error_number(ErrorCode.TIMESTAMP_TOO_OLD),
            "error": result["unprocessed"][0]["error"],
            "record": too_old,
        },
        {
            "status": "fail",
            "code": error_number(ErrorCode.MISSING_EVENT_NAME),
            "error": "evtName is required",
            "record": no_name,
        },
        *(
            {
                "status": "fail",
                "code": error_number(ErrorCode.INVALID_JSON),
                "error": "each line must be a JSON object",
                "record": element,
            }
            for element in (7, "text", [1])
        ),
    ]
    for item in result["unprocessed"]:
        assert set(item) == {"status", "code", "error", "record"}
    # every record goes to the runtime, which records each outcome
    stored = ingest.records("ACCOUNT_ID")
    assert [r.source.line for r in stored] == [1, 2, 3, 4, 5, 6, 7]
    view = next(iter(ingest.uploads.values()))
    assert view.name == "api:/1/upload"


async def test_all_records_failing_is_status_fail(client: httpx.AsyncClient) -> None:
    response = await client.post("/1/upload", headers=HEADERS, content=b'{"d": [1, 2]}')
    assert response.json()["status"] == "fail"
    assert response.json()["processed"] == 0


async def test_empty_batch_is_success_and_creates_no_upload(
    client: httpx.AsyncClient, ingest: MemoryIngest
) -> None:
    response = await client.post("/1/upload", headers=HEADERS, content=b'{"d": []}')
    assert response.json() == {"status": "success", "processed": 0, "unprocessed": []}
    assert ingest.submissions == 0


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[]", b'{"d": {}}', b'{"x": []}', b'"d"', b"\xff\xfe", b'{"d": [1,]}'],
)
async def test_malformed_body_is_invalid_payload(
    client: httpx.AsyncClient, ingest: MemoryIngest, body: bytes
) -> None:
    response = await client.post("/1/upload", headers=HEADERS, content=body)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_payload"
    assert response.json()["status"] == "fail"
    assert ingest.submissions == 0


async def test_the_seed_page_payload_with_its_comment_is_invalid_payload(
    client: httpx.AsyncClient,
) -> None:
    body = b'{"d": [{"FBID": "1", "ts": 1468308340, // time\n "type": "event"}]}'
    response = await client.post("/1/upload", headers=HEADERS, content=body)
    assert response.status_code == 400


async def test_content_type_is_not_required(client: httpx.AsyncClient) -> None:
    headers = {k: v for k, v in HEADERS.items() if k != "Content-Type"}
    response = await client.post("/1/upload", headers=headers, content=SEED_BODY)
    assert response.json()["status"] == "success"


async def test_dollar_d_dates_and_profile_records_pass(client: httpx.AsyncClient) -> None:
    body = {
        "d": [
            {**good(1), "evtData": {"Delivery By": "$D_1468322268"}},
            {"identity": "u1", "type": "profile", "profileData": {"plan": "gold"}},
        ]
    }
    response = await client.post("/1/upload", headers=HEADERS, content=orjson.dumps(body))
    assert response.json() == {"status": "success", "processed": 2, "unprocessed": []}
