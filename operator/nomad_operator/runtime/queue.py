"""The keyed work queue between informers and reconcilers (client-go's rate-limited workqueue, on asyncio).

Reconcilers are level-based: an event only says which key to look at, so the queue holds keys, never payloads. The
hazards it exists to handle:

- **Duplicate work.** A burst of events for one job (register, evaluation, allocation updates) must cost one reconcile,
  not twenty: a key that is already waiting is not added twice.
- **Concurrent work on one object.** Two workers reconciling the same job would race each other's writes. A key handed
  out by `get()` is "processing" until `done(key)`; adding it meanwhile marks it dirty, and it is handed out again only
  after `done()`, so the second reconcile sees the first one's effects.
- **Hot loops and floods.** Failed keys come back through `add_rate_limited()`, paced by a `RateLimiter` (per-key
  exponential backoff under a global token bucket), and delayed adds wait on the injected clock.
- **Unbounded growth.** The number of distinct keys is capped (`max_keys`); exceeding it raises `QueueFull` naming the
  limit, instead of silently eating memory.

States of a key: *ready* (in `_ready`, and in `_dirty`), *processing*, *processing and dirty* (re-added while being
processed; queued again on `done`), or *delayed* (in `_delayed`, waiting for its time). A key is in at most one of
`_dirty` and `_delayed`: an immediate add supersedes a pending delayed one, because the reconcile it triggers decides
the next requeue anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections import deque
from collections.abc import Hashable
from typing import Generic, Protocol, TypeVar

from nomad_operator.runtime.defaults import DEFAULT_QUEUE_MAX_KEYS
from nomad_operator.runtime.errors import QueueEmpty, QueueFull, QueueMisuse, QueueShutDown
from nomad_operator.runtime.ratelimit import Clock, MonotonicClock, RateLimiter, Timer, default_rate_limiter

K = TypeVar("K", bound=Hashable)


class QueueObserver(Protocol):
    """Receives the queue's measurements (the metrics module implements it; the queue never imports prometheus)."""

    def added(self) -> None:
        """A key entered the queue (collapsed duplicates do not count)."""

    def retried(self) -> None:
        """A key was re-added through the rate limiter."""

    def depth_changed(self, depth: int) -> None:
        """The number of keys ready to be handed out changed."""

    def handed_out(self, lag: float | None) -> None:
        """A key was handed out; `lag` is the seconds since the change that added it, None for delayed re-adds."""


