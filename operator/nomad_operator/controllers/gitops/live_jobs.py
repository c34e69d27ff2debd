"""The live side of a sync: Nomad's jobs, read cheaply, and each job's health.

Job list stubs carry no Meta, so owner marks need the full job; reading every job on every sync would cost a request
per job per cycle. Full jobs are therefore kept here by (namespace, ID) and re-read only when the list shows a new
ModifyIndex: a steady cluster costs one list request a sync, and no write ever. Health reads (allocations, latest
deployment, evaluations) are bounded in parallel, because a Raspberry Pi answers slowly under a burst.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from nomad_operator.controllers.gitops.defaults import HEALTH_CONCURRENCY
from nomad_operator.controllers.gitops.desired_state import JobKey
from nomad_operator.controllers.gitops.health import JobHealth, job_health
from nomad_operator.nomad import NomadClient, NotFound

ALL_NAMESPACES = "*"


class LiveJobs:
    """Full jobs of the cluster, refreshed from the job list by ModifyIndex."""

    def __init__(self, nomad: NomadClient) -> None:
        self._nomad = nomad
        self._jobs: dict[JobKey, dict[str, Any]] = {}
        self.reads = 0

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
        """Read one job again now (after a write or a conflict)."""
        await self._read_many([key])
        return self._jobs.get(key)

    def cached(self, key: JobKey) -> dict[str, Any] | None:
        return self._jobs.get(key)

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


async def read_health(
    nomad: NomadClient, jobs: Mapping[JobKey, Mapping[str, Any] | None]
) -> dict[JobKey, JobHealth]:
    """The health of each job (None: not in Nomad), three reads a job, a few jobs at a time."""
    limit = asyncio.Semaphore(HEALTH_CONCURRENCY)

    async def one(key: JobKey, job: Mapping[str, Any] | None) -> tuple[JobKey, JobHealth]:
        if job is None or job.get("Stop") is True:
            return key, job_health(job, [])
        async with limit:
            namespace, job_id = key
            allocations = (await nomad.job_allocations(job_id, namespace=namespace)).value
            deployment = (await nomad.job_deployment(job_id, namespace=namespace)).value
            evaluations = (await nomad.job_evaluations(job_id, namespace=namespace)).value
        return key, job_health(job, allocations, deployment=deployment, evaluations=evaluations)

    results = await asyncio.gather(*(one(key, job) for key, job in jobs.items()))
    return dict(results)
