"""Pure job rules: job Status (Nomad's getJobStatus), JobSummary counts, SpecChanged, and registration validation.

They decide what the GitOps operator sees after every write (a job's status and whether a resubmission is a new
version), so they live apart from any I/O and are tested as plain functions. The hazard is drift from Nomad's rules;
each function names the Nomad code it mirrors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from nomad_operator.sim.canonical import JOB_TYPES
from nomad_operator.sim.errors import bad_request, server_error
from nomad_operator.sim.state import alloc_terminal

# Fields the server owns: copied from the stored job before comparing specs (structs.Job.SpecChanged).
SERVER_FIELDS = (
    "Status",
    "StatusDescription",
    "Stable",
    "Version",
    "SubmitTime",
    "CreateIndex",
    "ModifyIndex",
    "JobModifyIndex",
    "NomadTokenID",
    "VersionTag",
)
TERMINAL_EVAL = frozenset({"complete", "failed", "canceled"})
TERMINAL_DEPLOYMENT = frozenset({"successful", "failed", "cancelled"})
SUMMARY_BY_CLIENT_STATUS = {
    "pending": "Starting",
    "running": "Running",
    "complete": "Complete",
    "failed": "Failed",
    "lost": "Lost",
    "unknown": "Unknown",
}


def _multierror(message: str) -> str:
    return f"1 error occurred:\n\t* {message}\n\n"


def is_periodic_or_parameterized(job: Mapping[str, Any]) -> bool:
    periodic = job.get("Periodic") or {}
    return bool(periodic.get("Enabled") or periodic.get("Spec") or periodic.get("Specs")) or bool(
        job.get("ParameterizedJob")
    )


def job_status(
    job: Mapping[str, Any],
    allocs: Iterable[Mapping[str, Any]],
    evals: Iterable[Mapping[str, Any]],
    deployments: Iterable[Mapping[str, Any]],
) -> str:
    """Nomad's getJobStatus (nomad/state/state_store.go)."""
    if job.get("Type") == "system" or is_periodic_or_parameterized(job):
        return "dead" if job.get("Stop") else "running"
    has_alloc = False
    for alloc in allocs:
        has_alloc = True
        if not alloc_terminal(dict(alloc)):
            return "running"
    if any(deployment.get("Status") not in TERMINAL_DEPLOYMENT for deployment in deployments):
        return "running"
    has_eval = False
    for evaluation in evals:
        has_eval = True
        if evaluation.get("Status") not in TERMINAL_EVAL:
            return "pending"
    if has_eval or has_alloc or job.get("Stop"):
        return "dead"
    return "pending"


def job_summary(
    job: Mapping[str, Any], allocs: Iterable[Mapping[str, Any]], *, queued: Mapping[str, int]
) -> dict[str, Any]:
    groups = {
        group["Name"]: {"Complete": 0, "Failed": 0, "Lost": 0, "Queued": 0, "Running": 0, "Starting": 0, "Unknown": 0}
        for group in job.get("TaskGroups") or []
    }
    for alloc in allocs:
        counts = groups.get(alloc.get("TaskGroup", ""))
        field = SUMMARY_BY_CLIENT_STATUS.get(alloc.get("ClientStatus", ""))
        if counts is not None and field is not None:
            counts[field] += 1
    for group, count in queued.items():
        if group in groups:
            groups[group]["Queued"] = count
    return {
        "Children": {"Dead": 0, "Pending": 0, "Running": 0},
        "JobID": job["ID"],
        "Namespace": job["Namespace"],
        "Summary": groups,
    }


def spec_changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """structs.Job.SpecChanged: compare with the server-owned fields taken from the stored job."""
    candidate = dict(new)
    for field in SERVER_FIELDS:
        if field in old:
            candidate[field] = old[field]
        else:
            candidate.pop(field, None)
    return dict(old) != candidate


def validate_job(job: Mapping[str, Any]) -> None:
    if job.get("Type") not in JOB_TYPES:
        raise server_error(_multierror(f'Invalid job type: "{job.get("Type")}"'))
    groups = job.get("TaskGroups") or []
    if not groups:
        raise server_error(_multierror("Missing job task groups"))
    seen: set[str] = set()
    for position, group in enumerate(groups, start=1):
        name = group.get("Name") or ""
        if not name:
            raise server_error(_multierror(f"Job task group {position} missing name"))
        if name in seen:
            raise server_error(_multierror(f"Job task group {position} redefines '{name}' from group {position - 1}"))
        seen.add(name)
        if job.get("Type") == "system" and group.get("Scaling"):
            raise bad_request("Task groups with job type system do not support scaling blocks")
        if (group.get("Count") or 0) < 0:
            raise server_error(_multierror(f"Task group {name} validation failed: Task group count can't be negative"))
        if not group.get("Tasks"):
            raise server_error(_multierror(f"Task group {name} validation failed: Missing tasks for task group"))
        for task in group["Tasks"]:
            if not task.get("Name"):
                raise server_error(_multierror(f"Task group {name} validation failed: Task missing name"))
            if not task.get("Driver"):
                raise server_error(
                    _multierror(f"Task group {name} validation failed: Task {task['Name']} validation failed: "
                                "Missing task driver")
                )
