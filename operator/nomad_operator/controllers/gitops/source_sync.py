"""One GitSource's loop: fetch -> convert changed files -> desired state -> plan -> apply (leader only) -> status.

The loop is where failures meet, so it decides what each one means for the cluster:
- the remote cannot be reached: nothing is applied or pruned, the last good revision stays in place, and the status
  says so with the retry time (backoff, capped); the next webhook or poll tries again;
- the source is misconfigured (bad URL, token over http, a ref that is both branch and tag): Stalled until it changes;
- a revision breaks a content rule (size, symlink): rejected, the last good working copy stays;
- a file fails to convert: that file's job is reported Failed, the rest sync, and nothing is pruned;
- a standby replica decides and reports but never writes; the leader check is also enforced by the client's guard.
Webhooks, the poll timer (with jitter), events on owned jobs and `requestedAt` all go through one FetchTrigger, so
any burst becomes one cycle.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from nomad_operator.controllers.gitops.defaults import FETCH_RETRY_BASE_SECONDS, FETCH_RETRY_MAX_SECONDS
from nomad_operator.controllers.gitops.desired_state import DesiredState, JobKey, build_desired_state
from nomad_operator.controllers.gitops.git_errors import ContentRejected, FetchError, GitSourceError, SourceConfigError
from nomad_operator.controllers.gitops.gitauth import GitAuth
from nomad_operator.controllers.gitops.health import HealthState, JobHealth
from nomad_operator.controllers.gitops.job_statuses import job_statuses
from nomad_operator.controllers.gitops.live_jobs import LiveView
from nomad_operator.controllers.gitops.metrics import GitOpsMetrics
from nomad_operator.controllers.gitops.parse_check import variables_text
from nomad_operator.controllers.gitops.redaction import Redactor
from nomad_operator.controllers.gitops.repository import GitRepository, Revision
from nomad_operator.controllers.gitops.source_spec import GitSourceSpec
from nomad_operator.controllers.gitops.source_status import Phase, SourceStatus, SyncRecord, SyncState
from nomad_operator.controllers.gitops.sync_engine import SyncEngine, SyncReport
from nomad_operator.controllers.gitops.sync_plan import ActionKind, SyncPlan
from nomad_operator.controllers.gitops.trigger import FetchTrigger, jittered_interval
from nomad_operator.jobspec import JobLoader, JobspecError, LoadedJob
from nomad_operator.nomad import NomadClient, NomadError, NotLeader
from nomad_operator.runtime.conditions import format_time

log = logging.getLogger(__name__)

EVENT_REASON = "event"


class StatusSink(Protocol):
    """Stores a source's status document (a CAS write on the resource, or memory in single-source mode)."""

    async def write_status(self, source: str, document: dict[str, Any]) -> None: ...


class LeaderCheck(Protocol):
    def __call__(self) -> bool: ...


class JobImpactLike(Protocol):
    """What the node controller says about a job touched by a node-down incident (`nodes.JobImpact`)."""

    @property
    def degraded(self) -> bool: ...

    @property
    def message(self) -> str: ...


class NodeImpactView(Protocol):
    """The node controller's read-only incident view (`nodes.NodeIncidents` satisfies it)."""

    def job_impact(self, namespace: str, job_id: str) -> JobImpactLike | None: ...


class MemoryStatusSink:
    """Keeps the last status document per source: single-source mode serves it over HTTP."""

    def __init__(self) -> None:
        self.documents: dict[str, dict[str, Any]] = {}

    async def write_status(self, source: str, document: dict[str, Any]) -> None:
        self.documents[source] = document


@dataclass
class CycleResult:
    """What one cycle did: the plan (None when nothing was decided) and the report of the apply."""

    plan: SyncPlan | None
    report: SyncReport | None
    desired: DesiredState | None
    result: str


def _always_leader() -> bool:
    return True


