"""The sync plan: for every job of the revision and every job this source owns, what to do and why.

This is the decision half of a sync, kept pure so every rule is tested without a cluster: a job missing from Nomad
is created; a job of ours whose owner spec hash matches is left alone (rule 5: no write when nothing changed); a
changed one is updated; a job that exists but carries no owner meta is adopted only with `adopt`, and one that
another source owns is always a conflict for us (the first owner keeps it, so two sources never flip-flop); jobs
that left git go through the PruneGuard's decision. Each action says why, for status, logs and `plan`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from nomad_operator.controllers.gitops.desired_state import DesiredJob, DesiredState, JobKey
from nomad_operator.controllers.gitops.owner_meta import OwnerMark, owner_of
from nomad_operator.controllers.gitops.prune_guard import PruneDecision


class ActionKind(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    ADOPT = "adopt"
    CONFLICT = "conflict"
    PRUNE = "prune"
    BLOCKED = "blocked"


WRITE_KINDS = frozenset({ActionKind.CREATE, ActionKind.UPDATE, ActionKind.ADOPT, ActionKind.PRUNE})


@dataclass(frozen=True, slots=True)
class LiveJob:
    """What the sync needs to know about a job in Nomad."""

    key: JobKey
    job_modify_index: int
    owner: OwnerMark | None
    stop: bool = False
    status: str = ""
    version: int = 0


@dataclass(frozen=True, slots=True)
class SyncAction:
    kind: ActionKind
    key: JobKey
    reason: str
    desired: DesiredJob | None = None
    live: LiveJob | None = None

    @property
    def wave(self) -> int:
        return self.desired.wave if self.desired is not None else 0

    @property
    def writes(self) -> bool:
        return self.kind in WRITE_KINDS


@dataclass(frozen=True, slots=True)
class SyncPlan:
    source: str
    revision: str
    actions: tuple[SyncAction, ...]

    def of_kind(self, *kinds: ActionKind) -> list[SyncAction]:
        return [action for action in self.actions if action.kind in kinds]

    @property
    def has_changes(self) -> bool:
        return any(action.writes for action in self.actions)

    def waves(self) -> list[tuple[int, list[SyncAction]]]:
        """The writes grouped by wave, lowest first; prunes come last, after every wave is in place."""
        by_wave: dict[int, list[SyncAction]] = {}
        for action in self.actions:
            if action.kind in (ActionKind.CREATE, ActionKind.UPDATE, ActionKind.ADOPT):
                by_wave.setdefault(action.wave, []).append(action)
        return sorted(by_wave.items())

    def counts(self) -> dict[str, int]:
        counts = {kind.value: 0 for kind in ActionKind}
        for action in self.actions:
            counts[action.kind.value] += 1
        return counts


def prune_candidates(
    desired: DesiredState, live: Mapping[JobKey, LiveJob], *, source: str
) -> tuple[list[JobKey], int]:
    """(running jobs owned by `source` that the revision lacks, running jobs owned by `source`)."""
    owned = [job for job in live.values() if job.owner is not None and job.owner.source == source and not job.stop]
    missing = [job.key for job in owned if job.key not in desired.jobs]
    return missing, len(owned)


def plan_sync(
    desired: DesiredState,
    live: Mapping[JobKey, LiveJob],
    *,
    adopt: bool,
    prune: PruneDecision,
    drifted: Mapping[JobKey, str] | None = None,
    self_heal: bool = True,
    held: Mapping[JobKey, str] | None = None,
) -> SyncPlan:
    """Decide every job. `drifted`: owned jobs whose live spec no longer matches (with a summary); `held`: desired
    jobs that must not be written this time (e.g. the parse check failed), with the reason."""
    drifted = drifted or {}
    held = held or {}
    actions: list[SyncAction] = []
    for key, want in desired.jobs.items():
        have = live.get(key)
        actions.append(decide_job(want, have, desired.source, adopt, drifted.get(key), self_heal, held.get(key)))
    for key in prune.prune:
        actions.append(SyncAction(ActionKind.PRUNE, key, "not in git for the grace period", live=live.get(key)))
    for key, reason in prune.blocked.items():
        actions.append(SyncAction(ActionKind.BLOCKED, key, reason, live=live.get(key)))
    return SyncPlan(source=desired.source, revision=desired.revision, actions=tuple(actions))


def decide_job(
    want: DesiredJob,
    have: LiveJob | None,
    source: str,
    adopt: bool,
    drift: str | None = None,
    self_heal: bool = True,
    hold: str | None = None,
) -> SyncAction:
    """The action for one desired job given what Nomad has (also used to decide again after a Conflict)."""
    key = want.key
    if have is not None and have.owner is not None and have.owner.source != source:
        return SyncAction(ActionKind.CONFLICT, key, f"owned by source {have.owner.source!r}", want, have)
    if have is not None and have.owner is None and not have.stop and not adopt:
        return SyncAction(
            ActionKind.CONFLICT, key, "exists in Nomad without owner meta; set adopt to take it over", want, have
        )
    if hold is not None:
        return SyncAction(ActionKind.BLOCKED, key, hold, want, have)
    if have is None:
        return SyncAction(ActionKind.CREATE, key, "not in Nomad", want)
    if have.owner is None:
        if have.stop:
            return SyncAction(ActionKind.CREATE, key, "a stopped job without owner meta is replaced", want, have)
        return SyncAction(ActionKind.ADOPT, key, "exists without owner meta; adopt is on", want, have)
    if have.owner.spec_hash != want.spec_hash:
        return SyncAction(ActionKind.UPDATE, key, "spec changed in git", want, have)
    if have.stop:
        return SyncAction(ActionKind.UPDATE, key, "stopped in Nomad but defined in git", want, have)
    if drift is not None:
        if self_heal:
            return SyncAction(ActionKind.UPDATE, key, f"drifted from git ({drift}); self-heal", want, have)
        return SyncAction(ActionKind.BLOCKED, key, f"drifted from git ({drift}); self-heal is off", want, have)
    return SyncAction(ActionKind.UNCHANGED, key, "in sync", want, have)


def live_job_from_wire(job: Mapping[str, object]) -> LiveJob:
    """The LiveJob of a full job as Nomad returns it (or as the event stream carries it)."""
    namespace = job.get("Namespace")
    job_id = job.get("ID")
    modify = job.get("JobModifyIndex")
    version = job.get("Version")
    return LiveJob(
        key=(namespace if isinstance(namespace, str) and namespace else "default", str(job_id)),
        job_modify_index=modify if isinstance(modify, int) else 0,
        owner=owner_of(job),
        stop=job.get("Stop") is True,
        status=str(job.get("Status") or ""),
        version=version if isinstance(version, int) else 0,
    )


def keys_of(actions: Iterable[SyncAction]) -> list[JobKey]:
    return [action.key for action in actions]
