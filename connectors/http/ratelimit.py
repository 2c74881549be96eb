"""A token bucket per account, counted in records (a 1000-record batch costs 1000 tokens)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Per-account token buckets: ``rate`` records per second, up to ``burst`` saved up.

    ``take(account, n)`` either takes ``n`` tokens and returns 0.0, or takes nothing and
    returns how many seconds until ``n`` tokens will be there (the `Retry-After`). The
    burst is never below ``min_burst`` (the largest batch), so every legal batch can pass
    eventually. ``rate=None`` disables limiting.
    """

    def __init__(
        self,
        rate: float | None,
        burst: float,
        *,
        min_burst: float = 0.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive (or None for no limit)")
        self.rate = rate
        self.burst = max(float(burst), float(min_burst), 1.0)
        self._monotonic = monotonic
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate is not None

    def take(self, account: str, cost: float) -> float:
        rate = self.rate
        if rate is None or cost <= 0:
            return 0.0
        now = self._monotonic()
        with self._lock:
            bucket = self._buckets.get(account)
            if bucket is None:
                bucket = self._buckets[account] = _Bucket(self.burst, now)
            else:
                elapsed = max(0.0, now - bucket.updated)
                bucket.tokens = min(self.burst, bucket.tokens + elapsed * rate)
                bucket.updated = now
            if cost > self.burst:
                # Can never pass whole: wait for a full bucket (the app caps batches anyway).
                return max(self.burst - bucket.tokens, 0.0) / rate or 1.0 / rate
            if bucket.tokens >= cost:
                bucket.tokens -= cost
                return 0.0
            return (cost - bucket.tokens) / rate

    @staticmethod
    def retry_after_header(wait: float) -> str:
        """Whole seconds, at least 1 (HTTP's `Retry-After` takes integers)."""
        return str(max(1, math.ceil(wait)))
