"""Node-down incidents: which allocations a node took with it, and what became of each job's lost capacity.

Nomad replaces lost allocations where it can, but it never says plainly what capacity is gone and why. When a node
goes down this module records an `Incident` (the node, when, the allocations lost per job) and, for every affected
task group, says what happened to the lost capacity: `replaced` on another node, `waiting` for the scheduler (a
reschedule delay, a pending evaluation), or `blocked`, with Nomad's own reason read from the evaluation's
FailedTGAllocs. The incident is closed when the node returns.

Pure logic: no clock, no I/O. The hazards it handles: counting allocations lost in an *earlier* incident of the same
node (only allocations that changed after the node's last status change, or still hold capacity on it, count); a
report that says "replaced" while the replacement has not been placed (capacity is counted from live allocations, not
from intentions); and an unbounded record (lost allocations and closed incidents have named limits).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Final

from nomad_operator.controllers.nodes.blocked_reasons import BlockedReason, classify_failure
from nomad_operator.controllers.nodes.cluster_view import AllocView, EvalView, JobRef, JobView, NodeView
from nomad_operator.controllers.nodes.defaults import INCIDENT_HISTORY_MAX, INCIDENT_MAX_LOST_ALLOCATIONS
from nomad_operator.durations import SECOND

OUTCOME_REPLACED: Final = "replaced"
OUTCOME_WAITING: Final = "waiting"
OUTCOME_BLOCKED: Final = "blocked"
OUTCOME_GONE: Final = "gone"
"""The job was stopped or removed since: its lost capacity is no longer wanted."""
SYSTEM_JOB_TYPES: Final = frozenset({"system", "sysbatch"})
_OUTCOME_SEVERITY: Final = {OUTCOME_BLOCKED: 3, OUTCOME_WAITING: 2, OUTCOME_REPLACED: 1, OUTCOME_GONE: 0}


@dataclass(frozen=True, slots=True, order=True)
class LostAllocation:
    job: JobRef
    task_group: str
    alloc_id: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class Incident:
    """A node went down (or disconnected) at `started_at` and took `lost` with it; `ended_at` is set when it returns."""

    node_id: str
    node_name: str
    started_at: float
    lost: tuple[LostAllocation, ...] = ()
    ended_at: float | None = None

    @property
    def open(self) -> bool:
        return self.ended_at is None

    def lost_per_job(self) -> dict[JobRef, int]:
        counts: dict[JobRef, int] = {}
        for lost in self.lost:
            counts[lost.job] = counts.get(lost.job, 0) + 1
        return counts


def lost_on_node(node: NodeView, allocs: Iterable[AllocView]) -> list[LostAllocation]:
    """Allocations a gone node took with it in its current outage.

    Counted: allocations on the node that still hold capacity (Nomad has not processed the node yet), and lost or
    unknown ones that changed at or after the node's last status change. A lost allocation from an earlier outage of
    the same node changed before that, so it is not counted again.
    """
    since_ns = node.status_updated_at * SECOND
    found = []
    for alloc in allocs:
        if alloc.node_id != node.id:
            continue
        if alloc.live or (alloc.lost and alloc.modify_time >= since_ns):
            found.append(LostAllocation(alloc.job, alloc.task_group, alloc.id, alloc.name))
    return sorted(found)


@dataclass(frozen=True, slots=True)
class GroupCapacity:
    """What became of one task group's capacity lost in the open incidents."""

    job: JobRef
    task_group: str
    desired: int
    running: int
    live: int  # running or pending
    lost: int
    outcome: str
    reason: str = ""
    message: str = ""
    replaced_on: tuple[str, ...] = ()
    down_nodes: tuple[str, ...] = ()

    @property
    def degraded(self) -> bool:
        return self.outcome != OUTCOME_GONE and self.running < self.desired


def _blocking_failure(task_group: str, evaluations: Sequence[EvalView]) -> BlockedReason | None:
    """The reason the group is blocked, from the job's evaluations, or None when the latest one placed it."""
    blocked = [e for e in evaluations if e.status == "blocked" and task_group in e.failed_groups]
    if blocked:
        latest = max(blocked, key=lambda e: (e.modify_index, e.create_index))
        return classify_failure(latest.failed_groups[task_group])
    finished = [e for e in evaluations if e.status == "complete"]
    if not finished:
        return None
    latest = max(finished, key=lambda e: (e.modify_index, e.create_index))
    metric = latest.failed_groups.get(task_group)
    return classify_failure(metric) if metric is not None else None


