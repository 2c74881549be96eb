"""The web console: server-rendered pages over the Ingest port, under /console."""

from connectors.console.app import ConsoleSettings, create_console
from connectors.console.secrets import ConsoleSecrets, ensure_console_secrets

__all__ = ["ConsoleSecrets", "ConsoleSettings", "create_console", "ensure_console_secrets"]
