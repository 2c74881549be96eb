"""GET /openapi.json: an OpenAPI 3.1 document describing every route the app serves."""

from __future__ import annotations

from typing import Any

import httpx
from starlette.routing import Route

from connectors.http import HttpLimits, create_app
from connectors.http import errors as http_errors
from connectors.http.metrics import route_label
from connectors.http.openapi import ERROR_CODES, build_openapi
from connectors.ports import StorageFull
from connectors.throttle import LoginThrottle, ThrottleSettings
from streams.core.errors import ErrorCode
from tests.integration.memory_ingest import MemoryIngest, StaticAuth


async def test_openapi_document_is_served_and_covers_every_route() -> None:
    app = create_app(MemoryIngest(), StaticAuth(), limits=HttpLimits(max_batch=500))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    documented = {
        (path, method.upper()) for path, item in document["paths"].items() for method in item
    }
    served = {
        (route_label({"route": route}), method)
        for route in app.routes
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }
    assert documented == served
    upload = document["components"]["schemas"]["CleverTapUpload"]
    assert upload["properties"]["d"]["maxItems"] == 500


def test_the_document_is_a_valid_openapi_schema() -> None:
    import schemathesis

    schema = schemathesis.openapi.from_dict(build_openapi())
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert {op.label for op in operations} >= {
        "POST /1/upload",
        "POST /people/contacts/{identifier}/events",
        "GET /uploads",
        "GET /uploads/{upload_id}",
        "GET /uploads/{upload_id}/errors",
    }


def test_every_operation_documents_its_error_responses() -> None:
    document = build_openapi()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if operation.get("security") == []:
                continue
            assert {"401", "503"} <= set(operation["responses"]), (method, path)
            if method == "post":
                assert {"400", "413", "429"} <= set(operation["responses"]), path


def _authenticated_operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if operation.get("security") != []
    ]


def _http_codes() -> set[str]:
    """The HTTP API's table of request-level codes (`connectors/http/errors.py`, which takes
    some from the core's `ErrorCode`)."""
    return {
        value
        for name, value in vars(http_errors).items()
        if name.isupper() and isinstance(value, str)
    }


def test_every_authenticated_operation_documents_the_throttled_login_with_retry_after() -> None:
    operations = _authenticated_operations(build_openapi())
    assert len(operations) >= 6
    for path, method, operation in operations:
        answer = operation["responses"].get("429")
        assert answer is not None, (method, path)
        assert http_errors.LOGIN_THROTTLED in answer["x-tidegate-codes"], (method, path)
        assert http_errors.LOGIN_THROTTLED in answer["description"]
        assert answer["headers"]["Retry-After"]["required"] is True, (method, path)


def test_intake_operations_document_the_full_disk_with_retry_after() -> None:
    document = build_openapi()
    intake = [
        document["paths"]["/1/upload"]["post"],
        document["paths"]["/people/contacts/{identifier}/events"]["post"],
    ]
    for operation in intake:
        answer = operation["responses"]["507"]
        assert answer["x-tidegate-codes"] == [http_errors.INSUFFICIENT_STORAGE]
        assert answer["headers"]["Retry-After"]["required"] is True
    # where nothing is stored, the disk cannot refuse: no 507 there
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if operation not in intake:
                assert "507" not in operation["responses"], (method, path)


def test_every_documented_code_is_a_code_of_the_error_table() -> None:
    known = _http_codes()
    assert {c.value for c in ErrorCode} & known == {
        http_errors.BATCH_TOO_LARGE,
        http_errors.INVALID_PAYLOAD,
        http_errors.UNAUTHORIZED,
    }
    documented: set[str] = set()
    for item in build_openapi()["paths"].values():
        for operation in item.values():
            for status, answer in operation["responses"].items():
                if int(status) >= 400 and "x-tidegate-codes" in answer:
                    codes = answer["x-tidegate-codes"]
                    assert set(codes) <= set(ERROR_CODES[int(status)]), (status, codes)
                    documented.update(codes)
    assert documented <= known, documented - known
    assert {http_errors.LOGIN_THROTTLED, http_errors.INSUFFICIENT_STORAGE} <= documented


def _request(path: str, method: str) -> tuple[str, str, bytes]:
    url = path.replace("{upload_id}", "u-1").replace("{identifier}", "u1")
    body = b""
    if method == "post":
        body = (
            b'{"d": [{"identity": "u1", "type": "event", "evtName": "e", "ts": 1717236000}]}'
            if path == "/1/upload"
            else b'{"name": "e"}'
        )
    return method.upper(), url, body


async def test_a_throttled_login_is_answered_as_documented_on_every_operation() -> None:
    document = build_openapi()
    wrong = {"Authorization": "Bearer acme.wrong", "X-Tidegate-Account": "acme"}
    for path, method, operation in _authenticated_operations(document):
        app = create_app(
            MemoryIngest(),
            StaticAuth(api_keys={"acme": "acme.key"}),
            throttle=LoginThrottle(ThrottleSettings(address_free=0, address_limit=1)),
        )
        verb, url, body = _request(path, method)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            first = await client.request(verb, url, headers=wrong, content=body)
            assert first.status_code == 401, (verb, url, first.text)
            second = await client.request(verb, url, headers=wrong, content=body)
        assert second.status_code == 429, (verb, url, second.text)
        assert second.json()["code"] == http_errors.LOGIN_THROTTLED
        assert second.json()["code"] in operation["responses"]["429"]["x-tidegate-codes"]
        assert int(second.headers["Retry-After"]) >= 1


async def test_a_full_disk_is_answered_as_documented_on_the_intake_operations() -> None:
    document = build_openapi()
    ingest = MemoryIngest()
    ingest.fail_with = StorageFull("no space left in the data directory")
    app = create_app(ingest, StaticAuth(api_keys={"acme": "acme.key"}))
    right = {"Authorization": "Bearer acme.key", "X-Tidegate-Account": "acme"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for path in ("/1/upload", "/people/contacts/{identifier}/events"):
            verb, url, body = _request(path, "post")
            answer = await client.request(verb, url, headers=right, content=body)
            assert answer.status_code == 507, (url, answer.text)
            assert (
                answer.json()["code"]
                in (document["paths"][path]["post"]["responses"]["507"]["x-tidegate-codes"])
            )
            assert int(answer.headers["Retry-After"]) >= 1
