"""Job health from deployments, allocations and evaluations: Healthy, Progressing, Degraded (with why) or Missing.

"Synced" says Nomad has the job git wants; it says nothing about whether it runs. Users need the second answer in
one line: "2/3 running; 1 placement blocked: distinct_hosts" says at once that a node is gone and nothing can be
done but wait for it, where a bare "Degraded" sends them digging. The reason of a blocked placement is read from
the latest evaluation's FailedTGAllocs with the node controller's classifier, so both controllers name it the same.
The rules are ordered: a stopped or absent job is Missing; a running deployment of the current version is
Progressing; a failed one is Degraded; then allocations decide. Pure: wire objects in, a value out.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nomad_operator.controllers.nodes.blocked_reasons import classify_failure

ACTIVE_DEPLOYMENT = frozenset({"running", "pending", "paused", "initializing", "blocked", "unblocking"})
TERMINAL_CLIENT = frozenset({"complete", "failed", "lost"})


class HealthState(enum.StrEnum):
    HEALTHY = "Healthy"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    MISSING = "Missing"
    UNKNOWN = "Unknown"


# Worst first: the rollup of a source is the worst state of its jobs.
SEVERITY = (HealthState.DEGRADED, HealthState.MISSING, HealthState.PROGRESSING, HealthState.UNKNOWN,
            HealthState.HEALTHY)  # fmt: skip


@dataclass(frozen=True, slots=True)
class JobHealth:
    state: HealthState
    message: str
    running: int = 0
    expected: int = 0


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _blocked(evaluations: Sequence[Mapping[str, Any]], version_index: int) -> tuple[int, str | None]:
    """Placements the latest evaluation (after the job's last change) could not make, and the dominant reason."""
    latest = None
    for evaluation in evaluations:
        if _int(evaluation.get("CreateIndex")) < version_index:
            continue
        if latest is None or _int(evaluation.get("CreateIndex")) > _int(latest.get("CreateIndex")):
            latest = evaluation
    failed = latest.get("FailedTGAllocs") if latest is not None else None
    if not isinstance(failed, Mapping) or not failed:
        return 0, None
    count = 0
    reasons: list[str] = []
    for metric in failed.values():
        if not isinstance(metric, Mapping):
            continue
        count += 1 + _int(metric.get("CoalescedFailures"))
        reasons.append(classify_failure(metric).reason)
    return count, ", ".join(sorted(set(reasons))) or None


def job_health(
    job: Mapping[str, Any] | None,
    allocations: Iterable[Mapping[str, Any]],
    *,
    deployment: Mapping[str, Any] | None = None,
    evaluations: Sequence[Mapping[str, Any]] = (),
) -> JobHealth:
    if job is None:
        return JobHealth(HealthState.MISSING, "not in Nomad")
    if job.get("Stop") is True:
        return JobHealth(HealthState.MISSING, "stopped")
    version = _int(job.get("Version"))
    job_type = str(job.get("Type") or "service")
    groups = [g for g in job.get("TaskGroups") or [] if isinstance(g, Mapping)]
    current = [a for a in allocations if a.get("DesiredStatus", "run") == "run"]
    running = sum(1 for a in current if a.get("ClientStatus") == "running")
    starting = sum(1 for a in current if a.get("ClientStatus") == "pending")
    failed = sum(1 for a in current if a.get("ClientStatus") == "failed")
    if job_type == "system":
        expected = max(len(current), running)
    elif job_type in ("batch", "sysbatch"):
        done = sum(1 for a in current if a.get("ClientStatus") == "complete")
        expected = sum(_int(g.get("Count")) for g in groups)
        running += done
    else:
        expected = sum(_int(g.get("Count")) for g in groups)
    counts = f"{running}/{expected} running"
    if deployment is not None and _int(deployment.get("JobVersion")) == version:
        status = str(deployment.get("Status") or "")
        if status in ACTIVE_DEPLOYMENT:
            return JobHealth(HealthState.PROGRESSING, f"{counts}; deployment {status}", running, expected)
        if status == "failed":
            why = str(deployment.get("StatusDescription") or "deployment failed")
            return JobHealth(HealthState.DEGRADED, f"{counts}; {why}", running, expected)
    if running >= expected and not failed:
        return JobHealth(HealthState.HEALTHY, counts, running, expected)
    blocked, reason = _blocked(evaluations, _int(job.get("JobModifyIndex")))
    parts = [counts]
    if starting:
        parts.append(f"{starting} starting")
    if failed:
        parts.append(f"{failed} failed")
    if blocked:
        parts.append(f"{blocked} placement{'s' if blocked > 1 else ''} blocked: {reason}")
    message = "; ".join(parts)
    if starting and not blocked and not failed:
        return JobHealth(HealthState.PROGRESSING, message, running, expected)
    if not blocked and not failed and running < expected and not starting:
        return JobHealth(HealthState.PROGRESSING, f"{message}; placing", running, expected)
    return JobHealth(HealthState.DEGRADED, message, running, expected)


def rollup(states: Iterable[HealthState]) -> HealthState:
    """The worst state of a source's jobs (Healthy for a source with no jobs)."""
    seen = set(states)
    for state in SEVERITY:
        if state in seen:
            return state
    return HealthState.HEALTHY
