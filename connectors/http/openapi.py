"""The OpenAPI 3 document of the HTTP API, served at `/openapi.json`."""

from __future__ import annotations

from typing import Any

from connectors.http import errors
from connectors.http.context import HttpLimits

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(
    schema: dict[str, Any], description: str, headers: dict[str, Any] | None = None
) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
        "required": True,
    }
}
UPLOAD_ID = {
    "X-Tidegate-Upload-Id": {
        "description": "The upload the request's records were stored under (absent on dryRun)",
        "schema": {"type": "string"},
    }
}
DRY_RUN = {
    "name": "dryRun",
    "in": "query",
    "required": False,
    "description": "`1`: validate through every stateless rule, store nothing",
    "schema": {"type": "string", "enum": ["0", "1", "true", "false"]},
}
WAIT = {
    "name": "wait",
    "in": "query",
    "required": False,
    "description": (
        "Seconds (0 to 30; more is cut to 30) to wait for the runtime's decision: the "
        "answer then holds each record's outcome (accepted, duplicate, rejected with its "
        "code, triggered or not); if it is not decided in time, the answer says received"
    ),
    "schema": {"type": "number", "minimum": 0},
}
SECURITY: list[dict[str, list[str]]] = [
    {"clevertapAccountId": [], "clevertapPasscode": []},
    {"bearerKey": [], "tidegateAccount": []},
    {"bearerKey": []},
]


# The codes each refusal may carry (`connectors/http/errors.py`), listed in the document as
# `x-tidegate-codes`; the descriptions name them from the same table.
ERROR_CODES: dict[int, tuple[str, ...]] = {
    400: (errors.INVALID_PAYLOAD, errors.BATCH_TOO_LARGE, errors.INVALID_PARAMETER),
    401: (errors.UNAUTHORIZED,),
    404: (errors.NOT_FOUND,),
    413: (errors.PAYLOAD_TOO_LARGE,),
    415: (errors.UNSUPPORTED_MEDIA_TYPE,),
    429: (errors.RATE_LIMITED, errors.LOGIN_THROTTLED),
    503: (errors.UNAVAILABLE,),
    507: (errors.INSUFFICIENT_STORAGE,),
}
_ERROR_TEXT = {
    400: "Malformed request",
    401: "Missing or wrong credentials; nothing was stored",
    404: "No such upload in this account",
    413: "Request body above the size limit",
    415: "Unsupported Content-Encoding",
    429: "Account over its records/s rate, or too many failed logins from this address or "
    "for this account (the credentials were not checked); retry after Retry-After",
    503: "The ingest is unavailable; retry after Retry-After",
    507: "The data directory is full: nothing was stored; retry after Retry-After",
}
_WITH_RETRY_AFTER = (429, 503, 507)


def _errors(error_schema: str, *statuses: int, rate_limited: bool = True) -> dict[str, Any]:
    """The refusals of an operation. Every authenticated operation has 429 (a throttled
    login); `rate_limited` (the records/s rate, only where records are submitted) adds its
    code to the 429."""
    out: dict[str, Any] = {}
    for status in statuses:
        codes = ERROR_CODES[status]
        text = _ERROR_TEXT[status]
        if status == 429 and not rate_limited:
            codes = (errors.LOGIN_THROTTLED,)
            text = (
                "Too many failed logins from this address or for this account (the "
                "credentials were not checked); retry after Retry-After"
            )
        headers = RETRY_AFTER if status in _WITH_RETRY_AFTER else None
        response = _json(_ref(error_schema), f"{text} ({', '.join(codes)})", headers)
        response["x-tidegate-codes"] = list(codes)
        out[str(status)] = response
    return out