class WorkQueue(Generic[K]):
    """A deduplicating, rate-limited queue of keys for one controller. Not thread-safe: use it from one event loop."""

    def __init__(
        self,
        *,
        name: str = "queue",
        max_keys: int = DEFAULT_QUEUE_MAX_KEYS,
        clock: Clock | None = None,
        rate_limiter: RateLimiter | None = None,
        observer: QueueObserver | None = None,
    ) -> None:
        if max_keys < 1:
            raise ValueError(f"queue {name!r}: max_keys must be >= 1, got {max_keys}")
        self.name = name
        self.max_keys = max_keys
        self.clock: Clock = clock if clock is not None else MonotonicClock()
        self.rate_limiter: RateLimiter = (
            rate_limiter if rate_limiter is not None else default_rate_limiter(clock=self.clock)
        )
        self._observer = observer
        self._ready: deque[K] = deque()
        self._dirty: dict[K, float | None] = {}  # key -> clock time of the change that first added it
        self._processing: set[K] = set()
        self._delayed: dict[K, float] = {}  # key -> clock time at which it becomes ready
        self._heap: list[tuple[float, int, K]] = []  # entries whose time no longer matches _delayed are stale
        self._sequence = itertools.count()  # heap tie-breaker: keys need not be orderable
        self._timer: Timer | None = None
        self._timer_at = 0.0
        self._getters: deque[asyncio.Future[None]] = deque()
        self._shutting_down = False

    # --- adding -----------------------------------------------------------------------------------------------------
    def add(self, key: K, *, since: float | None = None) -> None:
        """Queue `key` now. `since` is the clock time of the change behind it (default: now), for the event-lag metric.

        Adding a key that is already waiting does nothing (its earliest `since` is kept). Adding a key that is being
        processed marks it to be handed out again after `done(key)`. After `shutdown()` adds are ignored.
        """
        if self._shutting_down:
            return
        self._enqueue(key, since=self.clock.now() if since is None else since)

    def add_after(self, key: K, delay: float) -> None:
        """Queue `key` once `delay` seconds have passed; an earlier pending time for the key wins."""
        if self._shutting_down:
            return
        if delay <= 0:
            self._enqueue(key, since=None)
            return
        if key in self._dirty:
            return  # it is handed out soon anyway, and that reconcile decides when to look again
        ready_at = self.clock.now() + delay
        current = self._delayed.get(key)
        if current is not None and current <= ready_at:
            return
        if current is None:
            self._check_room(key)
        self._delayed[key] = ready_at
        heapq.heappush(self._heap, (ready_at, next(self._sequence), key))
        self._arm_timer()

    def add_rate_limited(self, key: K) -> None:
        """Queue `key` after the rate limiter's delay: its backoff or the global bucket's wait, whichever is longer."""
        if self._shutting_down:
            return
        delay = self.rate_limiter.when(key)
        if self._observer is not None:
            self._observer.retried()
        self.add_after(key, delay)

    def forget(self, key: K) -> None:
        """Reset the key's failure count: its next rate-limited add starts again from the base delay."""
        self.rate_limiter.forget(key)

    def retries(self, key: K) -> int:
        """Consecutive failures counted for `key` since it was last forgotten."""
        return self.rate_limiter.retries(key)

    # --- handing out --------------------------------------------------------------------------------------------------
    async def get(self) -> K:
        """Wait for a ready key and mark it processing. Raises `QueueShutDown` once shut down and nothing is left."""
        while True:
            if self._ready:
                return self._hand_out()
            if self._shutting_down:
                raise QueueShutDown(f"queue {self.name!r} is shut down")
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._getters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if not waiter.done() or waiter.cancelled():
                    self._discard_getter(waiter)
                else:
                    self._wake_one()  # we were woken for a key we will not take: pass the wake-up on
                raise

    def get_nowait(self) -> K:
        """Hand out a ready key without waiting; `QueueEmpty` if none is ready, `QueueShutDown` after shutdown."""
        if self._ready:
            return self._hand_out()
        if self._shutting_down:
            raise QueueShutDown(f"queue {self.name!r} is shut down")
        raise QueueEmpty(f"queue {self.name!r} has no key ready")

    def done(self, key: K) -> None:
        """End processing of `key`; if it was re-added meanwhile, it becomes ready again."""
        try:
            self._processing.remove(key)
        except KeyError:
            raise QueueMisuse(f"queue {self.name!r}: done({key!r}) for a key that is not being processed") from None
        if key in self._dirty:
            self._ready.append(key)
            self._depth_changed()
            self._wake_one()

    # --- shutting down ------------------------------------------------------------------------------------------------
    def shutdown(self, *, drain: bool = False) -> None:
        """Stop accepting keys and wake every waiting `get()`.

        With `drain=False` the waiting keys are dropped; with `drain=True` the ready keys (and keys re-added during
        processing) are still handed out first. Delayed keys are dropped either way: their reconcile was not due yet.
        Keys being processed are unaffected; they still need `done()`.
        """
        self._shutting_down = True
        if not drain:
            self._ready.clear()
            self._dirty.clear()
            self._depth_changed()
        self._delayed.clear()
        self._heap.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._getters:
            waiter = self._getters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    # --- inspection ---------------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        """Keys ready to be handed out now (the queue depth)."""
        return len(self._ready)

    @property
    def delayed_count(self) -> int:
        """Keys waiting for their time (requeue_after and retries)."""
        return len(self._delayed)

    @property
    def processing_count(self) -> int:
        return len(self._processing)

    def is_processing(self, key: K) -> bool:
        return key in self._processing

    def is_waiting(self, key: K) -> bool:
        """True if `key` will be handed out later: ready, dirty while processing, or delayed."""
        return key in self._dirty or key in self._delayed

    # --- internals ----------------------------------------------------------------------------------------------------
    def _enqueue(self, key: K, *, since: float | None) -> None:
        if key in self._dirty:
            earlier = self._dirty[key]
            if since is not None and (earlier is None or since < earlier):
                self._dirty[key] = since
            return
        if self._delayed.pop(key, None) is None:
            self._check_room(key)
        self._dirty[key] = since
        if self._observer is not None:
            self._observer.added()
        if key not in self._processing:
            self._ready.append(key)
            self._depth_changed()
            self._wake_one()

    def _check_room(self, key: K) -> None:
        if len(self._dirty) + len(self._delayed) >= self.max_keys:
            raise QueueFull(
                f"queue {self.name!r} is full: max_keys={self.max_keys} distinct keys are waiting; refusing {key!r}"
            )

    def _hand_out(self) -> K:
        key = self._ready.popleft()
        since = self._dirty.pop(key)
        self._processing.add(key)
        if self._observer is not None:
            self._observer.depth_changed(len(self._ready))
            self._observer.handed_out(None if since is None else max(0.0, self.clock.now() - since))
        return key

    def _wake_one(self) -> None:
        while self._getters:
            waiter = self._getters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _discard_getter(self, waiter: asyncio.Future[None]) -> None:
        with contextlib.suppress(ValueError):
            self._getters.remove(waiter)

    def _depth_changed(self) -> None:
        if self._observer is not None:
            self._observer.depth_changed(len(self._ready))

    def _arm_timer(self) -> None:
        """Make sure a timer fires at the earliest pending delayed time."""
        while self._heap and self._delayed.get(self._heap[0][2]) != self._heap[0][0]:
            heapq.heappop(self._heap)  # superseded or promoted entry
        if not self._heap:
            return
        earliest = self._heap[0][0]
        if self._timer is not None:
            if self._timer_at <= earliest:
                return
            self._timer.cancel()
        self._timer_at = earliest
        self._timer = self.clock.call_at(earliest, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        now = self.clock.now()
        while self._heap and self._heap[0][0] <= now:
            ready_at, _, key = heapq.heappop(self._heap)
            if self._delayed.get(key) == ready_at:
                del self._delayed[key]
                self._enqueue(key, since=None)
        # A timer that fired early (clock granularity) finds nothing due and simply re-arms.
        self._arm_timer()
