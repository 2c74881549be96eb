"""The variables a settings group's `from_values` reads, to check its `NAMES` against."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def names_read(from_values: Callable[[Any], object], values: dict[str, str]) -> set[str]:
    """Every name `from_values(values)` looks up (the readers of core/config_values use get)."""
    read: set[str] = set()

    class Recording(dict[str, str]):
        def get(self, key: str, default: Any = None) -> Any:
            read.add(key)
            return super().get(key, default)

    from_values(Recording(values))
    return read
