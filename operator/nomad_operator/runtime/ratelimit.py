"""Retry pacing for the work queue: per-key exponential backoff under a global token bucket, and the clock behind both.

The hazard is the hot loop. A reconcile that fails instantly (Nomad down, a bad spec) and is re-added at once spins a
core and floods Nomad with requests. controller-runtime's answer, copied here, is two limits taken together: each key
waits 5 ms, 10 ms, 20 ms, ... up to 1000 s after consecutive failures (so one broken object costs nearly nothing), and
all retries of a queue share a token bucket of 10 per second with a burst of 100 (so a thousand keys failing at once,
as when Nomad restarts, come back at a pace Nomad survives). A key's failure count resets when its reconcile succeeds.

Time is injected through the `Clock` protocol, so tests drive backoff with `ManualClock.advance()` instead of sleeping.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from collections.abc import Callable, Hashable
from typing import Protocol

from nomad_operator.runtime.defaults import (
    DEFAULT_BACKOFF_BASE_SECONDS,
    DEFAULT_BACKOFF_MAX_SECONDS,
    DEFAULT_RATE_LIMIT_BURST,
    DEFAULT_RATE_LIMIT_QPS,
)

# 2**64 times any sane base is far beyond any cap, so larger exponents are never computed (no OverflowError).
_MAX_EXPONENT = 64


class Timer(Protocol):
    """A scheduled callback that can be cancelled (asyncio.TimerHandle fits)."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """Monotonic seconds, and callbacks at a point in that time."""

    def now(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer: ...


class MonotonicClock:
    """The real clock: `time.monotonic()`, timers on the running asyncio loop."""

    def now(self) -> float:
        return time.monotonic()

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        # call_later with a delta, not loop.call_at: the loop's own time base need not be time.monotonic().
        return asyncio.get_running_loop().call_later(max(0.0, when - self.now()), callback)


class _ManualTimer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A clock that moves only when told to, for tests: `advance()` runs the timers that fall due, in time order."""

    def __init__(self, *, start: float = 1000.0) -> None:
        self._now = start
        self._timers: list[tuple[float, int, _ManualTimer]] = []
        self._sequence = itertools.count()

    def now(self) -> float:
        return self._now

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        timer = _ManualTimer(when, callback)
        heapq.heappush(self._timers, (when, next(self._sequence), timer))
        return timer

    def advance(self, seconds: float) -> None:
        """Move time forward and fire every timer due by then, including ones that due callbacks schedule."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go back: advance({seconds})")
        target = self._now + seconds
        while self._timers and self._timers[0][0] <= target:
            when, _, timer = heapq.heappop(self._timers)
            self._now = max(self._now, when)
            if not timer.cancelled:
                timer.callback()
        self._now = target

    @property
    def pending_timers(self) -> int:
        return sum(1 for _, _, timer in self._timers if not timer.cancelled)


class RateLimiter(Protocol):
    """Decides how long a key waits before its next retry (client-go's workqueue.RateLimiter)."""

    def when(self, key: Hashable) -> float:
        """Seconds until `key` may be retried; counts one more failure of it."""
        ...

    def forget(self, key: Hashable) -> None:
        """The key succeeded (or gave up): reset its failure count."""
        ...

    def retries(self, key: Hashable) -> int:
        """Consecutive failures counted for `key`."""
        ...


class ExponentialBackoff:
    """Per-key delay `base * 2**failures`, capped at `maximum`."""

    def __init__(
        self, *, base: float = DEFAULT_BACKOFF_BASE_SECONDS, maximum: float = DEFAULT_BACKOFF_MAX_SECONDS
    ) -> None:
        if not base > 0:
            raise ValueError(f"backoff base must be > 0 seconds, got {base}")
        if not maximum >= base:
            raise ValueError(f"backoff maximum ({maximum}) must be >= its base ({base})")
        self.base = base
        self.maximum = maximum
        self._failures: dict[Hashable, int] = {}

    def when(self, key: Hashable) -> float:
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        if failures >= _MAX_EXPONENT:
            return self.maximum
        return min(self.base * 2.0**failures, self.maximum)

    def forget(self, key: Hashable) -> None:
        self._failures.pop(key, None)

    def retries(self, key: Hashable) -> int:
        return self._failures.get(key, 0)

    def __len__(self) -> int:
        return len(self._failures)


class TokenBucket:
    """A token bucket shared by all keys: `reserve()` takes a token and says how long to wait for it.

    Like Go's `rate.Limiter.Reserve()`, reservations may run the bucket negative: the n-th waiting caller is told to
    wait for the n-th future token, so callers are spread out instead of all retrying at the same instant.
    """

    def __init__(
        self, *, qps: float = DEFAULT_RATE_LIMIT_QPS, burst: int = DEFAULT_RATE_LIMIT_BURST, clock: Clock
    ) -> None:
        if not qps > 0:
            raise ValueError(f"rate limit must be > 0 per second (math.inf for none), got {qps}")
        if burst < 1:
            raise ValueError(f"rate limit burst must be >= 1, got {burst}")
        self.qps = qps
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock.now()

    def reserve(self) -> float:
        if math.isinf(self.qps):
            return 0.0
        now = self._clock.now()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
        self._last = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps


class ControllerRateLimiter:
    """The default retry pacing: the longer of the key's backoff and the global bucket's wait."""

    def __init__(self, *, backoff: ExponentialBackoff, bucket: TokenBucket) -> None:
        self.backoff = backoff
        self.bucket = bucket

    def when(self, key: Hashable) -> float:
        return max(self.backoff.when(key), self.bucket.reserve())

    def forget(self, key: Hashable) -> None:
        self.backoff.forget(key)

    def retries(self, key: Hashable) -> int:
        return self.backoff.retries(key)


def default_rate_limiter(
    *,
    clock: Clock,
    base: float = DEFAULT_BACKOFF_BASE_SECONDS,
    maximum: float = DEFAULT_BACKOFF_MAX_SECONDS,
    qps: float = DEFAULT_RATE_LIMIT_QPS,
    burst: int = DEFAULT_RATE_LIMIT_BURST,
) -> ControllerRateLimiter:
    """client-go's DefaultControllerRateLimiter: backoff 5 ms to 1000 s per key, 10 retries/s with a burst of 100."""
    return ControllerRateLimiter(
        backoff=ExponentialBackoff(base=base, maximum=maximum), bucket=TokenBucket(qps=qps, burst=burst, clock=clock)
    )
