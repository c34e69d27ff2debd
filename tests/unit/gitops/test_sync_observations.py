"""Pure observations of the sync: plan-diff field changes, redaction, drift fingerprints, health, spec, status."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from nomad_operator.controllers.gitops.defaults import REDACTED
from nomad_operator.controllers.gitops.drift import DriftTracker, DriftVerdict, spec_fingerprint
from nomad_operator.controllers.gitops.field_changes import FieldChange, changes_from_plan_diff, scaling_groups
from nomad_operator.controllers.gitops.health import HealthState, job_health, rollup
from nomad_operator.controllers.gitops.redaction import Redactor, redact_template
from nomad_operator.controllers.gitops.source_spec import SourceSpecError, spec_from_resource
from nomad_operator.controllers.gitops.source_status import JobStatus, Phase, SourceStatus, SyncRecord, SyncState

PLAN_DIFF: dict[str, Any] = {
    "Type": "Edited",
    "Fields": [{"Type": "Edited", "Name": "Meta[nomad-operator.revision]", "Old": "a", "New": "b"},
               {"Type": "Edited", "Name": "Priority", "Old": "50", "New": "60"}],
    "TaskGroups": [{
        "Type": "Edited", "Name": "web",
        "Fields": [{"Type": "Edited", "Name": "Count", "Old": "3", "New": "1"}],
        "Tasks": [{"Type": "Edited", "Name": "web", "Fields": [
            {"Type": "Edited", "Name": "Env[DB_PASSWORD]", "Old": "hunter2", "New": "swordfish"}],
            "Objects": [{"Type": "Edited", "Name": "Config", "Fields": [
                {"Type": "Edited", "Name": "image", "Old": "web:1", "New": "web:2"}]}]}],
    }],
}  # fmt: skip


def test_plan_diff_is_flattened_without_owner_meta() -> None:
    changes = changes_from_plan_diff(PLAN_DIFF)
    paths = [change.path for change in changes]
    assert "Meta[nomad-operator.revision]" not in paths
    assert paths == ["Priority", "TaskGroups[web].Count", "TaskGroups[web].Tasks[web].Env[DB_PASSWORD]",
                     "TaskGroups[web].Tasks[web].Config.image"]  # fmt: skip
    assert str(changes[-1]) == "~ TaskGroups[web].Tasks[web].Config.image: web:1 => web:2"


def test_count_of_a_scaling_group_is_not_a_change() -> None:
    job = {"TaskGroups": [{"Name": "web", "Scaling": {"Min": 1, "Max": 5}}, {"Name": "db", "Scaling": None}]}
    assert scaling_groups(job) == frozenset({"web"})
    paths = [change.path for change in changes_from_plan_diff(PLAN_DIFF, scaling=scaling_groups(job))]
    assert "TaskGroups[web].Count" not in paths
    assert changes_from_plan_diff({"Type": "None"}) == []


def test_secret_keys_and_values_are_redacted() -> None:
    redactor = Redactor(secret_values=["s3cr3t-token-value"])
    changes = redactor.changes(changes_from_plan_diff(PLAN_DIFF))
    secret = next(c for c in changes if c.path.endswith("Env[DB_PASSWORD]"))
    assert secret.old == REDACTED
    assert secret.new == REDACTED
    image = next(c for c in changes if c.path.endswith("image"))
    assert image.new == "web:2"
    masked = redactor.change(FieldChange("Meta[note]", "Edited", "x", "uses s3cr3t-token-value here"))
    assert "s3cr3t" not in masked.new
    assert REDACTED in masked.new


def test_template_lines_with_secret_keys_lose_their_values() -> None:
    text = "PORT=8080\nAPI_TOKEN=abcdef\nexport DB_PASSWORD = 'x'\n"
    redacted = redact_template(text)
    assert "PORT=8080" in redacted
    assert "abcdef" not in redacted
    assert "'x'" not in redacted
    change = Redactor().change(FieldChange("TaskGroups[a].Tasks[b].Templates[0].EmbeddedTmpl", "Edited", "", text))
    assert "abcdef" not in change.new
    assert "PORT=8080" in change.new


def live_job(*, modify: int = 10, image: str = "a:1", count: int = 3, scaling: bool = False) -> dict[str, Any]:
    group: dict[str, Any] = {"Name": "g", "Count": count, "Scaling": {"Max": 5} if scaling else None,
                             "Tasks": [{"Name": "t", "Config": {"image": image}}]}  # fmt: skip
    return {"ID": "web", "JobModifyIndex": modify, "ModifyIndex": modify + 5, "Status": "running", "Version": 2,
            "TaskGroups": [group]}  # fmt: skip


def test_fingerprint_ignores_bookkeeping_and_autoscaled_counts() -> None:
    base = spec_fingerprint(live_job())
    assert spec_fingerprint({**live_job(), "Status": "pending", "ModifyIndex": 99}) == base
    assert spec_fingerprint(live_job(image="a:2")) != base
    assert spec_fingerprint(live_job(count=1)) != base
    assert spec_fingerprint(live_job(scaling=True, count=1)) == spec_fingerprint(live_job(scaling=True, count=4))


def test_drift_tracker_needs_a_check_until_a_baseline_exists() -> None:
    tracker = DriftTracker()
    key = ("default", "web")
    assert tracker.verdict(key, live_job(), spec_hash="h") is DriftVerdict.CHECK
    tracker.expect(key, spec_hash="h", job_modify_index=10)
    assert tracker.verdict(key, live_job(), spec_hash="h") is DriftVerdict.IN_SYNC
    assert tracker.verdict(key, live_job(modify=11), spec_hash="h") is DriftVerdict.IN_SYNC  # same spec, new index
    assert tracker.verdict(key, live_job(modify=12, image="evil"), spec_hash="h") is DriftVerdict.CHECK
    assert tracker.verdict(key, live_job(), spec_hash="other") is DriftVerdict.CHECK


JOB = {"ID": "web", "Type": "service", "Version": 1, "JobModifyIndex": 50, "TaskGroups": [{"Name": "g", "Count": 3}]}


def alloc(status: str) -> dict[str, Any]:
    return {"ClientStatus": status, "DesiredStatus": "run", "TaskGroup": "g"}


def test_health_states() -> None:
    assert job_health(None, []).state is HealthState.MISSING
    assert job_health({**JOB, "Stop": True}, []).state is HealthState.MISSING
    healthy = job_health(JOB, [alloc("running")] * 3)
    assert (healthy.state, healthy.message) == (HealthState.HEALTHY, "3/3 running")
    deploying = job_health(JOB, [alloc("running")], deployment={"JobVersion": 1, "Status": "running"})
    assert deploying.state is HealthState.PROGRESSING
    failed = job_health(JOB, [alloc("running")] * 3,
                        deployment={"JobVersion": 1, "Status": "failed", "StatusDescription": "Failed due to x"})
    assert failed.state is HealthState.DEGRADED
    assert "Failed due to x" in failed.message


def test_blocked_placement_names_its_reason() -> None:
    evaluation = {"CreateIndex": 60, "FailedTGAllocs": {"g": {
        "NodesEvaluated": 3, "ConstraintFiltered": {"distinct_hosts": 2}, "CoalescedFailures": 0}}}  # fmt: skip
    health = job_health(JOB, [alloc("running")] * 2, evaluations=[evaluation])
    assert health.state is HealthState.DEGRADED
    assert health.message == "2/3 running; 1 placement blocked: distinct_hosts"
    old = {**evaluation, "CreateIndex": 10}  # before the job's last change: not about this version
    assert "blocked" not in job_health(JOB, [alloc("running")] * 2, evaluations=[old]).message


def test_rollup_is_the_worst_state() -> None:
    assert rollup([HealthState.HEALTHY, HealthState.PROGRESSING]) is HealthState.PROGRESSING
    assert rollup([HealthState.MISSING, HealthState.DEGRADED]) is HealthState.DEGRADED
    assert rollup([]) is HealthState.HEALTHY


def test_spec_defaults_are_the_safe_ones() -> None:
    spec = spec_from_resource(name="c", namespace="default", spec={"url": "https://example.invalid/r.git"})
    assert (spec.prune, spec.adopt, spec.self_heal, spec.allowed_namespaces) == (False, False, True, ("default",))
    assert spec.interval == 60.0
    assert spec.ref == "main"
    assert spec_from_resource(name="c", namespace="default", spec={"url": "u", "interval": "5m"}).interval == 300.0


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({}, "url is required"),
        ({"url": "u", "prune": "yes"}, "prune must be true or false"),
        ({"url": "u", "interval": "soon"}, "interval"),
        ({"url": "u", "pruneMaxShare": 2}, "pruneMaxShare"),
        ({"url": "u", "paths": ["/abs/*.nomad"]}, "absolute"),
        ({"url": "u", "frobnicate": True}, "unknown field 'frobnicate'"),
        ({"url": "u", "webhookSecret": {"file": "a", "variable": "b"}}, "exactly one"),
    ],
)
def test_bad_specs_name_the_problem(spec: dict[str, Any], problem: str) -> None:
    with pytest.raises(SourceSpecError, match=problem):
        spec_from_resource(name="c", namespace="default", spec=spec)


def test_status_document_keeps_transition_times_and_bounds_history() -> None:
    status = SourceStatus(phase=Phase.SYNCED, reason="ReconciliationSucceeded", message="ok")
    status.jobs[("default", "web")] = JobStatus(("default", "web"), path="jobs/web.nomad", sync=SyncState.SYNCED,
                                                health=HealthState.HEALTHY, version=3, spec_hash="h" * 64,
                                                revision="r" * 40)  # fmt: skip
    for number in range(15):
        status.record(SyncRecord(f"rev{number}", "2026-01-01T00:00:00Z", 0.1, "NoChange"))
    first = status.to_document(previous=None, generation=2, now=datetime(2026, 1, 1, tzinfo=UTC))
    later = status.to_document(previous=first, generation=2, now=datetime(2026, 1, 2, tzinfo=UTC))
    assert later["conditions"][0]["lastTransitionTime"] == first["conditions"][0]["lastTransitionTime"]
    assert later["conditions"][0]["status"] == "True"
    assert len(later["history"]) == 10
    assert later["history"][0]["revision"] == "rev14"
    assert later["inventory"] == [{"namespace": "default", "id": "web", "version": 3, "path": "jobs/web.nomad",
                                   "specHash": "h" * 16, "revision": "r" * 12}]  # fmt: skip
    status.phase, status.reason, status.message = Phase.FAILED, "FetchFailed", "remote unreachable"
    failed = status.to_document(previous=later, generation=2, now=datetime(2026, 1, 3, tzinfo=UTC))
    ready = next(c for c in failed["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"
    assert ready["reason"] == "FetchFailed"
