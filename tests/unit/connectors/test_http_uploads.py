"""GET /uploads, /uploads/{id}, /uploads/{id}/errors: each account sees only its own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import orjson
import pytest

from connectors.http import HttpLimits, create_app
from connectors.http.uploads import safe_filename
from connectors.ports import UploadView
from streams.core.normalize import normalize
from streams.core.records import RawRecord
from tests.integration.memory_ingest import MemoryIngest, StaticAuth

NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)
ACME = {"X-CleverTap-Account-Id": "acme", "X-CleverTap-Passcode": "pa"}
ACME_KEY = {"Authorization": "Bearer acme.ka"}
BETA = {"X-CleverTap-Account-Id": "beta", "X-CleverTap-Passcode": "pb"}
BETA_KEY = {"Authorization": "Bearer beta.kb"}


@pytest.fixture
def ingest() -> MemoryIngest:
    return MemoryIngest()


@pytest.fixture
async def client(ingest: MemoryIngest) -> AsyncIterator[httpx.AsyncClient]:
    auth = StaticAuth(
        api_keys={"acme": "acme.ka", "beta": "beta.kb"}, passcodes={"acme": "pa", "beta": "pb"}
    )
    app = create_app(ingest, auth, clock=lambda: NOW, limits=HttpLimits(records_per_second=None))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://tidegate.test") as c:
        yield c


def batch(*names: str | None) -> bytes:
    return orjson.dumps(
        {
            "d": [
                {"identity": "u1", "type": "event", "evtData": {}}
                | ({"evtName": name} if name else {})
                for name in names
            ]
        }
    )


async def upload(client: httpx.AsyncClient, headers: dict[str, str], body: bytes) -> str:
    response = await client.post("/1/upload", headers=headers, content=body)
    assert response.status_code == 200, response.text
    return response.headers["X-Tidegate-Upload-Id"]


async def test_list_get_and_feedback_of_own_uploads(client: httpx.AsyncClient) -> None:
    first = await upload(client, ACME, batch("a", None, "b"))
    second = await upload(client, ACME, batch("c"))
    listed = (await client.get("/uploads", headers=ACME_KEY)).json()["uploads"]
    assert [u["upload_id"] for u in listed] == [second, first]
    view = (await client.get(f"/uploads/{first}", headers=ACME)).json()
    assert view["account"] == "acme"
    assert view["status"] == "partial"
    assert view["counts"]["rejected"] == 1
    assert view["filename"] == "api:/1/upload"
    response = await client.get(f"/uploads/{first}/errors", headers=ACME)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    assert response.headers["content-disposition"] == f'attachment; filename="{first}.errors.jsonl"'
    [line] = response.content.splitlines()
    row = orjson.loads(line)
    assert row["code"] == "missing_event_name"
    assert row["line"] == 2
    assert row["record"] == {"identity": "u1", "type": "event", "evtData": {}}
    # no rejected rows, no feedback file
    assert (await client.get(f"/uploads/{second}/errors", headers=ACME)).status_code == 404


async def test_limit_parameter(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        await upload(client, ACME, batch("a"))
    assert len((await client.get("/uploads?limit=2", headers=ACME)).json()["uploads"]) == 2
    for bad in ["0", "-1", "abc", "1001", ""]:
        response = await client.get(f"/uploads?limit={bad}", headers=ACME)
        assert response.status_code == 400, bad
        assert response.json()["code"] == "invalid_parameter"


async def test_one_account_never_reads_another_accounts_uploads(
    client: httpx.AsyncClient, ingest: MemoryIngest
) -> None:
    acme_upload = await upload(client, ACME, batch("a", None))
    beta_upload = await upload(client, BETA, batch("b"))
    for headers in (BETA, BETA_KEY):
        listed = (await client.get("/uploads", headers=headers)).json()["uploads"]
        assert [u["upload_id"] for u in listed] == [beta_upload]
        for path in (f"/uploads/{acme_upload}", f"/uploads/{acme_upload}/errors"):
            response = await client.get(path, headers=headers)
            assert response.status_code == 404
            assert response.json()["code"] == "not_found"
    # the same answer as for an id that does not exist at all
    missing = await client.get("/uploads/no-such-upload", headers=BETA)
    assert missing.status_code == 404
    assert (await client.get(f"/uploads/{acme_upload}/errors", headers=ACME)).status_code == 200


async def test_one_account_never_writes_into_another(
    client: httpx.AsyncClient, ingest: MemoryIngest
) -> None:
    # beta's secrets with acme's name: refused
    for headers in (
        {"X-CleverTap-Account-Id": "acme", "X-CleverTap-Passcode": "pb"},
        {"Authorization": "Bearer beta.kb", "X-Tidegate-Account": "acme"},
        {"Authorization": "Bearer acme.kb"},
    ):
        response = await client.post("/1/upload", headers=headers, content=batch("a"))
        assert response.status_code == 401
    # beta's own upload lands in beta, whatever the body says
    await client.post(
        "/people/contacts/u/events",
        headers=BETA_KEY,
        content=b'{"name": "p", "data": {"account": "acme"}}',
    )
    assert ingest.records("acme") == []
    [record] = ingest.records("beta")
    assert record.source.account == "beta"
    event = normalize(record)
    assert not isinstance(event, RawRecord)
    assert getattr(event, "account", None) == "beta"


async def test_views_from_the_ingest_for_other_accounts_are_filtered(
    client: httpx.AsyncClient, ingest: MemoryIngest
) -> None:
    class Leaky(MemoryIngest):
        async def list_uploads(
            self, account: str | None = None, limit: int = 100
        ) -> list[UploadView]:
            return await super().list_uploads(None, limit)  # ignores the account

    leaky = Leaky()
    leaky.plant(UploadView("x1", "acme", "f.jsonl", "file", "zeta", "success", "2024", None, False))
    app = create_app(leaky, StaticAuth(passcodes={"beta": "pb"}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as other:
        assert (await other.get("/uploads", headers=BETA)).json() == {"uploads": []}


async def test_planted_feedback_in_its_own_format(
    ingest: MemoryIngest, client: httpx.AsyncClient
) -> None:
    ingest.plant(
        UploadView("v1", "acme", "orders.csv", "file", "vero", "partial", "2024", None, False),
        feedback=("../../orders.errors.csv", b"email,event,code,message\r\n"),
    )
    response = await client.get("/uploads/v1/errors", headers=ACME)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == 'attachment; filename="orders.errors.csv"'
    assert response.content == b"email,event,code,message\r\n"


def test_safe_filename() -> None:
    assert safe_filename('a"b\r\nc.csv') == "a_b_c.csv"
    assert safe_filename("../../x.jsonl") == "x.jsonl"
    assert safe_filename("..") == "feedback"
