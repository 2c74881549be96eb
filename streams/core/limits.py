"""Stateless size limits on names, property keys, values and idempotency keys."""

from __future__ import annotations

from typing import Any

from streams.core.errors import ErrorCode, Rejection

MAX_KEY_CHARS = 120
MAX_VALUE_BYTES = 512
MAX_IDEMPOTENCY_KEY_CHARS = 128
# Nested property values deeper than this are refused rather than walked (stack safety).
MAX_DEPTH = 32


def check_name(name: str) -> Rejection | None:
    if len(name) > MAX_KEY_CHARS:
        return Rejection(
            ErrorCode.KEY_TOO_LONG,
            f"event name is {len(name)} characters; the limit is {MAX_KEY_CHARS}",
            field="name",
        )
    return None


def check_idempotency_key(key: str) -> Rejection | None:
    if len(key) > MAX_IDEMPOTENCY_KEY_CHARS:
        return Rejection(
            ErrorCode.IDEMPOTENCY_KEY_TOO_LONG,
            f"idempotencyKey is {len(key)} characters; the limit is {MAX_IDEMPOTENCY_KEY_CHARS}",
            field="idempotencyKey",
        )
    return None


def check_properties(
    properties: dict[str, Any], path: str = "", depth: int = 0
) -> Rejection | None:
    """Keys ≤ 120 characters and string values ≤ 512 UTF-8 bytes, at every nesting level."""
    if depth > MAX_DEPTH:
        return Rejection(ErrorCode.INVALID_FIELD, f"property {path} nests deeper than {MAX_DEPTH}")
    for key, value in properties.items():
        if len(key) > MAX_KEY_CHARS:
            return Rejection(
                ErrorCode.KEY_TOO_LONG,
                f"property key {key[:40]!r}... is {len(key)} characters; the limit is {MAX_KEY_CHARS}",
                field=key,
            )
        kind = type(value)
        if kind is str:
            # Cheap bound first: a str of n chars has at most 4n UTF-8 bytes. The path is
            # only built for a rejection.
            if len(value) * 4 <= MAX_VALUE_BYTES:
                continue
        elif kind is int or kind is float or kind is bool or value is None:
            continue  # scalars have no limit
        elif kind is list:
            # A flat list of short strings and scalars, the common case, needs no walk.
            for item in value:
                item_kind = type(item)
                if item_kind is str:
                    if len(item) * 4 > MAX_VALUE_BYTES:
                        break
                elif not (
                    item_kind is int or item_kind is float or item_kind is bool or item is None
                ):
                    break
            else:
                continue
        rejection = _check_value(value, f"{path}{key}", depth)
        if rejection is not None:
            return rejection
    return None


def _check_value(value: Any, path: str, depth: int) -> Rejection | None:
    if isinstance(value, str):
        # Cheap bound first: a str of n chars has at most 4n UTF-8 bytes.
        if (
            len(value) * 4 > MAX_VALUE_BYTES
            and len(value.encode("utf-8", "surrogatepass")) > MAX_VALUE_BYTES
        ):
            return Rejection(
                ErrorCode.VALUE_TOO_LONG,
                f"property {path} is longer than {MAX_VALUE_BYTES} bytes",
                field=path,
            )
    elif isinstance(value, dict):
        return check_properties(value, f"{path}.", depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            kind = type(item)
            if kind is str:
                if len(item) * 4 <= MAX_VALUE_BYTES:
                    continue
            elif kind is int or kind is float or kind is bool or item is None:
                continue
            rejection = _check_value(item, f"{path}[{index}]", depth + 1)
            if rejection is not None:
                return rejection
    return None
