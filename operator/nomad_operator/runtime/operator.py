"""The `Operator`: one object that wires the informer, the cache, each controller's queue and workers, the HTTP server
and leader election, and shuts them down in the right order.

    async with NomadClient(settings) as nomad:
        operator = Operator(client=nomad, controllers=[gitops, nodes], leader=elector, server=OperatorHTTPServer())
        await operator.run()          # until SIGTERM / SIGINT

The hazards it exists for:
- **One writer.** Reconcilers run only while this replica leads: each leadership term gets fresh queues and workers
  (`reconcile_term`), started when the leader is elected and stopped when it loses; the leader is also the client's
  write guard, so a write that races the loss is refused by the client. Standbys keep the informer running, so their
  caches stay warm, and a new leader enqueues every key: nothing that changed while it stood by is missed.
- **Reconciling an empty cache.** Workers start only after the informer's first list of every kind.
- **Shutdown.** SIGTERM stops taking work, lets in-flight reconciles finish within `shutdown_timeout`, then releases
  the leader lock (after the last write, never before), stops the informer and the server, and closes the client.
- **Context.** Every reconcile runs inside `log_context(controller=..., key=...)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Protocol, Self

from nomad_operator.nomad import DEFAULT_BACKOFF, Backoff, NomadClient
from nomad_operator.nomad.defaults import EVENT_STREAM_IDLE_TIMEOUT
from nomad_operator.runtime.cache import Cache
from nomad_operator.runtime.defaults import DEFAULT_QUEUE_MAX_KEYS, DEFAULT_SHUTDOWN_TIMEOUT_SECONDS
from nomad_operator.runtime.informer import (
    DEFAULT_INFORMER_NAMESPACE,
    DEFAULT_RELIST_PERIOD_SECONDS,
    INFORMER_KINDS,
    Informer,
    cache_for_controllers,
)
from nomad_operator.runtime.metrics import CONTENT_TYPE, RuntimeMetrics
from nomad_operator.runtime.queue import WorkQueue
from nomad_operator.runtime.ratelimit import Clock, MonotonicClock
from nomad_operator.runtime.reconcile_term import ReconcileTerm
from nomad_operator.runtime.reconciler import Controller, ObjectKey
from nomad_operator.server.app import OperatorHTTPServer

logger = logging.getLogger(__name__)

STOP_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT)
LEADER_RELEASE_TIMEOUT_SECONDS: Final = 5.0
"""How long shutdown waits for the leader election task to release its lock before moving on."""


class LeadershipSource(Protocol):
    """What the Operator needs from leader election (`runtime.leader.LeaderElector` satisfies it).

    `run()` campaigns and renews until cancelled, and releases the lock when cancelled; `check_write` is the client's
    `WriteGuard`.
    """

    @property
    def is_leader(self) -> bool: ...

    def check_write(self, method: str, path: str) -> None: ...

    async def wait_for_leadership(self) -> None: ...

    async def wait_for_standby(self) -> None: ...

    async def run(self) -> None: ...


@dataclass(frozen=True, kw_only=True)
class OperatorSettings:
    """The Operator's knobs, each with its default named where it is decided."""

    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT_SECONDS
    namespace: str = DEFAULT_INFORMER_NAMESPACE
    relist_period: float | None = DEFAULT_RELIST_PERIOD_SECONDS
    event_idle_timeout: float = EVENT_STREAM_IDLE_TIMEOUT
    stream_backoff: Backoff = DEFAULT_BACKOFF
    queue_max_keys: int = DEFAULT_QUEUE_MAX_KEYS
    close_client: bool = True
    """Close the Nomad client on shutdown (the process is ending; an embedding test may keep it open)."""

    def __post_init__(self) -> None:
        if self.shutdown_timeout < 0:
            raise ValueError(f"shutdown_timeout must be >= 0 seconds, got {self.shutdown_timeout}")


