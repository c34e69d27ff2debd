"""When a failed Nomad call is sent again, how often, and how long to wait in between.

Retrying is only safe for calls that do the same thing when repeated: reads, and writes that are idempotent by nature
(put a variable, drain a node, deregister a job). A register without `EnforceIndex` or a lock acquire sent twice can do
something twice, so those are never retried here; their callers re-read and decide again. Retries are bounded in
attempts and in total time, spread with exponential backoff and jitter so that three replicas do not hammer a
recovering server in step, and logged at debug level.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from nomad_operator.nomad.defaults import (
    EVENT_STREAM_BACKOFF_INITIAL,
    EVENT_STREAM_BACKOFF_JITTER,
    EVENT_STREAM_BACKOFF_MAX,
    RETRY_INITIAL_DELAY,
    RETRY_JITTER,
    RETRY_MAX_ATTEMPTS,
    RETRY_MAX_DELAY,
    RETRY_MAX_TOTAL_SECONDS,
)
from nomad_operator.nomad.errors import is_transient

logger = logging.getLogger(__name__)
T = TypeVar("T")
_JITTER_RANDOM = random.Random()


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Bounds for retrying idempotent calls. `max_attempts=1` turns retries off."""

    max_attempts: int = RETRY_MAX_ATTEMPTS
    max_total_seconds: float = RETRY_MAX_TOTAL_SECONDS
    initial_delay: float = RETRY_INITIAL_DELAY
    max_delay: float = RETRY_MAX_DELAY
    jitter: float = RETRY_JITTER

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.initial_delay < 0 or self.max_delay < 0 or self.jitter < 0 or self.max_total_seconds < 0:
            raise ValueError("retry delays and bounds must not be negative")

    def retrying(self, *, description: str) -> AsyncRetrying:
        """A tenacity controller for one call; `description` names the call in the debug log (no secrets in it)."""

        def log_retry(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            delay = state.next_action.sleep if state.next_action is not None else 0.0
            logger.debug("retrying %s in %.2fs after attempt %d: %s", description, delay, state.attempt_number, error)

        return AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts) | stop_after_delay(self.max_total_seconds),
            wait=wait_exponential_jitter(multiplier=self.initial_delay, max=self.max_delay, jitter=self.jitter),
            retry=retry_if_exception(is_transient),
            before_sleep=log_retry,
            reraise=True,
        )

    async def call(self, attempt: Callable[[], Awaitable[T]], *, description: str) -> T:
        """Run `attempt`, retrying transient failures within the bounds.

        The first attempt is made directly: tenacity's bookkeeping costs about 50 us a call, a tenth of a request on a
        fast path that nearly always succeeds. Only after a transient failure does tenacity take over, starting from
        that failure, so attempt counts, waits and logs are the same as if it had run the call from the start.
        """
        try:
            return await attempt()
        except Exception as error:
            if self.max_attempts == 1 or not is_transient(error):
                raise
            first_failure = error
        replayed = False

        async def from_first_failure() -> T:
            nonlocal replayed
            if not replayed:
                replayed = True
                raise first_failure
            return await attempt()

        return await self.retrying(description=description)(from_first_failure)


DEFAULT_RETRY = RetryPolicy()
NO_RETRY = RetryPolicy(max_attempts=1)


@dataclass(frozen=True, kw_only=True)
class Backoff:
    """Delays between event-stream reconnects: exponential from `initial`, capped at `maximum`, plus jitter.

    The stream never gives up on transient failures (an informer without events is worse than one that keeps
    trying), so there is no attempt limit here, only the cap.
    """

    initial: float = EVENT_STREAM_BACKOFF_INITIAL
    maximum: float = EVENT_STREAM_BACKOFF_MAX
    jitter: float = EVENT_STREAM_BACKOFF_JITTER

    def delay(self, failures: int, *, rng: random.Random | None = None) -> float:
        """The pause before the next attempt after `failures` consecutive failures (0 = the first one)."""
        exponent = min(failures, 32)  # 2**32 times any sane initial is far past the cap
        base = min(self.maximum, self.initial * 2.0**exponent)
        spread = (rng or _JITTER_RANDOM).uniform(0, self.jitter) if self.jitter else 0.0
        return min(self.maximum, base + spread)


DEFAULT_BACKOFF = Backoff()
