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
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _cli(*args: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nomad_operator", *args], capture_output=True, text=True,
                          timeout=timeout, check=False)  # fmt: skip


def _request(address: str, path: str, *, method: str = "GET", body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(address + path, data=data, method=method)
    with urllib.request.urlopen(request, timeout=5) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


def _wait_for(check: Callable[[], Any], what: str, *, deadline_s: float = DEADLINE_S) -> Any:
    deadline = time.monotonic() + deadline_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (OSError, KeyError, ValueError):
            last = None
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


@pytest.fixture
def cluster() -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "nomad_operator", "sim", "--nodes", "3", "--arch", "arm64", "--listen",
         f"127.0.0.1:{port}", "--heartbeat-ttl", TTL, "--heartbeat-grace", GRACE, "--deployment-time-scale",
         DEPLOYMENT_TIME_SCALE],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    address = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lambda: all(n["Status"] == "ready" for n in _request(address, "/v1/nodes")), "three ready nodes")
        yield address
    finally:
        process.terminate()
        try:
            process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def repository(tmp_path: Path, project_root: Path) -> Path:
    repo = tmp_path / "cluster"
    shutil.copytree(project_root / "jobs", repo / "jobs")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "-c", "user.name=test", "-c", "user.email=test@example.org", "add", "-A")
    _git(repo, "-c", "user.name=test", "-c", "user.email=test@example.org", "commit", "-q", "-m", "cluster jobs")
    return repo


class Replica:
    """One `nomad-operator run` process and the address of its HTTP server."""

    def __init__(self, process: subprocess.Popen[str], address: str) -> None:
        self.process = process
        self.address = address


@pytest.fixture
def operators(cluster: str, repository: Path) -> Iterator[list[Replica]]:
    policy = {"apiVersion": "nomad-operator.io/v1alpha1", "kind": "NodePolicy",
              "metadata": {"name": "default", "namespace": "default"}, "spec": POLICY}  # fmt: skip
    _request(cluster, f"/v1/var/{POLICY_PATH}", method="PUT",
             body={"Path": POLICY_PATH, "Items": {"resource": json.dumps(policy)}})  # fmt: skip
    replicas = []
    for _ in range(2):
        listen = f"127.0.0.1:{_free_port()}"
        env = {"PATH": "/usr/bin:/bin", "NOMAD_ADDR": cluster, "NOMAD_OPERATOR_REPO": repository.as_uri(),
               "NOMAD_OPERATOR_REF": "main", "NOMAD_OPERATOR_PATH": "jobs/*.nomad",
               "NOMAD_OPERATOR_LISTEN": listen}  # fmt: skip
        process = subprocess.Popen(
            [sys.executable, "-m", "nomad_operator", "run", "--repo", repository.as_uri()],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        replicas.append(Replica(process, f"http://{listen}"))
    try:
        _wait_for(lambda: _status(cluster), "the node controller's status", deadline_s=NODE_CONTROLLER_WAIT_S)
        yield replicas
    finally:
        for replica in replicas:
            replica.process.terminate()
        for replica in replicas:
            try:
                replica.process.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                replica.process.kill()
                replica.process.communicate()


def _leader_jobs(replicas: list[Replica]) -> dict[str, dict[str, Any]]:
    """The per-job GitSource status of the replica that leads (empty while none says it leads)."""
    for replica in replicas:
        documents = _request(replica.address, "/status")
        for document in documents.values():
            if document.get("replica", {}).get("leader"):
                return {job["id"]: job for job in document.get("jobs") or []}
    return {}


def _node_names(address: str) -> dict[str, str]:
    return {node["ID"]: node["Name"] for node in _request(address, "/v1/nodes")}


def _placements(address: str, job: str) -> list[str]:
    names = _node_names(address)
    allocs = _request(address, f"/v1/job/{job}/allocations")
    return sorted(names[a["NodeID"]] for a in allocs
                  if a["DesiredStatus"] == "run" and a["ClientStatus"] == "running")  # fmt: skip


def _all_spread(address: str) -> bool:
    return all(_placements(address, job) == ["pi1", "pi2", "pi3"] for job in JOBS)


def _status(address: str) -> dict[str, Any]:
    variable = _request(address, f"/v1/var/{STATUS_PATH}")
    result: dict[str, Any] = json.loads(variable["Items"]["status"])
    return result


def _routable_whoami(address: str) -> int:
    """Registered whoami instances carrying a fabio route tag."""
    registrations = _request(address, "/v1/service/whoami")
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


def _gitops_degraded(replicas: list[Replica]) -> dict[str, dict[str, Any]] | None:
    jobs = _leader_jobs(replicas)
    if all(job in jobs and jobs[job]["health"] == "Degraded" and "(node pi2 down)" in jobs[job]["message"]
           for job in JOBS):  # fmt: skip
        return jobs
    return None


def test_unplug_a_node_and_the_cluster_heals(cluster: str, operators: list[Replica]) -> None:
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
    cluster: str, repository: Path, operators: list[Replica]
) -> None:
    _wait_for(lambda: _all_spread(cluster), "the first sync")
    whoami = repository / "jobs" / "whoami.nomad"
    text = whoami.read_text()
    constraint = '    constraint {\n      operator = "distinct_hosts"\n      value    = "true"\n    }\n'
    assert constraint in text
    whoami.write_text(text.replace(constraint, ""))
    _git(repository, "-c", "user.name=test", "-c", "user.email=test@example.org", "commit", "-qam", "no distinct")

    def no_distinct_live() -> bool:
        job = _request(cluster, "/v1/job/whoami")
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
        allocs = _request(cluster, "/v1/job/whoami/allocations")
        stopping = [a for a in allocs if a["DesiredStatus"] == "stop" and a["ClientStatus"] == "running"]
        most_stopping = max(most_stopping, len(stopping))
        return _placements(cluster, "whoami") == ["pi1", "pi2", "pi3"]

    _wait_for(rebalanced, "whoami one per node again")
    assert most_stopping <= 1
    assert _wait_for(lambda: _status(cluster)["rebalanceStops"], "the stop reported") == 1


def test_flapping_node_is_held_then_released(cluster: str, operators: list[Replica]) -> None:
    _wait_for(lambda: _all_spread(cluster), "the first sync")

    def node(name: str) -> dict[str, Any]:
        return next(n for n in _request(cluster, "/v1/nodes") if n["Name"] == name)

    for _ in range(5):
        assert _cli("sim", "unplug", "pi3", "--address", cluster).returncode == 0
        _wait_for(lambda: node("pi3")["Status"] == "down", "pi3 down")
        assert _cli("sim", "plug", "pi3", "--address", cluster).returncode == 0
        _wait_for(lambda: node("pi3")["Status"] == "ready", "pi3 ready")
    _wait_for(lambda: [h["node"] for h in _status(cluster)["heldNodes"]] == ["pi3"], "pi3 held by flap damping")
    assert node("pi3")["SchedulingEligibility"] == "ineligible"
    assert [n["Name"] for n in _request(cluster, "/v1/nodes") if n["SchedulingEligibility"] == "ineligible"] == ["pi3"]
    _wait_for(lambda: node("pi3")["SchedulingEligibility"] == "eligible", "pi3 released once stable")
    assert _status(cluster)["heldNodes"] == []
