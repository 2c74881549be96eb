"""The HTTP upload API: CleverTap `/1/upload`, Naxai contact events, upload history.

Wiring (``tidegate run``)::

    app = create_app(ingest, authenticator, limits=HttpLimits(...))
    server = await serve_http(app, host, port)   # .port, .url, await .close()
"""

from connectors.http.app import create_app
from connectors.http.context import Authenticator, HttpLimits
from connectors.http.errors import IngestUnavailable
from connectors.http.server import HttpServer, loop_factory, serve_http

__all__ = [
    "Authenticator",
    "HttpLimits",
    "HttpServer",
    "IngestUnavailable",
    "create_app",
    "loop_factory",
    "serve_http",
]
