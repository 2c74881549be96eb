"""Identifier cleaning: trimming, email lowercasing, placeholder values that are not identities."""

from __future__ import annotations

import re
from typing import Any

# Values that clients send when they have no identity; never a user.
BLOCKED_VALUES = frozenset({"", "null", "none", "nil", "undefined", "0", "-1", "anonymous", "nan"})

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# `str.lower()` never makes a string shorter, so a text longer than every placeholder
# cannot be one: the common case skips lowercasing.
_MAX_BLOCKED_CHARS = max(len(value) for value in BLOCKED_VALUES)


def looks_like_email(value: str) -> bool:
    return _EMAIL.match(value) is not None


def identifier_text(value: Any) -> str | None:
    """The identifier as text, or None when the JSON value cannot be an identifier."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool) or value is None:
        return None if value is None else str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return None


def clean_identifier(namespace: str, value: Any) -> str | None:
    """Trimmed (emails lowercased) identifier value, or None for a placeholder value."""
    if type(value) is str:  # the common case, without the type dispatch below
        stripped = value.strip()
        if len(stripped) <= _MAX_BLOCKED_CHARS and stripped.lower() in BLOCKED_VALUES:
            return None
        return stripped.lower() if namespace == "email" else stripped
    text = identifier_text(value)
    if text is None or text.lower() in BLOCKED_VALUES:
        return None
    return text.lower() if namespace == "email" else text


def classify_freeform(value: Any) -> tuple[str, Any]:
    """A free-form identity (Kissmetrics `_p`, CleverTap `identity`, Naxai identifier)."""
    text = identifier_text(value)
    if text is not None and looks_like_email(text):
        return "email", text
    return "user_id", value


class IdentifierSet:
    """Collects identifiers of one record and tells missing from blocked."""

    __slots__ = ("blocked", "values")

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.blocked = 0

    def add(self, namespace: str, value: Any) -> None:
        cleaned = clean_identifier(namespace, value)
        if cleaned is None:
            self.blocked += 1
        elif namespace not in self.values:
            self.values[namespace] = cleaned
