"""Backoff, the token bucket and the manual clock, without any sleeping."""

from __future__ import annotations

import itertools
import math

import pytest

from nomad_operator.runtime.ratelimit import (
    ControllerRateLimiter,
    ExponentialBackoff,
    ManualClock,
    TokenBucket,
    default_rate_limiter,
)


def test_backoff_doubles_from_the_base_to_the_cap_per_key() -> None:
    backoff = ExponentialBackoff(base=0.005, maximum=1000.0)
    delays = [backoff.when("a") for _ in range(20)]
    assert delays[:4] == [0.005, 0.01, 0.02, 0.04]
    assert all(later == min(earlier * 2, 1000.0) for earlier, later in itertools.pairwise(delays))
    assert delays[-1] == 1000.0
    assert backoff.when("b") == 0.005, "keys back off independently"
    assert backoff.retries("a") == 20


def test_backoff_never_overflows_after_many_failures() -> None:
    backoff = ExponentialBackoff(base=0.005, maximum=1000.0)
    for _ in range(5000):
        delay = backoff.when("a")
    assert delay == 1000.0


def test_forget_resets_a_key() -> None:
    backoff = ExponentialBackoff(base=1.0, maximum=60.0)
    for _ in range(4):
        backoff.when("a")
    backoff.forget("a")
    assert backoff.retries("a") == 0
    assert backoff.when("a") == 1.0
    assert len(backoff) == 1


@pytest.mark.parametrize(("base", "maximum", "message"), [(0.0, 1.0, "base must be > 0"), (2.0, 1.0, "maximum")])
def test_backoff_refuses_bad_settings(base: float, maximum: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ExponentialBackoff(base=base, maximum=maximum)


def test_bucket_allows_the_burst_then_spaces_reservations_at_the_rate() -> None:
    clock = ManualClock()
    bucket = TokenBucket(qps=10.0, burst=3, clock=clock)
    waits = [bucket.reserve() for _ in range(6)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3:] == pytest.approx([0.1, 0.2, 0.3])
    clock.advance(10.0)
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, 0.0], "tokens refill up to the burst, no more"
    assert bucket.reserve() == pytest.approx(0.1)


def test_unlimited_bucket_never_waits() -> None:
    bucket = TokenBucket(qps=math.inf, burst=1, clock=ManualClock())
    assert {bucket.reserve() for _ in range(1000)} == {0.0}


@pytest.mark.parametrize(("qps", "burst", "message"), [(0.0, 1, "rate limit must be > 0"), (1.0, 0, "burst")])
def test_bucket_refuses_bad_settings(qps: float, burst: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TokenBucket(qps=qps, burst=burst, clock=ManualClock())


def test_controller_limiter_takes_the_longer_wait() -> None:
    clock = ManualClock()
    limiter = ControllerRateLimiter(
        backoff=ExponentialBackoff(base=1.0, maximum=100.0), bucket=TokenBucket(qps=1.0, burst=1, clock=clock)
    )
    assert limiter.when("a") == 1.0  # backoff 1 s, bucket free
    assert limiter.when("b") == 1.0  # backoff 1 s, bucket 1 s
    assert limiter.when("c") == 2.0  # backoff 1 s, bucket 2 s: the bucket wins
    assert limiter.when("a") == 3.0  # backoff 2 s, bucket 3 s
    assert limiter.retries("a") == 2
    limiter.forget("a")
    assert limiter.retries("a") == 0


def test_default_rate_limiter_matches_client_go() -> None:
    limiter = default_rate_limiter(clock=ManualClock())
    assert limiter.backoff.base == 0.005
    assert limiter.backoff.maximum == 1000.0
    assert limiter.bucket.qps == 10.0
    assert limiter.bucket.burst == 100


def test_manual_clock_fires_timers_in_order_including_ones_scheduled_by_timers() -> None:
    clock = ManualClock(start=0.0)
    fired: list[str] = []
    clock.call_at(3.0, lambda: fired.append("three"))

    def first() -> None:
        fired.append("one")
        clock.call_at(2.0, lambda: fired.append("two"))

    clock.call_at(1.0, first)
    cancelled = clock.call_at(1.5, lambda: fired.append("cancelled"))
    cancelled.cancel()
    clock.advance(2.5)
    assert fired == ["one", "two"]
    assert clock.now() == 2.5
    assert clock.pending_timers == 1
    clock.advance(0.5)
    assert fired == ["one", "two", "three"]
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance(-1.0)
