"""Rebalancing: which allocation to stop, the gates that keep it safe, and properties of the choice."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nomad_operator.controllers.nodes.cluster_view import AllocView, DeploymentView, JobRef, JobView, NodeView
from nomad_operator.controllers.nodes.policy import NodePolicy
from nomad_operator.controllers.nodes.rebalance import (
    DECISION_BALANCED,
    DECISION_DRY_RUN,
    DECISION_IDLE,
    DECISION_MOVE,
    DECISION_SKIP,
    DECISION_WAIT,
    RebalanceTracker,
    choose_move,
    minimum_moves,
    skew,
    spread_value,
)

POLICY = NodePolicy(rebalance_cooldown=5.0)
NODES = [NodeView(id=f"n{i}", name=f"pi{i}", status="ready", datacenter="dc1",
                  attributes={"platform.rack": "r1" if i < 3 else "r2"}) for i in (1, 2, 3)]  # fmt: skip


def job(*, job_type: str = "service", meta: dict[str, str] | None = None, count: int = 3,
        spreads: list[dict[str, Any]] | None = None, distinct: bool = False) -> JobView:
    group: dict[str, Any] = {"Name": "web", "Count": count, "Spreads": spreads}
    if distinct:
        group["Constraints"] = [{"Operand": "distinct_hosts", "RTarget": "true"}]
    return JobView.from_wire({"ID": "web", "Namespace": "default", "Type": job_type, "Meta": meta,
                              "TaskGroups": [group]})  # fmt: skip


_ids = itertools.count(1)


def allocs_on(*node_ids: str, status: str = "running") -> list[AllocView]:
    found = []
    for node_id in node_ids:
        n = next(_ids)
        found.append(AllocView(id=f"a{n:04d}", job=JobRef("default", "web"), task_group="web", node_id=node_id,
                               client_status=status, name=f"web.web[{n}]", create_index=n))  # fmt: skip
    return found


def test_skew_and_minimum_moves() -> None:
    assert skew([2, 1, 0]) == 2
    assert skew([]) == 0
    assert minimum_moves([2, 1, 0]) == 1
    assert minimum_moves([3, 0, 0]) == 2
    assert minimum_moves([2, 2, 0]) == 1
    assert minimum_moves([1, 1, 1]) == 0


def _brute_force_moves(counts: tuple[int, ...]) -> int:
    """Breadth-first search over single moves: the true minimum, to check the formula against."""
    frontier, seen, depth = {counts}, {counts}, 0
    while True:
        if any(skew(state) <= 1 for state in frontier):
            return depth
        following = set()
        for state in frontier:
            for i, j in itertools.permutations(range(len(state)), 2):
                if state[i] > 0:
                    moved = list(state)
                    moved[i] -= 1
                    moved[j] += 1
                    if tuple(moved) not in seen:
                        seen.add(tuple(moved))
                        following.add(tuple(moved))
        frontier, depth = following, depth + 1


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=4))
def test_property_minimum_moves_is_the_true_minimum(counts: list[int]) -> None:
    assert minimum_moves(counts) == _brute_force_moves(tuple(counts))


def test_stops_the_newest_allocation_on_the_busiest_node() -> None:
    allocs = allocs_on("n1", "n3", "n1")
    move = choose_move(job(), allocs, NODES, max_skew=1)
    assert move is not None
    assert (move.from_name, move.alloc_id, move.toward) == ("pi1", allocs[2].id, ("pi2",))
    assert move.counts == {"pi1": 2, "pi2": 0, "pi3": 1}
    assert move.moves_needed == 1


def test_balanced_or_tolerated_skew_gives_no_move() -> None:
    assert choose_move(job(), allocs_on("n1", "n2", "n3"), NODES, max_skew=1) is None
    assert choose_move(job(count=2), allocs_on("n1", "n2"), NODES, max_skew=1) is None
    assert choose_move(job(), allocs_on("n1", "n1", "n3"), NODES, max_skew=2) is None


def test_unschedulable_nodes_are_not_targets() -> None:
    nodes = [NODES[0], NodeView(id="n2", name="pi2", status="ready", eligible=False), NODES[2]]
    assert choose_move(job(), allocs_on("n1", "n1", "n3"), nodes, max_skew=1) is None
    draining = [NODES[0], NodeView(id="n2", name="pi2", status="ready", draining=True), NODES[2]]
    assert choose_move(job(), allocs_on("n1", "n1", "n3"), draining, max_skew=1) is None


def test_spread_block_not_met() -> None:
    spreads = [{"Attribute": "${attr.platform.rack}", "Weight": 100,
                "SpreadTarget": [{"Value": "r1", "Percent": 50}, {"Value": "r2", "Percent": 50}]}]  # fmt: skip
    allocs = allocs_on("n1", "n2", "n1", "n2")  # all four on rack r1
    move = choose_move(job(count=4, spreads=spreads), allocs, NODES, max_skew=1)
    assert move is not None
    assert "spread on ${attr.platform.rack}" in move.reason
    assert move.toward == ("pi3",)


def test_spread_values() -> None:
    node = NodeView(id="abc", name="pi1", status="ready", datacenter="dc1", meta={"zone": "a"},
                    attributes={"cpu.arch": "arm64"})  # fmt: skip
    assert spread_value("${node.unique.name}", node) == "pi1"
    assert spread_value("${node.datacenter}", node) == "dc1"
    assert spread_value("${attr.cpu.arch}", node) == "arm64"
    assert spread_value("${meta.zone}", node) == "a"
    assert spread_value("${meta.missing}", node) is None
    assert spread_value("${something.else}", node) is None


def decide(tracker: RebalanceTracker, the_job: JobView, allocs: list[AllocView], *, now: float,
           deployments: list[DeploymentView] | None = None, policy: NodePolicy = POLICY) -> Any:
    return tracker.decide(the_job, allocs, NODES, deployments or [], now=now, policy=policy)


def test_not_armed_means_nothing_happens() -> None:
    assert decide(RebalanceTracker(), job(), allocs_on("n1", "n1", "n3"), now=0.0).kind == DECISION_IDLE


@pytest.mark.parametrize(
    ("the_job", "fragment"),
    [
        (job(job_type="system"), "a system job is never rebalanced"),
        (job(job_type="batch"), "a batch job is never rebalanced"),
        (job(meta={"nomad-operator.rebalance": "false"}), "opted out"),
        (job(meta={"nomad-operator.rebalance": " FALSE "}), "opted out"),
    ],
)
def test_never_system_batch_or_opted_out_jobs(the_job: JobView, fragment: str) -> None:
    tracker = RebalanceTracker()
    tracker.arm([the_job.ref], at=0.0)
    decision = decide(tracker, the_job, allocs_on("n1", "n1", "n3"), now=1.0)
    assert decision.kind == DECISION_SKIP
    assert fragment in decision.message
    assert tracker.armed() == []


def test_disabled_by_policy() -> None:
    tracker = RebalanceTracker()
    tracker.arm([job().ref], at=0.0)
    decision = decide(tracker, job(), allocs_on("n1", "n1", "n3"), now=1.0, policy=NodePolicy(rebalance=False))
    assert decision.kind == DECISION_SKIP


def test_waits_while_unhealthy_or_deploying() -> None:
    tracker = RebalanceTracker()
    tracker.arm([job().ref], at=0.0)
    pending = allocs_on("n1", "n1") + allocs_on("n3", status="pending")
    assert decide(tracker, job(), pending, now=1.0).kind == DECISION_WAIT
    assert decide(tracker, job(), allocs_on("n1", "n1"), now=1.0).kind == DECISION_WAIT  # 2/3 running
    deploying = [DeploymentView("d1", JobRef("default", "web"), "running")]
    decision = decide(tracker, job(), allocs_on("n1", "n1", "n3"), now=1.0, deployments=deploying)
    assert decision.kind == DECISION_WAIT
    assert "deployment" in decision.message
    done = [DeploymentView("d1", JobRef("default", "web"), "successful")]
    assert decide(tracker, job(), allocs_on("n1", "n1", "n3"), now=1.0, deployments=done).kind == DECISION_MOVE


def test_one_disruption_at_a_time_then_cooldown_then_balanced() -> None:
    tracker = RebalanceTracker()
    tracker.arm([job().ref], at=0.0)
    allocs = allocs_on("n1", "n1", "n1")  # needs two moves
    first = decide(tracker, job(), allocs, now=1.0)
    assert first.kind == DECISION_MOVE
    assert first.move.moves_needed == 2
    tracker.record_stop(first.move, at=1.0)
    # The stop is not applied yet: the allocation still runs.
    assert decide(tracker, job(), allocs, now=1.5).kind == DECISION_WAIT
    stopped = [a if a.id != first.move.alloc_id else AllocView(**{**_fields(a), "desired_status": "stop",
               "client_status": "complete"}) for a in allocs]  # fmt: skip
    replacement = allocs_on("n2", status="pending")
    assert "replacement" in decide(tracker, job(), stopped + replacement, now=2.0).message
    healthy = [*stopped, AllocView(**{**_fields(replacement[0]), "client_status": "running"})]
    cooling = decide(tracker, job(), healthy, now=3.0)
    assert cooling.kind == DECISION_WAIT
    assert cooling.retry_after == pytest.approx(5.0)
    second = decide(tracker, job(), healthy, now=8.0)
    assert second.kind == DECISION_MOVE
    assert second.move.moves_needed == 1
    assert second.move.toward == ("pi3",)
    assert tracker.stops == 1
    tracker.record_stop(second.move, at=8.0)
    final = [a for a in healthy if a.id != second.move.alloc_id] + allocs_on("n3")
    assert decide(tracker, job(), final, now=20.0).kind == DECISION_BALANCED
    assert tracker.armed() == []
    assert tracker.stops == 2


def _fields(alloc: AllocView) -> dict[str, Any]:
    return {name: getattr(alloc, name) for name in AllocView.__slots__}


def test_a_stop_that_did_not_help_disarms() -> None:
    tracker = RebalanceTracker()
    tracker.arm([job().ref], at=0.0)
    allocs = allocs_on("n1", "n1", "n3")
    move = decide(tracker, job(), allocs, now=1.0).move
    tracker.record_stop(move, at=1.0)
    # Nomad put the replacement back on pi1.
    after = [a for a in allocs if a.id != move.alloc_id] + allocs_on("n1")
    decision = decide(tracker, job(), after, now=2.0)
    assert decision.kind == DECISION_SKIP
    assert "did not even out" in decision.message
    assert tracker.armed() == []


def test_dry_run_reports_once_and_stops_nothing() -> None:
    tracker = RebalanceTracker()
    tracker.arm([job().ref], at=0.0)
    decision = decide(tracker, job(), allocs_on("n1", "n1", "n3"), now=1.0, policy=NodePolicy(rebalance_dry_run=True))
    assert decision.kind == DECISION_DRY_RUN
    assert decision.message.startswith("dry run, would stop")
    assert tracker.armed() == []
    assert tracker.stops == 0


def test_window_expiry_disarms() -> None:
    tracker = RebalanceTracker()
    tracker.arm([job().ref], at=0.0)
    policy = NodePolicy(rebalance_window=10.0)
    assert decide(tracker, job(), allocs_on("n1", "n1"), now=11.0, policy=policy).kind == DECISION_SKIP


NODE_IDS = st.sampled_from(["n1", "n2", "n3"])


@settings(max_examples=200, deadline=None)
@given(
    placements=st.lists(NODE_IDS, min_size=1, max_size=9),
    job_type=st.sampled_from(["service", "system", "batch", "sysbatch"]),
    opted_out=st.booleans(),
    eligible=st.lists(st.booleans(), min_size=3, max_size=3),
)
def test_property_choice_never_increases_skew_nor_targets_protected_jobs(
    placements: list[str], job_type: str, opted_out: bool, eligible: list[bool]
) -> None:
    nodes = [NodeView(id=f"n{i}", name=f"pi{i}", status="ready", eligible=eligible[i - 1]) for i in (1, 2, 3)]
    the_job = job(job_type=job_type, count=len(placements),
                  meta={"nomad-operator.rebalance": "false"} if opted_out else None)  # fmt: skip
    allocs = allocs_on(*placements)
    tracker = RebalanceTracker()
    tracker.arm([the_job.ref], at=0.0)
    decision = tracker.decide(the_job, allocs, nodes, [], now=1.0, policy=POLICY)
    if job_type != "service" or opted_out:
        assert decision.move is None
        assert decision.kind == DECISION_SKIP
        return
    move = decision.move
    schedulable = [n for n in nodes if n.schedulable]
    counts = {n.name: sum(1 for a in allocs if a.node_id == n.id) for n in schedulable}
    if move is None:
        assert len(schedulable) < 2 or skew(counts.values()) <= 1
        return
    assert counts[move.from_name] == max(counts.values())  # always the busiest node
    for target in move.toward:
        after = dict(counts)
        after[move.from_name] -= 1
        after[target] += 1
        assert skew(after.values()) < skew(counts.values())
        assert minimum_moves(list(after.values())) == minimum_moves(list(counts.values())) - 1
