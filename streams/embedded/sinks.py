"""JSON-lines outputs whose committed length lives in SQLite, so a crash never duplicates a line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

OUTPUTS = ("accepted", "triggers", "deadletter", "conflicts")


class OutputFiles:
    """`out/<name>.jsonl` files appended per batch.

    Lines are written and flushed before the batch's transaction commits the new offsets; at
    start-up each file is cut back to its committed offset, dropping lines of a batch whose
    transaction never committed. The batch is then decided again from the same input.
    """

    def __init__(self, directory: Path, committed: dict[str, int], fsync: bool = False) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.fsync = fsync
        self._files: dict[str, BinaryIO] = {}
        self.offsets: dict[str, int] = {}
        for name in OUTPUTS:
            path = directory / f"{name}.jsonl"
            handle = open(path, "ab+")  # noqa: SIM115 - kept open for the runtime's life
            size = handle.seek(0, os.SEEK_END)
            offset = committed.get(name, 0)
            if size > offset:
                handle.truncate(offset)
            self.offsets[name] = min(size, offset) if name in committed else size
            handle.seek(self.offsets[name])
            self._files[name] = handle
        self._pending: dict[str, list[bytes]] = {name: [] for name in OUTPUTS}
        self._unsynced: set[str] = set()  # written since the last sync

    def path(self, name: str) -> Path:
        return self.directory / f"{name}.jsonl"

    def add(self, name: str, line: bytes) -> None:
        """Queues a line (or several, joined by newlines) for the next `write_pending`."""
        self._pending[name].append(line)

    def write_pending(self, *, sync: bool = True) -> dict[str, int]:
        """Appends the queued lines and returns the offsets to commit with them.

        `sync=False` only writes (and flushes to the OS): for lines of a transaction that
        has not committed yet, written as they are decided; the commit's own call then
        syncs every file written since (when `fsync` is on).
        """
        for name, lines in self._pending.items():
            if lines:
                handle = self._files[name]
                lines.append(b"")
                data = b"\n".join(lines)
                handle.write(data)
                handle.flush()
                self.offsets[name] += len(data)
                self._unsynced.add(name)
                lines.clear()
        if sync and self.fsync:
            for name in self._unsynced:
                os.fsync(self._files[name].fileno())
        if sync:
            self._unsynced.clear()
        return dict(self.offsets)

    def rewind(self, committed: dict[str, int]) -> None:
        """Cuts every file back to its committed length after a failed batch (a full disk
        may have left part of a line), so the batch can be decided again in this process."""
        for name, handle in self._files.items():
            offset = min(committed.get(name, 0), self.offsets[name])
            handle.truncate(offset)
            handle.seek(offset)
            self.offsets[name] = offset
        self.discard_pending()
        self._unsynced.clear()

    def discard_pending(self) -> None:
        for lines in self._pending.values():
            lines.clear()

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()
