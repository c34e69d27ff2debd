"""Canonicalization fills Nomad's api defaults, inherits job policies into groups, and never mutates its input."""

from __future__ import annotations

import copy
from typing import Any

from nomad_operator.durations import HOUR, MINUTE, SECOND
from nomad_operator.jobspec.canonical import canonicalize
from nomad_operator.jobspec.schema import STRUCTS


def struct(name: str, **values: Any) -> dict[str, Any]:
    obj: dict[str, Any] = STRUCTS[name].empty()
    obj.update(values)
    return obj


def make_job(job_type: str | None = None, **values: Any) -> dict[str, Any]:
    task = struct("Task", Name="web", Driver="docker")
    del task["CSIPluginConfig"]
    group = struct("TaskGroup", Name="g", Tasks=[task])
    return struct("Job", ID="web", Name="web", Type=job_type, TaskGroups=[group], **values)


def test_job_defaults() -> None:
    job = canonicalize(make_job())
    assert (job["Region"], job["Namespace"], job["Type"], job["Priority"]) == ("global", "default", "service", 50)
    assert job["Stop"] is False
    assert job["AllAtOnce"] is False
    assert job["Update"]["MaxParallel"] == 1
    assert job["Update"]["Stagger"] == 30 * SECOND


def test_group_and_task_defaults_for_a_service_job() -> None:
    group = canonicalize(make_job())["TaskGroups"][0]
    assert group["Count"] == 1
    assert group["EphemeralDisk"] == {"Sticky": False, "Migrate": False, "SizeMB": 300}
    assert group["RestartPolicy"] == {
        "Interval": 30 * MINUTE,
        "Attempts": 2,
        "Delay": 15 * SECOND,
        "Mode": "fail",
        "RenderTemplates": False,
    }
    assert group["ReschedulePolicy"]["DelayFunction"] == "exponential"
    assert group["ReschedulePolicy"]["Unlimited"] is True
    assert group["Migrate"]["HealthyDeadline"] == 5 * MINUTE
    assert group["Update"]["HealthCheck"] == "checks"
    task = group["Tasks"][0]
    assert task["Resources"]["CPU"] == 100
    assert task["Resources"]["MemoryMB"] == 300
    assert task["KillTimeout"] == 5 * SECOND
    assert task["LogConfig"] == {"MaxFiles": 10, "MaxFileSizeMB": 10, "Enabled": None, "Disabled": False}
    assert task["RestartPolicy"] == group["RestartPolicy"]


def test_batch_jobs_get_batch_policies_and_no_update_or_migrate() -> None:
    group = canonicalize(make_job("batch"))["TaskGroups"][0]
    assert group["RestartPolicy"]["Attempts"] == 3
    assert group["RestartPolicy"]["Interval"] == 24 * HOUR
    assert group["ReschedulePolicy"]["Attempts"] == 1
    assert group["Update"] is None
    assert group["Migrate"] is None


def test_system_jobs_get_no_reschedule_policy() -> None:
    assert canonicalize(make_job("system"))["TaskGroups"][0]["ReschedulePolicy"] is None


def test_group_update_is_merged_over_the_jobs() -> None:
    job = make_job(Update=struct("UpdateStrategy", MaxParallel=3, Canary=1))
    job["TaskGroups"][0]["Update"] = struct("UpdateStrategy", Canary=2)
    update = canonicalize(job)["TaskGroups"][0]["Update"]
    assert (update["MaxParallel"], update["Canary"], update["MinHealthyTime"]) == (3, 2, 10 * SECOND)


def test_task_restart_policy_overrides_the_groups_field_by_field() -> None:
    job = make_job()
    job["TaskGroups"][0]["Tasks"][0]["RestartPolicy"] = struct("RestartPolicy", Attempts=9)
    restart = canonicalize(job)["TaskGroups"][0]["Tasks"][0]["RestartPolicy"]
    assert (restart["Attempts"], restart["Mode"]) == (9, "fail")


def test_count_follows_scaling_min() -> None:
    job = make_job()
    job["TaskGroups"][0]["Scaling"] = struct("ScalingPolicy", Min=2, Max=5, Type="horizontal")
    group = canonicalize(job)["TaskGroups"][0]
    assert group["Count"] == 2
    assert group["Scaling"]["Enabled"] is True


def test_services_get_names_and_check_defaults() -> None:
    job = make_job()
    check = struct("ServiceCheck", Type="tcp", CheckRestart=struct("CheckRestart", Limit=3))
    job["TaskGroups"][0]["Services"] = [struct("Service", Checks=[check])]
    job["TaskGroups"][0]["Tasks"][0]["Services"] = [struct("Service", PortLabel="http")]
    group = canonicalize(job)["TaskGroups"][0]
    service = group["Services"][0]
    assert service["Name"] == "web-g"
    assert (service["Provider"], service["AddressMode"], service["OnUpdate"]) == ("consul", "auto", "require_healthy")
    assert service["Checks"][0]["CheckRestart"]["Grace"] == SECOND
    assert service["Checks"][0]["OnUpdate"] == "require_healthy"
    assert group["Tasks"][0]["Services"][0]["Name"] == "web-g-web"


def test_templates_and_artifacts() -> None:
    job = make_job()
    task = job["TaskGroups"][0]["Tasks"][0]
    task["Templates"] = [struct("Template", ChangeMode="signal"), struct("Template", ChangeSignal="sigusr1")]
    task["Artifacts"] = [struct("TaskArtifact", GetterSource="https://x/y/app.tgz", GetterMode="file")]
    task = canonicalize(job)["TaskGroups"][0]["Tasks"][0]
    assert [t["ChangeSignal"] for t in task["Templates"]] == ["SIGHUP", "SIGUSR1"]
    assert task["Templates"][0]["LeftDelim"] == "{{"
    assert task["Artifacts"][0]["RelativeDest"] == "local/app.tgz"


def test_canonicalize_is_pure_and_idempotent() -> None:
    job = make_job()
    before = copy.deepcopy(job)
    once = canonicalize(job)
    assert job == before
    assert canonicalize(once) == once


def test_created_structs_keep_go_field_order() -> None:
    group = canonicalize(make_job())["TaskGroups"][0]
    assert list(group["Migrate"]) == [field.json for field in STRUCTS["MigrateStrategy"].fields]
    assert list(group["Tasks"][0]["Resources"]) == [field.json for field in STRUCTS["Resources"].fields]
