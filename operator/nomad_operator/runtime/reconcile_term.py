"""One leadership term of the Operator: a fresh queue and workers per controller, and the routing of changes to them.

Reconcilers run only while a replica leads, and what a replica queued while it led is not work it may still do once it
has lost the lock, so the queues and workers live exactly as long as one term and are built anew for the next. The
hazards of a term's edges are handled here:
- **nothing missed** when a term starts: every cached object is mapped to keys and enqueued, so whatever changed while
  the replica stood by is looked at;
- **no reconcile cut short** when it ends: each controller's workers get the grace the Operator passes to `stop()`
  to finish what is in flight before they are cancelled, and the periodic resyncs stop first;
- **one bad mapping or a full queue loses one key, not the term**: a controller whose watch raises, or a queue at its
  limit, is logged with the controller and the key, and the rest carries on;
- every reconcile runs inside `log_context(controller=..., key=...)`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from nomad_operator.runtime.cache import Cache
from nomad_operator.runtime.errors import QueueFull
from nomad_operator.runtime.logging import log_context
from nomad_operator.runtime.metrics import RuntimeMetrics
from nomad_operator.runtime.queue import WorkQueue
from nomad_operator.runtime.ratelimit import Clock
from nomad_operator.runtime.reconciler import Controller, ObjectKey, Reconciler, Result
from nomad_operator.runtime.workers import ReconcileWorkers

logger = logging.getLogger(__name__)


class ReconcileTerm:
    """The queues, workers and resync timers of one term; `start()` once, then `stop()` once."""

    def __init__(
        self,
        *,
        controllers: Sequence[Controller],
        cache: Cache,
        metrics: RuntimeMetrics,
        clock: Clock,
        queue_max_keys: int,
    ) -> None:
        self._controllers = tuple(controllers)
        self._cache = cache
        self._routes: dict[str, list[Controller]] = {}
        self.queues: dict[str, WorkQueue[ObjectKey]] = {}
        self.workers: dict[str, ReconcileWorkers] = {}
        self._resyncs: list[asyncio.Task[None]] = []
        for controller in self._controllers:
            for kind in controller.watched_kinds():
                self._routes.setdefault(kind, []).append(controller)
            queue: WorkQueue[ObjectKey] = WorkQueue(
                name=controller.name,
                max_keys=queue_max_keys,
                clock=clock,
                observer=metrics.queue_observer(controller.name),
            )
            self.queues[controller.name] = queue
            self.workers[controller.name] = ReconcileWorkers(
                name=controller.name,
                queue=queue,
                reconcile=_in_log_context(controller),
                concurrency=controller.max_concurrency,
                observer=metrics.reconcile_observer(controller.name),
            )

    def start(self) -> None:
        """Enqueue every cached object's keys, then start the workers and the periodic resyncs."""
        for controller in self._controllers:
            queue = self.queues[controller.name]
            if controller.resync_period is not None:
                self._resyncs.append(
                    asyncio.create_task(self._resync(controller, queue), name=f"resync-{controller.name}")
                )
            for kind in controller.watched_kinds():
                for obj in self._cache.objects(kind):
                    _add_keys(controller, queue, kind, obj, since=None)
        for workers in self.workers.values():
            workers.start()
        logger.info("operator: reconciling as the leader (%s)", self._cache.sizes())

    def route(self, kind: str, obj: Mapping[str, Any], *, since: float | None) -> None:
        """Enqueue the keys that each controller watching `kind` maps the changed object to."""
        for controller in self._routes.get(kind, ()):
            _add_keys(controller, self.queues[controller.name], kind, obj, since=since)

    async def stop(self, *, grace: float, reason: str) -> None:
        """Stop the resyncs, and the workers after at most `grace` seconds for the reconciles in flight."""
        for task in self._resyncs:
            task.cancel()
        results = await asyncio.gather(*(workers.stop(grace=grace) for workers in self.workers.values()))
        await asyncio.gather(*self._resyncs, return_exceptions=True)
        if all(results):
            logger.info("operator: stopped reconciling (%s)", reason)
        else:
            logger.warning("operator: stopped reconciling (%s); some reconciles were cancelled", reason)

    async def _resync(self, controller: Controller, queue: WorkQueue[ObjectKey]) -> None:
        assert controller.resync_period is not None
        while True:
            await asyncio.sleep(controller.resync_period)
            for key in self._cache.keys(controller.primary_kind):
                try:
                    queue.add(key)
                except QueueFull as error:
                    logger.error("resync of %s stopped early: %s", controller.name, error)
                    break


def _add_keys(
    controller: Controller, queue: WorkQueue[ObjectKey], kind: str, obj: Mapping[str, Any], *, since: float | None
) -> None:
    try:
        keys: Iterable[ObjectKey] = controller.keys_for(kind, obj)
    except Exception:
        logger.exception("controller %s: its watch of %s failed to map an object to keys", controller.name, kind)
        return
    for key in keys:
        try:
            queue.add(key, since=since)
        except QueueFull as error:
            logger.error("controller %s: %s; %s waits for its next change", controller.name, error, key)


def _in_log_context(controller: Controller) -> Reconciler:
    """The controller's reconcile, with its name and the key in the log context of everything it logs."""
    name, reconcile = controller.name, controller.reconcile

    async def reconcile_with_context(key: ObjectKey, /) -> Result:
        with log_context(controller=name, key=str(key)):
            return await reconcile(key)

    return reconcile_with_context
