"""Incidents: the allocations a down node took, and per job whether the capacity was replaced, waits, or is blocked."""

from __future__ import annotations

from typing import Any

from nomad_operator.controllers.nodes.cluster_view import AllocView, EvalView, JobRef, JobView, NodeView
from nomad_operator.controllers.nodes.incidents import (
    OUTCOME_BLOCKED,
    OUTCOME_GONE,
    OUTCOME_REPLACED,
    OUTCOME_WAITING,
    IncidentBook,
    assess_group,
    job_impacts,
    lost_on_node,
)

WHOAMI = JobRef("default", "whoami")
NAMES = {"n1": "pi1", "n2": "pi2", "n3": "pi3"}
DOWN_AT_S = 1_000


def node(node_id: str = "n2", status: str = "down", updated: int = DOWN_AT_S) -> NodeView:
    return NodeView(id=node_id, name=NAMES.get(node_id, node_id), status=status, status_updated_at=updated)


def alloc(alloc_id: str, node_id: str, status: str = "running", *, desired: str = "run", job: JobRef = WHOAMI,
          group: str = "whoami", previous: str = "", changed_s: int = DOWN_AT_S + 1) -> AllocView:
    return AllocView(id=alloc_id, job=job, task_group=group, node_id=node_id, client_status=status,
                     desired_status=desired, name=f"{job.job_id}.{group}[0]", previous_allocation=previous,
                     modify_time=changed_s * 1_000_000_000)  # fmt: skip


def job(count: int = 3, *, job_type: str = "service", stopped: bool = False, ref: JobRef = WHOAMI) -> JobView:
    return JobView.from_wire({"ID": ref.job_id, "Namespace": ref.namespace, "Type": job_type, "Stop": stopped,
                              "TaskGroups": [{"Name": "whoami", "Count": count}]})  # fmt: skip


def blocked_eval(reason_key: str = "distinct_hosts", *, status: str = "blocked", index: int = 10) -> EvalView:
    failed: dict[str, Any] = {"whoami": {"ConstraintFiltered": {reason_key: 2}, "NodesEvaluated": 2}}
    return EvalView(id=f"e{index}", job=WHOAMI, status=status, modify_index=index, failed_groups=failed)


def test_lost_allocations_are_those_of_this_outage_only() -> None:
    allocs = [
        alloc("old", "n2", "lost", desired="stop", changed_s=DOWN_AT_S - 600),  # lost in an earlier outage
        alloc("now", "n2", "lost", desired="stop"),
        alloc("unseen", "n2", "running"),  # Nomad has not processed the node yet
        alloc("done", "n2", "complete", desired="stop"),
        alloc("elsewhere", "n1", "running"),
    ]
    assert [lost.alloc_id for lost in lost_on_node(node(), allocs)] == ["now", "unseen"]


def test_replaced_when_the_replacement_runs_elsewhere() -> None:
    lost = lost_on_node(node(), [alloc("a2", "n2", "lost", desired="stop")])
    allocs = [alloc("a1", "n1"), alloc("a3", "n3"), alloc("a2", "n2", "lost", desired="stop"),
              alloc("a4", "n1", previous="a2")]  # fmt: skip
    group = assess_group(job=job(3), job_ref=WHOAMI, task_group="whoami", lost=lost, allocs=allocs,
                         evaluations=[], node_names=NAMES, down_nodes=["pi2"])  # fmt: skip
    assert group.desired == group.running == 3
    assert group.outcome == OUTCOME_REPLACED
    assert group.replaced_on == ("pi1",)
    assert not group.degraded
    assert "replaced on pi1" in group.message


def test_blocked_by_distinct_hosts_with_nomads_reason() -> None:
    allocs = [alloc("a1", "n1"), alloc("a3", "n3"), alloc("a2", "n2", "lost", desired="stop")]
    lost = lost_on_node(node(), allocs)
    group = assess_group(job=job(), job_ref=WHOAMI, task_group="whoami", lost=lost, allocs=allocs,
                         evaluations=[blocked_eval()], node_names=NAMES, down_nodes=["pi2"])  # fmt: skip
    assert (group.outcome, group.reason, group.running, group.desired) == (OUTCOME_BLOCKED, "distinct_hosts", 2, 3)
    assert group.degraded
    assert group.message.startswith("2/3 placed; 1 blocked by distinct_hosts")


