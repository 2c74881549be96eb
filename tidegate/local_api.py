"""The running instance's local control socket (`DATA/run.sock`): `tidegate import` beside `run`.

`tidegate run` owns the data directory (one engine per directory). So that `tidegate
import` still works while it runs, `run` serves a small HTTP API on a unix socket in the
data directory, mode 0600 (only the user who owns the data can use it; nothing listens on
the network): submit a file by path, read an upload with its progress, wait for it. The
import command finds the socket, submits through it and shows the same progress, report
and exit code as when it runs the engine itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.ports import FileUpload, Ingest, UploadView
from streams.core.records import Dialect
from streams.core.timeparse import from_iso, to_iso

SOCKET_NAME = "run.sock"


def socket_path(data: Path) -> Path:
    return data / SOCKET_NAME


def create_local_app(ingest: Ingest) -> Starlette:
    async def submit(request: Request) -> Response:
        doc = await request.json()
        received = from_iso(doc["received_at"]) if doc.get("received_at") else None
        path = Path(doc["path"])
        upload = FileUpload(
            account=doc["account"],
            filename=path.name,
            path=path,
            received_at=received or datetime.now(UTC),
            dialect=Dialect(doc["dialect"]) if doc.get("dialect") else None,
            trigger=True if doc.get("trigger") else None,
        )
        receipt = await ingest.submit_file(upload)
        refused = receipt.refused
        existing = None
        if receipt.upload_id is None:
            find = getattr(ingest, "find_upload", None)
            found = await find(upload.account, upload.filename) if find else None
            if found is not None and found.status in ("queued", "processing"):
                existing = found.upload_id  # an interrupted import of this file: resume it
        return JSONResponse(
            {
                "upload_id": receipt.upload_id or existing,
                "refused": {"code": refused.code.value, "message": refused.message}
                if refused and existing is None
                else None,
            }
        )

    async def upload(request: Request) -> Response:
        view = await ingest.get_upload(request.path_params["upload_id"])
        if view is None:
            return JSONResponse({"code": "not_found"}, 404)
        return JSONResponse(asdict(view))

    async def wait(request: Request) -> Response:
        timeout = float(request.query_params.get("timeout", "5"))
        try:
            view = await asyncio.wait_for(ingest.wait(request.path_params["upload_id"]), timeout)
        except TimeoutError:
            return Response(status_code=204)
        return JSONResponse(asdict(view))

    return Starlette(
        routes=[
            Route("/imports", submit, methods=["POST"]),
            Route("/uploads/{upload_id}", upload),
            Route("/uploads/{upload_id}/wait", wait, methods=["POST"]),
        ]
    )


class _QuietServer(uvicorn.Server):
    """uvicorn without its signal capture: `tidegate run` owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class LocalServer:
    def __init__(self, server: uvicorn.Server, task: asyncio.Task[None], path: Path) -> None:
        self.server, self.task, self.path = server, task, path

    async def close(self) -> None:
        self.server.should_exit = True
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(self.task, 10)
        self.path.unlink(missing_ok=True)


async def serve_local(ingest: Ingest, data: Path) -> LocalServer:
    """Serves the control API on `DATA/run.sock` (0600) in the running loop."""
    path = socket_path(data)
    path.unlink(missing_ok=True)  # a stale socket of a process that is gone (we hold the lock)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(64)
    config = uvicorn.Config(create_local_app(ingest), log_level="warning", lifespan="off")
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="local control socket")
    while not server.started and not task.done():
        await asyncio.sleep(0.005)
    return LocalServer(server, task, path)


# ----------------------------------------------------------------------------- client


class RunningInstance:
    """A client of a running instance's control socket."""

    def __init__(self, path: Path) -> None:
        self.client = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=str(path)),
            base_url="http://tidegate.local",
            timeout=60,
        )

    @classmethod
    async def find(cls, data: Path) -> RunningInstance | None:
        """The running instance of `data`, when one answers on its socket."""
        path = socket_path(data)
        if not path.exists():
            return None
        instance = cls(path)
        try:
            await instance.client.get("/uploads/-")
        except httpx.TransportError:
            await instance.aclose()
            return None
        return instance

    async def aclose(self) -> None:
        await self.client.aclose()

    async def submit(
        self,
        path: Path,
        account: str,
        dialect: str | None,
        trigger: bool,
        received_at: datetime | None,
    ) -> dict[str, Any]:
        response = await self.client.post(
            "/imports",
            json={
                "path": str(path),
                "account": account,
                "dialect": dialect,
                "trigger": trigger,
                "received_at": to_iso(received_at) if received_at else None,
            },
        )
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer

    async def get(self, upload_id: str) -> UploadView | None:
        response = await self.client.get(f"/uploads/{upload_id}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return UploadView(**response.json())

    async def wait(self, upload_id: str) -> UploadView:
        while True:
            response = await self.client.post(f"/uploads/{upload_id}/wait", params={"timeout": 5})
            response.raise_for_status()
            if response.status_code == 200:
                return UploadView(**response.json())
