"""Replacing a file whole: private from its first byte, durable, never seen half written."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def replace_file(path: Path, text: str, *, staging_dir: Path | None = None) -> None:
    """Writes `text` to a temporary file (mode 0600, in `staging_dir` or beside `path`),
    syncs it and renames it over `path`; on any failure the temporary file is removed and
    `path` keeps its old content."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=staging_dir or path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
