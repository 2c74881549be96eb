"""Errors of the HTTP connector: the retriable ingest failure and request-level refusals."""

from __future__ import annotations

from collections.abc import Mapping

from connectors.ports import IngestUnavailable
from streams.core.errors import ErrorCode

__all__ = ["IngestUnavailable"]


# Request-level codes the HTTP API adds to the core table (streams.core.errors.ErrorCode).
BATCH_TOO_LARGE = ErrorCode.BATCH_TOO_LARGE.value
INVALID_PAYLOAD = ErrorCode.INVALID_PAYLOAD.value
UNAUTHORIZED = ErrorCode.UNAUTHORIZED.value
PAYLOAD_TOO_LARGE = "payload_too_large"
UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
INVALID_PARAMETER = "invalid_parameter"
RATE_LIMITED = "rate_limited"
LOGIN_THROTTLED = "login_throttled"
REQUEST_TIMEOUT = "request_timeout"
INSUFFICIENT_STORAGE = "insufficient_storage"
UNAVAILABLE = "unavailable"
NOT_FOUND = "not_found"
METHOD_NOT_ALLOWED = "method_not_allowed"
INTERNAL_ERROR = "internal_error"


class ApiError(Exception):
    """A refusal of the whole request: HTTP status, stable code, message, extra headers."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def body(self, *, clevertap: bool = False) -> dict[str, object]:
        """`{"code", "message"}`; CleverTap's endpoint adds `"status": "fail"` and `"error"`."""
        if clevertap:
            return {
                "status": "fail",
                "code": self.code,
                "error": self.message,
                "message": self.message,
            }
        return {"code": self.code, "message": self.message}
