"""Failed-login throttling: backoff, then refusal, per address and per account."""

from __future__ import annotations

from connectors.throttle import LoginThrottle, ThrottleSettings

SETTINGS = ThrottleSettings(
    window=60.0,
    address_free=3,
    address_limit=6,
    account_free=4,
    account_limit=10,
    base_delay=1.0,
    max_delay=4.0,
    account_max_delay=2.0,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _throttle() -> tuple[LoginThrottle, Clock]:
    clock = Clock()
    return LoginThrottle(SETTINGS, monotonic=clock), clock


def test_the_first_failures_are_not_slowed() -> None:
    throttle, _ = _throttle()
    for _ in range(3):
        assert throttle.check("10.0.0.1", "acme").delay == 0.0
        throttle.failed("10.0.0.1", "acme")


def test_failures_of_an_address_back_off_doubling_up_to_the_cap() -> None:
    throttle, _ = _throttle()
    delays = []
    for account in ("a", "b", "c", "d", "e", "f"):  # other accounts: the address counts
        verdict = throttle.check("10.0.0.1", account)
        assert not verdict.refused
        delays.append(verdict.delay)
        throttle.failed("10.0.0.1", account)
    assert delays == [0.0, 0.0, 0.0, 1.0, 2.0, 4.0]


def test_an_address_is_refused_after_the_limit_until_its_failures_age_out() -> None:
    throttle, clock = _throttle()
    for _ in range(6):
        throttle.failed("10.0.0.1", "acme")
    verdict = throttle.check("10.0.0.1", "acme")
    assert verdict.refused and verdict.reason == "address" and verdict.retry_after == 60.0
    clock.now += 61
    assert throttle.check("10.0.0.1", "acme") == throttle.check("10.0.0.9", "other")


def test_the_rightful_user_on_another_address_is_not_locked_out() -> None:
    throttle, _ = _throttle()
    for _ in range(6):
        throttle.failed("10.0.0.66", "acme")
    assert throttle.check("10.0.0.66", "acme").refused
    verdict = throttle.check("10.0.0.2", "acme")
    assert not verdict.refused and verdict.delay <= SETTINGS.account_max_delay


def test_a_guessing_crowd_gets_an_account_refused_to_new_addresses_only() -> None:
    throttle, _ = _throttle()
    throttle.succeeded("10.0.0.2", "acme")  # the rightful user logged in before
    for i in range(10):
        throttle.failed(f"10.1.0.{i}", "acme")
    verdict = throttle.check("10.2.0.1", "acme")
    assert verdict.refused and verdict.reason == "account"
    assert throttle.check("10.0.0.2", "acme") == throttle.check("10.0.0.2", "other")
    assert not throttle.check("10.0.0.2", "acme").refused


def test_a_success_forgets_the_address_failures() -> None:
    throttle, _ = _throttle()
    for _ in range(5):
        throttle.failed("10.0.0.1", "acme")
    assert throttle.check("10.0.0.1", "acme").delay > 0
    throttle.succeeded("10.0.0.1", "acme")
    assert throttle.check("10.0.0.1", "acme").delay == 0.0


def test_memory_stays_bounded_under_a_spray_of_addresses() -> None:
    throttle = LoginThrottle(ThrottleSettings(max_entries=100))
    for i in range(1000):
        throttle.failed(f"10.0.{i // 256}.{i % 256}", f"user{i}")
    assert len(throttle._by_address) <= 100 and len(throttle._by_account) <= 100
