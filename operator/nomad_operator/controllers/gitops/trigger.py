"""Coalesce "fetch now" requests for one source into as few fetches as keep it current.

Webhooks, the poll timer and a `requestedAt` change all ask for the same thing: look at the remote again. A push can
fire several webhooks (one per provider hook, retries, a burst of pushes), and a fetch takes tens of milliseconds to
seconds, so requests are level-triggered: any number of `request()` calls before the loop's next `wait()` become one
wake-up, and requests that arrive while a fetch runs cause exactly one more fetch after it (the one that sees what
they announced). Nothing is queued per request, so a flood costs memory for a set of reason names only. Wake-ups
are also kept `min_interval` apart, so a storm spread over a second costs a handful of remote checks, not one per
fetch duration, while a lone push still wakes the loop at once.

The poll interval lives here too, as `wait(poll_after=...)`, with jitter so that sources (and replicas) started
together do not all hit the git server in the same second.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

# Wake-ups are at least this far apart: a push is still seen at once (the first request wakes the loop straight
# away), but a storm of webhooks costs a few remote checks a second instead of one per fetch duration.
DEFAULT_MIN_WAKEUP_INTERVAL_SECONDS = 0.1
DEFAULT_POLL_JITTER = 0.1  # +-10 % of the interval
MAX_REASONS = 16  # distinct reason names remembered between two wake-ups
POLL_REASON = "interval"


def jittered_interval(
    interval: float, *, jitter: float = DEFAULT_POLL_JITTER, rng: random.Random | None = None
) -> float:
    """`interval` moved by a random share of at most `jitter` either way (never below zero)."""
    if interval < 0 or not 0 <= jitter < 1:
        raise ValueError(f"interval must be >= 0 and jitter in [0, 1), got {interval} and {jitter}")
    spread = (rng or random).uniform(-jitter, jitter)
    return max(0.0, interval * (1 + spread))


@dataclass
class FetchTriggerStats:
    """Requests received and wake-ups given: their difference is what coalescing saved."""

    requests: int = 0
    wakeups: int = 0
    polls: int = 0


class FetchTrigger:
    """A per-source "fetch now" flag: any number of callers `request()`, one fetch loop `wait()`s."""

    def __init__(
        self,
        *,
        name: str,
        min_interval: float = DEFAULT_MIN_WAKEUP_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if min_interval < 0:
            raise ValueError(f"min_interval must be >= 0, got {min_interval}")
        self.name = name
        self.min_interval = min_interval
        self.stats = FetchTriggerStats()
        self._event = asyncio.Event()
        self._reasons: set[str] = set()
        self._clock = clock
        self._sleep = sleep
        self._last_wakeup: float | None = None

    def __repr__(self) -> str:
        return f"FetchTrigger(name={self.name!r}, pending={self.pending})"

    @property
    def pending(self) -> bool:
        """Whether a request is waiting to be picked up by the fetch loop."""
        return self._event.is_set()

    def request(self, *, reason: str = "requested") -> None:
        """Ask for a fetch; cheap and idempotent until the loop picks it up. Call from the event loop's thread."""
        self.stats.requests += 1
        if len(self._reasons) < MAX_REASONS:
            self._reasons.add(reason)
        self._event.set()

    async def wait(self, *, poll_after: float | None = None) -> frozenset[str]:
        """Wait for requests (or `poll_after` seconds: the poll) and take them all; return why the loop woke up.

        Returns no sooner than `min_interval` after the previous wake-up; requests made meanwhile are all taken then.
        """
        if self._last_wakeup is not None and self.min_interval > 0:
            remaining = self._last_wakeup + self.min_interval - self._clock()
            if remaining > 0:
                await self._sleep(remaining)
        try:
            return await self._wait_for_request(poll_after)
        finally:
            self._last_wakeup = self._clock()

    async def _wait_for_request(self, poll_after: float | None) -> frozenset[str]:
        if poll_after is None:
            await self._event.wait()
        else:
            try:
                async with asyncio.timeout(poll_after):
                    await self._event.wait()
            except TimeoutError:
                self.stats.polls += 1
                return frozenset({POLL_REASON})
        self._event.clear()
        reasons = frozenset(self._reasons)
        self._reasons.clear()
        self.stats.wakeups += 1
        return reasons
