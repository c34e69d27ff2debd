"""The simulator's aiohttp application: middleware for Nomad's HTTP conventions, and the helpers every route shares.

Clients read more than bodies: `X-Nomad-Index` drives blocking queries and informer resumes, plain-text errors and
exact status codes drive retries (405 "Invalid method", 404 for unknown paths, 413 beyond the body limit, 403
"Permission denied" with ACLs on), and injected faults must hit before any handler runs. The hazards handled here are
inconsistency between routes (every route goes through the same error, ACL, fault and accounting path) and unbounded
input (a body limit, strict index/wait parsing, a capped blocking wait with Nomad's jitter).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import orjson
from aiohttp import web

from nomad_operator.durations import InvalidDuration, parse_duration, to_seconds
from nomad_operator.sim.cluster import SimCluster
from nomad_operator.sim.config import BLOCKING_JITTER_FRACTION, DEFAULT_BLOCKING_WAIT_S, MAX_BLOCKING_WAIT_S
from nomad_operator.sim.encoding import dumps, dumps_pretty
from nomad_operator.sim.errors import ApiError, bad_request
from nomad_operator.sim.http.filtering import compile_filter
from nomad_operator.sim.http.pagination import BY_ID, ListOrder, PageRequest, page_of

CLUSTER_KEY: web.AppKey[SimCluster] = web.AppKey("cluster", SimCluster)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
UNAUTHENTICATED = frozenset({"/v1/status/leader", "/v1/status/peers", "/v1/regions"})


def cluster_of(request: web.Request) -> SimCluster:
    return request.app[CLUSTER_KEY]


def text_error(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message, content_type="text/plain")


def json_response(request: web.Request, value: Any, *, index: int | None = None, meta: bool = True,
                  status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """A JSON answer with Nomad's headers: "meta" on reads (index, leader, last contact), only the index on writes."""
    body = dumps_pretty(value) if "pretty" in request.query else dumps(value)
    response = web.Response(status=status, body=body, content_type="application/json")
    if index is not None:
        response.headers["X-Nomad-Index"] = str(index)
    if meta:
        response.headers["X-Nomad-KnownLeader"] = "true"
        response.headers["X-Nomad-LastContact"] = "0"
    for key, value_ in (headers or {}).items():
        response.headers[key] = value_
    return response


async def read_json(request: web.Request, *, required: bool = True) -> Any:
    raw = await request.read()
    if not raw.strip():
        if required:
            raise bad_request("Request body is empty")
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise bad_request(f"Failed to decode request body: {error}") from None


def namespace_of(request: web.Request) -> str:
    return request.query.get("namespace") or "default"


def bool_param(request: web.Request, name: str) -> bool:
    value = request.query.get(name)
    if value is None or value == "":
        return False  # Nomad only parses non-empty values
    if value.lower() in ("1", "t", "true"):
        return True
    if value.lower() in ("0", "f", "false"):
        return False
    raise ApiError(500, f'Failed to parse value of "{name}" ({value!r}) as a bool: strconv.ParseBool: parsing '
                        f'"{value}": invalid syntax')


def blocking_params(request: web.Request) -> tuple[int, float]:
    """(`index`, wait seconds) with Nomad's 400s; wait capped at 300 s plus up to wait/16 jitter."""
    text = request.query.get("index")
    index = 0
    if text is not None:
        try:
            index = int(text)
            if index < 0:
                raise ValueError
        except ValueError:
            raise bad_request("Invalid index") from None
    wait = DEFAULT_BLOCKING_WAIT_S
    wait_text = request.query.get("wait")
    if wait_text is not None:
        try:
            wait = to_seconds(parse_duration(wait_text))
        except InvalidDuration:
            raise bad_request("Invalid wait time") from None
        if wait < 0:
            raise bad_request("Invalid wait time")
    wait = min(wait, MAX_BLOCKING_WAIT_S)
    return index, wait + random.uniform(0, wait / BLOCKING_JITTER_FRACTION)


