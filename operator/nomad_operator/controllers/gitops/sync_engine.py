"""The write half of a sync: read the live state, decide the plan, and apply it with compare-and-swap writes.

Every hazard of changing a cluster is handled here, once:
- rule 3: every register carries `EnforceIndex` with the JobModifyIndex the decision was based on (0 for a new
  job); a `Conflict` means somebody else wrote first, so the job is read again and decided again, never overwritten;
- rule 5: a job whose owner spec hash matches is not written; drift is detected from fingerprints and confirmed by
  Nomad's plan diff, so a no-op cycle sends no write and, in steady state, no plan either;
- rule 8: the first apply of each spec hash is checked against Nomad's own parse (`ParseCheck`);
- waves: each wave's written jobs must be Healthy before the next wave is written; prunes come after all waves;
- transient errors (5xx, unreachable) are retried a bounded number of times with backoff; a job that still fails is
  reported and retried on the next sync, and nothing else is held up. `NotLeader` ends the sync at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from nomad_operator.controllers.gitops.defaults import (
    APPLY_CONCURRENCY,
    MAX_CONFLICT_RETRIES,
    MAX_WRITE_ATTEMPTS,
    WRITE_RETRY_BASE_SECONDS,
)
from nomad_operator.controllers.gitops.desired_state import DesiredJob, DesiredState, JobKey
from nomad_operator.controllers.gitops.drift import DriftTracker, DriftVerdict
from nomad_operator.controllers.gitops.field_changes import (
    FieldChange,
    changes_from_plan_diff,
    scaling_groups,
    summarize,
)
from nomad_operator.controllers.gitops.health import HealthState, JobHealth
from nomad_operator.controllers.gitops.live_jobs import LiveView, NomadLiveView
from nomad_operator.controllers.gitops.owner_meta import with_owner_meta
from nomad_operator.controllers.gitops.parse_check import ParseCheck
from nomad_operator.controllers.gitops.prune_guard import PruneGuard, PrunePolicy
from nomad_operator.controllers.gitops.redaction import Redactor
from nomad_operator.controllers.gitops.source_spec import GitSourceSpec
from nomad_operator.controllers.gitops.source_status import SyncState
from nomad_operator.controllers.gitops.sync_plan import (
    ActionKind,
    LiveJob,
    SyncAction,
    SyncPlan,
    decide_job,
    live_job_from_wire,
    plan_sync,
    prune_candidates,
)
from nomad_operator.nomad import APIError, Conflict, NomadClient, NomadError, NotLeader
from nomad_operator.nomad.errors import is_transient

log = logging.getLogger(__name__)


@dataclass
class JobOutcome:
    key: JobKey
    state: SyncState
    message: str
    path: str = ""
    spec_hash: str = ""
    revision: str = ""
    version: int | None = None
    changes: list[FieldChange] = field(default_factory=list)
    written: bool = False


@dataclass
class SyncReport:
    plan: SyncPlan
    outcomes: dict[JobKey, JobOutcome] = field(default_factory=dict)
    writes: int = 0
    waiting: str | None = None

    @property
    def failed(self) -> list[JobOutcome]:
        return [o for o in self.outcomes.values() if o.state in (SyncState.FAILED, SyncState.CONFLICT)]


class ApplyProgress(Protocol):
    """Told while an apply runs: after each wave is written and once it is healthy (`note` says which)."""

    async def __call__(self, report: SyncReport, note: str, /) -> None: ...


class SyncEngine:
    """Decides and applies the desired state of one source against one Nomad cluster."""

    def __init__(
        self,
        *,
        nomad: NomadClient,
        spec: GitSourceSpec,
        live: LiveView | None = None,
        redactor: Redactor | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.nomad = nomad
        self.spec = spec
        self.redactor = redactor or Redactor()
        self.clock = clock
        self.live: LiveView = live if live is not None else NomadLiveView(nomad)
        self.drift = DriftTracker()
        self.prune_guard = PruneGuard()
        self.parse_check = ParseCheck(nomad, enabled=spec.parse_check)
        self.variables_text: str | None = None
        self.drift_changes: dict[JobKey, list[FieldChange]] = {}

    # -- deciding (reads only) ---------------------------------------------------------------------------------

    async def decide(self, desired: DesiredState, *, check_parse: bool = True) -> SyncPlan:
        """The plan for `desired` against the cluster now. Reads and plans only; never writes."""
        live_full = await self.live.snapshot()
        live = {key: live_job_from_wire(job) for key, job in live_full.items()}
        drifted = await self._find_drift(desired, live, live_full)
        missing, owned_total = prune_candidates(desired, live, source=desired.source)
        policy = PrunePolicy(enabled=self.spec.prune, grace_seconds=self.spec.prune_grace,
                             max_share=self.spec.max_prune_share, force=self.spec.force_prune)  # fmt: skip
        prune = self.prune_guard.decide(missing=missing, owned_total=owned_total, complete=desired.complete,
                                        error_count=len(desired.errors), policy=policy, now=self.clock())  # fmt: skip
        plan = plan_sync(desired, live, adopt=self.spec.adopt, prune=prune, drifted=drifted,
                         self_heal=self.spec.self_heal)  # fmt: skip
        if not check_parse:
            return plan
        held: dict[JobKey, str] = {}
        for action in plan.of_kind(ActionKind.CREATE, ActionKind.UPDATE, ActionKind.ADOPT):
            assert action.desired is not None
            problem = await self.parse_check.check(action.desired, variables=self.variables_text)
            if problem is not None:
                held[action.key] = self.redactor.text(problem)
        if not held:
            return plan
        return plan_sync(desired, live, adopt=self.spec.adopt, prune=prune, drifted=drifted,
                         self_heal=self.spec.self_heal, held=held)  # fmt: skip

    async def _find_drift(
        self, desired: DesiredState, live: Mapping[JobKey, LiveJob], live_full: Mapping[JobKey, Mapping[str, Any]]
    ) -> dict[JobKey, str]:
        drifted: dict[JobKey, str] = {}
        for key, want in desired.jobs.items():
            have = live.get(key)
            if have is None or have.owner is None or have.owner.source != desired.source or have.stop:
                continue
            if have.owner.spec_hash != want.spec_hash:
                continue  # a change from git, not drift
            job = live_full[key]
            if self.drift.verdict(key, job, spec_hash=want.spec_hash) is DriftVerdict.IN_SYNC:
                self.drift_changes.pop(key, None)
                continue
            changes = await self.changes(with_owner_meta(want.job, have.owner), key, scaling=scaling_groups(want.job))
            if changes:
                self.drift_changes[key] = changes
                drifted[key] = summarize(changes)
            else:
                self.drift_changes.pop(key, None)
                self.drift.record(key, job, spec_hash=want.spec_hash)
        return drifted

    async def changes(self, job: Mapping[str, Any], key: JobKey, *, scaling: frozenset[str]) -> list[FieldChange]:
        """Nomad's plan diff of registering `job`, flattened and redacted (a read: changes nothing)."""
        answer = await self.nomad.plan_job(job, diff=True, namespace=key[0])
        return self.redactor.changes(changes_from_plan_diff(answer.get("Diff"), scaling=scaling))

    # -- applying ----------------------------------------------------------------------------------------------

    async def apply(
        self, plan: SyncPlan, desired: DesiredState, *, progress: ApplyProgress | None = None
    ) -> SyncReport:
        report = SyncReport(plan=plan)
        limit = asyncio.Semaphore(APPLY_CONCURRENCY)
        waves = plan.waves()
        for index, (wave, actions) in enumerate(waves):
            outcomes = await asyncio.gather(*(self._guarded(limit, action, desired, report) for action in actions))
            report.outcomes.update({outcome.key: outcome for outcome in outcomes})
            later = [a for _, rest in waves[index + 1 :] for a in rest]
            written = [o.key for o in outcomes if o.written]
            if later and written:
                for action in later:
                    report.outcomes.setdefault(action.key, JobOutcome(
                        action.key, SyncState.PENDING, f"waits for wave {wave} to be healthy",
                        path=action.desired.path if action.desired else "",
                    ))  # fmt: skip
                if progress is not None:
                    await progress(report, f"wave {wave} written; waiting for it to be healthy")
                unhealthy = await self._wait_healthy(written)
                for action in later:
                    report.outcomes.pop(action.key, None)
                if unhealthy:
                    report.waiting = f"wave {wave} is not healthy yet: {unhealthy}"
                    for action in later:
                        report.outcomes[action.key] = JobOutcome(
                            action.key, SyncState.PENDING, f"waits for wave {wave}: {unhealthy}",
                            path=action.desired.path if action.desired else "",
                        )  # fmt: skip
                    return report
        for action in plan.of_kind(ActionKind.PRUNE):
            outcome = await self._prune(action, desired, report)
            report.outcomes[action.key] = outcome
        return report

    async def _guarded(
        self, limit: asyncio.Semaphore, action: SyncAction, desired: DesiredState, report: SyncReport
    ) -> JobOutcome:
        async with limit:
            return await self._write(action, desired, report)

    async def _write(self, action: SyncAction, desired: DesiredState, report: SyncReport) -> JobOutcome:
        want = action.desired
        assert want is not None
        for _ in range(MAX_CONFLICT_RETRIES + 1):
            if action.kind is ActionKind.UNCHANGED:
                return self._outcome(want, SyncState.SYNCED, "in sync", desired)
            if action.kind in (ActionKind.CONFLICT, ActionKind.BLOCKED):
                state = SyncState.CONFLICT if action.kind is ActionKind.CONFLICT else SyncState.FAILED
                return self._outcome(want, state, action.reason, desired)
            try:
                return await self._register(action, want, desired, report)
            except _Redecide as redecided:
                action = redecided.action
            except Conflict:
                log.info("%s: %s lost a compare-and-swap; reading it again", desired.source, want.job_id)
                job = await self.live.refresh(want.key)
                have = live_job_from_wire(job) if job is not None else None
                action = decide_job(want, have, desired.source, self.spec.adopt)
        return self._outcome(want, SyncState.FAILED, "kept losing compare-and-swap races; retrying next sync", desired)

    async def _register(
        self, action: SyncAction, want: DesiredJob, desired: DesiredState, report: SyncReport
    ) -> JobOutcome:
        changes: list[FieldChange] = []
        modify_index = 0
        if action.kind is not ActionKind.CREATE and action.live is not None:
            # The plan may rest on a cached copy: decide again on the job as Nomad holds it now, and take its
            # JobModifyIndex for the compare-and-swap (rule 3).
            fresh = await self.live.refresh(want.key)
            have = live_job_from_wire(fresh) if fresh is not None else None
            if have is None or have.job_modify_index != action.live.job_modify_index:
                drift = None
                if action.reason.startswith("drifted from git ("):
                    drift = action.reason.removeprefix("drifted from git (").removesuffix("); self-heal")
                again = decide_job(want, have, desired.source, self.spec.adopt, drift, self.spec.self_heal)
                if again.kind is ActionKind.UNCHANGED:
                    return self._outcome(want, SyncState.SYNCED, "in sync", desired)
                if again.kind is not action.kind:
                    raise _Redecide(again)
                action = again
            assert action.live is not None
            modify_index = action.live.job_modify_index
            changes = await self.changes(want.marked_job, want.key, scaling=scaling_groups(want.job))
        submission = {"Source": want.source_text, "Format": "hcl2", "VariableFlags": dict(self.spec.variables),
                      "Variables": self.variables_text or ""}  # fmt: skip
        attempt = 0
        while True:
            attempt += 1
            try:
                result = await self.nomad.register_job(
                    want.marked_job, enforce_index=True, job_modify_index=modify_index,
                    preserve_counts=bool(scaling_groups(want.job)) and modify_index != 0,
                    submission=submission, namespace=want.namespace,
                )  # fmt: skip
                break
            except (Conflict, NotLeader):
                raise
            except NomadError as exc:
                if is_transient(exc) and attempt < MAX_WRITE_ATTEMPTS:
                    await asyncio.sleep(WRITE_RETRY_BASE_SECONDS * 2 ** (attempt - 1))
                    continue
                message = exc.message if isinstance(exc, APIError) else str(exc)
                return self._outcome(want, SyncState.FAILED, self.redactor.text(f"register failed: {message}"), desired)
        report.writes += 1
        self.drift.expect(want.key, spec_hash=want.spec_hash, job_modify_index=result.job_modify_index)
        self.drift_changes.pop(want.key, None)
        verb = {ActionKind.CREATE: "created", ActionKind.ADOPT: "adopted"}.get(action.kind, "updated")
        message = f"{verb} at {desired.revision[:12]}" + (f"; {summarize(changes)}" if changes else "")
        outcome = self._outcome(want, SyncState.SYNCED, message, desired)
        outcome.changes = changes
        outcome.written = True
        return outcome

    def _outcome(self, want: DesiredJob, state: SyncState, message: str, desired: DesiredState) -> JobOutcome:
        return JobOutcome(want.key, state, message, path=want.path, spec_hash=want.spec_hash, revision=desired.revision)

    async def _prune(self, action: SyncAction, desired: DesiredState, report: SyncReport) -> JobOutcome:
        key = action.key
        job = await self.live.refresh(key)
        have = live_job_from_wire(job) if job is not None else None
        # Decide again on what Nomad holds now: it must still be ours, running, and absent from git.
        ours = have is not None and have.owner is not None and have.owner.source == desired.source
        if have is None or have.owner is None or not ours or have.stop or key in desired.jobs:
            return JobOutcome(key, SyncState.ORPHANED, "changed since the plan; not pruned")
        attempt = 0
        while True:
            attempt += 1
            try:
                await self.nomad.deregister_job(key[1], purge=self.spec.purge, namespace=key[0])
                break
            except NotLeader:
                raise
            except NomadError as exc:
                if is_transient(exc) and attempt < MAX_WRITE_ATTEMPTS:
                    await asyncio.sleep(WRITE_RETRY_BASE_SECONDS * 2 ** (attempt - 1))
                    continue
                return JobOutcome(key, SyncState.FAILED, f"stop failed: {exc}", path=have.owner.path)
        report.writes += 1
        self.prune_guard.forget(key)
        self.drift.forget(key)
        verb = "purged" if self.spec.purge else "stopped"
        return JobOutcome(key, SyncState.PRUNED, f"{verb}: not in git for the grace period", path=have.owner.path)

    async def _wait_healthy(self, keys: list[JobKey]) -> str | None:
        """None once every job is Healthy; else, after the wave timeout, which jobs held the wave up and why."""
        deadline = self.clock() + self.spec.wave_timeout
        while True:
            health = await self.live.health(keys)
            waiting = {key: h for key, (_, h) in health.items() if h.state is not HealthState.HEALTHY}
            if not waiting:
                return None
            if self.clock() >= deadline:
                return _waiting_message(waiting)
            await asyncio.sleep(self.live.poll_interval)


class _Redecide(Exception):  # control flow inside `_write`, never raised out of the engine
    """The fresh read changed what to do with a job (e.g. a create became a conflict): decide with `action`."""

    def __init__(self, action: SyncAction) -> None:
        super().__init__(action.reason)
        self.action = action


def _waiting_message(waiting: Mapping[JobKey, JobHealth]) -> str:
    return "; ".join(f"{key[1]} {h.state}: {h.message}" for key, h in sorted(waiting.items()))