def assess_group(
    *,
    job: JobView | None,
    job_ref: JobRef,
    task_group: str,
    lost: Sequence[LostAllocation],
    allocs: Sequence[AllocView],
    evaluations: Sequence[EvalView],
    node_names: Mapping[str, str],
    down_nodes: Sequence[str] = (),
) -> GroupCapacity:
    """The state of one task group that lost `lost` allocations: replaced, waiting or blocked, and why."""
    group = job.group(task_group) if job is not None else None
    downs = tuple(sorted(down_nodes))
    if job is None or job.stopped or group is None:
        return GroupCapacity(
            job_ref, task_group, 0, 0, 0, len(lost), OUTCOME_GONE,
            message="the job or group was stopped or removed since", down_nodes=downs,
        )  # fmt: skip
    mine = [alloc for alloc in allocs if alloc.task_group == task_group]
    live = sum(1 for alloc in mine if alloc.live)
    running = sum(1 for alloc in mine if alloc.running)
    if job.type in SYSTEM_JOB_TYPES:
        # One allocation per eligible node and never rescheduled: the lost ones come back with their nodes.
        return GroupCapacity(
            job_ref, task_group, live + len(lost), running, live, len(lost), OUTCOME_WAITING,
            message=f"{len(lost)} lost; a {job.type} job runs again when its node returns", down_nodes=downs,
        )  # fmt: skip
    lost_ids = {item.alloc_id for item in lost}
    # List stubs carry NextAllocation on the lost allocation, full objects PreviousAllocation on the replacement.
    successors = {a.next_allocation for a in mine if a.id in lost_ids and a.next_allocation}
    replaced_on = tuple(sorted({
        node_names.get(a.node_id, a.node_id[:8])
        for a in mine if a.live and (a.previous_allocation in lost_ids or a.id in successors)
    }))  # fmt: skip
    base = GroupCapacity(job_ref, task_group, group.count, running, live, len(lost), OUTCOME_REPLACED,
                         replaced_on=replaced_on, down_nodes=downs)  # fmt: skip
    missing = group.count - live
    if missing <= 0:
        starting = live - running
        where = f" on {', '.join(replaced_on)}" if replaced_on else ""
        note = f", {starting} starting" if starting > 0 else ""
        return replace(base, message=f"{len(lost)} lost, replaced{where}{note}")
    failure = _blocking_failure(task_group, evaluations)
    if failure is None:
        return replace(
            base, outcome=OUTCOME_WAITING,
            message=f"{live}/{group.count} placed; {missing} waiting for the scheduler to place",
        )  # fmt: skip
    return replace(
        base, outcome=OUTCOME_BLOCKED, reason=failure.reason,
        message=f"{live}/{group.count} placed; {missing} blocked by {failure.reason}: {failure.message}",
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class JobImpact:
    """How the open incidents affect one job, summed over its groups: what the GitOps health shows."""

    job: JobRef
    desired: int
    running: int
    outcome: str
    reason: str
    message: str
    down_nodes: tuple[str, ...] = ()
    groups: tuple[GroupCapacity, ...] = field(default=())

    @property
    def degraded(self) -> bool:
        return self.outcome != OUTCOME_GONE and self.running < self.desired


def job_impacts(groups: Iterable[GroupCapacity]) -> dict[JobRef, JobImpact]:
    """Group capacities folded per job; the job's outcome is its worst group's (blocked > waiting > replaced)."""
    per_job: dict[JobRef, list[GroupCapacity]] = {}
    for group in groups:
        per_job.setdefault(group.job, []).append(group)
    impacts = {}
    for ref, members in sorted(per_job.items()):
        members.sort(key=lambda g: g.task_group)
        worst = max(members, key=lambda g: _OUTCOME_SEVERITY[g.outcome])
        downs = tuple(sorted({name for g in members for name in g.down_nodes}))
        desired = sum(g.desired for g in members)
        running = sum(g.running for g in members)
        where = f"node {', '.join(downs)} down" if len(downs) == 1 else f"nodes {', '.join(downs)} down"
        detail = "; ".join(f"{g.task_group}: {g.message}" if len(members) > 1 else g.message for g in members)
        message = f"{running}/{desired} running ({where}): {detail}" if downs else f"{running}/{desired}: {detail}"
        impacts[ref] = JobImpact(ref, desired, running, worst.outcome, worst.reason, message, downs, tuple(members))
    return impacts


class IncidentBook:
    """The open incidents (one per gone node) and a bounded history of closed ones."""

    def __init__(
        self, *, history_max: int = INCIDENT_HISTORY_MAX, max_lost: int = INCIDENT_MAX_LOST_ALLOCATIONS
    ) -> None:
        self._open: dict[str, Incident] = {}
        self._history: deque[Incident] = deque(maxlen=history_max)
        self._max_lost = max_lost

    def record_down(self, node: NodeView, allocs: Iterable[AllocView], *, at: float) -> tuple[Incident, bool]:
        """Open the node's incident, or add newly lost allocations to the open one. Returns it and whether it is new."""
        found = lost_on_node(node, allocs)
        current = self._open.get(node.id)
        if current is None:
            incident = Incident(node.id, node.name, at, tuple(found[: self._max_lost]))
            self._open[node.id] = incident
            return incident, True
        known = {item.alloc_id for item in current.lost}
        added = [item for item in found if item.alloc_id not in known]
        if added:
            merged = tuple(sorted([*current.lost, *added])[: self._max_lost])
            current = replace(current, lost=merged)
            self._open[node.id] = current
        return current, False

    def record_up(self, node_id: str, *, at: float) -> Incident | None:
        """Close the node's incident (it is ready again); returns the closed incident, or None if none was open."""
        current = self._open.pop(node_id, None)
        if current is None:
            return None
        closed = replace(current, ended_at=at)
        self._history.append(closed)
        return closed

    def forget(self, node_id: str, *, at: float) -> Incident | None:
        """The node was deregistered: close its incident as well."""
        return self.record_up(node_id, at=at)

    def open_incidents(self) -> list[Incident]:
        return sorted(self._open.values(), key=lambda incident: (incident.started_at, incident.node_name))

    def get(self, node_id: str) -> Incident | None:
        return self._open.get(node_id)

    def history(self) -> list[Incident]:
        return list(self._history)

    def affected(self) -> dict[tuple[JobRef, str], tuple[list[LostAllocation], list[str]]]:
        """(job, group) -> (its allocations lost in open incidents, the names of the nodes they were lost on)."""
        affected: dict[tuple[JobRef, str], tuple[list[LostAllocation], list[str]]] = {}
        for incident in self.open_incidents():
            for lost in incident.lost:
                items, nodes = affected.setdefault((lost.job, lost.task_group), ([], []))
                items.append(lost)
                if incident.node_name not in nodes:
                    nodes.append(incident.node_name)
        return affected
