"""The settings file (`tidegate --config FILE`, TOML): flat keys, the variables' names in lower case."""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PREFIX = "TIDEGATE_"


class ConfigFileError(ValueError):
    """A settings file that cannot be used: unreadable, not TOML, an unknown key, a value that
    is not a single string, number or boolean. The message names the file and the key."""


@dataclass(frozen=True, slots=True)
class ConfigFile:
    path: Path
    values: dict[str, str]  # variable name (TIDEGATE_HTTP_PORT) -> text, as the environment has it


def key_of(name: str) -> str:
    """The file's key of a variable: `TIDEGATE_HTTP_PORT` -> `http_port`."""
    return name.removeprefix(PREFIX).lower()


def read_config_file(path: Path, known: Iterable[str]) -> ConfigFile:
    """Reads `path`; `known` are the variables a key may name (the settings groups' NAMES).

    The file is flat on purpose: each setting has one spelling, its variable's name without
    the prefix in lower case, so a file and an environment can be compared by eye and grep;
    a table would be a second spelling (and a second place for the same setting)."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigFileError(f"config file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigFileError(f"config file {path}: not UTF-8 text") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(f"config file {path}: not valid TOML: {exc}") from None
    keys = {key_of(name): name for name in known}
    values: dict[str, str] = {}
    for key, value in document.items():
        if isinstance(value, dict):
            example = next(iter(value), "key")
            raise ConfigFileError(
                f"config file {path}: [{key}] is a table; the file has no tables: write"
                f" {key}_{example} = ... at the top, before any [table]"
            )
        name = keys.get(key)
        if name is None:
            raise ConfigFileError(f"config file {path}: unknown key {key!r}{_hint(key, keys)}")
        values[name] = _text_of(path, key, value)
    return ConfigFile(path, values)


def _hint(key: str, keys: dict[str, str]) -> str:
    folded = key_of(key)
    if folded in keys:  # TIDEGATE_HTTP_PORT or HTTP_PORT written as in the environment
        return f" (write {folded!r})"
    close = difflib.get_close_matches(folded, keys, n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return " (the keys are in docs/CONFIGURATION.md)"


def _text_of(path: Path, key: str, value: object) -> str:
    """A TOML scalar as the text an environment variable would hold; the settings groups
    then parse it as they parse the environment, so both are checked by the same code."""
    if isinstance(value, bool):  # before int: a bool is an int
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise ConfigFileError(
        f"config file {path}: key {key!r} = {value!r}: a {type(value).__name__} is not a"
        " setting value (a string, a number or true/false)"
    )
