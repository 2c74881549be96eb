"""Per-account settings for the stateful rules: pure values, no I/O.

Settings come from whatever configuration the runtime reads (a file, an admin API); the
runtime parses that into plain mappings and hands them to `SettingsRegistry.from_mapping`.
The core never reads files itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from typing import Any

DEFAULT_MAX_EVENT_TYPES = 512  # CleverTap: 512 event types per account
DEFAULT_MAX_PROPERTIES = 256  # CleverTap: 256 properties per event type
DEFAULT_DEDUP_WINDOW = timedelta(hours=24)  # Naxai: idempotencyKey holds for 24 hours


@dataclass(slots=True, frozen=True)
class AccountSettings:
    """What an account may switch on or tune.

    * `dedup_fingerprint`: records without an idempotency key are deduplicated by a content
      fingerprint (name, identifiers, timestamp, properties …) within `dedup_window`.
    * `trigger_imports`: a standing opt-in for file imports to trigger campaigns (the
      account-wide form of Vero's "tick the box"); without it an import triggers only when
      its own upload asked (`Event.trigger_requested`).
    * `max_event_types` / `max_properties`: catalog limits (event types per account,
      distinct property names per event type).
    * `dedup_window`: how long an idempotency key (or fingerprint) is remembered, in
      processing time, from the acceptance that recorded it.
    """

    dedup_fingerprint: bool = False
    trigger_imports: bool = False
    max_event_types: int = DEFAULT_MAX_EVENT_TYPES
    max_properties: int = DEFAULT_MAX_PROPERTIES
    dedup_window: timedelta = DEFAULT_DEDUP_WINDOW

    def __post_init__(self) -> None:
        if self.max_event_types < 0 or self.max_properties < 0:
            raise ValueError("catalog limits must not be negative")
        if self.dedup_window <= timedelta(0):
            raise ValueError("dedup_window must be positive")

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], base: AccountSettings | None = None
    ) -> AccountSettings:
        """Settings from a JSON-like mapping; unknown keys are an error.

        `dedup_window` may be given as a `timedelta` or as seconds (`dedup_window_seconds`
        is accepted too). Keys that are absent keep the value from `base` (or the default).
        """
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key == "dedup_window_seconds":
                key = "dedup_window"
            if key not in known:
                raise ValueError(f"unknown account setting {key!r}")
            if key == "dedup_window" and not isinstance(value, timedelta):
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ValueError("dedup_window must be a number of seconds")
                value = timedelta(seconds=value)
            elif key in ("dedup_fingerprint", "trigger_imports") and not isinstance(value, bool):
                raise ValueError(f"{key} must be true or false")
            elif key in ("max_event_types", "max_properties") and (
                isinstance(value, bool) or not isinstance(value, int)
            ):
                raise ValueError(f"{key} must be an integer")
            values[key] = value
        return replace(base or cls(), **values)


DEFAULT_SETTINGS = AccountSettings()


@dataclass(slots=True, frozen=True)
class SettingsRegistry:
    """Settings per account: an explicit entry, else the default."""

    default: AccountSettings = DEFAULT_SETTINGS
    accounts: Mapping[str, AccountSettings] = field(default_factory=dict)

    def for_account(self, account: str) -> AccountSettings:
        return self.accounts.get(account, self.default)

    def __call__(self, account: str) -> AccountSettings:
        return self.for_account(account)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> SettingsRegistry:
        """From `{"default": {...}, "accounts": {"acme": {...}, ...}}`.

        Each account's entry overrides the default's values key by key.
        """
        unknown = set(data) - {"default", "accounts"}
        if unknown:
            raise ValueError(f"unknown settings section(s): {', '.join(sorted(unknown))}")
        default = AccountSettings.from_mapping(data.get("default") or {})
        accounts = {
            str(account): AccountSettings.from_mapping(entry, base=default)
            for account, entry in (data.get("accounts") or {}).items()
        }
        return cls(default=default, accounts=accounts)
