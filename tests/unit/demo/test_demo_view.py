"""The demo's pure display logic: snapshots from Nomad's wire objects and the operator's status, change lines,
readiness, and the choice of ports."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from nomad_operator.demo_observer import leader_from_metrics
from nomad_operator.demo_processes import PortBusy, choose_ports
from nomad_operator.demo_view import DemoSnapshot, ReplicaReading, build_snapshot, describe_changes, is_ready

NODES = [{"ID": f"n{i}", "Name": f"pi{i}", "Status": "ready", "SchedulingEligibility": "eligible"} for i in (1, 2, 3)]


def _job(job_id: str, count: int = 3, version: int = 0) -> dict[str, Any]:
    return {"ID": job_id, "Type": "service", "Version": version, "JobModifyIndex": 10,
            "TaskGroups": [{"Name": job_id, "Count": count}]}  # fmt: skip


def _alloc(job_id: str, node: str, status: str = "running") -> dict[str, Any]:
    return {"JobID": job_id, "NodeID": node, "DesiredStatus": "run", "ClientStatus": status}


def _status(sync: str = "Synced", applied: str = "a" * 40, fetched: str = "a" * 40) -> dict[str, Any]:
    return {"default/demo": {
        "phase": "Synced", "conditions": [{"type": "Ready", "reason": "ReconciliationSucceeded", "message": "ok"}],
        "lastFetchedRevision": fetched, "lastAppliedRevision": applied, "history": [{"result": "Applied"}],
        "jobs": [{"id": "whoami", "sync": sync, "message": "in sync"}], "fileErrors": {},
    }}  # fmt: skip


def _snapshot(*, allocs: list[dict[str, Any]], nodes: list[dict[str, Any]] = NODES, evaluations: Any = (),
              status: dict[str, Any] | None = None, leader: bool | None = True) -> DemoSnapshot:
    return build_snapshot(nodes=nodes, jobs={"whoami": _job("whoami")}, allocations=allocs,
                          evaluations=list(evaluations), deployments=[],
                          replicas=[ReplicaReading("replica-1", "http://x", _status() if status is None else status,
                                                   leader)])  # fmt: skip


HEALTHY = [_alloc("whoami", f"n{i}") for i in (1, 2, 3)]


def test_ready_when_synced_and_healthy() -> None:
    snapshot = _snapshot(allocs=HEALTHY)
    job = snapshot.job("whoami")
    assert job is not None
    assert (job.sync, job.health, job.nodes) == ("Synced", "Healthy", ("pi1", "pi2", "pi3"))
    assert is_ready(snapshot)


@pytest.mark.parametrize("case", ["no leader", "not applied", "out of sync", "one down"])
def test_not_ready(case: str) -> None:
    allocs = HEALTHY[:2] if case == "one down" else HEALTHY
    status = {"not applied": _status(fetched="b" * 40), "out of sync": _status(sync="OutOfSync")}.get(case)
    snapshot = _snapshot(allocs=allocs, status=status, leader=None if case == "no leader" else True)
    assert not is_ready(snapshot)


def test_unplugged_node_shows_down_and_the_blocked_reason() -> None:
    before = _snapshot(allocs=HEALTHY)
    down = [dict(n, Status="down") if n["Name"] == "pi2" else n for n in NODES]
    lost = [HEALTHY[0], dict(HEALTHY[1], ClientStatus="lost", DesiredStatus="stop"), HEALTHY[2]]
    blocked = {"JobID": "whoami", "CreateIndex": 20, "Status": "blocked",
               "FailedTGAllocs": {"whoami": {"ConstraintFiltered": {"distinct_hosts": 2}, "NodesEvaluated": 2}}}
    after = _snapshot(allocs=lost, nodes=down, evaluations=[blocked])
    lines = describe_changes(before, after)
    assert "node pi2: ready -> down" in lines
    assert "job whoami: Degraded (2/3 running; 1 placement blocked: distinct_hosts)" in lines
    assert not is_ready(after)
    assert describe_changes(after, after) == []


def test_new_version_and_leader_change_are_reported() -> None:
    before = _snapshot(allocs=HEALTHY)
    after = build_snapshot(nodes=NODES, jobs={"whoami": _job("whoami", version=1)}, allocations=HEALTHY,
                           evaluations=[], deployments=[],
                           replicas=[ReplicaReading("replica-1", "http://x", _status(), False),
                                     ReplicaReading("replica-2", "http://y", None, True)])  # fmt: skip
    lines = describe_changes(before, after)
    assert "job whoami: version 0 -> 1" in lines
    assert "operator replica-1: standby" in lines
    assert "operator replica-2: unreachable" in lines


def test_leader_from_metrics() -> None:
    assert leader_from_metrics("# HELP x\nnomad_operator_is_leader 1.0\n") is True
    assert leader_from_metrics("nomad_operator_is_leader 0.0\n") is False
    assert leader_from_metrics("nomad_operator_is_leader_total 1.0\n") is None


def test_busy_port_given_explicitly_is_refused_and_port_zero_picks_distinct_free_ports() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(PortBusy, match=f"port {port}"):
            choose_ports(sim_port=port, operator_port=None, replicas=1)
        endpoints = choose_ports(sim_port=0, operator_port=0, replicas=2)
    assert len(set((endpoints.sim_port, *endpoints.operator_ports))) == 3
