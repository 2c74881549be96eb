"""The accounts file as a running server sees it: re-read within a second of any change."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

from connectors.accounts import Account, Accounts, AccountsConfigError, load_accounts

log = logging.getLogger("tidegate.accounts")

Listener = Callable[[Accounts], None]


class LiveAccounts:
    """Holds the current `Accounts` and swaps them whole when the file changes.

    The file's (mtime, size, inode) is polled every `poll_seconds` (`tidegate accounts`
    replaces it atomically, so a new inode is a new version). A file that does not load
    is logged and the previous accounts stay in force. Listeners (SFTP drop, watched
    folder, HTTP credential cache, rule settings) are called after each swap. As an
    `Authenticator` it always checks against the current accounts, so a removed or
    rotated credential fails from the swap on.
    """

    def __init__(self, path: Path, accounts: Accounts, *, poll_seconds: float = 0.5) -> None:
        self.path = path
        self.current = accounts
        self.poll_seconds = poll_seconds
        self.listeners: list[Listener] = []
        self._signature = self._stat()
        self._task: asyncio.Task[None] | None = None

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def load_if_changed(self) -> Accounts | None:
        """The accounts of a changed file (None: unchanged, or it does not load)."""
        signature = self._stat()
        if signature == self._signature or signature is None:
            return None
        self._signature = signature
        try:
            return load_accounts(self.path)
        except AccountsConfigError as exc:
            log.error("accounts file not reloaded (the previous accounts stay): %s", exc)
            return None

    def apply(self, accounts: Accounts) -> None:
        self.current = accounts
        for listener in self.listeners:
            try:
                listener(accounts)
            except Exception:
                log.exception("accounts reload: a listener failed")
        log.info("accounts reloaded: %s", ", ".join(accounts.names) or "(none)")

    def check(self) -> bool:
        """Reloads when the file changed; True when new accounts are in force."""
        accounts = self.load_if_changed()
        if accounts is not None:
            self.apply(accounts)
        return accounts is not None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            # reading and checking the file in a thread; the swap on the loop
            accounts = await asyncio.to_thread(self.load_if_changed)
            if accounts is not None:
                self.apply(accounts)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="accounts reload")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # -- the Authenticator and lookups, always on the current accounts

    @property
    def names(self) -> list[str]:
        return self.current.names

    def get(self, name: str) -> Account | None:
        return self.current.get(name)

    def verify_api_key(self, account: str, key: str) -> bool:
        return self.current.verify_api_key(account, key)

    def verify_passcode(self, account: str, passcode: str) -> bool:
        return self.current.verify_passcode(account, passcode)

    def by_clevertap_account_id(self, account_id: str) -> Account | None:
        return self.current.by_clevertap_account_id(account_id)
