"""Retry bounds and the reconnect backoff of the event stream."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nomad_operator.nomad.errors import NotFound, ServerError
from nomad_operator.nomad.retry import Backoff, RetryPolicy


@given(
    failures=st.integers(min_value=0, max_value=10_000),
    initial=st.floats(min_value=0.001, max_value=5),
    maximum=st.floats(min_value=0.001, max_value=60),
    jitter=st.floats(min_value=0, max_value=2),
    seed=st.integers(),
)
def test_backoff_stays_between_the_exponential_base_and_the_cap(
    failures: int, initial: float, maximum: float, jitter: float, seed: int
) -> None:
    backoff = Backoff(initial=initial, maximum=maximum, jitter=jitter)

    delay = backoff.delay(failures, rng=random.Random(seed))

    base = min(maximum, initial * 2.0 ** min(failures, 32))
    assert base <= delay + 1e-12
    assert delay <= min(maximum, base + jitter) + 1e-12


def test_backoff_grows_until_the_cap() -> None:
    backoff = Backoff(initial=0.1, maximum=1.0, jitter=0.0)

    assert [backoff.delay(n) for n in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


@pytest.mark.parametrize(
    "options",
    [{"max_attempts": 0}, {"initial_delay": -1.0}, {"max_delay": -0.5}, {"jitter": -1.0}, {"max_total_seconds": -1.0}],
)
def test_retry_policy_refuses_nonsense(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        RetryPolicy(**options)  # type: ignore[arg-type]


async def fail_every_time(policy: RetryPolicy, error: Exception, attempts: list[int]) -> None:
    async for attempt in policy.retrying(description="test call"):
        with attempt:
            attempts.append(1)
            raise error


async def test_retrying_stops_after_the_attempt_limit_and_reraises() -> None:
    policy = RetryPolicy(max_attempts=3, initial_delay=0.0, max_delay=0.0, jitter=0.0)
    attempts: list[int] = []

    with pytest.raises(ServerError):
        await fail_every_time(policy, ServerError(503, "No cluster leader", "/v1/jobs"), attempts)

    assert len(attempts) == 3


async def test_retrying_does_not_retry_permanent_errors() -> None:
    policy = RetryPolicy(max_attempts=5, initial_delay=0.0, max_delay=0.0, jitter=0.0)
    attempts: list[int] = []

    with pytest.raises(NotFound):
        await fail_every_time(policy, NotFound(404, "job not found", "/v1/job/x"), attempts)

    assert len(attempts) == 1
