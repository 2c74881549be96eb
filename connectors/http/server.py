"""Serving the app on uvicorn, inside the caller's event loop (uvloop when installed)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Callable, Coroutine, Generator
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from connectors.http.deadline import header_deadline_protocol

log = logging.getLogger(__name__)


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal capture: the process that embeds it owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class HttpServer:
    """A running server: ``.host``, ``.port`` (the bound one, also for port 0), ``.url``,
    ``await .close()`` (stops accepting, finishes in-flight requests, then returns)."""

    def __init__(self, server: _EmbeddedServer, task: asyncio.Task[None], sock: socket.socket):
        self._server = server
        self._task = task
        self._sock = sock
        address = sock.getsockname()
        self.host: str = address[0]
        self.port: int = address[1]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def closed(self) -> bool:
        return self._task.done()

    async def close(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            self._server.force_exit = True
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._task, 5.0)
        finally:
            self._sock.close()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._task)


def _bind(host: str, port: int, backlog: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def serve_http(
    app: ASGIApp,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    log_level: str = "warning",
    access_log: bool = False,
    backlog: int = 2048,
    timeout_keep_alive: int = 5,
    limit_concurrency: int | None = None,
    timeout_graceful_shutdown: int | None = 10,
    startup_timeout: float = 10.0,
    header_timeout: float = 10.0,
) -> HttpServer:
    """Starts uvicorn serving ``app`` on ``host:port`` (0: an ephemeral port) in the running
    loop and returns once it accepts connections. The loop is the caller's: run it on uvloop
    (``loop_factory()``) for speed. Signals are left to the caller; stop with ``close()``."""
    sock = _bind(host, port, backlog)
    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=access_log,
        lifespan="off",
        server_header=False,
        timeout_keep_alive=timeout_keep_alive,
        limit_concurrency=limit_concurrency,
        timeout_graceful_shutdown=timeout_graceful_shutdown,
        backlog=backlog,
        # a deadline for each request's headers (slow clients, see deadline.py)
        http=header_deadline_protocol(header_timeout),
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"uvicorn {host}:{port}")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + startup_timeout
    while not server.started:
        if task.done():
            sock.close()
            error = task.exception() if not task.cancelled() else None
            raise RuntimeError(f"the HTTP server did not start: {error!r}") from error
        if loop.time() > deadline:
            server.should_exit = True
            sock.close()
            raise TimeoutError("the HTTP server did not start in time")
        await asyncio.sleep(0.005)
    return HttpServer(server, task, sock)


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's loop when uvloop is installed, else asyncio's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings uvloop on Linux
        return asyncio.new_event_loop
    new_loop: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return new_loop


def run(main: Coroutine[Any, Any, Any]) -> Any:
    """Runs ``main`` to completion on uvloop when installed (asyncio's loop otherwise)."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)


async def serve_until_signalled(
    app: ASGIApp, host: str, port: int, *, ready: Callable[[HttpServer], None] | None = None
) -> None:
    """Serves until SIGINT or SIGTERM, then closes gracefully (for standalone use)."""
    server = await serve_http(app, host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready(server)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await server.close()
