"""Each job's line in a source's status, decided from the sync plan and, once there is one, the apply's report.

The status is published before an apply (so a long first sync shows what is coming), during it (after each wave),
and after it, and a job's line must not go back and forth between those: what is known about a job from an earlier
cycle (its health, version, spec hash and revision) is carried over until something newer replaces it, the live
job's owner meta counts only when it is this source's, and an outcome of the apply overrides what the plan said.
Pure: plan, report and previous lines in, new lines out.
"""

from __future__ import annotations

from collections.abc import Mapping

from nomad_operator.controllers.gitops.desired_state import JobKey
from nomad_operator.controllers.gitops.source_status import JobStatus, SyncState
from nomad_operator.controllers.gitops.sync_engine import SyncReport
from nomad_operator.controllers.gitops.sync_plan import ActionKind, SyncPlan


def job_statuses(
    plan: SyncPlan, report: SyncReport | None, *, source: str, previous: Mapping[JobKey, JobStatus]
) -> dict[JobKey, JobStatus]:
    """A status line for every job the plan acts on (`source` is the source's ID, for the owner meta)."""
    jobs: dict[JobKey, JobStatus] = {}
    for action in plan.actions:
        before = previous.get(action.key)
        entry = JobStatus(key=action.key, path=action.desired.path if action.desired else "")
        if before is not None:
            entry.health, entry.version = before.health, before.version
            entry.spec_hash, entry.revision = before.spec_hash, before.revision
        live = action.live
        if live is not None:
            entry.version = live.version
            if live.owner is not None and live.owner.source == source:
                entry.spec_hash, entry.revision = live.owner.spec_hash, live.owner.revision
                entry.path = entry.path or live.owner.path
        entry.sync, entry.message = planned_state(action.kind, action.reason)
        outcome = report.outcomes.get(action.key) if report is not None else None
        if outcome is not None:
            entry.sync, entry.message = outcome.state, outcome.message
            if outcome.written:
                entry.spec_hash, entry.revision = outcome.spec_hash, outcome.revision
        jobs[action.key] = entry
    return jobs


def planned_state(kind: ActionKind, reason: str) -> tuple[SyncState, str]:
    """The sync state a planned action stands for before anything is applied, with the plan's reason."""
    if kind is ActionKind.UNCHANGED:
        return SyncState.SYNCED, reason
    if kind is ActionKind.CONFLICT:
        return SyncState.CONFLICT, reason
    if kind is ActionKind.BLOCKED:
        if reason.startswith("not in git"):
            return SyncState.ORPHANED, reason
        if reason.startswith("drifted"):
            return SyncState.OUT_OF_SYNC, reason
        return SyncState.FAILED, reason
    return SyncState.OUT_OF_SYNC, reason