def test_waiting_when_no_evaluation_failed() -> None:
    allocs = [alloc("a1", "n1"), alloc("a3", "n3"), alloc("a2", "n2", "lost", desired="stop")]
    group = assess_group(job=job(), job_ref=WHOAMI, task_group="whoami", lost=lost_on_node(node(), allocs),
                         allocs=allocs, evaluations=[blocked_eval(status="complete", index=5),
                         EvalView("e9", WHOAMI, "complete", modify_index=9)], node_names=NAMES)  # fmt: skip
    assert group.outcome == OUTCOME_WAITING  # the newest complete eval placed everything it could


def test_latest_complete_evaluation_with_a_failure_blocks() -> None:
    allocs = [alloc("a1", "n1"), alloc("a2", "n2", "lost", desired="stop")]
    evaluations = [EvalView("e4", WHOAMI, "complete", modify_index=4), blocked_eval("memory", status="complete")]
    evaluations[1] = EvalView("e10", WHOAMI, "complete", modify_index=10,
                              failed_groups={"whoami": {"DimensionExhausted": {"memory": 2}, "NodesEvaluated": 2}})
    group = assess_group(job=job(), job_ref=WHOAMI, task_group="whoami", lost=lost_on_node(node(), allocs),
                         allocs=allocs, evaluations=evaluations, node_names=NAMES)  # fmt: skip
    assert (group.outcome, group.reason) == (OUTCOME_BLOCKED, "memory")


def test_stopped_job_is_gone_not_degraded() -> None:
    allocs = [alloc("a2", "n2", "lost", desired="stop")]
    group = assess_group(job=job(stopped=True), job_ref=WHOAMI, task_group="whoami", lost=lost_on_node(node(), allocs),
                         allocs=allocs, evaluations=[], node_names=NAMES)  # fmt: skip
    assert group.outcome == OUTCOME_GONE
    assert not group.degraded
    missing = assess_group(job=None, job_ref=WHOAMI, task_group="whoami", lost=[], allocs=[], evaluations=[],
                           node_names=NAMES)  # fmt: skip
    assert missing.outcome == OUTCOME_GONE


def test_system_job_waits_for_its_node() -> None:
    allocs = [alloc("s1", "n1"), alloc("s2", "n2", "lost", desired="stop")]
    group = assess_group(job=job(1, job_type="system"), job_ref=WHOAMI, task_group="whoami",
                         lost=lost_on_node(node(), allocs), allocs=allocs, evaluations=[], node_names=NAMES)
    assert (group.outcome, group.desired, group.running) == (OUTCOME_WAITING, 2, 1)


def test_job_impact_summarises_groups_with_the_worst_outcome() -> None:
    allocs = [alloc("a1", "n1"), alloc("a3", "n3"), alloc("a2", "n2", "lost", desired="stop")]
    group = assess_group(job=job(), job_ref=WHOAMI, task_group="whoami", lost=lost_on_node(node(), allocs),
                         allocs=allocs, evaluations=[blocked_eval()], node_names=NAMES, down_nodes=["pi2"])
    impact = job_impacts([group])[WHOAMI]
    assert impact.degraded
    assert impact.outcome == OUTCOME_BLOCKED
    assert impact.reason == "distinct_hosts"
    assert impact.message.startswith("2/3 running (node pi2 down): 2/3 placed; 1 blocked by distinct_hosts")


def test_book_opens_extends_and_closes_incidents() -> None:
    book = IncidentBook(history_max=2)
    first, new = book.record_down(node(), [alloc("a2", "n2", "running")], at=5.0)
    assert new
    assert first.lost_per_job() == {WHOAMI: 1}
    again, new = book.record_down(node(), [alloc("a2", "n2", "lost", desired="stop"), alloc("b", "n2")], at=6.0)
    assert not new
    assert again.started_at == 5.0
    assert len(again.lost) == 2
    assert set(book.affected()) == {(WHOAMI, "whoami")}
    closed = book.record_up("n2", at=9.0)
    assert closed is not None
    assert closed.ended_at == 9.0
    assert not closed.open
    assert book.open_incidents() == []
    assert book.affected() == {}
    assert book.record_up("n2", at=10.0) is None
    for at in (11.0, 12.0, 13.0):
        book.record_down(node(), [], at=at)
        book.record_up("n2", at=at + 0.5)
    assert [incident.started_at for incident in book.history()] == [12.0, 13.0]  # bounded


def test_book_bounds_lost_allocations() -> None:
    book = IncidentBook(max_lost=2)
    incident, _ = book.record_down(node(), [alloc(f"a{i}", "n2") for i in range(5)], at=1.0)
    assert len(incident.lost) == 2
