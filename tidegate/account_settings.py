"""The accounts file and the per-account rule settings read from it."""

from __future__ import annotations

from pathlib import Path

from connectors.accounts import Accounts, load_accounts
from streams.core.settings import SettingsRegistry


def settings_of(accounts: Accounts) -> SettingsRegistry:
    """The rule settings of every account in the accounts file."""
    return SettingsRegistry.from_mapping(
        {"accounts": {account.name: account.settings_mapping() for account in accounts}}
    )


def accounts_path(config: Path | None, data: Path) -> Path:
    return config or data / "accounts.toml"


def load_settings(config: Path | None, data: Path) -> SettingsRegistry:
    """Per-account rule settings from the accounts file, when there is one."""
    path = accounts_path(config, data)
    return settings_of(load_accounts(path)) if path.exists() else SettingsRegistry()
