"""Real receivers for the notification tests: an aiosmtpd server and a Starlette webhook."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from aiosmtpd.controller import Controller
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SmtpSink:
    """aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK"


@asynccontextmanager
async def smtp_server() -> AsyncIterator[tuple[SmtpSink, int]]:
    sink = SmtpSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


@dataclass
class Hook:
    """What the receiver got, and how it answers: codes in turn, then 200; or hang."""

    answers: list[int] = field(default_factory=list)
    hang: bool = False
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        self.received.append((dict(request.headers), body))
        if self.hang:
            await asyncio.Event().wait()
        code = self.answers.pop(0) if self.answers else 200
        return Response(status_code=code)


@asynccontextmanager
async def webhook_server(hook: Hook, port: int | None = None) -> AsyncIterator[str]:
    app = Starlette(routes=[Route("/hook", hook.endpoint, methods=["POST"])])
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        server.should_exit = True
        server.force_exit = True
        with contextlib.suppress(TimeoutError):  # a hanging request keeps uvicorn waiting
            await asyncio.wait_for(task, 5)


async def until(predicate: Any, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


def hand_over_partial(events: Path, name: str) -> None:
    """A drop of two accepted records and one rejected (its timestamp is not a time), an
    hour old by the real clock, into a watched `events` folder: written under a hidden name
    first, so that it is seen whole."""
    at = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    rows = [
        {"user_id": "u1", "event_type": "signed_up", "timestamp": at, "idempotencyKey": "k1"},
        {"user_id": "u2", "event_type": "signed_up", "timestamp": at, "idempotencyKey": "k2"},
        {"user_id": "u3", "event_type": "signed_up", "timestamp": "soon", "idempotencyKey": "k3"},
    ]
    events.mkdir(parents=True, exist_ok=True)
    hidden = events / f".{name}"
    hidden.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    hidden.rename(events / name)


REPO = Path(__file__).resolve().parents[2]  # where `python -m tidegate.cli` runs


def tidegate_cli(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "tidegate.cli", *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    return done.stdout