class GitSourceSync:
    """The working copy, trigger, engine and status of one source, and its loop."""

    def __init__(
        self,
        *,
        spec: GitSourceSpec,
        nomad: NomadClient,
        workdir: Path,
        loader: JobLoader,
        auth: GitAuth | None = None,
        sink: StatusSink | None = None,
        metrics: GitOpsMetrics | None = None,
        is_leader: LeaderCheck = _always_leader,
        generation: int = 0,
        live: LiveView | None = None,
        impacts: NodeImpactView | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self.nomad = nomad
        self.loader = loader
        self.sink = sink or MemoryStatusSink()
        self.metrics = metrics
        self.is_leader = is_leader
        self.generation = generation
        self.trigger = FetchTrigger(name=spec.source_id)
        self.repository = GitRepository(url=spec.url, ref=spec.ref, directory=workdir, auth=auth)
        self.engine = SyncEngine(nomad=nomad, spec=spec, live=live, redactor=Redactor(), clock=clock)
        self.impacts = impacts
        self.status = SourceStatus()
        self.desired: DesiredState | None = None
        self._loaded: dict[str, LoadedJob | JobspecError] = {}
        self._loaded_sha: str | None = None
        self._previous_document: dict[str, Any] | None = None
        self._next_retry: float | None = None
        self.cycles = 0

    # -- one cycle -----------------------------------------------------------------------------------------------

    async def sync_once(self, *, dry_run: bool = False, reasons: frozenset[str] = frozenset()) -> CycleResult:
        started = time.monotonic()
        started_at = format_time(datetime.now(UTC))
        self.cycles += 1
        if self.spec.suspend:
            self._set_phase(Phase.SUSPENDED, "Suspended", "suspended: no fetch, no apply")
            await self._publish()
            return CycleResult(None, None, self.desired, "Suspended")
        only_events = bool(reasons) and reasons <= {EVENT_REASON}
        try:
            # An event on an owned job asks for drift and health, not for git: the working copy is current enough.
            revision = None if only_events and self.repository.current is not None else await self.repository.poll()
        except SourceConfigError as exc:
            return await self._fetch_failed(exc, stalled=True, started=started, started_at=started_at)
        except (FetchError, ContentRejected, GitSourceError) as exc:
            return await self._fetch_failed(exc, stalled=False, started=started, started_at=started_at)
        self.status.fetch_failures = 0
        self._next_retry = None
        current = self.repository.current
        assert current is not None
        self.status.last_fetched_revision = current.sha
        self.status.last_fetched_at = started_at
        if revision is not None or self.desired is None:
            self.desired = await self._desired(current)
        desired = self.desired
        try:
            plan = await self.engine.decide(desired)
            if dry_run:
                return CycleResult(plan, None, desired, "DryRun")
            if not self.is_leader():
                self._apply_plan_status(plan, None, desired)
                self._set_phase(Phase.RECONCILING, "Standby", "standby replica: the leader applies")
                await self._publish()
                return CycleResult(plan, None, desired, "Standby")
            if plan.has_changes:
                self._apply_plan_status(plan, None, desired)
                self._set_phase(Phase.RECONCILING, "Progressing", f"applying revision {desired.revision[:12]}")
                await self._publish()

            async def progress(partial: SyncReport, note: str) -> None:
                self._apply_plan_status(plan, partial, desired)
                await self._refresh_health(partial, everything=False)
                self._set_phase(Phase.RECONCILING, "Progressing", f"revision {desired.revision[:12]}: {note}")
                await self._publish()

            report = await self.engine.apply(plan, desired, progress=progress)
        except NotLeader:
            self._set_phase(Phase.RECONCILING, "Standby", "lost leadership during the sync; the new leader finishes")
            await self._publish()
            return CycleResult(None, None, desired, "Standby")
        except NomadError as exc:
            message = f"cannot reach Nomad: {exc}"
            self.status.last_error = message
            self._set_phase(Phase.FAILED, "NomadUnavailable", message)
            await self._finish(desired.revision, started, started_at, "Failed", 0, message)
            return CycleResult(None, None, desired, "Failed")
        self._apply_plan_status(plan, report, desired)
        await self._refresh_health(report, everything="interval" in reasons or revision is not None)
        previous = (self.status.phase, self.status.reason, self.status.message)
        result, message = self._conclude(plan, report, desired)
        if only_events and not report.writes and previous == (self.status.phase, self.status.reason, message):
            # An event that changed nothing here (most events: allocations moving) is not a sync worth a history
            # entry; the status still goes out, since health may have changed.
            await self._publish()
        else:
            await self._finish(desired.revision, started, started_at, result, report.writes, message)
        return CycleResult(plan, report, desired, result)

    async def _desired(self, revision: Revision) -> DesiredState:
        root = self.repository.directory
        paths = revision.paths(self.spec.globs)
        # Only the job files that changed since the last converted revision are read again: a one-file push to a
        # thousand-job repository converts one file. Any other change (a var file, a template a job reads) and
        # anything unusual convert every file again, through the loader's content-hash cache.
        follows = self._loaded_sha is not None and revision.previous_sha == self._loaded_sha
        kept = self._loaded if follows and revision.changed <= set(paths) else {}
        to_load = [path for path in paths if path not in kept or path in revision.changed]
        loaded = await self.loader.load_many(
            [root / path for path in to_load],
            variables=self.spec.variables,
            var_files=[root / path for path in self.spec.var_files],
            root_dir=root,
        )
        by_path = {**kept, **dict(zip(to_load, loaded, strict=True))}
        self._loaded = {path: by_path[path] for path in paths}
        self._loaded_sha = revision.sha
        results = [self._loaded[path] for path in paths]
        prefix = str(root) + "/"
        files: list[tuple[str, LoadedJob | JobspecError]] = []
        for path, result in zip(paths, results, strict=True):
            if isinstance(result, JobspecError):
                result = JobspecError(str(result).replace(prefix, ""))
            files.append((path, result))
        var_texts = []
        for path in self.spec.var_files:
            try:
                var_texts.append(self.repository.read_file(path).decode("utf-8", "replace"))
            except GitSourceError as exc:
                files.append((path, JobspecError(f"var file: {exc}")))
        self.engine.variables_text = variables_text(self.spec.variables, var_texts)
        return build_desired_state(source=self.spec.source_id, revision=revision.sha, files=files,
                                   allowed_namespace=self.spec.namespace_allowed)  # fmt: skip

    async def _fetch_failed(
        self, exc: Exception, *, stalled: bool, started: float, started_at: str
    ) -> CycleResult:
        self.status.fetch_failures += 1
        delay = min(FETCH_RETRY_MAX_SECONDS, FETCH_RETRY_BASE_SECONDS * 2 ** (self.status.fetch_failures - 1))
        self._next_retry = None if stalled else delay
        kept = self.status.last_applied_revision
        keep = f"; the cluster keeps revision {kept[:12]}" if kept else "; nothing was applied"
        if stalled:
            message = f"the source cannot work as configured: {exc}{keep}"
            self._set_phase(Phase.STALLED, "InvalidSource", message)
        else:
            message = f"fetch failed ({self.status.fetch_failures} in a row): {exc}; retrying in {delay:.0f} s{keep}"
            reason = "RevisionRejected" if isinstance(exc, ContentRejected) else "FetchFailed"
            self._set_phase(Phase.FAILED, reason, message)
        self.status.last_error = message
        revision = self.status.last_fetched_revision or ""
        await self._finish(revision, started, started_at, "FetchFailed", 0, message)
        return CycleResult(None, None, self.desired, "FetchFailed")

    # -- status --------------------------------------------------------------------------------------------------

    def _set_phase(self, phase: Phase, reason: str, message: str) -> None:
        self.status.phase, self.status.reason, self.status.message = phase, reason, message

    def _apply_plan_status(self, plan: SyncPlan, report: SyncReport | None, desired: DesiredState) -> None:
        self.status.jobs = job_statuses(plan, report, source=desired.source, previous=self.status.jobs)
        self.status.file_errors = dict(desired.errors)

    async def _refresh_health(self, report: SyncReport, *, everything: bool) -> None:
        # Health from the informer cache costs nothing, so every job is looked at every cycle: a lost allocation
        # shows at once. Read from Nomad (one-shot commands), only jobs that changed or were not healthy yet.
        everything = everything or self.engine.live.event_driven
        wanted = [
            key for key, job in self.status.jobs.items()
            if job.sync is not SyncState.PRUNED
            and (everything or key in report.outcomes or job.health is not HealthState.HEALTHY)
        ]  # fmt: skip
        if not wanted:
            return
        try:
            health = await self.engine.live.health(wanted)
        except NomadError as exc:
            log.warning("%s: cannot read job health: %s", self.spec.source_id, exc)
            return
        for key, (job, value) in health.items():
            entry = self.status.jobs[key]
            value = self._with_node_impact(key, value)
            entry.health = value.state
            if job is not None and isinstance(job.get("Version"), int):
                entry.version = job["Version"]
            if entry.sync is SyncState.SYNCED and value.state is not HealthState.HEALTHY:
                entry.message = f"{entry.message}; {value.message}" if entry.message != "in sync" else value.message

    def _with_node_impact(self, key: JobKey, health: JobHealth) -> JobHealth:
        """A job that a node-down incident degraded says so, with the node and what blocks the lost capacity."""
        if self.impacts is None or health.state is HealthState.MISSING:
            return health
        impact = self.impacts.job_impact(key[0], key[1])
        if impact is None or not impact.degraded:
            return health
        return JobHealth(HealthState.DEGRADED, impact.message, health.running, health.expected)

    def _conclude(self, plan: SyncPlan, report: SyncReport, desired: DesiredState) -> tuple[str, str]:
        failed = [j for j in self.status.jobs.values() if j.sync in (SyncState.FAILED, SyncState.CONFLICT)]
        parts = [f"revision {desired.revision[:12]}: {len(desired.jobs)} job(s)"]
        counts = plan.counts()
        parts += [f"{n} {kind}" for kind, n in counts.items() if n and kind != ActionKind.UNCHANGED.value]
        if desired.errors:
            parts.append(f"{len(desired.errors)} file(s) failed: " + ", ".join(sorted(desired.errors)))
        if failed:
            parts.append("failed: " + "; ".join(f"{j.key[1]}: {j.message}" for j in failed[:5]))
        if report.waiting:
            parts.append(report.waiting)
        message = "; ".join(parts)
        if desired.errors or failed:
            reason = "Conflict" if failed and all(j.sync is SyncState.CONFLICT for j in failed) else "SyncFailed"
            self.status.last_error = message
            self._set_phase(Phase.FAILED, reason, message)
            if not desired.errors and not [j for j in failed if j.sync is SyncState.FAILED]:
                self.status.last_applied_revision = desired.revision
            return "Failed", message
        if report.waiting:
            self._set_phase(Phase.RECONCILING, "WaitingForWave", message)
            return "Progressing", message
        self.status.last_applied_revision = desired.revision
        self.status.last_applied_at = format_time(datetime.now(UTC))
        self.status.last_error = None
        self._set_phase(Phase.SYNCED, "ReconciliationSucceeded", message)
        return ("Applied" if report.writes else "NoChange"), message

    async def _finish(
        self, revision: str, started: float, started_at: str, result: str, writes: int, message: str
    ) -> None:
        duration = time.monotonic() - started
        self.status.record(SyncRecord(revision[:12], started_at, duration, result, writes, message))
        if self.metrics is not None:
            self.metrics.synced(self.spec.source_id, result=result, duration=duration, writes=writes)
            combos: dict[tuple[str, str], int] = {}
            for job in self.status.jobs.values():
                combos[(str(job.sync), str(job.health))] = combos.get((str(job.sync), str(job.health)), 0) + 1
            drifted = sum(1 for job in self.status.jobs.values() if job.sync is SyncState.OUT_OF_SYNC)
            self.metrics.set_jobs(self.spec.source_id, combos, drifted=drifted + len(self.engine.drift_changes))
        await self._publish()

    @property
    def last_document(self) -> dict[str, Any] | None:
        """The status document published last (None before the first cycle)."""
        return self._previous_document

    async def _publish(self) -> None:
        document = self.status.to_document(
            previous=self._previous_document, generation=self.generation, now=datetime.now(UTC)
        )
        self._previous_document = document
        try:
            await self.sink.write_status(self.spec.source_id, document)
        except Exception as exc:  # the status store failing must not stop the sync; the next cycle writes again
            log.warning("%s: cannot store status: %s", self.spec.source_id, exc)

    # -- the loop ------------------------------------------------------------------------------------------------

    def request(self, *, reason: str) -> None:
        self.trigger.request(reason=reason)

    async def run(self) -> None:
        """Sync now, then on every request or poll interval (with jitter); until cancelled."""
        reasons: frozenset[str] = frozenset({"start"})
        while True:
            try:
                await self.sync_once(reasons=reasons)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug in one cycle must not end the source's loop
                log.exception("%s: sync cycle failed", self.spec.source_id)
            wait = self._next_retry if self._next_retry is not None else jittered_interval(self.spec.interval)
            reasons = await self.trigger.wait(poll_after=wait)

