"""Registration-time canonicalization of a job, the way a Nomad server stores it.

A job read back from Nomad is never the job that was sent: the api package's Canonicalize and the server's own
defaults fill Region, Namespace, Type, Priority, Datacenters, Count, restart/reschedule/update/migrate policies,
ephemeral disk, task resources, kill timeout and log config. The GitOps operator compares desired and live jobs, so a
simulator that stored jobs as sent would hide every spurious diff a real cluster shows. This module is pure and
returns a new job; the store completes its key set afterwards from the wire shapes.

Overlap: `nomad_operator.jobspec.canonical.canonicalize` does the api-side half (what `/v1/jobs/parse` with
Canonicalize=true gives). This module does that half too, plus the server half (Datacenters ["*"], Namespace,
service-job update defaults); the two should be merged so the server half calls the api half.
"""

from __future__ import annotations

import copy
from typing import Any

from nomad_operator.durations import HOUR, MINUTE, SECOND

DEFAULT_PRIORITY = 50
DEFAULT_TASK_CPU_MHZ = 100
DEFAULT_TASK_MEMORY_MB = 300
DEFAULT_EPHEMERAL_DISK_MB = 300
DEFAULT_KILL_TIMEOUT = 5 * SECOND
DEFAULT_LOG_FILES = 10
DEFAULT_LOG_FILE_SIZE_MB = 10

DEFAULT_UPDATE: dict[str, Any] = {
    "Stagger": 30 * SECOND,
    "MaxParallel": 1,
    "HealthCheck": "checks",
    "MinHealthyTime": 10 * SECOND,
    "HealthyDeadline": 5 * MINUTE,
    "ProgressDeadline": 10 * MINUTE,
    "AutoRevert": False,
    "AutoPromote": False,
    "Canary": 0,
}
DEFAULT_MIGRATE: dict[str, Any] = {
    "MaxParallel": 1,
    "HealthCheck": "checks",
    "MinHealthyTime": 10 * SECOND,
    "HealthyDeadline": 5 * MINUTE,
}
RESTART_POLICIES: dict[str, dict[str, Any]] = {
    "service": {"Attempts": 2, "Interval": 30 * MINUTE, "Delay": 15 * SECOND, "Mode": "fail", "RenderTemplates": False},
    "system": {"Attempts": 2, "Interval": 30 * MINUTE, "Delay": 15 * SECOND, "Mode": "fail", "RenderTemplates": False},
    "batch": {"Attempts": 3, "Interval": 24 * HOUR, "Delay": 15 * SECOND, "Mode": "fail", "RenderTemplates": False},
    "sysbatch": {"Attempts": 3, "Interval": 24 * HOUR, "Delay": 15 * SECOND, "Mode": "fail", "RenderTemplates": False},
}
RESCHEDULE_POLICIES: dict[str, dict[str, Any] | None] = {
    "service": {
        "Attempts": 0,
        "Interval": 0,
        "Delay": 30 * SECOND,
        "DelayFunction": "exponential",
        "MaxDelay": HOUR,
        "Unlimited": True,
    },
    "batch": {
        "Attempts": 1,
        "Interval": 24 * HOUR,
        "Delay": 5 * SECOND,
        "DelayFunction": "constant",
        "MaxDelay": 0,
        "Unlimited": False,
    },
    "system": None,
    "sysbatch": None,
}
JOB_TYPES = frozenset(RESTART_POLICIES)


def _merged(base: dict[str, Any] | None, override: dict[str, Any] | None) -> dict[str, Any]:
    """Merge two policy objects: set (non-null) fields of ``override`` win, as the api's Merge methods do."""
    result = dict(base or {})
    for key, value in (override or {}).items():
        if value is not None:
            result[key] = value
    return result


def canonicalize_job(job: dict[str, Any], *, region: str) -> dict[str, Any]:
    """Return a new job with Nomad's api and server defaults filled in; ``job`` is not changed."""
    result = copy.deepcopy(job)
    result["Region"] = result.get("Region") or region
    result["Namespace"] = result.get("Namespace") or "default"
    result["Name"] = result.get("Name") or result.get("ID")
    job_type = result.get("Type") or "service"
    result["Type"] = job_type
    result["Priority"] = result.get("Priority") or DEFAULT_PRIORITY
    result["AllAtOnce"] = bool(result.get("AllAtOnce"))
    result["Datacenters"] = result.get("Datacenters") or ["*"]
    result["NodePool"] = result.get("NodePool") or "default"
    result["Stop"] = bool(result.get("Stop"))
    if result.get("Update") is not None:
        result["Update"] = _merged(DEFAULT_UPDATE, result["Update"])
    for group in result.get("TaskGroups") or []:
        _canonicalize_group(group, job=result, job_type=job_type)
    return result


def _canonicalize_group(group: dict[str, Any], *, job: dict[str, Any], job_type: str) -> None:
    if group.get("Count") is None:
        group["Count"] = 1
    group["RestartPolicy"] = _merged(RESTART_POLICIES.get(job_type), group.get("RestartPolicy"))
    reschedule = RESCHEDULE_POLICIES.get(job_type)
    if reschedule is not None:
        group["ReschedulePolicy"] = _merged(reschedule, group.get("ReschedulePolicy"))
    disk = group.get("EphemeralDisk") or {}
    group["EphemeralDisk"] = {
        "Sticky": bool(disk.get("Sticky")),
        "SizeMB": disk.get("SizeMB") or DEFAULT_EPHEMERAL_DISK_MB,
        "Migrate": bool(disk.get("Migrate")),
    }
    if job_type == "service":
        group["Migrate"] = _merged(DEFAULT_MIGRATE, group.get("Migrate"))
        group["Update"] = _merged(_merged(DEFAULT_UPDATE, job.get("Update")), group.get("Update"))
    elif job.get("Update") is not None or group.get("Update") is not None:
        group["Update"] = _merged(_merged(DEFAULT_UPDATE, job.get("Update")), group.get("Update"))
    for service in group.get("Services") or []:
        _canonicalize_service(service)
    for task in group.get("Tasks") or []:
        _canonicalize_task(task, group=group)


def _canonicalize_task(task: dict[str, Any], *, group: dict[str, Any]) -> None:
    resources = dict(task.get("Resources") or {})
    resources["CPU"] = resources.get("CPU") or (None if resources.get("Cores") else DEFAULT_TASK_CPU_MHZ) or 0
    resources["MemoryMB"] = resources.get("MemoryMB") or DEFAULT_TASK_MEMORY_MB
    resources.setdefault("Cores", 0)
    resources.setdefault("MemoryMaxMB", 0)
    task["Resources"] = resources
    if task.get("KillTimeout") is None:
        task["KillTimeout"] = DEFAULT_KILL_TIMEOUT
    log = task.get("LogConfig") or {}
    task["LogConfig"] = {
        "MaxFiles": log.get("MaxFiles") or DEFAULT_LOG_FILES,
        "MaxFileSizeMB": log.get("MaxFileSizeMB") or DEFAULT_LOG_FILE_SIZE_MB,
        "Disabled": bool(log.get("Disabled")),
    }
    task["RestartPolicy"] = _merged(group.get("RestartPolicy"), task.get("RestartPolicy"))
    task["Leader"] = bool(task.get("Leader"))
    for service in task.get("Services") or []:
        _canonicalize_service(service)


def _canonicalize_service(service: dict[str, Any]) -> None:
    service["Provider"] = service.get("Provider") or "consul"
    service["AddressMode"] = service.get("AddressMode") or "auto"
    for check in service.get("Checks") or []:
        check.setdefault("OnUpdate", "require_healthy")
