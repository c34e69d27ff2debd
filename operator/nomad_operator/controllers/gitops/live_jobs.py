"""The live side of a sync, read straight from Nomad: for one-shot commands (`plan`, `sync`) that have no informer.

The long-running operator reads the cluster from the informer cache (`cached_live.CachedLiveView`); a one-shot command
has no cache and no event stream, so it asks Nomad. Both satisfy `LiveView`, so the sync engine decides the same way
either way. The hazard here is cost: job list stubs carry no Meta, so owner marks need the full job, and reading every
job on every call would cost a request per job. Full jobs are kept by (namespace, ID) and re-read only when the list
shows a new ModifyIndex; health reads (allocations, latest deployment, evaluations) are bounded in parallel, because
a Raspberry Pi answers slowly under a burst.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from nomad_operator.controllers.gitops.defaults import HEALTH_CONCURRENCY, WAVE_POLL_SECONDS
from nomad_operator.controllers.gitops.desired_state import JobKey
from nomad_operator.controllers.gitops.health import JobHealth, job_health
from nomad_operator.nomad import NomadClient, NotFound

ALL_NAMESPACES = "*"

LiveHealth = dict[JobKey, tuple[Mapping[str, Any] | None, JobHealth]]
"""Per job: the live job (None when absent) and its health."""


class LiveView(Protocol):
    """Where a sync reads the cluster: every job, one job fresh from Nomad, and job health."""

    reads: int
    """Full job reads sent to Nomad (a cache-backed view sends them only right before a write)."""

    @property
    def event_driven(self) -> bool:
        """True when reads are free and kept current by events: health is refreshed for every job every cycle."""
        ...

    @property
    def poll_interval(self) -> float:
        """How often a wave's health is looked at again while the sync waits for it."""
        ...

    async def snapshot(self) -> Mapping[JobKey, Mapping[str, Any]]:
        """Every job of the cluster (full objects, with Meta) by (namespace, ID)."""
        ...

    async def refresh(self, key: JobKey) -> Mapping[str, Any] | None:
        """The job as Nomad holds it now (None when absent): the base of a compare-and-swap write."""
        ...

    async def health(self, keys: Iterable[JobKey]) -> LiveHealth:
        """The live job and health of each key."""
        ...


class NomadLiveView:
    """Full jobs of the cluster, refreshed from the job list by ModifyIndex; health read per job from Nomad."""

    def __init__(self, nomad: NomadClient) -> None:
        self._nomad = nomad
        self._jobs: dict[JobKey, dict[str, Any]] = {}
        self.reads = 0

    @property
    def event_driven(self) -> bool:
        return False

    @property
    def poll_interval(self) -> float:
        return WAVE_POLL_SECONDS

    async def snapshot(self) -> dict[JobKey, dict[str, Any]]:
        stubs = (await self._nomad.list_jobs(namespace=ALL_NAMESPACES)).value
        seen: dict[JobKey, int] = {}
        for stub in stubs:
            key = (str(stub.get("Namespace") or "default"), str(stub.get("ID")))
            seen[key] = int(stub.get("ModifyIndex") or 0)
        stale = [key for key, index in seen.items() if int(self._jobs.get(key, {}).get("ModifyIndex") or -1) != index]
        await self._read_many(stale)
        self._jobs = {key: job for key, job in self._jobs.items() if key in seen}
        return dict(self._jobs)

    async def refresh(self, key: JobKey) -> dict[str, Any] | None:
        await self._read_many([key])
        return self._jobs.get(key)

    async def health(self, keys: Iterable[JobKey]) -> LiveHealth:
        wanted = list(keys)
        await self._read_many(wanted)
        limit = asyncio.Semaphore(HEALTH_CONCURRENCY)

        async def one(key: JobKey) -> tuple[JobKey, tuple[Mapping[str, Any] | None, JobHealth]]:
            job = self._jobs.get(key)
            if job is None or job.get("Stop") is True:
                return key, (job, job_health(job, []))
            async with limit:
                namespace, job_id = key
                allocations = (await self._nomad.job_allocations(job_id, namespace=namespace)).value
                deployment = (await self._nomad.job_deployment(job_id, namespace=namespace)).value
                evaluations = (await self._nomad.job_evaluations(job_id, namespace=namespace)).value
            return key, (job, job_health(job, allocations, deployment=deployment, evaluations=evaluations))

        return dict(await asyncio.gather(*(one(key) for key in wanted)))

    async def _read_many(self, keys: Iterable[JobKey]) -> None:
        limit = asyncio.Semaphore(HEALTH_CONCURRENCY)

        async def read(key: JobKey) -> None:
            async with limit:
                self.reads += 1
                try:
                    job = (await self._nomad.read_job(key[1], namespace=key[0])).value
                except NotFound:
                    self._jobs.pop(key, None)
                    return
                self._jobs[key] = job

        await asyncio.gather(*(read(key) for key in keys))
