"""Rebalancing after a node returns: choose one allocation to stop on the busiest node so Nomad places it elsewhere.

Nomad never moves work back onto a node that returns. After pi2 comes back, a whoami without `distinct_hosts` stays
with two instances on pi1 and one on pi3, and a later loss of pi1 takes two of three. The rule:

- A node becoming ready (returning, joining, or made eligible) *arms* rebalancing of every service job for
  `rebalance_window`. Nothing is moved at another time: lopsidedness that Nomad chose for a reason of its own
  (resources, affinities) is not fought over forever.
- An armed job is *lopsided* when, in one task group, its busiest and idlest schedulable nodes (ready, eligible, not
  draining) differ by more than `rebalance_max_skew` allocations, or a `spread` block is not met (some value above
  its target share and another below). Then ONE allocation is stopped on the busiest node (the newest there, the
  one that has run the shortest); Nomad places the replacement, and its job anti-affinity and spread scoring put it
  on an idle node.
- Only while the job is healthy: every wanted allocation running, none pending, no deployment in progress. At most
  one disruption per job at a time: the next waits until the stopped allocation is gone and the job is healthy
  again, then for `rebalance_cooldown`. A stop that did not reduce the moves still needed (Nomad put the replacement
  back on a busy node) disarms the job, so it can never loop.
- Never system, sysbatch or batch jobs; never a job whose meta sets `nomad-operator.rebalance = "false"`; in dry-run
  mode the move is reported and not made.

Pure logic, no I/O: the controller stops the chosen allocation and reports the decision.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from nomad_operator.controllers.nodes.cluster_view import (
    JOB_SERVICE,
    AllocView,
    DeploymentView,
    GroupView,
    JobRef,
    JobView,
    NodeView,
    SpreadView,
)
from nomad_operator.controllers.nodes.defaults import REBALANCE_OPT_OUT_META
from nomad_operator.controllers.nodes.policy import NodePolicy

DECISION_MOVE: Final = "move"
DECISION_DRY_RUN: Final = "dry-run"
DECISION_WAIT: Final = "wait"
DECISION_BALANCED: Final = "balanced"
DECISION_SKIP: Final = "skip"
DECISION_IDLE: Final = "idle"


@dataclass(frozen=True, slots=True)
class Move:
    """Stop `alloc_id` (on the busiest node, `from_node`) so that Nomad places it on one of `toward`."""

    job: JobRef
    task_group: str
    alloc_id: str
    alloc_name: str
    from_node: str
    from_name: str
    toward: tuple[str, ...]
    counts: Mapping[str, int]  # node name -> live allocations of the group, before the move
    moves_needed: int
    reason: str


@dataclass(frozen=True, slots=True)
class RebalanceDecision:
    kind: str
    message: str
    move: Move | None = None
    retry_after: float | None = None


def skew(counts: Iterable[int]) -> int:
    values = list(counts)
    return max(values) - min(values) if values else 0


def minimum_moves(counts: Sequence[int]) -> int:
    """Fewest single moves that bring `counts` to a skew of at most one (a move takes one from a node, adds one)."""
    if not counts:
        return 0
    total, nodes = sum(counts), len(counts)
    low, high = total // nodes, math.ceil(total / nodes)
    above = sum(max(0, count - high) for count in counts)
    below = sum(max(0, low - count) for count in counts)
    return max(above, below)


def is_opted_out(job: JobView) -> bool:
    return job.meta.get(REBALANCE_OPT_OUT_META, "").strip().lower() == "false"


def spread_value(attribute: str, node: NodeView) -> str | None:
    """The value of a spread attribute (`${node.unique.name}`, `${attr.x}`, `${meta.x}`, ...) on a node."""
    target = attribute.strip()
    if target.startswith("${") and target.endswith("}"):
        target = target[2:-1]
    fixed = {
        "node.unique.id": node.id,
        "node.unique.name": node.name,
        "node.datacenter": node.datacenter,
        "node.class": node.node_class,
        "node.pool": node.node_pool,
    }
    if target in fixed:
        return fixed[target]
    for prefix, source in (("attr.", node.attributes), ("meta.", node.meta)):
        if target.startswith(prefix):
            return source.get(target[len(prefix) :])
    return None


def _group_allocs(
    group: GroupView, allocs: Sequence[AllocView], schedulable: Mapping[str, NodeView]
) -> list[AllocView]:
    return [a for a in allocs if a.task_group == group.name and a.live and a.node_id in schedulable]


def _victim(allocs: Sequence[AllocView], node_id: str) -> AllocView:
    on_node = [alloc for alloc in allocs if alloc.node_id == node_id]
    return max(on_node, key=lambda alloc: (alloc.create_index, alloc.id))


def _spread_move(
    job: JobView, group: GroupView, spread: SpreadView, allocs: Sequence[AllocView], nodes: Sequence[NodeView]
) -> Move | None:
    values = {node.id: spread_value(spread.attribute, node) for node in nodes}
    present = sorted({value for value in values.values() if value is not None})
    if len(present) < 2:
        return None
    total = len(allocs)
    if spread.targets:
        remainder = max(0, 100 - sum(spread.targets.values()))
        desired = {value: spread.targets.get(value, remainder) / 100 * total for value in present}
    else:
        desired = {value: total / len(present) for value in present}
    per_value = {value: 0 for value in present}
    for alloc in allocs:
        value = values.get(alloc.node_id)
        if value is not None:
            per_value[value] += 1
    over = [v for v in present if per_value[v] > math.ceil(desired[v])]
    under = [v for v in present if per_value[v] < math.floor(desired[v])]
    if not over or not under:
        return None
    worst = max(over, key=lambda v: (per_value[v] - desired[v], v))
    counts = _node_counts(allocs, [node for node in nodes if values[node.id] == worst])
    busiest = max(counts, key=lambda node_id: (counts[node_id], node_id))
    victim = _victim(allocs, busiest)
    names = {node.id: node.name for node in nodes}
    toward = tuple(sorted(names[n.id] for n in nodes if values[n.id] in under))
    all_counts = _node_counts(allocs, nodes)
    return Move(
        job.ref, group.name, victim.id, victim.name, busiest, names[busiest], toward,
        {names[node_id]: count for node_id, count in sorted(all_counts.items(), key=lambda i: names[i[0]])},
        sum(per_value[v] - math.ceil(desired[v]) for v in over),
        f"spread on {spread.attribute} not met: {worst} has {per_value[worst]}, target {desired[worst]:.1f}",
    )  # fmt: skip


def _node_counts(allocs: Sequence[AllocView], nodes: Sequence[NodeView]) -> dict[str, int]:
    counts = {node.id: 0 for node in nodes}
    for alloc in allocs:
        if alloc.node_id in counts:
            counts[alloc.node_id] += 1
    return counts


def choose_move(job: JobView, allocs: Sequence[AllocView], nodes: Sequence[NodeView], *, max_skew: int) -> Move | None:
    """The one allocation to stop to even out the job, or None when no group is lopsided. Ignores health gates."""
    schedulable = {node.id: node for node in sorted(nodes, key=lambda n: n.name) if node.schedulable}
    if len(schedulable) < 2:
        return None
    candidates = list(schedulable.values())
    for group in sorted(job.groups, key=lambda g: g.name):
        mine = _group_allocs(group, allocs, schedulable)
        if not mine:
            continue
        for spread in sorted(group.spreads, key=lambda s: (-s.weight, s.attribute)):
            move = _spread_move(job, group, spread, mine, candidates)
            if move is not None:
                return move
        counts = _node_counts(mine, candidates)
        if skew(counts.values()) <= max_skew:
            continue
        busiest = max(counts, key=lambda node_id: (counts[node_id], schedulable[node_id].name))
        idlest = min(counts.values())
        victim = _victim(mine, busiest)
        names = {node_id: node.name for node_id, node in schedulable.items()}
        return Move(
            job.ref, group.name, victim.id, victim.name, busiest, names[busiest],
            tuple(names[node_id] for node_id, count in counts.items() if count == idlest),
            {names[node_id]: count for node_id, count in counts.items()},
            minimum_moves(list(counts.values())),
            f"group {group.name} is lopsided: {counts[busiest]} on {names[busiest]}, {idlest} on the idlest node "
            f"(skew {skew(counts.values())} > {max_skew})",
        )  # fmt: skip
    return None


def health_problem(job: JobView, allocs: Sequence[AllocView], deployments: Sequence[DeploymentView]) -> str | None:
    """Why the job is not healthy enough to disrupt, or None when every wanted allocation runs and nothing deploys."""
    active = [d for d in deployments if d.active]
    if active:
        return f"deployment {active[0].id[:8]} is {active[0].status}"
    for group in job.groups:
        mine = [alloc for alloc in allocs if alloc.task_group == group.name and alloc.live]
        running = sum(1 for alloc in mine if alloc.running)
        if running < group.count or len(mine) > running:
            return f"group {group.name} has {running}/{group.count} running"
    return None


@dataclass(slots=True)
class _JobState:
    armed_at: float
    in_flight: Move | None = None
    settled_at: float | None = None


@dataclass(slots=True)
class RebalanceTracker:
    """Which jobs are armed, their in-flight disruption and cool-down, and the stops made so far."""

    jobs: dict[JobRef, _JobState] = field(default_factory=dict)
    stops: int = 0

    def arm(self, refs: Iterable[JobRef], *, at: float) -> None:
        """A node became ready: these jobs may be rebalanced for the policy's window from now."""
        for ref in refs:
            state = self.jobs.get(ref)
            if state is None:
                self.jobs[ref] = _JobState(armed_at=at)
            else:
                state.armed_at = at

    def disarm(self, ref: JobRef) -> None:
        state = self.jobs.get(ref)
        if state is not None and state.in_flight is None:
            del self.jobs[ref]

    def armed(self) -> list[JobRef]:
        return sorted(self.jobs)

    def in_flight(self, ref: JobRef) -> Move | None:
        state = self.jobs.get(ref)
        return None if state is None else state.in_flight

    def record_stop(self, move: Move, *, at: float) -> None:
        state = self.jobs.setdefault(move.job, _JobState(armed_at=at))
        state.in_flight, state.settled_at = move, None
        self.stops += 1

    def decide(
        self,
        job: JobView | None,
        allocs: Sequence[AllocView],
        nodes: Sequence[NodeView],
        deployments: Sequence[DeploymentView],
        *,
        now: float,
        policy: NodePolicy,
    ) -> RebalanceDecision:
        """What to do for one job now. Disarms the job when it is done, skipped or out of time."""
        ref = job.ref if job is not None else None
        state = self.jobs.get(ref) if ref is not None else None
        if job is None or state is None:
            return RebalanceDecision(DECISION_IDLE, "not armed: no node became ready recently")
        skip = self._skip_reason(job, policy)
        if skip is not None:
            state.in_flight = None
            self.disarm(job.ref)
            return RebalanceDecision(DECISION_SKIP, skip)
        problem = health_problem(job, allocs, deployments)
        if state.in_flight is not None:
            stopped = next((a for a in allocs if a.id == state.in_flight.alloc_id), None)
            if (stopped is not None and stopped.live) or problem is not None:
                what = problem or f"allocation {state.in_flight.alloc_id[:8]} is still stopping"
                return RebalanceDecision(DECISION_WAIT, f"waiting for the replacement to be healthy: {what}")
            before = state.in_flight.moves_needed
            state.in_flight, state.settled_at = None, now
            after = choose_move(job, allocs, nodes, max_skew=policy.rebalance_max_skew)
            if after is not None and after.moves_needed >= before:
                self.disarm(job.ref)
                return RebalanceDecision(
                    DECISION_SKIP, f"the last stop did not even out the job ({after.reason}); giving up until a node "
                    "becomes ready again",
                )  # fmt: skip
        if now - state.armed_at > policy.rebalance_window and state.in_flight is None:
            self.disarm(job.ref)
            return RebalanceDecision(DECISION_SKIP, "the rebalance window after the node's return has passed")
        if problem is not None:
            return RebalanceDecision(DECISION_WAIT, f"not healthy: {problem}")
        move = choose_move(job, allocs, nodes, max_skew=policy.rebalance_max_skew)
        if move is None:
            self.disarm(job.ref)
            return RebalanceDecision(DECISION_BALANCED, "balanced")
        if state.settled_at is not None and now < state.settled_at + policy.rebalance_cooldown:
            left = state.settled_at + policy.rebalance_cooldown - now
            return RebalanceDecision(DECISION_WAIT, f"cooling down for {left:.1f}s", retry_after=left)
        message = (
            f"stop {move.alloc_name or move.alloc_id[:8]} on {move.from_name} so Nomad places it on "
            f"{' or '.join(move.toward)}: {move.reason}"
        )
        if policy.rebalance_dry_run:
            self.disarm(job.ref)
            return RebalanceDecision(DECISION_DRY_RUN, f"dry run, would {message}", move)
        return RebalanceDecision(DECISION_MOVE, message, move)

    @staticmethod
    def _skip_reason(job: JobView, policy: NodePolicy) -> str | None:
        if not policy.rebalance:
            return "rebalancing is disabled by the NodePolicy"
        if job.type != JOB_SERVICE:
            return f"a {job.type} job is never rebalanced"
        if is_opted_out(job):
            return f'opted out by meta {REBALANCE_OPT_OUT_META} = "false"'
        if job.stopped:
            return "the job is stopped"
        return None
