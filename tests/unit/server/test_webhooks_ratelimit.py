"""The per-source token bucket, on a clock the test controls."""

from __future__ import annotations

import pytest

from nomad_operator.server.webhooks import MAX_TRACKED_SOURCES, RateLimiter, WebhookLimits


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill() -> None:
    clock = Clock()
    limiter = RateLimiter(rate_per_second=2.0, burst=3, clock=clock)

    assert [limiter.acquire("s") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("s") == pytest.approx(0.5)  # one token comes back in 1/rate seconds

    clock.now += 0.5
    assert limiter.acquire("s") == 0.0
    assert limiter.acquire("s") > 0

    clock.now += 100  # refill never exceeds the burst
    assert [limiter.acquire("s") for _ in range(4)][:3] == [0.0, 0.0, 0.0]
    assert limiter.acquire("s") > 0


def test_sources_have_separate_buckets() -> None:
    limiter = RateLimiter(rate_per_second=1.0, burst=1, clock=Clock())
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") > 0
    assert limiter.acquire("b") == 0.0


def test_bucket_table_is_bounded() -> None:
    limiter = RateLimiter(rate_per_second=1.0, burst=1, clock=Clock())
    for n in range(MAX_TRACKED_SOURCES + 10):
        limiter.acquire(f"s{n}")
    assert len(limiter._buckets) == MAX_TRACKED_SOURCES


@pytest.mark.parametrize("kwargs", [{"max_body_bytes": 0}, {"rate_per_second": 0}, {"burst": 0}])
def test_limits_must_be_positive(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="positive"):
        WebhookLimits(**kwargs)  # type: ignore[arg-type]