async def block(request: web.Request, tables: Iterable[str]) -> None:
    """Hold a blocking query until one of `tables` passes the requested index, or the wait runs out."""
    index, wait = blocking_params(request)
    if index > 0:
        await cluster_of(request).store.wait_beyond(tables, index, timeout=wait)


def listed(request: web.Request, items: Iterable[Mapping[str, Any]], *, key: str | None = None,
           order: ListOrder = BY_ID, prefix_order: ListOrder | None = None, prefix_key: str | None = None,
           render: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None,
           ) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Apply `prefix`, `filter`, `reverse`, `per_page` and `next_token` to a list; returns items and extra headers.

    `order` is the route's sort and token order (`key` is shorthand for ordering by that one field), `prefix_order`
    the one Nomad uses when a prefix is given. `render` turns a stored object into its wire form (a stub): without a
    filter only the page is rendered, so a paged list of 10,000 allocations does not build 10,000 stubs a page.
    """
    chosen = ListOrder((key,)) if key is not None else order
    prefix = request.query.get("prefix", "")
    if prefix:
        field = prefix_key or chosen.fields[-1]
        items = [item for item in items if str(item.get(field, "")).startswith(prefix)]
        chosen = prefix_order or chosen
    expression = request.query.get("filter")
    if expression:
        predicate = compile_filter(expression)
        rendered = [render(item) for item in items] if render is not None else items
        items, render = [item for item in rendered if predicate(item)], None
    page, next_token = page_of(list(items), chosen, PageRequest.from_query(request.query))
    headers = {"X-Nomad-NextToken": next_token} if next_token else {}
    return [render(item) if render is not None else dict(item) for item in page], headers


def _token_of(request: web.Request) -> str:
    token = request.headers.get("X-Nomad-Token", "")
    if not token:
        authorization = request.headers.get("Authorization", "")
        if authorization.lower().startswith("bearer "):
            token = authorization[7:].strip()
    return token


def _route_name(request: web.Request) -> str:
    info = request.match_info.route.resource
    if info is None:
        return "unmatched"
    return info.canonical


@web.middleware
async def nomad_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    cluster = cluster_of(request)
    token = _token_of(request)
    accessor = "anonymous"
    if cluster.token is not None and token == cluster.token.secret_id:
        accessor = cluster.token.accessor_id
    elif cluster.token is None:
        accessor = "acls-disabled"
    cluster.stats.record(method=request.method, route=_route_name(request), path=request.path, accessor=accessor,
                         writer=request.headers.get("X-Nomad-Operator-Replica")
                         or request.headers.get("User-Agent") or "")
    delay, status = cluster.faults.decide(request.method, request.path)
    if delay:
        await asyncio.sleep(delay)
    if status is not None:
        return text_error(status, f"injected fault: {status}")
    if cluster.token is not None and request.path not in UNAUTHENTICATED and token != cluster.token.secret_id:
        if token and request.path == "/v1/acl/token/self":
            return text_error(403, "ACL token not found")
        return text_error(403, "Permission denied")
    try:
        return await handler(request)
    except ApiError as error:
        if error.body is not None:
            response = json_response(request, error.body, index=error.index, status=error.status)
            return response
        return text_error(error.status, error.message)
    except web.HTTPMethodNotAllowed:
        if request.path.startswith("/v1/var/"):
            return text_error(400, "Invalid method")
        return text_error(405, "Invalid method")
    except web.HTTPNotFound:
        return text_error(404, "Invalid URL")
    except web.HTTPRequestEntityTooLarge:
        return text_error(413, f"Request body too large: the limit is {cluster.config.max_body_bytes} bytes")


def build_app(cluster: SimCluster) -> web.Application:
    from nomad_operator.sim.http import (
        allocs_routes,
        events_routes,
        jobs_routes,
        misc_routes,
        nodes_routes,
        sim_routes,
        vars_routes,
    )

    app = web.Application(middlewares=[nomad_middleware], client_max_size=cluster.config.max_body_bytes)
    app[CLUSTER_KEY] = cluster
    for module in (jobs_routes, allocs_routes, nodes_routes, vars_routes, events_routes, misc_routes, sim_routes):
        module.add_routes(app)
    return app
