"""The status a GitSource reports: conditions, revisions, inventory, per-job sync and health, errors, history.

Users look here first when the cluster does not follow git, so the status must answer "did it fetch, did it apply,
what failed and why" without a log: the last fetched and the last applied revision are separate (a broken revision is
fetched but not applied), every job has its own sync and health state with a message, file errors are listed by
path, and the last syncs show whether the problem is new. The hazards are size (the status lives in a 64 KiB Nomad
Variable next to the spec, so lists are bounded and messages cut) and secrets (messages pass the redactor before
they get here). Pure: the model is mutated by the sync loop and rendered to a document with `to_document`.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from nomad_operator.controllers.gitops.defaults import MAX_ERROR_CHARS, MAX_FILE_ERRORS_IN_STATUS, SYNC_HISTORY_LENGTH
from nomad_operator.controllers.gitops.desired_state import JobKey
from nomad_operator.controllers.gitops.health import HealthState, rollup
from nomad_operator.runtime.conditions import (
    Condition,
    conditions_from_status,
    conditions_to_status,
    format_time,
    mark_failed,
    mark_ready,
    mark_reconciling,
    mark_stalled,
)

MAX_JOBS_IN_STATUS = 500


class SyncState(enum.StrEnum):
    SYNCED = "Synced"
    OUT_OF_SYNC = "OutOfSync"
    FAILED = "Failed"
    CONFLICT = "Conflict"
    ORPHANED = "Orphaned"  # left git, kept (prune off, grace period, share limit, incomplete revision)
    PRUNED = "Pruned"
    PENDING = "Pending"  # waits for an earlier wave


class Phase(enum.StrEnum):
    """What the last cycle ended in; decides the conditions."""

    NEW = "New"
    RECONCILING = "Reconciling"
    SYNCED = "Synced"
    FAILED = "Failed"  # retried: a file, a job or the fetch failed
    STALLED = "Stalled"  # needs a change to the source (bad spec, bad auth)
    SUSPENDED = "Suspended"


@dataclass
class JobStatus:
    key: JobKey
    path: str = ""
    sync: SyncState = SyncState.PENDING
    health: HealthState = HealthState.UNKNOWN
    message: str = ""
    version: int | None = None
    spec_hash: str = ""
    revision: str = ""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"namespace": self.key[0], "id": self.key[1], "sync": str(self.sync),
                                "health": str(self.health), "message": _cut(self.message)}  # fmt: skip
        if self.path:
            data["path"] = self.path
        return data


@dataclass(frozen=True, slots=True)
class SyncRecord:
    revision: str
    started_at: str
    duration_seconds: float
    result: str
    writes: int = 0
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"revision": self.revision, "startedAt": self.started_at,
                "durationSeconds": round(self.duration_seconds, 4), "result": self.result, "writes": self.writes,
                "message": _cut(self.message, 300)}  # fmt: skip


def _cut(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class SourceStatus:
    """The mutable status model of one source."""

    phase: Phase = Phase.NEW
    reason: str = "Initializing"
    message: str = "waiting for the first fetch"
    last_fetched_revision: str | None = None
    last_fetched_at: str | None = None
    last_applied_revision: str | None = None
    last_applied_at: str | None = None
    last_error: str | None = None
    fetch_failures: int = 0
    jobs: dict[JobKey, JobStatus] = field(default_factory=dict)
    file_errors: dict[str, str] = field(default_factory=dict)
    history: deque[SyncRecord] = field(default_factory=lambda: deque(maxlen=SYNC_HISTORY_LENGTH))

    def record(self, entry: SyncRecord) -> None:
        self.history.append(entry)

    def health(self) -> HealthState:
        return rollup(job.health for job in self.jobs.values() if job.sync is not SyncState.PRUNED)

    def counts(self) -> dict[str, dict[str, int]]:
        sync: dict[str, int] = {}
        health: dict[str, int] = {}
        for job in self.jobs.values():
            sync[str(job.sync)] = sync.get(str(job.sync), 0) + 1
            health[str(job.health)] = health.get(str(job.health), 0) + 1
        return {"sync": sync, "health": health}

    def inventory(self) -> list[dict[str, Any]]:
        """The jobs this source applied and runs, with their Nomad version and the spec hash that was applied."""
        items = []
        for job in sorted(self.jobs.values(), key=lambda j: j.key):
            if job.sync in (SyncState.SYNCED, SyncState.OUT_OF_SYNC, SyncState.ORPHANED) and job.spec_hash:
                items.append({"namespace": job.key[0], "id": job.key[1], "version": job.version, "path": job.path,
                              "specHash": job.spec_hash[:16], "revision": job.revision[:12]})  # fmt: skip
        return items[:MAX_JOBS_IN_STATUS]

    def conditions(
        self, previous: Sequence[Condition], *, generation: int, now: datetime
    ) -> tuple[Condition, ...]:
        message = _cut(self.message)
        if self.phase is Phase.SYNCED:
            return mark_ready(previous, reason=self.reason, message=message, observed_generation=generation, now=now)
        if self.phase is Phase.FAILED:
            return mark_failed(previous, reason=self.reason, message=message, observed_generation=generation, now=now)
        if self.phase is Phase.STALLED:
            return mark_stalled(previous, reason=self.reason, message=message, observed_generation=generation, now=now)
        return mark_reconciling(previous, reason=self.reason, message=message, observed_generation=generation, now=now)

    def to_document(self, *, previous: Mapping[str, Any] | None, generation: int, now: datetime) -> dict[str, Any]:
        """The status document for the resource; conditions keep their transition times from `previous`."""
        try:
            before = conditions_from_status(previous)
        except ValueError:
            before = ()
        jobs = sorted(self.jobs.values(), key=lambda j: j.key)[:MAX_JOBS_IN_STATUS]
        errors = dict(list(sorted(self.file_errors.items()))[:MAX_FILE_ERRORS_IN_STATUS])
        return {
            "observedGeneration": generation,
            "phase": str(self.phase),
            "conditions": conditions_to_status(self.conditions(before, generation=generation, now=now)),
            "lastFetchedRevision": self.last_fetched_revision,
            "lastFetchTime": self.last_fetched_at,
            "lastAppliedRevision": self.last_applied_revision,
            "lastAppliedTime": self.last_applied_at,
            "lastError": _cut(self.last_error) if self.last_error else None,
            "fetchFailures": self.fetch_failures,
            "health": str(self.health()),
            "counts": self.counts(),
            "inventory": self.inventory(),
            "jobs": [job.to_dict() for job in jobs],
            "fileErrors": {path: _cut(text, 500) for path, text in errors.items()},
            "history": [entry.to_dict() for entry in reversed(self.history)],  # newest first
            "updatedAt": format_time(now),
        }
