"""The console's Starlette app: sign-in, history with live rows, upload pages, feed, import."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import statistics
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import orjson
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from connectors.console.session import COOKIE, CSRF_FIELD, Session, Sessions
from connectors.http.uploads import MEDIA_TYPES, safe_filename
from connectors.ports import FileUpload, Ingest, LineVerdict, UploadHistory, UploadView
from streams.core.status import FINAL_STATUSES as FINAL

PREFIX = "/console"
STATUSES = ("queued", "processing", "success", "partial", "warning", "fail")

#: Dry-run report of a file as `tidegate validate --json` gives it (tidegate/validate.py).
Validate = Callable[[Path], dict[str, Any]]


class Verifier(Protocol):
    def verify_api_key(self, account: str, key: str) -> bool: ...

    @property
    def names(self) -> list[str]: ...


class ConsoleIngest(Ingest, UploadHistory, Protocol):
    """A runtime as the console needs it (both runtimes implement both ports)."""


@dataclass(frozen=True, slots=True)
class ConsoleSettings:
    session_seconds: int = 8 * 3600  # a signed-in session expires after this
    page_size: int = 50  # history rows per page
    poll_seconds: float = 0.25  # how often the event stream looks for changes
    heartbeat_seconds: float = 15.0  # an SSE comment keeps idle proxies from closing
    max_import_bytes: int = 512 * 1024 * 1024  # largest file imported from the browser
    max_rejected_shown: int = 500  # rejected lines listed on an upload's page


def progress_percent(view: UploadView) -> int:
    """Records decided of those announced (read so far); 100 once the upload is final."""
    if view.status in FINAL:
        return 100
    read = view.progress.get("read", 0)
    decided = view.progress.get("decided", 0)
    return int(100 * decided / read) if read else 0


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Console:
    """Handlers over one runtime; ``close()`` ends the open event streams (at shutdown)."""

    def __init__(
        self,
        ingest: ConsoleIngest,
        accounts: Verifier,
        sessions: Sessions,
        operator_check: Callable[[str], bool],
        validate: Validate,
        staging: Path,
        settings: ConsoleSettings,
        clock: Callable[[], datetime],
    ) -> None:
        self.ingest = ingest
        self.accounts = accounts
        self.sessions = sessions
        self.operator_check = operator_check
        self.validate = validate
        self.staging = staging
        self.settings = settings
        self.clock = clock
        self.closing = asyncio.Event()
        self.env = Environment(
            loader=PackageLoader("connectors.console", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
        )
        self.env.globals.update(prefix=PREFIX, percent=progress_percent, statuses=STATUSES)

    def close(self) -> None:
        self.closing.set()

    # ------------------------------------------------------------------ helpers

    def render(self, template: str, status: int = 200, /, **context: Any) -> HTMLResponse:
        html = self.env.get_template(template).render(**context)
        return HTMLResponse(
            html,
            status_code=status,
            headers={
                "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "no-store",
            },
        )

    def session(self, request: Request) -> Session | None:
        return self.sessions.read(request.cookies.get(COOKIE))

    def require(self, request: Request) -> Session:
        session = self.session(request)
        if session is None:
            raise HTTPException(401, "sign in first")
        return session

    @staticmethod
    def check_origin(request: Request) -> None:
        """A form posted from another site's page is refused (its Origin names that site)."""
        origin = request.headers.get("origin")
        host = request.headers.get("host", "")
        if origin is not None and origin.split("://", 1)[-1] != host:
            raise HTTPException(403, "the form was sent from another site")

    async def form(self, request: Request, session: Session) -> Any:
        """The posted form, refused unless it carries the session's CSRF token."""
        self.check_origin(request)
        form = await request.form()
        token = form.get(CSRF_FIELD)
        if not session.csrf_ok(token if isinstance(token, str) else None):
            raise HTTPException(403, "the form is stale or was sent from another site")
        return form

    async def own(self, session: Session, upload_id: str) -> UploadView:
        view = await self.ingest.get_upload(upload_id)
        if view is None or (session.account is not None and view.account != session.account):
            raise HTTPException(404, "no such upload in this account")
        return view

    def _filters(self, request: Request) -> tuple[str | None, str | None, int | None]:
        status = request.query_params.get("status") or None
        if status is not None and status not in (*STATUSES, "active"):
            status = None
        name = (request.query_params.get("name") or "").strip()[:200] or None
        before_raw = request.query_params.get("before")
        before = int(before_raw) if before_raw and before_raw.isdigit() else None
        return status, name, before

    # ------------------------------------------------------------------ sign-in

    async def signin_page(self, request: Request) -> Response:
        return self.render("signin.html", accounts=self.accounts.names, error=None)

    async def signin(self, request: Request) -> Response:
        self.check_origin(request)
        form = await request.form()
        account = str(form.get("account") or "")
        key = str(form.get("api_key") or "")
        operator = str(form.get("operator_token") or "")
        ok = False
        if operator:
            ok = await asyncio.to_thread(self.operator_check, operator)
            who: str | None = None
        else:
            who = account
            ok = bool(account and key) and await asyncio.to_thread(
                self.accounts.verify_api_key, account, key
            )
        if not ok:
            return self.render(
                "signin.html", 401, accounts=self.accounts.names, error="Wrong credentials."
            )
        _, value = self.sessions.new(who)
        response = RedirectResponse(f"{PREFIX}/", 303)
        response.set_cookie(
            COOKIE,
            value,
            max_age=self.sessions.max_age,
            path=PREFIX,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def signout(self, request: Request) -> Response:
        session = self.require(request)
        await self.form(request, session)
        response = RedirectResponse(f"{PREFIX}/signin", 303)
        response.delete_cookie(COOKIE, path=PREFIX)
        return response

    # ------------------------------------------------------------------ history

    async def history(self, request: Request) -> Response:
        session = self.require(request)
        status, name, before = self._filters(request)
        views, next_cursor = await self.ingest.page_uploads(
            session.account, self.settings.page_size, before=before, status=status, name=name
        )
        return self.render(
            "history.html",
            session=session,
            views=views,
            next_cursor=next_cursor,
            status=status or "",
            name=name or "",
            first_page=before is None,
        )

    async def events(self, request: Request) -> Response:
        """Server-sent events: the first page's rows, re-sent whenever one of them changed."""
        session = self.require(request)
        status, name, _ = self._filters(request)
        rows = self.env.get_template("rows.html")

        async def stream() -> AsyncIterator[bytes]:
            last = ""
            idle = 0.0
            yield b"retry: 1000\n\n"
            while not self.closing.is_set():
                views, _ = await self.ingest.page_uploads(
                    session.account, self.settings.page_size, status=status, name=name
                )
                html = rows.render(views=views, session=session, live=True)
                if html != last:
                    last, idle = html, 0.0
                    data = "".join(f"data: {line}\n" for line in html.splitlines() or [""])
                    yield f"event: rows\n{data}\n".encode()
                elif idle >= self.settings.heartbeat_seconds:
                    idle = 0.0
                    yield b": keep-alive\n\n"
                if await request.is_disconnected():
                    return
                try:
                    await asyncio.wait_for(self.closing.wait(), self.settings.poll_seconds)
                except TimeoutError:
                    idle += self.settings.poll_seconds

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    # ------------------------------------------------------------------ one upload

    async def upload(self, request: Request) -> Response:
        session = self.require(request)
        view = await self.own(session, request.path_params["upload_id"])
        rejected = await self.ingest.rejections(view.upload_id, self.settings.max_rejected_shown)
        by_code = view.counts.get("by_code") or {}
        line_raw = request.query_params.get("line") or ""
        file = (request.query_params.get("file") or "").strip() or view.filename
        verdict: LineVerdict | None = None
        asked = line_raw.isdigit()
        if asked:
            verdict = await self.ingest.explain_line(view.upload_id, file, int(line_raw))
        return self.render(
            "upload.html",
            session=session,
            view=view,
            rejected=[
                (r.file, r.line, r.code, r.message, r.raw.decode("utf-8", "replace"))
                for r in rejected
            ],
            by_code=sorted(by_code.items()),
            limit=self.settings.max_rejected_shown,
            asked=asked,
            asked_file=file,
            asked_line=line_raw if asked else "",
            verdict=verdict,
        )

    async def upload_events(self, request: Request) -> Response:
        """Server-sent events of one upload: its status and progress whenever they change."""
        session = self.require(request)
        view = await self.own(session, request.path_params["upload_id"])

        async def stream() -> AsyncIterator[bytes]:
            last = b""
            yield b"retry: 1000\n\n"
            current: UploadView | None = view
            while current is not None and not self.closing.is_set():
                doc = orjson.dumps(
                    {
                        "status": current.status,
                        "percent": progress_percent(current),
                        **current.progress,
                    }
                )
                if doc != last:
                    last = doc
                    yield b"event: upload\ndata: " + doc + b"\n\n"
                if current.status in FINAL or await request.is_disconnected():
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.closing.wait(), self.settings.poll_seconds)
                current = await self.ingest.get_upload(view.upload_id)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def feedback(self, request: Request) -> Response:
        session = self.require(request)
        view = await self.own(session, request.path_params["upload_id"])
        found = await self.ingest.feedback(view.upload_id)
        if found is None:
            raise HTTPException(404, "this upload has no feedback file")
        filename = safe_filename(found[0])
        suffix = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
        return Response(
            found[1],
            media_type=MEDIA_TYPES.get(suffix, "application/octet-stream"),
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    # ------------------------------------------------------------------ dead letters

    def _letters_account(self, request: Request, session: Session) -> str:
        if session.account is not None:
            return session.account
        chosen = request.query_params.get("account") or ""
        names = self.accounts.names
        return chosen if chosen in names else (names[0] if names else "")

    async def dead_letters(self, request: Request) -> Response:
        session = self.require(request)
        account = self._letters_account(request, session)
        code = request.query_params.get("code") or None
        page_raw = request.query_params.get("page") or "0"
        page = int(page_raw) if page_raw.isdigit() else 0
        size = self.settings.page_size
        letters = await self.ingest.dead_letters(
            account, code=code, limit=size + 1, offset=page * size
        )
        return self.render(
            "deadletters.html",
            session=session,
            account=account,
            accounts=self.accounts.names,
            codes=await self.ingest.dead_letter_codes(account),
            code=code or "",
            letters=[(d, d.raw.decode("utf-8", "replace")) for d in letters[:size]],
            page=page,
            more=len(letters) > size,
        )

    async def dead_letters_download(self, request: Request) -> Response:
        """The account's dead letters (of one code, if chosen) as JSON lines, streamed."""
        session = self.require(request)
        account = self._letters_account(request, session)
        code = request.query_params.get("code") or None

        async def lines() -> AsyncIterator[bytes]:
            offset = 0
            while True:
                chunk = await self.ingest.dead_letters(
                    account, code=code, limit=1000, offset=offset
                )
                for d in chunk:
                    yield (
                        orjson.dumps(
                            {
                                "upload_id": d.upload_id,
                                "upload": d.filename,
                                "file": d.file,
                                "line": d.line,
                                "code": d.code,
                                "message": d.message,
                                "raw": d.raw.decode("utf-8", "replace"),
                                "received_at": d.received_at,
                            }
                        )
                        + b"\n"
                    )
                if len(chunk) < 1000:
                    return
                offset += 1000

        name = safe_filename(f"deadletters-{account}-{code or 'all'}.jsonl")
        return StreamingResponse(
            lines(),
            media_type="application/x-ndjson",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    # ------------------------------------------------------------------ feed

    async def feed(self, request: Request) -> Response:
        session = self.require(request)
        now = self.clock()
        since = now - timedelta(hours=1)
        in_progress: list[UploadView] = []
        finished: list[UploadView] = []
        totals: dict[str, int] = {"uploads": 0, "records": 0, "accepted": 0, "rejected": 0}
        lags: list[float] = []
        before: int | None = None
        for _ in range(40):  # at most 40 pages back: the last hour of a busy account
            views, before = await self.ingest.page_uploads(session.account, 250, before=before)
            for view in views:
                received = _parse_time(view.received_at)
                if view.status not in FINAL:
                    in_progress.append(view)
                elif len(finished) < 10:
                    finished.append(view)
                ended = _parse_time(view.finished_at)
                if ended is not None and ended >= since:
                    totals["uploads"] += 1
                    for key in ("records", "accepted", "rejected"):
                        totals[key] += int(view.counts.get(key, 0) or 0)
                    if received is not None:
                        lags.append((ended - received).total_seconds())
            oldest = _parse_time(views[-1].received_at) if views else None
            if before is None or (oldest is not None and oldest < since and len(finished) >= 10):
                break
        lag = statistics.median(lags) if lags else None
        return self.render(
            "feed.html",
            session=session,
            in_progress=in_progress,
            finished=finished,
            totals=totals,
            lag=lag,
        )

    # ------------------------------------------------------------------ import

    def _staged(self, session: Session, token: str) -> Path | None:
        if not token.isalnum() or session.account is None:
            return None
        folder = self.staging / session.account / token
        files = [p for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []
        return files[0] if len(files) == 1 else None

    async def import_page(self, request: Request) -> Response:
        session = self.require(request)
        return self.render("import.html", session=session, report=None)

    async def dry_run(self, request: Request) -> Response:
        session = self.require(request)
        if session.account is None:
            raise HTTPException(403, "the operator imports into an account by signing in to it")
        form = await self.form(request, session)
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            return self.render(
                "import.html", 400, session=session, report=None, error="Choose a file first."
            )
        filename = upload.filename.replace("\\", "/").rsplit("/", 1)[-1]
        token = secrets.token_hex(16)
        folder = self.staging / session.account / token
        folder.mkdir(parents=True)
        path = folder / filename
        size = 0
        with path.open("wb") as out:
            while chunk := await upload.read(1 << 20):
                size += len(chunk)
                if size > self.settings.max_import_bytes:
                    break
                out.write(chunk)
        if size > self.settings.max_import_bytes:
            shutil.rmtree(folder, ignore_errors=True)
            limit_mib = self.settings.max_import_bytes // (1 << 20)
            return self.render(
                "import.html",
                413,
                session=session,
                report=None,
                error=f"The file is larger than {limit_mib} MiB: send it over SFTP instead.",
            )
        report = await asyncio.to_thread(self.validate, path)
        return self.render(
            "import.html", session=session, report=report, token=token, filename=filename
        )

    async def submit(self, request: Request) -> Response:
        session = self.require(request)
        form = await self.form(request, session)
        path = self._staged(session, str(form.get("token") or ""))
        if path is None or session.account is None:
            raise HTTPException(404, "that dry run is gone; choose the file again")
        trigger = form.get("trigger") == "on"
        receipt = await self.ingest.submit_file(
            FileUpload(session.account, path.name, path, self.clock(), trigger=trigger)
        )
        if receipt.upload_id is None:
            shutil.rmtree(path.parent, ignore_errors=True)
            refusal = receipt.refused
            return self.render(
                "import.html",
                409,
                session=session,
                report=None,
                error=f"{refusal.code.value}: {refusal.message}" if refusal else "refused",
            )
        return RedirectResponse(f"{PREFIX}/uploads/{receipt.upload_id}", 303)


def create_console(
    ingest: ConsoleIngest,
    accounts: Verifier,
    *,
    signing_key: str,
    operator_check: Callable[[str], bool],
    validate: Validate,
    staging: Path,
    settings: ConsoleSettings = ConsoleSettings(),
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> tuple[Starlette, Console]:
    """The console app (mount it at ``/console``) and its handlers (``close()`` at shutdown)."""
    console = Console(
        ingest,
        accounts,
        Sessions(signing_key, settings.session_seconds),
        operator_check,
        validate,
        staging,
        settings,
        clock,
    )

    async def on_http_exception(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 401:
            if request.url.path.endswith("/events"):
                return Response("sign in first", 401, media_type="text/plain")
            return RedirectResponse(f"{PREFIX}/signin", 303)
        return console.render(
            "error.html",
            exc.status_code,
            session=None,
            status=exc.status_code,
            message=exc.detail,
        )

    routes = [
        Route("/", console.history, methods=["GET"]),
        Route("/signin", console.signin_page, methods=["GET"]),
        Route("/signin", console.signin, methods=["POST"]),
        Route("/signout", console.signout, methods=["POST"]),
        Route("/events", console.events, methods=["GET"]),
        Route("/feed", console.feed, methods=["GET"]),
        Route("/uploads/{upload_id}", console.upload, methods=["GET"]),
        Route("/uploads/{upload_id}/events", console.upload_events, methods=["GET"]),
        Route("/uploads/{upload_id}/feedback", console.feedback, methods=["GET"]),
        Route("/deadletters", console.dead_letters, methods=["GET"]),
        Route("/deadletters/download", console.dead_letters_download, methods=["GET"]),
        Route("/import", console.import_page, methods=["GET"]),
        Route("/import/dry-run", console.dry_run, methods=["POST"]),
        Route("/import/submit", console.submit, methods=["POST"]),
        Mount("/static", StaticFiles(packages=[("connectors.console", "static")]), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: on_http_exception})
    return app, console


def report_json(report: dict[str, Any]) -> str:
    return orjson.dumps(report, option=orjson.OPT_INDENT_2).decode()
