"""POST /people/contacts/{identifier}/events: Naxai events on the in-memory ingest."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import orjson
import pytest

from connectors.http import HttpLimits, create_app
from streams.core.normalize import normalize
from streams.core.records import Dialect, Event, SourceKind, make_event_id
from tests.integration.memory_ingest import MemoryIngest, StaticAuth

NOW = datetime(2023, 10, 2, 13, 0, tzinfo=UTC)  # the seed's timestamp 1696252121 is 2023-10-02
AUTH = {"Authorization": "Bearer acme.secret", "accept": "application/json"}
# The seed's curl body, verbatim.
SEED_BODY = "\n".join(
    [
        "",
        "{",
        '  "name": "purchase",',
        '  "type": "event",',
        '  "data" : ',  # sic: trailing space and a tab-indented brace, as in the seed
        "  \t{",
        '    "items": [',
        "            {",
        '                "product": "keyboard",',
        '                "price": 100',
        "            },",
        "            {",
        '                "product": "mouse",',
        '                "price": 50',
        "            }",
        "        ],",
        '    "total": 150',
        "    }",
        "}",
        "",
    ]
)


@pytest.fixture
def ingest() -> MemoryIngest:
    return MemoryIngest()


@pytest.fixture
async def client(ingest: MemoryIngest) -> AsyncIterator[httpx.AsyncClient]:
    auth = StaticAuth(api_keys={"acme": "acme.secret"})
    app = create_app(ingest, auth, clock=lambda: NOW, limits=HttpLimits(records_per_second=None))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://tidegate.test") as c:
        yield c


async def test_seed_curl_body_is_received_not_yet_accepted(
    client: httpx.AsyncClient, ingest: MemoryIngest
) -> None:
    response = await client.post(
        "/people/contacts/42/events",
        headers={**AUTH, "content-type": "application/json"},
        content=SEED_BODY,
    )
    assert response.status_code == 202
    [record] = ingest.records("acme")
    assert response.json() == {
        "status": "received",
        "event_id": make_event_id(record.source),
        "upload_id": record.source.upload_id,
        "decided": False,
    }
    assert response.headers["X-Tidegate-Upload-Id"] == record.source.upload_id
    assert record.path_identifier == "42"
    assert record.source.dialect is Dialect.NAXAI
    assert record.source.kind is SourceKind.API
    assert record.source.line == 1
    assert record.trigger is True
    assert record.received_at == NOW
    event = normalize(record)
    assert isinstance(event, Event)
    assert event.identifiers == {"user_id": "42"}
    assert event.name == "purchase"
    assert event.properties["total"] == 150
    assert event.timestamp == NOW


async def test_email_identifier_idempotency_key_and_timestamp(
    client: httpx.AsyncClient, ingest: MemoryIngest
) -> None:
    body = {
        "name": "purchase",
        "idempotencyKey": "My-unique-key",
        "timestamp": 1696252121,
        "data": {"total": 150},
    }
    response = await client.post(
        "/people/contacts/g%40x.io/events", headers=AUTH, content=orjson.dumps(body)
    )
    assert response.status_code == 202
    event = normalize(ingest.records()[0])
    assert isinstance(event, Event)
    assert event.identifiers == {"email": "g@x.io"}
    assert event.idempotency_key == "My-unique-key"
    assert int(event.timestamp.timestamp()) == 1696252121


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"name": "p", "idempotencyKey": "k" * 129}, "idempotency_key_too_long"),
        ({"data": {}}, "missing_event_name"),
        ({"name": "p", "total": 150}, "invalid_field"),
        ({"name": "p", "timestamp": "yesterday"}, "invalid_timestamp"),
        ({"name": "p", "timestamp": 1000000000}, "timestamp_too_old"),
        ({"name": "x" * 121}, "key_too_long"),
    ],
)
async def test_a_rejected_event_is_400_with_its_code(
    client: httpx.AsyncClient, ingest: MemoryIngest, body: dict[str, object], code: str
) -> None:
    response = await client.post(
        "/people/contacts/42/events", headers=AUTH, content=orjson.dumps(body)
    )
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert set(response.json()) == {"code", "message"}
    # stored all the same: the runtime records the rejection (dead letter, feedback file)
    assert len(ingest.records()) == 1


async def test_blocked_path_identifier_is_rejected(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/people/contacts/anonymous/events", headers=AUTH, content=b'{"name": "p"}'
    )
    assert response.status_code == 400
    assert response.json()["code"] == "blocked_identity"


async def test_the_seed_page_examples_missing_a_comma_are_invalid_payload(
    client: httpx.AsyncClient, ingest: MemoryIngest
) -> None:
    body = b'{"name": "purchase", "data": {"items": []\n "total": 150}}'
    response = await client.post("/people/contacts/42/events", headers=AUTH, content=body)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_payload"
    assert ingest.submissions == 0


@pytest.mark.parametrize("body", [b"", b"5", b'"x"', b"null", b"{"])
async def test_malformed_bodies(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post("/people/contacts/42/events", headers=AUTH, content=body)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_payload"


async def test_an_array_of_events_is_one_upload_with_per_event_results(
    client: httpx.AsyncClient, ingest: MemoryIngest
) -> None:
    batch = [{"name": "a"}, {"data": {}}, 3, {"name": "b", "data": {"x": 1}}]
    response = await client.post(
        "/people/contacts/u7/events", headers=AUTH, content=orjson.dumps(batch)
    )
    assert response.status_code == 202
    result = response.json()
    assert result["status"] == "partial"
    assert (result["received"], result["rejected"]) == (2, 2)
    assert [(e["index"], e["status"], e.get("code")) for e in result["events"]] == [
        (0, "received", None),
        (1, "rejected", "missing_event_name"),
        (2, "rejected", "invalid_json"),
        (3, "received", None),
    ]
    stored = ingest.records()
    assert [r.source.line for r in stored] == [1, 2, 3, 4]
    assert {r.source.upload_id for r in stored} == {response.headers["X-Tidegate-Upload-Id"]}
    assert result["events"][0]["event_id"] == make_event_id(stored[0].source)


async def test_an_array_where_every_event_fails_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/people/contacts/u/events", headers=AUTH, content=b"[{}, 1]")
    assert response.status_code == 400
    assert response.json()["status"] == "rejected"


async def test_array_limit_is_1000(client: httpx.AsyncClient, ingest: MemoryIngest) -> None:
    ok = await client.post(
        "/people/contacts/u/events", headers=AUTH, content=orjson.dumps([{"name": "e"}] * 1000)
    )
    assert ok.status_code == 202
    assert ok.json()["received"] == 1000
    response = await client.post(
        "/people/contacts/u/events", headers=AUTH, content=orjson.dumps([{"name": "e"}] * 1001)
    )
    assert response.status_code == 400
    assert response.json()["code"] == "batch_too_large"
    assert len(ingest.records()) == 1000


async def test_dry_run(client: httpx.AsyncClient, ingest: MemoryIngest) -> None:
    response = await client.post(
        "/people/contacts/u/events?dryRun=1", headers=AUTH, content=b'{"name": "p"}'
    )
    assert response.status_code == 202
    assert response.headers["X-Tidegate-Dry-Run"] == "1"
    assert ingest.submissions == 0


async def test_identifier_with_an_encoded_slash(
    client: httpx.AsyncClient, ingest: MemoryIngest
) -> None:
    response = await client.post(
        "/people/contacts/team%2F42/events", headers=AUTH, content=b'{"name": "p"}'
    )
    assert response.status_code == 202
    assert ingest.records()[0].path_identifier == "team/42"
