"""The accounts file and the per-account rule settings read from it."""

from __future__ import annotations

from pathlib import Path

from connectors.accounts import Accounts, load_accounts
from streams.core.csvmap import CsvMapping
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


def mappings_of(accounts: Accounts) -> dict[str, CsvMapping]:
    """The default CSV column mapping of each account that has one (``csv_mapping``)."""
    return {a.name: a.csv_mapping for a in accounts if a.csv_mapping is not None}


def load_mappings(config: Path | None, data: Path) -> dict[str, CsvMapping]:
    """The accounts' default CSV mappings, when there is an accounts file."""
    path = accounts_path(config, data)
    return mappings_of(load_accounts(path)) if path.exists() else {}
