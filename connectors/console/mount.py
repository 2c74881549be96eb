"""Hooks the console into the HTTP API's app: ``/console`` and ``/`` leading there."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route

from connectors.console.app import (
    PREFIX,
    Console,
    ConsoleIngest,
    ConsoleSettings,
    Validate,
    Verifier,
    create_console,
)
from connectors.console.secrets import ConsoleSecrets


async def _to_console(request: Request) -> Response:
    return RedirectResponse(f"{PREFIX}/", 307)


def attach_console(
    app: Starlette,
    ingest: ConsoleIngest,
    accounts: Verifier,
    secrets: ConsoleSecrets,
    *,
    validate: Validate,
    staging: Path,
    settings: ConsoleSettings = ConsoleSettings(),  # noqa: B008 (frozen)
) -> Console:
    """Mounts the console on ``app``; returns it (``close()`` it before the server stops)."""
    console_app, console = create_console(
        ingest,
        accounts,
        signing_key=secrets.signing_key,
        operator_check=secrets.verify_operator,
        validate=validate,
        staging=staging,
        settings=settings,
    )
    app.router.routes[:0] = [
        Route("/", _to_console, methods=["GET"]),
        Route(PREFIX, _to_console, methods=["GET"]),
        Mount(PREFIX, console_app),
    ]
    return console
