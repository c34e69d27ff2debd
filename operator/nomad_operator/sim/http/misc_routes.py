"""Status, agent, ACL token, namespace, region and service-catalog routes: small answers that clients check first.

`/v1/status/leader` and `/v1/agent/self` are how clients decide a cluster is there at all; `/v1/acl/token/self` is how
the operator checks its token. The services routes serve the catalog of `sim.services` (Nomad and Consul providers).
"""

from __future__ import annotations

from aiohttp import web

from nomad_operator.sim.config import NOMAD_VERSION
from nomad_operator.sim.errors import bad_request, not_found
from nomad_operator.sim.http.app import block, cluster_of, json_response, listed, namespace_of

LEADER_ADDRESS = "127.0.0.1:4647"


async def leader(request: web.Request) -> web.Response:
    return json_response(request, LEADER_ADDRESS, meta=False)


async def peers(request: web.Request) -> web.Response:
    return json_response(request, [LEADER_ADDRESS], meta=False)


async def regions(request: web.Request) -> web.Response:
    return json_response(request, [cluster_of(request).config.region], meta=False)


async def agent_self(request: web.Request) -> web.Response:
    cluster = cluster_of(request)
    config = cluster.config
    body = {
        "config": {"Region": config.region, "Datacenter": config.datacenter, "NodeName": "sim-server",
                   "Version": {"Version": NOMAD_VERSION, "VersionPrerelease": "", "VersionMetadata": "sim"},
                   "ACL": {"Enabled": config.acl}, "Server": {"Enabled": True}, "Client": {"Enabled": False}},
        "member": {"Name": "sim-server.global", "Addr": "127.0.0.1", "Port": 4648, "Status": "alive",
                   "Tags": {"region": config.region, "dc": config.datacenter, "build": NOMAD_VERSION,
                            "role": "nomad"}},
        "stats": {"nomad": {"leader": "true", "known_regions": "1", "server": "true"},
                  "raft": {"applied_index": str(cluster.store.index)}},
    }
    return json_response(request, body, meta=False)


async def token_self(request: web.Request) -> web.Response:
    cluster = cluster_of(request)
    if cluster.token is None:
        body = {"AccessorID": "acls-disabled", "SecretID": "acls-disabled", "Name": "acls-disabled",
                "Type": "management", "Policies": None, "Roles": None, "Global": False,
                "CreateTime": "0001-01-01T00:00:00Z", "ExpirationTime": None, "ExpirationTTL": "",
                "CreateIndex": 0, "ModifyIndex": 0}
    else:
        body = cluster.token.to_wire()
    # ACLToken has its own MarshalJSON (declaration order), so it is written as is, not key-sorted.
    return web.json_response(body, headers={"X-Nomad-Index": "1", "X-Nomad-KnownLeader": "true",
                                            "X-Nomad-LastContact": "0"})


async def list_namespaces(request: web.Request) -> web.Response:
    cluster = cluster_of(request)
    items, headers = listed(request, list(cluster.store.namespaces.values()), key="Name")
    return json_response(request, items, index=1, headers=headers)


async def read_namespace(request: web.Request) -> web.Response:
    found = cluster_of(request).store.namespaces.get(request.match_info["name"])
    if found is None:
        raise not_found("Namespace not found")
    return json_response(request, found, index=found["ModifyIndex"])


async def list_services(request: web.Request) -> web.Response:
    await block(request, ("services",))
    cluster = cluster_of(request)
    return json_response(request, cluster.services.stubs(namespace_of(request)),
                         index=cluster.store.max_index(("services",)))


async def read_service(request: web.Request) -> web.Response:
    await block(request, ("services",))
    name = request.match_info["name"]
    if not name:
        raise bad_request("missing service name")
    cluster = cluster_of(request)
    found = sorted(cluster.services.by_name(namespace_of(request), name), key=lambda reg: reg["ID"])
    items, headers = listed(request, found)
    return json_response(request, items, index=cluster.store.max_index(("services",)), headers=headers)


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/v1/status/leader", leader)
    router.add_get("/v1/status/peers", peers)
    router.add_get("/v1/regions", regions)
    router.add_get("/v1/agent/self", agent_self)
    router.add_get("/v1/acl/token/self", token_self)
    router.add_get("/v1/namespaces", list_namespaces)
    router.add_get("/v1/namespace/{name}", read_namespace)
    router.add_get("/v1/services", list_services)
    router.add_get("/v1/service/{name}", read_service)
