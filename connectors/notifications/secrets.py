"""Webhook signing secrets: plain (they must sign), in a 0600 file apart from accounts.toml."""

from __future__ import annotations

import json
import secrets as random
from pathlib import Path

from connectors.atomic_file import replace_file

FILE_NAME = "webhook_secrets.json"


class WebhookSecrets:
    """``{account: {url: secret}}`` in DATA/webhook_secrets.json, mode 0600; never logged."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, dict[str, str]]:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return {}
        if not isinstance(data, dict):
            raise ValueError(f"{self.path}: not a JSON object")
        return data

    def get(self, account: str, url: str) -> str | None:
        """Read at each delivery, so a secret made by the CLI is used without a restart."""
        return self._load().get(account, {}).get(url)

    def create(self, account: str, url: str) -> str:
        """A new random secret for (account, url), replacing any; returned once to show."""
        secret = "whsec_" + random.token_urlsafe(32)
        data = self._load()
        data.setdefault(account, {})[url] = secret
        self.path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(self.path, json.dumps(data, indent=1, sort_keys=True))
        return secret
