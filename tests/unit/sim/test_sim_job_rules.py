"""Pure job rules: status, summary, spec changes, canonical defaults, validation, the wire-shape helpers."""

from __future__ import annotations

from typing import Any

import pytest

from nomad_operator.sim.canonical import canonicalize_job
from nomad_operator.sim.encoding import blank, drop_empty, dumps, fill, keys_of
from nomad_operator.sim.errors import ApiError
from nomad_operator.sim.job_rules import job_status, job_summary, spec_changed, validate_job


def _job(**extra: Any) -> dict[str, Any]:
    job = {"ID": "j", "Namespace": "default", "Type": "service", "Stop": False,
           "TaskGroups": [{"Name": "g", "Count": 1, "Tasks": [{"Name": "t", "Driver": "exec"}]}]}
    job.update(extra)
    return job


@pytest.mark.parametrize(("job", "allocs", "evals", "deployments", "expected"), [
    (_job(), [], [], [], "pending"),
    (_job(), [], [{"Status": "pending"}], [], "pending"),
    (_job(), [{"DesiredStatus": "run", "ClientStatus": "pending"}], [{"Status": "complete"}], [], "running"),
    (_job(), [{"DesiredStatus": "stop", "ClientStatus": "complete"}], [{"Status": "complete"}], [], "dead"),
    (_job(), [], [{"Status": "complete"}], [{"Status": "running"}], "running"),
    (_job(Stop=True), [], [], [], "dead"),
    (_job(Type="system"), [], [], [], "running"),
    (_job(Type="system", Stop=True), [{"DesiredStatus": "run", "ClientStatus": "running"}], [], [], "dead"),
    (_job(Periodic={"Enabled": True, "Spec": "@daily"}), [], [], [], "running"),
])
def test_job_status(job: dict[str, Any], allocs: list[Any], evals: list[Any], deployments: list[Any],
                    expected: str) -> None:
    assert job_status(job, allocs, evals, deployments) == expected


def test_job_summary_counts_by_client_status() -> None:
    allocs = [{"TaskGroup": "g", "ClientStatus": status} for status in ("running", "running", "pending", "lost")]
    summary = job_summary(_job(), allocs, queued={"g": 1})
    assert summary["Summary"]["g"] == {"Complete": 0, "Failed": 0, "Lost": 1, "Queued": 1, "Running": 2,
                                       "Starting": 1, "Unknown": 0}


def test_spec_changed_ignores_server_fields() -> None:
    stored = canonicalize_job(_job(Version=3, ModifyIndex=10, Status="running", SubmitTime=5), region="global")
    resubmitted = canonicalize_job(_job(), region="global")
    assert not spec_changed(stored, resubmitted)
    assert spec_changed(stored, dict(resubmitted, Meta={"a": "b"}))


def test_canonical_defaults_per_type() -> None:
    batch = canonicalize_job(_job(Type="batch", Datacenters=[]), region="eu")
    assert batch["Region"] == "eu"
    assert batch["Datacenters"] == ["*"]
    assert batch["Priority"] == 50
    group = batch["TaskGroups"][0]
    assert group["ReschedulePolicy"]["Attempts"] == 1
    assert group["RestartPolicy"]["Attempts"] == 3
    assert group.get("Update") is None
    system = canonicalize_job(_job(Type="system"), region="global")
    assert system["TaskGroups"][0].get("ReschedulePolicy") is None
    service = canonicalize_job(_job(Update={"MaxParallel": 2}), region="global")
    assert service["TaskGroups"][0]["Update"]["MaxParallel"] == 2
    assert service["TaskGroups"][0]["Update"]["MinHealthyTime"] == 10_000_000_000
    original = _job()
    canonicalize_job(original, region="global")
    assert "Region" not in original  # the input is not changed


@pytest.mark.parametrize(("job", "status", "text"), [
    (_job(Type="weird"), 500, 'Invalid job type: "weird"'),
    (_job(TaskGroups=[]), 500, "Missing job task groups"),
    (_job(TaskGroups=[{"Name": "g", "Tasks": []}]), 500, "Missing tasks for task group"),
    (_job(TaskGroups=[{"Name": "g", "Tasks": [{"Name": "t"}]}]), 500, "Missing task driver"),
    (_job(Type="system", TaskGroups=[{"Name": "g", "Scaling": {"Max": 3}, "Tasks": [{"Name": "t", "Driver": "x"}]}]),
     400, "do not support scaling blocks"),
])
def test_validation_errors(job: dict[str, Any], status: int, text: str) -> None:
    with pytest.raises(ApiError) as raised:
        validate_job(job)
    assert raised.value.status == status
    assert text in raised.value.message


def test_wire_shapes() -> None:
    node = blank("Node")
    assert "SecretID" in node
    assert "Drain" in node
    assert node["Events"] is None
    filled = fill("Job", {"ID": "x", "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t"}]}]})
    assert filled is not None
    assert set(keys_of("Job")) <= set(filled)
    assert set(keys_of("TaskGroup")) <= set(filled["TaskGroups"][0])
    assert set(keys_of("Task")) <= set(filled["TaskGroups"][0]["Tasks"][0])
    assert drop_empty({"a": 0, "b": "", "c": None, "d": [], "e": {}, "f": False, "g": 1, "h": True}) == {"g": 1,
                                                                                                    "h": True}
    assert dumps({"b": 1, "a": {"d": 1, "c": 2}}) == b'{"a":{"c":2,"d":1},"b":1}'
