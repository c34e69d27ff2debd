"""Node routes: list, read, allocations, drain, eligibility and evaluate, with Nomad's error codes (an unknown node
on a write is an uncoded 500, on a read a 404).
"""

from __future__ import annotations

from aiohttp import web

from nomad_operator.sim.errors import ApiError, not_found
from nomad_operator.sim.http.allocs_routes import alloc_full
from nomad_operator.sim.http.app import block, cluster_of, json_response, listed, read_json
from nomad_operator.sim.node_records import node_stub


async def list_nodes(request: web.Request) -> web.Response:
    await block(request, ("nodes",))
    cluster = cluster_of(request)
    resources = request.query.get("resources") == "true"
    with_os = request.query.get("os") == "true"
    items, headers = listed(request, list(cluster.store.nodes.values()),
                            render=lambda node: node_stub(node, with_resources=resources, with_os=with_os))
    return json_response(request, items, index=cluster.store.max_index(("nodes",)), headers=headers)


def _node_id(request: web.Request, *, write: bool = False) -> str:
    cluster = cluster_of(request)
    node_id = request.match_info["node_id"]
    if node_id in cluster.store.nodes:
        return node_id
    matches = [candidate for candidate in cluster.store.nodes if candidate.startswith(node_id)]
    if len(node_id) >= 4 and len(matches) == 1:
        return matches[0]
    raise ApiError(500, "node not found") if write else not_found("node not found")


async def read_node(request: web.Request) -> web.Response:
    await block(request, ("nodes",))
    node = cluster_of(request).store.nodes[_node_id(request)]
    return json_response(request, node, index=node["ModifyIndex"])


async def node_allocations(request: web.Request) -> web.Response:
    await block(request, ("allocs",))
    cluster = cluster_of(request)
    allocs = sorted(cluster.store.allocs_of_node(request.match_info["node_id"]), key=lambda a: a["CreateIndex"])
    return json_response(request, [alloc_full(alloc) for alloc in allocs], index=cluster.store.max_index(("allocs",)))


async def drain(request: web.Request) -> web.Response:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object")
    cluster = cluster_of(request)
    result = cluster.nodes.drain(_node_id(request, write=True), body)
    return json_response(request, result, index=result["Index"], meta=False)


async def eligibility(request: web.Request) -> web.Response:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object")
    result = cluster_of(request).nodes.set_eligibility(_node_id(request, write=True), body)
    return json_response(request, result, index=result["Index"], meta=False)


async def evaluate(request: web.Request) -> web.Response:
    result = cluster_of(request).nodes.evaluate(_node_id(request, write=True))
    return json_response(request, result, index=result["Index"], meta=False)


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/v1/nodes", list_nodes)
    router.add_get("/v1/node/{node_id}", read_node)
    router.add_get("/v1/node/{node_id}/allocations", node_allocations)
    for method in ("PUT", "POST"):
        router.add_route(method, "/v1/node/{node_id}/drain", drain)
        router.add_route(method, "/v1/node/{node_id}/eligibility", eligibility)
        router.add_route(method, "/v1/node/{node_id}/evaluate", evaluate)
