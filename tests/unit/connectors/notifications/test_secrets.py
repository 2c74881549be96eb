"""Webhook secrets: plain (they sign), in a 0600 file; a new one replaces the old."""

from __future__ import annotations

from pathlib import Path

from connectors.notifications.secrets import WebhookSecrets


def test_secret_file_is_private_to_the_owner(tmp_path: Path) -> None:
    secrets = WebhookSecrets(tmp_path / "webhook_secrets.json")
    secrets.create("acme", "https://hooks.example/a")
    assert (tmp_path / "webhook_secrets.json").stat().st_mode & 0o777 == 0o600


def test_secrets_are_per_account_and_url(tmp_path: Path) -> None:
    secrets = WebhookSecrets(tmp_path / "webhook_secrets.json")
    a = secrets.create("acme", "https://hooks.example/a")
    b = secrets.create("acme", "https://hooks.example/b")
    assert a != b
    assert secrets.get("acme", "https://hooks.example/a") == a
    assert secrets.get("other", "https://hooks.example/a") is None


def test_a_new_secret_replaces_the_old(tmp_path: Path) -> None:
    secrets = WebhookSecrets(tmp_path / "webhook_secrets.json")
    old = secrets.create("acme", "https://hooks.example/a")
    new = secrets.create("acme", "https://hooks.example/a")
    assert old != new and secrets.get("acme", "https://hooks.example/a") == new
