"""What every endpoint shares: limits, credentials, bounded body reading, ingest calls."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, TypeVar

import anyio.to_thread
import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from connectors.http import errors
from connectors.http.errors import ApiError, IngestUnavailable
from connectors.http.metrics import HttpMetrics
from connectors.http.ratelimit import RateLimiter
from connectors.ports import Ingest, Receipt, StorageFull
from connectors.throttle import LoginThrottle
from streams.core.errors import ErrorCode, Rejection
from streams.core.normalize import normalize
from streams.core.records import Event, RawRecord, SourceKind

T = TypeVar("T")

Clock = Callable[[], datetime]

MiB = 1024 * 1024

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """The HTTP API's limits (docs/HTTP_API.md#limits)."""

    max_body_bytes: int = 5 * MiB  # 413 above this (Content-Length, or bytes as they stream)
    max_batch: int = 1000  # records per request; 400 batch_too_large above
    records_per_second: float | None = 10_000.0  # per account token-bucket rate; None: off
    burst_records: int = 20_000  # bucket size (never below max_batch)
    submit_timeout: float | None = 30.0  # an ingest call slower than this answers 503
    retry_after_unavailable: int = 5  # Retry-After of a 503 when the ingest names none
    auth_cache_seconds: float = 60.0  # a verified credential is trusted this long; 0: never cached
    body_read_seconds: float = 30.0  # a body not received in full by then answers 408
    default_list_limit: int = 100
    max_list_limit: int = 1000


class Authenticator(Protocol):
    """Verifies credentials against the account store (connectors/accounts.py).

    Either method may be sync (it then runs in a worker thread, so a slow password hash
    never stalls the event loop) or async. An unknown account verifies as False.
    """

    def verify_api_key(self, account: str, key: str) -> bool | Awaitable[bool]: ...

    def verify_passcode(self, account: str, passcode: str) -> bool | Awaitable[bool]: ...


CLEVERTAP_ACCOUNT = "x-clevertap-account-id"
CLEVERTAP_PASSCODE = "x-clevertap-passcode"
TIDEGATE_ACCOUNT = "x-tidegate-account"
UPLOAD_ID_HEADER = "X-Tidegate-Upload-Id"


def json_response(
    content: object, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(content), status_code=status, headers=headers, media_type="application/json"
    )


def unauthorized(message: str) -> ApiError:
    return ApiError(
        401, errors.UNAUTHORIZED, message, headers={"WWW-Authenticate": 'Bearer realm="tidegate"'}
    )


JUDGE_SLICE = 200  # records normalized between two yields to the event loop


async def judge(records: list[RawRecord]) -> list[Event | Rejection]:
    """``normalize`` on every record, yielding to the loop every JUDGE_SLICE records so a
    1000-record batch (~35 ms of rules) does not hold up the other connections."""
    results: list[Event | Rejection] = []
    for start in range(0, len(records), JUDGE_SLICE):
        if start:
            await asyncio.sleep(0)
        results.extend(normalize(record) for record in records[start : start + JUDGE_SLICE])
    return results


def is_true(value: str | None) -> bool:
    return value is not None and value.strip().lower() in {"1", "true", "yes"}


