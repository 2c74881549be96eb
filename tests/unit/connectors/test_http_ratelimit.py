"""The per-account token bucket."""

from __future__ import annotations

import pytest

from connectors.http.ratelimit import RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_starts_full_then_refills_at_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(100.0, 1000, monotonic=clock)
    assert limiter.take("a", 1000) == 0.0
    assert limiter.take("a", 1) == pytest.approx(0.01)
    clock.now += 5.0  # 500 tokens back
    assert limiter.take("a", 500) == 0.0
    wait = limiter.take("a", 300)
    assert wait == pytest.approx(3.0)
    clock.now += wait
    assert limiter.take("a", 300) == 0.0


def test_refill_never_exceeds_the_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10.0, 50, monotonic=clock)
    clock.now += 3600
    assert limiter.take("a", 50) == 0.0
    assert limiter.take("a", 1) > 0


def test_accounts_have_separate_buckets() -> None:
    limiter = RateLimiter(1.0, 10, monotonic=FakeClock())
    assert limiter.take("a", 10) == 0.0
    assert limiter.take("a", 10) > 0
    assert limiter.take("b", 10) == 0.0


def test_a_refused_take_costs_nothing() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10.0, 100, monotonic=clock)
    assert limiter.take("a", 60) == 0.0
    assert limiter.take("a", 60) > 0
    assert limiter.take("a", 40) == 0.0


def test_burst_is_at_least_the_largest_batch() -> None:
    limiter = RateLimiter(10.0, 5, min_burst=1000, monotonic=FakeClock())
    assert limiter.burst == 1000
    assert limiter.take("a", 1000) == 0.0


def test_disabled_limiter_always_passes() -> None:
    limiter = RateLimiter(None, 0)
    assert not limiter.enabled
    for _ in range(100):
        assert limiter.take("a", 10_000) == 0.0


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert RateLimiter.retry_after_header(0.01) == "1"
    assert RateLimiter.retry_after_header(1.0) == "1"
    assert RateLimiter.retry_after_header(1.2) == "2"


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RateLimiter(0.0, 10)
