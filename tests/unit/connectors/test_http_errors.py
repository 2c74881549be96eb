"""Request-level refusals: 401, 413, 415, 429, 503, refused receipts, 404/405, 500."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest

from connectors.http import HttpLimits, IngestUnavailable, create_app
from streams.core.errors import ErrorCode, Rejection, Stage
from tests.integration.memory_ingest import MemoryIngest, StaticAuth

NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)
CT = {"X-CleverTap-Account-Id": "acme", "X-CleverTap-Passcode": "pass-acme"}
BEARER = {"Authorization": "Bearer acme.key-acme"}


def records(n: int) -> bytes:
    record = {"identity": "u", "type": "event", "evtName": "viewed", "evtData": {}}
    return orjson.dumps({"d": [record] * n})


AUTH = StaticAuth(
    api_keys={"acme": "acme.key-acme", "beta": "beta.key-beta", "gamma": "plain-key"},
    passcodes={"acme": "pass-acme", "beta": "pass-beta"},
)

MakeClient = Callable[..., httpx.AsyncClient]


@pytest.fixture
def ingest() -> MemoryIngest:
    return MemoryIngest()


@pytest.fixture
async def make(ingest: MemoryIngest) -> AsyncIterator[MakeClient]:
    clients: list[httpx.AsyncClient] = []

    def build(raise_app_exceptions: bool = True, **limits: object) -> httpx.AsyncClient:
        settings = {"records_per_second": None, **limits}
        app = create_app(ingest, AUTH, clock=lambda: NOW, limits=HttpLimits(**settings))  # type: ignore[arg-type]
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
        client = httpx.AsyncClient(transport=transport, base_url="http://tidegate.test")
        clients.append(client)
        return client

    yield build
    for client in clients:
        await client.aclose()


# -- 401 ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-CleverTap-Account-Id": "acme"},
        {"X-CleverTap-Passcode": "pass-acme"},
        {"X-CleverTap-Account-Id": "acme", "X-CleverTap-Passcode": "wrong"},
        {"X-CleverTap-Account-Id": "nobody", "X-CleverTap-Passcode": "pass-acme"},
        {"X-CleverTap-Account-Id": "beta", "X-CleverTap-Passcode": "pass-acme"},
        {"Authorization": "Bearer acme.wrong"},
        {"Authorization": "Basic YWNtZTprZXk="},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer plain-key"},  # no account named
        {"Authorization": "Bearer acme.key-acme", "X-Tidegate-Account": "beta"},
        {"Authorization": "Bearer beta.key-beta", "X-Tidegate-Account": "acme"},
    ],
)
async def test_bad_or_missing_credentials_are_401_and_nothing_is_stored(
    make: MakeClient, ingest: MemoryIngest, headers: dict[str, str]
) -> None:
    client = make()
    for path, body in [
        ("/1/upload", records(1)),
        ("/people/contacts/u1/events", b'{"name": "p", "data": {}}'),
    ]:
        response = await client.post(path, headers=headers, content=body)
        assert response.status_code == 401, (path, response.text)
        assert response.json()["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    for path in ["/uploads", "/uploads/x", "/uploads/x/errors"]:
        assert (await client.get(path, headers=headers)).status_code == 401
    assert ingest.submissions == 0 and ingest.records() == []


async def test_401_comes_before_reading_a_malformed_or_huge_body(
    make: MakeClient, ingest: MemoryIngest
) -> None:
    client = make(max_body_bytes=10)
    assert (await client.post("/1/upload", content=b"x" * 100)).status_code == 401


async def test_every_credential_form_works_everywhere(
    make: MakeClient, ingest: MemoryIngest
) -> None:
    client = make()
    forms = [
        CT,
        BEARER,
        {"Authorization": "Bearer acme.key-acme", "X-Tidegate-Account": "acme"},
        {"Authorization": "bearer plain-key", "X-Tidegate-Account": "gamma"},
    ]
    for headers in forms:
        response = await client.post("/1/upload", headers=headers, content=records(1))
        assert response.status_code == 200, (headers, response.text)
        response = await client.post(
            "/people/contacts/u1/events", headers=headers, content=b'{"name": "p"}'
        )
        assert response.status_code == 202, (headers, response.text)
        assert (await client.get("/uploads", headers=headers)).status_code == 200


async def test_verified_credentials_are_cached(make: MakeClient) -> None:
    auth_calls = AUTH.calls
    client = make()
    for _ in range(5):
        await client.post("/1/upload", headers=CT, content=records(1))
    assert AUTH.calls - auth_calls == 1
    uncached = make(auth_cache_seconds=0)
    auth_calls = AUTH.calls
    for _ in range(3):
        await uncached.post("/1/upload", headers=CT, content=records(1))
    assert AUTH.calls - auth_calls == 3


async def test_clevertap_account_id_mapping_is_used_when_the_authenticator_has_one(
    ingest: MemoryIngest,
) -> None:
    class Mapped(StaticAuth):
        def by_clevertap_account_id(self, account_id: str) -> object:
            class Found:
                name = "acme"

            return Found() if account_id == "CT-ACME-1" else None

    app = create_app(ingest, Mapped(passcodes={"acme": "pw"}), clock=lambda: NOW)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        headers = {"X-CleverTap-Account-Id": "CT-ACME-1", "X-CleverTap-Passcode": "pw"}
        assert (await client.post("/1/upload", headers=headers, content=records(1))).is_success
    assert [r.source.account for r in ingest.records()] == ["acme"]


async def test_async_authenticators_are_awaited(ingest: MemoryIngest) -> None:
    class AsyncAuth:
        async def verify_api_key(self, account: str, key: str) -> bool:
            return (account, key) == ("acme", "acme.k")

        async def verify_passcode(self, account: str, passcode: str) -> bool:
            return False

    app = create_app(ingest, AsyncAuth(), clock=lambda: NOW)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        ok = await client.post(
            "/1/upload", headers={"Authorization": "Bearer acme.k"}, content=records(1)
        )
        assert ok.status_code == 200
        assert (await client.post("/1/upload", headers=CT, content=records(1))).status_code == 401


# -- 413 / 415 ------------------------------------------------------------------------


async def test_413_above_the_body_limit_by_content_length(
    make: MakeClient, ingest: MemoryIngest
) -> None:
    client = make(max_body_bytes=1000)
    body = records(40)
    assert len(body) > 1000
    response = await client.post("/1/upload", headers=CT, content=body)
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    response = await client.post("/people/contacts/u/events", headers=BEARER, content=body)
    assert response.status_code == 413
    assert ingest.submissions == 0
    assert (await client.post("/1/upload", headers=CT, content=records(5))).status_code == 200


async def test_413_counts_streamed_bytes_without_content_length(
    make: MakeClient, ingest: MemoryIngest
) -> None:
    client = make(max_body_bytes=1000)
    chunks_sent = 0

    async def chunked() -> AsyncIterator[bytes]:
        nonlocal chunks_sent
        for _ in range(100):
            chunks_sent += 1
            yield b" " * 100

    response = await client.post("/1/upload", headers=CT, content=chunked())
    assert response.status_code == 413
    assert ingest.submissions == 0


async def test_a_lying_content_length_is_invalid(make: MakeClient) -> None:
    client = make()
    response = await client.post(
        "/1/upload", headers={**CT, "Content-Length": "abc"}, content=b'{"d": []}'
    )
    assert response.status_code == 400


async def test_415_for_compressed_bodies(make: MakeClient) -> None:
    client = make()
    response = await client.post(
        "/1/upload", headers={**CT, "Content-Encoding": "gzip"}, content=records(1)
    )
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


# -- 429 ------------------------------------------------------------------------------


async def test_429_with_retry_after_above_the_account_rate(
    make: MakeClient, ingest: MemoryIngest
) -> None:
    client = make(records_per_second=100.0, burst_records=1000)
    assert (await client.post("/1/upload", headers=CT, content=records(600))).status_code == 200
    response = await client.post("/1/upload", headers=CT, content=records(600))
    assert response.status_code == 429
    assert response.json()["code"] == "rate_limited"
    assert 1 <= int(response.headers["Retry-After"]) <= 3
    assert ingest.records_submitted == 600
    # another account has its own bucket
    other = {"X-CleverTap-Account-Id": "beta", "X-CleverTap-Passcode": "pass-beta"}
    assert (await client.post("/1/upload", headers=other, content=records(600))).status_code == 200
    # the Naxai endpoint draws from the same bucket
    response = await client.post(
        "/people/contacts/u/events", headers=BEARER, content=orjson.dumps([{"name": "p"}] * 500)
    )
    assert response.status_code == 429
    assert "Retry-After" in response.headers


# -- 503 ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "retry_after"),
    [
        (IngestUnavailable("sqlite is locked", retry_after=7), "7"),
        (IngestUnavailable("queue full"), "5"),
        (TimeoutError(), "5"),
        (ConnectionRefusedError(111, "refused"), "5"),
        (OSError(28, "No space left on device"), "5"),
    ],
)
async def test_503_with_retry_after_when_the_ingest_fails(
    make: MakeClient, ingest: MemoryIngest, error: BaseException, retry_after: str
) -> None:
    ingest.fail_with = error
    client = make()
    for path, body, headers in [
        ("/1/upload", records(3), CT),
        ("/people/contacts/u/events", b'{"name": "p"}', BEARER),
    ]:
        response = await client.post(path, headers=headers, content=body)
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"] == retry_after
        assert response.json()["code"] == "unavailable"
    assert (await client.get("/uploads", headers=BEARER)).status_code == 200  # reads still work


async def test_503_when_the_ingest_is_slower_than_the_submit_timeout(
    make: MakeClient, ingest: MemoryIngest
) -> None:
    ingest.delay = 1.0
    client = make(submit_timeout=0.05)
    response = await client.post("/1/upload", headers=CT, content=records(1))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert ingest.submissions == 0


async def test_dry_run_does_not_touch_the_ingest(make: MakeClient, ingest: MemoryIngest) -> None:
    ingest.fail_with = IngestUnavailable()
    client = make()
    response = await client.post("/1/upload?dryRun=1", headers=CT, content=records(2))
    assert response.status_code == 200
    assert response.json()["processed"] == 2


async def test_a_refused_receipt_is_reported_with_its_code(
    make: MakeClient, ingest: MemoryIngest
) -> None:
    ingest.refuse = Rejection(ErrorCode.INVALID_PAYLOAD, "refused by the runtime", Stage.UPLOAD)
    response = await make().post("/1/upload", headers=CT, content=records(1))
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_payload"
    assert response.json()["error"] == "refused by the runtime"


async def test_an_unexpected_ingest_bug_is_a_json_500(
    make: MakeClient, ingest: MemoryIngest
) -> None:
    ingest.fail_with = RuntimeError("bug")
    client = make(raise_app_exceptions=False)
    response = await client.post("/1/upload", headers=CT, content=records(1))
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"


# -- routing --------------------------------------------------------------------------


async def test_unknown_paths_and_methods_answer_json(make: MakeClient) -> None:
    client = make()
    response = await client.get("/nowhere")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    response = await client.get("/1/upload")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"
    assert "POST" in response.headers["Allow"]


async def test_healthz(make: MakeClient) -> None:
    response = await make().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_a_client_that_disconnects_mid_body_is_not_a_server_error(
    ingest: MemoryIngest,
) -> None:
    app = create_app(ingest, AUTH, clock=lambda: NOW)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/1/upload",
        "raw_path": b"/1/upload",
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in CT.items()],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
    }
    messages: list[MutableMapping[str, Any]] = [
        {"type": "http.request", "body": b'{"d": [', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    assert sent[0]["status"] == 400
    assert ingest.submissions == 0
