"""The runtime's Prometheus metrics, on a registry of their own.

Why a registry object and not prometheus-client's global default: tests start several operators in one process (two
replicas for leader election, say), and metrics registered globally would collide ("Duplicated timeseries") or mix
their numbers. Each `RuntimeMetrics` owns a `CollectorRegistry`; the HTTP server renders it on `/metrics`.

The queue and the workers do not import prometheus: they report through the `QueueObserver` and `ReconcileObserver`
protocols, which this module implements with label children bound once per controller (a `.labels()` lookup on every
add would cost more than the add itself).

Every name carries the `nomad_operator_` prefix and a help string that says what is counted and in which unit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from nomad_operator.runtime.defaults import EVENT_LAG_BUCKETS, METRIC_PREFIX, RECONCILE_DURATION_BUCKETS
from nomad_operator.runtime.workers import OUTCOME_ERROR, OUTCOME_TERMINAL

CONTENT_TYPE: Final = CONTENT_TYPE_PLAIN_0_0_4
"""The Content-Type of `render()`'s output (Prometheus text format 0.0.4)."""


class RuntimeMetrics:
    """Every metric of the runtime, registered on `self.registry`."""

    def __init__(self, *, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        p = METRIC_PREFIX
        self.queue_depth = Gauge(
            f"{p}_workqueue_depth", "Keys waiting in the controller's work queue, ready to be reconciled.",
            ["controller"], registry=self.registry,
        )  # fmt: skip
        self.queue_adds = Counter(
            f"{p}_workqueue_adds", "Keys added to the controller's work queue (duplicates that collapsed not counted).",
            ["controller"], registry=self.registry,
        )  # fmt: skip
        self.queue_retries = Counter(
            f"{p}_workqueue_retries", "Keys re-added with backoff after a failed reconcile.",
            ["controller"], registry=self.registry,
        )  # fmt: skip
        self.reconcile_duration = Histogram(
            f"{p}_reconcile_duration_seconds", "Seconds one reconcile took, from start to its result or error.",
            ["controller"], buckets=RECONCILE_DURATION_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.reconciles = Counter(
            f"{p}_reconciles", "Reconciles finished, by outcome: success, requeue, error (retried) or terminal.",
            ["controller", "outcome"], registry=self.registry,
        )  # fmt: skip
        self.reconcile_errors = Counter(
            f"{p}_reconcile_errors", "Reconciles that failed (raised or returned no Result), terminal ones included.",
            ["controller"], registry=self.registry,
        )  # fmt: skip
        self.reconcile_terminal_errors = Counter(
            f"{p}_reconcile_terminal_errors", "Reconciles that raised TerminalError: the key is not retried.",
            ["controller"], registry=self.registry,
        )  # fmt: skip
        self.event_lag = Histogram(
            f"{p}_event_lag_seconds", "Seconds from a change seen on Nomad's event stream to its reconcile's start.",
            ["controller"], buckets=EVENT_LAG_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.stream_reconnects = Counter(
            f"{p}_event_stream_reconnects", "Reconnects of Nomad's event stream, by reason (error, silence, gap, ...).",
            ["reason"], registry=self.registry,
        )  # fmt: skip
        self.cache_objects = Gauge(
            f"{p}_cache_objects", "Objects held in the informer cache, by kind.",
            ["kind"], registry=self.registry,
        )  # fmt: skip
        self.is_leader = Gauge(
            f"{p}_is_leader", "1 while this replica holds the leader lock and may write to Nomad, 0 otherwise.",
            registry=self.registry,
        )  # fmt: skip
        self.is_leader.set(0)

    def queue_observer(self, controller: str) -> ControllerQueueMetrics:
        """The QueueObserver for one controller's queue."""
        return ControllerQueueMetrics(self, controller)

    def reconcile_observer(self, controller: str) -> ControllerReconcileMetrics:
        """The ReconcileObserver for one controller's workers."""
        return ControllerReconcileMetrics(self, controller)

    def set_leader(self, leading: bool) -> None:
        self.is_leader.set(1 if leading else 0)

    def stream_reconnected(self, *, reason: str) -> None:
        self.stream_reconnects.labels(reason).inc()

    def record_cache_sizes(self, sizes: Mapping[str, int]) -> None:
        for kind, size in sizes.items():
            self.cache_objects.labels(kind).set(size)

    def render(self) -> bytes:
        """The registry in Prometheus text format, for `/metrics` (served with `CONTENT_TYPE`)."""
        return generate_latest(self.registry)


class ControllerQueueMetrics:
    """QueueObserver: one controller's queue metrics, with label children bound once."""

    def __init__(self, metrics: RuntimeMetrics, controller: str) -> None:
        self._depth = metrics.queue_depth.labels(controller)
        self._adds = metrics.queue_adds.labels(controller)
        self._retries = metrics.queue_retries.labels(controller)
        self._lag = metrics.event_lag.labels(controller)

    def added(self) -> None:
        self._adds.inc()

    def retried(self) -> None:
        self._retries.inc()

    def depth_changed(self, depth: int) -> None:
        self._depth.set(depth)

    def handed_out(self, lag: float | None) -> None:
        if lag is not None:
            self._lag.observe(lag)


class ControllerReconcileMetrics:
    """ReconcileObserver: one controller's reconcile metrics."""

    def __init__(self, metrics: RuntimeMetrics, controller: str) -> None:
        self._metrics = metrics
        self._controller = controller
        self._duration = metrics.reconcile_duration.labels(controller)
        self._errors = metrics.reconcile_errors.labels(controller)
        self._terminal = metrics.reconcile_terminal_errors.labels(controller)

    def reconciled(self, *, duration: float, outcome: str) -> None:
        self._duration.observe(duration)
        self._metrics.reconciles.labels(self._controller, outcome).inc()
        if outcome in (OUTCOME_ERROR, OUTCOME_TERMINAL):
            self._errors.inc()
        if outcome == OUTCOME_TERMINAL:
            self._terminal.inc()
