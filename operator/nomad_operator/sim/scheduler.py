"""The simulator's scheduler: decides, for one evaluation, which allocations to place, stop or update in place.

It exists so that the simulator places work the way Nomad would wherever the operator can tell: Count with Nomad's
allocation names and index reuse, lost allocations on down nodes replaced, drained ones migrated, new job versions
updated in place or destructively, batch work that finished left alone, system jobs following the nodes, and blocked
placements reported as Nomad reports them (FailedTGAllocs, QueuedAllocations, DesiredTGUpdates). It is PURE: no
asyncio, no I/O, no clock, no randomness except the injected ``random.Random``; the simulator's state store calls
``compute_plan`` for every evaluation and applies the ``Plan``. The hazard it handles is drift from Nomad: the node
controller and the GitOps tests must not pass against a cluster that could never exist. Where a node can go lives in
``placement``; what a job asks for in ``job_asks``; the constraint language in ``constraints``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nomad_operator.sim.job_asks import GroupAsk, JobAsk, SchedulingInputError, needs_new_allocation, parse_job
from nomad_operator.sim.placement import Choice, NodeUsage, Placer, is_live
from nomad_operator.sim.placement_metrics import FailureMetric
from nomad_operator.sim.reconcile import (
    ALLOC_LOST,
    ALLOC_NOT_NEEDED,
    ALLOC_UPDATING,
    name_index,
    reconcile_generic_group,
    reconcile_system_group,
)

__all__ = [
    "AllocInfo",
    "NodeInfo",
    "NodeUsage",
    "Placement",
    "Plan",
    "PortInfo",
    "SchedulingInputError",
    "Stop",
    "compute_plan",
]

SYSTEM_TYPES = frozenset({"system", "sysbatch"})
# DesiredUpdates keys, all present on the wire (structs.DesiredUpdates is not omitempty).
DESIRED_UPDATE_KEYS = (
    "Canary",
    "DestructiveUpdate",
    "Disconnect",
    "Ignore",
    "InPlaceUpdate",
    "Migrate",
    "Place",
    "Preemptions",
    "Reconnect",
    "RescheduleLater",
    "RescheduleNow",
    "Stop",
)


@dataclass(frozen=True, slots=True)
class NodeInfo:
    id: str
    name: str
    datacenter: str
    node_class: str
    node_pool: str  # "default"
    status: str  # "initializing" | "ready" | "down" | "disconnected"
    eligible: bool  # SchedulingEligibility == "eligible"
    draining: bool
    attributes: Mapping[str, str]  # "cpu.arch", "kernel.name", "unique.network.ip-address", "driver.docker", ...
    meta: Mapping[str, str]
    cpu_mhz: int  # allocatable (NodeResources minus reserved)
    memory_mb: int
    drivers: frozenset[str]  # healthy drivers: {"docker", "exec", "raw_exec"}


@dataclass(frozen=True, slots=True)
class PortInfo:
    label: str
    value: int  # host port
    to: int  # mapped port (0 = same)
    host_ip: str  # the node's IP


@dataclass(frozen=True, slots=True)
class AllocInfo:
    id: str
    namespace: str
    job_id: str
    task_group: str
    name: str  # "<job>.<group>[<index>]", as Nomad names allocations
    node_id: str
    job_version: int
    desired_status: str  # "run" | "stop" | "evict"
    client_status: str  # "pending" | "running" | "complete" | "failed" | "lost" | "unknown"
    cpu_mhz: int
    memory_mb: int
    ports: tuple[PortInfo, ...]  # every host port it holds (static and dynamic)
    migrate: bool = False  # DesiredTransition.Migrate (drain or alloc stop asked for a replacement)


@dataclass(frozen=True, slots=True)
class Placement:
    task_group: str
    name: str  # "<job>.<group>[<index>]"
    node_id: str
    ports: tuple[PortInfo, ...]
    cpu_mhz: int
    memory_mb: int
    previous_alloc_id: str | None  # the allocation this one replaces (lost, migrated, updated), else None


@dataclass(frozen=True, slots=True)
class Stop:
    alloc_id: str
    description: str  # Nomad's DesiredDescription, e.g. "alloc is lost since its node is down"
    client_status: str | None  # "lost" for allocations on down nodes; None leaves the client status as it is


@dataclass(slots=True)
class Plan:
    placements: list[Placement] = field(default_factory=list)
    stops: list[Stop] = field(default_factory=list)
    in_place_updates: list[str] = field(default_factory=list)  # alloc IDs moved to the new job version as they are
    failed_tg_allocs: dict[str, dict[str, Any]] = field(default_factory=dict)  # group -> Nomad AllocMetric JSON
    queued_allocations: dict[str, int] = field(default_factory=dict)  # group -> count still unplaced
    # group -> DesiredUpdates counts:
    # {"Place","Stop","Migrate","InPlaceUpdate","DestructiveUpdate","Canary","Ignore","Preemptions"}
    annotations: dict[str, dict[str, int]] = field(default_factory=dict)


def compute_plan(
    job: Mapping[str, Any],
    *,
    job_version: int,
    nodes: Sequence[NodeInfo],
    job_allocs: Sequence[AllocInfo],
    other_allocs: Sequence[AllocInfo] = (),
    rng: random.Random,
    job_versions: Mapping[int, Mapping[str, Any]] | None = None,
    node_usage: Mapping[str, NodeUsage] | None = None,
) -> Plan:
    """Decide the plan for one evaluation of ``job`` (Nomad API JSON, canonicalized).

    What the nodes already hold comes either from ``other_allocs`` (every allocation of the other jobs, scanned) or,
    on a big cluster, from ``node_usage``: per node, the totals of every live allocation, this job's included, kept
    up to date by the caller, so an evaluation costs the same whatever the cluster's allocation count. Give one or
    the other, not both.

    ``job_versions`` (optional) holds earlier stored versions of the job by Version: an allocation of an older
    version is updated in place when its group changed only in in-place fields; without its version here it is
    replaced (a destructive update). Raises ``SchedulingInputError`` for a job that cannot be scheduled as written.
    """
    if node_usage is not None and other_allocs:
        raise ValueError("give compute_plan either other_allocs or node_usage, not both")
    ask = parse_job(job)
    placer = Placer(
        job=ask, nodes=nodes, other_allocs=other_allocs, job_allocs=job_allocs, rng=rng, node_usage=node_usage
    )
    builder = PlanBuilder(ask=ask, job=job, job_version=job_version, placer=placer, job_versions=job_versions or {})
    by_group: dict[str, list[AllocInfo]] = {}
    for alloc in sorted(job_allocs, key=lambda alloc: (name_index(alloc.name), alloc.id)):
        by_group.setdefault(alloc.task_group, []).append(alloc)
    for group in ask.groups:
        allocs = by_group.pop(group.name, [])
        if job.get("Stop"):
            builder.stop_all(group.name, allocs)
        elif ask.type in SYSTEM_TYPES:
            reconcile_system_group(builder, group, allocs)
        else:
            reconcile_generic_group(builder, group, allocs)
    for name, allocs in sorted(by_group.items()):  # groups the job no longer has
        builder.stop_all(name, allocs)
    return builder.finish()


class PlanBuilder:
    """The plan as it grows, with the bookkeeping every decision shares (usage, annotations, failures, queue)."""

    def __init__(
        self,
        *,
        ask: JobAsk,
        job: Mapping[str, Any],
        job_version: int,
        placer: Placer,
        job_versions: Mapping[int, Mapping[str, Any]],
    ) -> None:
        self.ask = ask
        self.job = job
        self.job_version = job_version
        self.placer = placer
        self.job_versions = job_versions
        self.plan = Plan()
        self._failures: dict[str, FailureMetric] = {}
        for group in ask.groups:
            self.plan.queued_allocations[group.name] = 0
            self.annotate(group.name, "Ignore", 0)

    def annotate(self, group: str, key: str, amount: int = 1) -> None:
        counts = self.plan.annotations.setdefault(group, dict.fromkeys(DESIRED_UPDATE_KEYS, 0))
        counts[key] += amount

    def node_is_gone(self, alloc: AllocInfo) -> bool:
        """Nomad treats an allocation on a down or unknown node as lost."""
        node = self.placer.node(alloc.node_id)
        return node is None or node.status == "down"

    def node_status(self, alloc: AllocInfo) -> str:
        node = self.placer.node(alloc.node_id)
        return "down" if node is None else node.status

    def stop(self, alloc: AllocInfo, description: str, *, client_status: str | None = None) -> None:
        self.plan.stops.append(Stop(alloc_id=alloc.id, description=description, client_status=client_status))
        self.placer.release(alloc)

    def stop_lost(self, alloc: AllocInfo) -> None:
        self.stop(alloc, ALLOC_LOST, client_status="lost")

    def stop_all(self, group: str, allocs: Sequence[AllocInfo]) -> None:
        for alloc in allocs:
            if is_live(alloc):
                if self.node_is_gone(alloc):
                    self.stop_lost(alloc)
                else:
                    self.stop(alloc, ALLOC_NOT_NEEDED)
                self.annotate(group, "Stop")

    def needs_new_allocation(self, alloc: AllocInfo, group: GroupAsk) -> bool:
        """An allocation of another job version: replace it (True) or move it to this version in place (False)."""
        old_job = self.job_versions.get(alloc.job_version)
        if old_job is None:
            return True
        if needs_new_allocation(old_job, self.job, group.name):
            return True
        # Like Nomad's in-place check: the node must still be one the new version could choose.
        node = self.placer.node(alloc.node_id)
        return node is None or not self.placer.could_run_on(group, node)

    def update_in_place(self, alloc: AllocInfo, group: GroupAsk) -> None:
        self.plan.in_place_updates.append(alloc.id)
        self.annotate(group.name, "InPlaceUpdate")

    def place(
        self,
        group: GroupAsk,
        name: str,
        *,
        previous: AllocInfo | None = None,
        destructive: bool = False,
        only_node: str | None = None,
    ) -> bool | None:
        """Try one placement. True when placed, False when it failed, None when only constraints ruled ``only_node``
        out (a system job that does not belong on that node: neither placed nor queued)."""
        failure = self._failures.get(group.name)
        if failure is not None and only_node is None:
            failure.coalesce(group.task_resources)
            self.plan.queued_allocations[group.name] += 1
            return False
        if destructive and previous is not None:
            self.placer.release(previous)  # Nomad stops the old one first, so its resources count as free
        node = self.placer.node(only_node) if only_node is not None else None
        result = self.placer.select(group, only=node)
        if isinstance(result, Choice):
            self.placer.commit(group, result)
            self.plan.placements.append(_placement(group, name, result, previous))
            if destructive and previous is not None:
                self.plan.stops.append(Stop(alloc_id=previous.id, description=ALLOC_UPDATING, client_status=None))
            return True
        if destructive and previous is not None:
            self.placer.hold(previous)  # no replacement: the old allocation keeps running
        if only_node is not None and result.nodes_filtered:
            return None
        if failure is not None:
            failure.coalesce(group.task_resources)
        else:
            self._failures[group.name] = result
        self.plan.queued_allocations[group.name] += 1
        return False

    def finish(self) -> Plan:
        self.plan.failed_tg_allocs = {name: metric.to_json() for name, metric in self._failures.items()}
        return self.plan


def _placement(group: GroupAsk, name: str, choice: Choice, previous: AllocInfo | None) -> Placement:
    ports = tuple(
        PortInfo(label=ask.label, value=value, to=value if ask.to == -1 else ask.to, host_ip=choice.host_ip)
        for ask, value in choice.ports
    )
    return Placement(
        task_group=group.name,
        name=name,
        node_id=choice.node_id,
        ports=ports,
        cpu_mhz=choice.cpu_mhz,
        memory_mb=choice.memory_mb,
        previous_alloc_id=None if previous is None else previous.id,
    )