def build_openapi(limits: HttpLimits | None = None) -> dict[str, Any]:
    """The document; the batch and body limits are the app's own."""
    limits = limits or HttpLimits()
    max_batch = limits.max_batch
    naxai_event = {
        "type": "object",
        "description": "A Naxai event; the contact is the path's {identifier}",
        "properties": {
            "name": {"type": "string", "description": "Event name (≤ 120 characters)"},
            "data": {"type": "object", "description": "Event properties, nested values kept"},
            "idempotencyKey": {
                "type": "string",
                "maxLength": 128,
                "description": "Events with the same key are processed once per 24 hours",
            },
            "timestamp": {"type": "integer", "description": "Unix epoch seconds; default: now"},
            "type": {"type": "string", "enum": ["event"]},
        },
        "required": ["name"],
    }
    schemas: dict[str, Any] = {
        "Error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "description": "Stable lowercase error code"},
                "message": {"type": "string"},
            },
            "required": ["code", "message"],
        },
        "CleverTapError": {
            "type": "object",
            "properties": {
                "status": {"type": "string", "enum": ["fail"]},
                "code": {"type": "string"},
                "error": {"type": "string"},
                "message": {"type": "string"},
            },
            "required": ["status", "code", "error"],
        },
        "CleverTapRecord": {
            "type": "object",
            "description": "One record of `d`: an event (or a profile update)",
            "properties": {
                "type": {"type": "string", "enum": ["event", "profile"]},
                "evtName": {"type": "string"},
                "evtData": {"type": "object"},
                "profileData": {"type": "object"},
                "ts": {"type": "integer", "description": "Unix epoch seconds; default: now"},
                "identity": {"type": "string"},
                "FBID": {"type": "string"},
                "GPID": {"type": "string"},
                "objectId": {"type": "string"},
                "idempotencyKey": {"type": "string", "maxLength": 128},
            },
        },
        "CleverTapUpload": {
            "type": "object",
            "properties": {
                "d": {"type": "array", "maxItems": max_batch, "items": _ref("CleverTapRecord")}
            },
            "required": ["d"],
        },
        "CleverTapUploadResult": {
            "type": "object",
            "properties": {
                "status": {"type": "string", "enum": ["success", "partial", "fail"]},
                "processed": {"type": "integer", "minimum": 0},
                "unprocessed": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "status": {"type": "string", "enum": ["fail"]},
                            "code": {"type": "integer", "description": "Stable error number"},
                            "error": {"type": "string"},
                            "record": {"description": "The record as sent"},
                        },
                        "required": ["status", "code", "error", "record"],
                        "additionalProperties": False,
                    },
                },
            },
            "required": ["status", "processed", "unprocessed"],
            "additionalProperties": False,
        },
        "NaxaiEvent": naxai_event,
        "NaxaiAccepted": {
            "type": "object",
            "description": (
                "`received` until decided; with `?wait=N` and decided in time: accepted "
                "(with `triggered`) or duplicate"
            ),
            "properties": {
                "status": {"type": "string", "enum": ["received", "accepted", "duplicate"]},
                "event_id": {"type": "string"},
                "upload_id": {"type": ["string", "null"]},
                "decided": {"type": "boolean"},
                "triggered": {"type": "boolean"},
            },
            "required": ["status", "event_id", "upload_id", "decided"],
        },
        "NaxaiBatchResult": {
            "type": "object",
            "properties": {
                "status": {
                    "type": "string",
                    "enum": ["received", "accepted", "decided", "partial", "rejected"],
                },
                "upload_id": {"type": ["string", "null"]},
                "decided": {"type": "boolean"},
                "received": {"type": "integer", "minimum": 0},
                "rejected": {"type": "integer", "minimum": 0},
                "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
                "events": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "index": {"type": "integer", "minimum": 0},
                            "status": {
                                "type": "string",
                                "enum": [
                                    "received",
                                    "accepted",
                                    "duplicate",
                                    "decided",
                                    "rejected",
                                ],
                            },
                            "event_id": {"type": "string"},
                            "triggered": {"type": "boolean"},
                            "code": {"type": "string"},
                            "message": {"type": "string"},
                        },
                        "required": ["index", "status"],
                    },
                },
            },
            "required": ["status", "upload_id", "decided", "received", "rejected", "events"],
        },
        "Upload": {
            "type": "object",
            "properties": {
                "upload_id": {"type": "string"},
                "account": {"type": "string"},
                "filename": {"type": "string"},
                "kind": {"type": "string"},
                "dialect": {"type": ["string", "null"]},
                "status": {
                    "type": "string",
                    "enum": ["queued", "processing", "success", "partial", "warning", "fail"],
                },
                "received_at": {"type": "string"},
                "finished_at": {"type": ["string", "null"]},
                "trigger": {"type": "boolean"},
                "counts": {"type": "object"},
                "warnings": {"type": "array", "items": {"type": "string"}},
                "fatal": {"type": ["object", "null"]},
                "progress": {"type": "object"},
            },
            "required": ["upload_id", "account", "filename", "kind", "status", "received_at"],
        },
        "UploadList": {
            "type": "object",
            "properties": {"uploads": {"type": "array", "items": _ref("Upload")}},
            "required": ["uploads"],
        },
        "Health": {
            "type": "object",
            "properties": {"status": {"type": "string", "enum": ["ok"]}},
            "required": ["status"],
        },
    }
    upload_id_param = {
        "name": "upload_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "minLength": 1},
    }
    paths: dict[str, Any] = {
        "/1/upload": {
            "post": {
                "operationId": "clevertapUpload",
                "summary": "Upload events (CleverTap Upload Events API)",
                "description": (
                    f"At most {max_batch} records per call. Each record is validated through "
                    "every stateless rule; failing records are listed in `unprocessed` and the "
                    "rest are stored. The answer comes after the records are durably written."
                ),
                "security": SECURITY,
                "parameters": [DRY_RUN, WAIT],
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {"schema": _ref("CleverTapUpload")},
                        "application/json; charset=utf-8": {"schema": _ref("CleverTapUpload")},
                    },
                },
                "responses": {
                    "200": _json(_ref("CleverTapUploadResult"), "Per-record result", UPLOAD_ID),
                    **_errors("CleverTapError", 400, 401, 413, 415, 429, 503, 507),
                },
            }
        },
        "/people/contacts/{identifier}/events": {
            "post": {
                "operationId": "naxaiEvents",
                "summary": "Send a contact's event(s) (Naxai events API)",
                "description": (
                    f"One event object, or an array of at most {max_batch}. The contact is "
                    "`{identifier}`: an email-looking value is an email, else a user id."
                ),
                "security": SECURITY,
                "parameters": [
                    {
                        "name": "identifier",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "minLength": 1},
                    },
                    DRY_RUN,
                    WAIT,
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {
                            "schema": {
                                "oneOf": [
                                    _ref("NaxaiEvent"),
                                    {
                                        "type": "array",
                                        "maxItems": max_batch,
                                        "items": _ref("NaxaiEvent"),
                                    },
                                ]
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json(
                        {"oneOf": [_ref("NaxaiAccepted"), _ref("NaxaiBatchResult")]},
                        "Decided within `wait`: each event's outcome",
                        UPLOAD_ID,
                    ),
                    "202": _json(
                        {"oneOf": [_ref("NaxaiAccepted"), _ref("NaxaiBatchResult")]},
                        "Received (stored, not decided yet), or per-event results (an array)",
                        UPLOAD_ID,
                    ),
                    "400": _json(
                        {"oneOf": [_ref("Error"), _ref("NaxaiBatchResult")]},
                        "The event is rejected (its code), every event of an array is "
                        "rejected, or the request is malformed",
                    ),
                    **_errors("Error", 401, 413, 415, 429, 503, 507),
                },
            }
        },
        "/uploads": {
            "get": {
                "operationId": "listUploads",
                "summary": "The account's uploads, newest first",
                "security": SECURITY,
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": limits.max_list_limit,
                            "default": limits.default_list_limit,
                        },
                    }
                ],
                "responses": {
                    "200": _json(_ref("UploadList"), "Uploads"),
                    **_errors("Error", 400, 401, 429, 503, rate_limited=False),
                },
            }
        },
        "/uploads/{upload_id}": {
            "get": {
                "operationId": "getUpload",
                "summary": "One upload: status, counts, progress",
                "security": SECURITY,
                "parameters": [upload_id_param],
                "responses": {
                    "200": _json(_ref("Upload"), "The upload"),
                    **_errors("Error", 401, 404, 429, 503, rate_limited=False),
                },
            }
        },
        "/uploads/{upload_id}/errors": {
            "get": {
                "operationId": "getUploadFeedback",
                "summary": "Download the feedback file: the rejected rows with code and message",
                "security": SECURITY,
                "parameters": [upload_id_param],
                "responses": {
                    "200": {
                        "description": "The feedback file, in the upload's own format",
                        "headers": {"Content-Disposition": {"schema": {"type": "string"}}},
                        "content": {
                            "application/x-ndjson": {"schema": {"type": "string"}},
                            "application/json": {"schema": {}},
                            "text/csv": {"schema": {"type": "string"}},
                            "application/octet-stream": {"schema": {"type": "string"}},
                        },
                    },
                    **_errors("Error", 401, 404, 429, 503, rate_limited=False),
                },
            }
        },
        "/sources": {
            "get": {
                "operationId": "listSources",
                "summary": "The status of the account's import sources (its S3 bucket, docs/S3.md)",
                "security": SECURITY,
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["account", "s3"],
                            "properties": {
                                "account": {"type": "string"},
                                "s3": {"type": ["object", "null"]},
                            },
                        },
                        "Sources",
                    ),
                    **_errors("Error", 401, 429, 503, rate_limited=False),
                },
            }
        },
        "/healthz": {
            "get": {
                "operationId": "health",
                "summary": "Liveness",
                "security": [],
                "responses": {"200": _json(_ref("Health"), "Alive")},
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics (text exposition format)",
                "security": [],
                "responses": {
                    "200": {
                        "description": "Metrics",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "security": [],
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1 document")},
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tidegate HTTP API",
            "version": "1",
            "description": (
                "Event upload endpoints compatible with CleverTap's Upload Events API and "
                "Naxai's events API, plus the account's upload history. Request bodies above "
                f"{limits.max_body_bytes} bytes are refused (413). See docs/HTTP_API.md."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "clevertapAccountId": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-CleverTap-Account-Id",
                    "description": "The Tidegate account name",
                },
                "clevertapPasscode": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-CleverTap-Passcode",
                    "description": "The account's CleverTap-style passcode",
                },
                "bearerKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": (
                        "The account's API key; `<account>.<api key>` when no "
                        "X-Tidegate-Account header names the account"
                    ),
                },
                "tidegateAccount": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Tidegate-Account",
                    "description": "The Tidegate account name (with a bearer API key)",
                },
            },
        },
    }
