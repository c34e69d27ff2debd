"""The live side of a sync, read from the informer cache: no request per cycle, and health that follows events.

The operator already holds every Job, Allocation, Evaluation, Deployment and Node in one projected cache kept equal to
Nomad by the informer (list, then watch). Reading it costs nothing, so a sync cycle reads no job from Nomad at all,
and every owned job's health is recomputed each cycle from the allocations, evaluations and deployments that just
changed: a node that goes down shows in the status within the events' latency, not at the next poll.

The cache can lag Nomad by an event's latency, so it is never the base of a write: right before a register that
depends on the live JobModifyIndex, the sync engine asks `refresh()`, which reads that one job from Nomad. A create
rests on EnforceIndex 0 instead, which Nomad refuses when the job exists after all. Reads wait for the cache's first
list (`synced`), so a sync never decides on an empty cache, which would look like "every job is missing".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from typing import Any, Final, Protocol

from nomad_operator.controllers.gitops.desired_state import JobKey
from nomad_operator.controllers.gitops.health import job_health
from nomad_operator.controllers.gitops.live_jobs import LiveHealth
from nomad_operator.nomad import NomadClient, NotFound
from nomad_operator.runtime.cache import ALLOCATIONS_BY_JOB, CacheIndex
from nomad_operator.runtime.reconciler import ObjectKey

CACHED_WAVE_POLL_SECONDS: Final = 0.05
"""A wave's health is a cache read, so it is looked at often: the next wave starts soon after the first is healthy."""


def _job_key_of(obj: Mapping[str, Any]) -> list[Hashable]:
    job_id = obj.get("JobID")
    return [ObjectKey("Job", str(obj.get("Namespace") or "default"), job_id)] if isinstance(job_id, str) else []


EVALUATIONS_BY_JOB: Final = CacheIndex("gitops-evaluations-by-job", "Evaluation", _job_key_of)
DEPLOYMENTS_BY_JOB: Final = CacheIndex("gitops-deployments-by-job", "Deployment", _job_key_of)
GITOPS_INDEXES: Final = (EVALUATIONS_BY_JOB, DEPLOYMENTS_BY_JOB)
"""Indexes the GitOps controller needs besides the runtime's defaults: build the operator's cache with them."""


class CacheReader(Protocol):
    """The part of `runtime.cache.Cache` read here."""

    def get(self, key: ObjectKey) -> Mapping[str, Any] | None: ...

    def objects(self, kind: str, *, namespace: str | None = None) -> list[Mapping[str, Any]]: ...

    def by_index(self, index_name: str, value: Hashable) -> list[Mapping[str, Any]]: ...


def _create_index(obj: Mapping[str, Any]) -> int:
    value = obj.get("CreateIndex")
    return value if isinstance(value, int) else 0


class CachedLiveView:
    """`LiveView` over the operator's cache; `refresh` is the only call that reaches Nomad."""

    def __init__(self, *, cache: CacheReader, nomad: NomadClient, synced: Callable[[], Awaitable[None]]) -> None:
        self._cache = cache
        self._nomad = nomad
        self._synced = synced
        self.reads = 0

    @property
    def event_driven(self) -> bool:
        return True

    @property
    def poll_interval(self) -> float:
        return CACHED_WAVE_POLL_SECONDS

    async def snapshot(self) -> dict[JobKey, Mapping[str, Any]]:
        await self._synced()
        jobs: dict[JobKey, Mapping[str, Any]] = {}
        for job in self._cache.objects("Job"):
            jobs[(str(job.get("Namespace") or "default"), str(job.get("ID")))] = job
        return jobs

    async def refresh(self, key: JobKey) -> Mapping[str, Any] | None:
        self.reads += 1
        try:
            return (await self._nomad.read_job(key[1], namespace=key[0])).value
        except NotFound:
            return None

    async def health(self, keys: Iterable[JobKey]) -> LiveHealth:
        await self._synced()
        result: LiveHealth = {}
        for key in keys:
            ref = ObjectKey("Job", key[0], key[1])
            job = self._cache.get(ref)
            if job is None or job.get("Stop") is True:
                result[key] = (job, job_health(job, []))
                continue
            allocations = self._cache.by_index(ALLOCATIONS_BY_JOB.name, ref)
            evaluations = self._cache.by_index(EVALUATIONS_BY_JOB.name, ref)
            deployment = max(self._cache.by_index(DEPLOYMENTS_BY_JOB.name, ref), key=_create_index, default=None)
            result[key] = (job, job_health(job, allocations, deployment=deployment, evaluations=evaluations))
        return result
