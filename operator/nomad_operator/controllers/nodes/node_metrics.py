"""The node controller's Prometheus metrics: open incidents, lost capacity per job, held nodes, rebalance stops.

They live on the registry the runtime renders on `/metrics` (passed in), never on prometheus-client's global one:
two operator replicas in one test process would otherwise collide. The hazard handled here is a stale series: a job
whose capacity came back, or a node released, must stop being reported, so the per-job and per-node gauges are
replaced as a whole on every update rather than only ever set.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge

from nomad_operator.controllers.nodes.cluster_view import JobRef

PREFIX = "nomad_operator"


class NodeMetrics:
    def __init__(self, *, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.incidents = Gauge(
            f"{PREFIX}_node_incidents", "Nodes down or disconnected right now: the open node-down incidents.",
            registry=self.registry,
        )  # fmt: skip
        self.incidents_opened = Counter(
            f"{PREFIX}_node_incidents_opened", "Node-down incidents opened since start.", registry=self.registry,
        )  # fmt: skip
        self.lost_capacity = Gauge(
            f"{PREFIX}_node_lost_capacity",
            "Allocations a job is short of (wanted minus running) because of open node-down incidents.",
            ["namespace", "job", "outcome", "reason"], registry=self.registry,
        )  # fmt: skip
        self.held_nodes = Gauge(
            f"{PREFIX}_node_held", "1 for each node flap damping holds ineligible.", ["node"], registry=self.registry,
        )  # fmt: skip
        self.holds = Counter(
            f"{PREFIX}_node_flap_holds", "Nodes made ineligible by flap damping since start.", registry=self.registry,
        )  # fmt: skip
        self.rebalance_stops = Counter(
            f"{PREFIX}_rebalance_stops", "Allocations stopped by the rebalancer so that Nomad places them elsewhere.",
            ["namespace", "job"], registry=self.registry,
        )  # fmt: skip
        self.rebalance_dry_runs = Counter(
            f"{PREFIX}_rebalance_dry_runs", "Rebalance stops reported but not made (dry-run mode).",
            ["namespace", "job"], registry=self.registry,
        )  # fmt: skip
        self._held_labels: set[str] = set()
        self._lost_labels: set[tuple[str, str, str, str]] = set()

    def set_incidents(self, count: int) -> None:
        self.incidents.set(count)

    def set_lost_capacity(self, shortfalls: Mapping[JobRef, tuple[int, str, str]]) -> None:
        """job -> (allocations short, outcome, reason); series of jobs no longer short are removed."""
        labels = {(ref.namespace, ref.job_id, outcome, reason): short
                  for ref, (short, outcome, reason) in shortfalls.items()}  # fmt: skip
        for stale in self._lost_labels - set(labels):
            self.lost_capacity.remove(*stale)
        for key, short in labels.items():
            self.lost_capacity.labels(*key).set(short)
        self._lost_labels = set(labels)

    def set_held(self, node_names: Iterable[str]) -> None:
        names = set(node_names)
        for stale in self._held_labels - names:
            self.held_nodes.remove(stale)
        for name in names:
            self.held_nodes.labels(name).set(1)
        self._held_labels = names

    def stopped(self, ref: JobRef, *, dry_run: bool) -> None:
        counter = self.rebalance_dry_runs if dry_run else self.rebalance_stops
        counter.labels(ref.namespace, ref.job_id).inc()
