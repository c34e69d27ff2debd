"""The node controller on the runtime: incidents and flap damping (`nodes`), and rebalancing (`rebalance`).

Both reconcile ONE cluster-wide key, because their decisions are cluster-wide: the flap budget counts every node, and
a node's return arms every service job. Every watched change (a node, an allocation, a job, an evaluation, a
deployment) enqueues that key; the queue collapses a burst into one reconcile, which reads the cache once and
converges. On a cluster of three Raspberry Pis that is a few dozen objects per pass.

Hazards handled here, around the pure decisions of `incidents`, `flapping` and `rebalance`:
- **Only the leader writes** (DESIGN rule 2). Every replica keeps incidents and flap history (so a new leader knows
  the recent past), but only the leader sets eligibility, stops allocations and writes status.
- **Ownership of ineligibility.** Holds are recorded in a Variable *before* the node is made ineligible and removed
  *after* it is made eligible, so a crash between the two never leaves a node that no replica will release, and a
  node a person made ineligible is never released by us (see `node_state_store`).
- **The reason in the node's meta.** Nomad keeps dynamic node metadata on the client agent (`/v1/client/metadata`),
  which the operator's client does not reach; the reason goes to the holds Variable, the status Variable, the log
  and `nomad_operator_node_held` instead.
- **One disruption per job at a time**, waited out through the cache, never by sleeping (see `rebalance`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol

from prometheus_client import CollectorRegistry

from nomad_operator.controllers.nodes.cluster_snapshot import CacheReader, ClusterSnapshot
from nomad_operator.controllers.nodes.cluster_view import (
    ALLOCATION_FIELDS,
    DEPLOYMENT_FIELDS,
    EVALUATION_FIELDS,
    JOB_FIELDS,
    JOB_SERVICE,
    NODE_FIELDS,
    JobRef,
)
from nomad_operator.controllers.nodes.defaults import NODE_CONTROLLER_NAME, REBALANCE_CONTROLLER_NAME
from nomad_operator.controllers.nodes.flapping import FlapDamper, FlapDecision
from nomad_operator.controllers.nodes.incident_view import NodeIncidents
from nomad_operator.controllers.nodes.incidents import IncidentBook
from nomad_operator.controllers.nodes.node_metrics import NodeMetrics
from nomad_operator.controllers.nodes.node_state_store import (
    HoldStore,
    StatusStore,
    VariableAccess,
    VariablePolicySource,
)
from nomad_operator.controllers.nodes.policy import NodePolicy
from nomad_operator.controllers.nodes.rebalance import (
    DECISION_BALANCED,
    DECISION_DRY_RUN,
    DECISION_MOVE,
    DECISION_SKIP,
    RebalanceTracker,
)
from nomad_operator.nomad.results import JSONObject
from nomad_operator.runtime.reconciler import Controller, ObjectKey, Result, Watch

NODES_KEY: Final = ObjectKey("NodeHealth", "", "cluster")
REBALANCE_KEY: Final = ObjectKey("Rebalance", "", "cluster")
REBALANCE_POLL_SECONDS: Final = 5.0
"""While jobs are armed, look again at least this often (events usually come first)."""
POLICY_REFRESH_SECONDS: Final = 10.0
"""How often the NodePolicy Variable is re-read (a reconcile that comes sooner uses the policy it has)."""

_log = logging.getLogger("nomad_operator.controllers.nodes")


class Leadership(Protocol):
    """`runtime.LeaderElector` satisfies this."""

    @property
    def is_leader(self) -> bool: ...


class AlwaysLeader:
    """Leadership for a single replica (tests, `demo`)."""

    @property
    def is_leader(self) -> bool:
        return True


class NodeClient(VariableAccess, Protocol):
    """The part of `NomadClient` the node controller calls."""

    async def set_node_eligibility(self, node_id: str, eligible: bool) -> JSONObject: ...

    async def stop_allocation(self, alloc_id: str) -> JSONObject: ...


def _to(key: ObjectKey) -> Callable[[Mapping[str, Any]], list[ObjectKey]]:
    def mapper(_obj: Mapping[str, Any]) -> list[ObjectKey]:
        return [key]

    return mapper


class NodeController:
    """Create it, hand `controllers()` to the runtime, then `attach(cache)` before the workers start."""

    def __init__(
        self,
        *,
        nomad: NodeClient,
        leadership: Leadership | None = None,
        policy: NodePolicy | None = None,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        logger: logging.Logger | None = None,
    ) -> None:
        self._nomad = nomad
        self._leadership: Leadership = leadership if leadership is not None else AlwaysLeader()
        self._static_policy = policy
        self._policy_source = VariablePolicySource(nomad)
        self._policy_read_at: float | None = None
        self._clock = clock
        self._wall = wall_clock
        self._log = logger if logger is not None else _log
        self._cache: CacheReader | None = None
        self.metrics = NodeMetrics(registry=registry)
        self.book = IncidentBook()
        self.damper = FlapDamper()
        self.tracker = RebalanceTracker()
        self._holds = HoldStore(nomad)
        self._status = StatusStore(nomad)
        self._holds_loaded = False
        self._reported: dict[JobRef, str] = {}
        self._notes: set[str] = set()
        self._schedulable: dict[str, bool] | None = None
        self._rebalance_said: dict[JobRef, str] = {}
        self.incidents = NodeIncidents(self.book, snapshot=self._snapshot, held=lambda: self.damper.held)

    # --- wiring ---------------------------------------------------------------------------------------------------
    def controllers(self) -> list[Controller]:
        nodes = [
            Watch("Node", map_to=_to(NODES_KEY), fields=NODE_FIELDS),
            Watch("Allocation", map_to=_to(NODES_KEY), fields=ALLOCATION_FIELDS),
            Watch("Job", map_to=_to(NODES_KEY), fields=JOB_FIELDS),
            Watch("Evaluation", map_to=_to(NODES_KEY), fields=EVALUATION_FIELDS),
        ]
        rebalance = [
            Watch("Node", map_to=_to(REBALANCE_KEY), fields=NODE_FIELDS),
            Watch("Allocation", map_to=_to(REBALANCE_KEY), fields=ALLOCATION_FIELDS),
            Watch("Job", map_to=_to(REBALANCE_KEY), fields=JOB_FIELDS),
            Watch("Deployment", map_to=_to(REBALANCE_KEY), fields=DEPLOYMENT_FIELDS),
        ]
        return [
            Controller(NODE_CONTROLLER_NAME, reconcile=self.reconcile_nodes, watches=nodes),
            Controller(REBALANCE_CONTROLLER_NAME, reconcile=self.reconcile_rebalance, watches=rebalance),
        ]

    def attach(self, cache: CacheReader) -> None:
        self._cache = cache

    def _snapshot(self) -> ClusterSnapshot:
        if self._cache is None:
            return ClusterSnapshot()
        return ClusterSnapshot.read(self._cache)

    async def _policy(self) -> NodePolicy:
        if self._static_policy is not None:
            return self._static_policy
        now = self._clock()
        if self._policy_read_at is None or now - self._policy_read_at >= POLICY_REFRESH_SECONDS:
            self._policy_read_at = now
            await self._policy_source.refresh()
        return self._policy_source.policy

    @property
    def policy_error(self) -> str:
        return self._policy_source.error

    # --- incidents and flap damping -------------------------------------------------------------------------------
    async def reconcile_nodes(self, _key: ObjectKey, /) -> Result:
        snapshot = self._snapshot()
        now, wall = self._clock(), self._wall()
        policy = await self._policy()
        present = {node.id for node in snapshot.nodes}
        for node in snapshot.nodes:
            if self.damper.observe(node, at=now):
                count = self.damper.flaps(node.id, now=now, window=policy.flap_window)
                self._log.warning("node %s went %s (%d downs within %.0fs)", node.name, node.status, count,
                                  policy.flap_window)  # fmt: skip
            if node.gone:
                incident, new = self.book.record_down(node, snapshot.allocs, at=wall)
                if new:
                    self.metrics.incidents_opened.inc()
                    lost = ", ".join(f"{ref.job_id} {n}" for ref, n in sorted(incident.lost_per_job().items()))
                    self._log.warning("node %s is %s: %d allocations lost (%s)", node.name, node.status,
                                      len(incident.lost), lost or "none")  # fmt: skip
            elif node.ready:
                closed = self.book.record_up(node.id, at=wall)
                if closed is not None:
                    self._log.info("node %s is back after %.1fs", node.name, wall - closed.started_at)
        for incident in self.book.open_incidents():
            if incident.node_id not in present:
                self.book.forget(incident.node_id, at=wall)
        for node_id in set(self.damper.held) - present:
            self.damper.forget(node_id)
        self._report(snapshot)
        decision = FlapDecision()
        if self._leadership.is_leader:
            decision = await self._damp(snapshot, now=now, policy=policy)
            await self._status.save(self._status_document())
        else:
            self._holds_loaded = False  # re-read the holds when this replica leads again
        self.metrics.set_held(hold.node_name for hold in self.damper.held.values())
        return Result(requeue_after=decision.recheck_after)

    def _report(self, snapshot: ClusterSnapshot) -> None:
        self.metrics.set_incidents(len(self.book.open_incidents()))
        impacts = self.incidents.job_impacts(snapshot)
        self.metrics.set_lost_capacity({
            ref: (max(0, impact.desired - impact.running), impact.outcome, impact.reason)
            for ref, impact in impacts.items() if impact.degraded
        })  # fmt: skip
        for ref, impact in impacts.items():
            if self._reported.get(ref) != impact.message:
                level = logging.WARNING if impact.degraded else logging.INFO
                self._log.log(level, "job %s: %s", ref, impact.message)
                self._reported[ref] = impact.message
        for ref in set(self._reported) - set(impacts):
            del self._reported[ref]
            self._log.info("job %s: no longer affected by a node-down incident", ref)

    async def _damp(self, snapshot: ClusterSnapshot, *, now: float, policy: NodePolicy) -> FlapDecision:
        if not self._holds_loaded:
            restored = await self._holds.load()
            self.damper.restore(restored.values())
            self._holds_loaded = True
            if restored:
                self._log.info("adopted flap holds on %s", ", ".join(h.node_name for h in restored.values()))
        decision = self.damper.decide(snapshot.nodes, now=now, policy=policy)
        for release in decision.release:
            if release.write:
                await self._nomad.set_node_eligibility(release.node_id, True)
            self.damper.confirm_release(release.node_id, at=now, forgive=release.forgives)
            await self._holds.save(self.damper.held)
            self._log.info("flap damping released node %s (%s): %s", release.node_name, release.reason,
                           release.message)  # fmt: skip
        for hold in decision.hold:
            self.damper.confirm_hold(hold)
            await self._holds.save(self.damper.held)  # recorded first: see the module docstring
            await self._nomad.set_node_eligibility(hold.node_id, False)
            self.metrics.holds.inc()
            self._log.warning("flap damping holds node %s ineligible: %s", hold.node_name, hold.reason)
        for note in set(decision.deferred) - self._notes:
            self._log.warning("flap damping: %s", note)
        self._notes = set(decision.deferred)
        return decision

    def _status_document(self) -> dict[str, Any]:
        document = self.incidents.snapshot()
        document["rebalanceStops"] = self.tracker.stops
        document["policyError"] = self.policy_error
        return document

    # --- rebalancing ----------------------------------------------------------------------------------------------
    async def reconcile_rebalance(self, _key: ObjectKey, /) -> Result:
        snapshot = self._snapshot()
        now = self._clock()
        policy = await self._policy()
        schedulable = {node.id: node.schedulable for node in snapshot.nodes}
        if self._schedulable is not None:
            returned = [n.name for n in snapshot.nodes if n.schedulable and not self._schedulable.get(n.id, False)]
            if returned:
                services = [ref for ref, job in snapshot.jobs.items() if job.type == JOB_SERVICE and not job.stopped]
                self.tracker.arm(services, at=now)
                self._log.info("node %s ready: rebalancing armed for %d service jobs", ", ".join(returned),
                               len(services))  # fmt: skip
        self._schedulable = schedulable
        if not self._leadership.is_leader:
            return Result()
        retry: list[float] = []
        for ref in self.tracker.armed():
            job = snapshot.jobs.get(ref)
            if job is None:
                self.tracker.disarm(ref)
                continue
            decision = self.tracker.decide(
                job, snapshot.allocs_by_job.get(ref, []), snapshot.nodes, snapshot.deployments_by_job.get(ref, []),
                now=now, policy=policy,
            )  # fmt: skip
            if decision.kind == DECISION_MOVE and decision.move is not None:
                await self._nomad.stop_allocation(decision.move.alloc_id)
                self.tracker.record_stop(decision.move, at=now)
                self.metrics.stopped(ref, dry_run=False)
                self._log.info("rebalance %s: %s", ref, decision.message)
            elif decision.kind == DECISION_DRY_RUN:
                self.metrics.stopped(ref, dry_run=True)
                self._log.info("rebalance %s: %s", ref, decision.message)
            elif decision.kind in (DECISION_SKIP, DECISION_BALANCED):
                self._log.info("rebalance %s: %s", ref, decision.message)
            elif self._rebalance_said.get(ref) != decision.message:
                self._log.debug("rebalance %s: %s", ref, decision.message)
            self._rebalance_said[ref] = decision.message
            if decision.retry_after is not None:
                retry.append(decision.retry_after)
        if not self.tracker.armed():
            self._rebalance_said.clear()
            return Result()
        return Result(requeue_after=min([*retry, REBALANCE_POLL_SECONDS]))
