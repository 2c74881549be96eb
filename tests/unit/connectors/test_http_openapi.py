"""GET /openapi.json: an OpenAPI 3.1 document describing every route the app serves."""

from __future__ import annotations

import httpx
from starlette.routing import Route

from connectors.http import HttpLimits, create_app
from connectors.http.metrics import route_label
from connectors.http.openapi import build_openapi
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
