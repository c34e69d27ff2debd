"""The fault API under `/v1/sim/` (not Nomad's): unplug and plug nodes, cut event streams, inject errors and latency,
fail a job's tasks, and read request statistics and a state dump.

Each route is a thin wrapper over the same methods tests call in-process on `SimCluster`, so a fault behaves the same
whether a test, the CLI or the demo triggers it. Bad specs get a 400 and change nothing.
"""

from __future__ import annotations

from aiohttp import web

from nomad_operator.sim.http.app import cluster_of, json_response, namespace_of, read_json


async def unplug(request: web.Request) -> web.Response:
    cluster = cluster_of(request)
    node_id = cluster.unplug(request.match_info["node"])
    return json_response(request, {"NodeID": node_id, "Unplugged": True}, meta=False)


async def plug(request: web.Request) -> web.Response:
    cluster = cluster_of(request)
    node_id = cluster.plug(request.match_info["node"])
    return json_response(request, {"NodeID": node_id, "Unplugged": False}, meta=False)


async def cut(request: web.Request) -> web.Response:
    return json_response(request, {"Closed": cluster_of(request).cut_streams()}, meta=False)


async def add_fault(request: web.Request) -> web.Response:
    cluster = cluster_of(request)
    cluster.inject_fault(await read_json(request))
    return json_response(request, {"Faults": cluster.faults.list()}, meta=False)


async def list_faults(request: web.Request) -> web.Response:
    return json_response(request, {"Faults": cluster_of(request).faults.list()}, meta=False)


async def clear_faults(request: web.Request) -> web.Response:
    return json_response(request, {"Cleared": cluster_of(request).clear_faults()}, meta=False)


async def fail_job(request: web.Request) -> web.Response:
    cluster = cluster_of(request)
    failed = cluster.fail_job(request.match_info["job_id"], namespace=namespace_of(request))
    return json_response(request, {"Failed": failed}, meta=False)


async def stats(request: web.Request) -> web.Response:
    cluster = cluster_of(request)
    if request.query.get("reset") == "true":
        cluster.stats.reset()
    return json_response(request, cluster.stats_snapshot(), meta=False)


async def state(request: web.Request) -> web.Response:
    return json_response(request, cluster_of(request).state_dump(), meta=False)


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_post("/v1/sim/node/{node}/unplug", unplug)
    router.add_post("/v1/sim/node/{node}/plug", plug)
    router.add_post("/v1/sim/events/cut", cut)
    router.add_post("/v1/sim/faults", add_fault)
    router.add_get("/v1/sim/faults", list_faults)
    router.add_delete("/v1/sim/faults", clear_faults)
    router.add_post("/v1/sim/job/{job_id}/fail", fail_job)
    router.add_get("/v1/sim/stats", stats)
    router.add_get("/v1/sim/state", state)
