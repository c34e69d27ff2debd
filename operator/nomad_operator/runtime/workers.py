"""The workers that drive one controller: N tasks taking keys off its queue and calling its reconcile.

This is where the reconcile contract is enforced, so that every controller gets the same guarantees:

- `Result()` forgets the key's backoff; `Result(requeue_after=s)` forgets it and looks again after `s` seconds;
- an exception re-adds the key with backoff (and is logged with the key, the controller and the retry count);
- a `TerminalError` is logged and counted, and the key is not retried;
- a reconcile that returns anything but a `Result` is a bug in the controller: it is treated as an error, with a
  message saying so, rather than silently as success;
- at most `concurrency` reconciles run at once, and the queue guarantees no key runs twice at once;
- `stop()` lets in-flight reconciles finish within a timeout, then cancels them, so SIGTERM never hangs the process
  past Nomad's kill timeout and never abandons a key mid-reconcile without saying so;
- a worker yields to the event loop after every key, so a burst of quick reconciles cannot starve the informers or
  the leader-lock renewal.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final, Protocol

from nomad_operator.runtime.defaults import DEFAULT_MAX_CONCURRENCY, DEFAULT_SHUTDOWN_TIMEOUT_SECONDS
from nomad_operator.runtime.errors import QueueFull, QueueShutDown
from nomad_operator.runtime.queue import WorkQueue
from nomad_operator.runtime.reconciler import ObjectKey, Reconciler, Result, TerminalError

OUTCOME_SUCCESS: Final = "success"
OUTCOME_REQUEUE: Final = "requeue"
OUTCOME_ERROR: Final = "error"
OUTCOME_TERMINAL: Final = "terminal"

_log = logging.getLogger("nomad_operator.runtime.workers")


class ReconcileObserver(Protocol):
    """Receives one measurement per finished reconcile (the metrics module implements it)."""

    def reconciled(self, *, duration: float, outcome: str) -> None: ...


class ReconcileWorkers:
    """Runs `concurrency` workers for one controller until its queue is shut down."""

    def __init__(
        self,
        *,
        name: str,
        queue: WorkQueue[ObjectKey],
        reconcile: Reconciler,
        concurrency: int = DEFAULT_MAX_CONCURRENCY,
        observer: ReconcileObserver | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"controller {name!r}: concurrency must be >= 1, got {concurrency}")
        self.name = name
        self.queue = queue
        self.reconcile = reconcile
        self.concurrency = concurrency
        self._observer = observer
        self._log = logger if logger is not None else _log
        self._tasks: list[asyncio.Task[None]] = []
        self._in_flight: set[ObjectKey] = set()

    @property
    def in_flight(self) -> frozenset[ObjectKey]:
        """Keys being reconciled right now."""
        return frozenset(self._in_flight)

    def start(self) -> None:
        """Start the workers on the running loop (idempotent)."""
        if self._tasks:
            return
        self._tasks = [
            asyncio.create_task(self._work(), name=f"reconcile-{self.name}-{n}") for n in range(self.concurrency)
        ]

    async def run(self) -> None:
        """Start the workers and wait until they end (after the queue is shut down)."""
        self.start()
        await asyncio.gather(*self._tasks)

    async def stop(self, *, grace: float = DEFAULT_SHUTDOWN_TIMEOUT_SECONDS, drain: bool = False) -> bool:
        """Shut the queue down and give in-flight reconciles `grace` seconds to finish; cancel what is left.

        With `drain=True` the keys already waiting are reconciled too, within the same timeout. Returns True if every
        worker ended on its own, False if some reconcile had to be cancelled.
        """
        self.queue.shutdown(drain=drain)
        tasks = [task for task in self._tasks if not task.done()]
        if not tasks:
            return True
        _, pending = await asyncio.wait(tasks, timeout=grace)
        if not pending:
            return True
        self._log.warning(
            "controller %s: cancelling %d reconciles still running after %.1f s: %s",
            self.name,
            len(self._in_flight),
            grace,
            ", ".join(sorted(str(key) for key in self._in_flight)),
            extra={"controller": self.name},
        )
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return False

    async def _work(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except QueueShutDown:
                return
            try:
                await self._reconcile_one(key)
            finally:
                self.queue.done(key)
            # get() does not suspend while keys are ready, and a reconcile that only reads the cache never awaits:
            # without this yield one worker could drain a burst of thousands of keys while the event stream, the
            # HTTP server and the leader-lock renewal all wait.
            await asyncio.sleep(0)

    async def _reconcile_one(self, key: ObjectKey) -> None:
        started = self.queue.clock.now()
        self._in_flight.add(key)
        try:
            result = await self.reconcile(key)
        except TerminalError as error:
            outcome = OUTCOME_TERMINAL
            self.queue.forget(key)
            self._log.error(
                "reconcile %s %s failed terminally (%s), not retrying: %s",
                self.name,
                key,
                error.reason,
                error,
                extra={"controller": self.name, "key": str(key)},
            )
        except Exception as error:
            outcome = OUTCOME_ERROR
            self._retry(key, f"{type(error).__name__}: {error}", exc_info=error)
        else:
            # The Protocol says Result, but a controller is user code: check at run time what mypy cannot promise.
            returned: object = result
            if not isinstance(returned, Result):
                outcome = OUTCOME_ERROR
                self._retry(key, f"reconcile returned {type(returned).__name__}, not a Result", exc_info=None)
            elif result.requeue_after is not None:
                outcome = OUTCOME_REQUEUE
                self.queue.forget(key)
                self._requeue(key, result.requeue_after)
            else:
                outcome = OUTCOME_SUCCESS
                self.queue.forget(key)
        finally:
            self._in_flight.discard(key)
        if self._observer is not None:
            self._observer.reconciled(duration=max(0.0, self.queue.clock.now() - started), outcome=outcome)

    def _retry(self, key: ObjectKey, reason: str, *, exc_info: BaseException | None) -> None:
        retries = self.queue.retries(key)
        self._log.warning(
            "reconcile %s %s failed (retry %d): %s",
            self.name,
            key,
            retries + 1,
            reason,
            exc_info=exc_info,
            extra={"controller": self.name, "key": str(key), "retries": retries + 1},
        )
        try:
            self.queue.add_rate_limited(key)
        except QueueFull as error:
            self._log.error("%s; key %s is not retried until it changes again", error, key, extra={"key": str(key)})

    def _requeue(self, key: ObjectKey, delay: float) -> None:
        try:
            self.queue.add_after(key, delay)
        except QueueFull as error:
            self._log.error("%s; key %s is not requeued until it changes again", error, key, extra={"key": str(key)})
