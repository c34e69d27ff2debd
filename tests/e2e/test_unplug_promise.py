"""The promise, end to end and as processes: unplug any node and everything still works; plug it back and the cluster
heals with nobody touching it.

A `nomad-operator sim` process is the cluster (pi1..pi3, arm64, short heartbeat TTL and grace); two `nomad-operator
run` processes reconcile the project's real `jobs/` from a local git repository, as `jobs/nomad-operator.nomad` runs
two replicas. The test breaks the cluster only from outside (`nomad-operator sim unplug/plug`, git commits) and
observes it only through Nomad's API: allocations, services, node eligibility, and the node controller's status
Variable `nomad-operator/status/nodes`, and through the operators' own `/status` (the GitSource status), where each
job's health must name the node that is down and what blocks the lost capacity. Deployments run at a fiftieth of
Nomad's timings, so the project's waves (consul, fabio, whoami) take about a second instead of a minute.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_processes import RunProcess, RunProcesses, cli, git, request_json, simulator_process, wait_for

DEADLINE_S = 60.0
NODE_CONTROLLER_WAIT_S = 30.0
TTL, GRACE = "300ms", "300ms"
DEPLOYMENT_TIME_SCALE = "0.02"
STATUS_PATH = "nomad-operator/status/nodes"
POLICY_PATH = "nomad-operator/resources/nodepolicy/default/default"
JOBS = ("consul", "fabio", "whoami")
# Short policy durations: five downs within a minute hold a node; two seconds of stability release it.
POLICY = {"flapDamping": {"threshold": 5, "window": "1m", "stableFor": "2s"},
          "rebalance": {"cooldown": "0s"}}  # fmt: skip


def _cli(*args: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    return cli(*args, timeout=timeout)


def _wait_for(check: Callable[[], Any], what: str, *, deadline_s: float = DEADLINE_S) -> Any:
    return wait_for(check, what, deadline_s=deadline_s, interval_s=0.1, ignore=(OSError, KeyError, ValueError))


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[str]:
    flags = ("--nodes", "3", "--arch", "arm64", "--heartbeat-ttl", TTL, "--heartbeat-grace", GRACE,
             "--deployment-time-scale", DEPLOYMENT_TIME_SCALE)  # fmt: skip
    with simulator_process(*flags, log=tmp_path / "sim.log") as address:
        _wait_for(lambda: all(n["Status"] == "ready" for n in request_json(address, "/v1/nodes")), "three ready nodes")
        yield address


@pytest.fixture
def operators(cluster: str, jobs_repository: Path, tmp_path: Path) -> Iterator[list[RunProcess]]:
    policy = {"apiVersion": "nomad-operator.io/v1alpha1", "kind": "NodePolicy",
              "metadata": {"name": "default", "namespace": "default"}, "spec": POLICY}  # fmt: skip
    request_json(cluster, f"/v1/var/{POLICY_PATH}", method="PUT",
             body={"Path": POLICY_PATH, "Items": {"resource": json.dumps(policy)}})  # fmt: skip
    replicas = RunProcesses(cluster, tmp_path)
    try:
        for _ in range(2):
            settings = {"NOMAD_OPERATOR_REPO": jobs_repository.as_uri(), "NOMAD_OPERATOR_REF": "main",
                        "NOMAD_OPERATOR_PATH": "jobs/*.nomad"}  # fmt: skip
            replicas.start(settings=settings, args=("--repo", jobs_repository.as_uri()),
                           base_env={"PATH": "/usr/bin:/bin"})  # fmt: skip
        _wait_for(lambda: _status(cluster), "the node controller's status", deadline_s=NODE_CONTROLLER_WAIT_S)
        yield replicas.started
    finally:
        replicas.stop_all()


def _leader_jobs(replicas: list[RunProcess]) -> dict[str, dict[str, Any]]:
    """The per-job GitSource status of the replica that leads (empty while none says it leads)."""
    for replica in replicas:
        documents = request_json(replica.address, "/status")
        for document in documents.values():
            if document.get("replica", {}).get("leader"):
                return {job["id"]: job for job in document.get("jobs") or []}
    return {}


def _node_names(address: str) -> dict[str, str]:
    return {node["ID"]: node["Name"] for node in request_json(address, "/v1/nodes")}


def _placements(address: str, job: str) -> list[str]:
    names = _node_names(address)
    allocs = request_json(address, f"/v1/job/{job}/allocations")
    return sorted(names[a["NodeID"]] for a in allocs
                  if a["DesiredStatus"] == "run" and a["ClientStatus"] == "running")  # fmt: skip


def _all_spread(address: str) -> bool:
    return all(_placements(address, job) == ["pi1", "pi2", "pi3"] for job in JOBS)


def _status(address: str) -> dict[str, Any]:
    variable = request_json(address, f"/v1/var/{STATUS_PATH}")
    result: dict[str, Any] = json.loads(variable["Items"]["status"])
    return result


def _routable_whoami(address: str) -> int:
    """Registered whoami instances carrying a fabio route tag."""
    registrations = request_json(address, "/v1/service/whoami")
    return sum(1 for r in registrations if any(tag.startswith("urlprefix-") for tag in r.get("Tags") or []))


def _degraded(address: str) -> dict[str, dict[str, Any]] | None:
    status = _status(address)
    if [incident["node"] for incident in status["openIncidents"]] != ["pi2"]:
        return None
    jobs = {entry["job"]: entry for entry in status["jobs"]}
    if all(job in jobs and (jobs[job]["running"], jobs[job]["desired"]) == (2, 3) and jobs[job]["reason"]
           for job in JOBS):  # fmt: skip
        return jobs
    return None


def _gitops_degraded(replicas: list[RunProcess]) -> dict[str, dict[str, Any]] | None:
    jobs = _leader_jobs(replicas)
    if all(job in jobs and jobs[job]["health"] == "Degraded" and "(node pi2 down)" in jobs[job]["message"]
           for job in JOBS):  # fmt: skip
        return jobs
    return None


def test_unplug_a_node_and_the_cluster_heals(cluster: str, operators: list[RunProcess]) -> None:
    _wait_for(lambda: _all_spread(cluster), "consul, fabio and whoami 3/3 on distinct nodes")
    assert _wait_for(lambda: _routable_whoami(cluster) == 3, "three routable whoami instances")
    _wait_for(lambda: all(_leader_jobs(operators).get(job, {}).get("health") == "Healthy" for job in JOBS),
              "the GitSource status to show every job healthy")  # fmt: skip

    assert _cli("sim", "unplug", "pi2", "--address", cluster).returncode == 0
    jobs = _wait_for(lambda: _degraded(cluster), "the operator to report pi2 down and each job degraded 2/3")
    for job in JOBS:
        assert jobs[job]["reason"] == "distinct_hosts", jobs[job]
        assert "pi2" in jobs[job]["message"]
    assert _routable_whoami(cluster) == 2
    reported = _wait_for(lambda: _gitops_degraded(operators), "each job Degraded in the GitSource status, naming pi2")
    for job in JOBS:
        assert reported[job]["message"].startswith("2/3 running (node pi2 down)"), reported[job]
        assert "distinct_hosts" in reported[job]["message"], reported[job]

    assert _cli("sim", "plug", "pi2", "--address", cluster).returncode == 0
    _wait_for(lambda: _all_spread(cluster), "every job back to 3/3 with no action")
    _wait_for(lambda: _status(cluster)["openIncidents"] == [], "the incident closed")
    assert _status(cluster)["rebalanceStops"] == 0
    _wait_for(lambda: all(_leader_jobs(operators).get(job, {}).get("health") == "Healthy" for job in JOBS),
              "every job Healthy again in the GitSource status")  # fmt: skip


def test_rebalance_after_return_without_distinct_hosts(
    cluster: str, jobs_repository: Path, operators: list[RunProcess]
) -> None:
    _wait_for(lambda: _all_spread(cluster), "the first sync")
    whoami = jobs_repository / "jobs" / "whoami.nomad"
    text = whoami.read_text()
    constraint = '    constraint {\n      operator = "distinct_hosts"\n      value    = "true"\n    }\n'
    assert constraint in text
    whoami.write_text(text.replace(constraint, ""))
    git(jobs_repository, "-c", "user.name=test", "-c", "user.email=test@example.org", "commit", "-qam", "no distinct")

    def no_distinct_live() -> bool:
        job = request_json(cluster, "/v1/job/whoami")
        return not any(c.get("Operand") == "distinct_hosts" for g in job["TaskGroups"] for c in g.get("Constraints")
                       or []) and len(_placements(cluster, "whoami")) == 3  # fmt: skip

    _wait_for(no_distinct_live, "whoami without distinct_hosts synced")
    assert _cli("sim", "unplug", "pi2", "--address", cluster).returncode == 0
    _wait_for(lambda: len(_placements(cluster, "whoami")) == 3 and "pi2" not in _placements(cluster, "whoami"),
              "three whoami instances on two nodes")  # fmt: skip
    assert _cli("sim", "plug", "pi2", "--address", cluster).returncode == 0
    most_stopping = 0

    def rebalanced() -> bool:
        nonlocal most_stopping
        allocs = request_json(cluster, "/v1/job/whoami/allocations")
        stopping = [a for a in allocs if a["DesiredStatus"] == "stop" and a["ClientStatus"] == "running"]
        most_stopping = max(most_stopping, len(stopping))
        return _placements(cluster, "whoami") == ["pi1", "pi2", "pi3"]

    _wait_for(rebalanced, "whoami one per node again")
    assert most_stopping <= 1
    assert _wait_for(lambda: _status(cluster)["rebalanceStops"], "the stop reported") == 1


def test_flapping_node_is_held_then_released(cluster: str, operators: list[RunProcess]) -> None:
    _wait_for(lambda: _all_spread(cluster), "the first sync")

    def node(name: str) -> dict[str, Any]:
        return next(n for n in request_json(cluster, "/v1/nodes") if n["Name"] == name)

    for _ in range(5):
        assert _cli("sim", "unplug", "pi3", "--address", cluster).returncode == 0
        _wait_for(lambda: node("pi3")["Status"] == "down", "pi3 down")
        assert _cli("sim", "plug", "pi3", "--address", cluster).returncode == 0
        _wait_for(lambda: node("pi3")["Status"] == "ready", "pi3 ready")
    _wait_for(lambda: [h["node"] for h in _status(cluster)["heldNodes"]] == ["pi3"], "pi3 held by flap damping")
    assert node("pi3")["SchedulingEligibility"] == "ineligible"
    nodes = request_json(cluster, "/v1/nodes")
    assert [n["Name"] for n in nodes if n["SchedulingEligibility"] == "ineligible"] == ["pi3"]
    _wait_for(lambda: node("pi3")["SchedulingEligibility"] == "eligible", "pi3 released once stable")
    assert _status(cluster)["heldNodes"] == []
