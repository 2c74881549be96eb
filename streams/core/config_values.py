"""Typed reads of start-up settings from one mapping of `TIDEGATE_*` names to text."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from streams.core.timeparse import from_iso

# The command line merges flags over the environment over the config file into one mapping
# keyed by the environment variable's name; every settings group reads it with these, so a
# bad value is reported the same way wherever it is read.
Values = Mapping[str, str]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


class SettingError(ValueError):
    """A setting's value that cannot be used; the message names the setting and the value."""

    def __init__(self, name: str, value: str, reason: str) -> None:
        super().__init__(f"{name}={value!r}: {reason}")
        self.name = name
        self.value = value
        self.reason = reason


def read_str(values: Values, name: str, default: str) -> str:
    """The text of `name`, or `default` when it is unset."""
    return values.get(name, default)


def read_int(values: Values, name: str, default: int, minimum: int | None = None) -> int:
    """An integer setting, at least `minimum` when one is given."""
    text = values.get(name)
    if text is None:
        return default
    try:
        number = int(text.strip())
    except ValueError:
        raise SettingError(name, text, "not a whole number") from None
    if minimum is not None and number < minimum:
        raise SettingError(name, text, f"must be at least {minimum}")
    return number


def read_float(values: Values, name: str, default: float, minimum: float | None = None) -> float:
    """A number setting (seconds, rates), at least `minimum` when one is given."""
    text = values.get(name)
    if text is None:
        return default
    try:
        number = float(text.strip())
    except ValueError:
        raise SettingError(name, text, "not a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise SettingError(name, text, "not a finite number")
    if minimum is not None and number < minimum:
        raise SettingError(name, text, f"must be at least {minimum:g}")
    return number


def read_bool(values: Values, name: str, default: bool) -> bool:
    """A switch: 1/true/yes/on or 0/false/no/off (any case); anything else is an error."""
    text = values.get(name)
    if text is None:
        return default
    folded = text.strip().lower()
    if folded in _TRUE:
        return True
    if folded in _FALSE:
        return False
    raise SettingError(name, text, "expected one of 1/true/yes/on or 0/false/no/off")


def read_choice(values: Values, name: str, default: str, choices: tuple[str, ...]) -> str:
    """A setting that must be one of `choices`."""
    text = values.get(name)
    if text is None:
        return default
    if text not in choices:
        raise SettingError(name, text, "expected one of " + ", ".join(choices))
    return text


def read_port(values: Values, name: str, default: int, minimum: int = 0) -> int:
    """A TCP port, `minimum`..65535 (0 asks for any free port; some settings take -1: off)."""
    port = read_int(values, name, default, minimum=minimum)
    if port > 65535:
        raise SettingError(name, values[name], "must be at most 65535")
    return port


def read_port_range(values: Values, name: str) -> tuple[int, int] | None:
    """`LOW-HIGH` (or one port), inclusive, within 1-65535; None when unset or empty."""
    text = values.get(name, "").strip()
    if not text:
        return None
    low, sep, high = text.partition("-")
    try:
        first, last = int(low), int(high if sep else low)
    except ValueError:
        raise SettingError(name, values[name], "expected LOW-HIGH, e.g. 60000-60100") from None
    if not 1 <= first <= last <= 65535:
        raise SettingError(name, values[name], "expected LOW-HIGH within 1-65535, LOW <= HIGH")
    return first, last


def read_time(values: Values, name: str) -> datetime | None:
    """An ISO-8601 time (`2018-09-02T00:00:00Z`); None when unset or empty."""
    text = values.get(name, "")
    if not text.strip():
        return None
    parsed = from_iso(text.strip())
    if parsed is None:
        raise SettingError(name, text, "not an ISO-8601 time, e.g. 2018-09-02T00:00:00Z")
    return parsed
