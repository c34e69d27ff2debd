"""Allocation, evaluation and deployment routes.

Allocations have two wire forms that clients confuse at their peril: the list stub (every key present, no Job) and
the full Allocation (all-omitempty, with the Job as of placement). Evaluations are all-omitempty too. The hazard is
sending the wrong form from the wrong route, so both are built here, once, and used by every route that returns them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from nomad_operator.sim.encoding import blank, drop_empty
from nomad_operator.sim.errors import ApiError, bad_request, not_found
from nomad_operator.sim.http.app import block, cluster_of, json_response, listed, namespace_of, read_json
from nomad_operator.sim.http.pagination import BY_CREATE_INDEX_ID, BY_ID
from nomad_operator.sim.state import alloc_terminal

STUB_KEYS = (
    "ClientDescription", "ClientStatus", "CreateIndex", "CreateTime", "DeploymentStatus", "DesiredDescription",
    "DesiredStatus", "DesiredTransition", "EvalID", "FollowupEvalID", "ID", "JobID", "ModifyIndex",
    "ModifyTime", "Name", "Namespace", "NextAllocation", "NodeID", "NodeName", "PreemptedAllocations",
    "PreemptedByAllocation", "RescheduleTracker", "TaskGroup", "TaskStates",
)


def alloc_stub(alloc: Mapping[str, Any], *, resources: bool = False, task_states: bool = True) -> dict[str, Any]:
    stub = blank("AllocListStub")
    for key in STUB_KEYS:
        if key in alloc:
            stub[key] = alloc[key]
    stub["DesiredTransition"] = dict(blank("DesiredTransition"), **(alloc.get("DesiredTransition") or {}))
    job = alloc.get("Job") or {}
    stub["JobType"] = job.get("Type", "")
    stub["JobVersion"] = job.get("Version", 0)
    stub["AllocatedResources"] = alloc.get("AllocatedResources") if resources else None
    if not task_states:
        stub["TaskStates"] = None
    return stub


def alloc_full(alloc: Mapping[str, Any]) -> dict[str, Any]:
    return drop_empty(dict(alloc))


def _namespaced(request: web.Request, item: Mapping[str, Any]) -> bool:
    namespace = namespace_of(request)
    return namespace == "*" or item.get("Namespace") == namespace


async def list_allocs(request: web.Request) -> web.Response:
    await block(request, ("allocs",))
    cluster = cluster_of(request)
    resources = request.query.get("resources") == "true"
    task_states = request.query.get("task_states") != "false"
    found = [alloc for alloc in cluster.store.allocs.values() if _namespaced(request, alloc)]
    items, headers = listed(request, found, order=BY_CREATE_INDEX_ID, prefix_order=BY_ID,
                            render=lambda alloc: alloc_stub(alloc, resources=resources, task_states=task_states))
    return json_response(request, items, index=cluster.store.max_index(("allocs",)), headers=headers)


def _alloc(request: web.Request, message: str = "alloc not found") -> dict[str, Any]:
    alloc = cluster_of(request).store.allocs.get(request.match_info["alloc_id"])
    if alloc is None:
        raise not_found(message)
    return alloc


async def read_alloc(request: web.Request) -> web.Response:
    await block(request, ("allocs",))
    alloc = _alloc(request)
    return json_response(request, alloc_full(alloc), index=alloc["ModifyIndex"])


async def stop_alloc(request: web.Request) -> web.Response:
    cluster = cluster_of(request)
    alloc = _alloc(request, "allocation not found")
    store = cluster.store
    job = store.jobs.get((alloc["Namespace"], alloc["JobID"])) or alloc.get("Job") or {}
    with store.write("AllocationUpdateDesiredStatus") as txn:
        if not alloc_terminal(alloc):
            transition = dict(blank("DesiredTransition"), **(alloc.get("DesiredTransition") or {}), Migrate=True)
            if request.query.get("no_shutdown_delay") == "true":
                transition["NoShutdownDelay"] = True
            store.put_alloc(txn, dict(alloc, DesiredTransition=transition, AllocModifyIndex=txn.index))
        evaluation = cluster.evals.create_eval(txn, job=job, triggered_by="alloc-stop")
    cluster.evals.enqueue(evaluation["ID"])
    return json_response(request, {"EvalID": evaluation["ID"], "Index": txn.index}, index=txn.index, meta=False)


async def alloc_services(request: web.Request) -> web.Response:
    cluster = cluster_of(request)
    alloc = _alloc(request, "allocation not found")
    found = [cluster.store.services[sid] for sid in sorted(cluster.store.services_by_alloc.get(alloc["ID"], ()))]
    return json_response(request, found, index=cluster.store.max_index(("services",)))


async def list_evals(request: web.Request) -> web.Response:
    await block(request, ("evals",))
    cluster = cluster_of(request)
    status, job = request.query.get("status"), request.query.get("job")
    evals = [e for e in cluster.store.evals.values() if _namespaced(request, e)
             and (not status or e["Status"] == status) and (not job or e["JobID"] == job)]
    items, headers = listed(request, evals, order=BY_CREATE_INDEX_ID, prefix_order=BY_ID,
                            render=lambda evaluation: drop_empty(dict(evaluation)))
    return json_response(request, items, index=cluster.store.max_index(("evals",)), headers=headers)


async def read_eval(request: web.Request) -> web.Response:
    await block(request, ("evals",))
    cluster = cluster_of(request)
    evaluation = cluster.store.evals.get(request.match_info["eval_id"])
    if evaluation is None:
        raise not_found("eval not found")
    return json_response(request, drop_empty(evaluation), index=evaluation["ModifyIndex"])


async def eval_allocs(request: web.Request) -> web.Response:
    cluster = cluster_of(request)
    eval_id = request.match_info["eval_id"]
    stubs = [alloc_stub(a) for a in cluster.store.allocs.values() if a.get("EvalID") == eval_id]
    return json_response(request, stubs, index=cluster.store.max_index(("allocs",)))


async def list_deployments(request: web.Request) -> web.Response:
    await block(request, ("deployment",))
    cluster = cluster_of(request)
    found = [d for d in cluster.store.deployments.values() if _namespaced(request, d)]
    items, headers = listed(request, found, order=BY_CREATE_INDEX_ID, prefix_order=BY_ID)
    return json_response(request, items, index=cluster.store.max_index(("deployment",)), headers=headers)


async def read_deployment(request: web.Request) -> web.Response:
    await block(request, ("deployment",))
    deployment = cluster_of(request).store.deployments.get(request.match_info["deployment_id"])
    if deployment is None:
        raise not_found("deployment not found")
    return json_response(request, deployment, index=deployment["ModifyIndex"])


async def deployment_allocs(request: web.Request) -> web.Response:
    cluster = cluster_of(request)
    deployment_id = request.match_info["deployment_id"]
    stubs = [alloc_stub(a) for a in cluster.store.allocs.values() if a.get("DeploymentID") == deployment_id]
    return json_response(request, stubs, index=cluster.store.max_index(("allocs",)))


async def fail_deployment(request: web.Request) -> web.Response:
    cluster = cluster_of(request)
    deployment = cluster.store.deployments.get(request.match_info["deployment_id"])
    if deployment is None:
        raise ApiError(500, "deployment not found")
    body = await read_json(request, required=False)
    if isinstance(body, dict) and body.get("DeploymentID") not in (None, deployment["ID"]):
        raise bad_request("Deployment ID does not match")
    with cluster.store.write("DeploymentStatusUpdate") as txn:
        cluster.store.put_deployment(txn, dict(deployment, Status="failed",
                                               StatusDescription="Deployment marked as failed"))
    return json_response(request, {"DeploymentModifyIndex": txn.index, "EvalCreateIndex": 0, "EvalID": "",
                                   "Index": txn.index, "RevertedJobVersion": None}, index=txn.index, meta=False)


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/v1/allocations", list_allocs)
    router.add_get("/v1/allocation/{alloc_id}", read_alloc)
    router.add_route("PUT", "/v1/allocation/{alloc_id}/stop", stop_alloc)
    router.add_route("POST", "/v1/allocation/{alloc_id}/stop", stop_alloc)
    router.add_get("/v1/allocation/{alloc_id}/services", alloc_services)
    router.add_get("/v1/evaluations", list_evals)
    router.add_get("/v1/evaluation/{eval_id}", read_eval)
    router.add_get("/v1/evaluation/{eval_id}/allocations", eval_allocs)
    router.add_get("/v1/deployments", list_deployments)
    router.add_get("/v1/deployment/{deployment_id}", read_deployment)
    router.add_get("/v1/deployment/allocations/{deployment_id}", deployment_allocs)
    router.add_route("PUT", "/v1/deployment/fail/{deployment_id}", fail_deployment)
    router.add_route("POST", "/v1/deployment/fail/{deployment_id}", fail_deployment)
