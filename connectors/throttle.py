"""Failed-login throttling per address and per account, shared by the SFTP, FTP and HTTP front doors."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ThrottleSettings:
    """How hard guessing is made; every count is of failures within `window` seconds.

    An address gets `address_free` failures at full speed, then each attempt waits
    `base_delay` doubling per failure up to `max_delay`, and after `address_limit` failures
    it is refused until its failures age out. An account gets the same backoff after
    `account_free` failures (from any address, capped at `account_max_delay` so that the
    rightful user is slowed, not stopped); after `account_limit` failures it refuses
    addresses that have not logged into it before (a guessing crowd), while an address that
    logged in successfully since start-up still gets in.
    """

    window: float = 900.0
    address_free: int = 5
    address_limit: int = 20
    account_free: int = 10
    account_limit: int = 100
    base_delay: float = 0.25
    max_delay: float = 8.0
    account_max_delay: float = 2.0
    max_entries: int = 100_000


@dataclass(frozen=True, slots=True)
class Verdict:
    """Before checking a secret: refuse (for `retry_after` seconds), or wait `delay` first."""

    refused: bool
    delay: float = 0.0
    reason: str = ""  # "address" or "account" when refused
    retry_after: float = 0.0


ALLOW = Verdict(False)


@dataclass(slots=True)
class _Failures:
    count: int
    last: float


class LoginThrottle:
    """Counts failed logins; `check` before verifying, then `failed` or `succeeded`.

    Thread-safe and clock-injected; holds no secret, only addresses and account names.
    A front door uses it as::

        verdict = throttle.check(address, account)
        if verdict.refused: refuse (HTTP 429 + Retry-After, SFTP/FTP: fail the login)
        await asyncio.sleep(verdict.delay)
        ok = verify(...)
        throttle.failed(address, account) if not ok else throttle.succeeded(address, account)
    """

    def __init__(
        self,
        settings: ThrottleSettings | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings or ThrottleSettings()
        self._monotonic = monotonic
        self._by_address: dict[str, _Failures] = {}
        self._by_account: dict[str, _Failures] = {}
        self._known: set[tuple[str, str]] = set()  # (address, account) that logged in
        self._lock = threading.Lock()

    def _count(self, table: dict[str, _Failures], key: str, now: float) -> _Failures | None:
        entry = table.get(key)
        if entry is not None and now - entry.last > self.settings.window:
            del table[key]
            return None
        return entry

    def _backoff(self, failures: int, free: int, cap: float) -> float:
        if failures < free:
            return 0.0
        return float(min(cap, self.settings.base_delay * 2 ** min(failures - free, 30)))

    def check(self, address: str, account: str) -> Verdict:
        s = self.settings
        now = self._monotonic()
        with self._lock:
            by_address = self._count(self._by_address, address, now)
            by_account = self._count(self._by_account, account, now)
            known = (address, account) in self._known
        if by_address is not None and by_address.count >= s.address_limit:
            return Verdict(True, reason="address", retry_after=s.window - (now - by_address.last))
        if by_account is not None and by_account.count >= s.account_limit and not known:
            return Verdict(True, reason="account", retry_after=s.window - (now - by_account.last))
        delay = max(
            self._backoff(by_address.count if by_address else 0, s.address_free, s.max_delay),
            0.0
            if known
            else self._backoff(
                by_account.count if by_account else 0, s.account_free, s.account_max_delay
            ),
        )
        return Verdict(False, delay=delay) if delay else ALLOW

    def failed(self, address: str, account: str) -> None:
        now = self._monotonic()
        with self._lock:
            for table, key in ((self._by_address, address), (self._by_account, account)):
                entry = self._count(table, key, now)
                if entry is None:
                    if len(table) >= self.settings.max_entries:
                        self._expire(table, now)
                    table[key] = _Failures(1, now)
                else:
                    entry.count += 1
                    entry.last = now

    def succeeded(self, address: str, account: str) -> None:
        """Forgets the address's failures and remembers it as a rightful one of `account`."""
        with self._lock:
            self._by_address.pop(address, None)
            if len(self._known) >= self.settings.max_entries:
                self._known.clear()
            self._known.add((address, account))

    def _expire(self, table: dict[str, _Failures], now: float) -> None:
        # Bounded memory under a spray of addresses: drop the aged-out entries, and when
        # none has aged out, the oldest half.
        window = self.settings.window
        stale = [key for key, entry in table.items() if now - entry.last > window]
        if not stale:
            stale = sorted(table, key=lambda key: table[key].last)[: len(table) // 2]
        for key in stale:
            del table[key]
