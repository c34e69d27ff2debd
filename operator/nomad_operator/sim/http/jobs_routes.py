"""Job routes: `/v1/jobs`, `/v1/jobs/parse` and `/v1/job/:id` with its sub-resources, as Nomad answers them.

This module only translates HTTP to the job registry and back (paths, params, headers, response shapes); every rule
lives in `sim.jobs`. The hazard it handles is shape drift between routes that return the same objects: stubs and
lists are built by the same functions as the reads.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from nomad_operator.jobspec import JobspecError, parse_for_api
from nomad_operator.sim.diff import job_diff
from nomad_operator.sim.encoding import drop_empty
from nomad_operator.sim.errors import bad_request, not_found
from nomad_operator.sim.http.allocs_routes import alloc_stub
from nomad_operator.sim.http.app import (
    block,
    bool_param,
    cluster_of,
    json_response,
    listed,
    namespace_of,
    read_json,
    text_error,
)
from nomad_operator.sim.http.pagination import BY_NAMESPACE_ID

JOB_TABLES = ("jobs", "job_summary")


async def list_jobs(request: web.Request) -> web.Response:
    await block(request, JOB_TABLES)
    cluster = cluster_of(request)
    namespace = namespace_of(request)
    found = [job for job in cluster.store.jobs.values() if namespace in ("*", job["Namespace"])]
    with_meta = request.query.get("meta") == "true"

    def stub(job: Mapping[str, Any]) -> dict[str, Any]:
        rendered = cluster.jobs.stub(job)
        if with_meta:
            rendered["Meta"] = job.get("Meta")
        return rendered

    items, headers = listed(request, found, order=BY_NAMESPACE_ID, render=stub)
    return json_response(request, items, index=cluster.store.max_index(JOB_TABLES), headers=headers)


async def register(request: web.Request) -> web.Response:
    body = await read_json(request)
    path_id = request.match_info.get("job_id")
    result = cluster_of(request).jobs.register(body, path_id=path_id, namespace=namespace_of(request))
    return json_response(request, result, index=result["Index"], meta=False)


async def parse(request: web.Request) -> web.Response:
    """`/v1/jobs/parse` with our own converter: the same rules as Nomad's (no filesystem, variables as HCL text).

    Conversion holds the GIL for ~0.15 ms a line, so it runs in a thread to keep heartbeats and streams moving.
    """
    body = await read_json(request)
    if not isinstance(body, dict):
        raise bad_request("Failed to decode request body: expected an object")
    hcl = body.get("JobHCL") or ""
    variables = body.get("Variables") or None
    if not isinstance(hcl, str) or not isinstance(variables, str | None):
        raise bad_request("Failed to decode request body: JobHCL and Variables must be strings")
    if not hcl.strip():
        return text_error(400, "Job spec is empty")
    try:
        job = await asyncio.to_thread(
            parse_for_api, hcl, variables=variables, canonicalize=bool(body.get("Canonicalize"))
        )
    except JobspecError as error:
        return text_error(400, f"Failed to parse job: {error}")
    return json_response(request, job, meta=False)


async def read_job(request: web.Request) -> web.Response:
    await block(request, ("jobs",))
    cluster = cluster_of(request)
    job = cluster.jobs.get(namespace_of(request), request.match_info["job_id"])
    return json_response(request, job, index=job["ModifyIndex"])


async def deregister(request: web.Request) -> web.Response:
    purge = bool_param(request, "purge")
    bool_param(request, "global")
    result = cluster_of(request).jobs.deregister(namespace_of(request), request.match_info["job_id"], purge=purge)
    return json_response(request, result, index=result["Index"], meta=False)


async def plan(request: web.Request) -> web.Response:
    body = await read_json(request)
    result = cluster_of(request).jobs.plan(body, path_id=request.match_info["job_id"],
                                           namespace=namespace_of(request))
    return json_response(request, result, index=result["Index"], meta=False)


async def versions(request: web.Request) -> web.Response:
    await block(request, ("jobs",))
    cluster = cluster_of(request)
    key = (namespace_of(request), request.match_info["job_id"])
    found = cluster.store.job_versions.get(key)
    if not found:
        raise not_found("job versions not found")
    diffs = None
    if bool_param(request, "diffs"):
        diffs = [job_diff(older, newer) for newer, older in itertools.pairwise(found)]
    body = {"Diffs": diffs, "Index": found[0]["ModifyIndex"], "KnownLeader": True, "LastContact": 0,
            "NextToken": "", "Versions": found}
    return json_response(request, body, index=cluster.store.max_index(("jobs",)))


async def job_allocations(request: web.Request) -> web.Response:
    await block(request, ("allocs",))
    cluster = cluster_of(request)
    allocs = cluster.store.allocs_of_job((namespace_of(request), request.match_info["job_id"]))
    stubs = sorted((alloc_stub(alloc) for alloc in allocs), key=lambda stub: stub["CreateIndex"])
    return json_response(request, stubs, index=cluster.store.max_index(("allocs",)))


async def job_evaluations(request: web.Request) -> web.Response:
    await block(request, ("evals",))
    cluster = cluster_of(request)
    evals = cluster.store.evals_of_job((namespace_of(request), request.match_info["job_id"]))
    return json_response(request, [drop_empty(e) for e in evals], index=cluster.store.max_index(("evals",)))


async def job_deployments(request: web.Request) -> web.Response:
    await block(request, ("deployment",))
    cluster = cluster_of(request)
    found = cluster.store.deployments_of_job((namespace_of(request), request.match_info["job_id"]))
    return json_response(request, found, index=cluster.store.max_index(("deployment",)))


async def job_deployment(request: web.Request) -> web.Response:
    await block(request, ("deployment",))
    cluster = cluster_of(request)
    found = cluster.store.deployments_of_job((namespace_of(request), request.match_info["job_id"]))
    return json_response(request, found[0] if found else None, index=cluster.store.max_index(("deployment",)))


async def summary(request: web.Request) -> web.Response:
    await block(request, ("job_summary",))
    cluster = cluster_of(request)
    found = cluster.store.job_summaries.get((namespace_of(request), request.match_info["job_id"]))
    if found is None:
        raise not_found("job not found")
    return json_response(request, found, index=found["ModifyIndex"])


async def evaluate(request: web.Request) -> web.Response:
    body = await read_json(request, required=False)
    result = cluster_of(request).jobs.evaluate(namespace_of(request), request.match_info["job_id"], body)
    return json_response(request, result, index=result["Index"], meta=False)


async def scale_status(request: web.Request) -> web.Response:
    await block(request, ("jobs", "allocs"))
    cluster = cluster_of(request)
    result = cluster.jobs.scale_status(namespace_of(request), request.match_info["job_id"])
    return json_response(request, result, index=cluster.store.max_index(("jobs", "allocs")))


async def scale(request: web.Request) -> web.Response:
    body = await read_json(request)
    result = cluster_of(request).jobs.scale(namespace_of(request), request.match_info["job_id"], body)
    return json_response(request, result, index=result["Index"], meta=False)


async def submission(request: web.Request) -> web.Response:
    cluster = cluster_of(request)
    text = request.query.get("version")
    try:
        version = int(text or "")
    except ValueError:
        raise bad_request("Unable to parse job submission version parameter") from None
    found = cluster.store.submissions.get((namespace_of(request), request.match_info["job_id"], version))
    if found is None:
        raise not_found("job source not found")
    return json_response(request, found, index=found["JobModifyIndex"])


async def stable(request: web.Request) -> web.Response:
    body = await read_json(request)
    job_id = request.match_info["job_id"]
    _check_job_id(body, job_id)
    cluster = cluster_of(request)
    cluster.jobs.get(namespace_of(request), job_id)
    index = cluster.jobs.set_stable(namespace_of(request), job_id, int(body.get("JobVersion") or 0),
                                    bool(body.get("Stable")))
    return json_response(request, {"Index": index}, index=index, meta=False)


async def revert(request: web.Request) -> web.Response:
    body = await read_json(request)
    job_id = request.match_info["job_id"]
    _check_job_id(body, job_id)
    result = cluster_of(request).jobs.revert(namespace_of(request), job_id, int(body.get("JobVersion") or 0))
    return json_response(request, result, index=result["Index"])


def _check_job_id(body: Any, job_id: str) -> None:
    if not isinstance(body, dict) or not body.get("JobID"):
        raise bad_request("JobID must be specified")
    if body["JobID"] != job_id:
        raise bad_request("Job ID does not match")


async def job_services(request: web.Request) -> web.Response:
    await block(request, ("services",))
    cluster = cluster_of(request)
    namespace, job_id = namespace_of(request), request.match_info["job_id"]
    found = [reg for reg in cluster.store.services.values() if reg["JobID"] == job_id and reg["Namespace"] == namespace]
    return json_response(request, found, index=cluster.store.max_index(("services",)))


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/v1/jobs", list_jobs)
    for method in ("PUT", "POST"):
        router.add_route(method, "/v1/jobs", register)
        router.add_route(method, "/v1/jobs/parse", parse)
        router.add_route(method, "/v1/job/{job_id}", register)
        router.add_route(method, "/v1/job/{job_id}/plan", plan)
        router.add_route(method, "/v1/job/{job_id}/evaluate", evaluate)
        router.add_route(method, "/v1/job/{job_id}/scale", scale)
        router.add_route(method, "/v1/job/{job_id}/stable", stable)
        router.add_route(method, "/v1/job/{job_id}/revert", revert)
    router.add_get("/v1/job/{job_id}", read_job)
    router.add_delete("/v1/job/{job_id}", deregister)
    router.add_get("/v1/job/{job_id}/versions", versions)
    router.add_get("/v1/job/{job_id}/allocations", job_allocations)
    router.add_get("/v1/job/{job_id}/evaluations", job_evaluations)
    router.add_get("/v1/job/{job_id}/deployments", job_deployments)
    router.add_get("/v1/job/{job_id}/deployment", job_deployment)
    router.add_get("/v1/job/{job_id}/summary", summary)
    router.add_get("/v1/job/{job_id}/scale", scale_status)
    router.add_get("/v1/job/{job_id}/submission", submission)
    router.add_get("/v1/job/{job_id}/services", job_services)
