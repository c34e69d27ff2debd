"""The GitOps controller on the runtime: cluster changes on owned jobs wake the sources that own them.

A hand edit of a job, a failed deployment, a lost allocation or a node going down must show in the owning source's
status (and a drift be healed) within the events' latency, not at the next poll. The runtime's informer keeps the
cache and maps every change of a watched object to a key through these `Watch`es; the reconcile of a job key asks each
source that owns or wants the job for a cycle, and a node change asks every source (which jobs a node carries is in
the allocations, and every job's health is recomputed from the cache anyway). A cycle reads the cache again
(level-based), so a missed or replayed event costs nothing but a later wake-up; bursts collapse twice, in the
runtime's queue (one key per job) and in each source's FetchTrigger (one cycle per burst).

The `fields` of each Watch are what the GitOps side reads from the cache: whole jobs (the drift fingerprint covers
the spec), and of allocations, evaluations and deployments only what job health needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final, Protocol

from nomad_operator.controllers.gitops.desired_state import JobKey
from nomad_operator.controllers.gitops.source_sync import EVENT_REASON, GitSourceSync
from nomad_operator.runtime.reconciler import (
    ALL_FIELDS,
    Controller,
    ObjectKey,
    Result,
    Watch,
    job_of_allocation,
    job_of_deployment,
    job_of_evaluation,
)

GITOPS_CONTROLLER_NAME: Final = "gitops"
ALL_SOURCES_KEY: Final = ObjectKey("GitSources", "", "all")
"""The key a node change maps to: every source looks again."""

JOB_FIELDS: Final = (ALL_FIELDS,)
ALLOCATION_FIELDS: Final = ("JobID", "TaskGroup", "ClientStatus", "DesiredStatus", "NodeID", "CreateIndex")
EVALUATION_FIELDS: Final = ("JobID", "Status", "CreateIndex", "FailedTGAllocs")
DEPLOYMENT_FIELDS: Final = ("JobID", "JobVersion", "Status", "StatusDescription", "CreateIndex")
NODE_FIELDS: Final = ("Status", "SchedulingEligibility")
MAX_CONCURRENCY: Final = 4


class SourceLookup(Protocol):
    """Which sources own or want a job, and all of them (`source_set.SourceSet` satisfies it)."""

    def owners(self, key: JobKey, job: Any = None) -> list[GitSourceSync]: ...

    def request_all(self, *, reason: str) -> None: ...


class JobReader(Protocol):
    def __call__(self, key: ObjectKey, /) -> Mapping[str, Any] | None: ...


def _every_source(_node: Mapping[str, Any]) -> Iterable[ObjectKey]:
    return [ALL_SOURCES_KEY]


class JobEventRouter:
    """The reconcile behind the GitOps controller: wake the owners of a changed job (or every source)."""

    def __init__(self, *, sources: SourceLookup, read_job: JobReader) -> None:
        self._sources = sources
        self._read_job = read_job
        self.wakeups = 0

    async def reconcile(self, key: ObjectKey, /) -> Result:
        if key == ALL_SOURCES_KEY:
            self._sources.request_all(reason=EVENT_REASON)
            self.wakeups += 1
            return Result()
        job_key = (key.namespace or "default", key.name)
        for source in self._sources.owners(job_key, self._read_job(key)):
            source.request(reason=EVENT_REASON)
            self.wakeups += 1
        return Result()

    def controller(self) -> Controller:
        return Controller(
            GITOPS_CONTROLLER_NAME,
            reconcile=self.reconcile,
            watches=[
                Watch("Job", fields=JOB_FIELDS),
                Watch("Allocation", map_to=job_of_allocation, fields=ALLOCATION_FIELDS),
                Watch("Evaluation", map_to=job_of_evaluation, fields=EVALUATION_FIELDS),
                Watch("Deployment", map_to=job_of_deployment, fields=DEPLOYMENT_FIELDS),
                Watch("Node", map_to=_every_source, fields=NODE_FIELDS),
            ],
            max_concurrency=MAX_CONCURRENCY,
            resync_period=None,  # the sources poll on their own interval
        )

