"""The cluster part of the Nomad API: allocations, nodes, evaluations, deployments, services, status, ACL, agent.

The node controller drains nodes and flips their eligibility, and both are idempotent by nature (the same drain spec
twice is the same state), so they are retried; an allocation stop is too. Node and status routes are not namespaced,
so no `namespace` parameter is sent with them. Drain deadlines are Nomad's integer nanoseconds, with its meanings kept:
negative forces the drain now, 0 means no deadline.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Unpack
from urllib.parse import quote

from nomad_operator.nomad.list_pages import PagedLists, PageOptions
from nomad_operator.nomad.results import JSONObject, QueryResult, expect_object
from nomad_operator.nomad.transport import CallOptions, ListOptions, ReadOptions


def _segment(value: str, *, what: str) -> str:
    if not value:
        raise ValueError(f"{what} must not be empty")
    return quote(value, safe="")


class ClusterAPI(PagedLists):
    """Calls for allocations, nodes, evaluations, deployments, services, and the cluster's own status.

    Every list has a `*_pages` twin that reads it a page at a time (`per_page` objects each, in Nomad's order for the
    route: allocations, evaluations and deployments by creation, nodes by ID), so a big cluster's list is never held
    whole; each page carries its own `X-Nomad-Index`.
    """

    # --- allocations ---

    async def list_allocations(
        self, *, prefix: str | None = None, **options: Unpack[ListOptions]
    ) -> QueryResult[list[JSONObject]]:
        return await self._list_by_prefix("/v1/allocations", prefix=prefix, **options)

    def allocation_pages(
        self, *, prefix: str | None = None, **options: Unpack[PageOptions]
    ) -> AsyncIterator[QueryResult[list[JSONObject]]]:
        return self._pages("/v1/allocations", prefix=prefix, **options)

    async def read_allocation(self, alloc_id: str, **options: Unpack[ReadOptions]) -> QueryResult[JSONObject]:
        return await self._query(f"/v1/allocation/{_segment(alloc_id, what='an allocation ID')}", **options)

    async def stop_allocation(
        self, alloc_id: str, *, no_shutdown_delay: bool = False, **options: Unpack[CallOptions]
    ) -> JSONObject:
        """Stop one allocation (the scheduler places a replacement); returns `{"EvalID", "Index"}`."""
        path = f"/v1/allocation/{_segment(alloc_id, what='an allocation ID')}/stop"
        params = {"no_shutdown_delay": "true"} if no_shutdown_delay else None
        answer = await self._send("PUT", path, params=params, idempotent=True, **options)
        return expect_object(answer.body, what="stop allocation")

    # --- nodes ---

    async def list_nodes(
        self, *, prefix: str | None = None, **options: Unpack[ListOptions]
    ) -> QueryResult[list[JSONObject]]:
        return await self._list_by_prefix("/v1/nodes", prefix=prefix, namespaced=False, **options)

    def node_pages(
        self, *, prefix: str | None = None, **options: Unpack[PageOptions]
    ) -> AsyncIterator[QueryResult[list[JSONObject]]]:
        return self._pages("/v1/nodes", prefix=prefix, namespaced=False, **options)

    async def read_node(self, node_id: str, **options: Unpack[ReadOptions]) -> QueryResult[JSONObject]:
        return await self._query(f"/v1/node/{_segment(node_id, what='a node ID')}", namespaced=False, **options)

    async def node_allocations(self, node_id: str, **options: Unpack[ReadOptions]) -> QueryResult[list[JSONObject]]:
        path = f"/v1/node/{_segment(node_id, what='a node ID')}/allocations"
        return await self._query(path, namespaced=False, **options)

    async def drain_node(
        self,
        node_id: str,
        *,
        deadline_ns: int | None,
        ignore_system_jobs: bool = False,
        mark_eligible: bool = False,
        meta: Mapping[str, str] | None = None,
        **options: Unpack[CallOptions],
    ) -> JSONObject:
        """Start a drain (`deadline_ns`: <0 now, 0 no deadline, >0 nanoseconds), or stop one with `deadline_ns=None`.

        Stopping a drain leaves the node ineligible unless `mark_eligible` is set.
        """
        spec = None if deadline_ns is None else {"Deadline": deadline_ns, "IgnoreSystemJobs": ignore_system_jobs}
        body: dict[str, Any] = {"DrainSpec": spec, "MarkEligible": mark_eligible}
        if meta is not None:
            body["Meta"] = dict(meta)
        path = f"/v1/node/{_segment(node_id, what='a node ID')}/drain"
        answer = await self._send("PUT", path, body=body, idempotent=True, namespaced=False, **options)
        return expect_object(answer.body, what="drain node")

    async def set_node_eligibility(self, node_id: str, eligible: bool, **options: Unpack[CallOptions]) -> JSONObject:
        body = {"Eligibility": "eligible" if eligible else "ineligible"}
        path = f"/v1/node/{_segment(node_id, what='a node ID')}/eligibility"
        answer = await self._send("PUT", path, body=body, idempotent=True, namespaced=False, **options)
        return expect_object(answer.body, what="set node eligibility")

    # --- evaluations and deployments ---

    async def list_evaluations(
        self, *, prefix: str | None = None, **options: Unpack[ListOptions]
    ) -> QueryResult[list[JSONObject]]:
        return await self._list_by_prefix("/v1/evaluations", prefix=prefix, **options)

    def evaluation_pages(
        self, *, prefix: str | None = None, **options: Unpack[PageOptions]
    ) -> AsyncIterator[QueryResult[list[JSONObject]]]:
        return self._pages("/v1/evaluations", prefix=prefix, **options)

    async def read_evaluation(self, eval_id: str, **options: Unpack[ReadOptions]) -> QueryResult[JSONObject]:
        return await self._query(f"/v1/evaluation/{_segment(eval_id, what='an evaluation ID')}", **options)

    async def list_deployments(
        self, *, prefix: str | None = None, **options: Unpack[ListOptions]
    ) -> QueryResult[list[JSONObject]]:
        return await self._list_by_prefix("/v1/deployments", prefix=prefix, **options)

    def deployment_pages(
        self, *, prefix: str | None = None, **options: Unpack[PageOptions]
    ) -> AsyncIterator[QueryResult[list[JSONObject]]]:
        return self._pages("/v1/deployments", prefix=prefix, **options)

    async def read_deployment(self, deployment_id: str, **options: Unpack[ReadOptions]) -> QueryResult[JSONObject]:
        return await self._query(f"/v1/deployment/{_segment(deployment_id, what='a deployment ID')}", **options)

    # --- services ---

    async def list_services(self, **options: Unpack[ReadOptions]) -> QueryResult[list[JSONObject]]:
        """`[{"Namespace", "Services": [{"ServiceName", "Tags"}]}]`, one entry per namespace."""
        return await self._query("/v1/services", **options)

    async def read_service(self, name: str, **options: Unpack[ReadOptions]) -> QueryResult[list[JSONObject]]:
        """Every registration (instance) of the service."""
        return await self._query(f"/v1/service/{_segment(name, what='a service name')}", **options)

    # --- the cluster itself ---

    async def status_leader(self, **options: Unpack[CallOptions]) -> str:
        """The leader's RPC address ("10.0.0.1:4647"), or "" when the cluster has no leader."""
        result = await self._query("/v1/status/leader", namespaced=False, **options)
        return result.value if isinstance(result.value, str) else ""

    async def agent_self(self, **options: Unpack[CallOptions]) -> JSONObject:
        """The agent's config, member and stats (needs agent:read)."""
        result = await self._query("/v1/agent/self", namespaced=False, **options)
        return expect_object(result.value, what="agent self")

    async def acl_token_self(self, **options: Unpack[CallOptions]) -> JSONObject:
        """The token in use, without its SecretID (the caller has it; a dict that holds it would end up in a log).

        `NotFound` ("ACL token not found") or `PermissionDenied` when the token is unknown.
        """
        result = await self._query("/v1/acl/token/self", namespaced=False, **options)
        token = expect_object(result.value, what="ACL token self")
        token.pop("SecretID", None)
        return token
