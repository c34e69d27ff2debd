"""Variable routes: `/v1/vars` (blocking list) and `/v1/var/:path` (read, CAS write, locks, delete with 204).

Paths contain slashes, so the route takes the rest of the URL; a wrong method answers 400 "Invalid method", as
Nomad's variable handler does (not 405).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from nomad_operator.sim.http.app import (
    block,
    blocking_params,
    cluster_of,
    json_response,
    listed,
    namespace_of,
    read_json,
    text_error,
)
from nomad_operator.sim.http.pagination import BY_NAMESPACE_PATH


async def list_vars(request: web.Request) -> web.Response:
    await block(request, ("variables",))
    cluster = cluster_of(request)
    found = cluster.variables.list(namespace_of(request), "")
    items, headers = listed(request, found, order=BY_NAMESPACE_PATH)
    return json_response(request, items, index=cluster.store.max_index(("variables",)), headers=headers)


async def read_var(request: web.Request) -> web.Response:
    cluster = cluster_of(request)
    path = request.match_info["path"]
    namespace = namespace_of(request)
    index, wait = blocking_params(request)
    if index > 0:
        # Block on this variable, not the table: the result index of a variable read is its ModifyIndex.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while loop.time() < deadline:
            current = cluster.store.variables.get((namespace, path))
            if current is not None and current["ModifyIndex"] > index:
                break
            await cluster.store.wait_beyond(("variables",), cluster.store.max_index(("variables",)),
                                            timeout=deadline - loop.time())
    variable = cluster.variables.get(namespace, path)
    return json_response(request, variable, index=variable["ModifyIndex"])


async def write_var(request: web.Request) -> web.Response:
    cluster = cluster_of(request)
    body = await read_json(request)
    result = cluster.variables.put(namespace_of(request), request.match_info["path"], body, request.query)
    return json_response(request, result, index=result["ModifyIndex"], meta=False)


async def delete_var(request: web.Request) -> web.Response:
    index = cluster_of(request).variables.delete(namespace_of(request), request.match_info["path"], request.query)
    response = web.Response(status=204)
    response.headers["X-Nomad-Index"] = str(index)
    return response


async def invalid_method(request: web.Request) -> web.Response:
    return text_error(400, "Invalid method")


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/v1/vars", list_vars)
    router.add_get("/v1/var/{path:.*}", read_var)
    router.add_route("PUT", "/v1/var/{path:.*}", write_var)
    router.add_route("POST", "/v1/var/{path:.*}", write_var)
    router.add_delete("/v1/var/{path:.*}", delete_var)
    router.add_route("PATCH", "/v1/var/{path:.*}", invalid_method)