class HttpContext:
    """One app's state: the ingest, credentials check, clock, limits, rate limiter, metrics."""

    def __init__(
        self,
        ingest: Ingest,
        auth: Authenticator,
        *,
        clock: Clock,
        limits: HttpLimits,
        metrics: HttpMetrics,
        limiter: RateLimiter,
        throttle: LoginThrottle | None = None,
    ) -> None:
        self.throttle = throttle or LoginThrottle()
        self.ingest = ingest
        self.auth = auth
        self.clock = clock
        self.limits = limits
        self.metrics = metrics
        self.limiter = limiter
        self._verified: dict[tuple[str, str, bytes], float] = {}

    # -- credentials --------------------------------------------------------------------

    async def authenticate(self, request: Request, *, prefer: str = "clevertap") -> str:
        """The account the request's credentials prove, or 401.

        Accepted on every authenticated endpoint (the first form present wins, CleverTap
        headers first on /1/upload, the bearer key first elsewhere):
        * `X-CleverTap-Account-Id: <id>` + `X-CleverTap-Passcode: <passcode>`; the id is
          the account name, or the account's `clevertap_account_id` when the authenticator
          maps ids (`by_clevertap_account_id(id)` returning an object with `.name`);
        * `Authorization: Bearer <api key>` + `X-Tidegate-Account: <account>`;
        * `Authorization: Bearer <api key>` alone when the key reads `<account>.<rest>`
          (as keys made by `tidegate` do); the whole token is the key either way.
        """
        headers = request.headers
        has_clevertap = CLEVERTAP_ACCOUNT in headers or CLEVERTAP_PASSCODE in headers
        has_bearer = "authorization" in headers
        use_clevertap = has_clevertap and (prefer == "clevertap" or not has_bearer)
        if use_clevertap:
            account_id = headers.get(CLEVERTAP_ACCOUNT, "").strip()
            passcode = headers.get(CLEVERTAP_PASSCODE, "").strip()
            if not account_id or not passcode:
                raise unauthorized(
                    "X-CleverTap-Account-Id and X-CleverTap-Passcode are both required"
                )
            account = self._clevertap_account(account_id)
            if not await self._verify("passcode", account, passcode, request):
                raise unauthorized("unknown account or wrong passcode")
            return account
        if has_bearer:
            scheme, _, token = headers["authorization"].strip().partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                raise unauthorized("Authorization must be 'Bearer <api key>'")
            account = headers.get(TIDEGATE_ACCOUNT, "").strip()
            if not account:
                prefix, dot, rest = token.partition(".")
                if not dot or not prefix or not rest:
                    raise unauthorized(
                        "name the account: an X-Tidegate-Account header, or a key of the "
                        "form '<account>.<secret>'"
                    )
                account = prefix
            if not await self._verify("api_key", account, token, request):
                raise unauthorized("unknown account or wrong API key")
            return account
        raise unauthorized(
            "credentials required: X-CleverTap-Account-Id + X-CleverTap-Passcode, "
            "or Authorization: Bearer <api key> (+ X-Tidegate-Account)"
        )

    def _clevertap_account(self, account_id: str) -> str:
        """The account name an X-CleverTap-Account-Id stands for (itself unless mapped)."""
        resolve = getattr(self.auth, "by_clevertap_account_id", None)
        if callable(resolve):
            found = resolve(account_id)
            name = getattr(found, "name", None)
            if isinstance(name, str) and name:
                return name
        return account_id

    def forget_credentials(self) -> None:
        """Drops remembered verifications: the accounts changed, a removed key fails now."""
        self._verified.clear()

    async def _verify(self, kind: str, account: str, secret: str, request: Request) -> bool:
        ttl = self.limits.auth_cache_seconds
        cache_key = (
            kind,
            account,
            hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest(),
        )
        now = time.monotonic()
        if ttl > 0:
            expires = self._verified.get(cache_key)
            if expires is not None and expires > now:
                return True
        # Guessing is throttled per address and per account (connectors/throttle.py); a
        # cached success above skips it, as it proves the secret without a new guess.
        address = request.client.host if request.client else ""
        verdict = self.throttle.check(address, account)
        if verdict.refused:
            log.warning(
                "HTTP login refused without checking: too many failures (%s) from %s for %r",
                verdict.reason,
                address,
                account,
            )
            raise ApiError(
                429,
                errors.LOGIN_THROTTLED,
                "too many failed logins; retry later",
                headers={"Retry-After": RateLimiter.retry_after_header(verdict.retry_after)},
            )
        if verdict.delay:
            await asyncio.sleep(verdict.delay)
        method = self.auth.verify_passcode if kind == "passcode" else self.auth.verify_api_key
        if inspect.iscoroutinefunction(method):
            result: object = await method(account, secret)
        else:
            result = await anyio.to_thread.run_sync(method, account, secret)
            if inspect.isawaitable(result):
                result = await result
        ok = result is True
        if ok:
            self.throttle.succeeded(address, account)
        else:
            self.throttle.failed(address, account)
            log.warning("HTTP login failed (%s) from %s for %r", kind, address, account)
        if ok and ttl > 0:
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[cache_key] = now + ttl
        return ok

    # -- body ---------------------------------------------------------------------------

    async def read_body(self, request: Request) -> bytes:
        """The whole body, refusing (413) above the limit before reading when Content-Length
        says so, and while streaming otherwise (chunked bodies have no Content-Length).
        A leading UTF-8 BOM is dropped: DESIGN.md allows one, as files may start with it."""
        limit = self.limits.max_body_bytes
        too_large = ApiError(
            413, errors.PAYLOAD_TOO_LARGE, f"the request body is larger than {limit} bytes"
        )
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise ApiError(
                415,
                errors.UNSUPPORTED_MEDIA_TYPE,
                f"Content-Encoding {encoding!r} is not supported",
            )
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                raise ApiError(
                    400, errors.INVALID_PAYLOAD, "Content-Length is not a number"
                ) from None
            if size > limit:
                raise too_large
        chunks: list[bytes] = []
        total = 0
        try:
            # A deadline for the whole body, not per chunk: a body trickled byte by byte
            # would otherwise hold its connection (and its memory) for as long as it likes.
            async with asyncio.timeout(self.limits.body_read_seconds):
                async for chunk in request.stream():
                    total += len(chunk)
                    if total > limit:
                        raise too_large
                    chunks.append(chunk)
        except TimeoutError:
            raise ApiError(
                408,
                errors.REQUEST_TIMEOUT,
                f"the request body did not arrive within {self.limits.body_read_seconds:g} s",
                headers={"Connection": "close"},
            ) from None
        except ClientDisconnect:
            # Nobody is left to answer; a 400 keeps it out of the 5xx counts.
            raise ApiError(
                400, errors.INVALID_PAYLOAD, "the client disconnected before the body ended"
            ) from None
        body = b"".join(chunks)
        return body[3:] if body.startswith(b"\xef\xbb\xbf") else body

    # -- limits -------------------------------------------------------------------------

    def check_batch(self, count: int) -> None:
        if count > self.limits.max_batch:
            raise ApiError(
                400,
                errors.BATCH_TOO_LARGE,
                f"{count} records in one request; at most {self.limits.max_batch} are allowed",
            )

    def check_rate(self, account: str, records: int) -> None:
        wait = self.limiter.take(account, records)
        if wait > 0:
            raise ApiError(
                429,
                errors.RATE_LIMITED,
                f"account {account!r} is over its rate of "
                f"{self.limiter.rate:g} records/s; retry later",
                headers={"Retry-After": RateLimiter.retry_after_header(wait)},
            )

    # -- ingest -------------------------------------------------------------------------

    async def call_ingest(self, awaitable: Awaitable[T]) -> T:
        """Awaits an ingest call; infrastructure failures become 503 with Retry-After."""
        default_wait = self.limits.retry_after_unavailable
        try:
            timeout = self.limits.submit_timeout
            if timeout is None:
                return await awaitable
            return await asyncio.wait_for(awaitable, timeout)
        except StorageFull as error:
            raise ApiError(
                507,
                errors.INSUFFICIENT_STORAGE,
                f"nothing was stored: {error}",
                headers={"Retry-After": RateLimiter.retry_after_header(60)},
            ) from error
        except IngestUnavailable as error:
            wait = error.retry_after if error.retry_after is not None else default_wait
            raise ApiError(
                503,
                errors.UNAVAILABLE,
                f"the ingest is unavailable: {error}",
                headers={"Retry-After": RateLimiter.retry_after_header(wait)},
            ) from error
        except TimeoutError as error:
            raise ApiError(
                503,
                errors.UNAVAILABLE,
                "the ingest did not answer in time",
                headers={"Retry-After": RateLimiter.retry_after_header(default_wait)},
            ) from error
        except OSError as error:
            raise ApiError(
                503,
                errors.UNAVAILABLE,
                f"the ingest is unavailable: {type(error).__name__}",
                headers={"Retry-After": RateLimiter.retry_after_header(default_wait)},
            ) from error

    async def submit(self, account: str, name: str, records: list[RawRecord]) -> Receipt:
        """Hands the records over; returns once the ingest has written them durably."""
        receipt = await self.call_ingest(
            self.ingest.submit_records(account, name, records, kind=SourceKind.API)
        )
        if receipt.refused is not None:
            code = receipt.refused.code
            status = {
                ErrorCode.UNAUTHORIZED: 401,
                ErrorCode.DUPLICATE_FILENAME: 409,
            }.get(code, 400)
            raise ApiError(status, code.value, receipt.refused.message)
        return receipt