class Operator:
    """Runs controllers against Nomad: informer, queues, workers, HTTP server, leader election. See the module doc."""

    def __init__(
        self,
        *,
        client: NomadClient,
        controllers: Sequence[Controller],
        leader: LeadershipSource | None = None,
        server: OperatorHTTPServer | None = None,
        settings: OperatorSettings | None = None,
        metrics: RuntimeMetrics | None = None,
        cache: Cache | None = None,
        clock: Clock | None = None,
    ) -> None:
        names = [controller.name for controller in controllers]
        if not controllers:
            raise ValueError("an Operator needs at least one controller")
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"controller names must be unique; repeated: {duplicates}")
        self.client = client
        self.controllers = tuple(controllers)
        self.leader = leader
        self.server = server
        self.settings = settings if settings is not None else OperatorSettings()
        self.metrics = metrics if metrics is not None else RuntimeMetrics()
        self.cache = cache if cache is not None else cache_for_controllers(self.controllers)
        self.clock: Clock = clock if clock is not None else MonotonicClock()
        watched = {kind for controller in self.controllers for kind in controller.watched_kinds()}
        unsupported = sorted(kind for kind in watched if kind not in INFORMER_KINDS)
        if unsupported:
            raise ValueError(
                f"no informer follows {unsupported}: an Operator watches the Nomad kinds {', '.join(INFORMER_KINDS)}"
            )
        self.informer = Informer(
            client=client,
            cache=self.cache,
            kinds=[kind for kind in INFORMER_KINDS if kind in watched],
            listener=self._on_change,
            metrics=self.metrics,
            namespace=self.settings.namespace,
            relist_period=self.settings.relist_period,
            idle_timeout=self.settings.event_idle_timeout,
            backoff=self.settings.stream_backoff,
            clock=self.clock,
        )
        if leader is not None and client.write_guard is None:
            client.write_guard = leader
        self._term: ReconcileTerm | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._leader_task: asyncio.Task[None] | None = None
        self._lead_task: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        self._stop_requested = asyncio.Event()
        self._started = False
        self._stopped = False
        if server is not None:
            server.set_metrics(_OperatorMetrics(self), content_type=CONTENT_TYPE)
            server.health.add_readiness_check("informer", self.informer.not_ready_reason)

    # --- state --------------------------------------------------------------------------------------------------------
    @property
    def is_leader(self) -> bool:
        return self.leader.is_leader if self.leader is not None else self._started and not self._stopped

    @property
    def reconciling(self) -> bool:
        """True while this replica's workers run (a leadership term is open)."""
        return self._term is not None

    @property
    def synced(self) -> bool:
        return self.informer.synced

    async def wait_synced(self) -> None:
        await self.informer.wait_synced()

    def queue(self, controller: str) -> WorkQueue[ObjectKey] | None:
        """The controller's queue in the current term (None on a standby or before the term starts)."""
        term = self._term
        return term.queues.get(controller) if term is not None else None

    def enqueue(self, controller: str, key: ObjectKey) -> bool:
        """Ask `controller` to reconcile `key` (e.g. from a webhook). False when this replica is not reconciling."""
        if controller not in {known.name for known in self.controllers}:
            raise ValueError(f"no controller named {controller!r}; known: {[c.name for c in self.controllers]}")
        queue = self.queue(controller)
        if queue is None:
            return False
        queue.add(key)
        return True

    # --- lifecycle ----------------------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start everything and return; reconciling begins once the cache is synced and this replica leads."""
        if self._started:
            raise RuntimeError("the Operator is already started")
        self._started = True
        if self.server is not None and not self.server.started:
            await self.server.start()
        if self.leader is None:
            self.metrics.set_leader(True)
        else:
            self._leader_task = asyncio.create_task(self.leader.run(), name="leader-election")
        self._tasks.append(asyncio.create_task(self.informer.run(), name="informer"))
        self._lead_task = asyncio.create_task(self._lead(), name="leadership-terms")
        self._tasks.append(self._lead_task)
        logger.info("operator started with controllers %s", ", ".join(c.name for c in self.controllers))

    async def run(self) -> None:
        """Start, then serve until SIGTERM, SIGINT or `request_stop()`, then shut down gracefully."""
        await self.start()
        installed = self._install_signal_handlers()
        try:
            await self._stop_requested.wait()
        finally:
            self._remove_signal_handlers(installed)
            await self.stop()

    def request_stop(self) -> None:
        """Ask `run()` to shut down (safe from a signal handler or a callback)."""
        self._stop_requested.set()

    async def stop(self) -> None:
        """Graceful shutdown (idempotent): finish in-flight work, release the lock, stop the informer and server."""
        if self._stopped or not self._started:
            self._stopped = True
            return
        self._stopped = True
        self._stop_requested.set()
        logger.info("operator shutting down: letting in-flight reconciles finish")
        if self._lead_task is not None:
            self._lead_task.cancel()
            await asyncio.gather(self._lead_task, return_exceptions=True)
        closing = self._close_term(reason="shutdown")
        if closing is not None:
            await asyncio.gather(closing, return_exceptions=True)
        if self._leader_task is not None:  # only after the last reconcile: it releases the lock
            self._leader_task.cancel()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(self._leader_task, return_exceptions=True), LEADER_RELEASE_TIMEOUT_SECONDS
                )
        self.metrics.set_leader(False)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.server is not None:
            await self.server.stop()
        if self.settings.close_client:
            await self.client.close()
        logger.info("operator stopped")

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # --- leadership terms ---------------------------------------------------------------------------------------------
    async def _lead(self) -> None:
        await self.informer.wait_synced()
        while True:
            if self.leader is not None:
                await self.leader.wait_for_leadership()
                if not self.leader.is_leader:
                    continue
            self._begin_term()
            if self.leader is None:
                await asyncio.Event().wait()  # a sole replica leads until shutdown
            else:
                await self.leader.wait_for_standby()
                closing = self._close_term(reason="lost leadership")
                if closing is not None:
                    await asyncio.shield(closing)

    def _begin_term(self) -> None:
        self._term = ReconcileTerm(
            controllers=self.controllers,
            cache=self.cache,
            metrics=self.metrics,
            clock=self.clock,
            queue_max_keys=self.settings.queue_max_keys,
        )
        self._term.start()

    def _close_term(self, *, reason: str) -> asyncio.Task[None] | None:
        """End the current term (if any) in a task of its own, so that cancelling whoever asked cannot cut the
        in-flight reconciles' grace short; returns that task (or the one already closing)."""
        term, self._term = self._term, None
        if term is not None:
            self._closing = asyncio.create_task(
                term.stop(grace=self.settings.shutdown_timeout, reason=reason), name="end-of-term"
            )
        return self._closing

    # --- informer -> queues -------------------------------------------------------------------------------------------
    def _on_change(self, kind: str, obj: Mapping[str, Any], /, *, since: float | None) -> None:
        term = self._term
        if term is None:
            return  # a standby: its cache is warm, and a new term enqueues every key anyway
        term.route(kind, obj, since=since)

    # --- signals ------------------------------------------------------------------------------------------------------
    def _install_signal_handlers(self) -> list[signal.Signals]:
        loop = asyncio.get_running_loop()
        installed = []
        for signum in STOP_SIGNALS:
            try:
                loop.add_signal_handler(signum, self._on_signal, signum)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals here
                continue
            installed.append(signum)
        return installed

    def _remove_signal_handlers(self, installed: Iterable[signal.Signals]) -> None:
        loop = asyncio.get_running_loop()
        for signum in installed:
            loop.remove_signal_handler(signum)

    def _on_signal(self, signum: signal.Signals) -> None:
        logger.info("operator: received %s, shutting down", signum.name)
        self.request_stop()


class _OperatorMetrics:
    """`/metrics`: refreshes the gauges that are cheaper to read at scrape time (cache sizes), then renders."""

    def __init__(self, operator: Operator) -> None:
        self._operator = operator

    def render(self) -> bytes:
        operator = self._operator
        operator.metrics.record_cache_sizes(operator.cache.sizes())
        return operator.metrics.render()
