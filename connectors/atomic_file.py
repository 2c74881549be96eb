"""Writing a file whole: private from its first byte, durable, never seen half written."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def _publish(
    path: Path, text: str, staging_dir: Path | None, put: Callable[[str, Path], None]
) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=staging_dir or path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        put(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)  # after a rename there is nothing left to remove


def replace_file(path: Path, text: str, *, staging_dir: Path | None = None) -> None:
    """Writes `text` to a temporary file (mode 0600, in `staging_dir` or beside `path`),
    syncs it and renames it over `path`; on any failure `path` keeps its old content."""
    _publish(path, text, staging_dir, os.replace)


def create_file(path: Path, text: str) -> bool:
    """Like `replace_file`, but only when `path` does not exist yet (a hard link never
    replaces): False, and nothing changed, when another process created it first."""
    try:
        _publish(path, text, None, os.link)
    except FileExistsError:
        return False
    return True
