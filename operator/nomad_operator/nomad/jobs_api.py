"""The jobs part of the Nomad API: list, read, plan, parse, register, deregister, and a job's related objects.

The hazard here is the register call. Sent twice, a register without `EnforceIndex` may create two versions of a job,
so it is retried only when `enforce_index` makes a repeat harmless (the second attempt then fails with `Conflict`,
which means "re-read and decide again"). Plans and parses are POST/PUT requests that change nothing, so they are
neither guarded nor treated as writes. Job JSON stays Nomad's wire form (PascalCase dicts) in both directions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Unpack
from urllib.parse import quote

from nomad_operator.nomad.list_pages import PagedLists, PageOptions
from nomad_operator.nomad.results import JobWriteResult, JSONObject, QueryResult, expect_object
from nomad_operator.nomad.transport import CallOptions, ListOptions, ReadOptions


def job_path(job_id: str, suffix: str = "") -> str:
    """`/v1/job/<id><suffix>` with the ID escaped (job IDs may hold characters that are special in a URL)."""
    if not job_id:
        raise ValueError("a job ID must not be empty")
    return f"/v1/job/{quote(job_id, safe='')}{suffix}"


class JobsAPI(PagedLists):
    """Calls under /v1/jobs and /v1/job/:id."""

    async def list_jobs(
        self, *, prefix: str | None = None, **options: Unpack[ListOptions]
    ) -> QueryResult[list[JSONObject]]:
        """Job stubs (ID, Status, JobModifyIndex...). Blocking with `index=`; one page with `per_page=`."""
        return await self._list_by_prefix("/v1/jobs", prefix=prefix, **options)

    def job_pages(
        self, *, prefix: str | None = None, **options: Unpack[PageOptions]
    ) -> AsyncIterator[QueryResult[list[JSONObject]]]:
        """Job stubs a page at a time, ordered by (Namespace, ID); each page carries its own index."""
        return self._pages("/v1/jobs", prefix=prefix, **options)

    async def read_job(self, job_id: str, **options: Unpack[ReadOptions]) -> QueryResult[JSONObject]:
        """The full job; `NotFound` when it does not exist."""
        return await self._query(job_path(job_id), **options)

    async def register_job(
        self,
        job: Mapping[str, Any],
        *,
        enforce_index: bool = False,
        job_modify_index: int = 0,
        preserve_counts: bool = False,
        submission: Mapping[str, Any] | None = None,
        **options: Unpack[CallOptions],
    ) -> JobWriteResult:
        """Register (create or update) a job. With `enforce_index`, Nomad refuses unless the live job's
        JobModifyIndex equals `job_modify_index` (0 = "only if new"), raising `Conflict`."""
        body: dict[str, Any] = {"Job": job, "EnforceIndex": enforce_index, "JobModifyIndex": job_modify_index}
        if preserve_counts:
            body["PreserveCounts"] = True
        if submission is not None:
            body["Submission"] = submission
        answer = await self._send("PUT", "/v1/jobs", body=body, idempotent=enforce_index, **options)
        return JobWriteResult.from_wire(expect_object(answer.body, what="register job"), header_index=answer.index)

    async def plan_job(
        self, job: Mapping[str, Any], *, diff: bool = True, **options: Unpack[CallOptions]
    ) -> JSONObject:
        """A dry-run of a register: the scheduler's annotations and, with `diff`, the field diff. Changes nothing."""
        answer = await self._send(
            "PUT",
            job_path(_job_id(job), "/plan"),
            body={"Job": job, "Diff": diff},
            idempotent=True,
            changes_state=False,
            **options,
        )
        return expect_object(answer.body, what="plan job")

    async def parse_job(
        self, hcl: str, *, variables: str | None = None, canonicalize: bool = False, **options: Unpack[CallOptions]
    ) -> JSONObject:
        """Nomad's own HCL2 parse of a job file: a bare job JSON, not wrapped in {"Job": ...}. Changes nothing.

        `variables` is the text of a variables file (HCL `name = value` lines), as the CLI's -var-file sends it.
        """
        body: dict[str, Any] = {"JobHCL": hcl, "Canonicalize": canonicalize}
        if variables is not None:
            body["Variables"] = variables
        answer = await self._send(
            "PUT", "/v1/jobs/parse", body=body, idempotent=True, changes_state=False, namespaced=False, **options
        )
        return expect_object(answer.body, what="parse job")

    async def deregister_job(
        self, job_id: str, *, purge: bool = False, **options: Unpack[CallOptions]
    ) -> JobWriteResult:
        """Stop a job (it stays, Stop=true, until GC), or remove it at once with `purge`. An unknown job is a no-op."""
        params = {"purge": "true"} if purge else None
        answer = await self._send("DELETE", job_path(job_id), params=params, idempotent=True, **options)
        return JobWriteResult.from_wire(expect_object(answer.body, what="deregister job"), header_index=answer.index)

    async def evaluate_job(
        self, job_id: str, *, force_reschedule: bool = False, **options: Unpack[CallOptions]
    ) -> JobWriteResult:
        """Ask the scheduler to evaluate the job again. Not retried: each attempt creates an evaluation."""
        body = {"JobID": job_id, "EvalOptions": {"ForceReschedule": force_reschedule}}
        answer = await self._send("PUT", job_path(job_id, "/evaluate"), body=body, idempotent=False, **options)
        return JobWriteResult.from_wire(expect_object(answer.body, what="evaluate job"), header_index=answer.index)

    async def scale_job(
        self,
        job_id: str,
        *,
        group: str,
        count: int,
        message: str | None = None,
        **options: Unpack[CallOptions],
    ) -> JobWriteResult:
        """Set one task group's count (idempotent: the same count twice is the same state)."""
        if count < 0:
            raise ValueError(f"a task group count must not be negative, got {count}")
        body: dict[str, Any] = {"Count": count, "Target": {"Group": group}, "PolicyOverride": False}
        if message is not None:
            body["Message"] = message
        answer = await self._send("PUT", job_path(job_id, "/scale"), body=body, idempotent=True, **options)
        return JobWriteResult.from_wire(expect_object(answer.body, what="scale job"), header_index=answer.index)

    async def job_versions(
        self, job_id: str, *, diffs: bool = False, **options: Unpack[ReadOptions]
    ) -> QueryResult[JSONObject]:
        """`{"Versions": [job, ...] newest first, "Diffs": [...] | None}`; Nomad keeps the last 6."""
        params = {"diffs": "true"} if diffs else None
        return await self._query(job_path(job_id, "/versions"), params=params, **options)

    async def job_summary(self, job_id: str, **options: Unpack[ReadOptions]) -> QueryResult[JSONObject]:
        """Per task group counts of queued, starting, running, failed, lost... allocations."""
        return await self._query(job_path(job_id, "/summary"), **options)

    async def job_allocations(
        self, job_id: str, *, all_versions: bool = False, **options: Unpack[ReadOptions]
    ) -> QueryResult[list[JSONObject]]:
        """Allocation stubs of the job (`[]` for an unknown job); `all_versions` includes older job versions'."""
        params = {"all": "true"} if all_versions else None
        return await self._query(job_path(job_id, "/allocations"), params=params, **options)

    async def job_evaluations(self, job_id: str, **options: Unpack[ReadOptions]) -> QueryResult[list[JSONObject]]:
        return await self._query(job_path(job_id, "/evaluations"), **options)

    async def job_deployment(self, job_id: str, **options: Unpack[ReadOptions]) -> QueryResult[JSONObject | None]:
        """The latest deployment of the job, or None (Nomad answers `null`) when it has none."""
        return await self._query(job_path(job_id, "/deployment"), **options)

    async def job_deployments(self, job_id: str, **options: Unpack[ReadOptions]) -> QueryResult[list[JSONObject]]:
        return await self._query(job_path(job_id, "/deployments"), **options)


def _job_id(job: Mapping[str, Any]) -> str:
    job_id = job.get("ID")
    if not isinstance(job_id, str) or not job_id:
        raise ValueError("the job has no ID: set the job's ID field before planning it")
    return job_id
