"""The watched drop folder: files that arrive by other means (rsync, cloud sync, cp).

Layout, under the watch root (created for every account at start)::

    <watch_root>/<account>/events/            files here: the account's trigger default
    <watch_root>/<account>/events-trigger/    files here: the upload opts in to triggers
    <watch_root>/.tidegate/processing/        claimed files (internal; see staging.py)

How a file is picked up (polling; no inotify, so it works on network and FUSE mounts):

* Only regular files directly inside the two folders; sub-directories and symlinks are
  ignored (with one warning each). Dotfiles — which covers rsync's ``.name.XXXXXX``
  temporaries — and other temporary names (``*.part``, ``*.tmp``, ``*.filepart``,
  ``*.crdownload`` …, see `connectors.staging.TEMP_SUFFIXES`) are ignored until they
  are renamed. Status files (``*.rejected.txt``, ``*.error.txt``) are Tidegate's own.
* A file counts as completely written once its size, mtime (and inode/ctime) have not
  changed for `settle_seconds`, seen by polls `poll_interval` apart. The hand-over
  therefore comes between `settle_seconds` and `settle_seconds + poll_interval` after
  the last write. ``received_at`` is when the final state was first seen.
* It is then claimed — moved into the processing area — *before* it is submitted, so
  it is handed over once: a restart finds it either still in the folder (not claimed
  yet) or in the processing area (and resubmits only if the submission was not
  recorded; see `connectors.staging`).
* A refusal leaves ``<name>.rejected.txt`` in the folder; the file is deleted.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.accounts import Account, Accounts
from connectors.ports import Ingest
from connectors.staging import (
    FOLDERS,
    Claim,
    HandOver,
    HandOverResult,
    is_status_name,
    is_temporary_name,
    name_problem,
)

__all__ = ["WatchFolder", "start_watch_folder"]

log = logging.getLogger("tidegate.watch")

_INTERNAL = ".tidegate"


@dataclass(slots=True)
class _Seen:
    signature: tuple[int, int, int, int]  # inode, size, mtime_ns, ctime_ns
    since: float  # monotonic time the signature was first seen
    since_wall: datetime


class WatchFolder:
    """A running watched folder. Create it with `start_watch_folder`."""

    def __init__(
        self,
        watch_root: Path,
        accounts: Accounts,
        ingest: Ingest,
        settle_seconds: float,
        poll_interval: float,
    ) -> None:
        self.watch_root = watch_root.resolve()
        self.accounts = accounts
        self.ingest = ingest
        self.settle_seconds = max(0.0, settle_seconds)
        self.poll_interval = max(0.01, poll_interval)
        self.handover = HandOver(
            self.watch_root / _INTERNAL / "processing", self.watch_root, ingest, source="watch"
        )
        self.results: list[HandOverResult] = []
        self._seen: dict[tuple[str, str, str], _Seen] = {}
        self._warned: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._closing = False

    # -- layout

    def folder_dir(self, account: str, folder: str) -> Path:
        return self.watch_root / account / folder

    def _prepare_account(self, account: Account) -> None:
        for folder in FOLDERS:
            directory = self.folder_dir(account.name, folder)
            if directory.is_symlink():
                raise RuntimeError(f"{directory} is a symlink; refusing to watch it")
            directory.mkdir(parents=True, exist_ok=True)

    def update_accounts(self, accounts: Accounts) -> None:
        for account in accounts:
            self._prepare_account(account)
        self.accounts = accounts

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)

    # -- scanning

    def scan_once(self) -> list[Claim]:
        """One poll: notes changes, claims files that stayed unchanged for the settle
        delay and starts their submission. Returns the claims made by this poll."""
        now = time.monotonic()
        present: set[tuple[str, str, str]] = set()
        claims: list[Claim] = []
        self._check_unknown_accounts()
        for account in self.accounts:
            for folder in FOLDERS:
                directory = self.folder_dir(account.name, folder)
                try:
                    entries = list(os.scandir(directory))
                except FileNotFoundError:
                    self._warn_once(str(directory), "watched folder %s is missing", directory)
                    continue
                for entry in entries:
                    claim = self._consider(account, folder, entry, now, present)
                    if claim is not None:
                        claims.append(claim)
        for key in list(self._seen):
            if key not in present:
                del self._seen[key]  # gone (deleted, renamed, claimed)
        return claims

    def _check_unknown_accounts(self) -> None:
        try:
            names = os.listdir(self.watch_root)
        except FileNotFoundError:
            return
        for name in names:
            if name.startswith(".") or name in self.accounts:
                continue
            self._warn_once(f"account:{name}", "watch folder: %s is not an account; ignored", name)

    def _consider(
        self,
        account: Account,
        folder: str,
        entry: os.DirEntry[str],
        now: float,
        present: set[tuple[str, str, str]],
    ) -> Claim | None:
        name = entry.name
        if is_temporary_name(name) or is_status_name(name):
            return None
        if not entry.is_file(follow_symlinks=False):
            self._warn_once(
                entry.path, "watch folder: %s is not a regular file; ignored", entry.path
            )
            return None
        problem = name_problem(name)
        if problem:
            self._warn_once(entry.path, "watch folder: %s ignored: %s", entry.path, problem)
            return None
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            return None
        key = (account.name, folder, name)
        present.add(key)
        signature = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        seen = self._seen.get(key)
        if seen is None or seen.signature != signature:
            self._seen[key] = _Seen(signature, now, datetime.now(UTC))
            return None
        if now - seen.since < self.settle_seconds:
            return None
        try:
            claim = self.handover.claim(
                Path(entry.path),
                account=account.name,
                folder=folder,
                filename=name,
                received_at=seen.since_wall,
                trigger=FOLDERS[folder],
                dialect=account.dialect,
            )
        except OSError as exc:
            log.warning("watch folder: could not claim %s: %s", entry.path, exc)
            return None
        del self._seen[key]
        present.discard(key)
        log.info(
            "watch folder: %s/%s/%s complete (%d bytes, unchanged for %.1fs)",
            account.name,
            folder,
            name,
            st.st_size,
            now - seen.since,
        )
        self._spawn(self._submit(claim))
        return claim

    async def _submit(self, claim: Claim) -> None:
        result = await self.handover.submit(claim)
        self.results.append(result)
        del self.results[:-1000]

    # -- lifecycle

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _recover(self) -> None:
        for claim in self.handover.recover():
            log.info(
                "watch folder: resubmitting %s/%s from an earlier run",
                claim.account,
                claim.filename,
            )
            self._spawn(self._submit(claim))

    async def _run(self) -> None:
        while not self._closing:
            try:
                self.scan_once()
            except Exception:
                log.exception("watch folder: scan failed")
            await asyncio.sleep(self.poll_interval)

    def close(self) -> None:
        """Stops polling and pending submissions (claims resume at the next start)."""
        self._closing = True
        if self._loop_task is not None:
            self._loop_task.cancel()
        for task in list(self._tasks):
            task.cancel()

    async def wait_closed(self) -> None:
        tasks = [t for t in (self._loop_task, *self._tasks) if t is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def aclose(self) -> None:
        self.close()
        await self.wait_closed()

    async def __aenter__(self) -> WatchFolder:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def start_watch_folder(
    watch_root: Path,
    accounts: Accounts,
    ingest: Ingest,
    settle_seconds: float,
    *,
    poll_interval: float | None = None,
) -> WatchFolder:
    """Starts polling `watch_root`; `poll_interval` defaults to min(1 s, settle / 4)."""
    watch_root.mkdir(parents=True, exist_ok=True)
    interval = (
        poll_interval if poll_interval is not None else min(1.0, max(settle_seconds, 0.04) / 4)
    )
    watcher = WatchFolder(watch_root, accounts, ingest, settle_seconds, interval)
    for account in accounts:
        watcher._prepare_account(account)
    (watcher.watch_root / _INTERNAL).chmod(0o700)
    watcher._recover()
    watcher._loop_task = asyncio.get_running_loop().create_task(watcher._run())
    log.info(
        "watching %s (settle %.1fs, poll every %.2fs)",
        watcher.watch_root,
        watcher.settle_seconds,
        watcher.poll_interval,
    )
    return watcher
